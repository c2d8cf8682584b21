"""BSF scale-out: separate ``mbmsec bsf`` processes sharing one store (Redis, or SQLite on one
host) accept at one process the answer to a challenge issued by another, keep each nonce
single-use across all of them, serve Zn for B-TIDs bootstrapped elsewhere and never issue an
SQN twice. ``--workers N`` runs N processes on one port (SO_REUSEPORT).

The Redis cases run when MBMSEC_REDIS_URL is set; they are skipped when it is unset, except
under CI (CI set), where a missing server is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from mbmsec.errors import ConfigError
from mbmsec.gba.aka import next_sqn
from mbmsec.gba.client import BootstrapClient, GbaUicc
from mbmsec.gba.digest import build_authorization
from mbmsec.gba.hss import make_subscriber
from mbmsec.gba.kdf import UA_MBMS, naf_id
from mbmsec.gba.milenage import Milenage
from mbmsec.httpmsg import HttpRequest
from mbmsec.net.gba_client import ZnClient, bootstrap, send
from mbmsec.net.http_bsf import load_bsf_config
from mbmsec.store.gba_open import describe_store, open_subscriber_store

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMPI = "user1_private@home1.net"
DOMAIN = "bsf.home1.net"
TOKEN = "zn-token-0123456789"
NAF = naf_id("bmsc.home1.net", UA_MBMS)


def _redis_url() -> str:
    url = os.environ.get("MBMSEC_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI run without MBMSEC_REDIS_URL")
        pytest.skip("MBMSEC_REDIS_URL not set")
    return url


class BsfProc:
    """A running ``mbmsec bsf`` process (its stderr in a file)."""

    def __init__(self, tmp: Path, store: str, name: str, *extra: str, toml: str = "") -> None:
        cfg = tmp / f"{name}.toml"
        cfg.write_text(
            f'[bsf]\ndomain = "{DOMAIN}"\nlisten = ["127.0.0.1:0"]\n{toml}'
            f'[[bsf.naf]]\nname = "bmsc"\ntoken = "{TOKEN}"\nfqdns = ["bmsc.home1.net"]\n'
        )
        self.err_path = tmp / f"{name}.err"
        argv = [sys.executable, "-m", "mbmsec.cli", "bsf", "--config", str(cfg), "--store", store]
        argv.extend(extra)
        with self.err_path.open("wb") as err:
            self.proc = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        assert self.proc.stdout is not None
        self.banner = self.proc.stdout.readline()
        assert self.banner.startswith("bsf listening on http://127.0.0.1:"), self.banner
        self.url = self.banner.split()[3]

    def messages(self) -> list[str]:
        text = self.err_path.read_text("utf-8", "replace")
        return [json.loads(line)["msg"] for line in text.splitlines()]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        finally:
            assert self.proc.stdout is not None
            self.proc.stdout.close()


@pytest.fixture
def redis_store() -> Iterator[str]:
    """A Redis store URL with a fresh prefix, one subscriber provisioned; flushed afterwards."""
    url = _redis_url()
    sep = "&" if "?" in url else "?"
    spec = f"{url}{sep}prefix=mbmsec-test:{uuid.uuid4().hex}:"
    subs = open_subscriber_store(spec)
    subs.add(make_subscriber(IMPI, K.hex(), opc=OPC.hex()))
    yield spec
    subs.flush()  # type: ignore[attr-defined]
    subs.close()


@pytest.fixture
def two_bsfs(redis_store: str, tmp_path: Path) -> Iterator[tuple[BsfProc, BsfProc]]:
    many = "max_pending_per_impi = 1000\n"  # 200 challenges for one IMPI outstanding at once
    a = BsfProc(tmp_path, redis_store, "a", toml=many)
    try:
        b = BsfProc(tmp_path, redis_store, "b", toml=many)
    except BaseException:
        a.stop()
        raise
    yield a, b
    assert a.stop() == 0 and b.stop() == 0
    for p in (a, b):
        assert "bsf internal error" not in p.messages()


def ue() -> BootstrapClient:
    return BootstrapClient(IMPI, GbaUicc(K, OPC), realm=DOMAIN, rng=os.urandom)


def sqn_of(www: str) -> int:
    """SQN carried in the challenge's AUTN (SQN xor AK, AK = f5(RAND), TS 33.102 §6.3.2)."""
    found = re.search(r'nonce="([^"]+)"', www)
    assert found is not None
    raw = base64.b64decode(found.group(1))
    ak = Milenage(K, OPC).f2345(raw[:16])[3]
    return int.from_bytes(bytes(x ^ y for x, y in zip(raw[16:22], ak, strict=True)), "big")


async def cross_bootstrap(
    s: aiohttp.ClientSession, first: str, second: str, c: BootstrapClient
) -> tuple[int, HttpRequest, int]:
    """Initial GET at ``first``, the answer at ``second``; return (SQN, answer, status)."""
    challenge = await send(s, first, c.start(time.time()))
    assert challenge.status == 401
    answer = c.receive(challenge, time.time())
    assert answer is not None
    ok = await send(s, second, answer)
    if ok.status == 200:
        assert c.receive(ok, time.time()) is None
    return sqn_of(challenge.header("WWW-Authenticate") or ""), answer, ok.status


def test_challenge_at_one_bsf_answered_at_the_other(two_bsfs: tuple[BsfProc, BsfProc]) -> None:
    a, b = two_bsfs

    async def body() -> None:
        async with aiohttp.ClientSession() as s:
            c = ue()
            _, answer, status = await cross_bootstrap(s, a.url, b.url, c)
            assert status == 200 and c.result is not None
            for url in (a.url, b.url):  # the same answer again, at either: the nonce is spent
                again = await send(s, url, answer)
                assert again.status == 401
                assert "stale=true" in (again.header("WWW-Authenticate") or "")
            # and the other way round
            c2 = ue()
            _, _, status2 = await cross_bootstrap(s, b.url, a.url, c2)
            assert status2 == 200

    asyncio.run(body())
    assert a.messages().count("ub bootstrapped") == 1
    assert b.messages().count("ub bootstrapped") == 1
    assert a.messages().count("ub stale nonce, new challenge") == 1
    assert b.messages().count("ub stale nonce, new challenge") == 1


def test_replay_race_one_winner(two_bsfs: tuple[BsfProc, BsfProc]) -> None:
    """The same answer sent to both BSFs at once, many times: exactly one 200 each time."""
    a, b = two_bsfs

    async def body() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            for _ in range(10):
                c = ue()
                challenge = await send(s, a.url, c.start(time.time()))
                answer = c.receive(challenge, time.time())
                assert answer is not None
                got = await asyncio.gather(
                    *(send(s, url, answer) for url in (a.url, b.url, a.url, b.url))
                )
                assert sorted(r.status for r in got) == [200, 401, 401, 401]

    asyncio.run(body())


def test_zn_at_b_for_a_btid_bootstrapped_at_a(two_bsfs: tuple[BsfProc, BsfProc]) -> None:
    a, b = two_bsfs

    async def body() -> None:
        c = ue()
        result = await bootstrap(c, a.url)
        z = ZnClient(b.url, token=TOKEN)
        try:
            answer = await z.lookup(result.btid, NAF)
        finally:
            await z.close()
        assert answer.me_key == c.naf_key(NAF, time.time())
        assert answer.impi == IMPI

    asyncio.run(body())
    assert "zn bootstrapping info" in b.messages()
    assert "zn bootstrapping info" not in a.messages()


def test_concurrent_bootstraps_never_share_an_sqn(
    two_bsfs: tuple[BsfProc, BsfProc], redis_store: str
) -> None:
    a, b = two_bsfs
    init = build_authorization_initial()

    async def bare(s: aiohttp.ClientSession, url: str) -> int:
        r = await send(s, url, HttpRequest("GET", "/", (("Authorization", init),)))
        assert r.status == 401
        return sqn_of(r.header("WWW-Authenticate") or "")

    async def body() -> tuple[list[int], list[int]]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            urls = (a.url, b.url)
            full = asyncio.gather(
                *(cross_bootstrap(s, urls[i % 2], urls[1 - i % 2], ue()) for i in range(40))
            )
            only = asyncio.gather(*(bare(s, urls[i % 2]) for i in range(160)))
            done, bare_sqns = await asyncio.gather(full, only)
            assert [st for _, _, st in done] == [200] * 40
            return [q for q, _, _ in done], list(bare_sqns)

    full_sqns, bare_sqns = asyncio.run(body())
    issued = sorted(full_sqns + bare_sqns)
    chain = [next_sqn(0)]
    while len(chain) < 200:
        chain.append(next_sqn(chain[-1]))
    assert issued == chain  # 200 SQNs, strictly increasing, none twice, none skipped
    subs = open_subscriber_store(redis_store)
    he = subs.get(IMPI)
    subs.close()
    assert he is not None and he.sqn == chain[-1]


def build_authorization_initial() -> str:
    from mbmsec.gba.digest import DigestCredentials

    return build_authorization(
        DigestCredentials(username=IMPI, realm=DOMAIN, nonce="", uri="/", response="")
    )


def test_workers_share_one_port(redis_store: str, tmp_path: Path) -> None:
    """``--workers 3``: one port, three processes; every answer is accepted wherever it lands
    (no stale nonce), because the challenges are in Redis."""
    p = BsfProc(tmp_path, redis_store, "w", "--workers", "3")
    try:
        assert "3 workers" in p.banner

        async def body() -> None:
            conn = aiohttp.TCPConnector(force_close=True)  # a new connection per request
            async with aiohttp.ClientSession(connector=conn) as s:
                for _ in range(30):
                    _, _, status = await cross_bootstrap(s, p.url, p.url, ue())
                    assert status == 200

        asyncio.run(body())
    finally:
        assert p.stop() == 0
    msgs = p.messages()
    assert msgs.count("ub bootstrapped") == 30
    assert "ub stale nonce, new challenge" not in msgs
    assert msgs.count("bsf listening") == 3 and msgs.count("bsf stopping") == 3


def test_two_bsfs_on_one_sqlite_file_share_challenges(tmp_path: Path) -> None:
    db = str(tmp_path / "g.db")
    subs = open_subscriber_store(db)
    subs.add(make_subscriber(IMPI, K.hex(), opc=OPC.hex()))
    subs.close()
    shared = 'challenges = "store"\n'
    a = BsfProc(tmp_path, db, "a", toml=shared)
    b = BsfProc(tmp_path, db, "b", toml=shared)
    try:

        async def body() -> None:
            async with aiohttp.ClientSession() as s:
                _, answer, status = await cross_bootstrap(s, a.url, b.url, ue())
                assert status == 200
                assert (await send(s, a.url, answer)).status == 401
                assert (await send(s, b.url, answer)).status == 401

        asyncio.run(body())
    finally:
        assert a.stop() == 0 and b.stop() == 0


def test_config_keys_and_store_description() -> None:
    cfg = load_bsf_config(
        '[bsf]\nstore = "redis://:secret-pw@10.0.0.5:6380/2?prefix=site1:"\n'
        'workers = 4\nmax_pending_per_impi = 2\nchallenges = "memory"\n'
    )
    assert cfg.workers == 4 and cfg.bsf.max_pending_per_impi == 2
    assert not cfg.shared_challenges()
    assert load_bsf_config('[bsf]\nstore = "redis://h/0"\n').shared_challenges()
    assert not load_bsf_config('[bsf]\nstore = "x.db"\n').shared_challenges()
    assert load_bsf_config('[bsf]\nstore = "x.db"\nworkers = 2\n').shared_challenges()
    shown = describe_store(cfg.store)
    assert shown == "redis://10.0.0.5:6380/2 (prefix site1:)" and "secret" not in shown
    for bad in ("workers = 0", 'challenges = "disk"', "max_pending_per_impi = 0", "workers = 1.5"):
        with pytest.raises(ConfigError):
            load_bsf_config(f"[bsf]\n{bad}\n")


def test_hss_cli_on_redis_and_unreachable_redis(redis_store: str, tmp_path: Path) -> None:
    def mbmsec(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mbmsec.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    r = mbmsec("hss", "add", "--db", redis_store, "b@home1.net", "--k", K.hex(), "--op", K.hex())
    assert r.returncode == 0, r.stderr
    listed = json.loads(mbmsec("hss", "list", "--db", redis_store, "--json").stdout)
    assert [x["impi"] for x in listed] == ["b@home1.net", IMPI]
    r = mbmsec("hss", "add", "--db", redis_store, IMPI, "--k", K.hex(), "--op", K.hex())
    assert r.returncode == 2 and "already" in r.stderr
    assert mbmsec("hss", "remove", "--db", redis_store, "b@home1.net").returncode == 0
    dead = "redis://:pw-not-shown@127.0.0.1:1/0"
    r = mbmsec("hss", "list", "--db", dead)
    assert r.returncode == 2 and "unreachable" in r.stderr and "pw-not-shown" not in r.stderr
    assert "Traceback" not in r.stderr
    r = mbmsec("bsf", "--store", dead, "--listen", "127.0.0.1:0")
    assert r.returncode == 2 and "unreachable" in r.stderr and "Traceback" not in r.stderr


def test_worker_start_failure_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = [sys.executable, "-m", "mbmsec.cli", "bsf", "--workers", "2", "--listen"]
        argv.extend([f"127.0.0.1:{port}", "--store", str(tmp_path / "g.db")])
        r = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    errs = [x for x in r.stderr.splitlines() if not x.startswith("{")]
    assert len(errs) == 1 and f"127.0.0.1:{port}" in errs[0], r.stderr
