"""Application-layer capture of the demo's exchange, written as a pcap file (``--pcap FILE``).

The net drivers call a tap for every UDP datagram they send (MIKEY key requests and responses,
MSK pushes and verification messages, MTK messages, SRTP) and for every HTTP exchange they serve
(Ub on the BSF, Zn, the BM-SC's 3GPP HTTP interface). :class:`Capture` keeps those events with
their timestamps and :meth:`Capture.pcap_bytes` turns them into Ethernet/IPv4/UDP frames and
complete TCP connections (handshake, data, FIN) with :mod:`mbmsec.pcap`, one TCP connection
per HTTP client/server address pair, so ``tshark -r FILE`` reassembles the HTTP messages.

HTTP messages are re-serialised from the request/response dataclasses the servers saw
(:class:`mbmsec.httpmsg.HttpRequest` / :class:`~mbmsec.httpmsg.HttpResponse`) as HTTP/1.1 with a
``Content-Length``; header order and values are kept.
"""

from __future__ import annotations

import http
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..httpmsg import HttpRequest, HttpResponse
from ..pcap import Address, PcapWriter, TcpStream

__all__ = [
    "Capture",
    "CaptureStats",
    "http_tap_middleware",
    "serialize_request",
    "serialize_response",
]

HTTP_RTT = 0.00002  # synthetic per-segment ACK delay inside one TCP exchange (seconds)


def _headers(
    headers: tuple[tuple[str, str], ...], body: bytes, extra: tuple[tuple[str, str], ...]
) -> bytes:
    names = {k.lower() for k, _ in headers}
    out = [f"{k}: {v}\r\n" for k, v in headers if k.lower() != "content-length"]
    out += [f"{k}: {v}\r\n" for k, v in extra if k.lower() not in names]
    out.append(f"Content-Length: {len(body)}\r\n")
    return "".join(out).encode("latin-1")


def serialize_request(req: HttpRequest, host: str) -> bytes:
    """Return ``req`` as HTTP/1.1 bytes (RFC 9112 §3), adding Host and Content-Length."""
    head = f"{req.method} {req.target} HTTP/1.1\r\n".encode("latin-1")
    return head + _headers(req.headers, req.body, (("Host", host),)) + b"\r\n" + req.body


def serialize_response(resp: HttpResponse) -> bytes:
    """Return ``resp`` as HTTP/1.1 bytes (RFC 9112 §4) with a Content-Length."""
    try:
        reason = http.HTTPStatus(resp.status).phrase
    except ValueError:
        reason = "Unknown"
    head = f"HTTP/1.1 {resp.status} {reason}\r\n".encode("latin-1")
    return head + _headers(resp.headers, resp.body, ()) + b"\r\n" + resp.body


@dataclass
class CaptureStats:
    """Counts of what was captured."""

    datagrams: int = 0
    http_exchanges: int = 0
    octets: int = 0


@dataclass(order=True)
class _Event:
    ts: float
    seq: int
    kind: str = field(compare=False)
    src: Address = field(compare=False)
    dst: Address = field(compare=False)
    data: bytes = field(compare=False, repr=False)
    reply: bytes = field(default=b"", compare=False, repr=False)
    reply_ts: float = field(default=0.0, compare=False)


class Capture:
    """Collects datagrams and HTTP exchanges; renders them as one pcap file."""

    def __init__(self) -> None:
        self._events: list[_Event] = []
        self.stats = CaptureStats()

    def udp(self, src: Address, dst: Address, payload: bytes, ts: float) -> None:
        """Record one UDP datagram sent from ``src`` to ``dst`` at ``ts`` (Unix seconds)."""
        self._events.append(_Event(ts, len(self._events), "udp", src, dst, bytes(payload)))
        self.stats.datagrams += 1
        self.stats.octets += len(payload)

    def http(
        self,
        client: Address,
        server: Address,
        request: bytes,
        response: bytes,
        ts: float,
        reply_ts: float | None = None,
    ) -> None:
        """Record one HTTP exchange (raw HTTP/1.1 bytes) started at ``ts``."""
        ev = _Event(ts, len(self._events), "http", client, server, request, response)
        ev.reply_ts = ts if reply_ts is None else max(ts, reply_ts)
        self._events.append(ev)
        self.stats.http_exchanges += 1
        self.stats.octets += len(request) + len(response)

    def http_messages(
        self,
        client: Address,
        server: Address,
        request: HttpRequest,
        response: HttpResponse,
        ts: float,
        reply_ts: float | None = None,
    ) -> None:
        """Record one HTTP exchange from its dataclasses (serialised as HTTP/1.1)."""
        host = f"{server[0]}:{server[1]}"
        self.http(
            client,
            server,
            serialize_request(request, host),
            serialize_response(response),
            ts,
            reply_ts,
        )

    def __len__(self) -> int:
        return len(self._events)

    def exchanges(self) -> list[tuple[Address, Address, bytes, bytes]]:
        """Every recorded HTTP exchange as (client, server, request, response), in order."""
        return [(e.src, e.dst, e.data, e.reply) for e in self._events if e.kind == "http"]

    def pcap_bytes(self) -> bytes:
        """The capture file: events in time order; each HTTP client/server pair one TCP stream.

        A TCP stream opens (three-way handshake) before its first exchange and closes after the
        whole capture, so several exchanges on one keep-alive connection read as such.
        """
        writer = PcapWriter(nanosecond=True)
        streams: dict[tuple[Address, Address], TcpStream] = {}
        last_ts = 0.0
        for n, ev in enumerate(sorted(self._events)):
            if ev.kind == "udp":
                writer.add_udp(ev.src, ev.dst, ev.data, ev.ts)
                last_ts = max(last_ts, ev.ts)
                continue
            key = (ev.src, ev.dst)
            stream = streams.get(key)
            t = ev.ts
            if stream is None:
                isn = 1000 + 7919 * n
                stream = TcpStream(writer, ev.src, ev.dst, client_isn=isn, server_isn=isn + 500)
                streams[key] = stream
                t = stream.open(t, HTTP_RTT)
            t = stream.send(True, ev.data, t, HTTP_RTT)
            t = stream.send(False, ev.reply, max(t, ev.reply_ts), HTTP_RTT)
            last_ts = max(last_ts, t)
        for stream in streams.values():
            last_ts = stream.close(last_ts, HTTP_RTT)
        return writer.getvalue()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _addr(info: Any) -> Address | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


def http_tap_middleware(
    sink: Callable[[Address, Address, bytes, bytes, float, float], None],
    clock: Callable[[], float] = time.time,
) -> Any:
    """An aiohttp middleware that reports every exchange it serves to ``sink``.

    ``sink(client, server, request_bytes, response_bytes, started, answered)`` gets the
    HTTP/1.1 form of the request and of the response the handler returned. Append it to an
    ``aiohttp.web.Application``'s ``middlewares`` before the server starts; it changes nothing
    in the exchange itself.
    """

    @web.middleware
    async def tap(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = clock()
        body = await request.read()
        response = await handler(request)
        transport = request.transport
        client = _addr(transport.get_extra_info("peername")) if transport else None
        server = _addr(transport.get_extra_info("sockname")) if transport else None
        if client is not None and server is not None and isinstance(response, web.Response):
            req = HttpRequest(
                request.method, request.raw_path, tuple(request.headers.items()), body
            )
            headers = tuple(response.headers.items())
            raw_body = response.body if isinstance(response.body, bytes) else b""
            resp = HttpResponse(response.status, headers, raw_body)
            host = request.host or f"{server[0]}:{server[1]}"
            sink(
                client,
                server,
                serialize_request(req, host),
                serialize_response(resp),
                started,
                clock(),
            )
        return response

    return tap
