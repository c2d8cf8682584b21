"""IPv4 multicast for MTK delivery on one host: join on loopback, or fall back to unicast fan-out.

The BM-SC sends MTK messages (and SRTP) to a service's multicast group (TS 33.246 §6.3.3.2;
ARCHITECTURE §2 flow 5). On a single host the group lives on the loopback interface: senders set
``IP_MULTICAST_IF`` = 127.0.0.1 with loopback delivery on, receivers join with
``IP_ADD_MEMBERSHIP`` on 127.0.0.1. Some kernels and containers refuse this (no multicast route,
``lo`` without MULTICAST, sandboxed sockets). :func:`probe_loopback_multicast` sends one datagram
to a scratch group and waits for it; when that fails, callers switch to unicast fan-out (the
BM-SC sends a copy to each member's unicast address) and say so in one log line.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import select
import socket
from collections.abc import Iterable

from ..errors import ConfigError

LOG = logging.getLogger("mbmsec.net.multicast")

LOOPBACK = "127.0.0.1"
PROBE_GROUP = "239.255.77.77"


def check_group(group: str) -> str:
    """Return ``group`` if it is an IPv4 multicast address; raise ConfigError otherwise."""
    try:
        addr = ipaddress.IPv4Address(group)
    except ValueError:
        raise ConfigError(f"not an IPv4 address: {group!r}") from None
    if not addr.is_multicast:
        raise ConfigError(f"not a multicast group: {group}")
    return group


def configure_sender(sock: socket.socket, interface: str = LOOPBACK, ttl: int = 1) -> None:
    """Make ``sock`` send multicast out of ``interface`` with loopback delivery on."""
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(interface))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)


def open_group_socket(group: str, port: int, interface: str = LOOPBACK) -> socket.socket:
    """Return a non-blocking UDP socket bound to ``port`` that has joined ``group``.

    Several receivers on one host may bind the same group port (SO_REUSEADDR/SO_REUSEPORT).
    Raises OSError when the kernel refuses the join.
    """
    check_group(group)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        # Binding the group address keeps datagrams of other groups on the same port out.
        sock.bind((group, port))
        mreq = socket.inet_aton(group) + socket.inet_aton(interface)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def probe_loopback_multicast(
    group: str = PROBE_GROUP, interface: str = LOOPBACK, timeout: float = 0.5
) -> bool:
    """Return True when a datagram sent to ``group`` on ``interface`` comes back to a member."""
    recv: socket.socket | None = None
    send: socket.socket | None = None
    try:
        recv = open_group_socket(group, 0, interface)
        port = recv.getsockname()[1]
        send = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        configure_sender(send, interface, ttl=0)
        token = b"mbmsec-multicast-probe"
        send.sendto(token, (group, port))
        ready, _, _ = select.select([recv], [], [], timeout)
        if not ready:
            return False
        data, _ = recv.recvfrom(64)
        return data == token
    except OSError:
        return False
    finally:
        for s in (recv, send):
            if s is not None:
                s.close()


class GroupMembers:
    """Unicast fan-out table: for each group address, the UE addresses that want its datagrams.

    In multicast mode :meth:`destinations` returns the group itself; in fan-out mode it returns
    the members' unicast addresses (each UE's MIKEY port). Members come from two sources:
    *registered* ones (3GPP registrations, replaced wholesale by :meth:`set_registered`) and
    *leased* ones (:meth:`add` with ``until``: an address the BM-SC sent an authenticated key
    answer to, kept until the lease ends). An address never becomes a member just by sending a
    datagram, so a spoofed source cannot point an MTK stream at a victim.
    """

    def __init__(self, *, multicast: bool, max_members: int = 100_000) -> None:
        self.multicast = multicast
        self.max_members = max_members
        self._registered: dict[tuple[str, int], frozenset[tuple[str, int]]] = {}
        self._leased: dict[tuple[str, int], dict[tuple[str, int], float]] = {}

    def add(
        self, group: tuple[str, int], member: tuple[str, int], until: float = float("inf")
    ) -> None:
        """Lease ``member`` a place in ``group`` until ``until`` (default: until removed).

        A renewed lease keeps the later end. Past ``max_members`` leases per group, new
        members are not added.
        """
        leases = self._leased.setdefault(group, {})
        if member not in leases and len(leases) >= self.max_members:
            return
        leases[member] = max(until, leases.get(member, until))

    def set_registered(self, group: tuple[str, int], members: Iterable[tuple[str, int]]) -> None:
        """Replace the registration-derived members of ``group``."""
        self._registered[group] = frozenset(members)

    def remove(self, member: tuple[str, int]) -> None:
        """Remove ``member``'s leases from every group."""
        for leases in self._leased.values():
            leases.pop(member, None)

    def expire(self, now: float) -> None:
        """Drop every lease that ended at or before ``now``."""
        for leases in self._leased.values():
            for m in [m for m, until in leases.items() if until <= now]:
                del leases[m]

    def members(
        self, group: tuple[str, int], now: float | None = None
    ) -> frozenset[tuple[str, int]]:
        """The unicast members of ``group`` (leases still running at ``now``, if given)."""
        leased = self._leased.get(group, {})
        live = {m for m, until in leased.items() if now is None or until > now}
        return frozenset(live | self._registered.get(group, frozenset()))

    def destinations(
        self, group: tuple[str, int], now: float | None = None
    ) -> list[tuple[str, int]]:
        """Where a datagram for ``group`` goes: the group, or each member (sorted)."""
        if self.multicast:
            return [group]
        return sorted(self.members(group, now))


def choose_mode(force_unicast: bool = False) -> bool:
    """Return True for multicast, False for unicast fan-out; log one line on fallback."""
    if force_unicast:
        LOG.info("multicast disabled by configuration: unicast fan-out to each UE")
        return False
    if probe_loopback_multicast():
        return True
    LOG.warning("loopback multicast unavailable on this host: falling back to unicast fan-out")
    return False


def close_all(socks: Iterable[socket.socket]) -> None:
    """Close every socket, ignoring errors."""
    for s in socks:
        with contextlib.suppress(OSError):
            s.close()
