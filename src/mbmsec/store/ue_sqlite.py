"""SQLite UE key store: durable (WAL, ``synchronous=FULL``), file mode 0600."""

from __future__ import annotations

import os
import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ..mbms.keys import MskId, MskRef
from .sqlite_base import open_database, transaction
from .ue_keys import UeMskRecord, UeMtkRecord, UeMukRecord

__all__ = ["SqliteUeKeyStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ue_muks (
    idi          BLOB PRIMARY KEY,
    btid         TEXT NOT NULL,
    mrk          BLOB NOT NULL,
    muk          BLOB NOT NULL,
    expires      REAL NOT NULL,
    last_counter INTEGER,
    gba_u        INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ue_msks (
    kd             BLOB NOT NULL,
    msk_id         INTEGER NOT NULL,
    key            BLOB NOT NULL,
    mtk_first      INTEGER NOT NULL,
    mtk_last       INTEGER NOT NULL,
    received_at    REAL NOT NULL,
    last_counter   INTEGER,
    current_mtk_id INTEGER,
    service_id     TEXT,
    PRIMARY KEY (kd, msk_id)
);
CREATE TABLE IF NOT EXISTS ue_mtks (
    kd          BLOB NOT NULL,
    msk_id      INTEGER NOT NULL,
    mtk_id      INTEGER NOT NULL,
    key         BLOB NOT NULL,
    salt        BLOB,
    received_at REAL NOT NULL,
    PRIMARY KEY (kd, msk_id, mtk_id)
);
"""


def _ref(kd: bytes, msk_id: int) -> MskRef:
    return MskRef(bytes(kd), MskId.from_int(msk_id))


class SqliteUeKeyStore:
    """The :class:`~.ue_keys.UeKeyStore` protocol over one SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        self.path = p
        self._conn = open_database(p, _SCHEMA, "UE key database")

    def __repr__(self) -> str:
        return f"SqliteUeKeyStore({str(self.path)!r})"

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn)

    def put_muk(self, rec: UeMukRecord) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO ue_muks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (rec.idi, rec.btid, rec.mrk, rec.muk, rec.expires, rec.last_counter, rec.gba_u),
            )

    def get_muk(self, idi: bytes) -> UeMukRecord | None:
        row = self._conn.execute("SELECT * FROM ue_muks WHERE idi = ?", (idi,)).fetchone()
        if row is None:
            return None
        idi_, btid, mrk, muk, expires, last, gba_u = row
        return UeMukRecord(bytes(idi_), btid, bytes(mrk), bytes(muk), expires, last, bool(gba_u))

    def set_muk_counter(self, idi: bytes, btid: str, counter: int) -> bool:
        with self._tx() as c:
            cur = c.execute(
                "UPDATE ue_muks SET last_counter = ? WHERE idi = ? AND btid = ?",
                (counter, idi, btid),
            )
        return cur.rowcount > 0

    def delete_muk(self, idi: bytes) -> bool:
        with self._tx() as c:
            cur = c.execute("DELETE FROM ue_muks WHERE idi = ?", (idi,))
        return cur.rowcount > 0

    @staticmethod
    def _msk(row: tuple[Any, ...]) -> UeMskRecord:
        kd, msk_id, key, first, last, received_at, counter, mtk_id, service_id = row
        return UeMskRecord(
            _ref(kd, msk_id), bytes(key), first, last, received_at, counter, mtk_id, service_id
        )

    def put_msk(self, rec: UeMskRecord) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO ue_msks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.ref.key_domain_id,
                    rec.ref.msk_id.value,
                    rec.key,
                    rec.mtk_id_first,
                    rec.mtk_id_last,
                    rec.received_at,
                    rec.last_counter,
                    rec.current_mtk_id,
                    rec.service_id,
                ),
            )

    def get_msk(self, ref: MskRef) -> UeMskRecord | None:
        row = self._conn.execute(
            "SELECT * FROM ue_msks WHERE kd = ? AND msk_id = ?",
            (ref.key_domain_id, ref.msk_id.value),
        ).fetchone()
        return None if row is None else self._msk(row)

    def msks(self) -> list[UeMskRecord]:
        rows = self._conn.execute("SELECT * FROM ue_msks")
        return sorted((self._msk(r) for r in rows), key=lambda m: m.ref)

    def set_msk_state(self, ref: MskRef, last_counter: int, current_mtk_id: int) -> bool:
        with self._tx() as c:
            cur = c.execute(
                "UPDATE ue_msks SET last_counter = ?, current_mtk_id = ? "
                "WHERE kd = ? AND msk_id = ?",
                (last_counter, current_mtk_id, ref.key_domain_id, ref.msk_id.value),
            )
        return cur.rowcount > 0

    def delete_msk(self, ref: MskRef) -> bool:
        k = (ref.key_domain_id, ref.msk_id.value)
        with self._tx() as c:
            c.execute("DELETE FROM ue_mtks WHERE kd = ? AND msk_id = ?", k)
            cur = c.execute("DELETE FROM ue_msks WHERE kd = ? AND msk_id = ?", k)
        return cur.rowcount > 0

    def put_mtk(self, rec: UeMtkRecord) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO ue_mtks VALUES (?, ?, ?, ?, ?, ?)",
                (
                    rec.msk.key_domain_id,
                    rec.msk.msk_id.value,
                    rec.mtk_id,
                    rec.key,
                    rec.salt,
                    rec.received_at,
                ),
            )

    def get_mtk(self, ref: MskRef, mtk_id: int) -> UeMtkRecord | None:
        row = self._conn.execute(
            "SELECT key, salt, received_at FROM ue_mtks WHERE kd = ? AND msk_id = ? AND mtk_id = ?",
            (ref.key_domain_id, ref.msk_id.value, mtk_id),
        ).fetchone()
        if row is None:
            return None
        key, salt, at = row
        return UeMtkRecord(ref, mtk_id, bytes(key), None if salt is None else bytes(salt), at)

    def mtks_for_msk(self, ref: MskRef) -> list[UeMtkRecord]:
        rows = self._conn.execute(
            "SELECT mtk_id, key, salt, received_at FROM ue_mtks WHERE kd = ? AND msk_id = ? "
            "ORDER BY mtk_id",
            (ref.key_domain_id, ref.msk_id.value),
        )
        return [
            UeMtkRecord(ref, i, bytes(k), None if s is None else bytes(s), at)
            for i, k, s, at in rows
        ]

    def close(self) -> None:
        self._conn.close()
