"""HTTP Digest authentication: header codec and response computation, sans-I/O.

* Header syntax: :mod:`mbmsec.gba.digest_header` (strict, bounded parser and builders),
  re-exported here.
* Digest parameters and response: RFC 2617 §3.2 (``MD5``, ``MD5-sess``, ``qop`` = ``auth`` /
  ``auth-int``, ``rspauth`` with an empty method in A2, §3.2.3).
* AKA: RFC 3310 (``AKAv1-MD5``): nonce = base64(RAND || AUTN || server data) (§3.2); the
  password is RES as raw octets (§3.3); on synchronisation failure the client sends
  ``auts`` = base64(AUTS) and computes the response with an empty password (§3.4).
* GBA Ub profile: TS 24.109 §4 / Annex A (realm = BSF FQDN, ``qop="auth-int"``).
* NAF (BM-SC) profile: TS 24.109 §5, TS 33.222 / TS 33.246: username = B-TID, password =
  base64 of the NAF key (Ks_NAF-derived, e.g. MRK), realm ``3GPP-bootstrapping@<NAF FQDN>``
  (``3GPP-bootstrapping-uicc@`` for Ks_int_NAF).

Response checks compare in constant time (:func:`mbmsec.crypto.mac_equal`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

from ..crypto import mac_equal
from ..errors import DigestAuthError, DigestParseError, UnsupportedAlgorithmError
from .digest_header import (
    MAX_CHALLENGES,
    MAX_HEADER_LEN,
    MAX_PARAMS,
    AuthChallenge,
    AuthenticationInfo,
    DigestChallenge,
    DigestCredentials,
    b64decode_strict,
    build_authentication_info,
    build_authorization,
    build_www_authenticate,
    parse_authentication_info,
    parse_authorization,
    parse_challenges,
    parse_www_authenticate,
)

__all__ = [
    "ALGORITHMS",
    "MAX_CHALLENGES",
    "MAX_HEADER_LEN",
    "MAX_PARAMS",
    "QOPS",
    "AuthChallenge",
    "AuthenticationInfo",
    "DigestChallenge",
    "DigestCredentials",
    "aka_password",
    "build_authentication_info",
    "build_authorization",
    "build_www_authenticate",
    "compute_rspauth",
    "decode_aka_nonce",
    "digest_response",
    "encode_aka_nonce",
    "make_authentication_info",
    "make_cnonce",
    "naf_password",
    "naf_realm",
    "parse_authentication_info",
    "parse_authorization",
    "parse_challenges",
    "parse_www_authenticate",
    "respond",
    "verify_response",
    "verify_rspauth",
]

ALGORITHMS = ("MD5", "MD5-sess", "AKAv1-MD5", "AKAv1-MD5-sess")
QOPS = ("auth", "auth-int")


# --- response computation (RFC 2617 §3.2.2.1-§3.2.2.3) -----------------------------------------


def _h(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _algorithm(algorithm: str | None) -> str:
    alg = algorithm or "MD5"
    for a in ALGORITHMS:
        if a.lower() == alg.lower():
            return a
    raise UnsupportedAlgorithmError(f"unsupported Digest algorithm {alg!r}")


def digest_response(
    *,
    algorithm: str | None,
    username: str,
    realm: str,
    password: bytes,
    method: str,
    uri: str,
    nonce: str,
    qop: str | None = None,
    nc: int | None = None,
    cnonce: str | None = None,
    entity_body: bytes = b"",
) -> str:
    """Return request-digest, 32 lower-case hex digits (RFC 2617 §3.2.2.1).

    A1 = username ":" realm ":" password (password as octets: RES for AKAv1-MD5, RFC 3310 §3.3);
    for ``-sess`` algorithms A1 = H(that) ":" nonce ":" cnonce. A2 = method ":" uri, plus
    ":" H(entity-body) for qop=auth-int. Raises UnsupportedAlgorithmError for an unknown
    algorithm and ValueError for an unknown qop or a qop without cnonce / nc.
    """
    alg = _algorithm(algorithm)
    a1 = b":".join([username.encode(), realm.encode(), password])
    if alg.endswith("-sess"):
        if cnonce is None:
            raise ValueError("-sess algorithms need a cnonce")
        a1 = b":".join([_h(a1).encode(), nonce.encode(), cnonce.encode()])
    a2 = f"{method}:{uri}".encode()
    if qop == "auth-int":
        a2 += b":" + _h(entity_body).encode()
    elif qop not in (None, "auth"):
        raise ValueError(f"unsupported qop {qop!r}")
    if qop is None:
        return _h(f"{_h(a1)}:{nonce}:{_h(a2)}".encode())
    if cnonce is None or nc is None:
        raise ValueError("qop needs cnonce and nc")
    return _h(f"{_h(a1)}:{nonce}:{nc:08x}:{cnonce}:{qop}:{_h(a2)}".encode())


def compute_rspauth(creds: DigestCredentials, *, password: bytes, entity_body: bytes = b"") -> str:
    """Return rspauth for ``creds`` (RFC 2617 §3.2.3: A2 with an empty method).

    ``entity_body`` is the body of the *response* for qop=auth-int.
    """
    return digest_response(
        algorithm=creds.algorithm,
        username=creds.username,
        realm=creds.realm,
        password=password,
        method="",
        uri=creds.uri,
        nonce=creds.nonce,
        qop=creds.qop,
        nc=creds.nc,
        cnonce=creds.cnonce,
        entity_body=entity_body,
    )


def verify_response(
    creds: DigestCredentials, *, password: bytes, method: str, entity_body: bytes = b""
) -> None:
    """Check ``creds.response`` against the expected request-digest in constant time.

    For AKAv1-MD5 pass ``aka_password(XRES)``, or ``b""`` when ``creds.auts`` is present
    (RFC 3310 §3.4). Raises DigestAuthError on mismatch or on an unusable qop.
    """
    try:
        expected = digest_response(
            algorithm=creds.algorithm,
            username=creds.username,
            realm=creds.realm,
            password=password,
            method=method,
            uri=creds.uri,
            nonce=creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
            entity_body=entity_body,
        )
    except ValueError as exc:
        raise DigestAuthError("unusable Digest parameters") from exc
    if not mac_equal(expected.encode(), creds.response.lower().encode()):
        raise DigestAuthError("Digest response does not verify")


def make_authentication_info(
    creds: DigestCredentials,
    *,
    password: bytes,
    entity_body: bytes = b"",
    nextnonce: str | None = None,
) -> AuthenticationInfo:
    """Return the server's ``Authentication-Info`` for verified ``creds`` (RFC 2617 §3.2.3)."""
    return AuthenticationInfo(
        rspauth=compute_rspauth(creds, password=password, entity_body=entity_body),
        qop=creds.qop,
        cnonce=creds.cnonce,
        nc=creds.nc,
        nextnonce=nextnonce,
    )


def verify_rspauth(
    info: AuthenticationInfo,
    creds: DigestCredentials,
    *,
    password: bytes,
    entity_body: bytes = b"",
) -> None:
    """Client side: check the server's rspauth (mutual authentication). Raises DigestAuthError."""
    if info.rspauth is None:
        raise DigestAuthError("Authentication-Info without rspauth")
    if info.cnonce not in (None, creds.cnonce) or info.nc not in (None, creds.nc):
        raise DigestAuthError("Authentication-Info cnonce/nc do not match the request")
    expected = compute_rspauth(creds, password=password, entity_body=entity_body)
    if not mac_equal(expected.encode(), info.rspauth.lower().encode()):
        raise DigestAuthError("rspauth does not verify")


def respond(
    ch: DigestChallenge,
    *,
    username: str,
    password: bytes,
    method: str,
    uri: str,
    cnonce: str,
    nc: int = 1,
    qop: str | None = None,
    entity_body: bytes = b"",
    auts: bytes | None = None,
) -> DigestCredentials:
    """Client side: answer challenge ``ch`` (RFC 2617 §3.2.2; RFC 3310 §3.3/§3.4).

    ``qop`` defaults to ``auth-int`` when offered, else ``auth`` when offered, else none.
    With ``auts`` set (synchronisation failure) the response is computed with an empty password
    whatever ``password`` holds (RFC 3310 §3.4).
    """
    if auts is not None:
        password = b""
    if qop is None and ch.qop:
        qop = next((q for q in ("auth-int", "auth") if q in ch.qop), None)
        if qop is None:
            raise UnsupportedAlgorithmError("no supported qop offered")
    response = digest_response(
        algorithm=ch.algorithm,
        username=username,
        realm=ch.realm,
        password=password,
        method=method,
        uri=uri,
        nonce=ch.nonce,
        qop=qop,
        nc=nc if qop else None,
        cnonce=cnonce if qop or ch.algorithm.lower().endswith("-sess") else None,
        entity_body=entity_body,
    )
    return DigestCredentials(
        username=username,
        realm=ch.realm,
        nonce=ch.nonce,
        uri=uri,
        response=response,
        algorithm=ch.algorithm,
        cnonce=cnonce if qop else None,
        opaque=ch.opaque,
        qop=qop,
        nc=nc if qop else None,
        auts=auts,
    )


def make_cnonce(rng: Callable[[int], bytes], n: int = 16) -> str:
    """Return a client nonce: ``n`` random bytes from the injected rng, hex encoded."""
    return rng(n).hex()


# --- AKA and GBA profiles ----------------------------------------------------------------------


def aka_password(res: bytes) -> bytes:
    """Return the Digest password for AKAv1-MD5: RES as raw octets (RFC 3310 §3.3)."""
    if not 4 <= len(res) <= 16:
        raise ValueError("RES must be 4..16 octets")
    return bytes(res)


def encode_aka_nonce(rand: bytes, autn: bytes, server_data: bytes = b"") -> str:
    """Return nonce = base64(RAND || AUTN || server data) (RFC 3310 §3.2)."""
    if len(rand) != 16 or len(autn) != 16:
        raise ValueError("RAND and AUTN must be 16 bytes each")
    return base64.b64encode(rand + autn + server_data).decode("ascii")


def decode_aka_nonce(nonce: str) -> tuple[bytes, bytes, bytes]:
    """Split an AKA nonce into ``(RAND, AUTN, server data)`` (RFC 3310 §3.2).

    Raises DigestParseError when the nonce is not base64 or shorter than 32 octets.
    """
    raw = b64decode_strict(nonce, "AKA nonce")
    if len(raw) < 32:
        raise DigestParseError("AKA nonce shorter than RAND || AUTN")
    return raw[:16], raw[16:32], raw[32:]


def naf_realm(naf_fqdn: str, *, uicc: bool = False) -> str:
    """Return the NAF Digest realm ``3GPP-bootstrapping[-uicc]@<NAF FQDN>`` (TS 24.109 §5)."""
    prefix = "3GPP-bootstrapping-uicc@" if uicc else "3GPP-bootstrapping@"
    return prefix + naf_fqdn


def naf_password(key: bytes) -> bytes:
    """Return the NAF Digest password: base64 of the NAF-specific key (TS 24.109 §5, TS 33.246).

    The username is the B-TID; ``key`` is Ks_(ext/int)_NAF or a key derived from it (MRK).
    """
    return base64.b64encode(key)
