"""The demo's media: an RTP stream protected with the current MTK, and one receiver per UE.

:class:`MediaSource` plays the content provider behind the BM-SC: every ``interval`` it takes
the service's current MTK from the BM-SC's key scheduler, protects one RTP packet with it
(:class:`mbmsec.srtp.SrtpSender`, MKI = MSK ID || MTK ID) and sends it to the media multicast
group, or one copy to each UE's media socket when multicast is unavailable. The payload starts
with the packet's 8-byte send index, so a receiver can say exactly which packets it decrypted.

:class:`MediaSink` is one UE's media socket: every packet goes to the UE runner's SRTP receiver
(:meth:`mbmsec.net.ue_runner.UeRunner.feed_srtp`, which reports an MKI naming an unknown MSK to
the key client as a missed key update).

Before sending, the source asks a ``held`` callback which UEs hold the key of the packet (their
SRTP receiver has its MKI) and can be reached: only those packets count as expected for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable

from ..bmsc.core import BmscCore
from ..mbms.keys import MskRef
from ..net.multicast import configure_sender, open_group_socket
from ..srtp import Mki, SrtpKey, SrtpSender, build_rtp
from .report import UeCounters

__all__ = ["PAYLOAD_LENGTH", "MediaSink", "MediaSource", "packet_index"]

Addr = tuple[str, int]
PAYLOAD_LENGTH = 160  # one 20 ms G.711 frame
INDEX_LENGTH = 8


def packet_index(rtp: bytes) -> int | None:
    """The send index carried at the start of an RTP payload (None if too short)."""
    if len(rtp) < 12 + INDEX_LENGTH:
        return None
    return int.from_bytes(rtp[12 : 12 + INDEX_LENGTH], "big")


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, on_data: Callable[[bytes], None]) -> None:
        self.on_data = on_data

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.on_data(data)


class MediaSink:
    """One UE's media socket: SRTP packets in, counters out."""

    def __init__(
        self,
        counters: UeCounters,
        feed: Callable[[bytes], bytes | None],
        has_key: Callable[[Mki], bool],
        peek_mki: Callable[[bytes], Mki],
        reachable: Callable[[], bool],
    ) -> None:
        self.counters = counters
        self._feed = feed
        self._has_key = has_key
        self._peek = peek_mki
        self._reachable = reachable
        self.address: Addr | None = None
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, multicast_group: Addr | None, interface: str = "127.0.0.1") -> None:
        """Join ``multicast_group`` (or bind a unicast loopback port when None)."""
        if multicast_group is not None:
            sock = open_group_socket(multicast_group[0], multicast_group[1], interface)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((interface, 0))
            sock.setblocking(False)
        host, port = sock.getsockname()[:2]
        self.address = (str(host), int(port))
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Proto(self.on_packet), sock=sock
        )
        self._transport = transport

    def on_packet(self, data: bytes) -> None:
        """Count and decrypt one SRTP packet (dropped while the UE is unreachable)."""
        if not self._reachable():
            return
        c = self.counters
        c.received += 1
        try:
            known = self._has_key(self._peek(data))
        except Exception:  # a malformed packet: counted as a failure below
            known = True
        if not known:
            c.unknown_mki += 1
        rtp = self._feed(data)
        if rtp is None:
            if known:
                c.auth_failures += 1
            return
        index = packet_index(rtp)
        if index is not None:
            c.decrypted.add(index)

    def close(self) -> None:
        """Close the socket."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class MediaSource:
    """Sends the SRTP stream keyed from the BM-SC's current MTK (see the module docstring)."""

    def __init__(
        self,
        core: BmscCore,
        service_id: str,
        *,
        group: Addr,
        multicast: bool,
        interval: float,
        ssrc: int,
        destinations: Callable[[], list[Addr]],
        held: Callable[[Mki, int], None],
        on_key: Callable[[SrtpKey], None] | None = None,
        tap: Callable[[bytes, Addr, Addr], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self.service_id = service_id
        self.group = group
        self.multicast = multicast
        self.interval = interval
        self.sender = SrtpSender(ssrc)
        self._destinations = destinations
        self._held = held
        self._on_key = on_key
        self._tap = tap
        self._clock = clock
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.octets = 0
        self.mki: Mki | None = None
        self.key_changes = 0
        self.address: Addr | None = None

    def _current_key(self, now: float) -> SrtpKey | None:
        sched = self.core.scheduler
        svc = sched.service(self.service_id)
        if svc is None:
            return None
        mtk = sched.current_mtk(svc, now)
        if mtk is None:
            return None
        return SrtpKey(_mki(mtk.msk, mtk.mtk_id), mtk.key, mtk.salt)

    def start(self) -> None:
        """Open the sending socket and start the packet loop."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        if self.multicast:
            configure_sender(sock)
        sock.setblocking(False)
        host, port = sock.getsockname()[:2]
        self.address = (str(host), int(port))
        self._sock = sock
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the loop and close the socket."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            self.send_one()
            next_at += self.interval
            delay = next_at - loop.time()
            if delay < -self.interval:  # fell behind (loaded machine): do not burst
                next_at = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))

    def send_one(self) -> None:
        """Protect and send the next packet (nothing before the service has an MTK)."""
        now = self._clock()
        key = self._current_key(now)
        if key is None or self._sock is None or self.address is None:
            return
        if key.mki != self.mki:
            self.sender.set_key(key)
            self.mki = key.mki
            self.key_changes += 1
            if self._on_key is not None:
                self._on_key(key)
        index = self.sent
        payload = index.to_bytes(INDEX_LENGTH, "big") + bytes(PAYLOAD_LENGTH - INDEX_LENGTH)
        rtp = build_rtp(self.sender.ssrc, index & 0xFFFF, (index * 160) & 0xFFFFFFFF, payload)
        packet = self.sender.protect(rtp)
        self._held(key.mki, index)
        dests = [self.group] if self.multicast else self._destinations()
        for d in dests:
            try:
                self._sock.sendto(packet, d)
            except OSError:
                continue
            if self._tap is not None:
                self._tap(packet, self.address, d)
        self.sent += 1
        self.octets += len(packet)


def _mki(ref: MskRef, mtk_id: int) -> Mki:
    return Mki(ref.msk_id.value, mtk_id)
