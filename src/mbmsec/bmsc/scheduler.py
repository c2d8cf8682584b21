"""BM-SC key scheduler (the MGV-S side): MSK and MTK rotation per service, sans-I/O.

Theory of operation
-------------------
Each service has a fixed time grid from ``start``: MSK ``i`` is valid
``[start + i*L_msk, start + (i+1)*L_msk)`` and carries MSK ID = Key Group || Key Number with
Key Number = ``i mod 65535 + 1`` (never 0). Inside it, MTK ``j`` (1-based, the MTK ID) is valid
``[msk.valid_from + (j-1)*L_mtk, ...)``, the last one cut at the MSK's end; the MSK's key
validity is the MTK ID range ``[1, n]`` (n = ceil(L_msk / L_mtk) <= 65535).

The *leader* generates keys with the injected rng and writes them to the store **before** they
are used by any message: the current MSK and MTK at once, the next MSK ``msk_lead`` before it
starts (so registrations and key requests can hand it out early), the next MTK ``mtk_lead``
before it starts (so the announcer can send it before the traffic switches). A *follower*
(another worker) never generates: it reads the keys from the store on a cache miss.

COUNTERs (RFC 3830 §6.6; per MSK for MTK messages, per MUK for MSK messages) are handed out
from blocks reserved durably in the store (:meth:`KeyScheduler.next_counter`): a restart
reserves a fresh block, so no value is ever sent twice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from ..errors import ConfigError, CounterExhaustedError
from ..mbms.keys import MSK_LEN, MTK_LEN, MTK_SALT_LEN, MskId, MskRef
from ..mikey.prf import Prf
from ..store.bmsc_protocols import BmscStore, MskRecord, MtkRecord, ServiceRecord

__all__ = ["KeyScheduler"]

Rng = Callable[[int], bytes]
KEY_NUMBER_SPACE: Final = 0xFFFF
_EPS: Final = 1e-9


class KeyScheduler:
    """MSK/MTK schedule, key generation (leader) and COUNTER blocks over a :class:`BmscStore`."""

    def __init__(
        self,
        store: BmscStore,
        rng: Rng,
        *,
        leader: bool = True,
        mtk_counter_block: int = 64,
        muk_counter_block: int = 1,
    ) -> None:
        if mtk_counter_block < 1 or muk_counter_block < 1:
            raise ConfigError("counter blocks must be at least 1")
        self.store = store
        self.rng = rng
        self.leader = leader
        self.mtk_counter_block = mtk_counter_block
        self.muk_counter_block = muk_counter_block
        self._services: dict[str, ServiceRecord] = {s.service_id: s for s in store.services()}
        self._msks: dict[tuple[str, int], MskRecord] = {}
        self._mtks: dict[tuple[MskRef, int], MtkRecord] = {}
        self._prfs: dict[MskRef, Prf] = {}
        self._counters: dict[str, tuple[int, int]] = {}  # name -> (next, high)
        self.generated = 0

    def __repr__(self) -> str:
        return f"KeyScheduler(services={len(self._services)}, leader={self.leader})"

    # --- services ------------------------------------------------------------------------------

    def add_service(self, service: ServiceRecord) -> None:
        """Store (durably) and activate a service."""
        for s in self._services.values():
            same_group = (s.key_domain_id, s.key_group) == (
                service.key_domain_id,
                service.key_group,
            )
            if same_group and s.service_id != service.service_id:
                raise ConfigError(f"key group already used by service {s.service_id!r}")
        self.store.put_service(service)
        self._services[service.service_id] = service

    def refresh_services(self) -> None:
        """Reload the service list from the store (services added or removed elsewhere)."""
        self._services = {s.service_id: s for s in self.store.services()}

    def service(self, service_id: str) -> ServiceRecord | None:
        """The service, from memory or (another worker added it) from the store."""
        s = self._services.get(service_id)
        if s is None:
            s = self.store.get_service(service_id)
            if s is not None:
                self._services[service_id] = s
        return s

    def service_for_msk(self, ref: MskRef) -> ServiceRecord | None:
        """The service whose Key Domain ID and Key Group name this MSK."""
        for s in self._services.values():
            if s.key_domain_id == ref.key_domain_id and s.key_group == ref.msk_id.key_group:
                return s
        for s in self.store.services():
            self._services.setdefault(s.service_id, s)
            if s.key_domain_id == ref.key_domain_id and s.key_group == ref.msk_id.key_group:
                return s
        return None

    def services(self) -> list[ServiceRecord]:
        """The services known to this scheduler, by service ID."""
        return [self._services[k] for k in sorted(self._services)]

    # --- schedule arithmetic ---------------------------------------------------------------------

    @staticmethod
    def msk_index(svc: ServiceRecord, t: float) -> int:
        """Index of the MSK valid at ``t`` (negative before the service start)."""
        return math.floor((t - svc.start) / svc.msk_lifetime + _EPS)

    @staticmethod
    def msk_window(svc: ServiceRecord, i: int) -> tuple[float, float]:
        """Validity ``[from, until)`` of MSK ``i``."""
        vf = svc.start + i * svc.msk_lifetime
        return vf, vf + svc.msk_lifetime

    @staticmethod
    def msk_id_for(svc: ServiceRecord, i: int) -> MskId:
        """MSK ID of MSK ``i``: Key Group || (i mod 65535) + 1."""
        return MskId(svc.key_group, i % KEY_NUMBER_SPACE + 1)

    @staticmethod
    def mtk_window(svc: ServiceRecord, msk: MskRecord, mtk_id: int) -> tuple[float, float]:
        """Validity ``[from, until)`` of MTK ``mtk_id`` under ``msk``."""
        vf = msk.valid_from + (mtk_id - 1) * svc.mtk_lifetime
        return vf, min(vf + svc.mtk_lifetime, msk.valid_until)

    @staticmethod
    def mtk_id_at(svc: ServiceRecord, msk: MskRecord, t: float) -> int:
        """MTK ID valid at ``t`` under ``msk`` (clamped to the MSK's range)."""
        j = math.floor((t - msk.valid_from) / svc.mtk_lifetime + _EPS) + 1
        return max(msk.mtk_id_first, min(j, msk.mtk_id_last))

    # --- keys ------------------------------------------------------------------------------------

    def _msk(self, svc: ServiceRecord, i: int, generate: bool) -> MskRecord | None:
        key = (svc.service_id, i)
        m = self._msks.get(key)
        if m is not None:
            return m
        vf, vu = self.msk_window(svc, i)
        ref = MskRef(svc.key_domain_id, self.msk_id_for(svc, i))
        m = self.store.get_msk(ref)
        if m is not None and abs(m.valid_from - vf) > 1e-6:
            m = None  # a key number reused after 65535 MSKs: the old record is stale
        if m is None:
            if not (generate and self.leader):
                return None
            m = MskRecord(ref, svc.service_id, self.rng(MSK_LEN), vf, vu, 1, svc.mtks_per_msk)
            self.store.put_msk(m)  # durable before any message carries it
            self.generated += 1
        self._msks[key] = m
        return m

    def current_msk(self, svc: ServiceRecord, now: float) -> MskRecord | None:
        """The MSK valid at ``now`` (generated by the leader when missing), None before start
        or when a follower finds none in the store."""
        i = self.msk_index(svc, now)
        return None if i < 0 else self._msk(svc, i, True)

    def next_msk(self, svc: ServiceRecord, now: float) -> MskRecord | None:
        """The MSK after the current one, once ``now`` is within ``msk_lead`` of its start."""
        i = max(self.msk_index(svc, now) + 1, 0)
        vf, _ = self.msk_window(svc, i)
        if now < vf - svc.msk_lead_s:
            return None
        return self._msk(svc, i, True)

    def msk_by_ref(self, ref: MskRef, now: float) -> MskRecord | None:
        """The MSK named ``ref`` if it is current or already offered (next); else None."""
        svc = self.service_for_msk(ref)
        if svc is None:
            return None
        for m in (self.current_msk(svc, now), self.next_msk(svc, now)):
            if m is not None and m.ref == ref:
                return m
        return None

    def msk_for_ref(self, ref: MskRef) -> MskRecord | None:
        """The MSK record named ``ref`` from memory or the store, or None."""
        for m in self._msks.values():
            if m.ref == ref:
                return m
        return self.store.get_msk(ref)

    def msk_prf(self, msk: MskRecord) -> Prf:
        """A cached, precomputed PRF state for the MSK (PSK of its MTK messages)."""
        p = self._prfs.get(msk.ref)
        if p is None:
            p = self._prfs[msk.ref] = Prf(msk.key)
        return p

    def mtk(self, svc: ServiceRecord, msk: MskRecord, mtk_id: int) -> MtkRecord | None:
        """MTK ``mtk_id`` of ``msk`` (generated and stored by the leader when missing)."""
        key = (msk.ref, mtk_id)
        t = self._mtks.get(key)
        if t is not None:
            return t
        for t in self.store.mtks_for_msk(msk.ref):
            self._mtks[(msk.ref, t.mtk_id)] = t
        t = self._mtks.get(key)
        if t is None and self.leader:
            vf, vu = self.mtk_window(svc, msk, mtk_id)
            salt = self.rng(MTK_SALT_LEN) if svc.salt else None
            t = MtkRecord(msk.ref, mtk_id, self.rng(MTK_LEN), salt, vf, vu)
            self.store.put_mtk(t)  # durable before any MTK message carries it
            self._mtks[key] = t
            self.generated += 1
        return t

    def current_mtk(self, svc: ServiceRecord, now: float) -> MtkRecord | None:
        """The MTK valid at ``now`` with its MSK generated first."""
        msk = self.current_msk(svc, now)
        return None if msk is None else self.mtk(svc, msk, self.mtk_id_at(svc, msk, now))

    def next_mtk(self, svc: ServiceRecord, now: float) -> MtkRecord | None:
        """The MTK after the current one (possibly under the next MSK) once ``now`` is within
        ``mtk_lead`` of its start; None otherwise."""
        msk = self.current_msk(svc, now)
        if msk is None:
            i = max(self.msk_index(svc, now) + 1, 0)
            if now < self.msk_window(svc, i)[0] - svc.mtk_lead_s:
                return None
            nxt = self._msk(svc, i, True)
            return None if nxt is None else self.mtk(svc, nxt, 1)
        j = self.mtk_id_at(svc, msk, now)
        if j < msk.mtk_id_last:
            vf, _ = self.mtk_window(svc, msk, j + 1)
            return self.mtk(svc, msk, j + 1) if now >= vf - svc.mtk_lead_s else None
        if now < msk.valid_until - svc.mtk_lead_s:
            return None
        nxt = self._msk(svc, self.msk_index(svc, now) + 1, True)
        return None if nxt is None else self.mtk(svc, nxt, 1)

    def next_change(self, svc: ServiceRecord, now: float) -> float:
        """The next instant after ``now`` at which a key of ``svc`` starts or must be generated
        (MTK / MSK start, MTK lead-in, MSK lead-in)."""
        cands: list[float] = []
        i = self.msk_index(svc, now)
        for k in sorted({max(i + d, 0) for d in (0, 1, 2)}):
            vf, _ = self.msk_window(svc, k)
            cands += [vf, vf - svc.msk_lead_s, vf - svc.mtk_lead_s]
        if i >= 0:
            m0 = svc.start + i * svc.msk_lifetime
            j = math.floor((now - m0) / svc.mtk_lifetime + _EPS) + 1
            nxt = m0 + j * svc.mtk_lifetime
            cands += [nxt, nxt - svc.mtk_lead_s]
        future = [c for c in cands if c > now + _EPS]
        return min(future) if future else now + svc.mtk_lifetime

    def ensure(self, now: float) -> None:
        """Leader: make sure every service's current and due keys exist in the store."""
        for svc in list(self._services.values()):
            self.current_mtk(svc, now)
            self.next_msk(svc, now)
            self.next_mtk(svc, now)

    def purge(self, now: float) -> int:
        """Drop MSKs (with MTKs) that ended more than one MSK lifetime ago, in the store
        (leader only) and in memory. Returns the number of MSKs the store deleted."""
        keep = max((s.msk_lifetime for s in self._services.values()), default=0.0)
        before = now - keep
        n = self.store.purge_keys(before) if self.leader else 0
        for k in [k for k, m in self._msks.items() if m.valid_until < before]:
            ref = self._msks.pop(k).ref
            self._prfs.pop(ref, None)
            for mk in [mk for mk in self._mtks if mk[0] == ref]:
                del self._mtks[mk]
        return n

    # --- COUNTERs -------------------------------------------------------------------------------

    def next_counter(self, name: str, block: int) -> int:
        """Next COUNTER value for ``name``, from a durably reserved block (RFC 3830 §6.6).

        Raises CounterExhaustedError when the 32-bit space is used up (replace the key).
        """
        nxt, high = self._counters.get(name, (1, 0))
        if nxt > high:
            try:
                high = self.store.reserve_counter(name, block)
            except CounterExhaustedError:
                if block == 1:
                    raise
                high = self.store.reserve_counter(name, 1)
                block = 1
            nxt = high - block + 1
        self._counters[name] = (nxt + 1, high)
        return nxt

    def forget_counter(self, name: str) -> None:
        """Drop the in-memory block of ``name`` (its unused values are skipped for good)."""
        self._counters.pop(name, None)
