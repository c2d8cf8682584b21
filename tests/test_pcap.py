"""Capture writer: file layout, IP/UDP/TCP headers and checksums, checked by an in-test reader.

The reader below is written from the format descriptions (draft-ietf-opsawg-pcap, RFC 791,
RFC 768, RFC 8200, RFC 9293) with ``struct`` and does not reuse mbmsec.pcap code. tshark
checks of the same captures are in tests/conformance/test_tshark_pcap.py.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbmsec.errors import ConfigError
from mbmsec.pcap import (
    TCP_ACK,
    TCP_FIN,
    TCP_PSH,
    TCP_SYN,
    PcapWriter,
    TcpStream,
    add_http_exchange,
    internet_checksum,
    udp_frame,
)


def ones_sum(data: bytes) -> int:
    """Ones' complement sum; a correct checksum makes the sum over the covered data 0xFFFF."""
    if len(data) % 2:
        data += b"\0"
    s = 0
    for (w,) in struct.iter_unpack("!H", data):
        s += w
        s = (s & 0xFFFF) + (s >> 16)
    return s


@dataclass
class Packet:
    ts_sec: int
    ts_frac: int
    l3: str
    src: str
    dst: str
    proto: int
    segment: bytes


def read_pcap(data: bytes) -> tuple[tuple[int, ...], list[Packet]]:
    hdr = struct.unpack("!IHHIIII", data[:24])
    pos = 24
    out = []
    while pos < len(data):
        sec, frac, incl, orig = struct.unpack("!IIII", data[pos : pos + 16])
        assert incl == orig
        frame = data[pos + 16 : pos + 16 + incl]
        assert len(frame) == incl
        pos += 16 + incl
        (ethertype,) = struct.unpack("!H", frame[12:14])
        ip = frame[14:]
        if ethertype == 0x0800:
            assert ip[0] == 0x45
            (total,) = struct.unpack("!H", ip[2:4])
            assert total == len(ip)
            assert ones_sum(ip[:20]) == 0xFFFF, "IPv4 header checksum"
            src, dst = ipaddress.IPv4Address(ip[12:16]), ipaddress.IPv4Address(ip[16:20])
            proto, seg = ip[9], ip[20:]
            pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, proto, len(seg))
            l3 = "ipv4"
        else:
            assert ethertype == 0x86DD
            assert ip[0] >> 4 == 6
            (plen,) = struct.unpack("!H", ip[4:6])
            assert plen == len(ip) - 40
            src, dst = ipaddress.IPv6Address(ip[8:24]), ipaddress.IPv6Address(ip[24:40])
            proto, seg = ip[6], ip[40:]
            pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(seg), proto)
            l3 = "ipv6"
        assert ones_sum(pseudo + seg) == 0xFFFF, "transport checksum"
        if proto == 17:
            assert struct.unpack("!H", seg[4:6])[0] == len(seg)
        out.append(Packet(sec, frac, l3, str(src), str(dst), proto, seg))
    return hdr, out


def test_file_header_and_timestamps() -> None:
    w = PcapWriter()
    w.add_udp(("192.0.2.1", 2269), ("192.0.2.2", 2269), b"abc", 1700000000.25)
    w.add_udp(("192.0.2.1", 2269), ("192.0.2.2", 2269), b"", 1700000001.000001)
    hdr, pkts = read_pcap(w.getvalue())
    assert hdr == (0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    assert [(p.ts_sec, p.ts_frac) for p in pkts] == [(1700000000, 250000), (1700000001, 1)]
    assert len(w) == 2


def test_nanosecond_magic() -> None:
    w = PcapWriter(nanosecond=True)
    w.add_udp(("192.0.2.1", 1), ("192.0.2.2", 2), b"x", 5.000000007)
    hdr, pkts = read_pcap(w.getvalue())
    assert hdr[0] == 0xA1B23C4D
    assert (pkts[0].ts_sec, pkts[0].ts_frac) == (5, 7)


def test_snaplen_truncates_captured_length() -> None:
    w = PcapWriter(snaplen=40)
    w.add_udp(("192.0.2.1", 1), ("192.0.2.2", 2), b"y" * 100, 0.0)
    data = w.getvalue()
    _sec, _frac, incl, orig = struct.unpack("!IIII", data[24:40])
    assert (incl, orig) == (40, 14 + 20 + 8 + 100)
    assert len(data) == 24 + 16 + 40


@given(
    payload=st.binary(max_size=1500),
    v6=st.booleans(),
    sport=st.integers(0, 65535),
    dport=st.integers(0, 65535),
)
def test_udp_lengths_and_checksums(payload: bytes, v6: bool, sport: int, dport: int) -> None:
    src, dst = ("2001:db8::1", "2001:db8::ff") if v6 else ("198.51.100.7", "203.0.113.9")
    w = PcapWriter()
    w.add_udp((src, sport), (dst, dport), payload, 1.0)
    _, [p] = read_pcap(w.getvalue())
    assert p.l3 == ("ipv6" if v6 else "ipv4")
    assert (p.src, p.dst, p.proto) == (src, dst, 17)
    assert struct.unpack("!HH", p.segment[:4]) == (sport, dport)
    assert struct.unpack("!H", p.segment[6:8])[0] != 0  # zero means "no checksum" in IPv4
    assert p.segment[8:] == payload


def test_internet_checksum_rfc1071_example() -> None:
    # RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2, checksum is its complement.
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


def tcp_fields(seg: bytes) -> tuple[int, int, int, int, bytes]:
    sport, _dport, seq, ack, off, flags = struct.unpack("!HHIIBB", seg[:14])
    return sport, seq, ack, flags, seg[(off >> 4) * 4 :]


@pytest.mark.parametrize("v6", [False, True])
def test_tcp_stream_sequence_numbers(v6: bool) -> None:
    c, s = (
        (("2001:db8::1", 50000), ("2001:db8::2", 80))
        if v6
        else (
            ("10.0.0.1", 50000),
            ("10.0.0.2", 80),
        )
    )
    w = PcapWriter()
    req, resp = b"A" * 3000, b"B" * 10
    add_http_exchange(w, c, s, req, resp, 100.0, client_isn=7, server_isn=0xFFFFFFFE, mss=1460)
    _, pkts = read_pcap(w.getvalue())
    segs = [(p.src, *tcp_fields(p.segment)) for p in pkts]
    ci, si = c[0], s[0]
    # handshake
    assert segs[0][0] == ci and segs[0][4] == TCP_SYN and segs[0][2] == 7
    assert segs[1][0] == si and segs[1][4] == TCP_SYN | TCP_ACK
    assert segs[1][2] == 0xFFFFFFFE and segs[1][3] == 8
    assert segs[2][4] == TCP_ACK and segs[2][2:4] == (8, 0xFFFFFFFF)
    # request: 3 data segments, each acknowledged
    data = [x for x in segs if x[5]]
    assert [len(x[5]) for x in data] == [1460, 1460, 80, 10]
    assert b"".join(x[5] for x in data if x[0] == ci) == req
    assert b"".join(x[5] for x in data if x[0] == si) == resp
    assert [x[2] for x in data[:3]] == [8, 8 + 1460, 8 + 2920]
    # server sequence wraps modulo 2**32 after its SYN
    assert data[3][2] == 0xFFFFFFFF and data[3][4] == TCP_PSH | TCP_ACK
    fin_c, fin_s, last = segs[-3:]
    assert fin_c[4] == TCP_FIN | TCP_ACK and fin_c[2] == 8 + 3000
    assert fin_s[4] == TCP_FIN | TCP_ACK and fin_s[2] == 9 and fin_s[3] == 8 + 3001
    assert last[4] == TCP_ACK and last[3] == 10
    # every pure ACK acknowledges everything sent so far by the peer
    for i, x in enumerate(segs[3:-3], start=3):
        if not x[5]:
            prev = segs[i - 1]
            assert x[3] == (prev[2] + len(prev[5])) & 0xFFFFFFFF


def test_tcp_stream_state_errors() -> None:
    w = PcapWriter()
    st_ = TcpStream(w, ("10.0.0.1", 1), ("10.0.0.2", 2))
    with pytest.raises(ConfigError):
        st_.send(True, b"x", 0.0)
    st_.open(0.0)
    with pytest.raises(ConfigError):
        st_.open(0.0)
    st_.close(1.0)
    with pytest.raises(ConfigError):
        st_.close(2.0)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (("10.0.0.1", 1), ("2001:db8::1", 2)),
        (("not-an-ip", 1), ("10.0.0.1", 2)),
        (("10.0.0.1", 70000), ("10.0.0.2", 2)),
    ],
)
def test_bad_addresses_rejected(src: tuple[str, int], dst: tuple[str, int]) -> None:
    with pytest.raises(ConfigError):
        udp_frame(src, dst, b"")


def test_oversize_udp_rejected() -> None:
    with pytest.raises(ConfigError):
        udp_frame(("10.0.0.1", 1), ("10.0.0.2", 2), b"\0" * 65528)


def test_negative_timestamp_rejected() -> None:
    with pytest.raises(ConfigError):
        PcapWriter().add_udp(("10.0.0.1", 1), ("10.0.0.2", 2), b"", -1.0)
