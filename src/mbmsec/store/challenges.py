"""Pending Ub challenges of the BSF: protocol, record, in-memory and SQLite stores.

A challenge is the AKA vector behind one ``401`` (TS 33.220 §4.5.2 step 2, RFC 3310 §3.1):
nonce = base64(RAND || AUTN) -> IMPI, RAND, AUTN, XRES, CK, IK, expiry, GBA_U flag. The BSF
keeps it until the UE answers. Rules every implementation keeps:

* **single use**: :meth:`ChallengeStore.take` removes and returns the record in one atomic
  step, so of two workers receiving the same answer at once only one gets the record;
* **expiring**: a record taken at or after its ``expires`` is removed and reported as absent;
* **bounded**: at most ``max_per_impi`` records per IMPI and ``max_pending`` in all; a new
  record beyond a bound displaces the oldest ones (of that IMPI, then overall).

:class:`MemoryChallengeStore` (the default) serves one BSF process. Several BSF processes share
a :class:`SqliteChallengeStore` (one host, one file) or a
:class:`~mbmsec.store.redis_gba.RedisChallengeStore` (many hosts), so that the ``401`` from
worker A can be answered at worker B.
"""

from __future__ import annotations

import os
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..errors import ConfigError
from .sqlite_gba import connect

__all__ = [
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_PER_IMPI",
    "ChallengeStore",
    "MemoryChallengeStore",
    "PendingChallenge",
    "SqliteChallengeStore",
]

DEFAULT_MAX_PENDING = 10000
DEFAULT_MAX_PER_IMPI = 8


@dataclass(frozen=True, slots=True)
class PendingChallenge:
    """One outstanding Ub challenge (an AV handed to the UE, TS 33.102 §6.3.2).

    ``autn`` is the AUTN as sent (with MAC* for GBA_U, TS 33.220 §5.3.2); ``expires`` is POSIX
    seconds. XRES, CK and IK never appear in ``repr``.
    """

    nonce: str
    impi: str
    rand: bytes
    autn: bytes
    xres: bytes = field(repr=False)
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    expires: float
    gba_u: bool = False

    @property
    def ks(self) -> bytes:
        """Ks = CK || IK (TS 33.220 §4.5.2)."""
        return self.ck + self.ik


@runtime_checkable
class ChallengeStore(Protocol):
    """Outstanding Ub challenges keyed by nonce; see the module rules."""

    def put(self, challenge: PendingChallenge, now: float) -> int:
        """Store ``challenge``; return how many older live challenges were displaced to keep
        the bounds (expired ones are dropped silently). A challenge already expired at ``now``
        is not stored."""
        ...

    def take(self, nonce: str, impi: str, now: float) -> PendingChallenge | None:
        """Atomically remove and return the challenge with this nonce issued to ``impi``.

        None when there is none (never issued, already taken, displaced), when it was issued
        to another IMPI (it is then left in place) or when it expired at ``now`` (it is then
        removed).
        """
        ...

    def purge_expired(self, now: float) -> int:
        """Delete every challenge expired at ``now``; return how many were deleted."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


def check_bounds(max_pending: int, max_per_impi: int) -> None:
    """ConfigError unless both bounds are at least 1."""
    if max_pending < 1 or max_per_impi < 1:
        raise ConfigError("challenge bounds must be at least 1")


class MemoryChallengeStore:
    """Challenges in one process's memory, in insertion order (oldest first)."""

    def __init__(
        self, max_pending: int = DEFAULT_MAX_PENDING, max_per_impi: int = DEFAULT_MAX_PER_IMPI
    ) -> None:
        check_bounds(max_pending, max_per_impi)
        self.max_pending = max_pending
        self.max_per_impi = max_per_impi
        self._by_nonce: OrderedDict[str, PendingChallenge] = OrderedDict()
        self._by_impi: dict[str, list[str]] = {}

    def __len__(self) -> int:
        return len(self._by_nonce)

    def _drop(self, nonce: str) -> None:
        ch = self._by_nonce.pop(nonce)
        nonces = self._by_impi[ch.impi]
        nonces.remove(nonce)
        if not nonces:
            del self._by_impi[ch.impi]

    def put(self, challenge: PendingChallenge, now: float) -> int:
        """Store ``challenge``; return how many live challenges were displaced."""
        if challenge.expires <= now:
            return 0
        while self._by_nonce:  # the oldest first; all have the same lifetime in a BSF
            nonce, ch = next(iter(self._by_nonce.items()))
            if ch.expires > now:
                break
            self._drop(nonce)
        if challenge.nonce in self._by_nonce:
            self._drop(challenge.nonce)
        dropped = 0
        mine = self._by_impi.get(challenge.impi, [])
        while len(mine) >= self.max_per_impi:
            self._drop(mine[0])
            mine = self._by_impi.get(challenge.impi, [])
            dropped += 1
        while len(self._by_nonce) >= self.max_pending:
            self._drop(next(iter(self._by_nonce)))
            dropped += 1
        self._by_nonce[challenge.nonce] = challenge
        self._by_impi.setdefault(challenge.impi, []).append(challenge.nonce)
        return dropped

    def take(self, nonce: str, impi: str, now: float) -> PendingChallenge | None:
        """Remove and return the live challenge (see :meth:`ChallengeStore.take`)."""
        ch = self._by_nonce.get(nonce)
        if ch is None or ch.impi != impi:
            return None
        self._drop(nonce)
        return None if ch.expires <= now else ch

    def purge_expired(self, now: float) -> int:
        """Delete every challenge expired at ``now``; return the count."""
        dead = [n for n, ch in self._by_nonce.items() if ch.expires <= now]
        for n in dead:
            self._drop(n)
        return len(dead)

    def close(self) -> None:
        """Nothing to release."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS gba_challenges (
    nonce     TEXT PRIMARY KEY,
    impi      TEXT NOT NULL,
    rand      BLOB NOT NULL,
    autn      BLOB NOT NULL,
    xres      BLOB NOT NULL,
    ck        BLOB NOT NULL,
    ik        BLOB NOT NULL,
    expires   REAL NOT NULL,
    gba_u     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS gba_challenges_impi ON gba_challenges (impi);
CREATE INDEX IF NOT EXISTS gba_challenges_expires ON gba_challenges (expires);
"""


def _row_to_challenge(row: tuple[object, ...]) -> PendingChallenge:
    nonce, impi, rand, autn, xres, ck, ik, expires, gba_u = row
    assert isinstance(nonce, str) and isinstance(impi, str) and isinstance(expires, float)
    assert isinstance(rand, bytes) and isinstance(autn, bytes) and isinstance(xres, bytes)
    assert isinstance(ck, bytes) and isinstance(ik, bytes)
    return PendingChallenge(nonce, impi, rand, autn, xres, ck, ik, expires, bool(gba_u))


class SqliteChallengeStore:
    """Challenges in table ``gba_challenges`` of a GBA database (several processes, one host).

    The table lives in the same 0600 file as the subscribers and sessions. Writes use
    ``synchronous=NORMAL`` (a challenge lost in a power cut only costs the UE a new 401);
    :meth:`take` is one ``DELETE ... RETURNING`` statement, so a nonce is taken once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_pending: int = DEFAULT_MAX_PENDING,
        max_per_impi: int = DEFAULT_MAX_PER_IMPI,
    ) -> None:
        check_bounds(max_pending, max_per_impi)
        self.max_pending = max_pending
        self.max_per_impi = max_per_impi
        self._conn = connect(path)
        try:
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._conn.close()
            raise ConfigError(f"cannot open GBA database {str(path)!r}: {exc}") from exc

    def put(self, challenge: PendingChallenge, now: float) -> int:
        """Store ``challenge`` in one transaction; return how many were displaced."""
        c = challenge
        if c.expires <= now:
            return 0
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM gba_challenges WHERE expires <= ?", (now,))
            conn.execute("DELETE FROM gba_challenges WHERE nonce = ?", (c.nonce,))
            dropped = 0
            (mine,) = conn.execute(
                "SELECT count(*) FROM gba_challenges WHERE impi = ?", (c.impi,)
            ).fetchone()
            if mine >= self.max_per_impi:
                dropped += conn.execute(
                    "DELETE FROM gba_challenges WHERE rowid IN (SELECT rowid FROM gba_challenges "
                    "WHERE impi = ? ORDER BY rowid LIMIT ?)",
                    (c.impi, mine - self.max_per_impi + 1),
                ).rowcount
            (total,) = conn.execute("SELECT count(*) FROM gba_challenges").fetchone()
            if total >= self.max_pending:
                dropped += conn.execute(
                    "DELETE FROM gba_challenges WHERE rowid IN (SELECT rowid FROM gba_challenges "
                    "ORDER BY rowid LIMIT ?)",
                    (total - self.max_pending + 1,),
                ).rowcount
            conn.execute(
                "INSERT INTO gba_challenges (nonce, impi, rand, autn, xres, ck, ik, expires, "
                "gba_u) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (c.nonce, c.impi, c.rand, c.autn, c.xres, c.ck, c.ik, float(c.expires), c.gba_u),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return dropped

    def take(self, nonce: str, impi: str, now: float) -> PendingChallenge | None:
        """Remove and return the live challenge (see :meth:`ChallengeStore.take`)."""
        rows = self._conn.execute(
            "DELETE FROM gba_challenges WHERE nonce = ? AND impi = ? "
            "RETURNING nonce, impi, rand, autn, xres, ck, ik, expires, gba_u",
            (nonce, impi),
        ).fetchall()  # fetched to the end: the statement (and its write) completes
        if not rows:
            return None
        ch = _row_to_challenge(rows[0])
        return None if ch.expires <= now else ch

    def purge_expired(self, now: float) -> int:
        """Delete every challenge expired at ``now``; return the count."""
        return self._conn.execute("DELETE FROM gba_challenges WHERE expires <= ?", (now,)).rowcount

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()
