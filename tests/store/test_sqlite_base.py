"""Every SQLite store opens its file the same way: 0600 (side files too), WAL, synchronous=FULL,
race-free when several processes create it at once, junk files refused with ConfigError."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mbmsec.errors import ConfigError
from mbmsec.store.bmsc_sqlite import SqliteBmscStore
from mbmsec.store.sqlite_gba import SqliteSubscriberStore
from mbmsec.store.ue_sqlite import SqliteUeKeyStore

OPENERS: dict[str, Callable[[Path], Any]] = {
    "gba": SqliteSubscriberStore,
    "bmsc": SqliteBmscStore,
    "ue": SqliteUeKeyStore,
}


@pytest.fixture(params=sorted(OPENERS))
def opener(request: pytest.FixtureRequest) -> Callable[[Path], Any]:
    return OPENERS[request.param]


def test_private_wal_full_under_permissive_umask(
    tmp_path: Path, opener: Callable[[Path], Any]
) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "s.db"
        store = opener(path)
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        probe = sqlite3.connect(path)
        assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        for name in ("s.db", "s.db-wal", "s.db-shm"):
            assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600, name
        probe.close()
        store.close()
    finally:
        os.umask(old)


def test_concurrent_first_open(tmp_path: Path, opener: Callable[[Path], Any]) -> None:
    failures: list[str] = []
    for trial in range(15):
        path = tmp_path / f"race{trial}.db"
        barrier = threading.Barrier(6)

        def open_it(p: Path = path, b: threading.Barrier = barrier) -> None:
            b.wait()
            try:
                opener(p).close()
            except Exception as exc:  # collected and asserted below
                failures.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=open_it) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert not failures, failures[:3]


def test_existing_world_readable_file_made_private(
    tmp_path: Path, opener: Callable[[Path], Any]
) -> None:
    path = tmp_path / "s.db"
    sqlite3.connect(path).close()
    os.chmod(path, 0o644)
    opener(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_junk_file_is_a_config_error(tmp_path: Path, opener: Callable[[Path], Any]) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(ConfigError) as ei:
        opener(path)
    assert str(path) in str(ei.value)
