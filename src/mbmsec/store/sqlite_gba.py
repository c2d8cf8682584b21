"""SQLite GBA stores: HSS subscribers and BSF bootstrapping sessions, durable, WAL mode.

One database file may hold both tables (``mbmsec bsf`` uses one file). The file is created
with mode 0600 (it holds K, OPc and Ks); an existing one of ours that others may read is made
0600. Every write runs in its own ``BEGIN IMMEDIATE`` transaction with ``synchronous=FULL``, so
a committed SQN or session survives a crash; a multi-row import is all-or-nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..errors import DuplicateEntryError
from .protocols import SQN_MAX, BootstrapSession, Guss, Subscriber
from .sqlite_base import open_database, transaction

__all__ = ["SqliteBootstrapSessionStore", "SqliteSubscriberStore", "connect"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS gba_subscribers (
    impi      TEXT PRIMARY KEY,
    k         BLOB NOT NULL,
    opc       BLOB NOT NULL,
    sqn       INTEGER NOT NULL,
    amf       BLOB NOT NULL,
    guss      TEXT NOT NULL,
    uicc      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS gba_sessions (
    btid      TEXT PRIMARY KEY,
    impi      TEXT NOT NULL,
    ks        BLOB NOT NULL,
    rand      BLOB NOT NULL,
    created   REAL NOT NULL,
    expires   REAL NOT NULL,
    gba_u     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS gba_sessions_expires ON gba_sessions (expires);
"""


def connect(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating with mode 0600 if needed) a GBA database and ensure the schema.

    Raises ConfigError when the file cannot be opened or is not an SQLite database.
    """
    return open_database(path, _SCHEMA, "GBA database")


def _guss_to_json(g: Guss) -> str:
    return json.dumps(
        {"naf_fqdns": list(g.naf_fqdns), "mbms_service_ids": list(g.mbms_service_ids)}
    )


def _guss_from_json(text: str) -> Guss:
    d = json.loads(text)
    return Guss(
        naf_fqdns=tuple(str(x) for x in d.get("naf_fqdns", [])),
        mbms_service_ids=tuple(str(x) for x in d.get("mbms_service_ids", [])),
    )


def _row_to_sub(row: tuple[object, ...]) -> Subscriber:
    impi, k, opc, sqn, amf, guss, uicc = row
    assert isinstance(impi, str) and isinstance(guss, str) and isinstance(sqn, int)
    assert isinstance(k, bytes) and isinstance(opc, bytes) and isinstance(amf, bytes)
    return Subscriber(
        impi=impi, k=k, opc=opc, sqn=sqn, amf=amf, guss=_guss_from_json(guss), uicc=bool(uicc)
    )


class SqliteSubscriberStore:
    """HSS subscriber records in table ``gba_subscribers``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._conn = connect(path)

    def add(self, subscriber: Subscriber) -> None:
        """Insert a new record. Raises DuplicateEntryError when the IMPI exists."""
        self.add_many([subscriber])

    def add_many(self, subscribers: Sequence[Subscriber]) -> None:
        """Insert all records in one transaction, or none. Raises DuplicateEntryError."""
        with transaction(self._conn) as c:
            for s in subscribers:
                try:
                    c.execute(
                        "INSERT INTO gba_subscribers (impi, k, opc, sqn, amf, guss, uicc) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (s.impi, s.k, s.opc, s.sqn, s.amf, _guss_to_json(s.guss), int(s.uicc)),
                    )
                except sqlite3.IntegrityError as exc:
                    raise DuplicateEntryError(f"IMPI already provisioned: {s.impi}") from exc

    def get(self, impi: str) -> Subscriber | None:
        """Return the record for ``impi`` or None."""
        row = self._conn.execute(
            "SELECT impi, k, opc, sqn, amf, guss, uicc FROM gba_subscribers WHERE impi = ?",
            (impi,),
        ).fetchone()
        return None if row is None else _row_to_sub(row)

    def remove(self, impi: str) -> bool:
        """Delete the record; return False when there was none."""
        with transaction(self._conn) as c:
            cur = c.execute("DELETE FROM gba_subscribers WHERE impi = ?", (impi,))
            return cur.rowcount > 0

    def all(self) -> list[Subscriber]:
        """Every record, ordered by IMPI."""
        rows = self._conn.execute(
            "SELECT impi, k, opc, sqn, amf, guss, uicc FROM gba_subscribers ORDER BY impi"
        ).fetchall()
        return [_row_to_sub(r) for r in rows]

    def advance_sqn(self, impi: str, advance: Callable[[int], int]) -> Subscriber | None:
        """Atomically replace SQN_HE by ``advance(SQN_HE)``; durable before returning."""
        with transaction(self._conn) as c:
            row = c.execute(
                "SELECT impi, k, opc, sqn, amf, guss, uicc FROM gba_subscribers WHERE impi = ?",
                (impi,),
            ).fetchone()
            if row is None:
                return None
            sub = replace(_row_to_sub(row), sqn=advance(_row_to_sub(row).sqn))
            c.execute("UPDATE gba_subscribers SET sqn = ? WHERE impi = ?", (sub.sqn, impi))
        return sub

    def set_sqn(self, impi: str, sqn: int) -> bool:
        """Set SQN_HE; return False when the IMPI is unknown. ValueError if not 48-bit."""
        if not 0 <= sqn <= SQN_MAX:
            raise ValueError("SQN must fit in 48 bits")
        with transaction(self._conn) as c:
            cur = c.execute("UPDATE gba_subscribers SET sqn = ? WHERE impi = ?", (sqn, impi))
            return cur.rowcount > 0

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def _row_to_session(row: tuple[object, ...]) -> BootstrapSession:
    btid, impi, ks, rand, created, expires, gba_u = row
    assert isinstance(btid, str) and isinstance(impi, str)
    assert isinstance(ks, bytes) and isinstance(rand, bytes)
    assert isinstance(created, float) and isinstance(expires, float)
    return BootstrapSession(
        btid=btid,
        impi=impi,
        ks=ks,
        rand=rand,
        created=created,
        expires=expires,
        gba_u=bool(gba_u),
    )


class SqliteBootstrapSessionStore:
    """BSF bootstrapping sessions in table ``gba_sessions``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._conn = connect(path)

    def put(self, session: BootstrapSession) -> None:
        """Insert or replace the session with this B-TID (durable before returning)."""
        s = session
        with transaction(self._conn) as c:
            c.execute(
                "INSERT OR REPLACE INTO gba_sessions "
                "(btid, impi, ks, rand, created, expires, gba_u) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (s.btid, s.impi, s.ks, s.rand, float(s.created), float(s.expires), int(s.gba_u)),
            )

    def get(self, btid: str) -> BootstrapSession | None:
        """Return the session for ``btid`` or None."""
        row = self._conn.execute(
            "SELECT btid, impi, ks, rand, created, expires, gba_u FROM gba_sessions WHERE btid = ?",
            (btid,),
        ).fetchone()
        return None if row is None else _row_to_session(row)

    def delete(self, btid: str) -> bool:
        """Delete the session; return False when there was none."""
        with transaction(self._conn) as c:
            return c.execute("DELETE FROM gba_sessions WHERE btid = ?", (btid,)).rowcount > 0

    def purge_expired(self, now: float) -> int:
        """Delete every session expired at ``now``; return the count."""
        with transaction(self._conn) as c:
            return c.execute("DELETE FROM gba_sessions WHERE expires <= ?", (now,)).rowcount

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
