"""In-memory GBA stores (tests, simulator, ``mbmsec demo``): same semantics as SQLite."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ..errors import DuplicateEntryError
from .protocols import SQN_MAX, BootstrapSession, Subscriber

__all__ = ["MemoryBootstrapSessionStore", "MemorySubscriberStore"]


class MemorySubscriberStore:
    """A dict of :class:`Subscriber` records keyed by IMPI."""

    def __init__(self) -> None:
        self._subs: dict[str, Subscriber] = {}

    def add(self, subscriber: Subscriber) -> None:
        """Insert a new record. Raises DuplicateEntryError when the IMPI exists."""
        self.add_many([subscriber])

    def add_many(self, subscribers: Sequence[Subscriber]) -> None:
        """Insert all records or none. Raises DuplicateEntryError on any existing IMPI."""
        seen: set[str] = set()
        for s in subscribers:
            if s.impi in self._subs or s.impi in seen:
                raise DuplicateEntryError(f"IMPI already provisioned: {s.impi}")
            seen.add(s.impi)
        for s in subscribers:
            self._subs[s.impi] = s

    def get(self, impi: str) -> Subscriber | None:
        """Return the record for ``impi`` or None."""
        return self._subs.get(impi)

    def remove(self, impi: str) -> bool:
        """Delete the record; return False when there was none."""
        return self._subs.pop(impi, None) is not None

    def all(self) -> list[Subscriber]:
        """Every record, ordered by IMPI."""
        return [self._subs[k] for k in sorted(self._subs)]

    def advance_sqn(self, impi: str, advance: Callable[[int], int]) -> Subscriber | None:
        """Replace SQN_HE by ``advance(SQN_HE)`` and return the updated record."""
        s = self._subs.get(impi)
        if s is None:
            return None
        s = replace(s, sqn=advance(s.sqn))
        self._subs[impi] = s
        return s

    def set_sqn(self, impi: str, sqn: int) -> bool:
        """Set SQN_HE; return False when the IMPI is unknown. ValueError if not 48-bit."""
        if not 0 <= sqn <= SQN_MAX:
            raise ValueError("SQN must fit in 48 bits")
        s = self._subs.get(impi)
        if s is None:
            return False
        self._subs[impi] = replace(s, sqn=sqn)
        return True

    def close(self) -> None:
        """Nothing to release."""


class MemoryBootstrapSessionStore:
    """A dict of :class:`BootstrapSession` keyed by B-TID."""

    def __init__(self) -> None:
        self._sessions: dict[str, BootstrapSession] = {}

    def put(self, session: BootstrapSession) -> None:
        """Insert or replace the session with this B-TID."""
        self._sessions[session.btid] = session

    def get(self, btid: str) -> BootstrapSession | None:
        """Return the session for ``btid`` or None."""
        return self._sessions.get(btid)

    def delete(self, btid: str) -> bool:
        """Delete the session; return False when there was none."""
        return self._sessions.pop(btid, None) is not None

    def purge_expired(self, now: float) -> int:
        """Delete every session expired at ``now``; return the count."""
        dead = [b for b, s in self._sessions.items() if s.expired(now)]
        for b in dead:
            del self._sessions[b]
        return len(dead)

    def close(self) -> None:
        """Nothing to release."""
