"""In-memory BM-SC store (tests, simulator). Same semantics as the durable stores, no
durability: a "restart" test shares one instance between two cores."""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError, CounterExhaustedError
from ..mbms.keys import MskRef
from ..mikey.replay import COUNTER_MAX
from .bmsc_protocols import (
    DeliveryRecord,
    MskRecord,
    MtkRecord,
    Registration,
    ServiceRecord,
    counter_name_msk,
)

__all__ = ["MemoryBmscStore", "check_block"]


def check_block(name: str, current: int, block: int) -> int:
    """Return ``current + block`` or raise (ConfigError for block < 1, CounterExhaustedError
    when that passes 0xFFFFFFFF; the caller may retry with a smaller block). Shared by every
    store implementation, so the reserved values are always exactly ``new - block + 1 .. new``."""
    if block < 1:
        raise ConfigError("counter block must be at least 1")
    new = current + block
    if new > COUNTER_MAX:
        raise CounterExhaustedError(f"counter {name!r} cannot grow by {block}; replace the key")
    return new


class MemoryBmscStore:
    """Dictionaries behind the :class:`~.bmsc_protocols.BmscStore` protocol."""

    def __init__(self) -> None:
        self._services: dict[str, ServiceRecord] = {}
        self._msks: dict[MskRef, MskRecord] = {}
        self._mtks: dict[tuple[MskRef, int], MtkRecord] = {}
        self._counters: dict[str, int] = {}
        self._regs: dict[tuple[str, str], Registration] = {}
        self._deliveries: dict[tuple[str, int], DeliveryRecord] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._members: dict[str, dict[str, float]] = {}
        self.writes = 0  # count of mutating calls (lets tests see durable writes happen)

    def __repr__(self) -> str:
        return f"MemoryBmscStore(services={len(self._services)}, msks={len(self._msks)})"

    def put_service(self, service: ServiceRecord) -> None:
        self.writes += 1
        self._services[service.service_id] = service

    def get_service(self, service_id: str) -> ServiceRecord | None:
        return self._services.get(service_id)

    def services(self) -> list[ServiceRecord]:
        return [self._services[k] for k in sorted(self._services)]

    def remove_service(self, service_id: str) -> bool:
        self.writes += 1
        return self._services.pop(service_id, None) is not None

    def put_msk(self, msk: MskRecord) -> None:
        self.writes += 1
        self._msks[msk.ref] = msk

    def get_msk(self, ref: MskRef) -> MskRecord | None:
        return self._msks.get(ref)

    def msks_for_service(self, service_id: str) -> list[MskRecord]:
        found = [m for m in self._msks.values() if m.service_id == service_id]
        return sorted(found, key=lambda m: (m.valid_from, m.ref))

    def put_mtk(self, mtk: MtkRecord) -> None:
        self.writes += 1
        self._mtks[(mtk.msk, mtk.mtk_id)] = mtk

    def mtks_for_msk(self, ref: MskRef) -> list[MtkRecord]:
        found = [m for (r, _), m in self._mtks.items() if r == ref]
        return sorted(found, key=lambda m: m.mtk_id)

    def purge_keys(self, before: float) -> int:
        self.writes += 1
        dead = [r for r, m in self._msks.items() if m.valid_until < before]
        for r in dead:
            del self._msks[r]
            self._counters.pop(counter_name_msk(r), None)
            for k in [k for k in self._mtks if k[0] == r]:
                del self._mtks[k]
        return len(dead)

    def reserve_counter(self, name: str, block: int) -> int:
        self.writes += 1
        new = check_block(name, self._counters.get(name, 0), block)
        self._counters[name] = new
        return new

    def get_counter(self, name: str) -> int:
        return self._counters.get(name, 0)

    def put_registration(self, reg: Registration) -> None:
        self.writes += 1
        self._regs[(reg.impi, reg.service_id)] = reg

    def get_registration(self, impi: str, service_id: str) -> Registration | None:
        return self._regs.get((impi, service_id))

    def remove_registration(self, impi: str, service_id: str) -> bool:
        self.writes += 1
        return self._regs.pop((impi, service_id), None) is not None

    def registrations_for_service(self, service_id: str) -> list[Registration]:
        found = [r for (_, s), r in self._regs.items() if s == service_id]
        return sorted(found, key=lambda r: r.impi)

    def put_delivery(self, rec: DeliveryRecord) -> None:
        self.writes += 1
        self._deliveries[(rec.btid, rec.csb_id)] = rec

    def confirm_delivery(self, btid: str, csb_id: int, when: float) -> bool:
        self.writes += 1
        rec = self._deliveries.get((btid, csb_id))
        if rec is None:
            return False
        if rec.confirmed_at is None:
            self._deliveries[(btid, csb_id)] = replace(rec, confirmed_at=when)
        return True

    def get_delivery(self, btid: str, csb_id: int) -> DeliveryRecord | None:
        return self._deliveries.get((btid, csb_id))

    def deliveries_for_msk(self, ref: MskRef) -> list[DeliveryRecord]:
        found = [d for d in self._deliveries.values() if d.msk == ref]
        return sorted(found, key=lambda d: (d.sent_at, d.btid, d.csb_id))

    def add_group_members(self, group: str, members: dict[str, float]) -> None:
        self.writes += 1
        have = self._members.setdefault(group, {})
        for m, until in members.items():
            have[m] = max(until, have.get(m, until))

    def group_members(self, group: str, now: float) -> dict[str, float]:
        have = self._members.get(group, {})
        for m in [m for m, until in have.items() if until <= now]:
            del have[m]
        return dict(have)

    def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        cur = self._leases.get(name)
        if cur is not None and cur[0] != holder and cur[1] > now:
            return False
        self.writes += 1
        self._leases[name] = (holder, now + ttl)
        return True

    def release_lease(self, name: str, holder: str) -> None:
        cur = self._leases.get(name)
        if cur is not None and cur[0] == holder:
            self.writes += 1
            del self._leases[name]

    def lease_holder(self, name: str, now: float) -> str | None:
        cur = self._leases.get(name)
        return cur[0] if cur is not None and cur[1] > now else None

    def close(self) -> None:
        pass
