"""asyncio driver of the UE key client: UDP socket, multicast groups, HTTP to BSF and BM-SC.

:class:`UeRunner` adapts a sans-I/O :class:`~mbmsec.ue.client.UeKeyClient`:

- one UDP socket (the UE's MIKEY port) sends compact requests and verification messages and
  receives answers, MSK pushes, and MTK messages when the BM-SC fans them out by unicast;
- one socket per service group joined on the multicast interface (loopback by default) receives
  MTK messages; when the join fails the runner says so once and relies on the BM-SC's unicast
  fan-out (:mod:`.multicast`);
- HTTP requests the client produces go to the BSF (Ub) or the BM-SC (key management) through
  one aiohttp session; each ends in ``handle_http_response`` with the answer, or None on any
  transport failure or timeout;
- a single ``loop.call_at`` timer is re-armed from ``get_timer()`` after every input;
- events go to ``on_event`` (the CLI prints them as JSON lines) and the log.

Optionally an SRTP receiver (:mod:`mbmsec.srtp`) is fed from the installed MTKs and an SRTP
socket; an MKI naming an unknown MSK is reported to the client (missed key update).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable

import aiohttp

from ..errors import MbmsecError, UnknownMkiError
from ..httpmsg import HttpRequest, HttpResponse
from ..srtp import SrtpKey, SrtpReceiver
from ..ue import events as ev
from ..ue.client import UeKeyClient
from .gba_client import send
from .multicast import open_group_socket

__all__ = ["UeRunner"]

log = logging.getLogger("mbmsec.net.ue")

Addr = tuple[str, int]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, on_data: Callable[[bytes, Addr], None]) -> None:
        self.on_data = on_data

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_data(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error", extra={"error": type(exc).__name__})


def bind_udp(host: str, port: int) -> socket.socket:
    """A UDP socket bound to ``(host, port)`` (port 0: any), to hand to :class:`UeRunner`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    return sock


class UeRunner:
    """Run a :class:`UeKeyClient` on real sockets (see the module docstring)."""

    def __init__(
        self,
        client: UeKeyClient,
        *,
        bsf_url: str,
        bmsc_url: str | None = None,
        http_timeout: float = 5.0,
        on_event: Callable[[ev.UeEvent], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.urls = {"bsf": bsf_url, "bmsc": bmsc_url or ""}
        self.http_timeout = http_timeout
        self.on_event = on_event
        self._clock = clock
        self._transport: asyncio.DatagramTransport | None = None
        self._group_transports: list[asyncio.DatagramTransport] = []
        self._session: aiohttp.ClientSession | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.srtp: SrtpReceiver | None = None
        self.joined: list[Addr] = []
        self.local_address: Addr | None = None
        # Optional capture hook: (data, source, destination) of every datagram sent.
        self.tap: Callable[[bytes, Addr, Addr], None] | None = None
        # False simulates a UE out of coverage: datagrams in and out are dropped and HTTP
        # requests fail as transport failures (the demo's "unreachable UE").
        self.reachable = True

    def __repr__(self) -> str:
        return f"UeRunner({self.client!r}, local={self.local_address})"

    async def start(
        self, sock: socket.socket, groups: list[Addr], interface: str = "127.0.0.1"
    ) -> None:
        """Start on the bound UDP ``sock`` and join ``groups`` on ``interface``."""
        loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self._on_datagram), sock=sock
        )
        self._transport = transport
        host, port = sock.getsockname()[:2]
        self.local_address = (str(host), int(port))
        failed = []
        for g in groups:
            try:
                gs = open_group_socket(g[0], g[1], interface)
            except OSError as exc:
                failed.append(f"{g[0]}:{g[1]} ({type(exc).__name__})")
                continue
            t, _ = await loop.create_datagram_endpoint(lambda: _Udp(self._on_datagram), sock=gs)
            self._group_transports.append(t)
            self.joined.append(g)
        if failed:
            log.warning(
                "multicast join failed: relying on the BM-SC's unicast fan-out",
                extra={"groups": " ".join(failed)},
            )
        self._after()

    async def close(self) -> None:
        """Stop the timer, the HTTP tasks and the sockets."""
        if self._timer is not None:
            self._timer.cancel()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for tr in [*self._group_transports, self._transport]:
            if tr is not None:
                tr.close()
        if self._session is not None:
            await self._session.close()

    # --- inputs --------------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: Addr) -> None:
        if not self.reachable:
            return
        self.client.receive_datagram(data, addr, self._clock())
        self._after()

    def feed_srtp(self, packet: bytes) -> bytes | None:
        """Unprotect one SRTP packet with the MTK its MKI names; return the RTP packet, or None
        when it cannot be (an unknown MSK is reported to the client as a missed key)."""
        if self.srtp is None:
            self.srtp = SrtpReceiver()
            for key in self._newest_srtp_keys():
                self.srtp.add_key(key)
        try:
            return self.srtp.unprotect(packet).rtp
        except UnknownMkiError as exc:
            self.client.note_srtp_mki(exc.msk_id, exc.mtk_id, self._clock())
            self._after()
            return None
        except MbmsecError:
            return None

    async def _http(self, request_id: int, server: str, request: HttpRequest) -> None:
        response: HttpResponse | None = None
        url = self.urls.get(server, "")
        if url and self._session is not None and self.reachable:
            try:
                response = await send(self._session, url, request, self.http_timeout)
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.info("http failed", extra={"server": server, "error": type(exc).__name__})
        self.client.handle_http_response(request_id, response, self._clock())
        self._after()

    def _on_timer(self) -> None:
        self._timer = None
        self.client.handle_timer(self._clock())
        self._after()

    # --- outputs -------------------------------------------------------------------------------

    def _after(self) -> None:
        now = self._clock()
        if self._transport is not None:
            for data, addr in self.client.datagrams_to_send(now):
                if not self.reachable:
                    continue
                self._transport.sendto(data, addr)
                if self.tap is not None and self.local_address is not None:
                    self.tap(data, self.local_address, addr)
        loop = asyncio.get_running_loop()
        for request_id, server, request in self.client.http_requests_to_send(now):
            task = loop.create_task(self._http(request_id, server, request))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        while (e := self.client.next_event()) is not None:
            if isinstance(e, ev.MtkInstalled):
                self._install_srtp(e)
            if self.on_event is not None:
                self.on_event(e)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.client.get_timer()
        if deadline is not None:
            delay = max(0.0, deadline - now)
            self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _install_srtp(self, e: ev.MtkInstalled) -> None:
        if self.srtp is None:
            return
        held = set(self.srtp.mkis)
        for key in self._newest_srtp_keys():
            if key.mki not in held:
                self.srtp.add_key(key)

    def _newest_srtp_keys(self) -> list[SrtpKey]:
        """The newest keys the receiver has room for, oldest first, so that adding them in
        order never evicts a newer key for an older one (the key store keeps every MTK of an
        MSK: 144 a day with 10-minute MTKs)."""
        assert self.srtp is not None
        return self.client.srtp_keys()[-self.srtp.max_keys :]
