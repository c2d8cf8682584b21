"""BM-SC HTTP digest: credentials must use what the challenge offered (RFC 2617 §3.2.2).

Real HSS + BSF + BM-SC core (tests/bmsc/bmsc_env.py), virtual time.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bmsc"))

from bmsc_env import T0, USERS, Ue, bootstrap, make_bsf, make_core, service

from mbmsec.bmsc.core import BmscCore
from mbmsec.bmsc.http_xml import build_registration
from mbmsec.gba.digest import (
    build_authorization,
    digest_response,
    naf_password,
    parse_www_authenticate,
    respond,
)
from mbmsec.httpmsg import HttpRequest
from mbmsec.store.bmsc_memory import MemoryBmscStore

NOW = T0 + 10
TARGET = "/keymanagement?requesttype=register"
BODY = build_registration(["urn:svc:news"])


def _setup() -> tuple[BmscCore, Ue]:
    bsf = make_bsf()
    core = make_core(MemoryBmscStore(), bsf)
    core.add_service(service(), T0)
    return core, bootstrap(bsf, USERS[0], T0)


def _challenge(core: BmscCore) -> object:
    first = core.handle_http(HttpRequest("POST", TARGET, (), BODY, peer="10.0.0.7"), NOW)
    assert first.status == 401
    return parse_www_authenticate(first.header("WWW-Authenticate") or "")


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5-sess", "AKAv1-MD5", "bogus"])
def test_algorithm_other_than_offered_md5_is_refused_not_raised(algorithm: str) -> None:
    core, ue = _setup()
    ch = _challenge(core)
    creds = respond(
        ch,  # type: ignore[arg-type]
        username=ue.btid,
        password=naf_password(ue.mrk),
        method="POST",
        uri=TARGET,
        cnonce="c1",
        entity_body=BODY,
    )
    creds = replace(creds, algorithm=algorithm)
    if algorithm in ("MD5-sess", "AKAv1-MD5"):  # a correct digest under that algorithm
        resp = digest_response(
            algorithm=algorithm,
            username=ue.btid,
            realm=creds.realm,
            password=naf_password(ue.mrk),
            method="POST",
            uri=TARGET,
            nonce=creds.nonce,
            qop=creds.qop,
            nc=creds.nc,
            cnonce=creds.cnonce,
            entity_body=BODY,
        )
        creds = replace(creds, response=resp)
    req = HttpRequest("POST", TARGET, (("Authorization", build_authorization(creds)),), BODY)
    out = core.handle_http(req, NOW)  # used to raise UnsupportedAlgorithmError for "SHA-256"
    assert out.status == 401
    assert core.store.get_registration(ue.impi, "urn:svc:news") is None


def test_credentials_without_qop_are_refused() -> None:
    """The challenge offers qop: an RFC 2069 answer (no qop, body not covered) is refused."""
    core, ue = _setup()
    ch = _challenge(core)
    creds = respond(
        replace(ch, qop=()),  # type: ignore[type-var]
        username=ue.btid,
        password=naf_password(ue.mrk),
        method="POST",
        uri=TARGET,
        cnonce="c1",
    )
    assert creds.qop is None
    # a body other than the one the UE meant: nothing in the digest covers it
    other = build_registration(["urn:svc:news"], mikey_port=9)
    req = HttpRequest("POST", TARGET, (("Authorization", build_authorization(creds)),), other)
    assert core.handle_http(req, NOW).status == 401
    assert core.store.get_registration(ue.impi, "urn:svc:news") is None


def test_auth_int_md5_still_accepted() -> None:
    core, ue = _setup()
    assert ue.http(core, "register", BODY, NOW).status == 200
