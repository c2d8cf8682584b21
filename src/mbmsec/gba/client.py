"""UE side of GBA: a software USIM/UICC and the Ub bootstrapping state machine (sans-I/O).

:class:`GbaUicc` holds K, OPc and the SQN state (TS 33.102 Annex C, via
:class:`mbmsec.gba.aka.Usim`). In GBA_U mode (TS 33.220 §5, Annex G) it also keeps Ks and every
Ks_int_NAF inside and only hands Ks_ext_NAF to the ME, as a real UICC does.

:class:`BootstrapClient` produces :class:`~mbmsec.httpmsg.HttpRequest` values and consumes
:class:`~mbmsec.httpmsg.HttpResponse` values; ``now`` is always passed in. Rules (TS 24.109 §4,
RFC 3310), as a transition table :data:`TRANSITIONS` of ``(state, event) -> next state``:

* ``start``: GET / with ``Authorization: Digest username=IMPI, realm, nonce="", uri="/",
  response=""`` (TS 24.109 Table A.3-1) -> WAIT_CHALLENGE.
* 401 with an AKAv1-MD5 challenge: the USIM checks AUTN.
  - ok: answer with the digest over RES (qop=auth-int) -> WAIT_RESULT.
  - SQN out of range: answer with ``auts`` and an empty password (RFC 3310 §3.4) ->
    WAIT_CHALLENGE (the BSF resynchronises and challenges again).
  - MAC wrong: answer with an empty password and no auts (TS 24.109 §4.4) -> WAIT_REJECT; the
    bootstrap fails with AkaMacError whatever the BSF answers.
* 200 in WAIT_RESULT: check rspauth over the body (RFC 2617 §3.2.3, auth-int), parse the
  BootstrappingInfo XML -> BOOTSTRAPPED (B-TID, lifetime, Ks kept until the lifetime ends).
* 401 in WAIT_RESULT (``stale`` nonce, or after resync): answered like the first challenge, at
  most ``max_rounds`` challenges per bootstrap.
* anything else -> FAILED with :class:`BootstrapError` (or the AKA/Digest error).

After BOOTSTRAPPED the client derives Ks_NAF (GBA_ME) or Ks_ext_NAF (GBA_U) for a NAF_Id and
reports, through :meth:`BootstrapClient.get_timer`, when to re-bootstrap: ``margin`` seconds
before the key lifetime ends (at most half the lifetime).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from ..errors import (
    AkaMacError,
    DecodeError,
    DigestAuthError,
    InvalidValueError,
    KeyUnavailableError,
    MbmsecError,
    OversizeError,
    SyncFailureError,
)
from ..httpmsg import HttpRequest, HttpResponse
from .aka import AkaResult, SqnState, Usim
from .bsf import AKA_ALGORITHM, GBA_NS, gba_u_autn
from .digest import (
    DigestChallenge,
    DigestCredentials,
    aka_password,
    build_authorization,
    decode_aka_nonce,
    make_cnonce,
    parse_authentication_info,
    parse_www_authenticate,
    respond,
    verify_rspauth,
)
from .kdf import ks_ext_naf, ks_int_naf, ks_naf
from .milenage import Milenage
from .zn import parse_xs_datetime

__all__ = [
    "TRANSITIONS",
    "BootstrapClient",
    "BootstrapError",
    "BootstrapResult",
    "GbaUicc",
    "State",
    "parse_bootstrapping_info",
]

MAX_BODY = 4096
MAX_KS_INT_NAF = 8  # UICC Ks_int_NAF entries (TS 33.220 Annex G.2: overwrite least recent)
USER_AGENT = "mbmsec-ue 3gpp-gba"  # TS 24.109 §4.2: product token "3gpp-gba"


class BootstrapError(MbmsecError):
    """Bootstrapping failed: the BSF refused, or answered outside the protocol."""

    mikey_error = None
    http_status = 502


class GbaUicc:
    """A software UICC with a USIM: AKA, and the GBA_U functions when ``gba_u`` is set.

    GBA_ME (``gba_u=False``): :meth:`authenticate` returns RES, CK, IK to the ME.
    GBA_U: :meth:`gba_u_bootstrap` returns only RES and keeps Ks = CK || IK and RAND;
    :meth:`gba_u_naf_derivation` returns Ks_ext_NAF and keeps Ks_int_NAF (Annex G.1, G.2).
    """

    __slots__ = ("_btid", "_ks", "_ks_int", "_m", "_rand", "_usim", "gba_u")

    def __init__(
        self, k: bytes, opc: bytes, *, sqn_state: SqnState | None = None, gba_u: bool = False
    ) -> None:
        self._usim = Usim(k, opc, sqn_state)
        self._m = Milenage(k, opc)
        self.gba_u = gba_u
        self._ks: bytes | None = None
        self._rand: bytes | None = None
        self._btid: str | None = None
        self._ks_int: OrderedDict[bytes, bytes] = OrderedDict()

    def __repr__(self) -> str:
        return f"GbaUicc(<redacted>, gba_u={self.gba_u}, sqn_ms={self.sqn_state.sqn_ms})"

    @property
    def sqn_state(self) -> SqnState:
        """The USIM's SQN record (persist it to keep freshness across restarts)."""
        return self._usim.sqn_state

    def authenticate(self, rand: bytes, autn: bytes) -> AkaResult:
        """USIM AUTHENTICATE (TS 33.102 §6.3.3). Raises AkaMacError or SyncFailureError."""
        return self._usim.authenticate(rand, autn)

    def gba_u_bootstrap(self, rand: bytes, autn: bytes) -> bytes:
        """GBA_U bootstrap (TS 33.220 §5.3.2, Annex G.1): recover MAC from MAC*, run AKA, keep
        Ks and RAND inside, return RES. Raises AkaMacError or SyncFailureError."""
        if len(rand) != 16 or len(autn) != 16:
            raise ValueError("RAND and AUTN must be 16 bytes")
        _, _, ik, _ = self._m.f2345(rand)
        result = self._usim.authenticate(rand, gba_u_autn(autn, ik))
        self._ks, self._rand, self._btid = result.ks, rand, None
        self._ks_int.clear()
        return result.res

    @property
    def bootstrap_rand(self) -> bytes | None:
        """RAND of the GBA_U bootstrap whose Ks the UICC holds (readable by the ME, Annex G.1)."""
        return self._rand

    def gba_u_store_btid(self, btid: str) -> None:
        """The ME stores B-TID (and lifetime) in the UICC after a bootstrap (Annex G.1)."""
        self._btid = btid

    def gba_u_naf_derivation(self, naf_id: bytes, impi: str) -> bytes:
        """Return Ks_ext_NAF and keep Ks_int_NAF (Annex G.2). KeyUnavailableError w/o Ks."""
        if self._ks is None or self._rand is None:
            raise KeyUnavailableError("no GBA_U Ks in the UICC: bootstrap first")
        self._ks_int[naf_id] = ks_int_naf(self._ks, self._rand, impi, naf_id)
        self._ks_int.move_to_end(naf_id)
        while len(self._ks_int) > MAX_KS_INT_NAF:
            self._ks_int.popitem(last=False)
        return ks_ext_naf(self._ks, self._rand, impi, naf_id)

    def has_ks_int_naf(self, naf_id: bytes) -> bool:
        """True when a Ks_int_NAF for ``naf_id`` is stored in the UICC (the key stays inside)."""
        return naf_id in self._ks_int


class State(Enum):
    """Bootstrap client states."""

    IDLE = "idle"
    WAIT_CHALLENGE = "wait-challenge"
    WAIT_RESULT = "wait-result"
    WAIT_REJECT = "wait-reject"
    BOOTSTRAPPED = "bootstrapped"
    FAILED = "failed"


# (state, event) -> next state. Events: start, challenge, sync-failure, mac-failure, ok, reject.
TRANSITIONS: dict[tuple[State, str], State] = {
    (State.IDLE, "start"): State.WAIT_CHALLENGE,
    (State.BOOTSTRAPPED, "start"): State.WAIT_CHALLENGE,
    (State.FAILED, "start"): State.WAIT_CHALLENGE,
    (State.WAIT_CHALLENGE, "challenge"): State.WAIT_RESULT,
    (State.WAIT_CHALLENGE, "sync-failure"): State.WAIT_CHALLENGE,
    (State.WAIT_CHALLENGE, "mac-failure"): State.WAIT_REJECT,
    (State.WAIT_CHALLENGE, "reject"): State.FAILED,
    (State.WAIT_RESULT, "challenge"): State.WAIT_RESULT,
    (State.WAIT_RESULT, "sync-failure"): State.WAIT_CHALLENGE,
    (State.WAIT_RESULT, "mac-failure"): State.WAIT_REJECT,
    (State.WAIT_RESULT, "ok"): State.BOOTSTRAPPED,
    (State.WAIT_RESULT, "reject"): State.FAILED,
    (State.WAIT_REJECT, "reject"): State.FAILED,
    (State.WAIT_REJECT, "ok"): State.FAILED,
    (State.WAIT_REJECT, "challenge"): State.FAILED,
}


@dataclass(frozen=True)
class BootstrapResult:
    """A completed bootstrap: B-TID, key lifetime end (POSIX s), RAND; Ks only for GBA_ME."""

    impi: str
    btid: str
    expires: float
    rand: bytes
    created: float
    gba_u: bool
    ks: bytes | None = field(default=None, repr=False)


def parse_bootstrapping_info(body: bytes) -> tuple[str, float]:
    """Parse the BootstrappingInfo XML (TS 24.109 Annex C.1); return ``(btid, lifetime)``.

    Raises DecodeError (or a subclass) for anything else. DTDs and entities are refused.
    """
    if len(body) > MAX_BODY:
        raise OversizeError("BootstrappingInfo body too large")
    if b"<!" in body:
        raise InvalidValueError("DOCTYPE/ENTITY/CDATA not allowed in BootstrappingInfo")
    try:
        root = ET.fromstring(body)  # noqa: S314 - bounded, no DTD (checked above)
    except ET.ParseError:
        raise DecodeError("BootstrappingInfo is not well-formed XML") from None
    ns = "{" + GBA_NS + "}"
    if root.tag != ns + "BootstrappingInfo":
        raise InvalidValueError("root element is not uri:3gpp-gba BootstrappingInfo")
    btid_el = root.find(ns + "btid")
    life_el = root.find(ns + "lifetime")
    if btid_el is None or life_el is None or not btid_el.text or not life_el.text:
        raise InvalidValueError("BootstrappingInfo needs btid and lifetime")
    btid = btid_el.text.strip()
    if not btid or len(btid) > 255 or any(c.isspace() for c in btid):
        raise InvalidValueError("bad btid")
    return btid, parse_xs_datetime(life_el.text)


class BootstrapClient:
    """The UE's Ub state machine and its bootstrapped key (see the module docstring).

    ``realm`` is the BSF FQDN (TS 24.109 §4.2: the challenge realm must equal it); with
    ``check_realm=False`` the realm of the first challenge is accepted instead.
    """

    def __init__(
        self,
        impi: str,
        uicc: GbaUicc,
        *,
        realm: str,
        rng: Callable[[int], bytes],
        uri: str = "/",
        margin: float = 300.0,
        max_rounds: int = 3,
        check_realm: bool = True,
    ) -> None:
        self.impi = impi
        self.uicc = uicc
        self.realm = realm
        self.check_realm = check_realm
        self.uri = uri
        self.margin = margin
        self.max_rounds = max_rounds
        self._rng = rng
        self.state = State.IDLE
        self.result: BootstrapResult | None = None
        self.error: MbmsecError | None = None
        self._rounds = 0
        self._sent: DigestCredentials | None = None
        self._password = b""
        self._rand = b""
        self._ks: bytes | None = None

    def _to(self, event: str) -> None:
        nxt = TRANSITIONS.get((self.state, event))
        if nxt is None:
            raise BootstrapError(f"event {event!r} not allowed in state {self.state.value}")
        self.state = nxt

    def _request(self, authorization: str) -> HttpRequest:
        return HttpRequest(
            "GET",
            self.uri,
            (("Authorization", authorization), ("User-Agent", USER_AGENT), ("Accept", "*/*")),
        )

    def _fail(self, exc: MbmsecError) -> MbmsecError:
        self.state = State.FAILED
        self.error = exc
        return exc

    def start(self, now: float) -> HttpRequest:
        """Begin a bootstrap: return the initial GET (TS 24.109 Table A.3-1)."""
        self._to("start")
        self._rounds = 0
        self.error = None
        first = DigestCredentials(
            username=self.impi, realm=self.realm, nonce="", uri=self.uri, response=""
        )
        return self._request(build_authorization(first))

    def receive(self, response: HttpResponse, now: float) -> HttpRequest | None:
        """Consume the BSF's answer; return the next request, or None when bootstrapped.

        Raises BootstrapError, AkaMacError or DigestAuthError when the bootstrap failed (the
        state is then FAILED and :attr:`error` holds the exception).
        """
        if self.state not in (State.WAIT_CHALLENGE, State.WAIT_RESULT, State.WAIT_REJECT):
            raise BootstrapError(f"no response expected in state {self.state.value}")
        if self.state is State.WAIT_REJECT:
            self._to("reject")
            raise self._fail(AkaMacError("BSF failed network authentication (AUTN MAC)"))
        if response.status == 401:
            return self._on_challenge(response)
        if response.status == 200 and self.state is State.WAIT_RESULT:
            self._on_ok(response, now)
            return None
        raise self._fail(BootstrapError(f"BSF answered {response.status}"))

    def _on_challenge(self, response: HttpResponse) -> HttpRequest:
        self._rounds += 1
        if self._rounds > self.max_rounds:
            raise self._fail(BootstrapError("too many challenges"))
        value = response.header("WWW-Authenticate")
        try:
            if value is None:
                raise DecodeError("401 without WWW-Authenticate")
            ch = parse_www_authenticate(value)
            if ch.algorithm.lower() != AKA_ALGORITHM.lower():
                raise InvalidValueError("challenge algorithm is not AKAv1-MD5")
            if ch.realm != self.realm:
                if self.check_realm:
                    raise InvalidValueError("challenge realm is not the BSF FQDN")
                self.realm = ch.realm  # learnt from the first challenge
            rand, autn, _ = decode_aka_nonce(ch.nonce)
        except DecodeError as exc:
            raise self._fail(BootstrapError(f"bad challenge: {exc.reason}")) from None
        try:
            if self.uicc.gba_u:
                res = self.uicc.gba_u_bootstrap(rand, autn)
                ks = None
            else:
                r = self.uicc.authenticate(rand, autn)
                res, ks = r.res, r.ks
        except SyncFailureError as exc:
            self._to("sync-failure")
            return self._answer(ch, b"", auts=exc.auts)
        except AkaMacError:
            self._to("mac-failure")
            return self._answer(ch, b"")
        self._to("challenge")
        self._rand, self._ks = rand, ks
        return self._answer(ch, aka_password(res))

    def _answer(
        self, ch: DigestChallenge, password: bytes, auts: bytes | None = None
    ) -> HttpRequest:
        creds = respond(
            ch,
            username=self.impi,
            password=password,
            method="GET",
            uri=self.uri,
            cnonce=make_cnonce(self._rng),
            qop="auth-int" if "auth-int" in ch.qop else None,
            auts=auts,
        )
        self._sent, self._password = creds, password
        return self._request(build_authorization(creds))

    def _on_ok(self, response: HttpResponse, now: float) -> None:
        assert self._sent is not None
        try:
            value = response.header("Authentication-Info")
            if value is None:
                raise DigestAuthError("200 without Authentication-Info")
            info = parse_authentication_info(value)
            verify_rspauth(info, self._sent, password=self._password, entity_body=response.body)
            btid, expires = parse_bootstrapping_info(response.body)
        except DigestAuthError as exc:
            raise self._fail(exc) from None
        except DecodeError as exc:
            raise self._fail(BootstrapError(f"bad BootstrappingInfo: {exc.reason}")) from None
        self._to("ok")
        if self.uicc.gba_u:
            self.uicc.gba_u_store_btid(btid)
        self.result = BootstrapResult(
            impi=self.impi,
            btid=btid,
            expires=expires,
            rand=self._rand,
            created=now,
            gba_u=self.uicc.gba_u,
            ks=self._ks,
        )

    # --- using the bootstrapped key ---

    def bootstrapped(self, now: float) -> bool:
        """True while a bootstrapped key exists and its lifetime has not ended.

        GBA_U: also false once a later run has replaced Ks in the UICC (TS 33.220 Annex G.1),
        even if that run failed: the key of :attr:`result` is gone.
        """
        r = self.result
        return r is not None and now < r.expires and self._ks_in_place(r)

    def _ks_in_place(self, r: BootstrapResult) -> bool:
        return not r.gba_u or self.uicc.bootstrap_rand == r.rand

    def get_timer(self) -> float | None:
        """When to re-bootstrap: ``margin`` (at most half the lifetime) before expiry."""
        r = self.result
        if r is None:
            return None
        lifetime = max(0.0, r.expires - r.created)
        return r.expires - min(self.margin, lifetime / 2)

    def needs_bootstrap(self, now: float) -> bool:
        """True when there is no key or the re-bootstrap deadline has passed."""
        t = self.get_timer()
        return t is None or now >= t

    def naf_key(self, naf_id: bytes, now: float) -> bytes:
        """Return Ks_NAF (GBA_ME) or Ks_ext_NAF (GBA_U) for NAF_Id (TS 33.220 Annex B.3).

        Raises KeyUnavailableError when not bootstrapped, the key lifetime has ended, or (GBA_U)
        the UICC's Ks was replaced by a later, unfinished run.
        """
        r = self.result
        if r is None or now >= r.expires:
            raise KeyUnavailableError("no valid bootstrapped key: bootstrap first")
        if not self._ks_in_place(r):
            raise KeyUnavailableError("the UICC's Ks belongs to a later bootstrap: bootstrap again")
        if r.gba_u:
            return self.uicc.gba_u_naf_derivation(naf_id, self.impi)
        assert r.ks is not None
        return ks_naf(r.ks, r.rand, self.impi, naf_id)
