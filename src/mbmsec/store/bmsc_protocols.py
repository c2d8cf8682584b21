"""BM-SC store protocol and records: services, MSKs, MTKs, counters, registrations, deliveries.

The protocol is synchronous so that the sans-I/O :class:`mbmsec.bmsc.core.BmscCore` calls it
directly. Every mutating call is durable when it returns: the core writes a key or reserves a
COUNTER block before any message using it leaves (TS 33.246 replay protection must survive a
restart). Implementations: :mod:`.bmsc_sqlite` (embedded, WAL), :mod:`.bmsc_memory` (tests,
simulator), :mod:`.bmsc_redis` (many workers / hosts).

COUNTER reservation (:meth:`BmscStore.reserve_counter`) is the one read-modify-write: it
atomically raises a named high-water mark by ``block`` and returns the new mark. The caller
then sends values up to that mark from memory. After a restart it reserves again, so values
reserved but never sent are skipped, and no value is ever sent twice (RFC 3830 §6.6 COUNTER,
TS 31.102 §4.2.80 / §4.2.81 per-key Time Stamp Counter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..errors import ConfigError
from ..mbms.keys import MskRef

__all__ = [
    "BmscStore",
    "DeliveryRecord",
    "MskRecord",
    "MtkRecord",
    "Registration",
    "ServiceRecord",
    "counter_name_msk",
    "counter_name_muk",
]


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One MBMS user service and its key schedule.

    ``msk_lifetime`` / ``mtk_lifetime``: rotation periods in seconds (an MSK covers a whole
    number of MTK periods). ``msk_lead``: how long before an MSK starts it is generated, stored
    and offered to UEs (None: see :attr:`msk_lead_s`). ``mtk_lead``: how long before an MTK
    starts it is generated and first announced (None: see :attr:`mtk_lead_s`).
    ``announce_interval``: period of MTK message repetition on the group address.
    ``allowed_users``: IMPIs authorised; empty = any user whose GUSS does not exclude the
    service. ``salt``: MTK messages carry TEK+SALT (a 112-bit SRTP master salt).
    ``verification``: MSK pushes set the V bit. ``start``: time origin of the key schedule.
    """

    service_id: str
    key_domain_id: bytes
    key_group: int
    group_host: str
    group_port: int
    msk_lifetime: float = 86_400.0
    mtk_lifetime: float = 600.0
    msk_lead: float | None = None
    mtk_lead: float | None = None
    announce_interval: float = 5.0
    salt: bool = True
    verification: bool = True
    allowed_users: tuple[str, ...] = ()
    start: float = 0.0

    def __post_init__(self) -> None:
        if not self.service_id or len(self.service_id.encode("utf-8")) > 255:
            raise ConfigError("service ID must be 1..255 bytes")
        if len(self.key_domain_id) != 3:
            raise ConfigError("Key Domain ID must be 3 bytes")
        if not 0 <= self.key_group <= 0xFFFF:
            raise ConfigError("key group must fit 16 bits")
        if not 0 < self.group_port <= 0xFFFF:
            raise ConfigError("group port must be 1..65535")
        if not (self.mtk_lifetime > 0 and self.msk_lifetime >= self.mtk_lifetime):
            raise ConfigError("need 0 < mtk_lifetime <= msk_lifetime")
        if self.mtks_per_msk > 0xFFFF:
            raise ConfigError("an MSK may cover at most 65535 MTKs (16-bit MTK ID)")
        if not 0 <= self.mtk_lead_s < self.mtk_lifetime:
            raise ConfigError("need 0 <= mtk_lead < mtk_lifetime")
        if not 0 <= self.msk_lead_s < self.msk_lifetime:
            raise ConfigError("need 0 <= msk_lead < msk_lifetime")
        if self.announce_interval <= 0:
            raise ConfigError("announce_interval must be positive")

    @property
    def msk_lead_s(self) -> float:
        """``msk_lead``, by default a quarter of the MSK lifetime, at most one hour."""
        return self.msk_lead if self.msk_lead is not None else min(self.msk_lifetime / 4, 3600.0)

    @property
    def mtk_lead_s(self) -> float:
        """``mtk_lead``, by default a quarter of the MTK lifetime, at most five seconds."""
        return self.mtk_lead if self.mtk_lead is not None else min(self.mtk_lifetime / 4, 5.0)

    @property
    def mtks_per_msk(self) -> int:
        """Number of MTK periods in one MSK period (rounded up)."""
        return -(-int(self.msk_lifetime * 1000) // int(self.mtk_lifetime * 1000))

    def allows(self, impi: str) -> bool:
        """True when the service's own list does not exclude ``impi``."""
        return not self.allowed_users or impi in self.allowed_users


@dataclass(frozen=True, slots=True)
class MskRecord:
    """An MSK with its validity: in time, and as the MTK ID range [mtk_id_first, mtk_id_last]
    carried in the MSK message's key validity data (RFC 3830 §6.14 Interval)."""

    ref: MskRef
    service_id: str
    key: bytes = field(repr=False)
    valid_from: float
    valid_until: float
    mtk_id_first: int = 1
    mtk_id_last: int = 0xFFFF

    def active(self, now: float) -> bool:
        """True while ``valid_from <= now < valid_until``."""
        return self.valid_from <= now < self.valid_until


@dataclass(frozen=True, slots=True)
class MtkRecord:
    """An MTK (SRTP master key) and optional salt, under one MSK."""

    msk: MskRef
    mtk_id: int
    key: bytes = field(repr=False)
    salt: bytes | None = field(default=None, repr=False)
    valid_from: float = 0.0
    valid_until: float = 0.0

    def active(self, now: float) -> bool:
        """True while ``valid_from <= now < valid_until``."""
        return self.valid_from <= now < self.valid_until


@dataclass(frozen=True, slots=True)
class Registration:
    """A user registered to a service (TS 33.246 §6.3.2.1A). ``btid`` is the B-TID the user
    registered with (its MUK protects MSK pushes); ``push_host``/``push_port`` the UE's MIKEY
    UDP address for MSK pushes."""

    impi: str
    service_id: str
    btid: str
    push_host: str
    push_port: int
    registered_at: float


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One MSK message sent to one UE; ``confirmed_at`` is set when its verification message
    (RFC 3830 §3.1 R_MESSAGE, TS 33.246 §6.3.2.3.1) arrived. ``message``: the MSK message
    bytes when a verification is expected, so that any worker can check the verification
    message (its MAC covers the MSK message's CSB ID, RAND and T; the message is MUK-encrypted).
    """

    btid: str
    csb_id: int
    msk: MskRef
    counter: int
    sent_at: float
    impi: str = ""
    confirmed_at: float | None = None
    message: bytes | None = field(default=None, repr=False)


def counter_name_muk(btid: str) -> str:
    """Store name of the per-MUK COUNTER (MSK messages) of the MUK of ``btid``."""
    return f"muk:{btid}"


def counter_name_msk(ref: MskRef) -> str:
    """Store name of the per-MSK COUNTER (MTK messages) of ``ref``."""
    return f"msk:{ref.key_domain_id.hex()}:{ref.msk_id.value:08x}"


@runtime_checkable
class BmscStore(Protocol):
    """Durable BM-SC state. Every mutating call is durable before it returns."""

    # services
    def put_service(self, service: ServiceRecord) -> None:
        """Insert or replace a service."""
        ...

    def get_service(self, service_id: str) -> ServiceRecord | None:
        """The service or None."""
        ...

    def services(self) -> list[ServiceRecord]:
        """Every service, ordered by service ID."""
        ...

    def remove_service(self, service_id: str) -> bool:
        """Delete a service (not its keys); False when there was none."""
        ...

    # keys
    def put_msk(self, msk: MskRecord) -> None:
        """Insert or replace an MSK (keyed by its MskRef)."""
        ...

    def get_msk(self, ref: MskRef) -> MskRecord | None:
        """The MSK or None."""
        ...

    def msks_for_service(self, service_id: str) -> list[MskRecord]:
        """The service's MSKs ordered by valid_from."""
        ...

    def put_mtk(self, mtk: MtkRecord) -> None:
        """Insert or replace an MTK (keyed by MSK and MTK ID)."""
        ...

    def mtks_for_msk(self, ref: MskRef) -> list[MtkRecord]:
        """The MTKs of one MSK ordered by MTK ID."""
        ...

    def purge_keys(self, before: float) -> int:
        """Delete MSKs (and their MTKs and MSK counters) that expired before ``before``;
        return how many MSKs were deleted. Fan-out memberships that ended before ``before``
        may go too."""
        ...

    # counters
    def reserve_counter(self, name: str, block: int) -> int:
        """Atomically raise the named high-water mark by ``block`` (>= 1) and return it.

        A new name starts at 0; the caller owns the values ``mark - block + 1 .. mark``.
        Raises CounterExhaustedError (and changes nothing) when the mark would pass 0xFFFFFFFF.
        """
        ...

    def get_counter(self, name: str) -> int:
        """The named high-water mark (0 when unknown)."""
        ...

    # registrations
    def put_registration(self, reg: Registration) -> None:
        """Insert or replace the registration of (impi, service_id)."""
        ...

    def get_registration(self, impi: str, service_id: str) -> Registration | None:
        """The registration or None."""
        ...

    def remove_registration(self, impi: str, service_id: str) -> bool:
        """Delete; False when there was none."""
        ...

    def registrations_for_service(self, service_id: str) -> list[Registration]:
        """Registrations of a service ordered by IMPI."""
        ...

    # deliveries
    def put_delivery(self, rec: DeliveryRecord) -> None:
        """Insert or replace the delivery record keyed by (btid, csb_id)."""
        ...

    def confirm_delivery(self, btid: str, csb_id: int, when: float) -> bool:
        """Set ``confirmed_at`` (first confirmation wins); False when no such record."""
        ...

    def get_delivery(self, btid: str, csb_id: int) -> DeliveryRecord | None:
        """The delivery record or None."""
        ...

    def deliveries_for_msk(self, ref: MskRef) -> list[DeliveryRecord]:
        """Delivery records of one MSK ordered by sent_at."""
        ...

    # unicast fan-out membership, shared by workers (multicast off)
    def add_group_members(self, group: str, members: dict[str, float]) -> None:
        """Lease each member (``"host:port"``) a place in ``group`` (``"host:port"``) until
        its time; a renewal keeps the later end. Expired entries may be dropped."""
        ...

    def group_members(self, group: str, now: float) -> dict[str, float]:
        """Members of ``group`` whose lease ends after ``now``, with the lease end."""
        ...

    # leadership (ARCHITECTURE §5: one scheduler among many workers)
    def acquire_lease(self, name: str, holder: str, ttl: float, now: float) -> bool:
        """Take or renew the named lease for ``holder`` for ``ttl`` seconds.

        Succeeds when the lease is free, expired, or already held by ``holder`` (a renewal);
        atomic across processes sharing the store. Returns True when ``holder`` holds the
        lease on return. ``now`` is the caller's wall clock (stores with their own clock, such
        as Redis, may use that instead).
        """
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up when ``holder`` holds it (a clean stop hands over at once)."""
        ...

    def lease_holder(self, name: str, now: float) -> str | None:
        """The holder of an unexpired lease, or None."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...
