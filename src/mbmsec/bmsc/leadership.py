"""Leader election among BM-SC workers sharing one store: a renewed lease, sans-I/O.

Theory of operation
-------------------
Several workers (``mbmsec bmsc --workers N``, or processes on several hosts) share one
:class:`~mbmsec.store.bmsc_protocols.BmscStore`. Exactly one of them, the *leader*, generates
keys, announces MTKs and pushes next MSKs (ARCHITECTURE §5); the others serve requests from the
keys in the store. The leader is whoever holds the store's lease ``name``
(:meth:`BmscStore.acquire_lease`: atomic take-if-free-or-expired, renew-if-mine):

- every worker calls :meth:`LeaderLease.poll` when :meth:`LeaderLease.deadline` is reached:
  the holder renews every ``ttl / 3``, the others try to take the lease as often;
- the holder acts as leader only while ``now < renewed_at + ttl - ttl / 3``
  (:meth:`LeaderLease.is_leader`): it stops acting a third of the lease before any other worker
  may take over, so two leaders never act at once unless a process stalls for more than
  ``ttl / 3`` between this check and its writes;
- a dead leader is replaced at most ``ttl + ttl / 3`` after its last renewal; a leader that
  stops cleanly releases the lease (:meth:`LeaderLease.release`) and is replaced within
  ``ttl / 3``.

Time is the caller's ``now``; a store with its own clock (Redis) expires the lease by that
clock, which only makes the local view more conservative. COUNTER values stay unique
whatever happens: they come from blocks reserved atomically in the store, and a new leader
reserves fresh blocks (it drops any block it held before), so a UE sees COUNTERs increase
across a change of leader.
"""

from __future__ import annotations

from typing import Final

from ..errors import ConfigError
from ..store.bmsc_protocols import BmscStore

__all__ = ["LEADER_LEASE", "LeaderLease"]

LEADER_LEASE: Final = "bmsc-leader"


class LeaderLease:
    """One worker's view of the leader lease ``name`` held as ``holder`` (see module doc)."""

    def __init__(self, store: BmscStore, holder: str, ttl: float, name: str = LEADER_LEASE) -> None:
        if ttl <= 0:
            raise ConfigError("leader lease must be positive")
        if not holder:
            raise ConfigError("a lease holder needs a name")
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.name = name
        self._renewed_at: float | None = None  # last successful take/renew
        self._next_poll = 0.0

    def __repr__(self) -> str:
        held = self._renewed_at is not None
        return f"LeaderLease(holder={self.holder!r}, ttl={self.ttl}, held={held})"

    @property
    def interval(self) -> float:
        """How often the lease is renewed (holder) or tried (others): a third of ``ttl``."""
        return self.ttl / 3

    def is_leader(self, now: float) -> bool:
        """True while this worker may act as leader at ``now``."""
        return self._renewed_at is not None and now < self._renewed_at + self.ttl - self.interval

    def deadline(self) -> float:
        """When :meth:`poll` should run next."""
        return self._next_poll

    def poll(self, now: float) -> bool:
        """Take or renew the lease when due; return :meth:`is_leader` at ``now``.

        A store error propagates (the lease is then not renewed and leadership lapses by
        itself at the margin)."""
        if now >= self._next_poll:
            self._next_poll = now + self.interval
            if self.store.acquire_lease(self.name, self.holder, self.ttl, now):
                self._renewed_at = now
            else:
                self._renewed_at = None
        return self.is_leader(now)

    def release(self) -> None:
        """Give the lease up (clean stop): another worker takes over at its next poll."""
        if self._renewed_at is not None:
            self._renewed_at = None
            self.store.release_lease(self.name, self.holder)
