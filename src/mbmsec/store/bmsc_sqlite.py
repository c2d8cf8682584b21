"""SQLite BM-SC store: durable (WAL, ``synchronous=FULL``), one transaction per write.

The file is created with mode 0600 (it holds MSKs and MTKs). A COUNTER reservation is a
``BEGIN IMMEDIATE`` read-modify-write, so two processes sharing the file never reserve the
same block. Several workers may open one file; SQLite serialises their writers. The leader
lease (:meth:`SqliteBmscStore.acquire_lease`) is the same kind of transaction: a row
(name, holder, expires) taken over only when ``expires <= now`` or by its own holder.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..mbms.keys import MskId, MskRef
from .bmsc_memory import check_block
from .bmsc_protocols import (
    DeliveryRecord,
    MskRecord,
    MtkRecord,
    Registration,
    ServiceRecord,
    counter_name_msk,
)
from .sqlite_base import open_database, transaction

__all__ = ["SqliteBmscStore", "service_from_json", "service_to_json"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bmsc_services (
    service_id TEXT PRIMARY KEY,
    data       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bmsc_msks (
    kd          BLOB NOT NULL,
    msk_id      INTEGER NOT NULL,
    service_id  TEXT NOT NULL,
    key         BLOB NOT NULL,
    valid_from  REAL NOT NULL,
    valid_until REAL NOT NULL,
    mtk_first   INTEGER NOT NULL,
    mtk_last    INTEGER NOT NULL,
    PRIMARY KEY (kd, msk_id)
);
CREATE INDEX IF NOT EXISTS bmsc_msks_service ON bmsc_msks (service_id, valid_from);
CREATE TABLE IF NOT EXISTS bmsc_mtks (
    kd          BLOB NOT NULL,
    msk_id      INTEGER NOT NULL,
    mtk_id      INTEGER NOT NULL,
    key         BLOB NOT NULL,
    salt        BLOB,
    valid_from  REAL NOT NULL,
    valid_until REAL NOT NULL,
    PRIMARY KEY (kd, msk_id, mtk_id)
);
CREATE TABLE IF NOT EXISTS bmsc_counters (
    name TEXT PRIMARY KEY,
    high INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bmsc_registrations (
    impi          TEXT NOT NULL,
    service_id    TEXT NOT NULL,
    btid          TEXT NOT NULL,
    push_host     TEXT NOT NULL,
    push_port     INTEGER NOT NULL,
    registered_at REAL NOT NULL,
    PRIMARY KEY (impi, service_id)
);
CREATE INDEX IF NOT EXISTS bmsc_registrations_service ON bmsc_registrations (service_id);
CREATE TABLE IF NOT EXISTS bmsc_deliveries (
    btid         TEXT NOT NULL,
    csb_id       INTEGER NOT NULL,
    kd           BLOB NOT NULL,
    msk_id       INTEGER NOT NULL,
    counter      INTEGER NOT NULL,
    sent_at      REAL NOT NULL,
    impi         TEXT NOT NULL,
    confirmed_at REAL,
    message      BLOB,
    PRIMARY KEY (btid, csb_id)
);
CREATE INDEX IF NOT EXISTS bmsc_deliveries_msk ON bmsc_deliveries (kd, msk_id);
CREATE TABLE IF NOT EXISTS bmsc_members (
    grp    TEXT NOT NULL,
    member TEXT NOT NULL,
    until  REAL NOT NULL,
    PRIMARY KEY (grp, member)
);
CREATE TABLE IF NOT EXISTS bmsc_leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


def service_to_json(s: ServiceRecord) -> str:
    """Serialise a service record (Key Domain ID as hex)."""
    d = asdict(s)
    d["key_domain_id"] = s.key_domain_id.hex()
    d["allowed_users"] = list(s.allowed_users)
    return json.dumps(d, sort_keys=True)


def service_from_json(text: str) -> ServiceRecord:
    """Inverse of :func:`service_to_json`. Raises ConfigError on a malformed record."""
    try:
        d: dict[str, Any] = json.loads(text)
        d["key_domain_id"] = bytes.fromhex(d["key_domain_id"])
        d["allowed_users"] = tuple(d["allowed_users"])
        return ServiceRecord(**d)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"malformed service record: {exc}") from exc


def _add_message_column(conn: sqlite3.Connection) -> None:
    """Upgrade a database made before ``bmsc_deliveries.message`` existed."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(bmsc_deliveries)")}
    if "message" in cols:
        return
    try:
        conn.execute("ALTER TABLE bmsc_deliveries ADD COLUMN message BLOB")
    except sqlite3.OperationalError as exc:
        if "duplicate column" not in str(exc):  # another worker added it first
            raise


def _ref(kd: bytes, msk_id: int) -> MskRef:
    return MskRef(bytes(kd), MskId.from_int(msk_id))


class SqliteBmscStore:
    """The :class:`~.bmsc_protocols.BmscStore` protocol over one SQLite file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        self.path = p
        conn = open_database(p, _SCHEMA, "BM-SC database")
        try:
            _add_message_column(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise ConfigError(f"cannot open BM-SC database {str(p)!r}: {exc}") from exc
        self._conn = conn

    def __repr__(self) -> str:
        return f"SqliteBmscStore({str(self.path)!r})"

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn)

    # services
    def put_service(self, service: ServiceRecord) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO bmsc_services VALUES (?, ?)",
                (service.service_id, service_to_json(service)),
            )

    def get_service(self, service_id: str) -> ServiceRecord | None:
        row = self._conn.execute(
            "SELECT data FROM bmsc_services WHERE service_id = ?", (service_id,)
        ).fetchone()
        return None if row is None else service_from_json(row[0])

    def services(self) -> list[ServiceRecord]:
        rows = self._conn.execute("SELECT data FROM bmsc_services ORDER BY service_id")
        return [service_from_json(r[0]) for r in rows]

    def remove_service(self, service_id: str) -> bool:
        with self._tx() as c:
            cur = c.execute("DELETE FROM bmsc_services WHERE service_id = ?", (service_id,))
        return cur.rowcount > 0

    # keys
    @staticmethod
    def _msk(row: tuple[Any, ...]) -> MskRecord:
        kd, msk_id, service_id, key, vf, vu, first, last = row
        return MskRecord(_ref(kd, msk_id), service_id, bytes(key), vf, vu, first, last)

    def put_msk(self, msk: MskRecord) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO bmsc_msks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    msk.ref.key_domain_id,
                    msk.ref.msk_id.value,
                    msk.service_id,
                    msk.key,
                    msk.valid_from,
                    msk.valid_until,
                    msk.mtk_id_first,
                    msk.mtk_id_last,
                ),
            )

    def get_msk(self, ref: MskRef) -> MskRecord | None:
        row = self._conn.execute(
            "SELECT * FROM bmsc_msks WHERE kd = ? AND msk_id = ?",
            (ref.key_domain_id, ref.msk_id.value),
        ).fetchone()
        return None if row is None else self._msk(row)

    def msks_for_service(self, service_id: str) -> list[MskRecord]:
        rows = self._conn.execute(
            "SELECT * FROM bmsc_msks WHERE service_id = ? ORDER BY valid_from, kd, msk_id",
            (service_id,),
        )
        return [self._msk(r) for r in rows]

    def put_mtk(self, mtk: MtkRecord) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO bmsc_mtks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    mtk.msk.key_domain_id,
                    mtk.msk.msk_id.value,
                    mtk.mtk_id,
                    mtk.key,
                    mtk.salt,
                    mtk.valid_from,
                    mtk.valid_until,
                ),
            )

    def mtks_for_msk(self, ref: MskRef) -> list[MtkRecord]:
        rows = self._conn.execute(
            "SELECT mtk_id, key, salt, valid_from, valid_until FROM bmsc_mtks "
            "WHERE kd = ? AND msk_id = ? ORDER BY mtk_id",
            (ref.key_domain_id, ref.msk_id.value),
        )
        return [
            MtkRecord(ref, i, bytes(k), None if s is None else bytes(s), vf, vu)
            for i, k, s, vf, vu in rows
        ]

    def purge_keys(self, before: float) -> int:
        with self._tx() as c:
            dead = c.execute(
                "SELECT kd, msk_id FROM bmsc_msks WHERE valid_until < ?", (before,)
            ).fetchall()
            c.execute("DELETE FROM bmsc_members WHERE until < ?", (before,))
            for kd, msk_id in dead:
                c.execute("DELETE FROM bmsc_mtks WHERE kd = ? AND msk_id = ?", (kd, msk_id))
                c.execute("DELETE FROM bmsc_msks WHERE kd = ? AND msk_id = ?", (kd, msk_id))
                c.execute(
                    "DELETE FROM bmsc_counters WHERE name = ?",
                    (counter_name_msk(_ref(kd, msk_id)),),
                )
        return len(dead)

    # counters
    def reserve_counter(self, name: str, block: int) -> int:
        with self._tx() as c:
            row = c.execute("SELECT high FROM bmsc_counters WHERE name = ?", (name,)).fetchone()
            new = check_block(name, 0 if row is None else int(row[0]), block)
            c.execute("INSERT OR REPLACE INTO bmsc_counters VALUES (?, ?)", (name, new))
        return new

    def get_counter(self, name: str) -> int:
        row = self._conn.execute(
            "SELECT high FROM bmsc_counters WHERE name = ?", (name,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    # registrations
    def put_registration(self, reg: Registration) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO bmsc_registrations VALUES (?, ?, ?, ?, ?, ?)",
                (
                    reg.impi,
                    reg.service_id,
                    reg.btid,
                    reg.push_host,
                    reg.push_port,
                    reg.registered_at,
                ),
            )

    def get_registration(self, impi: str, service_id: str) -> Registration | None:
        row = self._conn.execute(
            "SELECT * FROM bmsc_registrations WHERE impi = ? AND service_id = ?",
            (impi, service_id),
        ).fetchone()
        return None if row is None else Registration(*row)

    def remove_registration(self, impi: str, service_id: str) -> bool:
        with self._tx() as c:
            cur = c.execute(
                "DELETE FROM bmsc_registrations WHERE impi = ? AND service_id = ?",
                (impi, service_id),
            )
        return cur.rowcount > 0

    def registrations_for_service(self, service_id: str) -> list[Registration]:
        rows = self._conn.execute(
            "SELECT * FROM bmsc_registrations WHERE service_id = ? ORDER BY impi", (service_id,)
        )
        return [Registration(*r) for r in rows]

    # deliveries
    @staticmethod
    def _delivery(row: tuple[Any, ...]) -> DeliveryRecord:
        btid, csb_id, kd, msk_id, counter, sent_at, impi, confirmed_at, message = row
        return DeliveryRecord(
            btid,
            csb_id,
            _ref(kd, msk_id),
            counter,
            sent_at,
            impi,
            confirmed_at,
            None if message is None else bytes(message),
        )

    def put_delivery(self, rec: DeliveryRecord) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO bmsc_deliveries (btid, csb_id, kd, msk_id, counter, "
                "sent_at, impi, confirmed_at, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.btid,
                    rec.csb_id,
                    rec.msk.key_domain_id,
                    rec.msk.msk_id.value,
                    rec.counter,
                    rec.sent_at,
                    rec.impi,
                    rec.confirmed_at,
                    rec.message,
                ),
            )

    def confirm_delivery(self, btid: str, csb_id: int, when: float) -> bool:
        with self._tx() as c:
            cur = c.execute(
                "UPDATE bmsc_deliveries SET confirmed_at = COALESCE(confirmed_at, ?) "
                "WHERE btid = ? AND csb_id = ?",
                (when, btid, csb_id),
            )
        return cur.rowcount > 0

    def get_delivery(self, btid: str, csb_id: int) -> DeliveryRecord | None:
        row = self._conn.execute(
            "SELECT * FROM bmsc_deliveries WHERE btid = ? AND csb_id = ?", (btid, csb_id)
        ).fetchone()
        return None if row is None else self._delivery(row)

    def deliveries_for_msk(self, ref: MskRef) -> list[DeliveryRecord]:
        rows = self._conn.execute(
            "SELECT * FROM bmsc_deliveries WHERE kd = ? AND msk_id = ? "
            "ORDER BY sent_at, btid, csb_id",
            (ref.key_domain_id, ref.msk_id.value),
        )
        return [self._delivery(r) for r in rows]

    # fan-out membership
    def add_group_members(self, group: str, members: dict[str, float]) -> None:
        with self._tx() as c:
            c.executemany(
                "INSERT INTO bmsc_members VALUES (?, ?, ?) ON CONFLICT (grp, member) "
                "DO UPDATE SET until = MAX(until, excluded.until)",
                [(group, m, until) for m, until in members.items()],
            )

    def group_members(self, group: str, now: float) -> dict[str, float]:
        rows = self._conn.execute(
            "SELECT member, until FROM bmsc_members WHERE grp = ? AND until > ?", (group, now)
        )
        return {str(m): float(u) for m, u in rows}

    # leadership
    def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        with self._tx() as c:
            row = c.execute(
                "SELECT holder, expires FROM bmsc_leases WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and row[0] != holder and float(row[1]) > now:
                return False
            c.execute(
                "INSERT OR REPLACE INTO bmsc_leases VALUES (?, ?, ?)", (name, holder, now + ttl)
            )
        return True

    def release_lease(self, name: str, holder: str) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM bmsc_leases WHERE name = ? AND holder = ?", (name, holder))

    def lease_holder(self, name: str, now: float) -> str | None:
        row = self._conn.execute(
            "SELECT holder FROM bmsc_leases WHERE name = ? AND expires > ?", (name, now)
        ).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        self._conn.close()
