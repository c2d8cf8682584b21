"""A UE restarted on its SQLite key store keeps its keys and its replay protection."""

from __future__ import annotations

from pathlib import Path

from mbmsec.gba.client import BootstrapClient, GbaUicc
from mbmsec.mikey.codec import decode_message
from mbmsec.mikey.payloads import IdPayload
from mbmsec.sim.engine import Address
from mbmsec.sim.world import BSF_DOMAIN, OPC, build_world, ue_addr, ue_key
from mbmsec.store.ue_sqlite import SqliteUeKeyStore
from mbmsec.ue import events as ev
from mbmsec.ue.client import UeKeyClient

T0 = 1_700_000_000.0


def test_restart_keeps_keys_counters_and_b_tid(tmp_path: Path) -> None:
    db = tmp_path / "ue.db"
    world = build_world(1, profile="compact", seed=41)
    first = world.ues[0]
    first.keys.store = SqliteUeKeyStore(db)  # before anything is stored
    mtk_messages: list[bytes] = []
    world.sim.add_tap(
        lambda src, dst, data, ts: (
            mtk_messages.append(data) if decode_message(data).find(IdPayload) is None else None
        )
    )
    world.run_until(T0 + 50)
    assert world.is_current(0, world.services[0])
    before = [(m.ref, m.last_counter, m.current_mtk_id) for m in first.keys.store.msks()]
    first.keys.store.close()

    # the process restarts: a new client object on the same store, same USIM
    store = SqliteUeKeyStore(db)
    boot = BootstrapClient(
        "ue0@sim.mbmsec.test",
        GbaUicc(ue_key(0), OPC),
        realm=BSF_DOMAIN,
        rng=world.sim.rng("ue0-restarted"),
    )
    again = UeKeyClient(
        first.config, boot, world.sim.rng("ue0-restarted"), store, now=world.sim.now
    )
    assert [(m.ref, m.last_counter, m.current_mtk_id) for m in store.msks()] == before
    addr: Address = ue_addr(0)
    world.ues[0] = again
    world.sim.replace_node(addr, again)
    # an old MTK message replayed to the restarted UE is still refused
    again.receive_datagram(mtk_messages[0], ("10.255.0.1", 2269), world.sim.now)
    assert again.stats.get("drop.mtk.stale") == 1
    world.run_until(T0 + 300)
    assert world.is_current(0, world.services[0])
    events = [e for i, e in world.events if e.at > T0 + 50]
    assert not any(isinstance(e, ev.Bootstrapped) for e in events)  # B-TID still valid
    assert any(isinstance(e, ev.MskInstalled) for e in events)  # and the keys kept coming
    store.close()
