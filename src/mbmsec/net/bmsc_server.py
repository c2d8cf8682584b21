"""asyncio driver of the BM-SC: UDP on the MIKEY port, aiohttp key management, MTK multicast.

:class:`BmscServer` adapts a sans-I/O :class:`~mbmsec.bmsc.core.BmscCore`:

- **UDP**: one socket on the MIKEY port; every datagram goes to ``core.receive_datagram`` with
  the wall clock, then everything in ``core.datagrams_to_send`` is sent. Datagrams addressed to
  a service's group go out as multicast on ``multicast_interface`` (loopback by default) or, when
  multicast is off or unavailable (:func:`~.multicast.choose_mode`), as one unicast copy to each
  known member (the addresses UEs sent datagrams from, and the MIKEY addresses of registrations).
- **Timer**: a single ``loop.call_at`` re-armed from ``core.get_timer()`` after every input.
- **Zn**: the core looks NAF keys up in a :class:`~mbmsec.bmsc.zn.ZnAnswerCache`; B-TIDs it
  misses are fetched with :class:`~.gba_client.ZnClient` in tasks, then ``core.on_zn_ready``
  runs the datagrams parked for them. HTTP requests prefetch their B-TID before the core sees
  them, so a first request is answered in one go.
- **HTTP**: ``POST /keymanagement`` goes to ``core.handle_http``; ``GET /metrics`` shows the
  core's counters in the Prometheus text format (labelled ``worker="k"`` under
  ``--workers``, plus ``mbmsec_bmsc_leader``).
- **Workers** (:mod:`.workers`): with ``reuse_port`` the UDP socket and the HTTP listeners set
  ``SO_REUSEPORT``, so N processes share one port; the kernel spreads datagrams and
  connections over them by 4-tuple hash. With ``share_members`` (unicast fan-out among
  workers) each worker writes the fan-out leases it grants to the store in batches (at most
  one write per ``MEMBER_FLUSH`` seconds, never per datagram) and the leader reads them back
  on its timer, so a UE answered by any worker gets the leader's MTK messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable

import aiohttp
import redis
from aiohttp import web

from ..bmsc.core import BmscCore, DeliveryConfirmed
from ..bmsc.http_handler import btid_of_request
from ..bmsc.zn import ZnAnswerCache, ZnPendingError
from ..errors import BsfUnreachableError, BtidUnknownError, DecodeError, MbmsecError
from ..gba.kdf import UA_MBMS, naf_id
from ..gba.zn import ZnLookupError
from ..httpmsg import HttpRequest
from ..mbms.messages import peek_key_ref
from ..mikey.constants import DataType
from .gba_client import ZnClient
from .multicast import GroupMembers, configure_sender

__all__ = ["BmscServer"]

log = logging.getLogger("mbmsec.net.bmsc")

Addr = tuple[str, int]
MAX_BODY = 16384
MAX_MEMBERS = 100_000
MEMBER_FLUSH = 1.0
STORE_ERRORS = (OSError, sqlite3.Error, redis.RedisError, MbmsecError)


def _addr_key(addr: Addr) -> str:
    return f"{addr[0]}:{addr[1]}"


def _parse_addr(text: str) -> Addr | None:
    host, _, port = text.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: BmscServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.server.on_datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error", extra={"error": type(exc).__name__})


class BmscServer:
    """Run a :class:`BmscCore` on real sockets (see the module docstring)."""

    def __init__(
        self,
        core: BmscCore,
        zn_cache: ZnAnswerCache,
        zn_client: ZnClient,
        *,
        multicast: bool = True,
        multicast_interface: str = "127.0.0.1",
        multicast_ttl: int = 1,
        gba_u_aware: bool = True,
        clock: Callable[[], float] = time.time,
        worker: str | None = None,
        share_members: bool = False,
    ) -> None:
        self.core = core
        self.naf_id = naf_id(core.config.fqdn, UA_MBMS)
        self.gba_u_aware = gba_u_aware
        self.zn_cache = zn_cache
        self.zn_client = zn_client
        self.members = GroupMembers(multicast=multicast, max_members=MAX_MEMBERS)
        self.multicast_interface = multicast_interface
        self.multicast_ttl = multicast_ttl
        self._clock = clock
        self.worker = worker  # metrics label and log field under --workers
        self.share_members = share_members and not multicast
        self._member_buf: dict[str, dict[str, float]] = {}
        self._member_flush: asyncio.TimerHandle | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetching: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.udp_address: Addr | None = None
        self.urls: list[str] = []
        # Optional capture hook: called with (data, source, destination) for every datagram
        # sent (the demo's --pcap); None costs nothing.
        self.tap: Callable[[bytes, Addr, Addr], None] | None = None
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_route("*", "/{tail:.*}", self._http)

    def __repr__(self) -> str:
        return f"BmscServer(udp={self.udp_address}, multicast={self.members.multicast})"

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self, udp: Addr, http: tuple[Addr, ...], *, reuse_port: bool = False) -> None:
        """Bind the MIKEY UDP socket and the HTTP listeners (port 0: any free port); with
        ``reuse_port`` (workers) they join the ports' SO_REUSEPORT groups."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(udp)
        except OSError:
            sock.close()
            raise
        if self.members.multicast:
            configure_sender(sock, self.multicast_interface, self.multicast_ttl)
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), sock=sock)
        self._transport = transport
        host, port = sock.getsockname()[:2]
        self.udp_address = (str(host), int(port))
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        for h, p in http:
            site = web.TCPSite(
                self._runner, h, p, reuse_address=True, reuse_port=reuse_port or None
            )
            await site.start()
        for addr in self._runner.addresses:
            self.urls.append(f"http://{addr[0]}:{addr[1]}")
        self._after()

    async def close(self) -> None:
        """Stop the timer, the Zn tasks and the listeners (fan-out leases still buffered are
        written first)."""
        if self._timer is not None:
            self._timer.cancel()
        self._flush_members()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._transport is not None:
            self._transport.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.zn_client.close()

    # --- core I/O ------------------------------------------------------------------------------

    def on_datagram(self, data: bytes, addr: Addr) -> None:
        """One datagram from the MIKEY socket.

        The source does not join any fan-out group here: only an authenticated key answer sent
        to it does (see :meth:`_lease_member`).
        """
        self.core.receive_datagram(data, addr, self._clock())
        self._after()

    def _groups(self) -> set[Addr]:
        return {(s.group_host, s.group_port) for s in self.core.scheduler.services()}

    def _refresh_members(self) -> None:
        """Fan-out mode: the registered UEs of each service are its members (3GPP profile);
        with ``share_members`` the leader adds the leases other workers granted."""
        if self.members.multicast:
            return
        now = self._clock()
        self.members.expire(now)
        if self.share_members and self.core.leader:
            try:
                for g in self._groups():
                    for text, until in self.core.store.group_members(_addr_key(g), now).items():
                        if (m := _parse_addr(text)) is not None:
                            self.members.add(g, m, until)
            except STORE_ERRORS as exc:
                log.warning("fan-out members unreadable", extra={"error": type(exc).__name__})
        for s in self.core.scheduler.services():
            regs = self.core.store.registrations_for_service(s.service_id)
            self.members.set_registered(
                (s.group_host, s.group_port),
                [(r.push_host, r.push_port) for r in regs if r.push_host],
            )

    def _lease_member(self, data: bytes, addr: Addr) -> None:
        """Fan-out mode: an MSK message (data type 0) sent to ``addr`` makes ``addr`` a member
        of the group of the service whose MSK it carries, for one MSK period plus its lead.

        Only key answers to authenticated requests (compact) and pushes to registered UEs
        (3GPP) carry an MSK, so no unauthenticated source is ever added.
        """
        if len(data) < 2 or data[1] != DataType.PSK_INIT:
            return
        try:
            _, ref = peek_key_ref(data)
        except DecodeError:
            return
        now = self._clock()
        for s in self.core.scheduler.services():
            if ref.key_domain_id != s.key_domain_id:
                continue
            if any(m.key_group == s.key_group for m in ref.msk_ids):
                until = now + s.msk_lifetime + s.msk_lead_s
                self.members.add((s.group_host, s.group_port), addr, until)
                if self.share_members:
                    group = _addr_key((s.group_host, s.group_port))
                    self._member_buf.setdefault(group, {})[_addr_key(addr)] = until
                    if self._member_flush is None:
                        loop = asyncio.get_running_loop()
                        self._member_flush = loop.call_later(MEMBER_FLUSH, self._flush_members)

    def _flush_members(self) -> None:
        """Write the buffered fan-out leases to the store (one call per group)."""
        if self._member_flush is not None:
            self._member_flush.cancel()
            self._member_flush = None
        buf, self._member_buf = self._member_buf, {}
        try:
            for group, members in buf.items():
                self.core.store.add_group_members(group, members)
        except STORE_ERRORS as exc:
            log.warning("fan-out members not shared", extra={"error": type(exc).__name__})

    def _flush(self) -> None:
        out = self.core.datagrams_to_send(self._clock())
        if not out or self._transport is None:
            return
        groups = self._groups()
        now = self._clock()
        for data, addr in out:
            if addr in groups:
                dests = self.members.destinations(addr, now)
            else:
                dests = [addr]
                if not self.members.multicast:
                    self._lease_member(data, addr)
            for d in dests:
                self._transport.sendto(data, d)
                if self.tap is not None and self.udp_address is not None:
                    self.tap(data, self.udp_address, d)

    def _events(self) -> None:
        while (e := self.core.next_event()) is not None:
            name = (
                "msk delivery confirmed"
                if isinstance(e, DeliveryConfirmed)
                else "msk push abandoned"
            )
            log.info(name, extra={"btid": e.btid, "impi": e.impi, "msk_id": str(e.msk.ref)})

    def _after(self) -> None:
        """After any input: send, fetch wanted Zn answers, log events, re-arm the timer."""
        self._flush()
        self._fetch_wanted()
        self._events()
        self._arm()

    def _fetch_wanted(self, skip: str | None = None) -> None:
        """Start a Zn lookup task for each B-TID the cache wants (except ``skip``)."""
        for btid in self.zn_cache.take_wanted():
            if btid != skip and btid not in self._fetching:
                self._fetching.add(btid)
                task = asyncio.get_running_loop().create_task(self._fetch(btid, notify=True))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.core.get_timer()
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - self._clock())
        self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        was_leader = self.core.leader
        try:
            self.core.handle_timer(self._clock())
        except STORE_ERRORS as exc:
            # a store outage must not stop the timer for good: try again in a second
            log.error("bmsc timer failed", extra={"error": type(exc).__name__, "detail": str(exc)})
            self._flush()
            self._timer = asyncio.get_running_loop().call_later(1.0, self._on_timer)
            return
        if self.core.leader != was_leader:
            log.info(
                "leader acquired" if self.core.leader else "leader lost",
                extra={"worker": self.worker or "", "pid": os.getpid()},
            )
        self._refresh_members()
        self._after()

    # --- Zn ------------------------------------------------------------------------------------

    async def _fetch(self, btid: str, *, notify: bool) -> None:
        try:
            answer = await self.zn_client.lookup(btid, self.naf_id, gba_u_aware=self.gba_u_aware)
        except ZnLookupError as exc:
            err: BtidUnknownError | BsfUnreachableError
            if exc.btid_invalid:
                err = BtidUnknownError(f"B-TID unknown or expired ({exc.error})")
            else:
                err = BsfUnreachableError(f"Zn lookup failed: {exc.status} {exc.error}")
            self.zn_cache.fail(btid, err, self._clock())
        except (aiohttp.ClientError, TimeoutError, OSError, MbmsecError) as exc:
            log.warning("zn lookup failed", extra={"btid": btid, "error": type(exc).__name__})
            self.zn_cache.fail(btid, BsfUnreachableError("BSF unreachable"), self._clock())
        else:
            self.zn_cache.put(btid, answer)
        finally:
            self._fetching.discard(btid)
        if notify:
            self.core.on_zn_ready(btid, self._clock())
            self._after()

    # --- HTTP ----------------------------------------------------------------------------------

    async def _http(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request body too large\n")
        req = HttpRequest(
            method=request.method,
            target=request.raw_path,
            headers=tuple(request.headers.items()),
            body=body,
            peer=request.remote or "",
        )
        btid = btid_of_request(req)
        if btid is not None:
            try:
                self.zn_cache.lookup(btid, self._clock())
            except ZnPendingError:
                self._fetch_wanted(skip=btid)  # others wanted meanwhile: fetch them too
                await self._fetch(btid, notify=False)
            except MbmsecError:
                pass  # a remembered failure: the core answers with it
        resp = self.core.handle_http(req, self._clock())
        self._refresh_members()
        self._after()
        out = web.Response(status=resp.status, body=resp.body)
        for k, v in resp.headers:
            out.headers.add(k, v)
        return out

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        label = "" if self.worker is None else f'{{worker="{self.worker}"}}'
        lines = [f"mbmsec_bmsc_leader{label} {int(self.core.leader)}"]
        for name, value in sorted(self.core.stats.items()):
            metric = "mbmsec_bmsc_" + "".join(c if c.isalnum() else "_" for c in name)
            lines.append(f"{metric}_total{label} {value}")
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")
