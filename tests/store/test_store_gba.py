"""GBA stores: the SQLite and in-memory implementations honour the same protocol."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mbmsec.errors import DuplicateEntryError
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


def sub(impi: str, sqn: int = 0, **kw: object) -> Subscriber:
    return Subscriber(impi=impi, k=K1, opc=OPC1, sqn=sqn, **kw)  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "sqlite"])
def subs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SubscriberStore]:
    store: SubscriberStore
    if request.param == "memory":
        store = MemorySubscriberStore()
    else:
        store = SqliteSubscriberStore(tmp_path / "gba.db")
    yield store
    store.close()


@pytest.fixture(params=["memory", "sqlite"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BootstrapSessionStore]:
    store: BootstrapSessionStore
    if request.param == "memory":
        store = MemoryBootstrapSessionStore()
    else:
        store = SqliteBootstrapSessionStore(tmp_path / "gba.db")
    yield store
    store.close()


def test_protocol_conformance(subs: SubscriberStore, sessions: BootstrapSessionStore) -> None:
    assert isinstance(subs, SubscriberStore)
    assert isinstance(sessions, BootstrapSessionStore)


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


def test_sqlite_pragmas_and_private_side_files(tmp_path: Path) -> None:
    from mbmsec.store.sqlite_gba import connect

    old = os.umask(0)  # the most permissive umask: the files must still be 0600
    try:
        path = tmp_path / "gba.db"
        s = SqliteSubscriberStore(path)
        s.add(sub("a@x"))
        conn = connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        for name in ("gba.db", "gba.db-wal", "gba.db-shm"):
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
        conn.close()
        s.close()
    finally:
        os.umask(old)


def test_sqlite_concurrent_first_open(tmp_path: Path) -> None:
    # several processes (here threads) opening a database that does not exist yet: all succeed
    import threading

    failures: list[str] = []
    for trial in range(40):
        path = tmp_path / f"race{trial}.db"
        barrier = threading.Barrier(8)

        def open_it(p: Path = path, b: threading.Barrier = barrier) -> None:
            b.wait()
            try:
                SqliteSubscriberStore(p).close()
            except Exception as exc:  # collected and asserted below
                failures.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not failures, failures[:3]


def test_sqlite_existing_world_readable_file_is_made_private(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "gba.db"
    sqlite3.connect(path).close()  # made by another tool, mode 0644 under umask 022
    os.chmod(path, 0o644)
    s = SqliteSubscriberStore(path)
    s.add(sub("a@x"))
    for name in ("gba.db", "gba.db-wal", "gba.db-shm"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
    s.close()
