"""The UE key client's datagram side: compact answers, MSK pushes, MTK messages (sans-I/O).

A mixin of :class:`~mbmsec.ue.client.UeKeyClient`, kept apart to keep modules small. Every
message is checked before anything changes (MAC before decryption, COUNTER / T echo / MTK ID
rules, identities); anything that fails is dropped silently (docs/protocol.md: no oracle, no
MIKEY Error from a UE). Accepted keys go to :class:`~.holdings.KeyHoldings`; MTK messages of an
MSK the UE lacks are parked (bounded) and trigger a missed key update.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Final

from ..errors import DecodeError, MbmsecError, ReplayError
from ..mbms.compact import ErrorCause, KeyErrorReply, PendingKeyRequest, check_key_response
from ..mbms.keys import MskId, MskRef, MukId
from ..mbms.messages import (
    MSG_OPTIONS,
    MskMessage,
    build_msk_verification,
    check_msk_message,
    peek_key_ref,
)
from ..mbms.mgvf import MtkIdNotIncreasingError, check_msk_counter, mgvf_mtk
from ..mikey.codec import Message, decode_message
from ..mikey.constants import DataType
from ..mikey.payloads import IdPayload
from ..mikey.prf import Prf
from . import events as ev
from .config import Addr, UeConfig
from .events import Want, WantKind
from .holdings import KeyHoldings, ServiceBinding
from .machine import RequestMachine, RInput

__all__ = ["InboundMixin"]

MAX_PARKED_MSKS: Final = 4  # unknown MSKs whose MTK messages are kept until the MSK arrives
MAX_PARKED_PER_MSK: Final = 2
MAX_MSK_WANTS_KEPT: Final = 16  # MSK wants remembered, active or resting
_FATAL_CAUSES: Final = {ErrorCause.SERVICE_UNKNOWN, ErrorCause.NOT_AUTHORIZED}


class InboundMixin:
    """Datagram handlers of the UE key client (state lives in the client)."""

    config: UeConfig
    keys: KeyHoldings
    idi: bytes
    _machines: dict[Want, RequestMachine]
    _pending: dict[int, tuple[Want, PendingKeyRequest]]
    _out: deque[tuple[bytes, Addr]]
    _parked_mtks: OrderedDict[MskRef, dict[int, Message]]

    # provided by the client
    def _count(self, what: str) -> None:
        raise NotImplementedError

    def _emit(self, event: ev.UeEvent) -> None:
        raise NotImplementedError

    def _drop(self, kind: str, reason: str, now: float, *, quiet: bool = False) -> None:
        raise NotImplementedError

    def _trigger(self, want: Want, now: float, why: str) -> None:
        raise NotImplementedError

    def _feed(self, want: Want, inp: RInput, now: float, retry_after: float | None = None) -> None:
        raise NotImplementedError

    def _user_keys(self, now: float) -> tuple[str, bytes, Prf, Prf] | None:
        raise NotImplementedError

    def _satisfied(self, want: Want, now: float) -> bool:
        raise NotImplementedError

    def _check_satisfied(self, now: float) -> None:
        raise NotImplementedError

    def _forget_want(self, want: Want) -> None:
        raise NotImplementedError

    def _muk_id(self, btid: str) -> MukId:
        return MukId(self.idi, btid.encode("utf-8"))

    # --- datagrams -----------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        """Process one UDP datagram (MSK message, compact answer, MTK message)."""
        try:
            msg = decode_message(data, MSG_OPTIONS)
        except DecodeError as exc:
            self._drop("malformed", exc.reason, now)
            return
        h = msg.header
        if h.csb_id in self._pending and h.data_type in (DataType.PSK_INIT, DataType.ERROR):
            self._on_compact_answer(data, msg, now)
        elif h.data_type == DataType.PSK_INIT and msg.find(IdPayload) is not None:
            self._on_msk_push(msg, addr, now)
        elif h.data_type == DataType.PSK_INIT:
            self._on_mtk(msg, now)
        else:
            self._drop("unexpected", f"data type {h.data_type}", now)
        self._check_satisfied(now)

    def _on_compact_answer(self, data: bytes, msg: Message, now: float) -> None:
        want, pending = self._pending[msg.header.csb_id]
        user = self._user_keys(now)
        if user is None or user[0] != pending.btid:
            self._drop("answer", "keys of that request are gone", now)
            return
        btid, _, mrk_prf, muk_prf = user
        try:
            got = check_key_response(
                data, pending, muk=muk_prf, mrk=mrk_prf, muk_id=self._muk_id(btid)
            )
        except MbmsecError as exc:
            self._drop("answer", f"{type(exc).__name__}", now)
            return
        del self._pending[msg.header.csb_id]
        if isinstance(got, KeyErrorReply):
            self._on_cause(want, got, now)
            return
        sid = want.service_id if want.kind is WantKind.SERVICE else None
        self._install_msks(got, sid, "compact", now)
        if not self._satisfied(want, now):
            self._feed(want, RInput.ERROR_RETRY, now)  # e.g. the successor is not offered yet

    def _on_cause(self, want: Want, reply: KeyErrorReply, now: float) -> None:
        cause = reply.causes[0]
        try:
            name = ErrorCause(cause).name.lower()
        except ValueError:
            name = f"cause-{cause}"
        self._emit(ev.RequestRefused(now, str(want), cause, name, reply.authenticated))
        if cause == ErrorCause.BTID_UNKNOWN:
            inp = RInput.ERROR_BOOTSTRAP
        elif cause == ErrorCause.KEY_NOT_AVAILABLE and want.kind is WantKind.MSK:
            self._msk_gone(want, now)
            return
        elif cause in _FATAL_CAUSES:
            inp = RInput.ERROR_FATAL
        else:
            inp = RInput.ERROR_RETRY
        self._feed(want, inp, now)

    def _msk_gone(self, want: Want, now: float) -> None:
        """The named MSK is not available (expired, or not offered yet): stop asking for it by
        ID and ask for the service's current keys instead (docs/protocol.md §8.3, cause 245)."""
        assert want.msk is not None
        self._feed(want, RInput.ERROR_FATAL, now)
        sid = self.keys.service_of(want.msk)
        if sid is not None and any(s.service_id == sid for s in self.config.services):
            self._trigger(Want(WantKind.SERVICE, sid), now, "named MSK not available")

    def _install_msks(self, m: MskMessage, service_id: str | None, via: str, now: float) -> None:
        for key in m.msks:
            ref = key.ref
            sid = service_id or self.keys.service_of(ref)
            if sid is not None and self.keys.binding(sid) is None:
                self.keys.bind(sid, ServiceBinding(ref.key_domain_id, ref.msk_id.key_group))
            new, gone = self.keys.install_msk(key, sid, now)
            for old in gone:
                self._emit(ev.MskDeleted(now, str(old)))
            if new:
                self._emit(
                    ev.MskInstalled(now, str(ref), sid, key.mtk_id_first, key.mtk_id_last, via)
                )
            else:
                self._count("msk.redelivered")
            for parked in self._parked_mtks.pop(ref, {}).values():
                self._on_mtk(parked, now)  # full MGV-F checks, now that the MSK is here

    def _park_mtk(self, ref: MskRef, mtk_id: int, msg: Message) -> None:
        """Keep the newest MTK messages of an MSK the UE is about to ask for, so the MTK is
        usable as soon as the MSK arrives (not only at the next announcement). Bounded; the
        messages are unauthenticated until then and go through the MGV-F like any other."""
        per = self._parked_mtks.setdefault(ref, {})
        self._parked_mtks.move_to_end(ref)
        per[mtk_id] = msg
        while len(per) > MAX_PARKED_PER_MSK:
            del per[min(per)]
        while len(self._parked_mtks) > MAX_PARKED_MSKS:
            self._parked_mtks.popitem(last=False)

    def _on_msk_push(self, msg: Message, addr: Addr, now: float) -> None:
        user = self._user_keys(now)
        if user is None:
            self._drop("msk", "no MUK", now)
            return
        btid, _, _, muk_prf = user
        rec = self.keys.muk(self.idi, now)
        assert rec is not None
        muk_id = self._muk_id(btid)
        try:
            checked = check_msk_message(msg, muk_prf, expected_muk_id=muk_id)
            counter = check_msk_counter(checked.timestamp, rec.last_counter)
        except ReplayError as exc:
            self._drop("msk", f"replay: {exc}", now)
            return
        except MbmsecError as exc:
            self._drop("msk", f"{type(exc).__name__}", now)
            return
        self.keys.store.set_muk_counter(self.idi, btid, counter)
        pending_regs = [
            w.service_id
            for w, m in self._machines.items()
            if w.kind is WantKind.SERVICE and m.active and self.keys.binding(w.service_id) is None
        ]
        guess = pending_regs[0] if len(pending_regs) == 1 else None
        self._install_msks(checked, guess, "push", now)
        if checked.v:
            self._out.append((build_msk_verification(checked, muk_prf, muk_id), addr))
            self._count("verification.sent")

    def _on_mtk(self, msg: Message, now: float) -> None:
        try:
            _, ref = peek_key_ref(msg)
        except DecodeError as exc:
            self._drop("mtk", exc.reason, now)
            return
        refs = ref.msk_refs()
        if len(refs) != 1 or ref.mtk_id is None:
            self._drop("mtk", "no single MSK / MTK ID", now)
            return
        msk_ref = refs[0]
        state = self.keys.mgvf_state(msk_ref)
        if state is None:
            self._park_mtk(msk_ref, ref.mtk_id, msg)
            self._unknown_msk(msk_ref, now, "MTK message")
            return
        try:
            mtk, new = mgvf_mtk(msg, state)
        except MtkIdNotIncreasingError:
            # The BM-SC repeats the current and the next MTK: old MTK IDs are routine here
            # (a replay of an old MTK message lands here too, and is dropped all the same).
            self._drop("mtk.stale", "MTK ID not greater than the current one", now, quiet=True)
            return
        except MbmsecError as exc:
            self._drop("mtk", f"{type(exc).__name__}: {exc}", now)
            return
        self.keys.accept_mtk(mtk, new, now)
        self._emit(ev.MtkInstalled(now, str(msk_ref), mtk.mtk_id))

    def _unknown_msk(self, ref: MskRef, now: float, seen_in: str) -> None:
        bound = [self.keys.binding(s.service_id) for s in self.config.services]
        known = [b for b in bound if b is not None]
        if known and not any(
            b.key_domain_id == ref.key_domain_id and b.key_group == ref.msk_id.key_group
            for b in known
        ):
            self._count("unknown_msk.foreign")
            return
        if not known and any(
            m.active for w, m in self._machines.items() if w.kind is WantKind.SERVICE
        ):
            self._count("unknown_msk.activation_running")  # the activation brings the key
            return
        want = Want(WantKind.MSK, msk=ref)
        if want not in self._machines or not self._machines[want].active:
            msk_wants = [(w, m) for w, m in self._machines.items() if w.kind is WantKind.MSK]
            if sum(1 for _, m in msk_wants if m.active) >= self.config.max_msk_wants:
                self._count("unknown_msk.limit")
                return
            # bounded state: resting (given-up) MSK wants beyond the cap go, oldest first
            resting = [w for w, m in msk_wants if not m.active and w != want]
            for old in resting[: max(0, len(msk_wants) - MAX_MSK_WANTS_KEPT + 1)]:
                self._forget_want(old)
        self._trigger(want, now, f"unknown MSK in {seen_in}")

    # --- SRTP ----------------------------------------------------------------------------------

    def note_srtp_mki(self, msk_id: int, mtk_id: int, now: float) -> None:
        """An SRTP packet named MSK ID / MTK ID: ask for the MSK when it is unknown."""
        mid = MskId.from_int(msk_id)
        for s in self.config.services:
            b = self.keys.binding(s.service_id)
            if b is not None and b.key_group == mid.key_group:
                ref = MskRef(b.key_domain_id, mid)
                if not self.keys.has_msk(ref):
                    self._unknown_msk(ref, now, "SRTP MKI")
                return
        self._count("unknown_msk.unbound_mki")
