"""BSF: the Ub role (bootstrapping, TS 33.220 §4.5.2, TS 24.109 §4, RFC 3310) and the Zn role
(bootstrapping info for NAFs, TS 33.220 §4.5.3, TS 29.109 BIR/BIA fields over HTTP/JSON).

Sans-I/O: :meth:`Bsf.handle` takes an :class:`~mbmsec.httpmsg.HttpRequest` and ``now`` (POSIX
seconds) and returns an :class:`~mbmsec.httpmsg.HttpResponse`; :mod:`mbmsec.net.http_bsf`
adapts it to aiohttp. Randomness comes from the injected ``rng`` (via the HSS).

Theory of operation (Ub). The BSF keeps outstanding challenges in a
:class:`~mbmsec.store.challenges.ChallengeStore`, keyed by nonce = base64(RAND || AUTN); each
entry is single-use (taken atomically), expires after ``nonce_lifetime`` and the table is
bounded (``max_pending`` in all, ``max_pending_per_impi`` per IMPI; the oldest go first). The
default store is this process's memory; BSF workers sharing an SQLite or Redis challenge store
accept at one worker the answer to a challenge issued by another.

====================================================  ============================================
request (``Authorization: Digest ...``)               answer
====================================================  ============================================
no / several / malformed / oversized Authorization    400
username unknown to the HSS                           403 (TS 24.109 §4.3; no AV is generated)
SQN space of the subscriber exhausted                 403 (no fresh AV can be made)
nonce=""  (initial request, Table A.3-1)              401 + challenge (new AV from the HSS)
nonce unknown, already used or expired                401 + fresh challenge, ``stale=true``
uri / realm / algorithm / qop not as challenged       400 (challenge consumed)
``auts`` + valid response with empty password         HSS resync, 401 + fresh challenge (§4.5)
``auts`` with a wrong response or a bad MAC-S         403
response computed with RES = XRES                     200 + BootstrappingInfo + Authentication-Info
response with an empty password, no auts              403 (UE reported network auth failure, §4.4)
any other response                                    403 (user authentication failure, §4.3)
====================================================  ============================================

Zn (``POST /zn/bootstrapping-info``): 401 bad NAF credentials, 400 junk, 403 NAF not allowed
(for this NAF credential or by the user's GUSS; Diameter 5402), 404 unknown / expired B-TID
(5403) or user gone (5401), 200 with the keys. See :mod:`mbmsec.gba.zn` and docs/gba.md.

GBA_U (TS 33.220 §5.3.2): for a subscriber with a GBA_U UICC the BSF sends AUTN with
MAC* = MAC xor Trunc64(SHA-1(IK)) so that the UICC knows the run is a GBA_U bootstrap and keeps
CK, IK; Zn then hands out Ks_ext_NAF (and Ks_int_NAF to GBA_U-aware NAFs).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass, field

from ..crypto import mac_equal
from ..errors import (
    AkaMacError,
    DecodeError,
    DigestAuthError,
    SqnExhaustedError,
    UnknownEntryError,
)
from ..httpmsg import HttpRequest, HttpResponse
from ..store.challenges import ChallengeStore, MemoryChallengeStore, PendingChallenge
from ..store.protocols import BootstrapSession, BootstrapSessionStore, Guss
from .digest import (
    DigestChallenge,
    DigestCredentials,
    aka_password,
    build_authentication_info,
    build_www_authenticate,
    encode_aka_nonce,
    make_authentication_info,
    parse_authorization,
    verify_response,
)
from .hss import Hss
from .kdf import btid as make_btid
from .kdf import ks_ext_naf, ks_int_naf, ks_naf
from .zn import (
    DIAMETER_ERROR_IDENTITY_UNKNOWN,
    DIAMETER_ERROR_NOT_AUTHORIZED,
    DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID,
    ZN_MAX_BODY,
    ZN_PATH,
    ZnAnswer,
    ZnRequest,
    format_xs_datetime,
)

__all__ = [
    "AKA_ALGORITHM",
    "BSF_CONTENT_TYPE",
    "GBA_NS",
    "Bsf",
    "BsfConfig",
    "NafCredential",
    "bootstrapping_info_xml",
    "gba_u_autn",
]

log = logging.getLogger("mbmsec.bsf")

AKA_ALGORITHM = "AKAv1-MD5"  # RFC 3310 §3.1
QOP = "auth-int"  # TS 24.109 §4.2
BSF_CONTENT_TYPE = "application/vnd.3gpp.bsf+xml"  # TS 24.109 Annex C
GBA_NS = "uri:3gpp-gba"  # TS 24.109 Annex C.1
MAX_AUTH_HEADER = 4096
STALE_EVENT = "ub stale nonce, new challenge"


@dataclass(frozen=True, slots=True)
class NafCredential:
    """A NAF allowed to use Zn: ``name`` (Basic user name, for logs), ``secret`` (Basic password
    or Bearer token) and the NAF FQDNs it may ask keys for (``"*"``: any)."""

    name: str
    secret: str = field(repr=False)
    fqdns: tuple[str, ...] = ("*",)

    def allows(self, fqdn: str) -> bool:
        """True when this NAF may request keys for NAF_Id with this FQDN."""
        f = fqdn.lower()
        return any(n == "*" or n.lower() == f for n in self.fqdns)


@dataclass(frozen=True, slots=True)
class BsfConfig:
    """BSF settings. ``domain`` is the BSF FQDN: the Digest realm and the B-TID suffix."""

    domain: str = "bsf.mbmsec.test"
    key_lifetime: float = 86400.0
    nonce_lifetime: float = 60.0
    max_pending: int = 10000
    max_pending_per_impi: int = 8
    naf_credentials: tuple[NafCredential, ...] = ()
    gba_u_mac_star: bool = True
    ub_path: str = "/"


def _clean_text(text: str, max_len: int) -> bool:
    """Non-empty, at most ``max_len`` chars, valid UTF-8 (no lone surrogates), no controls."""
    if not text or len(text) > max_len or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def gba_u_autn(autn: bytes, ik: bytes) -> bytes:
    """Return AUTN with MAC* = MAC xor Trunc(SHA-1(IK)) (first 64 bits), TS 33.220 §5.3.2."""
    if len(autn) != 16 or len(ik) != 16:
        raise ValueError("AUTN and IK must be 16 bytes")
    mask = hashlib.sha1(ik, usedforsecurity=False).digest()[:8]  # TS 33.220 §5.3.2
    return autn[:8] + bytes(a ^ b for a, b in zip(autn[8:], mask, strict=True))


def bootstrapping_info_xml(btid: str, lifetime: float) -> bytes:
    """The 200 OK body: BootstrappingInfo with btid and lifetime (TS 24.109 Annex C.1)."""
    esc = btid.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<BootstrappingInfo xmlns="{GBA_NS}">\n'
        f"  <btid>{esc}</btid>\n"
        f"  <lifetime>{format_xs_datetime(lifetime)}</lifetime>\n"
        "</BootstrappingInfo>\n"
    ).encode()


class Bsf:
    """The BSF roles over an :class:`Hss`, a :class:`BootstrapSessionStore` and a
    :class:`ChallengeStore` (default: a :class:`MemoryChallengeStore` bounded by ``config``)."""

    def __init__(
        self,
        config: BsfConfig,
        hss: Hss,
        sessions: BootstrapSessionStore,
        challenges: ChallengeStore | None = None,
    ) -> None:
        self.config = config
        self.hss = hss
        self.sessions = sessions
        if challenges is None:
            challenges = MemoryChallengeStore(config.max_pending, config.max_pending_per_impi)
        self.challenges = challenges
        self._pending = challenges  # the name older callers use

    # --- dispatch ---

    def handle(self, request: HttpRequest, now: float) -> HttpResponse:
        """Answer one HTTP request (Ub on ``ub_path``, Zn on ``/zn/bootstrapping-info``)."""
        path = request.path
        if path == ZN_PATH:
            if request.method != "POST":
                return self._reject(405, "zn method not allowed", request, ("Allow", "POST"))
            return self.handle_zn(request, now)
        if path == self.config.ub_path:
            if request.method not in ("GET", "POST"):
                return self._reject(405, "ub method not allowed", request, ("Allow", "GET, POST"))
            return self.handle_ub(request, now)
        return self._reject(404, "http unknown path", request)

    def purge(self, now: float) -> int:
        """Drop expired challenges and sessions; return how many sessions were deleted."""
        self.challenges.purge_expired(now)
        return self.sessions.purge_expired(now)

    # --- Ub ---

    def _challenge(
        self, impi: str, now: float, request: HttpRequest, event: str = "ub challenge"
    ) -> HttpResponse:
        """Fetch an AV over Zh and answer 401 with a fresh AKA challenge (RFC 3310 §3.1).

        403 when the IMPI vanished meanwhile or its SQN space is exhausted (one log line).
        """
        try:
            zh = self.hss.authentication_vector(impi)
        except UnknownEntryError:  # removed since the subscriber() check
            return self._reject(403, "ub unknown IMPI", request, impi=impi)
        except SqnExhaustedError:
            return self._reject(403, "ub sqn exhausted", request, impi=impi)
        stale = event == STALE_EVENT
        av = zh.av
        autn = av.autn
        gba_u = zh.uicc
        if gba_u and self.config.gba_u_mac_star:
            autn = gba_u_autn(autn, av.ik)
        nonce = encode_aka_nonce(av.rand, autn)
        pending = PendingChallenge(
            nonce=nonce,
            impi=impi,
            rand=av.rand,
            autn=autn,
            xres=av.xres,
            ck=av.ck,
            ik=av.ik,
            expires=now + self.config.nonce_lifetime,
            gba_u=gba_u,
        )
        dropped = self.challenges.put(pending, now)
        if dropped:
            log.warning(
                "ub challenge table full, oldest challenge dropped", extra={"count": dropped}
            )
        ch = DigestChallenge(
            realm=self.config.domain,
            nonce=nonce,
            algorithm=AKA_ALGORITHM,
            qop=(QOP,),
            stale=stale,
        )
        log.info(event, extra={"peer": request.peer, "impi": impi, "stale": stale, "gba_u": gba_u})
        return HttpResponse(401, (("WWW-Authenticate", build_www_authenticate(ch)),))

    def _reject(
        self,
        status: int,
        event: str,
        request: HttpRequest,
        *headers: tuple[str, str],
        **fields: object,
    ) -> HttpResponse:
        """One log line and a short text answer."""
        log.info(event, extra={"peer": request.peer, "status": status, **fields})
        return HttpResponse.text(status, event + "\n", headers)

    def handle_ub(self, request: HttpRequest, now: float) -> HttpResponse:
        """Answer a bootstrapping request (TS 24.109 §4.2-§4.5); see the module table."""
        values = request.header_all("Authorization")
        if len(values) != 1:
            return self._reject(400, "ub missing or repeated Authorization", request)
        try:
            creds = parse_authorization(values[0], max_len=MAX_AUTH_HEADER)
        except DecodeError as exc:
            return self._reject(400, "ub malformed Authorization", request, reason=exc.reason)
        impi = creds.username
        if not _clean_text(impi, 255):
            return self._reject(400, "ub bad username", request)
        if self.hss.subscriber(impi) is None:
            return self._reject(403, "ub unknown IMPI", request, impi=impi)
        if creds.nonce == "":
            return self._challenge(impi, now, request)  # TS 24.109 Table A.3-1
        pending = self.challenges.take(creds.nonce, impi, now)  # single use from here on
        if pending is None:  # unknown, already answered (here or at another worker), expired
            return self._challenge(impi, now, request, STALE_EVENT)
        problem = self._check_params(creds, request)
        if problem is not None:
            return self._reject(400, "ub " + problem, request, impi=impi)
        if creds.auts is not None:
            return self._resync(request, creds, pending, now)
        return self._verify(request, creds, pending, now)

    def _check_params(self, creds: DigestCredentials, request: HttpRequest) -> str | None:
        if creds.realm != self.config.domain:
            return "realm mismatch"
        if creds.uri != request.target:
            return "digest-uri does not match the request-target"  # RFC 2617 §3.2.2.5
        if (creds.algorithm or "").lower() != AKA_ALGORITHM.lower():
            return "algorithm must be AKAv1-MD5"
        if creds.qop != QOP:
            return "qop must be auth-int"
        if creds.nc != 1:
            return "nc must be 00000001 for a single-use nonce"
        return None

    def _resync(
        self, request: HttpRequest, creds: DigestCredentials, p: PendingChallenge, now: float
    ) -> HttpResponse:
        # RFC 3310 §3.4: response computed with an empty password; TS 24.109 §4.5.
        try:
            verify_response(creds, password=b"", method=request.method, entity_body=request.body)
        except DigestAuthError:
            return self._reject(403, "ub resync with a wrong response", request, impi=p.impi)
        auts = creds.auts
        assert auts is not None
        if len(auts) != 14:
            return self._reject(400, "ub auts must be 14 octets", request, impi=p.impi)
        try:
            self.hss.resync(p.impi, p.rand, auts)
        except AkaMacError:
            return self._reject(403, "ub resync MAC-S failure", request, impi=p.impi)
        except UnknownEntryError:
            return self._reject(403, "ub unknown IMPI", request, impi=p.impi)
        except SqnExhaustedError:
            return self._reject(403, "ub sqn exhausted", request, impi=p.impi)
        return self._challenge(p.impi, now, request, "ub resync, new challenge")

    def _verify(
        self, request: HttpRequest, creds: DigestCredentials, p: PendingChallenge, now: float
    ) -> HttpResponse:
        password = aka_password(p.xres)
        try:
            verify_response(
                creds, password=password, method=request.method, entity_body=request.body
            )
        except DigestAuthError:
            try:  # RFC 3310 §3.3 / TS 24.109 §4.4: empty password reports a bad AUTN
                verify_response(
                    creds, password=b"", method=request.method, entity_body=request.body
                )
            except DigestAuthError:
                return self._reject(403, "ub user authentication failure", request, impi=p.impi)
            return self._reject(403, "ub network authentication failure", request, impi=p.impi)
        btid = make_btid(p.rand, self.config.domain)
        expires = now + self.config.key_lifetime
        self.sessions.put(
            BootstrapSession(
                btid=btid,
                impi=p.impi,
                ks=p.ks,
                rand=p.rand,
                created=now,
                expires=expires,
                gba_u=p.gba_u,
            )
        )
        body = bootstrapping_info_xml(btid, expires)
        info = make_authentication_info(creds, password=password, entity_body=body)
        log.info(
            "ub bootstrapped",
            extra={"peer": request.peer, "impi": p.impi, "btid": btid, "gba_u": p.gba_u},
        )
        return HttpResponse(
            200,
            (
                ("Content-Type", BSF_CONTENT_TYPE),
                ("Authentication-Info", build_authentication_info(info)),
            ),
            body,
        )

    # --- Zn ---

    def _naf_credential(self, header: str | None) -> NafCredential | None:
        """Match an ``Authorization: Bearer`` or ``Basic`` header in constant time per secret."""
        if header is None or not _clean_text(header, MAX_AUTH_HEADER):
            return None
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        found: NafCredential | None = None
        if scheme.lower() == "bearer":
            for cred in self.config.naf_credentials:
                if mac_equal(cred.secret.encode(), value.encode()) and found is None:
                    found = cred
        elif scheme.lower() == "basic":
            try:
                user, sep, pw = base64.b64decode(value, validate=True).decode().partition(":")
            except (binascii.Error, ValueError):
                return None
            if not sep:
                return None
            for cred in self.config.naf_credentials:
                ok = mac_equal(cred.secret.encode(), pw.encode())
                if ok and cred.name == user and found is None:
                    found = cred
        return found

    def _zn_error(
        self, status: int, error: str, request: HttpRequest, result: int | None = None, **f: object
    ) -> HttpResponse:
        log.info("zn " + error, extra={"peer": request.peer, "status": status, **f})
        body: dict[str, object] = {"error": error}
        if result is not None:
            body["diameter_result"] = result
        headers: tuple[tuple[str, str], ...] = ()
        if status == 401:
            headers = (("WWW-Authenticate", 'Bearer realm="zn"'),)
        return HttpResponse.json(status, body, headers)

    def handle_zn(self, request: HttpRequest, now: float) -> HttpResponse:
        """Answer a Bootstrapping-Info-Request (TS 33.220 §4.5.3, TS 29.109 §6.1)."""
        naf = self._naf_credential(request.header("Authorization"))
        if naf is None:
            return self._zn_error(401, "naf-unauthenticated", request)
        if len(request.body) > ZN_MAX_BODY:
            return self._zn_error(400, "bad-request", request, naf=naf.name)
        try:
            req = ZnRequest.from_json(request.body)
            fqdn = req.naf_fqdn
        except (DecodeError, UnicodeDecodeError):
            return self._zn_error(400, "bad-request", request, naf=naf.name)
        if not naf.allows(fqdn):
            return self._zn_error(
                403, "naf-id-not-allowed", request, DIAMETER_ERROR_NOT_AUTHORIZED, naf=naf.name
            )
        session = self.sessions.get(req.btid)
        if session is None:
            return self._zn_error(
                404, "btid-unknown", request, DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID
            )
        if session.expired(now):
            self.sessions.delete(req.btid)
            return self._zn_error(
                404,
                "btid-expired",
                request,
                DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID,
                btid=req.btid,
            )
        sub = self.hss.subscriber(session.impi)
        if sub is None:
            return self._zn_error(
                404, "user-unknown", request, DIAMETER_ERROR_IDENTITY_UNKNOWN, btid=req.btid
            )
        if not sub.guss.allows_naf(fqdn):
            return self._zn_error(
                403,
                "naf-not-allowed-for-user",
                request,
                DIAMETER_ERROR_NOT_AUTHORIZED,
                btid=req.btid,
                naf_fqdn=fqdn,
            )
        answer = self._zn_answer(session, req, sub.guss)
        log.info(
            "zn bootstrapping info",
            extra={"peer": request.peer, "naf": naf.name, "btid": req.btid, "naf_fqdn": fqdn},
        )
        return HttpResponse(200, (("Content-Type", "application/json"),), answer.to_json())

    def _zn_answer(self, s: BootstrapSession, req: ZnRequest, guss: Guss) -> ZnAnswer:
        """Derive the NAF keys (TS 33.220 Annex B.3) for the answer."""
        if not s.gba_u:
            return ZnAnswer(
                s.impi, s.expires, s.created, guss, ks_naf=ks_naf(s.ks, s.rand, s.impi, req.naf_id)
            )
        ext = ks_ext_naf(s.ks, s.rand, s.impi, req.naf_id)
        if not req.gba_u_aware:  # TS 33.220 §5.3.3: Ks_ext_NAF in ME-Key-Material only
            return ZnAnswer(s.impi, s.expires, s.created, guss, ks_naf=ext, uicc_me="GBA_U")
        inner = ks_int_naf(s.ks, s.rand, s.impi, req.naf_id)
        return ZnAnswer(
            s.impi, s.expires, s.created, guss, ks_ext_naf=ext, ks_int_naf=inner, uicc_me="GBA_U"
        )
