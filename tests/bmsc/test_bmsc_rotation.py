"""BM-SC key schedule over virtual time: MSK and MTK rotation seen by a UE applying the MGV-F
rules, replayed MTK messages rejected, and a restart over the same SQLite file that reuses
neither keys' slots nor COUNTER values."""

from __future__ import annotations

from pathlib import Path

import pytest
from bmsc_env import T0, USERS, Ue, bootstrap, make_bsf, make_core, service

from mbmsec.bmsc.core import BmscCore
from mbmsec.bmsc.http_xml import build_registration
from mbmsec.errors import AuthError, DecodeError, ReplayError
from mbmsec.mbms.keys import MskRef
from mbmsec.mbms.messages import MskMessage, check_msk_message, peek_key_ref
from mbmsec.mbms.mgvf import MskState, check_msk_counter, mgvf_mtk
from mbmsec.mikey.codec import decode_message
from mbmsec.mikey.payloads import Timestamp
from mbmsec.store.bmsc_memory import MemoryBmscStore
from mbmsec.store.bmsc_sqlite import SqliteBmscStore

GROUP = ("239.1.1.1", 5001)
ADDR = ("10.0.0.7", 40000)


class UeKeys:
    """The UE's MGV-F state per MSK; asks the BM-SC (compact) for an MSK it misses."""

    def __init__(self, ue: Ue, core: BmscCore) -> None:
        self.ue, self.core = ue, core
        self.msks: dict[MskRef, MskState] = {}
        self.released: list[tuple[float, MskRef, int, bytes]] = []
        self.rejected = 0

    def fetch(self, now: float) -> None:
        data, pending = self.ue.request(now)
        got = self.ue.check(self.core.handle_compact_datagram(data, ADDR, now)[0][0], pending)
        assert isinstance(got, MskMessage)
        for m in got.msks:
            self.msks.setdefault(m.ref, MskState(m))

    def on_mtk_message(self, data: bytes, now: float) -> None:
        _, ref = peek_key_ref(data)
        msk_ref = ref.msk_refs()[0]
        if msk_ref not in self.msks:
            self.fetch(now)
        try:
            mtk, self.msks[msk_ref] = mgvf_mtk(data, self.msks[msk_ref])
        except ReplayError:
            self.rejected += 1
            return
        self.released.append((now, msk_ref, mtk.mtk_id, mtk.key))


def run(
    core: BmscCore, now: float, until: float, ue: UeKeys | None, sent: list[tuple[float, bytes]]
) -> None:
    """Drive the core's timer from ``now`` to ``until`` as a net driver would."""
    t = core.get_timer()
    while t is not None and t <= until:
        t = now = max(t, now)
        core.handle_timer(t)
        for data, addr in core.datagrams_to_send(t):
            if addr == GROUP:
                sent.append((t, data))
                if ue is not None:
                    ue.on_mtk_message(data, t)
        t = core.get_timer()


def test_msk_and_mtk_rotation_seen_through_mgvf() -> None:
    bsf = make_bsf()
    store = MemoryBmscStore()
    core = make_core(store, bsf)
    core.add_service(service(), T0)
    keys = UeKeys(bootstrap(bsf, USERS[0], T0), core)
    sent: list[tuple[float, bytes]] = []
    run(core, T0, T0 + 1300, keys, sent)
    msks = store.msks_for_service("urn:svc:news")
    assert [m.valid_from for m in msks] == [T0, T0 + 600, T0 + 1200]
    assert len({m.key for m in msks}) == 3
    for m in msks[:2]:
        got = [(mid, key) for _, ref, mid, key in keys.released if ref == m.ref]
        assert [mid for mid, _ in got] == list(range(1, 11)), m.ref
        assert [key for _, key in got] == [t.key for t in store.mtks_for_msk(m.ref)]
    # every MTK after the first was released before it started (announced mtk_lead ahead)
    by_id = {(t.msk, t.mtk_id): t for m in msks for t in store.mtks_for_msk(m.ref)}
    for when, ref, mid, _ in keys.released[1:]:
        assert when <= by_id[(ref, mid)].valid_from
    # periodic repeats were sent and rejected by the MGV-F as not-newer MTK IDs
    assert keys.rejected > 0 and len(sent) > len(keys.released)
    # replaying every captured MTK message now: all rejected, state unchanged
    before = dict(keys.msks)
    for _, data in sent:
        ref = peek_key_ref(data)[1].msk_refs()[0]
        with pytest.raises((ReplayError, AuthError, DecodeError)):
            mgvf_mtk(data, keys.msks[ref])
    assert keys.msks == before


def test_restart_reuses_no_counter_and_keeps_keys(tmp_path: Path) -> None:
    db = tmp_path / "bmsc.db"
    bsf = make_bsf()
    ue = bootstrap(bsf, USERS[0], T0)
    store1 = SqliteBmscStore(db)
    core1 = make_core(store1, bsf, seed="first", mtk_counter_block=8)
    core1.add_service(service(), T0)
    keys = UeKeys(ue, core1)
    sent1: list[tuple[float, bytes]] = []
    run(core1, T0, T0 + 100, keys, sent1)
    resp = ue.http(
        core1, "register", build_registration(["urn:svc:news"], mikey_port=40000), T0 + 100
    )
    assert resp.status == 200
    push1 = [d for d, a in core1.datagrams_to_send(T0 + 100) if a == ("10.0.0.7", 40000)]
    c1 = check_msk_message(push1[0], ue.muk).timestamp
    mtk_keys1 = {(t.msk, t.mtk_id): t.key for t in store1.mtks_for_msk(next(iter(keys.msks)))}
    store1.close()  # the process dies here

    store2 = SqliteBmscStore(db)
    core2 = make_core(store2, bsf, seed="second", mtk_counter_block=8)
    keys.core = core2
    sent2: list[tuple[float, bytes]] = []
    run(core2, T0 + 100, T0 + 200, keys, sent2)
    counters1 = [_counter(d) for _, d in sent1]
    counters2 = [_counter(d) for _, d in sent2]
    assert counters2 and min(counters2) > max(counters1)
    assert len(set(counters1 + counters2)) == len(counters1) + len(counters2)
    # same MSK, same MTKs where the first process had made them
    ref = next(iter(keys.msks))
    for t in store2.mtks_for_msk(ref):
        if (t.msk, t.mtk_id) in mtk_keys1:
            assert t.key == mtk_keys1[(t.msk, t.mtk_id)]
    assert [mid for _, r, mid, _ in keys.released if r == ref] == [1, 2, 3, 4]
    # the per-MUK COUNTER of MSK pushes continues above the first process's values
    resp = ue.http(core2, "msk-request", _msk_request(ref), T0 + 200)
    assert resp.status == 200
    push2 = [d for d, a in core2.datagrams_to_send(T0 + 200) if a == ("10.0.0.7", 40000)]
    c2 = check_msk_message(push2[0], ue.muk).timestamp
    assert check_msk_counter(c2, check_msk_counter(c1, None)) > c1.value
    store2.close()


def _counter(data: bytes) -> int:
    t = decode_message(data).find(Timestamp)
    assert t is not None
    return t.value


def _msk_request(ref: MskRef) -> bytes:
    from mbmsec.bmsc.http_xml import build_msk_request

    return build_msk_request([ref], mikey_port=40000)
