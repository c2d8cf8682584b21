"""Several BM-SC workers over one SQLite store: the leader generates, a follower serves the
same keys without generating; a shared nonce secret lets a digest answer reach any worker;
parked datagrams expire when no Zn answer comes."""

from __future__ import annotations

from pathlib import Path

from bmsc_env import T0, USERS, bootstrap, make_bsf, make_core, service

from mbmsec.bmsc.http_xml import build_registration
from mbmsec.bmsc.zn import ZnAnswerCache
from mbmsec.httpmsg import HttpRequest
from mbmsec.mbms.messages import MskMessage
from mbmsec.store.bmsc_memory import MemoryBmscStore
from mbmsec.store.bmsc_sqlite import SqliteBmscStore

ADDR = ("10.0.0.7", 40000)


def test_follower_serves_leader_keys(tmp_path: Path) -> None:
    bsf = make_bsf()
    ue = bootstrap(bsf, USERS[0], T0)
    leader_store = SqliteBmscStore(tmp_path / "b.db")
    leader = make_core(leader_store, bsf, seed="leader")
    follower_store = SqliteBmscStore(tmp_path / "b.db")
    follower = make_core(follower_store, bsf, seed="follower", leader=False)
    # before the leader has made keys, the follower cannot invent any
    follower.add_service(service(), T0)  # writes the service, generates nothing
    assert follower_store.msks_for_service("urn:svc:news") == []
    data, pending = ue.request(T0 + 1)
    got = ue.check(follower.handle_compact_datagram(data, ADDR, T0 + 1)[0][0], pending)
    assert not isinstance(got, MskMessage) and got.causes == (245,)
    leader.handle_timer(T0 + 2)  # leader generates the current keys
    data, pending = ue.request(T0 + 3)
    got = ue.check(follower.handle_compact_datagram(data, ADDR, T0 + 3)[0][0], pending)
    assert isinstance(got, MskMessage)
    assert got.msks[0].key == leader_store.msks_for_service("urn:svc:news")[0].key
    assert follower.scheduler.generated == 0 and leader.scheduler.generated > 0
    leader_store.close()
    follower_store.close()


def test_shared_nonce_secret_across_workers() -> None:
    bsf = make_bsf()
    ue = bootstrap(bsf, USERS[0], T0)
    store = MemoryBmscStore()
    a = make_core(store, bsf, seed="a", nonce_secret=b"k" * 32)
    b = make_core(store, bsf, seed="b", nonce_secret=b"k" * 32)
    a.add_service(service(), T0)
    resp = ue.http(a, "register", build_registration(["urn:svc:news"]), T0 + 5)
    assert resp.status == 200
    # the same credentials computed on a's challenge are valid at b (replay cache is per worker)
    assert b.handle_http(ue.last_request, T0 + 5).status == 200
    c = make_core(store, bsf, seed="c")  # its own random secret: a's nonce is foreign
    assert c.handle_http(ue.last_request, T0 + 5).status == 401


def test_parked_datagrams_expire() -> None:
    bsf = make_bsf()
    ue = bootstrap(bsf, USERS[0], T0)
    cache = ZnAnswerCache()
    core = make_core(MemoryBmscStore(), zn=cache, park_timeout=5.0)
    core.add_service(service(), T0)
    data, _ = ue.request(T0 + 1)
    assert core.handle_compact_datagram(data, ADDR, T0 + 1) == []
    timer = core.get_timer()
    assert timer is not None and timer <= T0 + 6
    core.handle_timer(T0 + 6)
    core.on_zn_ready(ue.btid, T0 + 6)  # too late: nothing is parked any more
    assert [d for d, a in core.datagrams_to_send(T0 + 6) if a == ADDR] == []
    assert core.handle_http(HttpRequest("GET", "/"), T0).status == 404
