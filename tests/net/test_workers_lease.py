"""Leader lease and multi-worker correctness below the process level.

- the lease itself on every store (memory, SQLite, Redis): take, renew, refuse, expire, release;
- COUNTER blocks reserved concurrently by real processes over SQLite and Redis never overlap;
- BM-SC cores with ``leader_lease`` over one SQLite file (virtual time): exactly one leads,
  a dead leader is replaced within the bound and the MTK COUNTERs a UE sees keep increasing,
  every MTK ID keeps one key;
- a verification message reaching a worker that did not send the push is confirmed there,
  and the sender stops retrying.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bmsc"))

from bmsc_env import T0, USERS, bootstrap, make_bsf, make_core, service

from mbmsec.bmsc.core import BmscCore, DeliveryConfirmed
from mbmsec.bmsc.http_xml import build_registration
from mbmsec.bmsc.leadership import LEADER_LEASE, LeaderLease
from mbmsec.errors import ConfigError
from mbmsec.mbms.messages import (
    MskMessage,
    build_msk_verification,
    check_msk_message,
    check_mtk_message,
)
from mbmsec.store.bmsc_memory import MemoryBmscStore
from mbmsec.store.bmsc_protocols import BmscStore
from mbmsec.store.bmsc_sqlite import SqliteBmscStore

GROUP = ("239.1.1.1", 5001)
UE_ADDR = ("10.0.0.7", 40000)


def _redis_url() -> str:
    url = os.environ.get("MBMSEC_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI run without MBMSEC_REDIS_URL")
        pytest.skip("MBMSEC_REDIS_URL not set")
    return url


def _open(kind: str, where: str) -> BmscStore:
    if kind == "memory":
        return MemoryBmscStore()
    if kind == "sqlite":
        return SqliteBmscStore(where)
    from mbmsec.store.bmsc_redis import RedisBmscStore

    return RedisBmscStore(_redis_url(), prefix=where)


@pytest.fixture(params=["memory", "sqlite", "redis"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    kind = str(request.param)
    loc = str(tmp_path / "b.db") if kind == "sqlite" else f"mbmsec-test:{uuid.uuid4().hex}:"
    yield kind, loc
    if kind == "redis":
        from mbmsec.store.bmsc_redis import RedisBmscStore

        RedisBmscStore(_redis_url(), prefix=loc).flush()


def test_lease_take_renew_refuse_expire_release(where: tuple[str, str]) -> None:
    kind, loc = where
    a = _open(kind, loc)
    b = a if kind == "memory" else _open(kind, loc)
    assert a.lease_holder(LEADER_LEASE, 100.0) is None
    assert a.acquire_lease(LEADER_LEASE, "w1", 0.6, 100.0)
    assert not b.acquire_lease(LEADER_LEASE, "w2", 0.6, 100.1)
    assert a.acquire_lease(LEADER_LEASE, "w1", 0.6, 100.2)  # renewal
    assert b.lease_holder(LEADER_LEASE, 100.3) == "w1"
    if kind == "redis":  # the server's clock expires it
        import time

        time.sleep(0.8)
    assert b.acquire_lease(LEADER_LEASE, "w2", 0.6, 101.0)  # expired: taken over
    assert not a.acquire_lease(LEADER_LEASE, "w1", 0.6, 101.1)
    a.release_lease(LEADER_LEASE, "w1")  # not the holder: no effect
    assert a.lease_holder(LEADER_LEASE, 101.2) == "w2"
    b.release_lease(LEADER_LEASE, "w2")
    assert a.acquire_lease(LEADER_LEASE, "w1", 0.6, 101.3)  # released: free at once
    for s in {id(a): a, id(b): b}.values():
        s.close()


def test_fanout_members_shared_through_the_store(where: tuple[str, str]) -> None:
    kind, loc = where
    a = _open(kind, loc)
    b = a if kind == "memory" else _open(kind, loc)
    g = "239.1.1.1:5001"
    a.add_group_members(g, {"10.0.0.1:4000": 200.0, "10.0.0.2:4000": 150.0})
    b.add_group_members(g, {"10.0.0.1:4000": 120.0, "10.0.0.3:4000": 300.0})  # earlier end
    b.add_group_members("239.1.1.2:5002", {"10.0.0.9:4000": 300.0})
    assert a.group_members(g, 100.0) == {
        "10.0.0.1:4000": 200.0,  # a renewal never shortens a lease
        "10.0.0.2:4000": 150.0,
        "10.0.0.3:4000": 300.0,
    }
    assert b.group_members(g, 160.0) == {"10.0.0.1:4000": 200.0, "10.0.0.3:4000": 300.0}
    assert a.group_members("239.9.9.9:1", 0.0) == {}
    a.purge_keys(250.0)  # may drop memberships that ended before 250
    assert b.group_members(g, 250.0) == {"10.0.0.3:4000": 300.0}
    for s in {id(a): a, id(b): b}.values():
        s.close()


def test_lease_view_margin_and_release() -> None:
    store = MemoryBmscStore()
    with pytest.raises(ConfigError):
        LeaderLease(store, "w1", 0.0)
    a, b = LeaderLease(store, "w1", 3.0), LeaderLease(store, "w2", 3.0)
    assert a.poll(10.0) and not b.poll(10.0)
    assert a.deadline() == b.deadline() == 11.0
    assert a.is_leader(11.9) and not a.is_leader(12.0)  # stops a third of ttl before expiry
    assert not b.poll(12.9)  # still held by w1 in the store
    assert b.poll(13.9) and not a.poll(14.0)  # w1 never renewed: taken over after expiry
    assert b.deadline() == pytest.approx(14.9)
    b.release()
    assert a.poll(15.0) and store.lease_holder(LEADER_LEASE, 15.0) == "w1"


def _reserve_many(kind: str, loc: str, name: str, n: int, block: int, out: object) -> None:
    store = _open(kind, loc)
    got = [store.reserve_counter(name, block) for _ in range(n)]
    out.put(got)  # type: ignore[attr-defined]
    store.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_counter_blocks_of_concurrent_processes_never_overlap(kind: str, tmp_path: Path) -> None:
    loc = str(tmp_path / "b.db") if kind == "sqlite" else f"mbmsec-test:{uuid.uuid4().hex}:"
    _open(kind, loc).close()  # schema first (as the supervisor does)
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    block, n, workers = 7, 60, 4
    procs = [
        ctx.Process(target=_reserve_many, args=(kind, loc, "msk:test", n, block, q))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    marks = [m for _ in procs for m in q.get(timeout=90)]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    values = [v for m in marks for v in range(m - block + 1, m + 1)]
    assert len(values) == len(set(values)) == workers * n * block  # disjoint blocks
    assert sorted(values) == list(range(1, workers * n * block + 1))  # nothing lost either
    if kind == "redis":
        from mbmsec.store.bmsc_redis import RedisBmscStore

        RedisBmscStore(_redis_url(), prefix=loc).flush()


def _mtks(core: BmscCore, store: BmscStore, now: float) -> list[tuple[int, int, int, bytes]]:
    """(MSK ID, MTK ID, COUNTER, key) of the MTK messages ``core`` sends at ``now``."""
    out = []
    for data, addr in core.datagrams_to_send(now):
        if addr != GROUP:
            continue
        for m in store.msks_for_service("urn:svc:news"):
            try:
                msg = check_mtk_message(data, m.key)
            except Exception:
                continue
            out.append((m.ref.msk_id.value, msg.mtk.mtk_id, msg.counter, msg.mtk.key))
    return out


def test_one_leader_and_failover_keeps_counters_increasing(tmp_path: Path) -> None:
    bsf = make_bsf()
    ttl = 3.0
    db = tmp_path / "b.db"
    stores = [SqliteBmscStore(db) for _ in range(3)]
    svc = service(
        mtk_lifetime=4.0, mtk_lead=1.0, announce_interval=0.5, msk_lifetime=60.0, msk_lead=10.0
    )
    cores = [
        make_core(s, bsf, seed=f"w{i}", leader_lease=ttl, worker_id=f"w{i}", mtk_counter_block=4)
        for i, s in enumerate(stores)
    ]
    for c in cores:
        c.add_service(svc, T0)
    seen: list[tuple[int, int, int, bytes]] = []
    leaders: list[set[int]] = []
    alive = [0, 1, 2]
    t, dead_at, took_over = T0, None, None
    while t < T0 + 30:
        for i in alive:
            c = cores[i]
            timer = c.get_timer()
            if timer is not None and timer <= t:
                c.handle_timer(t)
            seen += _mtks(c, stores[i], t)
        leading = {i for i in alive if cores[i].leader}
        leaders.append(leading)
        if dead_at is None and t >= T0 + 10:
            (old,) = leading
            alive.remove(old)  # kill -9: no release, no more timers
            dead_at = t
        elif dead_at is not None and took_over is None and leading:
            took_over = t
        t = round(t + 0.1, 3)
    assert all(len(s) <= 1 for s in leaders)  # never two leaders at once
    assert sum(1 for s in leaders if s) > 0.8 * len(leaders)
    assert dead_at is not None and took_over is not None
    assert took_over - dead_at <= ttl + ttl / 3 + 0.2
    counters = [c for _, _, c, _ in seen]
    assert len(counters) > 40 and counters == sorted(set(counters))  # one MSK: one sequence
    keys: dict[tuple[int, int], bytes] = {}
    for msk_id, mtk_id, _, key in seen:
        assert keys.setdefault((msk_id, mtk_id), key) == key
    assert len(keys) >= 6  # the MTK rotated under both leaders
    assert sum(c.scheduler.generated > 0 for c in cores) == 2
    for s in stores:
        s.close()


def test_clean_stop_hands_over_within_a_third_of_the_lease(tmp_path: Path) -> None:
    bsf = make_bsf()
    a = make_core(SqliteBmscStore(tmp_path / "b.db"), bsf, leader_lease=3.0, worker_id="a")
    b = make_core(SqliteBmscStore(tmp_path / "b.db"), bsf, leader_lease=3.0, worker_id="b")
    for c in (a, b):
        c.add_service(service(), T0)
    a.handle_timer(T0)
    b.handle_timer(T0)
    assert a.leader and not b.leader
    a.release_leadership()
    assert not a.leader
    b.handle_timer(T0 + 1.0)
    assert b.leader and b.stats["leader.acquired"] == 1


def test_verification_confirmed_by_the_other_worker(tmp_path: Path) -> None:
    bsf = make_bsf()
    ue = bootstrap(bsf, USERS[0], T0)
    secret = b"s" * 32
    a = make_core(SqliteBmscStore(tmp_path / "b.db"), bsf, seed="a", nonce_secret=secret)
    b = make_core(
        SqliteBmscStore(tmp_path / "b.db"), bsf, seed="b", nonce_secret=secret, leader=False
    )
    a.add_service(service(), T0)
    b.handle_timer(T0 + 1)
    now = T0 + 30
    assert (
        ue.http(a, "register", build_registration(["urn:svc:news"], mikey_port=40000), now).status
        == 200
    )
    (push,) = [d for d, addr in a.datagrams_to_send(now) if addr == UE_ADDR]
    msg = check_msk_message(push, ue.muk, expected_muk_id=ue.muk_id)
    ver = build_msk_verification(msg, ue.muk, ue.muk_id)
    forged = build_msk_verification(msg, bytes(32), ue.muk_id)
    b.receive_datagram(forged, UE_ADDR, now + 0.1)
    assert b.next_event() is None and b.stats["verification.bad"] == 1
    b.receive_datagram(ver, UE_ADDR, now + 0.2)
    ev = b.next_event()
    assert isinstance(ev, DeliveryConfirmed) and ev.csb_id == msg.csb_id and ev.btid == ue.btid
    rec = a.store.get_delivery(ue.btid, msg.csb_id)
    assert rec is not None and rec.confirmed_at == now + 0.2
    b.receive_datagram(ver, UE_ADDR, now + 0.3)  # once only
    assert b.next_event() is None and b.stats["verification.unsolicited"] == 1
    a.handle_timer(now + 10)  # a's retry deadline: confirmed elsewhere, nothing resent
    assert [d for d, addr in a.datagrams_to_send(now + 10) if addr == UE_ADDR] == []
    assert a.next_event() is None and a.stats["push.confirmed_elsewhere"] == 1


def test_compact_requests_write_nothing_to_the_store() -> None:
    """ARCHITECTURE §5: the compact path of a worker (leader or not) never writes the store."""
    bsf = make_bsf()
    store = MemoryBmscStore()
    leader = make_core(store, bsf, seed="l", leader_lease=3.0, worker_id="l")
    follower = make_core(store, bsf, seed="f", leader_lease=3.0, worker_id="f")
    for c in (leader, follower):
        c.add_service(service(), T0)
        c.handle_timer(T0)
    assert leader.leader and not follower.leader
    ues = [bootstrap(bsf, u, T0) for u in USERS]
    for c in (leader, follower):
        for ue in ues:  # warm: per-UE keys from Zn, MSK from the store
            data, _ = ue.request(T0 + 1)
            assert c.handle_compact_datagram(data, UE_ADDR, T0 + 1)
    before = store.writes
    for i in range(60):
        c = (leader, follower)[i % 2]
        ue = ues[i % len(ues)]
        data, pending = ue.request(T0 + 2 + i / 100)
        (answer,) = c.handle_compact_datagram(data, UE_ADDR, T0 + 2 + i / 100)
        assert isinstance(ue.check(answer[0], pending), MskMessage)
    assert store.writes == before
