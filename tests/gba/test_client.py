"""UE bootstrap client and software UICC, sans-I/O: transitions, bad answers, timers, GBA_U."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbmsec.errors import AkaMacError, DecodeError, DigestAuthError, KeyUnavailableError
from mbmsec.gba.aka import generate_av, next_sqn
from mbmsec.gba.bsf import bootstrapping_info_xml, gba_u_autn
from mbmsec.gba.client import (
    TRANSITIONS,
    BootstrapClient,
    BootstrapError,
    GbaUicc,
    State,
    parse_bootstrapping_info,
)
from mbmsec.gba.digest import (
    DigestChallenge,
    build_www_authenticate,
    encode_aka_nonce,
    parse_authorization,
)
from mbmsec.gba.kdf import UA_MBMS, ks_ext_naf, ks_int_naf, naf_id
from mbmsec.httpmsg import HttpResponse

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
IMPI = "user1_private@home1.net"
REALM = "bsf.home1.net"
NAF = naf_id("bmsc.home1.net", UA_MBMS)


def challenge(autn: bytes, rand: bytes = RAND, **kw: object) -> HttpResponse:
    ch = DigestChallenge(
        realm=str(kw.get("realm", REALM)),
        nonce=encode_aka_nonce(rand, autn),
        algorithm=str(kw.get("algorithm", "AKAv1-MD5")),
        qop=("auth-int",),
    )
    return HttpResponse(401, (("WWW-Authenticate", build_www_authenticate(ch)),))


def av(sqn: int = next_sqn(0)) -> tuple[bytes, bytes, bytes, bytes]:
    v = generate_av(K, OPC, sqn, b"\x80\x00", RAND)
    return v.autn, v.xres, v.ck, v.ik


def test_initial_request_is_table_a31() -> None:
    c = BootstrapClient(IMPI, GbaUicc(K, OPC), realm=REALM, rng=os.urandom)
    req = c.start(0.0)
    assert (req.method, req.target) == ("GET", "/")
    creds = parse_authorization(req.header("Authorization") or "")
    assert (creds.username, creds.realm, creds.nonce, creds.uri, creds.response) == (
        IMPI,
        REALM,
        "",
        "/",
        "",
    )
    assert "3gpp-gba" in (req.header("User-Agent") or "")
    assert c.state is State.WAIT_CHALLENGE


def test_answer_uses_res_and_auth_int() -> None:
    autn, xres, _, _ = av()
    c = BootstrapClient(IMPI, GbaUicc(K, OPC), realm=REALM, rng=os.urandom)
    c.start(0.0)
    req = c.receive(challenge(autn), 0.0)
    assert req is not None and c.state is State.WAIT_RESULT
    creds = parse_authorization(req.header("Authorization") or "")
    assert creds.qop == "auth-int" and creds.nc == 1 and creds.algorithm == "AKAv1-MD5"
    from mbmsec.gba.digest import verify_response

    verify_response(creds, password=xres, method="GET")  # raises if RES was not the password


def test_200_without_or_with_bad_rspauth_fails() -> None:
    autn, _, _, _ = av()
    for info in (None, 'qop=auth-int, rspauth="00000000000000000000000000000000"'):
        c = BootstrapClient(IMPI, GbaUicc(K, OPC), realm=REALM, rng=os.urandom)
        c.start(0.0)
        c.receive(challenge(autn), 0.0)
        headers = () if info is None else (("Authentication-Info", info),)
        with pytest.raises(DigestAuthError):
            c.receive(HttpResponse(200, headers, bootstrapping_info_xml("x@" + REALM, 10.0)), 0.0)
        assert c.state is State.FAILED and c.result is None
        autn, _, _, _ = av(next_sqn(next_sqn(0)))


@pytest.mark.parametrize(
    "resp",
    [
        HttpResponse(401),
        HttpResponse(401, (("WWW-Authenticate", "Basic realm=x"),)),
        HttpResponse(401, (("WWW-Authenticate", 'Digest realm="r", nonce="!!!"'),)),
        HttpResponse(401, (("WWW-Authenticate", 'Digest realm="bsf.home1.net", nonce="AAAA"'),)),
        HttpResponse(500),
        HttpResponse(403),
        HttpResponse(200),
    ],
)
def test_bad_first_answers_fail_cleanly(resp: HttpResponse) -> None:
    c = BootstrapClient(IMPI, GbaUicc(K, OPC), realm=REALM, rng=os.urandom)
    c.start(0.0)
    with pytest.raises(BootstrapError):
        c.receive(resp, 0.0)
    assert c.state is State.FAILED and c.error is not None


def test_wrong_realm_or_algorithm() -> None:
    autn, _, _, _ = av()
    for kw in ({"realm": "evil.example"}, {"algorithm": "MD5"}):
        c = BootstrapClient(IMPI, GbaUicc(K, OPC), realm=REALM, rng=os.urandom)
        c.start(0.0)
        with pytest.raises(BootstrapError):
            c.receive(challenge(autn, **kw), 0.0)
    c = BootstrapClient(IMPI, GbaUicc(K, OPC), realm="127.0.0.1", rng=os.urandom, check_realm=False)
    c.start(0.0)
    assert c.receive(challenge(autn), 0.0) is not None and c.realm == REALM


def test_mac_failure_reports_then_fails() -> None:
    autn, _, _, _ = av()
    bad = autn[:-1] + bytes([autn[-1] ^ 1])
    c = BootstrapClient(IMPI, GbaUicc(K, OPC), realm=REALM, rng=os.urandom)
    c.start(0.0)
    req = c.receive(challenge(bad), 0.0)
    assert req is not None and c.state is State.WAIT_REJECT
    creds = parse_authorization(req.header("Authorization") or "")
    assert creds.auts is None
    with pytest.raises(AkaMacError):
        c.receive(HttpResponse(403), 0.0)


def test_too_many_challenges() -> None:
    c = BootstrapClient(IMPI, GbaUicc(K, OPC), realm=REALM, rng=os.urandom, max_rounds=2)
    c.start(0.0)
    sqn = 0
    for _ in range(2):
        sqn = next_sqn(sqn)
        c.receive(challenge(generate_av(K, OPC, sqn, b"\x80\x00", RAND).autn), 0.0)
    with pytest.raises(BootstrapError, match="too many"):
        c.receive(challenge(generate_av(K, OPC, next_sqn(sqn), b"\x80\x00", RAND).autn), 0.0)


def test_transition_table_rejects_other_events() -> None:
    c = BootstrapClient(IMPI, GbaUicc(K, OPC), realm=REALM, rng=os.urandom)
    with pytest.raises(BootstrapError):
        c.receive(HttpResponse(200), 0.0)  # nothing sent yet
    states_with_start = {s for (s, e) in TRANSITIONS if e == "start"}
    assert states_with_start == {State.IDLE, State.BOOTSTRAPPED, State.FAILED}
    c.start(0.0)
    with pytest.raises(BootstrapError):
        c.start(0.0)  # already waiting


def test_timer_and_key_lifetime() -> None:
    from mbmsec.gba.client import BootstrapResult

    c = BootstrapClient(IMPI, GbaUicc(K, OPC), realm=REALM, rng=os.urandom, margin=300.0)
    assert c.get_timer() is None and c.needs_bootstrap(0.0)
    with pytest.raises(KeyUnavailableError):
        c.naf_key(NAF, 0.0)
    ks = bytes(range(32))
    c.result = BootstrapResult(IMPI, "b@" + REALM, 1000.0 + 3600, RAND, 1000.0, False, ks)
    assert c.get_timer() == 1000.0 + 3600 - 300
    assert not c.needs_bootstrap(1000.0) and c.needs_bootstrap(4300.0)
    assert c.naf_key(NAF, 4500.0) == ks_ext_naf(ks, RAND, IMPI, NAF)  # same formula as Ks_NAF
    with pytest.raises(KeyUnavailableError):
        c.naf_key(NAF, 4600.0)
    c.result = BootstrapResult(IMPI, "b@" + REALM, 1100.0, RAND, 1000.0, False, ks)
    assert c.get_timer() == 1050.0  # margin capped at half the lifetime


def test_gba_u_uicc_keeps_keys() -> None:
    autn, xres, ck, ik = av()
    uicc = GbaUicc(K, OPC, gba_u=True)
    with pytest.raises(KeyUnavailableError):
        uicc.gba_u_naf_derivation(NAF, IMPI)
    with pytest.raises(AkaMacError):
        uicc.gba_u_bootstrap(RAND, autn)  # plain AUTN: MAC* expected
    res = uicc.gba_u_bootstrap(RAND, gba_u_autn(autn, ik))
    assert res == xres
    ext = uicc.gba_u_naf_derivation(NAF, IMPI)
    assert ext == ks_ext_naf(ck + ik, RAND, IMPI, NAF)
    assert ext != ks_int_naf(ck + ik, RAND, IMPI, NAF)
    assert uicc.has_ks_int_naf(NAF)
    assert K.hex() not in repr(uicc) and "sqn_ms" in repr(uicc)
    for i in range(12):
        uicc.gba_u_naf_derivation(naf_id(f"n{i}.net", UA_MBMS), IMPI)
    assert not uicc.has_ks_int_naf(NAF)  # least recently used entry overwritten (Annex G.2)


def test_parse_bootstrapping_info() -> None:
    btid, life = parse_bootstrapping_info(bootstrapping_info_xml("I1U8@bsf.h", 1073643197.0))
    assert btid == "I1U8@bsf.h" and life == 1073643197.0
    ok_ts = (
        b'<BootstrappingInfo xmlns="uri:3gpp-gba"><btid>a@b</btid>'
        b"<lifetime>2004-01-09T10:13:17Z</lifetime></BootstrappingInfo>"
    )
    assert parse_bootstrapping_info(ok_ts) == ("a@b", 1073643197.0)
    for bad in [
        b"",
        b"<x/>",
        ok_ts.replace(b"uri:3gpp-gba", b"urn:other"),
        ok_ts.replace(b"Z</lifetime>", b"</lifetime>"),
        ok_ts.replace(b"<btid>a@b</btid>", b""),
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + ok_ts,
        b"x" * 5000,
    ]:
        with pytest.raises(DecodeError):
            parse_bootstrapping_info(bad)


@given(st.binary(max_size=300))
def test_parse_bootstrapping_info_fuzz(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        parse_bootstrapping_info(data)


@given(st.text(max_size=200))
def test_parse_bootstrapping_info_text_fuzz(text: str) -> None:
    body = (
        '<BootstrappingInfo xmlns="uri:3gpp-gba"><btid>' + text + "</btid><lifetime>" + text
    ).encode() + b"</lifetime></BootstrappingInfo>"
    with contextlib.suppress(DecodeError):
        parse_bootstrapping_info(body)
