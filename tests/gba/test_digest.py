"""HTTP Digest (RFC 2617, RFC 7235/7615 syntax, RFC 3310 AKAv1-MD5, TS 24.109 GBA profiles)."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.errors import (
    DecodeError,
    DigestAuthError,
    DigestParseError,
    SyncFailureError,
    UnsupportedAlgorithmError,
)
from mbmsec.gba.aka import Usim, generate_av, resync
from mbmsec.gba.digest import (
    MAX_HEADER_LEN,
    MAX_PARAMS,
    AuthenticationInfo,
    DigestChallenge,
    DigestCredentials,
    aka_password,
    build_authentication_info,
    build_authorization,
    build_www_authenticate,
    compute_rspauth,
    decode_aka_nonce,
    digest_response,
    encode_aka_nonce,
    make_authentication_info,
    make_cnonce,
    naf_password,
    naf_realm,
    parse_authentication_info,
    parse_authorization,
    parse_challenges,
    parse_www_authenticate,
    respond,
    verify_response,
    verify_rspauth,
)

# RFC 2617 §3.5 example
MUFASA = (
    'Digest username="Mufasa", realm="testrealm@host.com", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, '
    'nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", '
    'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
MUFASA_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


# --- RFC 2617 §3.5 -----------------------------------------------------------------------------


def test_rfc2617_example_parse_and_verify() -> None:
    c = parse_authorization(MUFASA)
    assert (c.username, c.realm, c.uri, c.qop, c.nc, c.cnonce) == (
        "Mufasa",
        "testrealm@host.com",
        "/dir/index.html",
        "auth",
        1,
        "0a4f113b",
    )
    assert c.response == "6629fae49393a05397450978507c4ef1"
    verify_response(c, password=b"Circle Of Life", method="GET")
    with pytest.raises(DigestAuthError):
        verify_response(c, password=b"Circle of Life", method="GET")
    with pytest.raises(DigestAuthError):
        verify_response(c, password=b"Circle Of Life", method="POST")


def test_rfc2617_example_client_side() -> None:
    ch = parse_www_authenticate(MUFASA_CHALLENGE)
    assert ch.qop == ("auth", "auth-int")
    assert ch.algorithm == "MD5"
    c = respond(
        ch,
        username="Mufasa",
        password=b"Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
        qop="auth",
    )
    assert c.response == "6629fae49393a05397450978507c4ef1"
    assert c.opaque == "5ccc069c403ebaf9f0171e9517f40e41"
    assert parse_authorization(build_authorization(c)) == c


def test_no_qop_rfc2069_compat() -> None:
    # RFC 2617 §3.2.2.1: without qop, response = KD(H(A1), nonce ":" H(A2))
    ha1 = md5(b"u:r:p")
    ha2 = md5(b"GET:/x")
    want = md5(f"{ha1}:n:{ha2}".encode())
    got = digest_response(
        algorithm="MD5", username="u", realm="r", password=b"p", method="GET", uri="/x", nonce="n"
    )
    assert got == want


def test_auth_int_and_rspauth() -> None:
    body = b"<xml>request</xml>"
    ha1 = md5(b"u:r:p")
    ha2 = md5(b"POST:/k:" + md5(body).encode())
    want = md5(f"{ha1}:n:0000000a:cn:auth-int:{ha2}".encode())
    got = digest_response(
        algorithm="MD5",
        username="u",
        realm="r",
        password=b"p",
        method="POST",
        uri="/k",
        nonce="n",
        qop="auth-int",
        nc=10,
        cnonce="cn",
        entity_body=body,
    )
    assert got == want
    creds = DigestCredentials("u", "r", "n", "/k", got, "MD5", "cn", None, "auth-int", 10)
    verify_response(creds, password=b"p", method="POST", entity_body=body)
    with pytest.raises(DigestAuthError):
        verify_response(creds, password=b"p", method="POST", entity_body=body + b" ")
    # rspauth: A2 = ":" uri ":" H(response body) (RFC 2617 §3.2.3)
    rbody = b"<xml>answer</xml>"
    ha2r = md5(b":/k:" + md5(rbody).encode())
    assert compute_rspauth(creds, password=b"p", entity_body=rbody) == md5(
        f"{ha1}:n:0000000a:cn:auth-int:{ha2r}".encode()
    )
    info = make_authentication_info(creds, password=b"p", entity_body=rbody, nextnonce="nn")
    parsed = parse_authentication_info(build_authentication_info(info))
    assert parsed == info
    verify_rspauth(parsed, creds, password=b"p", entity_body=rbody)
    with pytest.raises(DigestAuthError):
        verify_rspauth(parsed, creds, password=b"q", entity_body=rbody)
    with pytest.raises(DigestAuthError):
        verify_rspauth(AuthenticationInfo(), creds, password=b"p")


def test_md5_sess() -> None:
    ha1 = md5(md5(b"u:r:p").encode() + b":n:cn")
    ha2 = md5(b"GET:/")
    want = md5(f"{ha1}:n:00000001:cn:auth:{ha2}".encode())
    got = digest_response(
        algorithm="MD5-sess",
        username="u",
        realm="r",
        password=b"p",
        method="GET",
        uri="/",
        nonce="n",
        qop="auth",
        nc=1,
        cnonce="cn",
    )
    assert got == want


def test_unsupported_algorithm_and_qop() -> None:
    kw = dict(username="u", realm="r", password=b"p", method="GET", uri="/", nonce="n")
    with pytest.raises(UnsupportedAlgorithmError):
        digest_response(algorithm="SHA-512-256", **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        digest_response(algorithm="MD5", qop="auth-conf", nc=1, cnonce="c", **kw)  # type: ignore[arg-type]
    creds = DigestCredentials("u", "r", "n", "/", "0" * 32, "MD5", "c", None, "bogus", 1)
    with pytest.raises(DigestAuthError):
        verify_response(creds, password=b"p", method="GET")


# --- RFC 3310 AKAv1-MD5 over the TS 24.109 Ub exchange -----------------------------------------

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
RAND = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
RES = bytes.fromhex("a54211d5e3ba50bf")
IMPI = "user1_private@home1.net"
BSF = "bsf.home1.net"


def test_aka_nonce_roundtrip_vector() -> None:
    autn = bytes.fromhex("55f328b43577b9b94a9ffac354dfafb3")
    nonce = encode_aka_nonce(RAND, autn)
    assert nonce == "I1U8vpY3qJ0hiuZNrke/NVXzKLQ1d7m5Sp/6w1Tfr7M="  # spec-digest §5.3
    assert decode_aka_nonce(nonce) == (RAND, autn, b"")
    n2 = encode_aka_nonce(RAND, autn, b"srv")
    assert decode_aka_nonce(n2) == (RAND, autn, b"srv")
    for bad in ("", "!!!!", base64.b64encode(bytes(31)).decode(), "I1U8vpY3qJ0hiuZNrke/NVXz"):
        with pytest.raises(DigestParseError):
            decode_aka_nonce(bad)


def test_akav1_md5_response_uses_raw_res() -> None:
    ha1 = md5(f"{IMPI}:{BSF}:".encode() + RES)
    ha2 = md5(b"GET:/:" + md5(b"").encode())
    want = md5(f"{ha1}:nonce:00000001:cn:auth-int:{ha2}".encode())
    got = digest_response(
        algorithm="AKAv1-MD5",
        username=IMPI,
        realm=BSF,
        password=aka_password(RES),
        method="GET",
        uri="/",
        nonce="nonce",
        qop="auth-int",
        nc=1,
        cnonce="cn",
    )
    assert got == want
    assert aka_password(RES) == RES
    with pytest.raises(ValueError):
        aka_password(b"abc")


def test_ub_bootstrap_exchange_and_resync() -> None:
    rng_bytes = iter([bytes(range(16)), bytes(range(16, 32))])

    def rng(n: int) -> bytes:
        return next(rng_bytes)[:n]

    # BSF: 401 with nonce = base64(RAND || AUTN), AKAv1-MD5, qop auth-int (TS 24.109 A.3)
    av = generate_av(K, OPC, 40 << 5, b"\x80\x00", RAND)
    ch = DigestChallenge(BSF, encode_aka_nonce(av.rand, av.autn), "AKAv1-MD5", ("auth-int",))
    header = build_www_authenticate(ch)
    # UE
    got = parse_www_authenticate(header)
    rand, autn, _ = decode_aka_nonce(got.nonce)
    usim = Usim(K, OPC)
    res = usim.authenticate(rand, autn)
    creds = respond(
        got,
        username=IMPI,
        password=aka_password(res.res),
        method="GET",
        uri="/",
        cnonce=make_cnonce(rng),
    )
    assert creds.qop == "auth-int" and creds.nc == 1
    # BSF verifies with XRES and answers rspauth
    rx = parse_authorization(build_authorization(creds))
    verify_response(rx, password=aka_password(av.xres), method="GET")
    body = b"<BootstrappingInfo/>"
    info = make_authentication_info(rx, password=aka_password(av.xres), entity_body=body)
    verify_rspauth(
        parse_authentication_info(build_authentication_info(info)),
        creds,
        password=aka_password(res.res),
        entity_body=body,
    )
    # Replay of the same challenge: SQN stale -> UE sends auts with an empty password
    with pytest.raises(SyncFailureError) as ei:
        usim.authenticate(rand, autn)
    creds2 = respond(
        got,
        username=IMPI,
        password=b"ignored",
        method="GET",
        uri="/",
        cnonce=make_cnonce(rng),
        auts=ei.value.auts,
    )
    rx2 = parse_authorization(build_authorization(creds2))
    assert rx2.auts == ei.value.auts
    verify_response(rx2, password=b"", method="GET")  # RFC 3310 §3.4
    with pytest.raises(DigestAuthError):
        verify_response(rx2, password=aka_password(av.xres), method="GET")
    assert resync(K, OPC, RAND, rx2.auts) == 40 << 5


def test_initial_ub_request_with_empty_fields() -> None:
    # TS 24.109 Table A.3-1: first request carries empty nonce and response
    v = f'Digest username="{IMPI}", realm="{BSF}", nonce="", uri="/", response=""'
    c = parse_authorization(v)
    assert (c.nonce, c.response, c.uri) == ("", "", "/")
    assert parse_authorization(build_authorization(c)) == c


# --- NAF profile -------------------------------------------------------------------------------


def test_naf_profile_helpers() -> None:
    key = bytes(range(32))
    assert naf_password(key) == base64.b64encode(key)
    assert naf_realm("bmsc.home1.net") == "3GPP-bootstrapping@bmsc.home1.net"
    assert naf_realm("bmsc.home1.net", uicc=True) == "3GPP-bootstrapping-uicc@bmsc.home1.net"
    btid = "I1U8vpY3qJ0hiuZNrke/NQ==@bsf.home1.net"
    ch = DigestChallenge(naf_realm("bmsc.home1.net"), "abc", "MD5", ("auth-int",))
    c = respond(
        ch,
        username=btid,
        password=naf_password(key),
        method="POST",
        uri="/keymanagement",
        cnonce="c1",
        entity_body=b"x",
    )
    verify_response(
        parse_authorization(build_authorization(c)),
        password=naf_password(key),
        method="POST",
        entity_body=b"x",
    )


# --- parser ------------------------------------------------------------------------------------


def test_quoted_string_escapes_roundtrip() -> None:
    c = DigestCredentials('we"ird\\user', "r", "n", "/a b", "", extra=(("x-foo", 'q"\\'),))
    h = build_authorization(c)
    assert '\\"' in h and "\\\\" in h
    assert parse_authorization(h) == c


def test_param_names_case_insensitive_and_bws() -> None:
    c = parse_www_authenticate('digest REALM = "a" ,  Nonce="b",,  QOP="auth"')
    assert (c.realm, c.nonce, c.qop) == ("a", "b", ("auth",))


def test_multiple_challenges_and_token68() -> None:
    chs = parse_challenges('Basic realm="x", Newauth abc==, Digest realm="a", nonce="b"')
    assert [c.scheme for c in chs] == ["Basic", "Newauth", "Digest"]
    assert chs[1].token68 == "abc=="
    assert chs[2].get("nonce") == "b"
    assert parse_www_authenticate('Basic realm="x", Digest realm="a", nonce="b"').realm == "a"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "Digest",
        'Digest realm="a"',  # missing nonce
        'Digest realm="a", realm="b", nonce="c"',  # duplicate
        'Digest realm="a, nonce="b"',  # unterminated
        'Digest realm="a" nonce="b"',  # missing comma
        'Digest realm=, nonce="b"',
        'Digest realm="a\x01", nonce="b"',  # control char
        'Digest realm="a", nonce="b\\',
        'Basic realm="a"',  # no Digest
        "Digest abc==",  # token68 for Digest
        '"Digest" realm="a"',
        'Digest realm="a", nonce="b", qop="auth int"',
    ],
)
def test_bad_challenges_rejected(value: str) -> None:
    with pytest.raises(DigestParseError) as ei:
        parse_www_authenticate(value)
    assert ei.value.http_status == 400


@pytest.mark.parametrize(
    "value",
    [
        'Digest username="u", realm="r", nonce="n", uri="/"',  # no response
        'Digest username="u", realm="r", nonce="n", uri="/", response="xyz"',
        'Digest username="u", realm="r", nonce="n", uri="/", response="", qop=auth',
        'Digest username="u", realm="r", nonce="n", uri="/", response="", qop=auth, '
        'cnonce="c", nc=1',
        'Digest username="u", realm="r", nonce="n", uri="/", response="", auts="@@@"',
    ],
)
def test_bad_credentials_rejected(value: str) -> None:
    with pytest.raises(DigestParseError):
        parse_authorization(value)


def test_oversize_and_too_many_params() -> None:
    big = 'Digest realm="a", nonce="' + "x" * MAX_HEADER_LEN + '"'
    with pytest.raises(DigestParseError):
        parse_www_authenticate(big)
    many = "Digest " + ", ".join(f"p{i}=v" for i in range(MAX_PARAMS + 1))
    with pytest.raises(DigestParseError):
        parse_challenges(many)
    parse_challenges("Digest " + ", ".join(f"p{i}=v" for i in range(MAX_PARAMS)))
    with pytest.raises(DigestParseError):
        parse_authentication_info("a=b, " * 2000)
    with pytest.raises(DigestParseError):
        parse_challenges(", ".join(["Basic"] * 20))


def test_builders_refuse_header_injection() -> None:
    with pytest.raises(ValueError):
        build_www_authenticate(DigestChallenge("a\r\nX-Evil: 1", "n"))
    with pytest.raises(ValueError):
        build_authorization(DigestCredentials("u", "r", "n", "/", "", qop="auth int", nc=1))


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)
_tok = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)


@given(
    realm=_text,
    nonce=_text,
    opaque=st.none() | _text,
    qop=st.lists(st.sampled_from(["auth", "auth-int"]), max_size=2, unique=True),
    stale=st.booleans(),
    alg=st.sampled_from(["MD5", "AKAv1-MD5", "MD5-sess"]),
)
def test_challenge_roundtrip(
    realm: str, nonce: str, opaque: str | None, qop: list[str], stale: bool, alg: str
) -> None:
    ch = DigestChallenge(realm, nonce, alg, tuple(qop), opaque, stale)
    assert parse_www_authenticate(build_www_authenticate(ch)) == ch


@given(
    username=_text,
    uri=_text,
    cnonce=_text,
    nc=st.integers(0, 0xFFFFFFFF),
    auts=st.none() | st.binary(min_size=14, max_size=14),
    extra=st.lists(
        st.tuples(_tok.map(lambda s: "x-" + s), _text), max_size=3, unique_by=lambda t: t[0]
    ),
)
def test_credentials_roundtrip(
    username: str,
    uri: str,
    cnonce: str,
    nc: int,
    auts: bytes | None,
    extra: list[tuple[str, str]],
) -> None:
    c = DigestCredentials(
        username,
        "realm",
        "nonce",
        uri,
        "a" * 32,
        "AKAv1-MD5",
        cnonce,
        None,
        "auth",
        nc,
        auts,
        tuple(extra),
    )
    assert parse_authorization(build_authorization(c)) == c


_header_alphabet = st.sampled_from(list('Digest realm="=,\\ \t abcXYZ019-_~+/=:@\x00\x7f\xe9'))


@settings(max_examples=400)
@given(st.text(alphabet=_header_alphabet, max_size=80) | st.text(max_size=80))
def test_fuzz_parse_or_decode_error(value: str) -> None:
    # The fuzz invariant: any string parses or raises DigestParseError, nothing else.
    for parser in (
        parse_challenges,
        parse_www_authenticate,
        parse_authorization,
        parse_authentication_info,
    ):
        try:
            parser(value)
        except DigestParseError as exc:
            assert isinstance(exc, DecodeError)


@settings(max_examples=100)
@given(st.integers(0, len(MUFASA)))
def test_fuzz_truncations_of_valid_header(n: int) -> None:
    try:
        c = parse_authorization(MUFASA[:n])
    except DigestParseError:
        return
    assert c.username == "Mufasa"
