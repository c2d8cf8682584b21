"""Any datagram either is processed or dropped silently: ``receive_datagram`` never raises,
and garbage never makes the UE send anything (no oracle, no reflection)."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.sim.world import World, build_world

T0 = 1_700_000_000.0
BMSC = ("10.255.0.1", 2269)


@cache
def world_and_samples() -> tuple[World, tuple[bytes, ...]]:
    world = build_world(2, profile="mixed", seed=99)
    seen: list[bytes] = []
    world.sim.add_tap(lambda src, dst, data, ts: seen.append(data))
    world.run_until(T0 + 30)
    return world, tuple(dict.fromkeys(seen))  # distinct, in order


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_are_dropped(data: bytes) -> None:
    world, _ = world_and_samples()
    for ue in world.ues:
        ue.receive_datagram(data, BMSC, world.sim.now)
        assert ue.datagrams_to_send(world.sim.now) == []


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_real_messages_never_raise(data: st.DataObject) -> None:
    world, samples = world_and_samples()
    msg = bytearray(data.draw(st.sampled_from(samples)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(msg) - 1))
        msg[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(msg)))
    mutated = bytes(msg[:cut])
    for ue in world.ues:
        before = [m.ref for m in ue.keys.store.msks()]
        ue.receive_datagram(mutated, BMSC, world.sim.now)
        out = ue.datagrams_to_send(world.sim.now)
        # only a genuine MSK push may be answered (verification); a mutated one never is
        assert out == [] or mutated in samples
        assert [m.ref for m in ue.keys.store.msks()][: len(before)] == before or mutated in samples
