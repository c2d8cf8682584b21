"""What keys the UE holds, and when it needs new ones (sans-I/O, over a :class:`UeKeyStore`).

- **MUK/MRK** per BM-SC (IDi), from the GBA bootstrap, with the per-MUK COUNTER of pushed MSK
  messages (TS 31.102 EF_MUK).
- **MSKs** with their MGV-F state (per-MSK COUNTER, current MTK ID; TS 33.246 §6.5) and the
  service each belongs to. At most ``msks_per_group`` MSKs are kept per Key Domain / key group
  (TS 31.102 EF_MSK keeps two: the current and the next one); installing another deletes the
  oldest by key number.
- **MTKs** under each MSK, released by the MGV-F.

Expiry in time. An MSK's validity is a range of MTK IDs ``[first, last]`` (its key validity
data), not a time. The UE learns the MTK period ``P`` of a service from the MTK IDs it sees
(``(t2 - t1) / (id2 - id1)`` between first sightings), or from configuration, and estimates the
end of the current MSK as ``t_seen(current MTK) + (last - current + 1) * P``. The successor is
due ``lead_time`` before that; when the current MTK is already the MSK's last one it is due at
once. An MSK counts as a successor when its key number follows the current one (circularly,
TS 31.102 key numbers increase).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..mbms.keys import MskId, MskRef
from ..mbms.messages import MskKey, MtkKey
from ..mbms.mgvf import MskState
from ..mikey.prf import Prf
from ..srtp import Mki, SrtpKey
from ..store.ue_keys import UeKeyStore, UeMskRecord, UeMtkRecord, UeMukRecord

KEY_NUMBER_SPACE = 0xFFFF


def follows(a: MskId, b: MskId) -> bool:
    """True when ``a`` comes after ``b`` in the same key group (circular key numbers)."""
    if a.key_group != b.key_group or a == b:
        return False
    return 0 < (a.key_number - b.key_number) % KEY_NUMBER_SPACE < KEY_NUMBER_SPACE // 2


@dataclass
class _ServiceTiming:
    period: float | None = None  # estimated MTK period (seconds)
    last_mtk: tuple[MskRef, int, float] | None = None  # (MSK, MTK ID, first seen)
    last_was_change: bool = False  # last_mtk was seen arriving as a new MTK, not at start-up


@dataclass(frozen=True)
class ServiceBinding:
    """A service's key family: Key Domain ID and key group (from config or learnt)."""

    key_domain_id: bytes
    key_group: int


@dataclass
class KeyHoldings:
    """The UE's keys and their timing (see the module docstring)."""

    store: UeKeyStore
    msks_per_group: int = 2
    _prfs: dict[MskRef, Prf] = field(default_factory=dict, repr=False)
    _timing: dict[str, _ServiceTiming] = field(default_factory=dict)
    _bindings: dict[str, ServiceBinding] = field(default_factory=dict)
    _periods: dict[str, float] = field(default_factory=dict)

    # --- services ------------------------------------------------------------------------------

    def bind(self, service_id: str, binding: ServiceBinding) -> None:
        """Record that ``service_id`` uses MSKs of this Key Domain / key group."""
        self._bindings[service_id] = binding

    def binding(self, service_id: str) -> ServiceBinding | None:
        """The service's key family, if known."""
        return self._bindings.get(service_id)

    def service_of(self, ref: MskRef) -> str | None:
        """The service whose key family ``ref`` belongs to, if known."""
        for sid, b in self._bindings.items():
            if b.key_domain_id == ref.key_domain_id and b.key_group == ref.msk_id.key_group:
                return sid
        rec = self.store.get_msk(ref)
        return rec.service_id if rec is not None else None

    def set_period(self, service_id: str, period: float) -> None:
        """Configure the MTK period of a service (else it is estimated)."""
        self._periods[service_id] = period

    # --- MUK -----------------------------------------------------------------------------------

    def put_user_keys(self, idi: bytes, btid: str, mrk: bytes, muk: bytes, expires: float) -> None:
        """Store the MRK/MUK of a new bootstrap (the MUK COUNTER starts afresh)."""
        self.store.put_muk(UeMukRecord(idi, btid, mrk, muk, expires))

    def muk(self, idi: bytes, now: float) -> UeMukRecord | None:
        """The MUK record for BM-SC ``idi`` while its lifetime lasts, else None."""
        rec = self.store.get_muk(idi)
        if rec is None or now >= rec.expires:
            return None
        return rec

    # --- MSKs ----------------------------------------------------------------------------------

    def has_msk(self, ref: MskRef) -> bool:
        """True when the MSK is held."""
        return self.store.get_msk(ref) is not None

    def msks_of(self, service_id: str) -> list[UeMskRecord]:
        """MSKs held for a service, oldest key number first."""
        b = self._bindings.get(service_id)
        out = [
            m
            for m in self.store.msks()
            if m.service_id == service_id
            or (
                b is not None
                and m.ref.key_domain_id == b.key_domain_id
                and m.ref.msk_id.key_group == b.key_group
            )
        ]
        return _by_age(out)

    def install_msk(
        self, key: MskKey, service_id: str | None, now: float
    ) -> tuple[bool, list[MskRef]]:
        """Store an MSK (a re-delivery of a held MSK keeps its MGV-F state). Returns whether it
        is new, and the MSKs deleted to respect ``msks_per_group``."""
        old = self.store.get_msk(key.ref)
        if service_id is None:
            service_id = self.service_of(key.ref)
        if old is not None and old.key == key.key:
            if service_id and old.service_id != service_id:
                self.store.put_msk(replace(old, service_id=service_id))
            return False, []
        self.store.put_msk(
            UeMskRecord(
                key.ref, key.key, key.mtk_id_first, key.mtk_id_last, now, service_id=service_id
            )
        )
        self._prfs.pop(key.ref, None)
        same = _by_age(
            [
                m
                for m in self.store.msks()
                if m.ref.key_domain_id == key.ref.key_domain_id
                and m.ref.msk_id.key_group == key.ref.msk_id.key_group
            ]
        )
        deleted = []
        while len(same) > self.msks_per_group:
            victim = same.pop(0)
            self.delete_msk(victim.ref)
            deleted.append(victim.ref)
        return True, deleted

    def delete_msk(self, ref: MskRef) -> None:
        """Forget an MSK and its MTKs."""
        self.store.delete_msk(ref)
        self._prfs.pop(ref, None)

    def mgvf_state(self, ref: MskRef) -> MskState | None:
        """The MGV-F state of a held MSK (with a cached PRF of the MSK)."""
        rec = self.store.get_msk(ref)
        if rec is None:
            return None
        prf = self._prfs.get(ref)
        if prf is None:
            prf = self._prfs[ref] = Prf(rec.key)
        key = MskKey(rec.ref, rec.key, rec.mtk_id_first, rec.mtk_id_last)
        return MskState(key, rec.last_counter, rec.current_mtk_id, prf)

    def accept_mtk(self, mtk: MtkKey, state: MskState, now: float) -> None:
        """Persist the MGV-F state, then the MTK (TS 33.246 §6.5: state before use)."""
        assert state.last_counter is not None and state.current_mtk_id is not None
        self.store.set_msk_state(state.ref, state.last_counter, state.current_mtk_id)
        self.store.put_mtk(UeMtkRecord(mtk.msk, mtk.mtk_id, mtk.key, mtk.salt, now))
        sid = self.service_of(mtk.msk)
        if sid is None:
            return
        t = self._timing.setdefault(sid, _ServiceTiming())
        if t.last_mtk is not None:
            ref0, id0, t0 = t.last_mtk
            # Only two sightings of MTK changes measure the period: the first MTK a UE sees
            # may be in the middle of its period.
            if t.last_was_change and ref0 == mtk.msk and mtk.mtk_id > id0 and now > t0:
                t.period = (now - t0) / (mtk.mtk_id - id0)
            t.last_was_change = True
        t.last_mtk = (mtk.msk, mtk.mtk_id, now)

    # --- what is current, what is due ----------------------------------------------------------

    def current(self, service_id: str) -> tuple[UeMskRecord, int | None] | None:
        """The MSK in use for a service and its current MTK ID: the newest MSK that has an MTK,
        else the oldest held MSK (not used yet). None without MSKs."""
        msks = self.msks_of(service_id)
        if not msks:
            return None
        with_mtk = [m for m in msks if m.current_mtk_id is not None]
        m = with_mtk[-1] if with_mtk else msks[0]
        return m, m.current_mtk_id

    def successor_held(self, service_id: str) -> bool:
        """True when an MSK following the current one is held."""
        cur = self.current(service_id)
        if cur is None:
            return False
        return any(follows(m.ref.msk_id, cur[0].ref.msk_id) for m in self.msks_of(service_id))

    def period(self, service_id: str) -> float | None:
        """Configured or estimated MTK period of a service."""
        if service_id in self._periods:
            return self._periods[service_id]
        t = self._timing.get(service_id)
        return None if t is None else t.period

    def renewal_due(self, service_id: str, lead_time: float) -> float | None:
        """When the successor of the current MSK must be asked for (None: nothing to renew
        yet, or the successor is held)."""
        cur = self.current(service_id)
        if cur is None or self.successor_held(service_id):
            return None
        msk, mtk_id = cur
        if mtk_id is None:
            return None
        if mtk_id >= msk.mtk_id_last:
            return 0.0
        t = self._timing.get(service_id)
        p = self.period(service_id)
        if t is None or t.last_mtk is None or p is None:
            return None
        _, _, seen = t.last_mtk
        return seen + (msk.mtk_id_last - mtk_id + 1) * p - lead_time

    def srtp_key(self, ref: MskRef, mtk_id: int) -> SrtpKey | None:
        """The SRTP master key material for MKI = MSK ID || MTK ID, if the MTK is held."""
        rec = self.store.get_mtk(ref, mtk_id)
        if rec is None:
            return None
        return SrtpKey(Mki(ref.msk_id.value, mtk_id), rec.key, rec.salt)


def _by_age(msks: list[UeMskRecord]) -> list[UeMskRecord]:
    """Order MSKs of one key group oldest first: by circular key number, ties by arrival."""
    if not msks:
        return []
    ordered = sorted(msks, key=lambda m: m.received_at)
    # anchor: the MSK no other MSK precedes
    anchor = ordered[0]
    for m in ordered:
        if not any(follows(m.ref.msk_id, o.ref.msk_id) for o in ordered if o is not m):
            anchor = m
            break
    base = anchor.ref.msk_id.key_number
    return sorted(
        msks, key=lambda m: ((m.ref.msk_id.key_number - base) % KEY_NUMBER_SPACE, m.received_at)
    )
