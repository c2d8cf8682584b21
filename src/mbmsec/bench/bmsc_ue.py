"""UE side of the ``bmsc`` bench case: one key delivery per profile, on real loopback sockets.

Every delivery ends with the UE holding an MSK it verified and decrypted with mbmsec's UE-side
code; nothing is skipped because it is a benchmark:

- **compact**: :func:`~mbmsec.mbms.compact.build_key_request` -> one UDP datagram to the BM-SC
  -> the answer checked by :func:`~mbmsec.mbms.compact.check_key_response` (CSB ID and T echo,
  KEMAC MAC under the MUK, AES-CM decryption).
- **3gpp**: ``POST /keymanagement?requesttype=msk-request`` with HTTP digest (B-TID / MRK,
  ``auth-int``), the server's ``rspauth`` verified, the XML status read; then the MSK message
  pushed over UDP is checked by :func:`~mbmsec.mbms.messages.check_msk_message` and the per-MUK
  COUNTER rule (:func:`~mbmsec.mbms.mgvf.check_msk_counter`), and the verification message is
  sent back when the V bit is set.
- **tls-proxy**: the same digest-authenticated request over TLS 1.3 to the proxy
  (:mod:`.tls_proxy`); the certificate is checked against the pinned self-signed one with the
  host name; ``rspauth`` verified; the MSK read from the JSON body.

HTTP is a minimal HTTP/1.1 client over asyncio streams, and TLS is an ``ssl.SSLObject`` over
memory BIOs, so the bytes on the socket are counted exactly: TCP payload bytes both ways
(HTTP messages, or TLS records including the handshake, session tickets and close_notify) and
the number of TLS records. TCP/IP headers, SYN/FIN/ACK segments and UDP/IP headers are not
counted; UDP bytes are datagram payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Final

import aiohttp

from ..bmsc.http_xml import CT_MSK, KEYMGMT_PATH, build_msk_request, parse_msk_response
from ..errors import AuthError, DecodeError, MbmsecError, ReplayError
from ..gba.client import BootstrapClient, GbaUicc
from ..gba.digest import (
    DigestChallenge,
    build_authorization,
    make_cnonce,
    naf_password,
    parse_authentication_info,
    parse_www_authenticate,
    respond,
    verify_rspauth,
)
from ..gba.kdf import UA_MBMS, naf_id
from ..httpmsg import HttpRequest, HttpResponse
from ..mbms.compact import KeyErrorReply, build_key_request, check_key_response
from ..mbms.keys import GbaMode, KeyRef, MskRef, MukId, derive_mbms_user_keys
from ..mbms.messages import MskKey, build_msk_verification, check_msk_message
from ..mbms.mgvf import check_msk_counter
from ..mikey.prf import Prf
from ..net.gba_client import bootstrap
from .bmsc_servers import BSF_DOMAIN, FQDN, OPC, SERVICE_ID, ServerAddresses, impi_of, subscriber_k
from .tls_proxy import CERT_HOSTNAME, client_context, parse_key_body

__all__ = [
    "BenchUe",
    "ClientEnv",
    "Conn",
    "Delivery",
    "DeliveryError",
    "UdpPort",
    "bootstrap_ue",
    "deliver_3gpp",
    "deliver_compact",
    "deliver_tls",
    "http_exchange",
]

MAX_HEAD: Final = 16384
MAX_BODY: Final = 65536
_CHUNK: Final = 65536
_TLS_HEADER: Final = 5
MSK_REQUEST_TARGET: Final = KEYMGMT_PATH + "?requesttype=msk-request"


class DeliveryError(MbmsecError):
    """A delivery ended without a verified MSK (error answer, unexpected status)."""


# --- byte-counting TCP / TLS connection ----------------------------------------------------------


class _Records:
    """Counts TLS records in one direction of a byte stream (RFC 8446 §5.1: 5-byte header)."""

    def __init__(self) -> None:
        self._left = 0
        self._head = bytearray()

    def feed(self, data: bytes) -> int:
        n, i, end = 0, 0, len(data)
        while i < end:
            if self._left:
                take = min(self._left, end - i)
                self._left -= take
                i += take
                continue
            part = data[i : i + _TLS_HEADER - len(self._head)]
            self._head += part
            i += len(part)
            if len(self._head) == _TLS_HEADER:
                self._left = int.from_bytes(self._head[3:5], "big")
                self._head.clear()
                n += 1
        return n


class Conn:
    """A client TCP connection, optionally TLS (SSLObject on memory BIOs), counting the bytes
    (and TLS records) that cross the socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._tls: ssl.SSLObject | None = None
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._buf = bytearray()
        self._rec_out = _Records()
        self._rec_in = _Records()
        self.bytes_out = 0
        self.bytes_in = 0
        self.records = 0

    def __repr__(self) -> str:
        return f"Conn(tls={self._tls is not None}, out={self.bytes_out}, in={self.bytes_in})"

    @classmethod
    async def open(cls, addr: tuple[str, int], tls: ssl.SSLContext | None = None) -> Conn:
        """Connect to ``addr``; with ``tls`` run the TLS handshake (certificate and host name
        checked). Raises OSError / ssl.SSLError."""
        reader, writer = await asyncio.open_connection(*addr)
        c = cls(reader, writer)
        if tls is not None:
            c._tls = tls.wrap_bio(c._in, c._out, server_hostname=CERT_HOSTNAME)
            try:
                await c._handshake()
            except BaseException:
                c.abort()
                raise
        return c

    @property
    def total_bytes(self) -> int:
        return self.bytes_out + self.bytes_in

    async def _handshake(self) -> None:
        assert self._tls is not None
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush_tls()
                await self._recv_raw()
                continue
            self._flush_tls()
            return

    def _send_raw(self, data: bytes) -> None:
        self._writer.write(data)
        self.bytes_out += len(data)
        if self._tls is not None:
            self.records += self._rec_out.feed(data)

    def _flush_tls(self) -> None:
        data = self._out.read()
        if data:
            self._send_raw(data)

    async def _recv_raw(self) -> None:
        data = await self._reader.read(_CHUNK)
        if not data:
            raise ConnectionResetError("connection closed by the server")
        self.bytes_in += len(data)
        if self._tls is None:
            self._buf += data
        else:
            self.records += self._rec_in.feed(data)
            self._in.write(data)

    async def write(self, data: bytes) -> None:
        """Send application bytes."""
        if self._tls is None:
            self._send_raw(data)
        else:
            self._tls.write(data)
            self._flush_tls()
        await self._writer.drain()

    async def _fill(self) -> None:
        if self._tls is None:
            await self._recv_raw()
            return
        while True:
            try:
                chunk = self._tls.read(_CHUNK)
            except ssl.SSLWantReadError:
                self._flush_tls()
                await self._recv_raw()
                continue
            except ssl.SSLZeroReturnError:
                raise ConnectionResetError("TLS closed by the server") from None
            if not chunk:
                raise ConnectionResetError("TLS closed by the server")
            self._buf += chunk
            return

    async def read_response(self) -> HttpResponse:
        """Read one HTTP/1.1 response (Content-Length framed). Raises DecodeError, OSError."""
        # RFC 9112 §4 status line, §5 header fields, §6.2-6.3 Content-Length framing
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if len(self._buf) > MAX_HEAD:
                raise DecodeError("HTTP response head too long")
            await self._fill()
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or parts[0] != "HTTP/1.1" or not parts[1].isdigit():
            raise DecodeError("bad HTTP status line")
        headers = tuple((k.strip(), v.strip()) for k, _, v in (x.partition(":") for x in lines[1:]))
        resp = HttpResponse(int(parts[1]), headers)
        length = resp.header("Content-Length")
        if resp.header("Transfer-Encoding") is not None or length is None:
            raise DecodeError("HTTP response without Content-Length")
        if not length.isdigit() or int(length) > MAX_BODY:
            raise DecodeError("bad HTTP Content-Length")
        n = int(length)
        while len(self._buf) < n:
            await self._fill()
        body = bytes(self._buf[:n])
        del self._buf[:n]
        return HttpResponse(resp.status, headers, body)

    def abort(self) -> None:
        """Close the socket at once (after a failure; nothing awaited)."""
        self._writer.close()

    async def close(self) -> None:
        """Send TLS close_notify (when TLS) and close the socket."""
        if self._tls is not None:
            with contextlib.suppress(ssl.SSLError):
                self._tls.unwrap()  # queues close_notify; raises WantRead for the peer's
            self._flush_tls()
        self._writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self._writer.wait_closed()


async def http_exchange(conn: Conn, req: HttpRequest, host: str) -> HttpResponse:
    """Send ``req`` as HTTP/1.1 on ``conn`` (keep-alive) and read the answer."""
    # RFC 9112 §3 request line, §3.2 Host, §6.2 Content-Length
    head = [f"{req.method} {req.target} HTTP/1.1", f"Host: {host}"]
    head += [f"{k}: {v}" for k, v in req.headers]
    head.append(f"Content-Length: {len(req.body)}")
    await conn.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + req.body)
    return await conn.read_response()


# --- UDP ----------------------------------------------------------------------------------------


class UdpPort(asyncio.DatagramProtocol):
    """A UE's MIKEY UDP socket: datagrams are queued for :meth:`receive`."""

    def __init__(self) -> None:
        self._queue: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.strays = 0

    @classmethod
    async def open(cls) -> UdpPort:
        """Bind 127.0.0.1 on any free port."""
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(cls, local_addr=("127.0.0.1", 0))
        proto.transport = transport
        proto.port = int(transport.get_extra_info("sockname")[1])
        return proto

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._queue.append(data)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)

    def clear(self) -> None:
        """Drop datagrams left over (answers to requests that timed out, MTK fan-out)."""
        self.strays += len(self._queue)
        self._queue.clear()

    async def receive(self) -> bytes:
        while not self._queue:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# --- UEs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClientEnv:
    """What every UE needs to reach the servers."""

    servers: ServerAddresses
    tls: ssl.SSLContext = field(repr=False)

    @classmethod
    def of(cls, servers: ServerAddresses) -> ClientEnv:
        return cls(servers, client_context(servers.cert_pem))

    @property
    def bmsc_http(self) -> tuple[str, int]:
        host, _, port = self.servers.bmsc_url.removeprefix("http://").rpartition(":")
        return host, int(port)


@dataclass
class _Nonce:
    challenge: DigestChallenge
    nc: int = 0


@dataclass(eq=False)
class BenchUe:
    """A bootstrapped UE: B-TID, MRK / MUK (as precomputed PRF states), its MSK's name, the
    last per-MUK COUNTER, and (keep-alive runs) cached digest nonces and open connections."""

    index: int
    btid: str
    mrk: Prf = field(repr=False)
    muk: Prf = field(repr=False)
    password: bytes = field(repr=False)
    muk_id: MukId
    msk_ref: MskRef | None = None
    last_counter: int | None = None
    nonces: dict[str, _Nonce] = field(default_factory=dict, repr=False)
    conns: dict[str, Conn] = field(default_factory=dict, repr=False)

    async def close(self) -> None:
        for c in self.conns.values():
            await c.close()
        self.conns.clear()


async def bootstrap_ue(i: int, env: ClientEnv, session: aiohttp.ClientSession) -> BenchUe:
    """Bootstrap UE ``i`` at the BSF (Ub, real GBA client) and derive its MRK and MUK."""
    c = BootstrapClient(impi_of(i), GbaUicc(subscriber_k(i), OPC), realm=BSF_DOMAIN, rng=os.urandom)
    result = await bootstrap(c, env.servers.bsf_url, session=session)
    ks_naf = c.naf_key(naf_id(FQDN, UA_MBMS), time.time())
    keys = derive_mbms_user_keys(GbaMode.GBA_ME, ks_naf=ks_naf)
    return BenchUe(
        i,
        result.btid,
        Prf(keys.mrk),
        Prf(keys.muk),
        naf_password(keys.mrk),
        MukId.of(FQDN, result.btid),
    )


@dataclass(frozen=True)
class Delivery:
    """One verified delivery: the MSK, when it was in hand, and what crossed the sockets."""

    msk: MskKey = field(repr=False)
    done: float  # time.perf_counter() when the MSK was verified and decrypted
    udp_datagrams: int
    udp_bytes: int
    tcp_bytes: int = 0
    tls_records: int = 0
    connections: int = 0
    http_exchanges: int = 0


async def deliver_compact(ue: BenchUe, port: UdpPort, env: ClientEnv) -> Delivery:
    """Compact profile: one key request datagram, one verified key response."""
    port.clear()
    data, pending = build_key_request(
        btid=ue.btid,
        key_ref=KeyRef(service_id=SERVICE_ID),
        mrk=ue.mrk,
        now=time.time(),
        rng=os.urandom,
    )
    port.send(data, env.servers.bmsc_udp)
    while True:
        reply = await port.receive()
        try:
            res = check_key_response(reply, pending, muk=ue.muk, mrk=ue.mrk, muk_id=ue.muk_id)
        except (DecodeError, AuthError):
            port.strays += 1  # not the answer to this request: drop silently
            continue
        break
    if isinstance(res, KeyErrorReply):
        raise DeliveryError(f"MIKEY Error causes {list(res.causes)}")
    done = time.perf_counter()
    ue.msk_ref = res.msks[0].ref
    return Delivery(res.msks[0], done, 2, len(data) + len(reply))


async def _connection(
    ue: BenchUe, name: str, addr: tuple[str, int], tls: ssl.SSLContext | None, keepalive: bool
) -> tuple[Conn, int]:
    if keepalive and name in ue.conns:
        return ue.conns[name], 0
    conn = await Conn.open(addr, tls)
    if keepalive:
        ue.conns[name] = conn
    return conn, 1


async def _digest_post(
    ue: BenchUe, conn: Conn, server: str, host: str, body: bytes, cached: bool
) -> tuple[HttpResponse, int]:
    """The MSK request with digest: a plain request for a challenge unless a cached nonce is
    used (nc counting), one retry on a fresh 401 challenge, rspauth verified."""
    state = ue.nonces.get(server) if cached else None
    exchanges = 0
    ctype = (("Content-Type", CT_MSK),)
    for _ in range(3):
        if state is None:
            resp = await http_exchange(
                conn, HttpRequest("POST", MSK_REQUEST_TARGET, ctype, body), host
            )
            exchanges += 1
            if resp.status != 401:
                raise DeliveryError(f"expected a 401 challenge, got {resp.status}")
            state = _Nonce(parse_www_authenticate(resp.header("WWW-Authenticate") or ""))
        state.nc += 1
        creds = respond(
            state.challenge,
            username=ue.btid,
            password=ue.password,
            method="POST",
            uri=MSK_REQUEST_TARGET,
            cnonce=make_cnonce(os.urandom),
            nc=state.nc,
            entity_body=body,
        )
        headers = (*ctype, ("Authorization", build_authorization(creds)))
        resp = await http_exchange(
            conn, HttpRequest("POST", MSK_REQUEST_TARGET, headers, body), host
        )
        exchanges += 1
        if resp.status == 401:  # stale or unknown nonce: answer the fresh challenge once
            state = _Nonce(parse_www_authenticate(resp.header("WWW-Authenticate") or ""))
            continue
        if resp.status != 200:
            raise DeliveryError(f"key request answered {resp.status}")
        info = parse_authentication_info(resp.header("Authentication-Info") or "")
        verify_rspauth(info, creds, password=ue.password, entity_body=resp.body)
        if cached:
            ue.nonces[server] = state
        return resp, exchanges
    raise DeliveryError("digest authentication refused")


async def deliver_3gpp(ue: BenchUe, port: UdpPort, env: ClientEnv, *, keepalive: bool) -> Delivery:
    """3GPP profile: HTTP MSK request with digest, MSK push over UDP, verification message."""
    if ue.msk_ref is None:
        raise DeliveryError("UE does not know its MSK ID yet")
    port.clear()
    addr = env.bmsc_http
    conn, opened = await _connection(ue, "bmsc", addr, None, keepalive)
    before = 0 if opened else conn.total_bytes
    try:
        body = build_msk_request([ue.msk_ref], mikey_port=port.port)
        resp, exchanges = await _digest_post(
            ue, conn, "bmsc", f"{addr[0]}:{addr[1]}", body, keepalive
        )
        statuses = parse_msk_response(resp.body)
        if [s.status for s in statuses] != [200]:
            raise DeliveryError(f"MSK request item status {[s.status for s in statuses]}")
        while True:
            push = await port.receive()
            try:
                msg = check_msk_message(push, ue.muk, expected_muk_id=ue.muk_id)
                counter = check_msk_counter(msg.timestamp, ue.last_counter)
            except (DecodeError, AuthError, ReplayError):
                port.strays += 1
                continue
            break
        done = time.perf_counter()
        ue.last_counter = counter
        udp = [push]
        if msg.v:
            ver = build_msk_verification(msg, ue.muk, ue.muk_id)
            port.send(ver, env.servers.bmsc_udp)
            udp.append(ver)
    except BaseException:
        ue.conns.pop("bmsc", None)
        conn.abort()
        raise
    if not keepalive:
        await conn.close()
    return Delivery(
        msg.msks[0],
        done,
        len(udp),
        sum(map(len, udp)),
        conn.total_bytes - before,
        0,
        opened,
        exchanges,
    )


async def deliver_tls(ue: BenchUe, port: UdpPort, env: ClientEnv, *, keepalive: bool) -> Delivery:
    """TLS-proxy baseline: the digest-authenticated MSK request over TLS 1.3 to the proxy; the
    MSK comes back in the body."""
    if ue.msk_ref is None:
        raise DeliveryError("UE does not know its MSK ID yet")
    addr = env.servers.proxy
    conn, opened = await _connection(ue, "proxy", addr, env.tls, keepalive)
    before = (0, 0) if opened else (conn.total_bytes, conn.records)
    try:
        body = build_msk_request([ue.msk_ref])
        resp, exchanges = await _digest_post(
            ue, conn, "proxy", f"{CERT_HOSTNAME}:{addr[1]}", body, keepalive
        )
        items = parse_key_body(resp.body)
        if len(items) != 1 or items[0][1] != 200 or items[0][2] is None:
            raise DeliveryError(f"key server item status {[i[1] for i in items]}")
        msk = items[0][2]
        if msk.ref != ue.msk_ref:
            raise DeliveryError("key server answered another MSK")
        done = time.perf_counter()
    except BaseException:
        ue.conns.pop("proxy", None)
        conn.abort()
        raise
    if not keepalive:
        await conn.close()
    return Delivery(
        msk,
        done,
        0,
        0,
        conn.total_bytes - before[0],
        conn.records - before[1],
        opened,
        exchanges,
    )
