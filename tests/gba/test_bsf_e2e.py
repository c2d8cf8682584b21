"""BSF over real loopback HTTP: aiohttp server on port 0, aiohttp clients.

Covers bootstrap (GBA_ME and GBA_U), resync, wrong RES, Zn (cache, unknown / expired B-TIDs,
NAF not allowed), a BSF restart on the same SQLite file, junk input (never 5xx), and an
independent Ub client written from the specs with hashlib/base64/cryptography/aiohttp only.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mbmsec.gba.aka import SqnState, next_sqn
from mbmsec.gba.bsf import BsfConfig, NafCredential
from mbmsec.gba.client import BootstrapClient, GbaUicc
from mbmsec.gba.hss import make_subscriber
from mbmsec.gba.kdf import UA_MBMS, naf_id
from mbmsec.gba.zn import ZnLookupError
from mbmsec.net.gba_client import ZnClient, bootstrap
from mbmsec.net.http_bsf import BsfServer, BsfServerConfig, open_bsf
from mbmsec.store.sqlite_gba import SqliteSubscriberStore

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMPI = "user1_private@home1.net"
DOMAIN = "bsf.home1.net"
NAF_FQDN = "bmsc.home1.net"
NAF = naf_id(NAF_FQDN, UA_MBMS)
TOKEN = "zn-secret-token"


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def provision(db: Path) -> None:
    s = SqliteSubscriberStore(db)
    s.add_many(
        [
            make_subscriber(IMPI, K.hex(), opc=OPC.hex()),
            make_subscriber("gbau@home1.net", K.hex(), opc=OPC.hex(), uicc=True),
            make_subscriber("limited@home1.net", K.hex(), opc=OPC.hex(), naf_fqdns=("x.net",)),
        ]
    )
    s.close()


def config(db: Path, key_lifetime: float = 3600.0) -> BsfServerConfig:
    return BsfServerConfig(
        bsf=BsfConfig(
            domain=DOMAIN,
            key_lifetime=key_lifetime,
            naf_credentials=(NafCredential("bmsc", TOKEN, (NAF_FQDN,)),),
        ),
        listen=(("127.0.0.1", 0),),
        store=str(db),
    )


async def with_server(
    db: Path, clock: Clock, body: Callable[[str], Awaitable[None]], key_lifetime: float = 3600.0
) -> None:
    bsf = open_bsf(config(db, key_lifetime))
    server = BsfServer(bsf, clock=clock)
    urls = await server.start((("127.0.0.1", 0),))
    try:
        await body(urls[0])
    finally:
        await server.close()
        bsf.hss.store.close()
        bsf.sessions.close()


def ue(impi: str = IMPI, **kw: object) -> BootstrapClient:
    return BootstrapClient(impi, GbaUicc(K, OPC, **kw), realm=DOMAIN, rng=os.urandom)  # type: ignore[arg-type]


def test_bootstrap_zn_and_restart(tmp_path: Path) -> None:
    db = tmp_path / "bsf.db"
    provision(db)
    clock = Clock()
    c = ue()

    async def phase1(url: str) -> None:
        result = await bootstrap(c, url, clock=clock)
        assert result.btid.endswith("@" + DOMAIN)
        assert result.expires == int(clock.t) + 3600

    async def phase2(url: str) -> None:  # a fresh BSF process on the same SQLite file
        assert c.result is not None
        zn = ZnClient(url, token=TOKEN, clock=clock)
        try:
            a = await zn.lookup(c.result.btid, NAF)
            assert a.ks_naf == c.naf_key(NAF, clock.t)
            assert a.impi == IMPI
            b = await zn.lookup(c.result.btid, NAF)
            assert b is a and zn.hits == 1
            with pytest.raises(ZnLookupError) as ei:
                await zn.lookup("AAAAAAAAAAAAAAAAAAAAAA==@" + DOMAIN, NAF)
            assert ei.value.btid_invalid and ei.value.error == "btid-unknown"
            clock.t += 3601
            with pytest.raises(ZnLookupError) as ei:
                await zn.lookup(c.result.btid, NAF)  # cache entry expired too
            assert ei.value.status == 404 and ei.value.error == "btid-expired"
        finally:
            await zn.close()

    asyncio.run(with_server(db, clock, phase1))
    asyncio.run(with_server(db, clock, phase2))


def test_gba_u_resync_and_not_allowed(tmp_path: Path) -> None:
    db = tmp_path / "bsf.db"
    provision(db)
    clock = Clock()

    async def body(url: str) -> None:
        ahead = SqnState().accept(next_sqn(7000 << 5))
        c = ue("gbau@home1.net", gba_u=True, sqn_state=ahead)
        r = await bootstrap(c, url, clock=clock)
        assert r.gba_u and r.ks is None
        zn = ZnClient(url, basic=("bmsc", TOKEN), clock=clock)
        try:
            a = await zn.lookup(r.btid, NAF, gba_u_aware=True)
            assert a.ks_ext_naf == c.naf_key(NAF, clock.t) and a.ks_int_naf is not None
            lim = ue("limited@home1.net")
            r2 = await bootstrap(lim, url, clock=clock)
            with pytest.raises(ZnLookupError) as ei:
                await zn.lookup(r2.btid, NAF)
            assert ei.value.status == 403 and ei.value.diameter_result == 5402
        finally:
            await zn.close()
        bad = ZnClient(url, token="wrong-token", clock=clock)
        try:
            with pytest.raises(ZnLookupError) as ei:
                await bad.lookup(r.btid, NAF)
            assert ei.value.status == 401
        finally:
            await bad.close()

    asyncio.run(with_server(db, clock, body))


def test_wrong_res_and_junk_never_5xx(tmp_path: Path) -> None:
    db = tmp_path / "bsf.db"
    provision(db)
    clock = Clock()

    async def body(url: str) -> None:
        init = f'Digest username="{IMPI}", realm="{DOMAIN}", nonce="", uri="/", response=""'
        async with aiohttp.ClientSession() as s:
            async with s.get(url + "/", headers={"Authorization": init}) as r:
                assert r.status == 401
                www = r.headers["WWW-Authenticate"]
            nonce = re.search(r'nonce="([^"]+)"', www)
            assert nonce is not None
            wrong = (
                f'Digest username="{IMPI}", realm="{DOMAIN}", nonce="{nonce.group(1)}", uri="/", '
                f'response="{"0" * 32}", algorithm=AKAv1-MD5, qop=auth-int, nc=00000001, '
                'cnonce="abcd"'
            )
            async with s.get(url + "/", headers={"Authorization": wrong}) as r:
                assert r.status == 403
            junk: list[tuple[str, str, dict[str, str], bytes]] = [
                ("GET", "/", {}, b""),
                ("GET", "/", {"Authorization": "Digest " + "a" * 4000}, b""),
                ("GET", "/", {"Authorization": 'Digest username="x\\'}, b""),
                ("GET", "/", {"Authorization": "Digest username=" + "\u00e9" * 10}, b""),
                ("POST", "/zn/bootstrapping-info", {"Authorization": f"Bearer {TOKEN}"}, b"{"),
                (
                    "POST",
                    "/zn/bootstrapping-info",
                    {"Authorization": f"Bearer {TOKEN}"},
                    b"x" * 20000,
                ),
                ("POST", "/zn/bootstrapping-info", {}, b"{}"),
                ("GET", "/../../etc/passwd", {}, b""),
                ("PUT", "/", {}, b""),
            ]
            for method, path, headers, data in junk:
                async with s.request(method, url + path, headers=headers, data=data) as r:
                    assert 400 <= r.status < 500, (method, path, r.status)

    asyncio.run(with_server(db, clock, body))


# --- an independent Ub client from the specs (no mbmsec.gba.digest / milenage / kdf) ---------


def _aes(k: bytes, block: bytes) -> bytes:
    e = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    return e.update(block) + e.finalize()


def _x(a: bytes, b: bytes) -> bytes:
    return bytes(i ^ j for i, j in zip(a, b, strict=True))


def _spec_milenage(k: bytes, opc: bytes, rand: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """TS 35.206 §4.1 f2..f5: returns RES, CK, IK, AK."""
    temp = _aes(k, _x(rand, opc))

    def out(r_bytes: int, c: int) -> bytes:
        t = _x(temp, opc)
        t = t[r_bytes:] + t[:r_bytes]
        t = t[:15] + bytes([t[15] ^ c])
        return _x(_aes(k, t), opc)

    o2 = out(0, 1)
    return o2[8:], out(4, 2), out(8, 4), o2[:6]


def _md5(s: bytes) -> str:
    return hashlib.md5(s).hexdigest()


def test_independent_spec_client_matches_zn(tmp_path: Path) -> None:
    db = tmp_path / "bsf.db"
    provision(db)
    asyncio.run(with_server(db, Clock(), spec_client))


def test_independent_spec_client_against_the_bsf_command(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    db = tmp_path / "bsf.db"
    provision(db)
    cfg = tmp_path / "bsf.toml"
    cfg.write_text(
        f'[bsf]\ndomain = "{DOMAIN}"\nlisten = ["127.0.0.1:0"]\n'
        f'[[bsf.naf]]\nname = "bmsc"\ntoken = "{TOKEN}"\nfqdns = ["{NAF_FQDN}"]\n'
    )
    cmd = [sys.executable, "-m", "mbmsec.cli", "bsf", "--config", str(cfg), "--db", str(db)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("bsf listening on "), line
        asyncio.run(spec_client(line.split()[3]))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def spec_client(url: str) -> None:
    """Bootstrap as TS 24.109 / RFC 3310 describe it and check Ks_NAF against Zn."""
    clock = time.time
    async with aiohttp.ClientSession() as s:
        first = f'Digest username="{IMPI}", realm="{DOMAIN}", nonce="", uri="/", response=""'
        async with s.get(url + "/", headers={"Authorization": first}) as r:
            assert r.status == 401
            www = r.headers["WWW-Authenticate"]
        params = dict(re.findall(r'(\w+)=(?:"([^"]*)"|[^,]*)', www))
        assert "AKAv1-MD5" in www and 'qop="auth-int"' in www
        nonce = params["nonce"]
        raw = base64.b64decode(nonce)
        rand, autn = raw[:16], raw[16:32]
        res, ck, ik, ak = _spec_milenage(K, OPC, rand)
        sqn = _x(autn[:6], ak)
        assert int.from_bytes(sqn, "big") > 0
        # RFC 2617 §3.2.2.1 with RFC 3310 §3.3: password = RES octets; qop=auth-int
        cnonce, nc = "0a4f113b", "00000001"
        ha1 = _md5(IMPI.encode() + b":" + DOMAIN.encode() + b":" + res)
        ha2 = _md5(b"GET:/:" + _md5(b"").encode())
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth-int:{ha2}".encode())
        auth = (
            f'Digest username="{IMPI}", realm="{DOMAIN}", nonce="{nonce}", uri="/", '
            f'response="{response}", algorithm=AKAv1-MD5, qop=auth-int, nc={nc}, '
            f'cnonce="{cnonce}"'
        )
        async with s.get(url + "/", headers={"Authorization": auth}) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("application/vnd.3gpp.bsf+xml")
            xml = await r.read()
            ainfo = r.headers["Authentication-Info"]
        # rspauth: A2 = ":" uri ":" H(response body) (RFC 2617 §3.2.3)
        ha2r = _md5(b":/:" + _md5(xml).encode())
        rspauth = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth-int:{ha2r}".encode())
        assert f'rspauth="{rspauth}"' in ainfo
        btid_m = re.search(rb"<btid>([^<]+)</btid>", xml)
        assert btid_m is not None
        btid = btid_m.group(1).decode()
        assert btid == base64.b64encode(rand).decode() + "@" + DOMAIN
        assert b'xmlns="uri:3gpp-gba"' in xml and re.search(rb"<lifetime>[0-9T:-]+Z<", xml)
        # TS 33.220 Annex B: Ks_NAF = HMAC-SHA-256(CK||IK, S)
        p = [b"gba-me", rand, IMPI.encode(), NAF_FQDN.encode() + b"\x01\x00\x00\x00\x01"]
        s_ = b"\x01" + b"".join(x + len(x).to_bytes(2, "big") for x in p)
        ks_naf = hmac.new(ck + ik, s_, hashlib.sha256).digest()
        zn = ZnClient(url, token=TOKEN, clock=clock)
        try:
            answer = await zn.lookup(btid, NAF)
        finally:
            await zn.close()
        assert answer.ks_naf == ks_naf
