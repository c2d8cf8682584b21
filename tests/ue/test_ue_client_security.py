"""The UE drops replayed and forged MIKEY messages silently (no answer, no key change).

Real BSF, BM-SC and UE key clients on virtual time (sim/world.py); the attacker re-injects
captured datagrams or builds messages with the right keys and a wrong MAC.
"""

from __future__ import annotations

import pytest

from mbmsec.mbms.keys import MskId, MskRef
from mbmsec.mbms.messages import MskKey, MtkKey, build_msk_message, build_mtk_message
from mbmsec.mikey.codec import decode_message
from mbmsec.mikey.constants import DataType, TsType
from mbmsec.mikey.payloads import IdPayload, Timestamp
from mbmsec.sim.engine import Address
from mbmsec.sim.world import KD, World, build_world
from mbmsec.ue import events as ev
from mbmsec.ue.client import UeKeyClient

T0 = 1_700_000_000.0
MSK1 = MskRef(KD, MskId(1, 1))
RAND = bytes(range(16))


def captured_world() -> tuple[World, list[tuple[Address, bytes]]]:
    world = build_world(2, profile="mixed", seed=31)  # UE 0 compact, UE 1 3gpp
    log: list[tuple[Address, bytes]] = []
    world.sim.add_tap(lambda src, dst, data, ts: log.append((dst, data)))
    world.run_until(T0 + 50)
    return world, log


def snapshot(ue: UeKeyClient) -> tuple[object, ...]:
    msks = tuple((m.ref, m.last_counter, m.current_mtk_id) for m in ue.keys.store.msks())
    muk = ue.keys.store.get_muk(ue.idi)
    return msks, None if muk is None else muk.last_counter


def inject(world: World, i: int, data: bytes, src: Address) -> tuple[list[ev.UeEvent], list[bytes]]:
    """Deliver ``data`` to UE ``i``; return its new events and the datagrams it sends."""
    ue = world.ues[i]
    ue.receive_datagram(data, src, world.sim.now)
    out = [d for d, _ in ue.datagrams_to_send(world.sim.now)]
    return [e for j, e in world.collect_events() if j == i], out


def mtk_messages(log: list[tuple[Address, bytes]]) -> list[bytes]:
    out = []
    for _, data in log:
        msg = decode_message(data)
        if msg.header.data_type == DataType.PSK_INIT and msg.find(IdPayload) is None:
            out.append(data)
    return out


def msk_pushes(log: list[tuple[Address, bytes]], dst: Address) -> list[bytes]:
    out = []
    for d, data in log:
        msg = decode_message(data)
        t = msg.find(Timestamp)
        if d == dst and msg.find(IdPayload) is not None and t and t.ts_type == TsType.COUNTER:
            out.append(data)
    return out


def flip_mac(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x01])


def test_replayed_mtk_messages_change_nothing() -> None:
    world, log = captured_world()
    bmsc = ("10.255.0.1", 2269)
    for i in (0, 1):
        ue = world.ues[i]
        before = snapshot(ue)
        for old in mtk_messages(log)[:5]:
            _, out = inject(world, i, old, bmsc)
            assert out == []
        assert snapshot(ue) == before
        assert ue.stats["drop.mtk.stale"] >= 5


def test_mtk_with_old_counter_or_forged_mac_is_dropped_then_genuine_accepted() -> None:
    world, _ = captured_world()
    core, ue = world.core, world.ues[0]
    svc = world.services[0]
    msk = core.scheduler.current_msk(svc, world.sim.now)
    assert msk is not None
    state = ue.keys.mgvf_state(msk.ref)
    assert state is not None and state.current_mtk_id is not None
    new_id = state.current_mtk_id + 1
    mtk = MtkKey(msk.ref, new_id, bytes(range(16)), bytes(range(14)))
    src = ("10.255.0.1", 2269)
    # a counter the UE accepted before: a replay-shaped message for a new MTK ID
    old = build_mtk_message(mtk, msk.key, 1, csb_id=7, rand=RAND)
    events, out = inject(world, 0, old, src)
    assert out == [] and ue.srtp_key(msk.ref, new_id) is None
    assert any(isinstance(e, ev.MessageDropped) for e in events)
    fresh = (state.last_counter or 0) + 1_000_000
    good = build_mtk_message(mtk, msk.key, fresh, csb_id=8, rand=RAND)
    events, out = inject(world, 0, flip_mac(good), src)
    assert out == [] and ue.srtp_key(msk.ref, new_id) is None
    dropped = [e for e in events if isinstance(e, ev.MessageDropped)]
    assert dropped and "AuthError" in dropped[0].reason
    events, out = inject(world, 0, good, src)
    assert any(isinstance(e, ev.MtkInstalled) for e in events)
    key = ue.srtp_key(msk.ref, new_id)
    assert key is not None and key.master_key == bytes(range(16))


def test_replayed_msk_push_gets_no_verification_and_changes_nothing() -> None:
    world, log = captured_world()
    ue_addr = ("10.1.0.2", 2269)
    pushes = msk_pushes(log, ue_addr)
    assert pushes, "the 3GPP UE received no MSK push"
    ue = world.ues[1]
    before = snapshot(ue)
    for p in pushes:
        events, out = inject(world, 1, p, ("10.255.0.1", 2269))
        assert out == [], "a replayed push must not be verified again"
        assert any(isinstance(e, ev.MessageDropped) and "replay" in e.reason for e in events)
    assert snapshot(ue) == before


@pytest.mark.parametrize("forge", [True, False])
def test_msk_push_with_forged_mac_is_dropped_silently(forge: bool) -> None:
    world, _ = captured_world()
    ue = world.ues[1]
    rec = ue.keys.store.get_muk(ue.idi)
    assert rec is not None
    msk3 = MskRef(KD, MskId(1, 3))
    data = build_msk_message(
        [MskKey(msk3, bytes(16), 1, 6)],
        rec.muk,
        ue._muk_id(rec.btid),
        Timestamp(TsType.COUNTER, (rec.last_counter or 0) + 1),
        csb_id=99,
        rand=RAND,
        v=True,
    )
    events, out = inject(world, 1, flip_mac(data) if forge else data, ("10.255.0.1", 2269))
    if forge:
        assert out == [] and not ue.keys.has_msk(msk3)
        assert [type(e) for e in events] == [ev.MessageDropped]
    else:
        assert len(out) == 1 and decode_message(out[0]).header.data_type == DataType.PSK_VERIFY
        assert ue.keys.has_msk(msk3)


def test_replayed_compact_answer_is_dropped() -> None:
    world, log = captured_world()
    ue = world.ues[0]
    answers = [
        data
        for dst, data in log
        if dst == ("10.1.0.1", 2269)
        and decode_message(data).find(IdPayload) is not None
        and decode_message(data).find(Timestamp) is not None
        and decode_message(data).find(Timestamp).ts_type == TsType.NTP_UTC  # type: ignore[union-attr]
    ]
    assert answers
    before = snapshot(ue)
    for a in answers:
        events, out = inject(world, 0, a, ("10.255.0.1", 2269))
        assert out == [] and any(isinstance(e, ev.MessageDropped) for e in events)
    assert snapshot(ue) == before
