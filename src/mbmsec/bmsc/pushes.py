"""MSK pushes of the 3GPP profile (TS 33.246 §6.3.2, §6.3.2.3.1), part of the sans-I/O BM-SC.

Theory of operation
-------------------
A push is an MSK message under the MUK of one B-TID (per-MUK COUNTER from a durably reserved
block, fresh CSB ID and RAND) sent to a registration's MIKEY address. With the V bit it stays
*outstanding* in memory until its verification message arrives (RFC 3830 §3.1 R_MESSAGE) or
``push_timeout`` passes; then it is sent again as a new message, ``push_retries`` times, and
finally abandoned (:class:`PushAbandoned`).

Each push leaves a delivery record in the store, holding the message when a verification is
expected. So the verification may reach any worker sharing the store (``--workers``: the
kernel picks the worker by 4-tuple hash): a worker without the push in memory finds the record
by the verification's IDr (the B-TID) and CSB ID, checks its MAC against the stored message
with the UE's MUK (Zn, cached) and confirms the record; the sender looks at the record before
each retry and stops when it is confirmed. Only the leader offers next MSKs to registrations
(:meth:`MskPushes.offer_next_msks`), spread over a tenth of the lead time.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import AuthError, BsfUnreachableError, BtidUnknownError, DecodeError
from ..mbms.messages import (
    MSG_OPTIONS,
    RAND_LEN,
    MskKey,
    build_msk_message,
    check_msk_verification,
)
from ..mikey.codec import decode_message
from ..mikey.constants import TsType
from ..mikey.payloads import IdPayload, Timestamp
from ..store.bmsc_protocols import (
    DeliveryRecord,
    MskRecord,
    Registration,
    ServiceRecord,
    counter_name_muk,
)
from .zn import ZnPendingError

if TYPE_CHECKING:
    from .core import BmscCore, UserKeys

__all__ = ["DeliveryConfirmed", "MskPushes", "PushAbandoned"]

Addr = tuple[str, int]


@dataclass(frozen=True)
class DeliveryConfirmed:
    """Event: a UE confirmed an MSK push with a valid verification message."""

    btid: str
    impi: str
    msk: MskRecord
    csb_id: int


@dataclass(frozen=True)
class PushAbandoned:
    """Event: an MSK push got no verification after all retries."""

    btid: str
    impi: str
    msk: MskRecord


@dataclass
class _Push:
    user: UserKeys
    msk: MskRecord
    addr: Addr
    message: bytes
    deadline: float
    retries_left: int


class MskPushes:
    """Outstanding pushes, retries, verification checks and next-MSK offers of one
    :class:`~.core.BmscCore` (see the module docstring)."""

    def __init__(self, core: BmscCore) -> None:
        self.core = core
        self._outstanding: OrderedDict[int, _Push] = OrderedDict()
        self._offered: set[tuple[str, int]] = set()  # (service, MSK index) offered
        self._queue: list[tuple[float, str, str]] = []  # (when, impi, service_id)

    def __repr__(self) -> str:
        return f"MskPushes(outstanding={len(self._outstanding)}, queued={len(self._queue)})"

    def deadlines(self) -> list[float]:
        """Retry deadlines of outstanding pushes and the first queued offer."""
        out = [p.deadline for p in self._outstanding.values()]
        if self._queue:
            out.append(self._queue[0][0])
        return out

    # --- verification messages -----------------------------------------------------------------

    def on_verification(self, data: bytes, addr: Addr, now: float) -> None:
        """A datagram of data type 1 on the MIKEY port (RFC 3830 §5.4: accepted only for a
        CSB ID outstanding at the BM-SC, here or at another worker sharing the store)."""
        core = self.core
        if len(data) < 8:
            return
        csb_id = int.from_bytes(data[4:8], "big")
        push = self._outstanding.get(csb_id)
        if push is None:
            self._on_foreign_verification(data, csb_id, addr, now)
            return
        try:
            check_msk_verification(data, push.message, push.user.muk_prf, core.muk_id(push.user))
        except (DecodeError, AuthError):
            core._count("verification.bad")
            return
        del self._outstanding[csb_id]
        core.store.confirm_delivery(push.user.btid, csb_id, now)
        core._events.append(DeliveryConfirmed(push.user.btid, push.user.impi, push.msk, csb_id))
        core._count("verification.ok")

    def _on_foreign_verification(self, data: bytes, csb_id: int, addr: Addr, now: float) -> None:
        """A verification message for a push this worker did not send: find the delivery
        record by IDr (the B-TID) and CSB ID, check the MAC against the stored MSK message,
        confirm it in the store."""
        core = self.core
        try:
            ids = decode_message(data, MSG_OPTIONS).find_all(IdPayload)
        except DecodeError:
            core._count("verification.bad")
            return
        if len(ids) != 1:
            core._count("verification.unsolicited")
            return
        btid = ids[0].data.decode("utf-8", "replace")
        rec = core.store.get_delivery(btid, csb_id)
        if rec is None or rec.message is None or rec.confirmed_at is not None:
            core._count("verification.unsolicited")
            return
        try:
            user = core.user_keys(btid, now)
        except ZnPendingError:
            core._park(btid, data, addr, now)  # back here once the Zn answer is in
            return
        except (BtidUnknownError, BsfUnreachableError):
            core._count("verification.no_user_keys")
            return
        try:
            check_msk_verification(data, rec.message, user.muk_prf, core.muk_id(user))
        except (DecodeError, AuthError):
            core._count("verification.bad")
            return
        if not core.store.confirm_delivery(btid, csb_id, now):
            return
        msk = core.scheduler.msk_for_ref(rec.msk)
        if msk is not None:
            core._events.append(DeliveryConfirmed(btid, user.impi, msk, csb_id))
        core._count("verification.ok")

    # --- pushes ----------------------------------------------------------------------------------

    def push(
        self,
        user: UserKeys,
        msk: MskRecord,
        addr: Addr,
        now: float,
        verify: bool,
        retries: int | None = None,
    ) -> None:
        """Queue an MSK message for ``user`` (see :meth:`.core.BmscCore.push_msk`)."""
        core, cfg = self.core, self.core.config
        counter = core.scheduler.next_counter(counter_name_muk(user.btid), cfg.muk_counter_block)
        csb_id = int.from_bytes(core.rng(4), "big")
        while csb_id in self._outstanding:
            csb_id = int.from_bytes(core.rng(4), "big")
        key = MskKey(msk.ref, msk.key, msk.mtk_id_first, msk.mtk_id_last)
        data = build_msk_message(
            [key],
            user.muk_prf,
            core.muk_id(user),
            Timestamp(TsType.COUNTER, counter),
            csb_id=csb_id,
            rand=core.rng(RAND_LEN),
            v=verify,
        )
        rec = DeliveryRecord(
            user.btid, csb_id, msk.ref, counter, now, user.impi, message=data if verify else None
        )
        core.store.put_delivery(rec)
        if verify:
            left = cfg.push_retries if retries is None else retries
            self._outstanding[csb_id] = _Push(user, msk, addr, data, now + cfg.push_timeout, left)
            while len(self._outstanding) > cfg.max_outstanding:
                self._outstanding.popitem(last=False)
        core._out.append((data, addr))
        core._count("push.sent")

    def retry(self, now: float) -> None:
        """Resend (as new messages) the pushes whose verification did not come in time, unless
        another worker confirmed them; abandon those out of retries."""
        core = self.core
        for csb_id, p in list(self._outstanding.items()):
            if p.deadline > now:
                continue
            del self._outstanding[csb_id]
            rec = core.store.get_delivery(p.user.btid, csb_id)
            if rec is not None and rec.confirmed_at is not None:
                core._count("push.confirmed_elsewhere")  # the verification reached a peer
                continue
            if p.retries_left <= 0:
                core._events.append(PushAbandoned(p.user.btid, p.user.impi, p.msk))
                continue
            core._count("push.retry")
            self.push(p.user, p.msk, p.addr, now, True, p.retries_left - 1)

    def deliver_to_registration(
        self, reg: Registration, svc: ServiceRecord, now: float, *, only_next: bool = False
    ) -> int:
        """Push the offered MSKs (or only the next one) to a registered UE; return how many
        pushes were queued (0 when its B-TID has no keys any more)."""
        core = self.core
        try:
            user = core.user_keys(reg.btid, now)
        except (BtidUnknownError, BsfUnreachableError, ZnPendingError):
            core._count("push.no_user_keys")
            return 0
        msks = core.offer(svc, now)
        if only_next:
            msks = msks[1:]
        for m in msks:
            self.push(user, m, (reg.push_host, reg.push_port), now, svc.verification)
        return len(msks)

    # --- next-MSK offers (leader) ----------------------------------------------------------------

    def offer_next_msks(self, now: float) -> None:
        """Leader: when a service's next MSK becomes available, schedule pushes of it to every
        registration, spread over a tenth of the lead time (with a lease: every registration
        whose B-TID has no delivery record of it yet)."""
        core = self.core
        for svc in core.scheduler.services():
            nxt = core.scheduler.next_msk(svc, now)
            if nxt is None:
                continue
            idx = core.scheduler.msk_index(svc, nxt.valid_from)
            if (svc.service_id, idx) in self._offered:
                continue
            self._offered.add((svc.service_id, idx))
            spread = svc.msk_lead_s / 10
            have: set[str] = set()
            if core.lease is not None:  # a new leader: skip UEs a previous leader served
                have = {d.btid for d in core.store.deliveries_for_msk(nxt.ref)}
            for reg in core.store.registrations_for_service(svc.service_id):
                if reg.btid in have:
                    continue
                jitter = int.from_bytes(core.rng(2), "big") / 65536 * spread
                heapq.heappush(self._queue, (now + jitter, reg.impi, svc.service_id))

    def run_queue(self, now: float) -> None:
        """Push the next MSK to the registrations whose turn has come."""
        core = self.core
        while self._queue and self._queue[0][0] <= now:
            _, impi, service_id = heapq.heappop(self._queue)
            reg = core.store.get_registration(impi, service_id)
            svc = core.scheduler.service(service_id)
            if reg is None or svc is None:
                continue
            self.deliver_to_registration(reg, svc, now, only_next=True)

    def reset_offers(self) -> None:
        """Forget offers made and queued (a change of leader)."""
        self._offered.clear()
        self._queue.clear()

    def prune_offers(self, now: float) -> None:
        """Forget offers of MSKs that are no longer current or next."""
        sched = self.core.scheduler
        keep = set()
        for sid, i in self._offered:
            svc = sched.service(sid)
            if svc is not None and i >= sched.msk_index(svc, now):
                keep.add((sid, i))
        self._offered = keep
