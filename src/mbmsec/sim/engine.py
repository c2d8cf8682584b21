"""Discrete-event network simulator for sans-I/O endpoints: virtual clock, seeded lossy links.

Theory of operation
-------------------
Every node is a sans-I/O object following the datagram-endpoint contract of ARCHITECTURE §4
(``receive_datagram(data, addr, now)``, ``datagrams_to_send(now)``, ``get_timer()``,
``handle_timer(now)``); a node may also be an HTTP client (``http_requests_to_send(now)`` and
``handle_http_response(request_id, response, now)``) whose requests go to named HTTP servers
(``handle(request, now) -> response`` callables). The very objects the asyncio drivers run are
run here, on a virtual clock, so thousands of UEs and hours of key rotation take seconds and a
run is reproducible byte for byte from its seed.

The event queue holds datagram deliveries, HTTP responses and node timers. Timers are kept in a
lazy heap: after each interaction with a node its ``get_timer()`` is pushed; a popped entry that
no longer matches the node's timer is stale and skipped. Each node address has a link profile
(loss, delay, jitter) applied to datagrams it sends (uplink) and receives (downlink); HTTP
exchanges cross the same links as TCP would (a lost segment costs a retransmission timeout; the
exchange fails when the total passes ``http_timeout``, or at once when the server is down, after
``http_timeout``). A simplification: the server handler runs at send time, so its effects
(an MSK push) start one network delay early. A node can
be taken down (unreachable: everything to and from it is lost) and brought back. Multicast groups
are addresses with member lists; a datagram to a group is copied to each member through that
member's downlink.

All randomness (loss, delay jitter, and the per-node ``rng`` handed to the nodes) comes from
SHA-256 streams derived from the seed and a name, so adding a node does not disturb the others.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from ..errors import ConfigError
from ..httpmsg import HttpRequest, HttpResponse

Address = tuple[str, int]
Rng = Callable[[int], bytes]


@runtime_checkable
class DatagramNode(Protocol):
    """The datagram-endpoint contract (ARCHITECTURE §4)."""

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None: ...

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]: ...

    def get_timer(self) -> float | None: ...

    def handle_timer(self, now: float) -> None: ...


@runtime_checkable
class HttpClientNode(Protocol):
    """A node that also issues HTTP requests to named servers."""

    def http_requests_to_send(self, now: float) -> list[tuple[int, str, HttpRequest]]: ...

    def handle_http_response(
        self, request_id: int, response: HttpResponse | None, now: float
    ) -> None: ...


HttpHandler = Callable[[HttpRequest, float], HttpResponse]


class SeededRng:
    """Deterministic byte stream: SHA-256(seed || name || block counter)."""

    __slots__ = ("_buf", "_counter", "_prefix")

    def __init__(self, seed: int, name: str) -> None:
        self._prefix = seed.to_bytes(16, "big", signed=True) + name.encode("utf-8") + b"\x00"
        self._counter = 0
        self._buf = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buf) < n:
            block = hashlib.sha256(self._prefix + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
            self._buf += block
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def random(self) -> float:
        """A float in [0, 1) from 53 bits."""
        return (int.from_bytes(self(8), "big") >> 11) / float(1 << 53)


@dataclass(frozen=True)
class LinkProfile:
    """Loss probability and one-way delay (seconds, plus uniform jitter) of a node's link."""

    loss: float = 0.0
    delay: float = 0.002
    jitter: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss <= 1.0:
            raise ConfigError("loss must be a probability")
        if self.delay < 0 or self.jitter < 0:
            raise ConfigError("delay and jitter must not be negative")


@dataclass
class LinkStats:
    """Counters of one simulation run."""

    sent: int = 0
    delivered: int = 0
    lost: int = 0
    undeliverable: int = 0
    http_requests: int = 0
    http_failed: int = 0


@dataclass
class _Node:
    addr: Address
    obj: DatagramNode
    uplink: LinkProfile
    downlink: LinkProfile
    up: bool = True
    timer: float | None = None


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    kind: str = field(compare=False)
    target: Address = field(compare=False)
    timer: float | None = field(compare=False, default=None)
    data: bytes = field(compare=False, default=b"", repr=False)
    src: Address = field(compare=False, default=("", 0))
    dst: Address = field(compare=False, default=("", 0))
    request_id: int = field(compare=False, default=0)
    response: HttpResponse | None = field(compare=False, default=None, repr=False)


Tap = Callable[[Address, Address, bytes, float], None]


class Simulator:
    """Virtual-time network of sans-I/O nodes. See the module docstring."""

    def __init__(
        self, seed: int = 1, start: float = 1_700_000_000.0, http_timeout: float = 5.0
    ) -> None:
        self.seed = seed
        self.now = start
        self.http_timeout = http_timeout
        self.stats = LinkStats()
        self._nodes: dict[Address, _Node] = {}
        self._groups: dict[Address, list[Address]] = {}
        self._http: dict[str, tuple[HttpHandler, LinkProfile, bool]] = {}
        self._http_nodes: dict[str, Address] = {}
        self._queue: list[_Event] = []
        self._seq = itertools.count()
        self._net_rng = SeededRng(seed, "network")
        self._taps: list[Tap] = []

    # --- set-up ------------------------------------------------------------------------------
    def rng(self, name: str) -> SeededRng:
        """A deterministic random stream for the component called ``name``."""
        return SeededRng(self.seed, name)

    def add_node(
        self,
        addr: Address,
        obj: DatagramNode,
        uplink: LinkProfile | None = None,
        downlink: LinkProfile | None = None,
    ) -> None:
        """Attach ``obj`` at ``addr`` with the given link profiles (lossless by default)."""
        if addr in self._nodes:
            raise ConfigError(f"address in use: {addr}")
        self._nodes[addr] = _Node(addr, obj, uplink or LinkProfile(), downlink or LinkProfile())
        self._poll(self._nodes[addr])

    def replace_node(self, addr: Address, obj: DatagramNode) -> None:
        """Put ``obj`` at ``addr`` in place of the node there (a restarted process); links,
        group memberships and reachability stay."""
        node = self._nodes[addr]
        node.obj = obj
        node.timer = None
        self._poll(node)

    def add_http_server(
        self,
        name: str,
        handler: HttpHandler,
        link: LinkProfile | None = None,
        node: Address | None = None,
    ) -> None:
        """Register an HTTP server ``name`` answering with ``handler(request, now)``. With
        ``node``, the datagram node at that address is polled after each request (its handler
        may queue datagrams, e.g. the BM-SC's MSK pushes)."""
        self._http[name] = (handler, link or LinkProfile(), True)
        if node is not None:
            self._http_nodes[name] = node

    def set_http_server_up(self, name: str, up: bool) -> None:
        """Make HTTP server ``name`` reachable or not (requests fail after ``http_timeout``)."""
        handler, link, _ = self._http[name]
        self._http[name] = (handler, link, up)

    def join(self, group: Address, member: Address) -> None:
        """Add the node at ``member`` to multicast ``group``."""
        members = self._groups.setdefault(group, [])
        if member not in members:
            members.append(member)

    def set_up(self, addr: Address, up: bool) -> None:
        """Take the node at ``addr`` off the network (``up=False``) or bring it back."""
        self._nodes[addr].up = up

    def set_links(
        self, addr: Address, uplink: LinkProfile | None = None, downlink: LinkProfile | None = None
    ) -> None:
        """Change the link profiles of the node at ``addr``."""
        node = self._nodes[addr]
        if uplink is not None:
            node.uplink = uplink
        if downlink is not None:
            node.downlink = downlink

    def add_tap(self, tap: Tap) -> None:
        """Call ``tap(src, dst, data, ts)`` for every datagram delivered to a node."""
        self._taps.append(tap)

    # --- internals ---------------------------------------------------------------------------
    def _push(self, at: float, kind: str, target: Address, **fields: object) -> None:
        heapq.heappush(self._queue, _Event(at, next(self._seq), kind, target, **fields))  # type: ignore[arg-type]

    def _delay(self, link: LinkProfile) -> float:
        return link.delay + (link.jitter * self._net_rng.random() if link.jitter else 0.0)

    def _lost(self, link: LinkProfile) -> bool:
        return link.loss > 0 and self._net_rng.random() < link.loss

    def _route(self, src: _Node, data: bytes, dst: Address) -> None:
        self.stats.sent += 1
        if not src.up or self._lost(src.uplink):
            self.stats.lost += 1
            return
        t = self.now + self._delay(src.uplink)
        targets = self._groups.get(dst, [dst])
        for target in targets:
            node = self._nodes.get(target)
            if node is None:
                self.stats.undeliverable += 1
                continue
            if self._lost(node.downlink):
                self.stats.lost += 1
                continue
            self._push(
                t + self._delay(node.downlink), "dgram", target, data=data, src=src.addr, dst=dst
            )

    def _poll(self, node: _Node) -> None:
        for data, dst in node.obj.datagrams_to_send(self.now):
            self._route(node, data, dst)
        if isinstance(node.obj, HttpClientNode):
            for request_id, server, request in node.obj.http_requests_to_send(self.now):
                self._http_request(node, request_id, server, request)
        timer = node.obj.get_timer()
        if timer is not None and timer != node.timer:
            node.timer = timer
            self._push(max(timer, self.now), "timer", node.addr, timer=timer)
        elif timer is None:
            node.timer = None

    def _tcp_delay(self, links: tuple[LinkProfile, ...]) -> float:
        """One-way delay of an HTTP message over TCP: each loss costs a retransmission timeout
        (1 s, doubling, RFC 6298), so loss shows up as latency, not as failure."""
        total = 0.0
        for link in links:
            rto = 1.0
            while self._lost(link):
                total += rto
                rto *= 2
            total += self._delay(link)
        return total

    def _http_request(self, node: _Node, request_id: int, server: str, req: HttpRequest) -> None:
        self.stats.http_requests += 1
        entry = self._http.get(server)
        if entry is not None and entry[2] and node.up:
            handler, link, _ = entry
            up = self._tcp_delay((node.uplink, link))
            down = self._tcp_delay((link, node.downlink))
            if up + down < self.http_timeout:
                response = handler(replace(req, peer=node.addr[0]), self.now)
                server_node = self._nodes.get(self._http_nodes.get(server, ("", -1)))
                if server_node is not None:
                    self._poll(server_node)
                self._push(
                    self.now + up + down,
                    "http",
                    node.addr,
                    request_id=request_id,
                    response=response,
                )
                return
        self.stats.http_failed += 1
        self._push(self.now + self.http_timeout, "http", node.addr, request_id=request_id)

    def _dispatch(self, ev: _Event) -> None:
        node = self._nodes.get(ev.target)
        if node is None:
            return
        if ev.kind == "timer":
            if node.timer != ev.timer:
                return  # stale
            node.timer = None
            node.obj.handle_timer(self.now)
        elif ev.kind == "dgram":
            if not node.up:
                self.stats.lost += 1
                return
            self.stats.delivered += 1
            for tap in self._taps:
                tap(ev.src, ev.dst, ev.data, self.now)
            node.obj.receive_datagram(ev.data, ev.src, self.now)
        elif ev.kind == "http":
            response = ev.response if node.up else None
            assert isinstance(node.obj, HttpClientNode)
            node.obj.handle_http_response(ev.request_id, response, self.now)
        self._poll(node)

    # --- running -----------------------------------------------------------------------------
    def poll_all(self) -> None:
        """Collect output and timers of every node (after changing a node from outside)."""
        for node in list(self._nodes.values()):
            self._poll(node)

    def run_until(self, t: float) -> None:
        """Process every event up to and including virtual time ``t``; leave ``now = t``."""
        self.poll_all()
        while self._queue and self._queue[0].at <= t:
            ev = heapq.heappop(self._queue)
            self.now = max(self.now, ev.at)
            self._dispatch(ev)
        self.now = max(self.now, t)

    def run_for(self, seconds: float) -> None:
        """Advance virtual time by ``seconds``."""
        self.run_until(self.now + seconds)
