"""No GBA secret in any repr(), str(), exception message, log line (down to DEBUG) or CLI output.

Secrets: K, OP, OPc, RES/XRES, CK, IK, AK, Ks, Ks_NAF, Ks_ext_NAF, Ks_int_NAF and the NAF's Zn
token. A bootstrap (GBA_ME, GBA_U, with a resync round) and Zn lookups run through the real BSF
with every ``mbmsec`` logger at DEBUG and each record rendered by the JSON formatter; every
object met on the way and every error path reached is rendered too. No 6-byte window of a
secret may appear as hex (either case), as a bytes literal or in base64.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mbmsec.errors import MbmsecError
from mbmsec.gba.aka import SqnState, Usim, generate_av, next_sqn, verify_autn
from mbmsec.gba.bsf import Bsf, BsfConfig, NafCredential
from mbmsec.gba.client import BootstrapClient, GbaUicc
from mbmsec.gba.digest import parse_authorization
from mbmsec.gba.hss import Hss, make_subscriber, parse_hex, parse_subscribers_csv
from mbmsec.gba.kdf import UA_MBMS, ks_ext_naf, ks_int_naf, ks_naf, naf_id
from mbmsec.gba.milenage import Milenage, compute_opc
from mbmsec.gba.zn import ZN_PATH, ZnAnswer, ZnRequest, zn_error_from_response
from mbmsec.httpmsg import HttpRequest
from mbmsec.logs import JsonFormatter
from mbmsec.net.gba_client import ZnClient
from mbmsec.net.http_bsf import load_bsf_config
from mbmsec.store.memory_gba import MemoryBootstrapSessionStore, MemorySubscriberStore
from mbmsec.store.sqlite_gba import SqliteBootstrapSessionStore, SqliteSubscriberStore

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OP = bytes.fromhex("cdc202d5123e20f62b6d676ac72cb318")
OPC = compute_opc(K, OP)
IMPI = "user1_private@home1.net"
GBAU = "gbau@home1.net"
DOMAIN = "bsf.home1.net"
NAF = naf_id("bmsc.home1.net", UA_MBMS)
TOKEN = "zn-token-7f3a9c51e2b84d06"
RAND = bytes(range(0x10, 0x20))
WINDOW = 6


class Rng:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, n: int) -> bytes:
        self.n += 1
        return (self.n.to_bytes(4, "big") * ((n + 3) // 4))[:n]


def _secrets_for(rand: bytes) -> dict[str, bytes]:
    res, ck, ik, ak = Milenage(K, OPC).f2345(rand)
    ks = ck + ik
    return {
        "res": res,
        "ck": ck,
        "ik": ik,
        "ak": ak,
        "ks_naf": ks_naf(ks, rand, IMPI, NAF),
        "ks_ext_naf_u": ks_ext_naf(ks, rand, GBAU, NAF),
        "ks_int_naf_u": ks_int_naf(ks, rand, GBAU, NAF),
    }


SECRETS: dict[str, bytes] = {"k": K, "op": OP, "opc": OPC, "token": TOKEN.encode()}


def add_rand(rand: bytes) -> None:
    """Register the per-run secrets for a RAND the BSF handed out."""
    for name, value in _secrets_for(rand).items():
        SECRETS[f"{name}@{rand.hex()[:6]}"] = value


add_rand(RAND)


def needles() -> Iterator[tuple[str, str]]:
    for name, secret in SECRETS.items():
        yield name, base64.b64encode(secret).decode()
        if name == "token":
            yield name, TOKEN
            continue
        for i in range(len(secret) - WINDOW + 1):
            w = secret[i : i + WINDOW]
            yield name, w.hex()
            yield name, w.hex().upper()
            yield name, repr(w)[2:-1]


def assert_clean(text: str, what: str) -> None:
    for name, needle in needles():
        assert needle not in text, f"{name} leaks into {what}: {text[:300]!r}"


def assert_objects_clean(*objs: object) -> None:
    for o in objs:
        assert_clean(repr(o), f"repr({type(o).__name__})")
        assert_clean(str(o), f"str({type(o).__name__})")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def assert_raises_clean(fn: Callable[[], object], kind: type[BaseException] = MbmsecError) -> None:
    with pytest.raises(kind) as info:
        fn()
    for e in _chain(info.value):
        assert_clean(str(e), f"str({type(e).__name__})")
        assert_clean(repr(e), f"repr({type(e).__name__})")
        assert_clean(repr(e.args), f"{type(e).__name__}.args")


def test_needles_would_catch_a_leak() -> None:
    for text in (repr(K), OPC.hex().upper(), base64.b64encode(OP).decode(), f"Bearer {TOKEN}"):
        with pytest.raises(AssertionError):
            assert_clean(text, "probe")


def _bsf(tmp: Path | None) -> Bsf:
    subs: MemorySubscriberStore | SqliteSubscriberStore
    sessions: MemoryBootstrapSessionStore | SqliteBootstrapSessionStore
    if tmp is None:
        subs, sessions = MemorySubscriberStore(), MemoryBootstrapSessionStore()
    else:
        subs, sessions = SqliteSubscriberStore(tmp), SqliteBootstrapSessionStore(tmp)
    subs.add(make_subscriber(IMPI, K.hex(), op=OP.hex()))
    subs.add(make_subscriber(GBAU, K.hex(), opc=OPC.hex(), uicc=True))
    cfg = BsfConfig(domain=DOMAIN, naf_credentials=(NafCredential("bmsc", TOKEN),))
    return Bsf(cfg, Hss(subs, Rng()), sessions)


def _run(bsf: Bsf, c: BootstrapClient, seen: list[object]) -> None:
    req: HttpRequest | None = c.start(0.0)
    while req is not None:
        seen.append(req)
        creds = parse_authorization(req.header("Authorization") or "")
        seen.append(creds)
        resp = bsf.handle(req, 0.0)
        seen.append(resp)
        www = resp.header("WWW-Authenticate")
        if www is not None:
            nonce = www.split('nonce="', 1)[1].split('"', 1)[0]
            add_rand(base64.b64decode(nonce)[:16])
        req = c.receive(resp, 0.0)


@pytest.mark.parametrize("sqlite", [False, True], ids=["memory", "sqlite"])
def test_full_flow_objects_and_debug_logs(
    sqlite: bool, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bsf = _bsf(tmp_path / "g.db" if sqlite else None)
    seen: list[object] = [bsf, bsf.config, bsf.hss, bsf.sessions, bsf.hss.store]
    with caplog.at_level(logging.DEBUG, logger="mbmsec"):
        ahead = SqnState().accept(next_sqn(4000 << 5))  # a resync round first
        me = BootstrapClient(IMPI, GbaUicc(K, OPC, sqn_state=ahead), realm=DOMAIN, rng=Rng())
        _run(bsf, me, seen)
        uicc = GbaUicc(K, OPC, gba_u=True)
        u = BootstrapClient(GBAU, uicc, realm=DOMAIN, rng=Rng())
        _run(bsf, u, seen)
        assert me.result is not None and u.result is not None
        seen += [me, me.result, me.uicc, u, u.result, uicc, me.naf_key(NAF, 1.0)]
        u.naf_key(NAF, 1.0)
        for btid, aware in ((me.result.btid, False), (u.result.btid, True), (u.result.btid, False)):
            req = HttpRequest(
                "POST",
                ZN_PATH,
                (("Authorization", f"Bearer {TOKEN}"),),
                ZnRequest(btid, NAF, aware).to_json(),
            )
            resp = bsf.handle(req, 1.0)
            assert resp.status == 200
            seen += [req, resp, ZnAnswer.from_json(resp.body)]
        for sub in bsf.hss.store.all():
            seen += [sub, bsf.hss.authentication_vector(sub.impi)]
        seen += [bsf.sessions.get(me.result.btid), bsf.sessions.get(u.result.btid)]
        bsf.purge(10**9)
    fmt = JsonFormatter()
    lines = [fmt.format(r) for r in caplog.records]
    assert any('"ub bootstrapped"' in x for x in lines)
    assert any('"zh resync"' in x for x in lines)  # DEBUG lines were produced and checked
    for line in lines:
        assert_clean(line, "log line")
    seen = [o for o in seen if not isinstance(o, bytes)]  # the NAF key itself, of course
    assert_objects_clean(*seen)


def test_aka_objects_and_errors() -> None:
    av = generate_av(K, OPC, 33, b"\x80\x00", RAND)
    usim = Usim(K, OPC)
    result = usim.authenticate(av.rand, av.autn)
    assert_objects_clean(av, result, usim, Milenage(K, OPC), usim.sqn_state)
    # MAC failure and sync failure (the replayed AUTN) carry no secret
    bad = av.autn[:8] + bytes(8)
    assert_raises_clean(lambda: usim.authenticate(av.rand, bad))
    assert_raises_clean(lambda: usim.authenticate(av.rand, av.autn))
    assert_raises_clean(lambda: verify_autn(K, OPC, av.rand, bad, SqnState()))
    assert_raises_clean(lambda: Milenage(K[:15], OPC), ValueError)


def test_provisioning_errors_never_echo_keys() -> None:
    near_k = K.hex()[:-2]  # one octet short: most of the real key
    near_opc = OPC.hex() + "zz"
    assert_raises_clean(lambda: make_subscriber(IMPI, near_k, opc=OPC.hex()))
    assert_raises_clean(lambda: make_subscriber(IMPI, K.hex(), opc=near_opc))
    assert_raises_clean(lambda: make_subscriber(IMPI, K.hex(), op=OP.hex()[:-1]))
    assert_raises_clean(lambda: make_subscriber(IMPI, K.hex(), opc=OPC.hex(), op=OP.hex()))
    assert_raises_clean(lambda: parse_hex("K", near_k, 16))
    assert_raises_clean(lambda: parse_subscribers_csv(f"impi,k,opc\na@h,{near_k},{OPC.hex()}\n"))
    assert_raises_clean(lambda: parse_subscribers_csv(f"impi,k,opc\na@h,{K.hex()},{near_opc}\n"))
    text = f"impi,k,opc,colour\na@h,{K.hex()},{OPC.hex()},red\n"
    assert_raises_clean(lambda: parse_subscribers_csv(text))


def test_zn_and_config_objects() -> None:
    cfg = load_bsf_config(
        f'[[bsf.naf]]\nname = "bmsc"\ntoken = "{TOKEN}"\nfqdns = ["bmsc.home1.net"]\n'
    )
    generated = load_bsf_config(None)
    SECRETS["generated"] = generated.bsf.naf_credentials[0].secret.encode()
    try:
        assert_objects_clean(cfg, cfg.bsf, *cfg.bsf.naf_credentials, generated, generated.bsf)
    finally:
        del SECRETS["generated"]
    assert_objects_clean(ZnClient("http://127.0.0.1:1", token=TOKEN))
    assert_objects_clean(ZnClient("http://127.0.0.1:1", basic=("bmsc", TOKEN)))
    err = zn_error_from_response(404, b'{"error":"btid-unknown","diameter_result":5403}')
    assert_objects_clean(err)


def test_cli_output_never_shows_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mbmsec.cli import main

    db = str(tmp_path / "g.db")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(K.hex() + "\n"))
    assert main(["hss", "add", "--db", db, IMPI, "--k", "-", "--op", OP.hex(), "--uicc"]) == 0
    assert main(["hss", "list", "--db", db]) == 0
    assert main(["hss", "list", "--db", db, "--json"]) == 0
    assert main(["hss", "add", "--db", db, "x@h", "--k", K.hex()[:-2], "--opc", OPC.hex()]) == 2
    assert main(["hss", "add", "--db", db, IMPI, "--k", K.hex(), "--opc", OPC.hex()]) == 2
    out = capsys.readouterr()
    assert_clean(out.out, "stdout")
    assert_clean(out.err, "stderr")
    assert (tmp_path / "g.db").read_bytes().count(K) >= 1  # the store holds K; only it
