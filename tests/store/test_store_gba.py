"""GBA stores: the in-memory, SQLite and Redis implementations honour the same protocols.

The Redis stores run when MBMSEC_REDIS_URL is set; they are skipped when it is unset, except
under CI (CI set), where a missing server is a failure.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mbmsec.errors import DuplicateEntryError
from mbmsec.store.challenges import (
    ChallengeStore,
    MemoryChallengeStore,
    PendingChallenge,
    SqliteChallengeStore,
)
from mbmsec.store.memory_gba import MemoryBootstrapSessionStore, MemorySubscriberStore
from mbmsec.store.protocols import (
    BootstrapSession,
    BootstrapSessionStore,
    Guss,
    Subscriber,
    SubscriberStore,
)
from mbmsec.store.sqlite_gba import SqliteBootstrapSessionStore, SqliteSubscriberStore

K1 = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC1 = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
BACKENDS = ["memory", "sqlite", "redis"]


def sub(impi: str, sqn: int = 0, **kw: object) -> Subscriber:
    return Subscriber(impi=impi, k=K1, opc=OPC1, sqn=sqn, **kw)  # type: ignore[arg-type]


def _redis_url() -> str:
    url = os.environ.get("MBMSEC_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI run without MBMSEC_REDIS_URL")
        pytest.skip("MBMSEC_REDIS_URL not set")
    return url


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A fresh key prefix; every key under it is deleted afterwards."""
    prefix = f"mbmsec-test:{uuid.uuid4().hex}:"
    yield prefix
    url = os.environ.get("MBMSEC_REDIS_URL")
    if url:
        from mbmsec.store.redis_gba import RedisSubscriberStore

        s = RedisSubscriberStore(url, prefix=prefix)
        s.flush()
        s.close()


@pytest.fixture(params=BACKENDS)
def subs(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> Iterator[SubscriberStore]:
    store: SubscriberStore
    if request.param == "memory":
        store = MemorySubscriberStore()
    elif request.param == "sqlite":
        store = SqliteSubscriberStore(tmp_path / "gba.db")
    else:
        from mbmsec.store.redis_gba import RedisSubscriberStore

        store = RedisSubscriberStore(_redis_url(), prefix=redis_prefix)
    yield store
    store.close()


@pytest.fixture(params=BACKENDS)
def sessions(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> Iterator[BootstrapSessionStore]:
    store: BootstrapSessionStore
    if request.param == "memory":
        store = MemoryBootstrapSessionStore()
    elif request.param == "sqlite":
        store = SqliteBootstrapSessionStore(tmp_path / "gba.db")
    else:
        from mbmsec.store.redis_gba import RedisBootstrapSessionStore

        store = RedisBootstrapSessionStore(_redis_url(), prefix=redis_prefix)
    yield store
    store.close()


def make_challenges(
    kind: str, tmp_path: Path, prefix: str, max_pending: int = 100, max_per_impi: int = 3
) -> ChallengeStore:
    if kind == "memory":
        return MemoryChallengeStore(max_pending, max_per_impi)
    if kind == "sqlite":
        return SqliteChallengeStore(tmp_path / "gba.db", max_pending, max_per_impi)
    from mbmsec.store.redis_gba import RedisChallengeStore

    return RedisChallengeStore(_redis_url(), prefix, max_pending, max_per_impi)


@pytest.fixture(params=BACKENDS)
def challenges(
    request: pytest.FixtureRequest, tmp_path: Path, redis_prefix: str
) -> Iterator[ChallengeStore]:
    store = make_challenges(request.param, tmp_path, redis_prefix)
    yield store
    store.close()


def test_protocol_conformance(
    subs: SubscriberStore, sessions: BootstrapSessionStore, challenges: ChallengeStore
) -> None:
    assert isinstance(subs, SubscriberStore)
    assert isinstance(sessions, BootstrapSessionStore)
    assert isinstance(challenges, ChallengeStore)


def test_subscriber_round_trip(subs: SubscriberStore) -> None:
    g = Guss(naf_fqdns=("bmsc.home1.net",), mbms_service_ids=("svc-1", "svc-2"))
    s = sub("user1_private@home1.net", sqn=5, amf=b"\xb9\xb9", guss=g, uicc=True)
    subs.add(s)
    assert subs.get("user1_private@home1.net") == s
    assert subs.get("nobody@home1.net") is None
    assert [x.impi for x in subs.all()] == ["user1_private@home1.net"]


def test_duplicate_add_many_is_atomic(subs: SubscriberStore) -> None:
    subs.add(sub("b@x"))
    with pytest.raises(DuplicateEntryError):
        subs.add_many([sub("a@x"), sub("b@x"), sub("c@x")])
    assert [x.impi for x in subs.all()] == ["b@x"]
    with pytest.raises(DuplicateEntryError):
        subs.add_many([sub("d@x"), sub("d@x")])
    assert [x.impi for x in subs.all()] == ["b@x"]


def test_advance_and_set_sqn(subs: SubscriberStore) -> None:
    subs.add(sub("a@x", sqn=40))
    after = subs.advance_sqn("a@x", lambda q: q + 33)
    assert after is not None and after.sqn == 73
    got = subs.get("a@x")
    assert got is not None and got.sqn == 73

    def boom(q: int) -> int:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        subs.advance_sqn("a@x", boom)
    with pytest.raises(ValueError):
        subs.advance_sqn("a@x", lambda q: 1 << 48)
    got = subs.get("a@x")
    assert got is not None and got.sqn == 73
    assert subs.set_sqn("a@x", 1000)
    got = subs.get("a@x")
    assert got is not None and got.sqn == 1000
    with pytest.raises(ValueError):
        subs.set_sqn("a@x", -1)
    assert subs.advance_sqn("zz@x", lambda q: q + 1) is None
    assert not subs.set_sqn("zz@x", 1)


def test_remove(subs: SubscriberStore) -> None:
    subs.add(sub("a@x"))
    assert subs.remove("a@x")
    assert not subs.remove("a@x")
    assert subs.all() == []


def test_record_validation() -> None:
    with pytest.raises(ValueError):
        Subscriber(impi="a@x", k=K1[:15], opc=OPC1)
    with pytest.raises(ValueError):
        Subscriber(impi="", k=K1, opc=OPC1)
    with pytest.raises(ValueError):
        Subscriber(impi="a@x", k=K1, opc=OPC1, amf=b"\x00")
    with pytest.raises(ValueError):
        Subscriber(impi="a@x", k=K1, opc=OPC1, sqn=1 << 48)
    s = sub("a@x")
    assert K1.hex() not in repr(s) and OPC1.hex() not in repr(s)


def test_guss_allows() -> None:
    assert Guss().allows_naf("anything.example")
    g = Guss(naf_fqdns=("BMSC.home1.net",))
    assert g.allows_naf("bmsc.home1.net")
    assert not g.allows_naf("other.home1.net")
    assert not Guss(naf_fqdns=()).allows_naf("bmsc.home1.net")


def _session(btid: str, expires: float) -> BootstrapSession:
    return BootstrapSession(
        btid=btid, impi="a@x", ks=bytes(range(32)), rand=bytes(16), created=10.0, expires=expires
    )


def test_sessions(sessions: BootstrapSessionStore) -> None:
    a, b = _session("A@bsf", 100.0), _session("B@bsf", 200.0)
    sessions.put(a)
    sessions.put(b)
    assert sessions.get("A@bsf") == a
    assert bytes(range(32)).hex() not in repr(a)
    assert sessions.purge_expired(150.0) == 1
    assert sessions.get("A@bsf") is None
    assert sessions.get("B@bsf") == b
    assert sessions.delete("B@bsf")
    assert not sessions.delete("B@bsf")


def test_sessions_replace_and_expired_get(sessions: BootstrapSessionStore) -> None:
    a = _session("A@bsf", 100.0)
    sessions.put(a)
    assert sessions.get("A@bsf") == a  # returned even though expired at any now > 100
    newer = BootstrapSession(
        btid="A@bsf", impi="b@x", ks=bytes(32), rand=bytes(range(16)), created=50.0,
        expires=1e12, gba_u=True,
    )  # fmt: skip
    sessions.put(newer)
    assert sessions.get("A@bsf") == newer
    assert sessions.purge_expired(150.0) == 0  # the replacement is alive
    assert sessions.get("A@bsf") == newer
    assert sessions.get("nothing@bsf") is None
    assert sessions.purge_expired(2e12) == 1
    assert sessions.get("A@bsf") is None


def test_awkward_identities(subs: SubscriberStore, sessions: BootstrapSessionStore) -> None:
    odd = ["{a}@x", "}b{@x", "%7Bc@x", "d\u00e9\u4e2d@x", "e*?[x]@x", "f}@x"]
    subs.add_many([sub(i, sqn=n) for n, i in enumerate(odd)])
    assert [x.impi for x in subs.all()] == sorted(odd)
    for n, i in enumerate(odd):
        got = subs.get(i)
        assert got is not None and got.sqn == n
    assert subs.get("{a}@y") is None and subs.get("%257Bc@x") is None
    after = subs.advance_sqn("}b{@x", lambda q: q + 32)
    assert after is not None and after.sqn == 33
    for i in odd:
        sessions.put(BootstrapSession(i + "@bsf", i, bytes(32), bytes(16), 1.0, 1e12))
        got_s = sessions.get(i + "@bsf")
        assert got_s is not None and got_s.impi == i


def test_many_subscribers_listed_in_order(subs: SubscriberStore) -> None:
    impis = [f"user{i:03d}@home1.net" for i in range(150)][::-1]
    subs.add_many([sub(i, sqn=7) for i in impis])
    listed = subs.all()
    assert [x.impi for x in listed] == sorted(impis)
    assert all(x.k == K1 and x.opc == OPC1 and x.sqn == 7 for x in listed)
    assert subs.remove("user010@home1.net")
    assert len(subs.all()) == 149


def challenge(nonce: str, impi: str = "a@x", expires: float = 1060.0) -> PendingChallenge:
    return PendingChallenge(
        nonce=nonce,
        impi=impi,
        rand=bytes(range(16)),
        autn=bytes(range(16, 32)),
        xres=bytes(range(32, 40)),
        ck=bytes(range(40, 56)),
        ik=bytes(range(56, 72)),
        expires=expires,
        gba_u=nonce.endswith("u"),
    )


def test_challenge_round_trip_single_use(challenges: ChallengeStore) -> None:
    c, u = challenge("n1"), challenge("n2u")
    assert challenges.put(c, 1000.0) == 0
    assert challenges.put(u, 1000.0) == 0
    assert challenges.take("n1", "a@x", 1001.0) == c
    assert challenges.take("n1", "a@x", 1001.0) is None  # single use
    got = challenges.take("n2u", "a@x", 1001.0)
    assert got == u and got.gba_u and got.ks == u.ck + u.ik
    for secret in (c.xres, c.ck, c.ik):
        assert secret.hex() not in repr(c)
    assert challenges.take("never", "a@x", 1001.0) is None


def test_challenge_of_another_impi_stays(challenges: ChallengeStore) -> None:
    challenges.put(challenge("n1", "a@x"), 1000.0)
    assert challenges.take("n1", "b@x", 1001.0) is None
    assert challenges.take("n1", "a@x", 1001.0) == challenge("n1", "a@x")


def test_challenge_expiry(challenges: ChallengeStore) -> None:
    challenges.put(challenge("n1", expires=1060.0), 1000.0)
    challenges.put(challenge("n2", expires=1060.0), 1000.0)
    challenges.put(challenge("n3", "b@x", expires=1100.0), 1000.0)
    assert challenges.take("n1", "a@x", 1060.0) is None  # expired at its expiry: removed
    assert challenges.take("n1", "a@x", 1001.0) is None
    assert challenges.purge_expired(1070.0) == 1  # n2
    assert challenges.take("n2", "a@x", 1001.0) is None
    assert challenges.take("n3", "b@x", 1070.0) == challenge("n3", "b@x", expires=1100.0)
    assert challenges.put(challenge("n4", expires=999.0), 1000.0) == 0  # dead on arrival
    assert challenges.take("n4", "a@x", 998.0) is None


def test_challenge_bound_per_impi(challenges: ChallengeStore) -> None:
    # make_challenges: at most 3 per IMPI
    for i in range(3):
        assert challenges.put(challenge(f"n{i}", expires=1060.0 + i), 1000.0 + i) == 0
    challenges.put(challenge("other", "b@x", expires=1065.0), 1005.0)
    assert challenges.put(challenge("n3", expires=1063.0), 1003.0) == 1
    assert challenges.take("n0", "a@x", 1004.0) is None  # the oldest of a@x went
    for i in (1, 2, 3):
        assert challenges.take(f"n{i}", "a@x", 1004.0) is not None
    assert challenges.take("other", "b@x", 1004.0) is not None


def test_challenge_bound_global(tmp_path: Path, redis_prefix: str) -> None:
    for kind in BACKENDS:
        if kind == "redis" and not os.environ.get("MBMSEC_REDIS_URL"):
            continue
        (tmp_path / kind).mkdir()
        store = make_challenges(kind, tmp_path / kind, redis_prefix + kind, max_pending=4)
        dropped = [store.put(challenge(f"g{i}", f"u{i}@x", 1060.0 + i), 1000.0) for i in range(6)]
        assert dropped == [0, 0, 0, 0, 1, 1], kind
        live = [store.take(f"g{i}", f"u{i}@x", 1001.0) is not None for i in range(6)]
        assert live == [False, False, True, True, True, True], kind
        store.close()


def test_sqlite_durable_and_private(tmp_path: Path) -> None:
    path = tmp_path / "gba.db"
    s1 = SqliteSubscriberStore(path)
    s1.add(sub("a@x"))
    s1.advance_sqn("a@x", lambda q: q + 32)
    t1 = SqliteBootstrapSessionStore(path)
    t1.put(_session("A@bsf", 1e12))
    s1.close()
    t1.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    s2 = SqliteSubscriberStore(path)
    got = s2.get("a@x")
    assert got is not None and got.sqn == 32 and got.k == K1
    t2 = SqliteBootstrapSessionStore(path)
    assert t2.get("A@bsf") == _session("A@bsf", 1e12)
    s2.close()
    t2.close()
