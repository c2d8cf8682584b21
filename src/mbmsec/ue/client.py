"""The UE key client, sans-I/O: bootstrap, activation, key delivery, MTK checks, supervision.

Contract (ARCHITECTURE §4): ``receive_datagram(data, addr, now)``, ``datagrams_to_send(now)``,
``get_timer()``, ``handle_timer(now)``, ``next_event()``; plus the HTTP side used by the 3GPP
profile and by GBA bootstrapping: ``http_requests_to_send(now)`` yields ``(request id, server,
HttpRequest)`` with server ``"bsf"`` or ``"bmsc"``, and the driver answers each with
``handle_http_response(request id, response or None, now)`` (None: transport failure).

Profiles:

* ``compact`` (the original proposal, :mod:`mbmsec.mbms.compact`): a want is one UDP key
  request (Key-Ref = service ID, or Key Domain ID + MSK ID) to the BM-SC; the answer is an MSK
  message (CSB ID and T echoed) or an Error message with a cause.
* ``3gpp`` (TS 33.246): a service want is an HTTP registration, an MSK want an HTTP MSK
  request; the MSKs arrive as MIKEY MSK messages pushed over UDP under the MUK (per-MUK COUNTER
  must increase), answered with a verification message when the V bit is set.

In both, MTK messages arrive on the service's multicast group and pass the MGV-F (MAC, per-MSK
COUNTER, MTK ID; :mod:`mbmsec.mbms.mgvf`). Anything that fails a check is dropped silently: no
answer goes out, only a :class:`~.events.MessageDropped` event and a counter.

*When* to ask is decided by one :class:`~.machine.RequestMachine` per :class:`~.events.Want`
(the transition table there). Wants are triggered by: start-up (bootstrap, every configured
service), the B-TID's re-bootstrap deadline, each service's renewal deadline
(:meth:`~.holdings.KeyHoldings.renewal_due`), an MTK message or SRTP MKI naming an MSK the UE
lacks (missed key update, TS 33.246 §6.3.2.2.3; at most ``max_msk_wants`` at once, and only for
key groups of configured services once those are known), and error causes. A named-MSK want
does not restart by itself after its cooldown (such messages are unauthenticated until the MSK
is held) and is forgotten once satisfied or rested; at most 16 are remembered.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque

from ..errors import ConfigError, MbmsecError
from ..gba.client import BootstrapClient
from ..gba.client import State as UbState
from ..gba.kdf import UA_MBMS, naf_id
from ..httpmsg import HttpRequest, HttpResponse
from ..mbms.compact import PendingKeyRequest, build_key_request
from ..mbms.keys import GbaMode, KeyRef, MskRef, derive_mbms_user_keys
from ..mikey.codec import Message
from ..mikey.prf import Prf
from ..srtp import SrtpKey
from ..store.ue_keys import MemoryUeKeyStore, UeKeyStore
from . import events as ev
from .config import Addr, ServiceConfig, UeConfig
from .events import BOOTSTRAP, Want, WantKind
from .holdings import KeyHoldings, ServiceBinding
from .inbound import InboundMixin
from .keymgmt import Exchange, KeyMgmtClient, Outcome
from .machine import Action, RequestMachine, RInput, RState
from .retry import Rng

__all__ = ["ServiceConfig", "UeConfig", "UeKeyClient"]

log = logging.getLogger("mbmsec.ue")

MAX_PENDING = 64  # outstanding compact requests remembered
_UB_WAITING = (UbState.WAIT_CHALLENGE, UbState.WAIT_RESULT, UbState.WAIT_REJECT)


class UeKeyClient(InboundMixin):
    """The UE key client (see the module docstring; datagram handlers in :mod:`.inbound`)."""

    def __init__(
        self,
        config: UeConfig,
        bootstrap: BootstrapClient,
        rng: Rng,
        store: UeKeyStore | None = None,
        now: float = 0.0,
    ) -> None:
        if bootstrap.uicc.gba_u:
            raise ConfigError("the UE key client supports GBA_ME (MUK outside the UICC) only")
        self.config = config
        self.bootstrap = bootstrap
        self.rng = rng
        self.idi = config.bmsc_fqdn.encode("utf-8")
        self.naf_id = naf_id(config.bmsc_fqdn, UA_MBMS)
        self.keys = KeyHoldings(store if store is not None else MemoryUeKeyStore())
        self.keymgmt = KeyMgmtClient(config.bmsc_fqdn, config.mikey_port, rng)
        self.stats: dict[str, int] = {}
        self._machines: dict[Want, RequestMachine] = {}
        self._why: dict[Want, str] = {}
        self._events: deque[ev.UeEvent] = deque()
        self._out: deque[tuple[bytes, Addr]] = deque()
        self._http_out: deque[tuple[int, str, HttpRequest]] = deque()
        self._pending: dict[int, tuple[Want, PendingKeyRequest]] = {}
        self._exchanges: dict[int, tuple[Want, Exchange]] = {}
        self._ub_request: int | None = None
        self._next_id = 1
        self._registered: set[str] = set()
        self._prf_cache: tuple[bytes, Prf, Prf] | None = None
        self._force_bootstrap = False
        self._parked_mtks: OrderedDict[MskRef, dict[int, Message]] = OrderedDict()
        for s in config.services:
            if s.key_domain_id is not None and s.key_group is not None:
                self.keys.bind(s.service_id, ServiceBinding(s.key_domain_id, s.key_group))
            if s.mtk_period is not None:
                self.keys.set_period(s.service_id, s.mtk_period)
        if self._user_keys(now) is None:
            self._trigger(BOOTSTRAP, now, "start")
        for s in config.services:
            self._trigger(Want(WantKind.SERVICE, s.service_id), now, "activation")

    def __repr__(self) -> str:
        return f"UeKeyClient(impi={self.bootstrap.impi!r}, profile={self.config.profile})"

    # --- bookkeeping ---------------------------------------------------------------------------

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    def _emit(self, event: ev.UeEvent) -> None:
        self._events.append(event)
        log.info(event.name, extra=event.fields())

    def _drop(self, kind: str, reason: str, now: float, *, quiet: bool = False) -> None:
        self._count(f"drop.{kind}")
        if not quiet:
            self._emit(ev.MessageDropped(now, kind, reason))

    def _machine(self, want: Want) -> RequestMachine:
        m = self._machines.get(want)
        if m is None:
            policy = self.config.bootstrap_retry if want is BOOTSTRAP else self.config.retry
            m = self._machines[want] = RequestMachine(policy, self.rng)
        return m

    def _trigger(self, want: Want, now: float, why: str) -> None:
        m = self._machine(want)
        if m.state in (RState.IDLE, RState.GAVE_UP):
            self._why[want] = why
        self._apply(want, m.feed(RInput.TRIGGER, now).action, now)

    def _feed(self, want: Want, inp: RInput, now: float, retry_after: float | None = None) -> None:
        m = self._machines.get(want)
        if m is None:
            return
        self._apply(want, m.feed(inp, now, retry_after=retry_after).action, now)

    def _user_keys(self, now: float) -> tuple[str, bytes, Prf, Prf] | None:
        """(B-TID, MRK, MRK PRF, MUK PRF) while the MUK lifetime lasts."""
        rec = self.keys.muk(self.idi, now)
        if rec is None:
            return None
        if self._prf_cache is None or self._prf_cache[0] != rec.muk:
            self._prf_cache = (rec.muk, Prf(rec.mrk), Prf(rec.muk))
        return rec.btid, rec.mrk, self._prf_cache[1], self._prf_cache[2]

    # --- wants: satisfied? ---------------------------------------------------------------------

    def _satisfied(self, want: Want, now: float) -> bool:
        if want.kind is WantKind.BOOTSTRAP:
            if self._force_bootstrap:
                return False
            rec = self.keys.muk(self.idi, now)
            return rec is not None and now < rec.expires - self.config.rebootstrap_margin
        if want.kind is WantKind.MSK:
            assert want.msk is not None
            return self.keys.has_msk(want.msk)
        sid = want.service_id
        if self.config.profile == "3gpp" and sid not in self._registered:
            return False
        if self.keys.current(sid) is None:
            return False
        due = self.keys.renewal_due(sid, self.config.retry.lead_time)
        return due is None or due > now

    def _check_satisfied(self, now: float) -> None:
        for want, m in list(self._machines.items()):
            if m.state is not RState.IDLE and self._satisfied(want, now):
                self._feed(want, RInput.SATISFIED, now)

    # --- actions -------------------------------------------------------------------------------

    def _apply(self, want: Want, action: Action, now: float) -> None:
        m = self._machines[want]
        if action in (Action.SEND, Action.SEND_NOW):
            self._send(want, m.attempt, now)
        elif action is Action.NEED_BOOTSTRAP:
            if self._user_keys(now) is not None:
                self._force_bootstrap = True  # the BM-SC does not know our B-TID any more
            self._trigger(BOOTSTRAP, now, f"needed by {want}")
        elif action is Action.GIVE_UP:
            self._emit(ev.RequestGaveUp(now, str(want), m.attempt, self._why.get(want, "")))
        elif action is Action.FINISH and want.kind is WantKind.MSK:
            self._forget_want(want)  # one named MSK: done for good

    def _forget_want(self, want: Want) -> None:
        self._machines.pop(want, None)
        self._why.pop(want, None)

    def _age_pending(self, now: float) -> None:
        """Forget compact requests too old to be answered (a late answer to a satisfied want
        is still recognised until then)."""
        horizon = now - self.config.retry.worst_case_cycle()
        for csb in [c for c, (_, p) in self._pending.items() if p.sent_at < horizon]:
            del self._pending[csb]
        while len(self._pending) > MAX_PENDING:
            del self._pending[next(iter(self._pending))]

    def _new_id(self) -> int:
        rid = self._next_id
        self._next_id += 1
        return rid

    def _send(self, want: Want, attempt: int, now: float) -> None:
        why = self._why.get(want, "")
        if want.kind is WantKind.BOOTSTRAP:
            if self._ub_request is not None:
                self._machines[want].defer()  # its answer (or failure) will come
                return
            if self.bootstrap.state in _UB_WAITING:
                self.bootstrap.state = UbState.FAILED  # abandon the broken exchange
            req = self.bootstrap.start(now)
            self._ub_request = self._new_id()
            self._http_out.append((self._ub_request, "bsf", req))
            self._emit(ev.RequestSent(now, str(want), attempt, why))
            return
        user = self._user_keys(now)
        if user is None:
            self._feed(want, RInput.NO_KEYS, now)
            return
        btid, mrk, mrk_prf, _ = user
        if self.config.profile == "compact":
            if want.kind is WantKind.SERVICE:
                ref = KeyRef(service_id=want.service_id)
            else:
                assert want.msk is not None
                ref = KeyRef(want.msk.key_domain_id, (want.msk.msk_id,))
            data, pending = build_key_request(
                btid=btid, key_ref=ref, mrk=mrk_prf, now=now, rng=self.rng
            )
            self._pending[pending.csb_id] = (want, pending)
            self._age_pending(now)
            self._out.append((data, self.config.bmsc_addr))
        else:
            if any(w == want for w, _ in self._exchanges.values()):
                self._machines[want].defer()  # an HTTP exchange is still outstanding
                return
            if want.kind is WantKind.SERVICE:
                exch = self.keymgmt.register([want.service_id])
            else:
                assert want.msk is not None
                exch = self.keymgmt.msk_request([want.msk])
            self._send_exchange(want, exch, btid, mrk)
        self._emit(ev.RequestSent(now, str(want), attempt, why))

    def _send_exchange(self, want: Want, exch: Exchange, btid: str, mrk: bytes) -> None:
        rid = self._new_id()
        self._exchanges[rid] = (want, exch)
        self._http_out.append((rid, "bmsc", self.keymgmt.request(exch, btid, mrk)))

    # --- bootstrap -----------------------------------------------------------------------------

    def _on_ub(self, response: HttpResponse | None, now: float) -> None:
        self._ub_request = None
        if response is None:
            self._emit(ev.BootstrapFailed(now, "BSF unreachable"))
            self._feed(BOOTSTRAP, RInput.ERROR_RETRY, now)
            return
        try:
            nxt = self.bootstrap.receive(response, now)
        except MbmsecError as exc:
            self._emit(ev.BootstrapFailed(now, f"{type(exc).__name__}: {exc}"))
            self._feed(BOOTSTRAP, RInput.ERROR_RETRY, now)
            return
        if nxt is not None:
            self._ub_request = self._new_id()
            self._http_out.append((self._ub_request, "bsf", nxt))
            return
        result = self.bootstrap.result
        assert result is not None
        ks_naf = self.bootstrap.naf_key(self.naf_id, now)
        keys = derive_mbms_user_keys(GbaMode.GBA_ME, ks_naf=ks_naf)
        self.keys.put_user_keys(self.idi, result.btid, keys.mrk, keys.muk, result.expires)
        self._prf_cache = None
        self._force_bootstrap = False
        self.keymgmt.forget_challenge()
        self._registered.clear()
        self._emit(ev.Bootstrapped(now, result.btid, result.expires))
        self._feed(BOOTSTRAP, RInput.SATISFIED, now)
        for want, m in list(self._machines.items()):
            if m.state is RState.WAIT_BOOTSTRAP:
                self._feed(want, RInput.BOOTSTRAPPED, now)
        if self.config.profile == "3gpp":
            for s in self.config.services:  # registrations name the B-TID: renew them
                self._trigger(Want(WantKind.SERVICE, s.service_id), now, "re-bootstrapped")

    # --- HTTP ----------------------------------------------------------------------------------

    def http_requests_to_send(self, now: float) -> list[tuple[int, str, HttpRequest]]:
        """HTTP requests to send: (request id, server ``"bsf"``/``"bmsc"``, request)."""
        out = list(self._http_out)
        self._http_out.clear()
        return out

    def handle_http_response(
        self, request_id: int, response: HttpResponse | None, now: float
    ) -> None:
        """The answer to request ``request_id`` (None: connection failed or timed out)."""
        if request_id == self._ub_request:
            self._on_ub(response, now)
        elif request_id in self._exchanges:
            want, exch = self._exchanges.pop(request_id)
            self._on_keymgmt(want, exch, response, now)
        self._check_satisfied(now)

    def _on_keymgmt(
        self, want: Want, exch: Exchange, response: HttpResponse | None, now: float
    ) -> None:
        if response is None:
            self._feed(want, RInput.ERROR_RETRY, now)
            return
        ans = self.keymgmt.answer(exch, response)
        if ans.outcome is Outcome.RESEND:
            user = self._user_keys(now)
            if user is None:
                self._feed(want, RInput.NO_KEYS, now)
            else:
                self._send_exchange(want, exch, user[0], user[1])
            return
        if ans.outcome is not Outcome.OK:
            self._emit(
                ev.RequestRefused(now, str(want), ans.status, f"http-{ans.status}", ans.status != 0)
            )
            inp = {
                Outcome.BOOTSTRAP: RInput.ERROR_BOOTSTRAP,
                Outcome.FATAL: RInput.ERROR_FATAL,
            }.get(ans.outcome, RInput.ERROR_RETRY)
            if inp is RInput.ERROR_BOOTSTRAP:
                self.keymgmt.forget_challenge()
            self._feed(want, inp, now, ans.retry_after)
            return
        statuses = [i.status for i in ans.services] + [i.status for i in ans.msks]
        for item in ans.services:
            if item.status == 200:
                self._registered.add(item.service_id)
                self._emit(ev.Registered(now, item.service_id))
        bad = [s for s in statuses if s != 200]
        if bad and want.kind is WantKind.MSK and all(s == 410 for s in bad):
            self._emit(ev.RequestRefused(now, str(want), 410, "item-410", True))
            self._msk_gone(want, now)
            return
        if bad:
            self._emit(ev.RequestRefused(now, str(want), bad[0], f"item-{bad[0]}", True))
            fatal = all(s in (403, 404) for s in bad)
            self._feed(want, RInput.ERROR_FATAL if fatal else RInput.ERROR_RETRY, now)
        # 200: the MSK push follows over UDP; the machine's timer covers a lost push.

    # --- SRTP ----------------------------------------------------------------------------------

    def srtp_key(self, ref: MskRef, mtk_id: int) -> SrtpKey | None:
        """SRTP master key material for an installed MTK, or None."""
        return self.keys.srtp_key(ref, mtk_id)

    def srtp_keys(self) -> list[SrtpKey]:
        """SRTP key material of every MTK held (for an :class:`~mbmsec.srtp.SrtpReceiver`),
        oldest first: MSKs in the order they arrived, MTKs by ascending MTK ID."""
        out = []
        for m in sorted(self.keys.store.msks(), key=lambda r: r.received_at):
            for t in self.keys.store.mtks_for_msk(m.ref):
                key = self.keys.srtp_key(m.ref, t.mtk_id)
                if key is not None:
                    out.append(key)
        return out

    # --- timers and outputs --------------------------------------------------------------------

    def _service_deadlines(self) -> list[float]:
        out = []
        lead = self.config.retry.lead_time
        for s in self.config.services:
            m = self._machines.get(Want(WantKind.SERVICE, s.service_id))
            if m is not None and m.state is not RState.IDLE:
                continue
            due = self.keys.renewal_due(s.service_id, lead)
            if due is not None:
                out.append(due)
        return out

    def get_timer(self) -> float | None:
        """The earliest deadline: request machines, renewals, re-bootstrap."""
        cands = [m.deadline for m in self._machines.values() if m.deadline is not None]
        cands += self._service_deadlines()
        rec = self.keys.store.get_muk(self.idi)
        if rec is not None and self._machine(BOOTSTRAP).state is RState.IDLE:
            cands.append(rec.expires - self.config.rebootstrap_margin)
        return min(cands) if cands else None

    def handle_timer(self, now: float) -> None:
        """Run everything due at ``now``."""
        if not self._satisfied(BOOTSTRAP, now):
            self._trigger(BOOTSTRAP, now, "B-TID lifetime ending")
        for s in self.config.services:
            want = Want(WantKind.SERVICE, s.service_id)
            if not self._satisfied(want, now):
                self._trigger(want, now, "renewal")
        have = self._user_keys(now) is not None
        for want, m in list(self._machines.items()):
            if want.kind is WantKind.MSK and m.state is RState.GAVE_UP and m.deadline is not None:
                if now >= m.deadline:
                    # A named MSK is not asked for again by itself: the MTK message or MKI
                    # that named it may have been forged (anyone can send to the group); a
                    # later one naming it triggers a fresh cycle.
                    self._forget_want(want)
                continue
            step = m.on_timer(now, have_keys=have or want is BOOTSTRAP)
            if step is not None:
                self._apply(want, step.action, now)
        self._check_satisfied(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        """Datagrams to send: compact requests, verification messages."""
        out = list(self._out)
        self._out.clear()
        return out

    def next_event(self) -> ev.UeEvent | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    # --- inspection ----------------------------------------------------------------------------

    def current_keys(self, service_id: str) -> tuple[MskRef, int | None] | None:
        """(MSK, current MTK ID) in use for a service, or None."""
        cur = self.keys.current(service_id)
        return None if cur is None else (cur[0].ref, cur[1])

    def want_state(self, want: Want) -> RState:
        """The state of a want's machine (IDLE when it never ran)."""
        m = self._machines.get(want)
        return RState.IDLE if m is None else m.state

    @property
    def wants(self) -> dict[Want, RState]:
        """Every want the client has seen, with its state."""
        return {w: m.state for w, m in self._machines.items()}
