"""BSF Ub and Zn roles, sans-I/O: every branch of the module's table, Zn errors, GBA_U."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from mbmsec.gba.aka import SqnState, next_sqn
from mbmsec.gba.bsf import Bsf, BsfConfig, NafCredential, gba_u_autn
from mbmsec.gba.client import BootstrapClient, GbaUicc, State
from mbmsec.gba.digest import (
    DigestCredentials,
    build_authorization,
    parse_authorization,
    parse_www_authenticate,
)
from mbmsec.gba.hss import Hss, make_subscriber
from mbmsec.gba.kdf import UA_MBMS, ks_ext_naf, ks_int_naf, naf_id
from mbmsec.gba.zn import ZN_PATH, ZnAnswer, ZnRequest
from mbmsec.httpmsg import HttpRequest, HttpResponse
from mbmsec.store.memory_gba import MemoryBootstrapSessionStore, MemorySubscriberStore
from mbmsec.store.protocols import Guss
from mbmsec.store.sqlite_gba import SqliteBootstrapSessionStore, SqliteSubscriberStore

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMPI = "user1_private@home1.net"
DOMAIN = "bsf.home1.net"
NAF = naf_id("bmsc.home1.net", UA_MBMS)
TOKEN = "zn-secret-token"


class Rng:
    """Deterministic counter-based rng (tests only)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, n: int) -> bytes:
        self.n += 1
        return (self.n.to_bytes(4, "big") * ((n + 3) // 4))[:n]


def make_bsf(uicc: bool = False, nafs: tuple[str, ...] = ("*",), **cfg: object) -> Bsf:
    subs = MemorySubscriberStore()
    subs.add(make_subscriber(IMPI, K.hex(), opc=OPC.hex(), uicc=uicc, naf_fqdns=nafs))
    config = BsfConfig(
        domain=DOMAIN,
        naf_credentials=(
            NafCredential("bmsc", TOKEN, ("bmsc.home1.net",)),
            NafCredential("other", "other-token", ("other.home1.net",)),
        ),
        **cfg,  # type: ignore[arg-type]
    )
    return Bsf(config, Hss(subs, Rng()), MemoryBootstrapSessionStore())


def client(uicc: GbaUicc | None = None) -> BootstrapClient:
    return BootstrapClient(IMPI, uicc or GbaUicc(K, OPC), realm=DOMAIN, rng=Rng())


def run(bsf: Bsf, c: BootstrapClient, now: float = 1000.0) -> list[HttpResponse]:
    seen = []
    req: HttpRequest | None = c.start(now)
    while req is not None:
        resp = bsf.handle(req, now)
        seen.append(resp)
        req = c.receive(resp, now)
    return seen


def zn(bsf: Bsf, body: bytes, now: float, auth: str = f"Bearer {TOKEN}") -> HttpResponse:
    return bsf.handle(HttpRequest("POST", ZN_PATH, (("Authorization", auth),), body), now)


def test_bootstrap_and_zn_gba_me() -> None:
    bsf = make_bsf()
    c = client()
    seen = run(bsf, c)
    assert [r.status for r in seen] == [401, 200]
    ch = parse_www_authenticate(seen[0].header("WWW-Authenticate") or "")
    assert (ch.realm, ch.algorithm, ch.qop) == (DOMAIN, "AKAv1-MD5", ("auth-int",))
    assert seen[1].header("Content-Type") == "application/vnd.3gpp.bsf+xml"
    assert c.result is not None and c.result.btid.endswith("@" + DOMAIN)
    assert c.result.expires == 1000.0 + 86400.0
    resp = zn(bsf, ZnRequest(c.result.btid, NAF).to_json(), 2000.0)
    assert resp.status == 200
    ans = ZnAnswer.from_json(resp.body)
    assert ans.impi == IMPI and ans.uicc_me == "GBA_ME" and ans.ks_naf == c.naf_key(NAF, 2000.0)
    assert ans.key_expiry == c.result.expires and ans.bootstrap_time == 1000.0


def test_gba_u_keys_stay_in_uicc() -> None:
    bsf = make_bsf(uicc=True)
    uicc = GbaUicc(K, OPC, gba_u=True)
    c = client(uicc)
    run(bsf, c)
    assert c.result is not None and c.result.gba_u and c.result.ks is None
    ext = c.naf_key(NAF, 1001.0)
    assert uicc.has_ks_int_naf(NAF)
    aware = ZnAnswer.from_json(zn(bsf, ZnRequest(c.result.btid, NAF, True).to_json(), 1001.0).body)
    assert aware.ks_naf is None and aware.ks_ext_naf == ext and aware.ks_int_naf is not None
    assert aware.ks_int_naf != ext
    plain = ZnAnswer.from_json(zn(bsf, ZnRequest(c.result.btid, NAF).to_json(), 1001.0).body)
    assert plain.ks_naf == ext and plain.ks_int_naf is None and plain.uicc_me == "GBA_U"


def test_gba_u_mac_star_is_an_involution_and_me_usim_rejects_it() -> None:
    autn, ik = bytes(range(16)), bytes(range(16, 32))
    assert gba_u_autn(gba_u_autn(autn, ik), ik) == autn
    bsf = make_bsf(uicc=True)
    c = client(GbaUicc(K, OPC, gba_u=False))  # GBA_ME USIM cannot verify MAC*
    req = c.start(0.0)
    req2 = c.receive(bsf.handle(req, 0.0), 0.0)
    assert req2 is not None and c.state is State.WAIT_REJECT
    resp = bsf.handle(req2, 0.0)
    assert resp.status == 403 and b"network authentication failure" in resp.body
    with pytest.raises(Exception, match="network authentication"):
        c.receive(resp, 0.0)
    assert c.state is State.FAILED


def test_resync() -> None:
    bsf = make_bsf()
    ahead = SqnState().accept(next_sqn(9000 << 5))
    c = client(GbaUicc(K, OPC, sqn_state=ahead))
    req = c.start(0.0)
    sent = []
    while req is not None:
        sent.append(req)
        req = c.receive(bsf.handle(req, 0.0), 0.0)
    assert len(sent) == 3
    auts_creds = parse_authorization(sent[1].header("Authorization") or "")
    assert auts_creds.auts is not None and len(auts_creds.auts) == 14
    assert parse_authorization(sent[2].header("Authorization") or "").auts is None
    assert c.result is not None and c.state is State.BOOTSTRAPPED


def _challenge(bsf: Bsf, now: float = 0.0) -> tuple[BootstrapClient, HttpRequest]:
    c = client()
    first = bsf.handle(c.start(now), now)
    req = c.receive(first, now)
    assert req is not None
    return c, req


def _edit(req: HttpRequest, **changes: object) -> HttpRequest:
    creds = parse_authorization(req.header("Authorization") or "")
    d = {f: getattr(creds, f) for f in DigestCredentials.__dataclass_fields__}
    d.update(changes)
    return HttpRequest(
        req.method, req.target, (("Authorization", build_authorization(DigestCredentials(**d))),)
    )  # type: ignore[arg-type]


def test_wrong_res_is_403_and_nonce_single_use() -> None:
    bsf = make_bsf()
    _, req = _challenge(bsf)
    bad = _edit(req, response="0" * 32)
    assert bsf.handle(bad, 1.0).status == 403
    # the nonce was consumed: the correct answer now gets a stale challenge
    resp = bsf.handle(req, 1.0)
    assert resp.status == 401
    assert parse_www_authenticate(resp.header("WWW-Authenticate") or "").stale


def test_replayed_nonce_after_success(caplog: pytest.LogCaptureFixture) -> None:
    bsf = make_bsf()
    _, req = _challenge(bsf)
    assert bsf.handle(req, 1.0).status == 200
    with caplog.at_level(logging.INFO, logger="mbmsec.bsf"):
        again = bsf.handle(req, 2.0)
    bsf_lines = [r.getMessage() for r in caplog.records if r.name == "mbmsec.bsf"]
    assert bsf_lines == ["ub stale nonce, new challenge"]
    assert again.status == 401
    assert parse_www_authenticate(again.header("WWW-Authenticate") or "").stale


def test_expired_nonce() -> None:
    bsf = make_bsf(nonce_lifetime=30.0)
    _, req = _challenge(bsf, now=0.0)
    resp = bsf.handle(req, 31.0)
    assert resp.status == 401
    assert parse_www_authenticate(resp.header("WWW-Authenticate") or "").stale


def test_pending_table_is_bounded() -> None:
    bsf = make_bsf(max_pending=2)
    _, first = _challenge(bsf)
    _challenge(bsf)
    _challenge(bsf)
    resp = bsf.handle(first, 1.0)  # evicted
    assert resp.status == 401
    assert len(bsf._pending) <= 2


@pytest.mark.parametrize(
    "change",
    [
        {"uri": "/other"},
        {"realm": "evil.example"},
        {"algorithm": "MD5"},
        {"qop": "auth"},
        {"nc": 2},
    ],
)
def test_parameter_mismatch_is_400(change: dict[str, object]) -> None:
    bsf = make_bsf()
    _, req = _challenge(bsf)
    assert bsf.handle(_edit(req, **change), 1.0).status == 400


@pytest.mark.parametrize(
    "headers",
    [
        (),
        (("Authorization", "Basic dTpw"),),
        (("Authorization", 'Digest username="a'),),
        (("Authorization", "Digest " + "x" * 5000),),
        (("Authorization", 'Digest username="u", realm="r"'),),
        (("Authorization", 'Digest username="u"'), ("Authorization", 'Digest username="v"')),
        (("Authorization", 'Digest username="", realm="r", nonce="", uri="/", response=""'),),
        (("Authorization", 'Digest username="u", realm="r", nonce="", uri="/", response="zz"'),),
        (("Authorization", 'Digest username="\udcff", realm="r", nonce="", uri="/", response=""'),),
    ],
)
def test_bad_authorization_is_400(headers: tuple[tuple[str, str], ...]) -> None:
    assert make_bsf().handle(HttpRequest("GET", "/", headers), 0.0).status == 400


def test_unknown_impi_is_403(caplog: pytest.LogCaptureFixture) -> None:
    auth = (
        'Digest username="nobody@home1.net", realm="bsf.home1.net", nonce="", uri="/", response=""'
    )
    with caplog.at_level(logging.INFO, logger="mbmsec.bsf"):
        resp = make_bsf().handle(HttpRequest("GET", "/", (("Authorization", auth),)), 0.0)
    assert resp.status == 403
    assert [r.getMessage() for r in caplog.records] == ["ub unknown IMPI"]


def test_resync_with_wrong_response_or_bad_auts() -> None:
    bsf = make_bsf()
    _, req = _challenge(bsf)
    assert bsf.handle(_edit(req, auts=bytes(14), response="0" * 32), 1.0).status == 403
    _, req = _challenge(bsf)
    # a valid digest with empty password but a forged AUTS: recompute the response
    creds = parse_authorization(req.header("Authorization") or "")
    from mbmsec.gba.digest import digest_response

    resp = digest_response(
        algorithm=creds.algorithm,
        username=creds.username,
        realm=creds.realm,
        password=b"",
        method="GET",
        uri=creds.uri,
        nonce=creds.nonce,
        qop=creds.qop,
        nc=creds.nc,
        cnonce=creds.cnonce,
    )
    forged = _edit(req, auts=bytes(14), response=resp)
    r = bsf.handle(forged, 1.0)
    assert r.status == 403 and b"MAC-S" in r.body


def test_other_paths_and_methods() -> None:
    bsf = make_bsf()
    assert bsf.handle(HttpRequest("GET", "/nope"), 0.0).status == 404
    assert bsf.handle(HttpRequest("DELETE", "/"), 0.0).status == 405
    assert bsf.handle(HttpRequest("GET", ZN_PATH), 0.0).status == 405


def _boot(bsf: Bsf, now: float = 1000.0) -> str:
    c = client()
    run(bsf, c, now)
    assert c.result is not None
    return c.result.btid


def test_zn_errors() -> None:
    bsf = make_bsf(key_lifetime=100.0)
    btid = _boot(bsf)
    good = ZnRequest(btid, NAF).to_json()
    assert zn(bsf, good, 1050.0).status == 200
    # NAF credentials
    bad_auth = ["Bearer wrong", "", "Basic !!!", "Basic " + base64.b64encode(b"bmsc").decode()]
    bad_auth += ["Bearer \udcff", "Basic " + base64.b64encode(b"\xff:\xfe").decode()]
    for auth in bad_auth:
        r = zn(bsf, good, 1050.0, auth)
        assert r.status == 401 and json.loads(r.body) == {"error": "naf-unauthenticated"}
    basic = "Basic " + base64.b64encode(f"bmsc:{TOKEN}".encode()).decode()
    assert zn(bsf, good, 1050.0, basic).status == 200
    basic_wrong_user = "Basic " + base64.b64encode(f"other:{TOKEN}".encode()).decode()
    assert zn(bsf, good, 1050.0, basic_wrong_user).status == 401
    # this NAF credential may not ask for another NAF's keys
    r = zn(bsf, good, 1050.0, "Bearer other-token")
    assert r.status == 403 and json.loads(r.body)["diameter_result"] == 5402
    # unknown B-TID
    r = zn(bsf, ZnRequest("AAAA@" + DOMAIN, NAF).to_json(), 1050.0)
    assert r.status == 404 and json.loads(r.body) == {
        "error": "btid-unknown",
        "diameter_result": 5403,
    }
    # expired B-TID
    r = zn(bsf, good, 1100.0)
    assert r.status == 404 and json.loads(r.body) == {
        "error": "btid-expired",
        "diameter_result": 5403,
    }
    assert json.loads(zn(bsf, good, 1100.0).body)["error"] == "btid-unknown"


def test_zn_naf_not_allowed_for_user() -> None:
    bsf = make_bsf(nafs=("other.home1.net",))
    btid = _boot(bsf)
    r = zn(bsf, ZnRequest(btid, NAF).to_json(), 1001.0)
    assert r.status == 403
    assert json.loads(r.body) == {"error": "naf-not-allowed-for-user", "diameter_result": 5402}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"btid": 5, "naf_id": "00"}',
        b'{"btid": "x"}',
        b'{"btid": "x", "naf_id": "zz"}',
        b'{"btid": "x", "naf_id": "0100000001"}',
        b'{"btid": "x", "naf_id": "ff0100000001"}',
        b'{"btid": "x", "naf_fqdn": "bmsc.home1.net", "ua_protocol_id": "01"}',
        b'{"btid": "x", "naf_id": "6162630100000001", "gba_u_aware": "yes"}',
        b'{"btid": "x", "naf_id": "6162630100000001", "gsids": [1]}',
        b"{" * 100000,
        b'{"btid": "' + b"x" * 300 + b'", "naf_id": "6162630100000001"}',
        b"\xff\xfe",
        b'{"btid": "\\udcff", "naf_id": "6162630100000001"}',
        b'{"btid": "x", "naf_id": "6162630100000001", "gsids": ["\\ud800"]}',
    ],
)
def test_zn_junk_is_400(body: bytes) -> None:
    r = zn(make_bsf(), body, 0.0)
    assert r.status == 400 and json.loads(r.body)["error"] == "bad-request"


def test_zn_fqdn_form_and_gsids() -> None:
    bsf = make_bsf()
    btid = _boot(bsf)
    body = json.dumps(
        {"btid": btid, "naf_fqdn": "bmsc.home1.net", "ua_protocol_id": "0100000001", "gsids": ["4"]}
    ).encode()
    assert zn(bsf, body, 1001.0).status == 200


def test_logs_never_carry_keys(caplog: pytest.LogCaptureFixture) -> None:
    bsf = make_bsf(uicc=True)
    uicc = GbaUicc(K, OPC, gba_u=True)
    c = client(uicc)
    with caplog.at_level(logging.DEBUG):
        run(bsf, c)
        assert c.result is not None
        zn(bsf, ZnRequest(c.result.btid, NAF, True).to_json(), 1001.0)
        zn(bsf, b"junk", 1001.0)
    ks = bsf.sessions.get(c.result.btid)
    assert ks is not None
    secrets = [K, OPC, ks.ks, ks.ks[:16], ks.ks[16:]]
    secrets += [ks_ext_naf(ks.ks, ks.rand, IMPI, NAF), ks_int_naf(ks.ks, ks.rand, IMPI, NAF)]
    text = "\n".join(repr(r.__dict__) for r in caplog.records)
    assert caplog.records
    for s in secrets:
        assert s.hex() not in text and base64.b64encode(s).decode() not in text


def test_sessions_survive_a_new_bsf_on_the_same_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "bsf.db"
    subs = SqliteSubscriberStore(db)
    subs.add(make_subscriber(IMPI, K.hex(), opc=OPC.hex(), naf_fqdns=("*",)))
    cred = (NafCredential("bmsc", TOKEN),)
    bsf1 = Bsf(
        BsfConfig(domain=DOMAIN, naf_credentials=cred),
        Hss(subs, Rng()),
        SqliteBootstrapSessionStore(db),
    )
    c = client()
    run(bsf1, c)
    assert c.result is not None
    bsf1.sessions.close()
    subs.close()
    subs2 = SqliteSubscriberStore(db)
    bsf2 = Bsf(
        BsfConfig(domain=DOMAIN, naf_credentials=cred),
        Hss(subs2, Rng()),
        SqliteBootstrapSessionStore(db),
    )
    ans = ZnAnswer.from_json(zn(bsf2, ZnRequest(c.result.btid, NAF).to_json(), 1001.0).body)
    assert ans.ks_naf == c.naf_key(NAF, 1001.0)
    assert Guss().allows_naf("bmsc.home1.net")
    assert bsf2.purge(1000.0 + 86400.0) == 1
    subs2.close()
