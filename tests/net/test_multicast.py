"""Loopback multicast join/send and the unicast fan-out table (net/multicast.py)."""

from __future__ import annotations

import select
import socket

import pytest

from mbmsec.errors import ConfigError
from mbmsec.net.multicast import (
    GroupMembers,
    check_group,
    choose_mode,
    configure_sender,
    open_group_socket,
    probe_loopback_multicast,
)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_group() -> None:
    assert check_group("239.1.2.3") == "239.1.2.3"
    with pytest.raises(ConfigError):
        check_group("127.0.0.1")
    with pytest.raises(ConfigError):
        check_group("not-an-address")


def test_group_members_fan_out() -> None:
    g = ("239.1.2.3", 5000)
    table = GroupMembers(multicast=False)
    assert table.destinations(g) == []
    table.add(g, ("127.0.0.1", 4002))
    table.add(g, ("127.0.0.1", 4001))
    table.add(("239.1.2.4", 5000), ("127.0.0.1", 4001))
    assert table.destinations(g) == [("127.0.0.1", 4001), ("127.0.0.1", 4002)]
    table.remove(("127.0.0.1", 4001))
    assert table.members(g) == frozenset({("127.0.0.1", 4002)})
    assert table.destinations(("239.1.2.4", 5000)) == []
    assert GroupMembers(multicast=True).destinations(g) == [g]


def test_forced_unicast_mode() -> None:
    assert choose_mode(force_unicast=True) is False


def test_two_members_receive_and_other_group_does_not() -> None:
    if not probe_loopback_multicast():
        pytest.skip("kernel refuses loopback multicast here")
    port = _free_udp_port()
    a = open_group_socket("239.7.7.1", port)
    b = open_group_socket("239.7.7.1", port)
    other = open_group_socket("239.7.7.2", port)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        configure_sender(sender)
        sender.sendto(b"mtk", ("239.7.7.1", port))
        for sock in (a, b):
            ready, _, _ = select.select([sock], [], [], 2.0)
            assert ready, "member did not receive the group datagram"
            assert sock.recvfrom(16)[0] == b"mtk"
        ready, _, _ = select.select([other], [], [], 0.2)
        assert not ready
    finally:
        for s in (a, b, other, sender):
            s.close()


def test_group_member_leases_expire_and_registered_are_replaced() -> None:
    g = ("239.1.2.3", 5000)
    table = GroupMembers(multicast=False, max_members=2)
    table.add(g, ("127.0.0.1", 4001), until=10.0)
    table.add(g, ("127.0.0.1", 4001), until=5.0)  # a renewal never shortens a lease
    table.add(g, ("127.0.0.1", 4002), until=20.0)
    table.add(g, ("127.0.0.1", 4003), until=20.0)  # over max_members: not added
    assert table.destinations(g, now=9.0) == [("127.0.0.1", 4001), ("127.0.0.1", 4002)]
    assert table.destinations(g, now=10.0) == [("127.0.0.1", 4002)]
    table.set_registered(g, [("127.0.0.1", 5001)])
    assert table.destinations(g, now=10.0) == [("127.0.0.1", 4002), ("127.0.0.1", 5001)]
    table.set_registered(g, [])
    table.expire(25.0)
    assert table.members(g) == frozenset()
