"""BM-SC HTTP key management (TS 33.246 §6.3.2) with HTTP digest over the MRK, sans-I/O.

========================================================  ==========================================
request                                                   answer
========================================================  ==========================================
not ``POST /keymanagement?requesttype=register|...``       404 / 405 / 400
body over :data:`~.http_xml.MAX_BODY`                      413
no Authorization                                           401 + Digest challenge
malformed Authorization                                    400
realm / uri not ours, nonce forged                         401 + fresh challenge
algorithm not MD5, no qop                                  401 + fresh challenge
nonce older than ``nonce_lifetime``                        401 + fresh challenge, ``stale=true``
B-TID unknown or expired (Zn)                              401 + fresh challenge: bootstrap again
BSF unreachable / Zn lookup pending                        503 + ``Retry-After``
response digest wrong                                      401 + fresh challenge
(nonce, nc, cnonce) seen before                            401 + fresh challenge
body malformed                                             400
otherwise                                                  200, item statuses, Authentication-Info
========================================================  ==========================================

Digest (TS 33.246 §6.2.1.3, TS 24.109 §5): username = B-TID, password = base64(MRK)
(:func:`mbmsec.gba.digest.naf_password`), realm ``3GPP-bootstrapping@<BM-SC FQDN>``,
``algorithm=MD5``, ``qop="auth-int"`` (``auth`` accepted). Nonces are stateless:
base64(issue time in ms (8 bytes) || HMAC-SHA-256(secret, time)[:16]); a replay cache of
(nonce, nc, cnonce) over the nonce lifetime refuses replayed requests. Registration and MSK
requests answer 200 and then push the MSKs over UDP (TS 33.246 §6.3.2.3.1): registration
delivers the current MSK and, once it is offered, the next one (activation with first key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qs, urlsplit

from ..crypto import mac_equal
from ..errors import (
    BsfUnreachableError,
    BtidUnknownError,
    DecodeError,
    DigestAuthError,
    DigestParseError,
    NotAuthorizedError,
    ReplayError,
)
from ..gba.digest import (
    DigestChallenge,
    DigestCredentials,
    build_authentication_info,
    build_www_authenticate,
    make_authentication_info,
    naf_password,
    naf_realm,
    parse_authorization,
    verify_response,
)
from ..httpmsg import HttpRequest, HttpResponse
from ..mbms.keys import MskRef
from ..mikey.replay import ReplayConfig, ReplayGuard
from ..store.bmsc_protocols import Registration
from .http_xml import (
    CT_MSK_RESPONSE,
    CT_REGISTER_RESPONSE,
    KEYMGMT_PATH,
    MAX_BODY,
    REQUEST_TYPES,
    KeyMgmtRequest,
    MskStatus,
    ServiceStatus,
    build_msk_response,
    build_registration_response,
    parse_request_body,
)
from .zn import ZnPendingError

if TYPE_CHECKING:
    from .core import BmscCore, UserKeys

__all__ = ["HttpKeyManagement", "btid_of_request"]

_TS_LEN: Final = 8
_TAG_LEN: Final = 16
RETRY_AFTER: Final = "1"
_QOPS: Final = ("auth-int", "auth")


def btid_of_request(request: HttpRequest) -> str | None:
    """The digest username (B-TID) of a request, or None; lets a net driver prefetch the Zn
    answer before calling the core."""
    auth = request.header("Authorization")
    if auth is None:
        return None
    try:
        return parse_authorization(auth).username
    except DigestParseError:
        return None


class HttpKeyManagement:
    """The HTTP role of a :class:`~.core.BmscCore` (see the module docstring)."""

    def __init__(self, core: BmscCore) -> None:
        self.core = core
        secret = core.config.nonce_secret
        self._secret = secret if secret is not None else core.rng(32)
        self.realm = naf_realm(core.config.fqdn)
        self._replay = ReplayGuard(ReplayConfig(max_skew=core.config.nonce_lifetime))

    def __repr__(self) -> str:
        return f"HttpKeyManagement(realm={self.realm!r})"

    # --- nonces ----------------------------------------------------------------------------------

    def make_nonce(self, now: float) -> str:
        """A stateless nonce carrying its issue time under an HMAC."""
        ts = int(now * 1000).to_bytes(_TS_LEN, "big")
        tag = hmac.digest(self._secret, ts, "sha256")[:_TAG_LEN]
        return base64.b64encode(ts + tag).decode("ascii")

    def _nonce_time(self, nonce: str) -> float | None:
        try:
            raw = base64.b64decode(nonce.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            return None
        if len(raw) != _TS_LEN + _TAG_LEN:
            return None
        ts, tag = raw[:_TS_LEN], raw[_TS_LEN:]
        if not mac_equal(hmac.digest(self._secret, ts, "sha256")[:_TAG_LEN], tag):
            return None
        return int.from_bytes(ts, "big") / 1000

    def challenge(self, now: float, *, stale: bool = False, why: str = "") -> HttpResponse:
        """401 with a fresh Digest challenge (also the "bootstrap again" answer)."""
        ch = DigestChallenge(
            realm=self.realm,
            nonce=self.make_nonce(now),
            algorithm="MD5",
            qop=("auth-int", "auth"),
            stale=stale,
        )
        if why:
            self.core._count(f"http.401.{why}")
        return HttpResponse(401, (("WWW-Authenticate", build_www_authenticate(ch)),))

    # --- request handling ------------------------------------------------------------------------

    def handle(self, request: HttpRequest, now: float) -> HttpResponse:
        """Answer one request (see the table in the module docstring)."""
        if request.path != KEYMGMT_PATH:
            return HttpResponse.text(404, "not found")
        if request.method != "POST":
            return HttpResponse.text(405, "POST only", (("Allow", "POST"),))
        rtypes = parse_qs(urlsplit(request.target).query).get("requesttype", [])
        if len(rtypes) != 1 or rtypes[0] not in REQUEST_TYPES:
            return HttpResponse.text(400, "requesttype must be register, deregister or msk-request")
        if len(request.body) > MAX_BODY:
            return HttpResponse.text(413, "body too large")
        auth = request.header("Authorization")
        if auth is None:
            return self.challenge(now)
        try:
            creds = parse_authorization(auth)
        except DigestParseError:
            return HttpResponse.text(400, "malformed Authorization")
        issued = self._nonce_time(creds.nonce)
        if creds.realm != self.realm or creds.uri != request.target or issued is None:
            return self.challenge(now, why="credentials")
        # RFC 2617 §3.2.2: the answer uses what the challenge offered (MD5, a qop); no qop
        # would leave the body and nc/cnonce uncovered, another algorithm is not ours
        if (creds.algorithm or "MD5").upper() != "MD5" or creds.qop not in _QOPS:
            return self.challenge(now, why="credentials")
        if not now - self.core.config.nonce_lifetime <= issued <= now + 1:
            return self.challenge(now, stale=True, why="stale")
        try:
            user = self.core.user_keys(creds.username, now)
        except BtidUnknownError:
            return self.challenge(now, why="btid_unknown")
        except (BsfUnreachableError, ZnPendingError):
            self.core._count("http.503")
            return HttpResponse.text(503, "keys not available yet", (("Retry-After", RETRY_AFTER),))
        password = naf_password(user.mrk)
        try:
            verify_response(creds, password=password, method="POST", entity_body=request.body)
            ident = hashlib.sha256(f"{creds.nonce}|{creds.nc}|{creds.cnonce}".encode()).digest()
            self._replay.accept(ident, issued, now)
        except DigestAuthError:
            return self.challenge(now, why="bad_response")
        except ReplayError:
            return self.challenge(now, why="replayed")
        try:
            body = parse_request_body(rtypes[0], request.body)
        except DecodeError as exc:
            return HttpResponse.text(400, f"bad body: {exc.reason}")
        return self._dispatch(body, user, creds, password, request, now)

    def _dispatch(
        self,
        body: KeyMgmtRequest,
        user: UserKeys,
        creds: DigestCredentials,
        password: bytes,
        request: HttpRequest,
        now: float,
    ) -> HttpResponse:
        port = body.mikey_port or self.core.config.default_mikey_port
        pushes: list[Registration] = []
        if body.request_type == "msk-request":
            items = [
                MskStatus(ref, self._msk_request(ref, user, request.peer, port, now))
                for ref in body.msks
            ]
            resp_body, ctype = build_msk_response(items), CT_MSK_RESPONSE
        else:
            statuses = []
            for sid in body.service_ids:
                if body.request_type == "register":
                    status, reg = self._register(sid, user, request.peer, port, now)
                    if reg is not None:
                        pushes.append(reg)
                else:
                    self.core.store.remove_registration(user.impi, sid)
                    status = 200
                statuses.append(ServiceStatus(sid, status))
            resp_body, ctype = build_registration_response(statuses), CT_REGISTER_RESPONSE
        for reg in pushes:
            svc = self.core.scheduler.service(reg.service_id)
            if svc is not None and reg.push_host:
                self.core.deliver_to_registration(reg, svc, now)
        info = make_authentication_info(creds, password=password, entity_body=resp_body)
        headers = (
            ("Content-Type", ctype),
            ("Authentication-Info", build_authentication_info(info)),
        )
        self.core._count(f"http.200.{body.request_type}")
        return HttpResponse(200, headers, resp_body)

    def _register(
        self, service_id: str, user: UserKeys, host: str, port: int, now: float
    ) -> tuple[int, Registration | None]:
        svc = self.core.scheduler.service(service_id)
        if svc is None:
            return 404, None
        try:
            self.core.authorise(user, svc)
        except NotAuthorizedError:
            return 403, None
        reg = Registration(user.impi, service_id, user.btid, host, port, now)
        self.core.store.put_registration(reg)
        return 200, reg

    def _msk_request(self, ref: MskRef, user: UserKeys, host: str, port: int, now: float) -> int:
        svc = self.core.scheduler.service_for_msk(ref)
        if svc is None:
            return 404
        try:
            self.core.authorise(user, svc)
        except NotAuthorizedError:
            return 403
        msk = self.core.scheduler.msk_by_ref(ref, now)
        if msk is None:
            return 410
        reg = self.core.store.get_registration(user.impi, svc.service_id)
        if reg is not None and reg.btid != user.btid:
            self.core.store.put_registration(
                Registration(reg.impi, reg.service_id, user.btid, reg.push_host, reg.push_port, now)
            )
        if not host:
            return 503
        self.core.push_msk(user, msk, (host, port), now, svc.verification)
        return 200
