"""Store protocols and records for GBA: subscribers (HSS) and bootstrapping sessions (BSF).

The records are frozen dataclasses; key fields never appear in ``repr``. The protocols are
synchronous so that the sans-I/O HSS and BSF can call them directly. Implementations:
:mod:`mbmsec.store.sqlite_gba` (embedded, durable), :mod:`mbmsec.store.memory_gba` (tests,
simulator); a Redis implementation can satisfy the same protocols (every method is one key
lookup or one atomic update of one key). BM-SC stores live in sibling modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "AMF_LEN",
    "K_LEN",
    "SQN_MAX",
    "BootstrapSession",
    "BootstrapSessionStore",
    "Guss",
    "Subscriber",
    "SubscriberStore",
]

K_LEN = 16  # TS 33.102 §6.3.7: K is 128 bits; OPc too (TS 35.206)
AMF_LEN = 2  # TS 33.102 §6.3.2
SQN_MAX = (1 << 48) - 1  # TS 33.102 §6.3.2: SQN is 48 bits

NAF_WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class Guss:
    """GBA User Security Settings, the part this system uses (TS 33.220 §4.4.7, TS 29.109).

    ``naf_fqdns`` lists the NAFs (by FQDN) this user may use; the entry ``"*"`` allows any NAF
    and an empty tuple allows none. ``mbms_service_ids`` lists the MBMS user services the user
    subscribes to (handed to the BM-SC over Zn; empty means no restriction is signalled).
    """

    naf_fqdns: tuple[str, ...] = (NAF_WILDCARD,)
    mbms_service_ids: tuple[str, ...] = ()

    def allows_naf(self, fqdn: str) -> bool:
        """True when this user may obtain keys for the NAF with this FQDN."""
        f = fqdn.lower()
        return any(n == NAF_WILDCARD or n.lower() == f for n in self.naf_fqdns)


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One HSS subscription record (TS 33.220 §4.4.2, TS 33.102 §6.3).

    ``sqn`` is SQN_HE: the sequence number of the last authentication vector generated (0 for
    a new subscriber). ``uicc`` marks a GBA_U capable UICC (TS 33.220 §5).
    """

    impi: str
    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    sqn: int = 0
    amf: bytes = b"\x80\x00"
    guss: Guss = field(default_factory=Guss)
    uicc: bool = False

    def __post_init__(self) -> None:
        if not self.impi or len(self.impi) > 255:
            raise ValueError("IMPI must be 1..255 characters")
        if len(self.k) != K_LEN:
            raise ValueError(f"K must be {K_LEN} bytes")
        if len(self.opc) != K_LEN:
            raise ValueError(f"OPc must be {K_LEN} bytes")
        if len(self.amf) != AMF_LEN:
            raise ValueError(f"AMF must be {AMF_LEN} bytes")
        if not 0 <= self.sqn <= SQN_MAX:
            raise ValueError("SQN must fit in 48 bits")


@dataclass(frozen=True, slots=True)
class BootstrapSession:
    """A bootstrapping session held by the BSF (TS 33.220 §4.5.2).

    ``ks`` = CK || IK; ``created`` and ``expires`` are POSIX seconds (UTC). ``gba_u`` is true
    when the session was bootstrapped with a GBA_U UICC (TS 33.220 §5.3.2).
    """

    btid: str
    impi: str
    ks: bytes = field(repr=False)
    rand: bytes
    created: float
    expires: float
    gba_u: bool = False

    def expired(self, now: float) -> bool:
        """True at and after the key lifetime's end."""
        return now >= self.expires


@runtime_checkable
class SubscriberStore(Protocol):
    """HSS subscriber records, keyed by IMPI. Every mutating call is atomic and durable."""

    def add(self, subscriber: Subscriber) -> None:
        """Insert a new record. Raises DuplicateEntryError when the IMPI exists."""
        ...

    def add_many(self, subscribers: Sequence[Subscriber]) -> None:
        """Insert all records or none. Raises DuplicateEntryError on any existing IMPI."""
        ...

    def get(self, impi: str) -> Subscriber | None:
        """Return the record for ``impi`` or None."""
        ...

    def remove(self, impi: str) -> bool:
        """Delete the record; return False when there was none."""
        ...

    def all(self) -> list[Subscriber]:
        """Every record, ordered by IMPI."""
        ...

    def advance_sqn(self, impi: str, advance: Callable[[int], int]) -> Subscriber | None:
        """Atomically replace SQN_HE by ``advance(SQN_HE)`` and return the updated record.

        Returns None when the IMPI is unknown. The new SQN is durable before this returns;
        two concurrent callers never see the same SQN. Exceptions from ``advance`` leave the
        record unchanged.
        """
        ...

    def set_sqn(self, impi: str, sqn: int) -> bool:
        """Set SQN_HE (after a resynchronisation); return False when the IMPI is unknown."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


@runtime_checkable
class BootstrapSessionStore(Protocol):
    """BSF bootstrapping sessions, keyed by B-TID. Writes are durable before they return."""

    def put(self, session: BootstrapSession) -> None:
        """Insert or replace the session with this B-TID."""
        ...

    def get(self, btid: str) -> BootstrapSession | None:
        """Return the session for ``btid`` (even when expired) or None."""
        ...

    def delete(self, btid: str) -> bool:
        """Delete the session; return False when there was none."""
        ...

    def purge_expired(self, now: float) -> int:
        """Delete every session expired at ``now``; return how many were deleted."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...
