"""UE side of the 3GPP HTTP key management (TS 33.246 §6.3.2), sans-I/O.

Requests are ``POST /keymanagement?requesttype=register|msk-request`` with the bodies of
:mod:`mbmsec.bmsc.http_xml`, authenticated by HTTP digest (TS 33.246 §6.2.1.3, TS 24.109 §5):
username = B-TID, password = base64(MRK), realm ``3GPP-bootstrapping@<BM-SC FQDN>``,
``qop=auth-int``. The client keeps the last challenge and counts ``nc`` on its nonce, so most
requests need one round trip; a 401 is answered once with the fresh challenge, and a 401 to an
answer computed on a fresh challenge (not ``stale``) means the BM-SC does not know the B-TID:
bootstrap again (TS 24.109 §5.2.4). The answer's ``Authentication-Info`` rspauth (auth-int, over
the response body) is verified before any item status is believed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from ..bmsc.http_xml import (
    CT_MSK,
    CT_REGISTER,
    KEYMGMT_PATH,
    MskStatus,
    ServiceStatus,
    build_msk_request,
    build_registration,
    parse_msk_response,
    parse_registration_response,
)
from ..errors import DecodeError, DigestAuthError, MbmsecError
from ..gba.digest import (
    DigestChallenge,
    DigestCredentials,
    build_authorization,
    make_cnonce,
    naf_password,
    naf_realm,
    parse_authentication_info,
    parse_www_authenticate,
    respond,
    verify_rspauth,
)
from ..httpmsg import HttpRequest, HttpResponse
from ..mbms.keys import MskRef


class Outcome(Enum):
    """What a key management answer means for the request machine."""

    RESEND = "resend"  # answer the new challenge with the same body
    OK = "ok"  # 200 with verified items
    BOOTSTRAP = "bootstrap"  # the BM-SC does not know the B-TID
    RETRY = "retry"  # 503, 5xx, transport or integrity trouble: try later
    FATAL = "fatal"  # 4xx the UE cannot fix by retrying


@dataclass
class Exchange:
    """One logical request (possibly sent twice: plain, then with a fresh challenge)."""

    request_type: str
    body: bytes = field(repr=False)
    services: tuple[str, ...] = ()
    msks: tuple[MskRef, ...] = ()
    creds: DigestCredentials | None = field(default=None, repr=False)
    password: bytes = field(default=b"", repr=False)
    fresh_challenge_used: bool = False

    @property
    def target(self) -> str:
        """The request-target."""
        return f"{KEYMGMT_PATH}?requesttype={self.request_type}"


@dataclass(frozen=True)
class Answer:
    """Interpretation of one HTTP answer."""

    outcome: Outcome
    services: tuple[ServiceStatus, ...] = ()
    msks: tuple[MskStatus, ...] = ()
    retry_after: float | None = None
    status: int = 0


class KeyMgmtClient:
    """Builds authenticated key management requests and interprets the answers."""

    def __init__(self, bmsc_fqdn: str, mikey_port: int, rng: Callable[[int], bytes]) -> None:
        self.realm = naf_realm(bmsc_fqdn)
        self.mikey_port = mikey_port
        self._rng = rng
        self._challenge: DigestChallenge | None = None
        self._nc = 0

    def __repr__(self) -> str:
        return f"KeyMgmtClient(realm={self.realm!r})"

    def forget_challenge(self) -> None:
        """Drop the cached nonce (after a re-bootstrap)."""
        self._challenge = None

    def register(self, service_ids: list[str]) -> Exchange:
        """A registration exchange for ``service_ids`` (TS 33.246 §6.3.2.1A)."""
        body = build_registration(service_ids, mikey_port=self.mikey_port)
        return Exchange("register", body, services=tuple(service_ids))

    def msk_request(self, msks: list[MskRef]) -> Exchange:
        """An MSK request exchange (TS 33.246 §6.3.2.2.1 / §6.3.2.2.3)."""
        return Exchange(
            "msk-request", build_msk_request(msks, mikey_port=self.mikey_port), msks=tuple(msks)
        )

    def request(self, ex: Exchange, btid: str, mrk: bytes) -> HttpRequest:
        """The HTTP request for ``ex``, with digest credentials when a nonce is known."""
        ctype = CT_MSK if ex.request_type == "msk-request" else CT_REGISTER
        headers: list[tuple[str, str]] = [("Content-Type", ctype), ("Accept", "*/*")]
        ex.creds = None
        if self._challenge is not None:
            self._nc += 1
            ex.password = naf_password(mrk)
            ex.creds = respond(
                self._challenge,
                username=btid,
                password=ex.password,
                method="POST",
                uri=ex.target,
                cnonce=make_cnonce(self._rng),
                nc=self._nc,
                entity_body=ex.body,
            )
            headers.append(("Authorization", build_authorization(ex.creds)))
        return HttpRequest("POST", ex.target, tuple(headers), ex.body)

    def answer(self, ex: Exchange, response: HttpResponse) -> Answer:
        """Interpret ``response`` to the last request of ``ex`` (see the module docstring)."""
        status = response.status
        if status == 401:
            return self._on_401(ex, response)
        if status == 503:
            return Answer(Outcome.RETRY, retry_after=_retry_after(response), status=status)
        if status != 200:
            fatal = 400 <= status < 500 and status not in (408, 429)
            return Answer(Outcome.FATAL if fatal else Outcome.RETRY, status=status)
        try:
            return self._on_200(ex, response)
        except (DecodeError, DigestAuthError):
            self._challenge = None
            return Answer(Outcome.RETRY, status=status)

    def _on_401(self, ex: Exchange, response: HttpResponse) -> Answer:
        value = response.header("WWW-Authenticate")
        try:
            if value is None:
                raise DecodeError("401 without WWW-Authenticate")
            ch = parse_www_authenticate(value)
        except MbmsecError:
            self._challenge = None
            return Answer(Outcome.RETRY, status=401)
        if ch.realm != self.realm:
            self._challenge = None
            return Answer(Outcome.RETRY, status=401)
        self._challenge, self._nc = ch, 0
        if ex.creds is not None and ex.fresh_challenge_used and not ch.stale:
            return Answer(Outcome.BOOTSTRAP, status=401)
        ex.fresh_challenge_used = True
        return Answer(Outcome.RESEND, status=401)

    def _on_200(self, ex: Exchange, response: HttpResponse) -> Answer:
        if ex.creds is None:
            raise DigestAuthError("200 to an unauthenticated request")
        value = response.header("Authentication-Info")
        if value is None:
            raise DigestAuthError("200 without Authentication-Info")
        info = parse_authentication_info(value)
        verify_rspauth(info, ex.creds, password=ex.password, entity_body=response.body)
        if info.nextnonce and self._challenge is not None:
            self._challenge = DigestChallenge(
                realm=self._challenge.realm,
                nonce=info.nextnonce,
                algorithm=self._challenge.algorithm,
                qop=self._challenge.qop,
                opaque=self._challenge.opaque,
            )
            self._nc = 0
        if ex.request_type == "msk-request":
            return Answer(Outcome.OK, msks=tuple(parse_msk_response(response.body)), status=200)
        return Answer(
            Outcome.OK, services=tuple(parse_registration_response(response.body)), status=200
        )


def _retry_after(response: HttpResponse) -> float | None:
    value = response.header("Retry-After")
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), 3600.0)
