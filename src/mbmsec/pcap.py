"""Sans-I/O capture writer: classic libpcap files with synthetic Ethernet/IP/UDP/TCP frames.

Used to look at what mbmsec puts on the wire with Wireshark/tshark, and by the conformance
tests that run tshark over messages we build. Nothing here touches a socket, a clock or a file:
the caller passes timestamps and gets bytes back (write them with ``Path.write_bytes``).

- :class:`PcapWriter` accumulates records and returns the file bytes (RFC-draft "PCAP Capture
  File Format", draft-ietf-opsawg-pcap: magic 0xA1B2C3D4, version 2.4, link type 1 Ethernet).
- :func:`udp_frame` / :meth:`PcapWriter.add_udp` build Ethernet + IPv4 (RFC 791) or IPv6
  (RFC 8200) + UDP (RFC 768) with correct lengths and checksums.
- :class:`TcpStream` writes a minimal, correct TCP connection (RFC 9293): three-way handshake,
  data segments with the right sequence and acknowledgement numbers, and an orderly FIN close,
  so Wireshark reassembles an HTTP exchange carried over it.

Addresses are ``(ip, port)`` tuples with the IP as text; both ends must be the same family.
MAC addresses are locally administered and derived from the IP, so a capture is reproducible.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .buffer import Buffer
from .errors import ConfigError

# draft-ietf-opsawg-pcap §4: file header and record header.
PCAP_MAGIC_USEC = 0xA1B2C3D4
PCAP_MAGIC_NSEC = 0xA1B23C4D
PCAP_VERSION_MAJOR = 2
PCAP_VERSION_MINOR = 4
LINKTYPE_ETHERNET = 1
DEFAULT_SNAPLEN = 262144

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
IPPROTO_TCP = 6
IPPROTO_UDP = 17

# TCP flags (RFC 9293 §3.1).
TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_PSH = 0x08
TCP_ACK = 0x10

DEFAULT_TTL = 64
DEFAULT_MSS = 1460
DEFAULT_WINDOW = 65535
MAX_IPV4_PAYLOAD = 65535 - 20

Address = tuple[str, int]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def internet_checksum(data: bytes) -> int:
    """RFC 1071 ones' complement sum of 16-bit words, complemented; odd data is zero-padded."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip(text: str) -> IpAddress:
    try:
        return ipaddress.ip_address(text)
    except ValueError as exc:
        raise ConfigError(f"not an IP address: {text!r}") from exc


def _check_port(port: int) -> None:
    if not 0 <= port <= 0xFFFF:
        raise ConfigError(f"port out of range: {port}")


def mac_for(ip: IpAddress) -> bytes:
    """A locally administered unicast MAC (02:xx...) derived from the last 4 bytes of ``ip``."""
    return b"\x02\x00" + ip.packed[-4:]


def _pseudo_header(src: IpAddress, dst: IpAddress, proto: int, length: int) -> bytes:
    if isinstance(src, ipaddress.IPv4Address):
        # RFC 768 / RFC 9293 §3.1: src, dst, zero, protocol, length.
        return src.packed + dst.packed + bytes([0, proto]) + length.to_bytes(2, "big")
    # RFC 8200 §8.1: src, dst, upper-layer length (32), three zero bytes, next header.
    return src.packed + dst.packed + length.to_bytes(4, "big") + b"\x00\x00\x00" + bytes([proto])


def _ip_frame(src: IpAddress, dst: IpAddress, proto: int, segment: bytes, ip_id: int) -> bytes:
    """Ethernet II + IPv4/IPv6 header around an already checksummed transport segment."""
    if type(src) is not type(dst):
        raise ConfigError("source and destination must be the same IP family")
    eth = Buffer()
    eth.push_bytes(mac_for(dst))
    eth.push_bytes(mac_for(src))
    if isinstance(src, ipaddress.IPv4Address):
        if len(segment) > MAX_IPV4_PAYLOAD:
            raise ConfigError(f"segment of {len(segment)} bytes does not fit one IPv4 packet")
        eth.push_uint16(ETHERTYPE_IPV4)
        # RFC 791 §3.1: version 4, IHL 5, TOS 0, total length, id, DF flag, TTL, proto, checksum.
        hdr = Buffer()
        hdr.push_uint8(0x45)
        hdr.push_uint8(0)
        hdr.push_uint16(20 + len(segment))
        hdr.push_uint16(ip_id & 0xFFFF)
        hdr.push_uint16(0x4000)
        hdr.push_uint8(DEFAULT_TTL)
        hdr.push_uint8(proto)
        hdr.push_uint16(0)
        hdr.push_bytes(src.packed)
        hdr.push_bytes(dst.packed)
        raw = bytearray(hdr.getvalue())
        raw[10:12] = internet_checksum(bytes(raw)).to_bytes(2, "big")
        eth.push_bytes(bytes(raw))
    else:
        if len(segment) > 0xFFFF:
            raise ConfigError(f"segment of {len(segment)} bytes does not fit one IPv6 packet")
        eth.push_uint16(ETHERTYPE_IPV6)
        # RFC 8200 §3: version 6, traffic class 0, flow label 0, payload length, next header.
        eth.push_uint32(6 << 28)
        eth.push_uint16(len(segment))
        eth.push_uint8(proto)
        eth.push_uint8(DEFAULT_TTL)
        eth.push_bytes(src.packed)
        eth.push_bytes(dst.packed)
    eth.push_bytes(segment)
    return eth.getvalue()


def udp_frame(src: Address, dst: Address, payload: bytes, *, ip_id: int = 0) -> bytes:
    """Return an Ethernet frame carrying ``payload`` in UDP from ``src`` to ``dst``.

    Lengths and the IPv4 header, UDP checksums are filled in (RFC 768; a computed checksum of
    zero is sent as 0xFFFF). Raises ConfigError for bad addresses or an oversize payload.
    """
    s_ip, d_ip = _ip(src[0]), _ip(dst[0])
    _check_port(src[1])
    _check_port(dst[1])
    length = 8 + len(payload)
    if length > 0xFFFF:
        raise ConfigError(f"UDP payload of {len(payload)} bytes is too large")
    seg = Buffer()
    seg.push_uint16(src[1])
    seg.push_uint16(dst[1])
    seg.push_uint16(length)
    seg.push_uint16(0)
    seg.push_bytes(payload)
    raw = bytearray(seg.getvalue())
    csum = internet_checksum(_pseudo_header(s_ip, d_ip, IPPROTO_UDP, length) + bytes(raw))
    raw[6:8] = (csum or 0xFFFF).to_bytes(2, "big")
    return _ip_frame(s_ip, d_ip, IPPROTO_UDP, bytes(raw), ip_id)


def tcp_frame(
    src: Address,
    dst: Address,
    *,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    window: int = DEFAULT_WINDOW,
    mss: int | None = None,
    ip_id: int = 0,
) -> bytes:
    """Return an Ethernet frame with one TCP segment (RFC 9293 §3.1), checksum filled in.

    ``mss`` adds the MSS option (kind 2), used on SYN segments.
    """
    s_ip, d_ip = _ip(src[0]), _ip(dst[0])
    _check_port(src[1])
    _check_port(dst[1])
    options = b"" if mss is None else bytes([2, 4]) + mss.to_bytes(2, "big")
    offset_words = (20 + len(options)) // 4
    seg = Buffer()
    seg.push_uint16(src[1])
    seg.push_uint16(dst[1])
    seg.push_uint32(seq & 0xFFFFFFFF)
    seg.push_uint32(ack & 0xFFFFFFFF if flags & TCP_ACK else 0)
    seg.push_uint8(offset_words << 4)
    seg.push_uint8(flags)
    seg.push_uint16(window)
    seg.push_uint16(0)  # checksum, filled below
    seg.push_uint16(0)  # urgent pointer
    seg.push_bytes(options)
    seg.push_bytes(payload)
    raw = bytearray(seg.getvalue())
    csum = internet_checksum(_pseudo_header(s_ip, d_ip, IPPROTO_TCP, len(raw)) + bytes(raw))
    raw[16:18] = csum.to_bytes(2, "big")
    return _ip_frame(s_ip, d_ip, IPPROTO_TCP, bytes(raw), ip_id)


@dataclass
class PcapWriter:
    """Accumulates Ethernet frames with caller-given timestamps; :meth:`getvalue` is the file.

    ``nanosecond`` selects the nanosecond-resolution magic (0xA1B23C4D) instead of microseconds.
    """

    snaplen: int = DEFAULT_SNAPLEN
    nanosecond: bool = False
    _records: list[bytes] = field(default_factory=list, repr=False)
    _ip_id: int = 0

    def next_ip_id(self) -> int:
        """A fresh IPv4 identification value (increments per frame)."""
        self._ip_id = (self._ip_id + 1) & 0xFFFF
        return self._ip_id

    def add_frame(self, frame: bytes, ts: float) -> None:
        """Append one link-layer frame captured at ``ts`` (seconds since the Unix epoch)."""
        if ts < 0:
            raise ConfigError("capture timestamps must not be negative")
        scale = 1_000_000_000 if self.nanosecond else 1_000_000
        ticks = round(ts * scale)
        sec, frac = divmod(ticks, scale)
        incl = frame[: self.snaplen]
        rec = Buffer()
        # draft-ietf-opsawg-pcap §5: seconds, sub-seconds, captured length, original length.
        rec.push_uint32(sec & 0xFFFFFFFF)
        rec.push_uint32(frac)
        rec.push_uint32(len(incl))
        rec.push_uint32(len(frame))
        rec.push_bytes(incl)
        self._records.append(rec.getvalue())

    def add_udp(self, src: Address, dst: Address, payload: bytes, ts: float) -> None:
        """Append one UDP datagram from ``src`` to ``dst`` at ``ts``."""
        self.add_frame(udp_frame(src, dst, payload, ip_id=self.next_ip_id()), ts)

    def __len__(self) -> int:
        return len(self._records)

    def getvalue(self) -> bytes:
        """The complete capture file: global header followed by every record in order."""
        hdr = Buffer()
        # draft-ietf-opsawg-pcap §4; written big-endian, which readers detect from the magic.
        hdr.push_uint32(PCAP_MAGIC_NSEC if self.nanosecond else PCAP_MAGIC_USEC)
        hdr.push_uint16(PCAP_VERSION_MAJOR)
        hdr.push_uint16(PCAP_VERSION_MINOR)
        hdr.push_uint32(0)  # reserved (thiszone)
        hdr.push_uint32(0)  # reserved (sigfigs)
        hdr.push_uint32(self.snaplen)
        hdr.push_uint32(LINKTYPE_ETHERNET)
        return hdr.getvalue() + b"".join(self._records)


class TcpStream:
    """One synthetic TCP connection written into a :class:`PcapWriter`.

    ``client`` opens the connection. Sequence numbers start at the given initial sequence
    numbers; every data segment is acknowledged by the peer with a pure ACK, so the capture
    reads like a loss-free exchange. Data longer than ``mss`` is split into several segments.
    """

    def __init__(
        self,
        writer: PcapWriter,
        client: Address,
        server: Address,
        *,
        client_isn: int = 1000,
        server_isn: int = 5000,
        mss: int = DEFAULT_MSS,
    ) -> None:
        if mss <= 0:
            raise ConfigError("mss must be positive")
        self._w = writer
        self.client = client
        self.server = server
        self._mss = mss
        # next sequence number each side will send
        self._snd = {True: client_isn & 0xFFFFFFFF, False: server_isn & 0xFFFFFFFF}
        self.state = "CLOSED"

    def _ends(self, from_client: bool) -> tuple[Address, Address]:
        return (self.client, self.server) if from_client else (self.server, self.client)

    def _emit(
        self, from_client: bool, flags: int, ts: float, payload: bytes = b"", mss: bool = False
    ) -> None:
        src, dst = self._ends(from_client)
        frame = tcp_frame(
            src,
            dst,
            seq=self._snd[from_client],
            ack=self._snd[not from_client],
            flags=flags,
            payload=payload,
            mss=self._mss if mss else None,
            ip_id=self._w.next_ip_id(),
        )
        self._w.add_frame(frame, ts)
        consumed = len(payload) + (1 if flags & (TCP_SYN | TCP_FIN) else 0)
        self._snd[from_client] = (self._snd[from_client] + consumed) & 0xFFFFFFFF

    def open(self, ts: float, rtt: float = 0.001) -> float:
        """Write SYN, SYN-ACK, ACK starting at ``ts``; return the time after the handshake."""
        if self.state != "CLOSED":
            raise ConfigError(f"open() in state {self.state}")
        self._emit(True, TCP_SYN, ts, mss=True)
        self._emit(False, TCP_SYN | TCP_ACK, ts + rtt / 2, mss=True)
        self._emit(True, TCP_ACK, ts + rtt)
        self.state = "ESTABLISHED"
        return ts + rtt

    def send(self, from_client: bool, data: bytes, ts: float, rtt: float = 0.001) -> float:
        """Write ``data`` in MSS-sized PSH/ACK segments, each ACKed by the peer; return end time."""
        if self.state != "ESTABLISHED":
            raise ConfigError(f"send() in state {self.state}")
        t = ts
        for i in range(0, len(data), self._mss):
            self._emit(from_client, TCP_PSH | TCP_ACK, t, data[i : i + self._mss])
            self._emit(not from_client, TCP_ACK, t + rtt / 2)
            t += rtt
        return t

    def close(self, ts: float, rtt: float = 0.001) -> float:
        """Write the client's FIN, the server's ACK+FIN and the final ACK; return end time."""
        if self.state != "ESTABLISHED":
            raise ConfigError(f"close() in state {self.state}")
        self._emit(True, TCP_FIN | TCP_ACK, ts)
        self._emit(False, TCP_FIN | TCP_ACK, ts + rtt / 2)
        self._emit(True, TCP_ACK, ts + rtt)
        self.state = "CLOSED_DONE"
        return ts + rtt


def add_http_exchange(
    writer: PcapWriter,
    client: Address,
    server: Address,
    request: bytes,
    response: bytes,
    ts: float,
    *,
    client_isn: int = 1000,
    server_isn: int = 5000,
    mss: int = DEFAULT_MSS,
) -> float:
    """Write one TCP connection carrying ``request`` then ``response`` (raw HTTP/1.1 bytes).

    Returns the timestamp after the connection is closed.
    """
    stream = TcpStream(
        writer, client, server, client_isn=client_isn, server_isn=server_isn, mss=mss
    )
    t = stream.open(ts)
    t = stream.send(True, request, t)
    t = stream.send(False, response, t)
    return stream.close(t)
