"""``mbmsec bsf`` as a process, fed junk over raw loopback sockets.

Every bad input (malformed HTTP that aiohttp itself refuses, malformed or oversized
Authorization, NUL / CR / non-UTF-8 bytes, duplicated parameters, wrong Content-Length,
other methods and paths, bodies too large, Zn junk, a stalled body) gets a 4xx and exactly one
JSON log line on stderr; stderr never holds a traceback or a non-JSON line. Also: a SIGKILL
between bootstrap and Zn loses nothing, and a port already in use ends with one line and
exit status 2.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mbmsec.gba.aka import SQN_MAX
from mbmsec.gba.client import BootstrapClient, GbaUicc
from mbmsec.gba.hss import make_subscriber
from mbmsec.gba.kdf import UA_MBMS, naf_id
from mbmsec.net.gba_client import ZnClient, bootstrap
from mbmsec.store.sqlite_gba import SqliteSubscriberStore

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
IMPI = "user1_private@home1.net"
DOMAIN = "bsf.home1.net"
TOKEN = "zn-token-0123456789"
NAF = naf_id("bmsc.home1.net", UA_MBMS)


class Bsf:
    """A running ``mbmsec bsf`` subprocess with its stderr in a file."""

    def __init__(self, tmp: Path, db: Path, name: str = "bsf") -> None:
        cfg = tmp / f"{name}.toml"
        cfg.write_text(
            f'[bsf]\ndomain = "{DOMAIN}"\nlisten = ["127.0.0.1:0"]\nnonce_lifetime = 0.5\n'
            f'[[bsf.naf]]\nname = "bmsc"\ntoken = "{TOKEN}"\nfqdns = ["bmsc.home1.net"]\n'
        )
        self.err_path = tmp / f"{name}.err"
        self._err = self.err_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mbmsec.cli", "bsf", "--config", str(cfg), "--db", str(db)],
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("bsf listening on http://127.0.0.1:"), line
        self.url = line.split()[3]
        self.port = int(self.url.rsplit(":", 1)[1])
        self._seen = 0
        self.wait_lines(1)  # "bsf listening"
        self._seen = len(self.lines())

    def lines(self) -> list[str]:
        return self.err_path.read_bytes().decode("utf-8", "replace").splitlines()

    def wait_lines(self, n: int, timeout: float = 3.0) -> list[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.lines()) - self._seen < n:
            time.sleep(0.01)
        return self.lines()[self._seen :]

    def new_lines(self) -> list[str]:
        new = self.wait_lines(1)
        time.sleep(0.05)  # a second line would already be there: it is written before the answer
        new = self.lines()[self._seen :]
        self._seen += len(new)
        return new

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=10)
        self._err.close()
        return rc


def raw(port: int, data: bytes, timeout: float = 2.0) -> int:
    """Send ``data`` on a fresh connection; return the answer's status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    assert buf.startswith(b"HTTP/"), buf[:100]
    return int(buf.split(b" ", 2)[1])


def get(auth: bytes, extra: bytes = b"") -> bytes:
    return b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n" + extra + b"\r\n"


def zn(body: bytes, auth: bytes = b"Bearer " + TOKEN.encode()) -> bytes:
    return (
        b"POST /zn/bootstrapping-info HTTP/1.1\r\nHost: x\r\nAuthorization: "
        + auth
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )


INIT = f'Digest username="{IMPI}", realm="{DOMAIN}", nonce="", uri="/", response=""'.encode()
NAF_J = b'"naf_id":"' + NAF.hex().encode() + b'"'

JUNK: dict[str, tuple[bytes, int]] = {
    "no Authorization": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "two Authorization": (get(INIT, b"Authorization: " + INIT + b"\r\n"), 400),
    "Authorization 5000 chars": (get(b'Digest username="' + b"a" * 5000 + b'"'), 400),
    "Authorization 9000 chars (aiohttp limit)": (get(b'Digest realm="' + b"a" * 9000 + b'"'), 400),
    "Authorization 100k": (get(b"Digest " + b"a" * 100_000), 400),
    "200 headers": (b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200)), 400),
    "NUL in header": (get(INIT.replace(b"user1", b"us\x00er1")), 400),
    "CR in header": (get(INIT.replace(b"user1", b"us\rer1")), 400),
    "non-UTF-8 username": (get(INIT.replace(b"user1", b"us\xff\xfeer1")), 400),
    "latin-1 username": (get(INIT.replace(b"user1", b"us\xe9r1")), 400),
    "duplicated parameter": (get(INIT + b', username="x"'), 400),
    "unknown IMPI": (get(INIT.replace(b"user1", b"nobody")), 403),
    "SQN exhausted": (get(INIT.replace(b"user1_private", b"full")), 403),
    "Basic scheme": (get(b"Basic Zm9vOmJhcg=="), 400),
    "Digest token68": (get(b"Digest abc=="), 400),
    "bare Digest": (get(b"Digest"), 400),
    "control bytes": (get(b"\x01\x02\x03"), 400),
    "bad auts": (get(INIT[:-1] + b'", auts="!!"'), 400),
    "Content-Length negative": (get(INIT, b"Content-Length: -1\r\n"), 400),
    "Content-Length junk": (get(INIT, b"Content-Length: abc\r\n"), 400),
    "Content-Length twice": (get(INIT, b"Content-Length: 1\r\nContent-Length: 2\r\n"), 400),
    "Content-Length + chunked": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    "bad chunk size": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
    ),
    "HTTP/9.9": (b"GET / HTTP/9.9\r\n\r\n", 400),
    "TLS ClientHello": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(100), 400),
    "method FOO": (b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "OPTIONS": (b"OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "TRACE": (b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "DELETE": (b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "GET on Zn": (b"GET /zn/bootstrapping-info HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    "unknown path": (b"GET /etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    "non-UTF-8 target": (b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "target 10k": (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "header without colon": (b"GET / HTTP/1.1\r\nHost: x\r\nfoo\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Digest\r\n realm=x\r\n\r\n", 400),
    "bare LF": (b"GET / HTTP/1.1\nHost: x\nAuthorization: " + INIT + b"\n\n", 400),
    "Ub body 20000": (get(INIT, b"Content-Length: 20000\r\n") + b"a" * 20000, 413),
    "Zn not JSON": (zn(b"{bad"), 400),
    "Zn JSON array": (zn(b"[]"), 400),
    "Zn wrong types": (zn(b'{"btid": 5, "naf_id": ["x"]}'), 400),
    "Zn gba_u_aware string": (
        zn(b'{"btid":"a@b",' + NAF_J + b',"gba_u_aware":"y"}'),
        400,
    ),
    "Zn deep nesting": (zn(b"[" * 3000 + b"]" * 3000), 400),
    "Zn 5000 bytes": (zn(b" " * 4990 + b"{}"), 400),
    "Zn 20000 bytes": (zn(b" " * 20000), 413),
    "Zn non-UTF-8 body": (zn(b'{"btid":"\xff\xfe"}'), 400),
    "Zn no credentials": (zn(b"{}", b"Nothing"), 401),
    "Zn wrong token": (zn(b"{}", b"Bearer wrong-token"), 401),
    "Zn non-UTF-8 token": (zn(b"{}", b"Bearer \xff\xfe"), 401),
    "Zn Basic junk": (zn(b"{}", b"Basic !!!"), 401),
    "Zn Basic non-UTF-8": (zn(b"{}", b"Basic /w=="), 401),
    "Zn unknown B-TID": (
        zn(b'{"btid":"AAAA@' + DOMAIN.encode() + b'",' + NAF_J + b"}"),
        404,
    ),
    "Zn NAF not allowed": (
        zn(b'{"btid":"AAAA@x","naf_fqdn":"evil.net","ua_protocol_id":"0100000001"}'),
        403,
    ),
}


def ue() -> BootstrapClient:
    return BootstrapClient(
        IMPI, GbaUicc(bytes.fromhex(K), bytes.fromhex(OPC)), realm=DOMAIN, rng=os.urandom
    )


@pytest.fixture
def bsf(tmp_path: Path) -> Iterator[Bsf]:
    db = tmp_path / "g.db"
    s = SqliteSubscriberStore(db)
    s.add_many(
        [
            make_subscriber(IMPI, K, opc=OPC),
            make_subscriber("full@home1.net", K, opc=OPC, sqn=SQN_MAX),
        ]
    )
    s.close()
    b = Bsf(tmp_path, db)
    yield b
    if b.proc.poll() is None:
        b.stop(signal.SIGKILL)


def assert_clean_stderr(b: Bsf) -> None:
    text = b.err_path.read_bytes().decode("utf-8", "replace")
    assert "Traceback" not in text
    for line in text.splitlines():
        json.loads(line)  # every line is one JSON object


def test_every_junk_input_is_4xx_with_one_log_line(bsf: Bsf) -> None:
    problems = []
    for name, (data, want) in JUNK.items():
        status = raw(bsf.port, data)
        lines = bsf.new_lines()
        if status != want or len(lines) != 1:
            problems.append((name, status, want, len(lines), lines[:1]))
    assert not problems, problems
    assert bsf.stop() == 0
    assert_clean_stderr(bsf)


def test_stalled_body_and_vanishing_client(bsf: Bsf) -> None:
    # the client promises a body and disconnects: one line, no traceback
    with socket.create_connection(("127.0.0.1", bsf.port)) as s:
        s.sendall(get(INIT, b"Content-Length: 100\r\n") + b"abc")
        time.sleep(0.1)
    assert len(bsf.new_lines()) == 1
    assert bsf.stop() == 0
    assert_clean_stderr(bsf)


def test_replayed_and_expired_nonces_over_the_wire(bsf: Bsf) -> None:
    async def body() -> None:
        import aiohttp

        async with aiohttp.ClientSession() as s:
            c = ue()
            await bootstrap(c, bsf.url, session=s)
            assert len(bsf.new_lines()) == 2  # ub challenge, ub bootstrapped
            assert c._sent is not None
            from mbmsec.gba.digest import build_authorization

            replay = {"Authorization": build_authorization(c._sent)}
            async with s.get(bsf.url + "/", headers=replay) as r:
                assert r.status == 401 and "stale=true" in r.headers["WWW-Authenticate"]
            assert [json.loads(x)["msg"] for x in bsf.new_lines()] == [
                "ub stale nonce, new challenge"
            ]
            async with s.get(bsf.url + "/", headers={"Authorization": INIT.decode()}) as r:
                assert r.status == 401
            bsf.new_lines()
            await asyncio.sleep(0.6)  # nonce_lifetime = 0.5
            c2 = ue()
            req = c2.start(0.0)
            async with s.get(bsf.url + "/", headers=dict(req.headers)) as r:
                www = r.headers["WWW-Authenticate"]
            bsf.new_lines()
            from mbmsec.httpmsg import HttpResponse

            answer = c2.receive(HttpResponse(401, (("WWW-Authenticate", www),)), 0.0)
            assert answer is not None
            await asyncio.sleep(0.6)
            async with s.get(bsf.url + "/", headers=dict(answer.headers)) as r:
                assert r.status == 401 and "stale=true" in r.headers["WWW-Authenticate"]
            assert len(bsf.new_lines()) == 1

    asyncio.run(body())
    assert bsf.stop() == 0
    assert_clean_stderr(bsf)


def test_sigkill_between_bootstrap_and_zn_loses_nothing(bsf: Bsf, tmp_path: Path) -> None:
    c = ue()
    result = asyncio.run(bootstrap(c, bsf.url))
    assert bsf.stop(signal.SIGKILL) == -signal.SIGKILL
    again = Bsf(tmp_path, tmp_path / "g.db", "bsf2")
    try:

        async def lookup() -> bytes:
            z = ZnClient(again.url, token=TOKEN)
            try:
                return (await z.lookup(result.btid, NAF)).me_key
            finally:
                await z.close()

        assert asyncio.run(lookup()) == c.naf_key(NAF, time.time())
        # the SQN went forward durably too: a new bootstrap is accepted by the same USIM
        asyncio.run(bootstrap(c, again.url))
        assert again.stop() == 0
        assert_clean_stderr(again)
    finally:
        if again.proc.poll() is None:
            again.stop(signal.SIGKILL)


def test_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "mbmsec.cli",
                "bsf",
                "--listen",
                f"127.0.0.1:{port}",
                "--db",
                str(tmp_path / "g.db"),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    errs = [x for x in p.stderr.splitlines() if not x.startswith("{")]
    assert len(errs) == 1 and f"127.0.0.1:{port}" in errs[0], p.stderr


def test_body_timeout_is_408_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from mbmsec.net.http_bsf import BsfServer, BsfServerConfig, open_bsf

    async def body() -> None:
        b = open_bsf(BsfServerConfig(store=str(tmp_path / "g.db")))
        server = BsfServer(b, body_timeout=0.3)
        url = (await server.start((("127.0.0.1", 0),)))[0]
        port = int(url.rsplit(":", 1)[1])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(get(INIT, b"Content-Length: 100\r\n") + b"abc")  # and then nothing
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 5)
            assert status.split()[1] == b"408"
            writer.close()
        finally:
            await server.close()
            b.hss.store.close()
            b.sessions.close()

    with caplog.at_level(logging.INFO, logger="mbmsec"):
        asyncio.run(body())
    assert [r.getMessage() for r in caplog.records] == ["http request body timeout"]


def test_two_bsf_processes_never_issue_the_same_sqn(bsf: Bsf, tmp_path: Path) -> None:
    import base64
    import re

    import aiohttp

    from mbmsec.gba.milenage import Milenage

    other = Bsf(tmp_path, tmp_path / "g.db", "bsf2")
    m = Milenage(bytes.fromhex(K), bytes.fromhex(OPC))

    async def challenge(s: aiohttp.ClientSession, url: str) -> int:
        async with s.get(url + "/", headers={"Authorization": INIT.decode()}) as r:
            assert r.status == 401
            found = re.search(r'nonce="([^"]+)"', r.headers["WWW-Authenticate"])
        assert found is not None
        raw_nonce = base64.b64decode(found.group(1))
        ak = m.f2345(raw_nonce[:16])[3]
        sqn_xor_ak = raw_nonce[16:22]
        return int.from_bytes(bytes(a ^ b for a, b in zip(sqn_xor_ak, ak, strict=True)), "big")

    async def body() -> list[int]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            urls = [bsf.url, other.url]
            return list(await asyncio.gather(*(challenge(s, urls[i % 2]) for i in range(200))))

    try:
        sqns = asyncio.run(body())
        assert len(set(sqns)) == 200  # concurrent requests on two processes, one SQN each
        store = SqliteSubscriberStore(tmp_path / "g.db")
        he = store.get(IMPI)
        store.close()
        assert he is not None and he.sqn == max(sqns)
        assert other.stop() == 0 and bsf.stop() == 0
    finally:
        if other.proc.poll() is None:
            other.stop(signal.SIGKILL)
