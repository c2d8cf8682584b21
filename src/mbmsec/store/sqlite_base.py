"""What every mbmsec SQLite store shares: opening a durable private database, transactions.

Each store (GBA subscribers and sessions, BM-SC state, UE keys) keeps secrets, so its file is
created with mode 0600 (``O_EXCL``: no umask or symlink games; an existing file of ours that
others may read is made 0600, with its ``-wal``/``-shm`` side files), runs in WAL mode with
``synchronous=FULL`` (a committed counter or key survives a crash) and writes in
``BEGIN IMMEDIATE`` transactions. Several processes may open a new file at the same moment.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ConfigError

__all__ = ["open_database", "transaction"]


def open_database(path: str | os.PathLike[str], schema: str, what: str) -> sqlite3.Connection:
    """Open (creating with mode 0600 if needed) the database at ``path`` and run ``schema``.

    ``what`` names the database in errors ("GBA database"). Raises ConfigError when the file
    cannot be opened, is not an SQLite database, or refuses WAL mode.
    """
    p = Path(path)
    try:
        try:  # created here with 0600, or already there
            fd = os.open(p, os.O_CREAT | os.O_RDWR | os.O_EXCL, 0o600)
        except FileExistsError:  # another process won the race, or an existing database
            _make_private(p)
        else:
            os.close(fd)
            os.chmod(p, 0o600)
        conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=5000")  # first: the WAL switch may meet a writer
        mode = _set_wal(conn)  # -wal and -shm take the database file's mode
        if mode != "wal":
            conn.close()
            raise ConfigError(f"{what} {str(p)!r}: WAL mode refused ({mode})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(schema)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"cannot open {what} {str(p)!r}: {exc}") from exc
    return conn


def _make_private(p: Path) -> None:
    """Take group/other access away from an existing database and its side files (ours only)."""
    for f in (p, p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
        try:
            st = os.stat(f)
        except FileNotFoundError:
            continue
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(f, 0o600)


def _set_wal(conn: sqlite3.Connection, tries: int = 100) -> str:
    """Switch to WAL; return the journal mode now in force.

    The first switch of a new file needs an exclusive lock and SQLite answers "database is
    locked" at once (no busy handler) when another process opens the same new file meanwhile,
    so it is retried for up to ``tries`` * 50 ms.
    """
    for attempt in range(tries):
        try:
            row = conn.execute("PRAGMA journal_mode=WAL").fetchone()
            return str(row[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; ``ROLLBACK`` on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
