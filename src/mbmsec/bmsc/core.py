"""The BM-SC, sans-I/O: compact key requests, 3GPP HTTP key management, MSK pushes and their
verification, MTK announcements, all driven by ``now`` and an injected rng.

Theory of operation
-------------------
Inputs: ``receive_datagram(data, addr, now)`` (UDP on the MIKEY port: compact key requests,
MSK verification messages), ``handle_http(request, now)`` (TS 33.246 §6.3.2 register /
deregister / msk-request), ``handle_timer(now)``; ``on_zn_ready(btid, now)`` when an asynchronous
Zn lookup finished. Outputs: ``datagrams_to_send(now)`` (answers, MSK pushes, MTK messages),
``get_timer()`` (one absolute deadline), ``next_event()`` (delivery confirmations).

Compact key request (:mod:`mbmsec.mbms.compact`), in this order; every failure before the MAC
check is silent (no oracle, no reflection of unauthenticated input):

1. parse (any DecodeError: drop); T outside the skew window: remember, continue;
   MAC already in the replay cache: drop;
2. NAF keys for the B-TID (Zn): unknown / expired -> unauthenticated Error 241 (bootstrap
   again); BSF unreachable -> unauthenticated Error 242 (retry later); lookup pending -> the
   datagram waits (bounded) until :meth:`on_zn_ready`. Requests with a stale T get no such
   unauthenticated error;
3. V MAC under the MRK: wrong -> drop;
4. stale T -> authenticated Error 1; else the MAC enters the replay cache;
5. service / authorisation / key -> authenticated Error 243 / 244 / 245, or the MSK message
   (current MSK, plus the next one once it is offered), T and CSB ID echoed. An answer larger
   than ``response_bound`` times the request is cut to one MSK, else dropped.

No per-request state is kept except the replay cache (and datagrams parked during a Zn
lookup). 3GPP pushes (:mod:`.pushes`) are MSK messages under the MUK with a per-MUK COUNTER
and the V bit; the push is resent with a fresh COUNTER and CSB ID until its verification
message arrives (``push_retries``), and a delivery record (with the message) is kept in the
store, so the verification message may reach any worker sharing the store. MTK messages go to
each service's group on every MTK change (and ``mtk_lead`` before it) and every
``announce_interval``.

Leadership: key generation, MTK announcements and next-MSK pushes run in the leader only:
``BmscConfig.leader`` (static), or with ``leader_lease`` > 0 whoever holds the store's lease
(:mod:`.leadership`), polled from :meth:`BmscCore.handle_timer`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ..errors import (
    AuthError,
    BsfUnreachableError,
    BtidUnknownError,
    DecodeError,
    NotAuthorizedError,
    ReplayedMessageError,
    TimestampOutOfWindowError,
)
from ..gba.zn import ZnAnswer
from ..httpmsg import HttpRequest, HttpResponse
from ..mbms.compact import (
    ErrorCause,
    KeyRequest,
    build_key_error,
    build_key_response,
    parse_key_request,
    verify_key_request,
)
from ..mbms.keys import GbaMode, MukId, derive_mbms_user_keys
from ..mbms.messages import (
    MIKEY_PORT,
    RAND_LEN,
    MskKey,
    MtkKey,
    build_mtk_message,
)
from ..mikey.constants import DataType
from ..mikey.prf import Prf
from ..mikey.replay import ReplayConfig, ReplayGuard
from ..store.bmsc_protocols import (
    BmscStore,
    MskRecord,
    Registration,
    ServiceRecord,
    counter_name_msk,
)
from .leadership import LeaderLease
from .pushes import DeliveryConfirmed, MskPushes, PushAbandoned
from .scheduler import KeyScheduler
from .zn import ZnLookup, ZnPendingError

__all__ = ["BmscConfig", "BmscCore", "DeliveryConfirmed", "PushAbandoned", "UserKeys"]

log = logging.getLogger("mbmsec.bmsc")

Addr = tuple[str, int]
Rng = Callable[[int], bytes]
MAX_PARKED_PER_BTID: Final = 4


@dataclass(frozen=True)
class BmscConfig:
    """BM-SC settings. ``fqdn`` is the NAF FQDN: IDi of MSK messages and digest realm.

    ``leader``: this process generates keys and pushes next MSKs (one per deployment); the
    others read keys from the shared store. ``nonce_secret``: HTTP digest nonce key shared by
    all workers behind one address (default: random per process). ``response_bound``: compact
    answers are at most this multiple of the request size. ``park_timeout``: how long a
    datagram waits for an asynchronous Zn answer. ``leader_lease`` > 0: leadership is not
    static but the store's lease (:mod:`.leadership`), taken and renewed under ``worker_id``
    with this time to live in seconds.
    """

    fqdn: str
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    default_mikey_port: int = MIKEY_PORT
    leader: bool = True
    mtk_counter_block: int = 64
    muk_counter_block: int = 1
    response_bound: int = 3
    push_timeout: float = 3.0
    push_retries: int = 2
    max_outstanding: int = 100_000
    max_users: int = 100_000
    max_parked: int = 10_000
    nonce_lifetime: float = 300.0
    nonce_secret: bytes | None = field(default=None, repr=False)
    purge_interval: float = 300.0
    park_timeout: float = 10.0
    leader_lease: float = 0.0
    worker_id: str = ""


@dataclass(frozen=True)
class UserKeys:
    """Per-B-TID keys from Zn, with precomputed PRF states (the per-UE hot-path cache)."""

    btid: str
    impi: str
    mrk: bytes = field(repr=False)
    mrk_prf: Prf = field(repr=False)
    muk_prf: Prf = field(repr=False)
    expires: float
    service_ids: tuple[str, ...]
    gba_u: bool


class BmscCore:
    """The BM-SC (see the module docstring)."""

    def __init__(self, config: BmscConfig, store: BmscStore, zn: ZnLookup, rng: Rng) -> None:
        self.config = config
        self.store = store
        self.zn = zn
        self.rng = rng
        self.lease: LeaderLease | None = None
        if config.leader_lease > 0:
            self.lease = LeaderLease(store, config.worker_id, config.leader_lease)
        self._leader = config.leader and self.lease is None
        self.scheduler = KeyScheduler(
            store,
            rng,
            leader=self._leader,
            mtk_counter_block=config.mtk_counter_block,
            muk_counter_block=config.muk_counter_block,
        )
        self.idi = config.fqdn.encode("utf-8")
        self.replay = ReplayGuard(config.replay)
        self._users: OrderedDict[str, UserKeys] = OrderedDict()
        self._out: deque[tuple[bytes, Addr]] = deque()
        self._events: deque[DeliveryConfirmed | PushAbandoned] = deque()
        self._parked: dict[str, list[tuple[bytes, Addr, float]]] = {}
        # services loaded from the store are due at once (first handle_timer catches up)
        self._announce_at: dict[str, float] = {s.service_id: 0.0 for s in self.scheduler.services()}
        self.pushes = MskPushes(self)
        self._next_purge = 0.0  # first handle_timer purges and arms the periodic tasks
        self.stats: dict[str, int] = {}
        from .http_handler import HttpKeyManagement

        self.http = HttpKeyManagement(self)

    def __repr__(self) -> str:
        return f"BmscCore(fqdn={self.config.fqdn!r}, users={len(self._users)})"

    @property
    def leader(self) -> bool:
        """True while this core generates keys, announces MTKs and pushes next MSKs."""
        return self._leader

    def _set_leader(self, leader: bool, now: float) -> None:
        if leader == self._leader:
            return
        self._leader = self.scheduler.leader = leader
        self.pushes.reset_offers()
        if leader:  # fresh COUNTER blocks: another leader may have sent from later ones
            for svc in self.scheduler.services():
                for m in self.store.msks_for_service(svc.service_id):
                    self.scheduler.forget_counter(counter_name_msk(m.ref))
                self._announce_at[svc.service_id] = now
        self._count("leader.acquired" if leader else "leader.lost")

    def release_leadership(self) -> None:
        """Clean stop: give the lease up so another worker takes over at once."""
        if self.lease is not None:
            self._leader = self.scheduler.leader = False
            self.lease.release()

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    # --- administration --------------------------------------------------------------------------

    def add_service(self, service: ServiceRecord, now: float) -> None:
        """Add (or replace) a service; the leader generates its first keys at once."""
        self.scheduler.add_service(service)
        if self._leader:
            self.scheduler.ensure(now)
        self._announce_at[service.service_id] = now

    # --- user keys (Zn) --------------------------------------------------------------------------

    def user_keys(self, btid: str, now: float) -> UserKeys:
        """MRK/MUK for ``btid`` from the cache or Zn. Raises BtidUnknownError,
        BsfUnreachableError, ZnPendingError."""
        u = self._users.get(btid)
        if u is not None and now < u.expires:
            self._users.move_to_end(btid)
            return u
        if u is not None:
            del self._users[btid]
        a = self.zn.lookup(btid, now)
        if now >= a.key_expiry:
            raise BtidUnknownError("B-TID key lifetime has ended")
        u = self._derive(btid, a)
        self._users[btid] = u
        while len(self._users) > self.config.max_users:
            self._users.popitem(last=False)
        return u

    @staticmethod
    def _derive(btid: str, a: ZnAnswer) -> UserKeys:
        if a.ks_int_naf is not None:
            k = derive_mbms_user_keys(GbaMode.GBA_U, ks_naf=a.me_key, ks_int_naf=a.ks_int_naf)
        else:
            k = derive_mbms_user_keys(GbaMode.GBA_ME, ks_naf=a.me_key)
        return UserKeys(
            btid,
            a.impi,
            k.mrk,
            Prf(k.mrk),
            Prf(k.muk),
            a.key_expiry,
            a.guss.mbms_service_ids,
            a.ks_int_naf is not None,
        )

    def forget_user(self, btid: str) -> None:
        """Drop the cached keys of ``btid`` (e.g. the UE re-bootstrapped)."""
        self._users.pop(btid, None)

    def authorise(self, user: UserKeys, svc: ServiceRecord) -> None:
        """Raise NotAuthorizedError unless the service list and the GUSS allow the user."""
        if not svc.allows(user.impi) or (
            user.service_ids and svc.service_id not in user.service_ids
        ):
            raise NotAuthorizedError(f"{user.impi} may not use {svc.service_id}")

    def muk_id(self, user: UserKeys) -> MukId:
        """The MUK ID (IDi = BM-SC FQDN, IDr = B-TID) of ``user``."""
        return MukId(self.idi, user.btid.encode("utf-8"))

    # --- datagrams -------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        """Process one UDP datagram; answers are queued for :meth:`datagrams_to_send`."""
        self._out.extend(self.handle_compact_datagram(data, addr, now))

    def handle_compact_datagram(
        self, data: bytes, addr: Addr, now: float
    ) -> list[tuple[bytes, Addr]]:
        """Process one datagram on the MIKEY port and return the immediate answers (see the
        module docstring). Never raises for bad input."""
        if len(data) >= 2 and data[0] == 1 and data[1] == DataType.PSK_VERIFY:
            self.pushes.on_verification(data, addr, now)
            return []
        try:
            req = parse_key_request(data)
        except DecodeError:
            self._count("compact.malformed")
            return []
        return self._on_key_request(req, data, addr, now)

    def _on_key_request(
        self, req: KeyRequest, data: bytes, addr: Addr, now: float
    ) -> list[tuple[bytes, Addr]]:
        t = req.time(now)
        stale = False
        try:
            self.replay.check(req.mac, t, now)
        except TimestampOutOfWindowError:
            stale = True
        except ReplayedMessageError:
            self._count("compact.replayed")
            return []
        try:
            user = self.user_keys(req.btid, now)
        except ZnPendingError:
            self._park(req.btid, data, addr, now)
            return []
        except (BtidUnknownError, BsfUnreachableError) as exc:
            if stale:
                return []
            cause = (
                ErrorCause.BTID_UNKNOWN
                if isinstance(exc, BtidUnknownError)
                else ErrorCause.KEK_UNAVAILABLE
            )
            self._count(f"compact.error.{cause.name.lower()}")
            return [(build_key_error(req, cause, None), addr)]
        try:
            verify_key_request(req, user.mrk_prf)
        except AuthError:
            self._count("compact.bad_mac")
            return []
        if stale:
            self._count("compact.error.invalid_ts")
            return [(build_key_error(req, ErrorCause.INVALID_TS, user.mrk_prf), addr)]
        try:
            self.replay.commit(req.mac, t, now)
        except ReplayedMessageError:
            return []
        return [(self._answer(req, user, len(data), now), addr)]

    def _answer(self, req: KeyRequest, user: UserKeys, req_len: int, now: float) -> bytes:
        ref = req.key_ref
        svc = None
        if ref.service_id is not None:
            svc = self.scheduler.service(ref.service_id)
        if svc is None and ref.msk_refs():
            svc = self.scheduler.service_for_msk(ref.msk_refs()[0])
        if svc is None:
            return build_key_error(req, ErrorCause.SERVICE_UNKNOWN, user.mrk_prf)
        try:
            self.authorise(user, svc)
        except NotAuthorizedError:
            self._count("compact.error.not_authorized")
            return build_key_error(req, ErrorCause.NOT_AUTHORIZED, user.mrk_prf)
        msks = self.offer(svc, now)
        wanted = ref.msk_refs()
        if wanted:
            msks = [m for m in msks if m.ref == wanted[0]]
        if not msks:
            self._count("compact.error.key_not_available")
            return build_key_error(req, ErrorCause.KEY_NOT_AVAILABLE, user.mrk_prf)
        keys = [MskKey(m.ref, m.key, m.mtk_id_first, m.mtk_id_last) for m in msks]
        muk_id = self.muk_id(user)
        resp = build_key_response(req, keys, user.muk_prf, muk_id, rand=self.rng(RAND_LEN))
        if len(resp) > self.config.response_bound * req_len and len(keys) > 1:
            resp = build_key_response(req, keys[:1], user.muk_prf, muk_id, rand=self.rng(RAND_LEN))
        if len(resp) > self.config.response_bound * req_len:
            self._count("compact.over_bound")
            return build_key_error(req, ErrorCause.UNSPECIFIED, user.mrk_prf)
        self._count("compact.keys")
        return resp

    def offer(self, svc: ServiceRecord, now: float) -> list[MskRecord]:
        """The MSKs handed out now: the current one and, inside ``msk_lead``, the next."""
        out = [m for m in (self.scheduler.current_msk(svc, now), self.scheduler.next_msk(svc, now))]
        return [m for m in out if m is not None]

    def _park(self, btid: str, data: bytes, addr: Addr, now: float) -> None:
        total = sum(len(v) for v in self._parked.values())
        q = self._parked.get(btid, [])
        if len(q) < MAX_PARKED_PER_BTID and total < self.config.max_parked:
            self._parked[btid] = [*q, (data, addr, now)]

    def on_zn_ready(self, btid: str, now: float) -> None:
        """A Zn lookup for ``btid`` finished (answer or failure is in the Zn cache): process the
        datagrams parked for it; answers are queued."""
        for data, addr, _ in self._parked.pop(btid, []):
            self.receive_datagram(data, addr, now)

    # --- MSK pushes (3GPP profile, :mod:`.pushes`) ----------------------------------------------

    def push_msk(
        self,
        user: UserKeys,
        msk: MskRecord,
        addr: Addr,
        now: float,
        verify: bool,
        retries: int | None = None,
    ) -> None:
        """Queue an MSK message for ``user`` (per-MUK COUNTER reserved durably first); with
        ``verify`` the V bit is set and the push is resent (``retries`` times, default
        ``push_retries``) until its verification message arrives."""
        self.pushes.push(user, msk, addr, now, verify, retries)

    def deliver_to_registration(
        self, reg: Registration, svc: ServiceRecord, now: float, *, only_next: bool = False
    ) -> int:
        """Push the offered MSKs (or only the next one) to a registered UE. Returns how many
        pushes were queued (0 when its B-TID has no keys any more)."""
        return self.pushes.deliver_to_registration(reg, svc, now, only_next=only_next)

    # --- MTK announcements -----------------------------------------------------------------------

    def _announce(self, now: float) -> None:
        for svc in self.scheduler.services():
            at = self._announce_at.get(svc.service_id, now)
            if now < at:
                continue
            for mtk_rec in (
                self.scheduler.current_mtk(svc, now),
                self.scheduler.next_mtk(svc, now),
            ):
                if mtk_rec is None:
                    continue
                msk = self.scheduler.msk_for_ref(mtk_rec.msk)
                if msk is None:
                    continue
                counter = self.scheduler.next_counter(
                    counter_name_msk(msk.ref), self.config.mtk_counter_block
                )
                data = build_mtk_message(
                    MtkKey(msk.ref, mtk_rec.mtk_id, mtk_rec.key, mtk_rec.salt),
                    self.scheduler.msk_prf(msk),
                    counter,
                    csb_id=int.from_bytes(self.rng(4), "big"),
                    rand=self.rng(RAND_LEN),
                )
                self._out.append((data, (svc.group_host, svc.group_port)))
                self._count("mtk.sent")
            self._announce_at[svc.service_id] = min(
                now + svc.announce_interval, self.scheduler.next_change(svc, now)
            )

    # --- timers and outputs ----------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The earliest deadline: announcements, key schedule, push retries and queue, purge,
        leader lease."""
        cands = list(self._announce_at.values()) if self._leader else []
        if self.lease is not None:
            cands.append(self.lease.deadline())
        cands += self.pushes.deadlines()
        cands += [q[0][2] + self.config.park_timeout for q in self._parked.values() if q]
        cands.append(self._next_purge)
        return min(cands) if cands else None

    def handle_timer(self, now: float) -> None:
        """Run everything due at ``now``: key generation (leader), next-MSK pushes, push
        retries, MTK announcements, purge of old keys; take or renew the leader lease."""
        if self.lease is not None:
            self._set_leader(self.lease.poll(now), now)
        self.scheduler.refresh_services()
        if self._leader:
            self.scheduler.ensure(now)
        for svc in self.scheduler.services():
            self._announce_at.setdefault(svc.service_id, now)
        for sid in [s for s in self._announce_at if self.scheduler.service(s) is None]:
            del self._announce_at[sid]
        if self._leader:  # one process pushes next MSKs to registrations
            self.pushes.offer_next_msks(now)
        self.pushes.run_queue(now)
        self.pushes.retry(now)
        if self._leader:  # one process announces MTKs (COUNTERs stay in order)
            self._announce(now)
        for btid in [
            b for b, q in self._parked.items() if q[0][2] + self.config.park_timeout <= now
        ]:
            del self._parked[btid]  # the Zn answer never came
        if now >= self._next_purge:
            self.scheduler.purge(now)
            self.pushes.prune_offers(now)
            self._next_purge = now + self.config.purge_interval

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        """Everything queued for the network (answers, pushes, MTK messages), in order."""
        out = list(self._out)
        self._out.clear()
        return out

    def next_event(self) -> DeliveryConfirmed | PushAbandoned | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    # --- HTTP (3GPP profile) ---------------------------------------------------------------------

    def handle_http(self, request: HttpRequest, now: float) -> HttpResponse:
        """Answer one key management HTTP request (see :mod:`.http_handler`); MSK pushes it
        triggers are queued for :meth:`datagrams_to_send`."""
        return self.http.handle(request, now)
