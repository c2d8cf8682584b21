"""UE key store protocol, records and an in-memory implementation.

What a UE keeps across restarts (the ME / UICC storage of TS 31.102 §4.2.80-§4.2.81, in our own
schema): the MUK per BM-SC with its MSK-message COUNTER, each MSK with its MTK-message COUNTER
and current MTK ID (the MGV-F state, TS 33.246 §6.5), and the MTKs. COUNTER state is written
before a key it releases is used, so a replayed message stays rejected after a restart.
Durable implementation: :mod:`.ue_sqlite`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol, runtime_checkable

from ..mbms.keys import MskRef

__all__ = ["MemoryUeKeyStore", "UeKeyStore", "UeMskRecord", "UeMtkRecord", "UeMukRecord"]


@dataclass(frozen=True, slots=True)
class UeMukRecord:
    """The UE's MRK/MUK for one BM-SC (MUK ID = (idi, btid)), with the last accepted COUNTER of
    MSK messages under this MUK (None before the first). ``expires``: key lifetime end
    (POSIX seconds) from the bootstrapping."""

    idi: bytes
    btid: str
    mrk: bytes = field(repr=False)
    muk: bytes = field(repr=False)
    expires: float
    last_counter: int | None = None
    gba_u: bool = False


@dataclass(frozen=True, slots=True)
class UeMskRecord:
    """An MSK held by the UE with its MGV-F state: validity as an MTK ID range, the last
    accepted MTK-message COUNTER and the current MTK ID (None before the first MTK)."""

    ref: MskRef
    key: bytes = field(repr=False)
    mtk_id_first: int
    mtk_id_last: int
    received_at: float
    last_counter: int | None = None
    current_mtk_id: int | None = None
    service_id: str | None = None


@dataclass(frozen=True, slots=True)
class UeMtkRecord:
    """An MTK (SRTP master key) and its optional salt under one MSK."""

    msk: MskRef
    mtk_id: int
    key: bytes = field(repr=False)
    salt: bytes | None = field(default=None, repr=False)
    received_at: float = 0.0


@runtime_checkable
class UeKeyStore(Protocol):
    """The UE's durable key store. Every mutating call is durable before it returns."""

    def put_muk(self, rec: UeMukRecord) -> None:
        """Insert or replace the MUK of BM-SC ``rec.idi`` (one per BM-SC, TS 31.102 EF_MUK)."""
        ...

    def get_muk(self, idi: bytes) -> UeMukRecord | None:
        """The MUK for the BM-SC identity ``idi`` or None."""
        ...

    def set_muk_counter(self, idi: bytes, btid: str, counter: int) -> bool:
        """Record an accepted MSK-message COUNTER; False when the MUK (idi, btid) is unknown."""
        ...

    def delete_muk(self, idi: bytes) -> bool:
        """Delete; False when there was none."""
        ...

    def put_msk(self, rec: UeMskRecord) -> None:
        """Insert or replace an MSK (keeps nothing of an older record with the same ref)."""
        ...

    def get_msk(self, ref: MskRef) -> UeMskRecord | None:
        """The MSK or None."""
        ...

    def msks(self) -> list[UeMskRecord]:
        """Every MSK ordered by (Key Domain ID, MSK ID)."""
        ...

    def set_msk_state(self, ref: MskRef, last_counter: int, current_mtk_id: int) -> bool:
        """Record the MGV-F state after an accepted MTK message; False when the MSK is unknown."""
        ...

    def delete_msk(self, ref: MskRef) -> bool:
        """Delete an MSK and its MTKs; False when there was none."""
        ...

    def put_mtk(self, rec: UeMtkRecord) -> None:
        """Insert or replace an MTK."""
        ...

    def get_mtk(self, ref: MskRef, mtk_id: int) -> UeMtkRecord | None:
        """The MTK or None."""
        ...

    def mtks_for_msk(self, ref: MskRef) -> list[UeMtkRecord]:
        """MTKs of one MSK ordered by MTK ID."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


class MemoryUeKeyStore:
    """Dictionaries behind :class:`UeKeyStore` (tests, simulator)."""

    def __init__(self) -> None:
        self._muks: dict[bytes, UeMukRecord] = {}
        self._msks: dict[MskRef, UeMskRecord] = {}
        self._mtks: dict[tuple[MskRef, int], UeMtkRecord] = {}

    def __repr__(self) -> str:
        return f"MemoryUeKeyStore(muks={len(self._muks)}, msks={len(self._msks)})"

    def put_muk(self, rec: UeMukRecord) -> None:
        self._muks[rec.idi] = rec

    def get_muk(self, idi: bytes) -> UeMukRecord | None:
        return self._muks.get(idi)

    def set_muk_counter(self, idi: bytes, btid: str, counter: int) -> bool:
        rec = self._muks.get(idi)
        if rec is None or rec.btid != btid:
            return False
        self._muks[idi] = replace(rec, last_counter=counter)
        return True

    def delete_muk(self, idi: bytes) -> bool:
        return self._muks.pop(idi, None) is not None

    def put_msk(self, rec: UeMskRecord) -> None:
        self._msks[rec.ref] = rec

    def get_msk(self, ref: MskRef) -> UeMskRecord | None:
        return self._msks.get(ref)

    def msks(self) -> list[UeMskRecord]:
        return [self._msks[r] for r in sorted(self._msks)]

    def set_msk_state(self, ref: MskRef, last_counter: int, current_mtk_id: int) -> bool:
        rec = self._msks.get(ref)
        if rec is None:
            return False
        self._msks[ref] = replace(rec, last_counter=last_counter, current_mtk_id=current_mtk_id)
        return True

    def delete_msk(self, ref: MskRef) -> bool:
        for k in [k for k in self._mtks if k[0] == ref]:
            del self._mtks[k]
        return self._msks.pop(ref, None) is not None

    def put_mtk(self, rec: UeMtkRecord) -> None:
        self._mtks[(rec.msk, rec.mtk_id)] = rec

    def get_mtk(self, ref: MskRef, mtk_id: int) -> UeMtkRecord | None:
        return self._mtks.get((ref, mtk_id))

    def mtks_for_msk(self, ref: MskRef) -> list[UeMtkRecord]:
        return sorted((m for (r, _), m in self._mtks.items() if r == ref), key=lambda m: m.mtk_id)

    def close(self) -> None:
        pass
