"""The real BSF and BM-SC (as processes, over loopback) against an independent UE.

``independent_ue.py`` was written from docs/protocol.md, docs/gba.md and the public specs only.
Here it bootstraps with ``mbmsec bsf``, asks ``mbmsec bmsc`` for keys with the compact
profile and with the 3GPP profile (HTTP register, MSK push, verification message), runs its own
MGV-F on the MTK messages, and the keys it derives are compared with the BM-SC's SQLite store.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from independent_ue import (
    CompactUe,
    ErrorAnswer,
    Msk,
    Mtk,
    MtkReceiver,
    ProtocolError,
    PushReceiver,
    bootstrap,
    build_verification,
    hmac_sha1,
    is_mtk_message,
    item_statuses,
    key_domain_id,
    keymanagement,
    open_group_socket,
    parse_mikey,
    register_body,
)

OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
TOKEN = "interop-zn-token-0123456789"
REALM = "bsf.interop.mbmsec.test"
FQDN = "bmsc.interop.mbmsec.test"
TV = "urn:mbmsec:interop:tv"
RADIO = "urn:mbmsec:interop:radio"  # allowed for USERS[1] only
GROUP = "239.77.0.9"
KD = key_domain_id("001", "01")
KEY_GROUP = 7
TV_MSK_LIFETIME = 120.0
USERS = [f"indep{i}@interop.mbmsec.test" for i in range(4)]


def k_of(i: int) -> bytes:
    return (0x465B5CE8B199B49FAA5F0A2EE238A6B0 + i).to_bytes(16, "big")


def mbmsec(*args: str) -> list[str]:
    return [sys.executable, "-m", "mbmsec.cli", *args]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def first_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 20.0) -> str:
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line.strip()
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"no {prefix!r} line from {proc.args!r}")


@dataclass
class Servers:
    bsf_url: str
    bmsc_udp: tuple[str, int]
    bmsc_http: str
    bmsc_db: Path
    group_port: int
    multicast: str
    radio_port: int


@pytest.fixture(scope="module", params=["auto", "off"])
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """BSF + BM-SC; the BM-SC sends MTK messages by multicast ("auto") or unicast fan-out."""
    multicast = request.param
    tmp = tmp_path_factory.mktemp("interop")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    db = tmp / "gba.db"
    for i, impi in enumerate(USERS):
        subprocess.run(
            mbmsec("hss", "add", "--db", str(db), impi, "--k", k_of(i).hex(), "--opc", OPC.hex()),
            check=True,
            env=env,
            capture_output=True,
        )
    (tmp / "bsf.toml").write_text(
        f'[bsf]\ndomain = "{REALM}"\nlisten = ["127.0.0.1:0"]\nstore = "{db}"\n'
        f'[[bsf.naf]]\nname = "bmsc"\ntoken = "{TOKEN}"\nfqdns = ["{FQDN}"]\n'
    )
    group_port, radio_port = free_udp_port(), free_udp_port()
    procs: list[subprocess.Popen[str]] = []

    def start(cmd: list[str]) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
        procs.append(p)
        return p

    try:
        bsf = start(mbmsec("bsf", "--config", str(tmp / "bsf.toml")))
        bsf_url = first_line(bsf, "bsf listening on ").split()[3]
        bmsc_db = tmp / "bmsc.db"
        (tmp / "bmsc.toml").write_text(
            f"""[bmsc]
fqdn = "{FQDN}"
udp = "127.0.0.1:0"
http = ["127.0.0.1:0"]
store = "{bmsc_db}"
push_timeout = 1.0
multicast = "{multicast}"
[bmsc.zn]
url = "{bsf_url}"
user = "bmsc"
token = "{TOKEN}"
[[bmsc.service]]
id = "{TV}"
key_domain = "001-01"
key_group = {KEY_GROUP}
group = "{GROUP}:{group_port}"
msk_lifetime = {TV_MSK_LIFETIME}
mtk_lifetime = 2.0
msk_lead = 10.0
mtk_lead = 0.5
announce_interval = 0.5
verification = true
start = 0.0
[[bmsc.service]]
id = "{RADIO}"
key_domain = "001-01"
key_group = 8
group = "{GROUP}:{radio_port}"
mtk_lifetime = 2.0
mtk_lead = 0.5
announce_interval = 0.5
salt = false
allowed_users = ["{USERS[1]}"]
"""
        )
        bmsc = start(mbmsec("bmsc", "--config", str(tmp / "bmsc.toml")))
        _, _, udp, _, http = first_line(bmsc, "bmsc udp ").split()
        host, _, port = udp.rpartition(":")
        yield Servers(bsf_url, (host, int(port)), http, bmsc_db, group_port, multicast, radio_port)
        for p in procs:
            assert p.poll() is None, f"{p.args!r} died"
    finally:
        codes = []
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                codes.append(p.wait(timeout=15))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(-9)
            if p.stdout is not None:
                p.stdout.close()
    assert codes == [0] * len(procs)


def store_rows(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return list(con.execute(sql, args))
    finally:
        con.close()


def new_ue(servers: Servers, i: int) -> CompactUe:
    boot = bootstrap(servers.bsf_url, USERS[i], k_of(i), OPC, REALM)
    key = boot.naf_key(FQDN)  # GBA_ME: MRK = MUK = Ks_NAF (protocol.md §3.1)
    return CompactUe(boot.btid, FQDN, key, key)


def udp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def ask(
    sock: socket.socket,
    ue: CompactUe,
    servers: Servers,
    raw: bytes,
    timeout: float = 3.0,
    others: list[bytes] | None = None,
    answers: list[bytes] | None = None,
) -> list[Msk] | ErrorAnswer | None:
    """Send one request; the first answer that passes the UE's checks, or None."""
    sock.sendto(raw, servers.bmsc_udp)
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            break
        data, _ = sock.recvfrom(4096)
        try:
            ans = ue.take_answer(data)
        except ProtocolError:
            if others is not None:
                others.append(data)  # MTK messages by unicast fan-out
            continue
        if answers is not None:
            answers.append(data)
        return ans
    return None


def payload_types(data: bytes) -> list[int]:
    """Payload types of a MIKEY message in wire order (HDR not included)."""
    return [p.ptype for p in parse_mikey(data).payloads]


# Payload order of protocol.md §5, §6, §8.3 (EXT 21, T 5, RAND 11, ID 6, KEMAC 1, ERR 12, V 9)
MSK_ORDER = [21, 5, 11, 6, 6, 1]
MTK_ORDER = [21, 5, 11, 1]


def take_mtks(
    rx: MtkReceiver, socks: list[socket.socket], want: int, pending: list[bytes] | None = None
) -> tuple[list[Mtk], set[int]]:
    """MTKs that pass the MGV-F until ``want`` distinct MTK IDs (15 s at most), and the indexes
    into ``socks`` they came on (-1: ``pending``)."""
    got: list[Mtk] = []
    paths: set[int] = set()
    queue = [(-1, d) for d in pending or []]
    end = time.monotonic() + 15
    while len({m.mtk_id for m in got}) < want and time.monotonic() < end:
        if not queue:
            ready, _, _ = select.select(socks, [], [], 0.5)
            queue = [(socks.index(s), s.recv(4096)) for s in ready]
        for via, data in queue:
            try:
                got.append(rx.take(data))
            except ProtocolError:
                continue
            assert payload_types(data) == MTK_ORDER
            paths.add(via)
        queue = []
    return got, paths


def check_mtks_in_store(servers: Servers, mtks: list[Mtk]) -> None:
    for mtk in mtks:
        rows = store_rows(
            servers.bmsc_db,
            "SELECT key, salt FROM bmsc_mtks WHERE kd = ? AND msk_id = ? AND mtk_id = ?",
            mtk.key_domain,
            mtk.msk_id,
            mtk.mtk_id,
        )
        assert rows == [(mtk.key, mtk.salt)]


def key_numbers(now: float) -> set[int]:
    """Key Numbers of the TV service's MSKs around ``now`` (start 0, L_msk 120 s)."""
    i = int(now // TV_MSK_LIFETIME)
    return {(j % 65535) + 1 for j in (i - 1, i, i + 1)}


def check_msk_in_store(servers: Servers, msk: Msk, service: str) -> None:
    rows = store_rows(
        servers.bmsc_db,
        "SELECT key, service_id, mtk_first, mtk_last FROM bmsc_msks WHERE kd = ? AND msk_id = ?",
        msk.key_domain,
        msk.msk_id,
    )
    assert rows == [(msk.key, service, msk.mtk_first, msk.mtk_last)]


def test_compact_profile_msk_and_mtks(servers: Servers) -> None:
    ue = new_ue(servers, 0)
    sock = udp_socket()
    group = open_group_socket(GROUP, servers.group_port)
    try:
        req = ue.build_request(time.time(), service_id=TV)
        assert len(req.raw) == 10 + 10 + 18 + 4 + len(ue.btid) + 4 + 2 + len(TV) + 22
        early: list[bytes] = []
        answers: list[bytes] = []
        ans = ask(sock, ue, servers, req.raw, others=early, answers=answers)
        assert isinstance(ans, list) and 1 <= len(ans) <= 2, ans
        assert payload_types(answers[0]) == MSK_ORDER and answers[0][3] == 0  # V 0, PRF 0
        assert len(answers[0]) <= 3 * len(req.raw)  # §8.5 size bound
        for msk in ans:
            assert msk.key_domain == KD and msk.msk_id >> 16 == KEY_GROUP
            assert msk.msk_id & 0xFFFF in key_numbers(time.time())  # protocol.md §2, §10
            check_msk_in_store(servers, msk, TV)
        rx = MtkReceiver()
        for msk in ans:
            rx.install(msk)
        got, paths = take_mtks(rx, [sock, group], 2, early)
        assert len({m.mtk_id for m in got}) >= 2, "no two MTKs passed the MGV-F"
        assert all(m.salt is not None and len(m.salt) == 14 for m in got)
        if servers.multicast == "off":  # fan-out: to the address the request came from
            assert paths <= {-1, 0}
        check_mtks_in_store(servers, got)
        # the same MSK, asked for by Key ID (protocol.md §8.1 second form)
        first = ans[0]
        req2 = ue.build_request(time.time(), key_domain=KD, msk_id=first.msk_id)
        ans2 = ask(sock, ue, servers, req2.raw)
        assert isinstance(ans2, list) and [(m.msk_id, m.key) for m in ans2] == [
            (first.msk_id, first.key)
        ]
    finally:
        sock.close()
        group.close()


def test_forged_and_replayed_requests_get_nothing(servers: Servers) -> None:
    ue = new_ue(servers, 2)
    with udp_socket() as sock:
        req = ue.build_request(time.time(), service_id=TV)
        forged = bytearray(req.raw)
        forged[-1] ^= 0x01  # one bit of the V MAC
        assert ask(sock, ue, servers, bytes(forged), timeout=1.5) is None
        forged = bytearray(req.raw)
        forged[12] ^= 0x01  # one bit of the T value, MAC untouched
        assert ask(sock, ue, servers, bytes(forged), timeout=1.5) is None
        # T and RAND swapped, MAC recomputed: a valid MAC, but not the §8.1 order
        other = ue.build_request(time.time(), service_id=TV)
        body = other.raw[:-20]  # through the Auth alg byte
        hdr, t, rnd, rest = body[:10], body[10:20], body[20:38], body[38:]
        swapped = hdr[:2] + bytes([11]) + hdr[3:] + bytes([5]) + rnd[1:] + bytes([6]) + t[1:]
        swapped += rest
        swapped += hmac_sha1(other.auth_key, swapped)
        assert parse_mikey(swapped).payloads[0].ptype == 11
        assert ask(sock, ue, servers, swapped, timeout=1.5) is None
        ans = ask(sock, ue, servers, req.raw)
        assert isinstance(ans, list) and ans
        ue.outstanding[req.csb_id] = req  # a UE that would still accept an answer
        assert ask(sock, ue, servers, req.raw, timeout=1.5) is None  # replay: dropped


def test_error_causes(servers: Servers) -> None:
    ue = new_ue(servers, 3)
    with udp_socket() as sock:
        req = ue.build_request(time.time(), service_id="urn:mbmsec:interop:nope")
        answers: list[bytes] = []
        assert ask(sock, ue, servers, req.raw, answers=answers) == ErrorAnswer(243, True)
        assert len(answers[0]) == 46 and payload_types(answers[0]) == [5, 12, 9]
        req = ue.build_request(time.time(), service_id=RADIO)
        assert ask(sock, ue, servers, req.raw) == ErrorAnswer(244, True)
        kn = (max(key_numbers(time.time())) + 100) % 65535 + 1  # far from the current MSK
        req = ue.build_request(time.time(), key_domain=KD, msk_id=(KEY_GROUP << 16) | kn)
        assert ask(sock, ue, servers, req.raw) == ErrorAnswer(245, True)
        req = ue.build_request(time.time(), key_domain=KD, msk_id=(99 << 16) | 1)
        assert ask(sock, ue, servers, req.raw) == ErrorAnswer(243, True)
        req = ue.build_request(time.time() - 3600, service_id=TV)
        assert ask(sock, ue, servers, req.raw) == ErrorAnswer(1, True)
        stranger = CompactUe("AAAAAAAAAAAAAAAAAAAAAA==@" + REALM, FQDN, bytes(32), bytes(32))
        req = stranger.build_request(time.time() - 3600, service_id=TV)
        assert ask(sock, stranger, servers, req.raw, timeout=1.5) is None  # stale T: no 241
        req = stranger.build_request(time.time(), service_id=TV)
        sock.sendto(req.raw, servers.bmsc_udp)
        ready, _, _ = select.select([sock], [], [], 3.0)
        assert ready
        data = sock.recv(4096)
        assert len(data) == 24 and payload_types(data) == [5, 12]
        assert stranger.take_answer(data) == ErrorAnswer(241, False)
    # the user allowed on the radio service gets its key; radio has no salt (TEK, SPI)
    ue1 = new_ue(servers, 1)
    sock = udp_socket()
    group = open_group_socket(GROUP, servers.radio_port)
    try:
        req = ue1.build_request(time.time(), service_id=RADIO)
        early: list[bytes] = []
        ans = ask(sock, ue1, servers, req.raw, others=early)
        assert isinstance(ans, list) and ans
        rx = MtkReceiver()
        for msk in ans:
            check_msk_in_store(servers, msk, RADIO)
            rx.install(msk)
        got, _ = take_mtks(rx, [sock, group], 1, early)
        assert got and all(m.salt is None for m in got)
        check_mtks_in_store(servers, got)
    finally:
        sock.close()
        group.close()


def msk_request_body(key_domain: bytes, msk_id: int, mikey_port: int) -> bytes:
    """protocol.md §9.1 msk-request body."""
    return (
        '<mbmsMSKRequest xmlns="urn:mbmsec:mbms:keymanagement"><keyId>'
        f"<keyDomainId>{key_domain.hex()}</keyDomainId><MSKID>{msk_id:08x}</MSKID></keyId>"
        f"<mikeyPort>{mikey_port}</mikeyPort></mbmsMSKRequest>"
    ).encode()


def test_3gpp_register_push_and_verification(servers: Servers) -> None:
    """Register, take the pushes; a forged verification leaves the delivery unconfirmed and
    the push comes again (new CSB ID, higher COUNTER); a good one confirms it."""
    boot = bootstrap(servers.bsf_url, USERS[1], k_of(1), OPC, REALM)
    key = boot.naf_key(FQDN)
    with udp_socket() as push_sock:
        port = push_sock.getsockname()[1]

        def http(kind: str, body: bytes, ctype: str) -> list[tuple[str, int]]:
            ans = keymanagement(
                servers.bmsc_http, kind, body, ctype, btid=boot.btid, mrk=key, bmsc_fqdn=FQDN
            )
            assert ans.status == 200 and ans.rspauth_ok, ans
            return item_statuses(ans.body)

        assert http("register", register_body([TV], port), "application/mbms-register+xml") == [
            (TV, 200)
        ]
        rx = PushReceiver(boot.btid, FQDN, key)
        forged: dict[int, int] = {}  # MSK ID -> CSB ID answered with a bad MAC
        confirmed: dict[int, int] = {}  # MSK ID -> CSB ID answered correctly
        end = time.monotonic() + 15
        while time.monotonic() < end and (not forged or set(confirmed) != set(forged)):
            ready, _, _ = select.select([push_sock], [], [], 0.5)
            if not ready:
                continue
            data = push_sock.recv(4096)
            if is_mtk_message(data):
                continue  # unicast fan-out to registered UEs uses the push port too
            msg, msks = rx.take_push(data)
            assert msg.v_flag and len(msks) == 1, "verification = true: V set, one MSK"
            assert payload_types(data) == MSK_ORDER
            [msk] = msks
            check_msk_in_store(servers, msk, TV)
            with pytest.raises(ProtocolError):
                rx.take_push(data)  # the same COUNTER again
            ver = build_verification(msg, muk=key, bmsc_fqdn=FQDN, btid=boot.btid)
            if msk.msk_id not in forged:
                forged[msk.msk_id] = msg.csb_id
                ver = ver[:-1] + bytes([ver[-1] ^ 1])
            else:
                assert msg.csb_id != forged[msk.msk_id]
                confirmed[msk.msk_id] = msg.csb_id
            push_sock.sendto(ver, servers.bmsc_udp)
        assert forged and set(confirmed) == set(forged), "no push again after a bad verification"
        sql = "SELECT confirmed_at FROM bmsc_deliveries WHERE btid = ? AND csb_id = ?"
        end = time.monotonic() + 5
        while time.monotonic() < end:
            rows = [store_rows(servers.bmsc_db, sql, boot.btid, c) for c in confirmed.values()]
            if all(r and r[0][0] is not None for r in rows):
                break
            time.sleep(0.1)
        assert all(r and r[0][0] is not None for r in rows), "verification not accepted"
        for c in forged.values():
            assert store_rows(servers.bmsc_db, sql, boot.btid, c) == [(None,)]
        # msk-request for the MSK just received: 200 and one more push of it
        msk_id = next(iter(confirmed))
        assert http(
            "msk-request", msk_request_body(KD, msk_id, port), "application/mbms-msk+xml"
        ) == [(f"{KD.hex()}/{msk_id:08x}", 200)]
        end = time.monotonic() + 5
        pushed: list[int] = []
        while time.monotonic() < end and msk_id not in pushed:
            ready, _, _ = select.select([push_sock], [], [], 0.5)
            data = push_sock.recv(4096) if ready else b""
            if data and not is_mtk_message(data):  # (a next-MSK push may come in between)
                pushed += [m.msk_id for m in rx.take_push(data)[1]]
        assert msk_id in pushed, "no push after msk-request"


def test_3gpp_http_refusals(servers: Servers) -> None:
    """Item statuses 404 (unknown service) and 403 (not allowed); an unknown B-TID gets only
    401 challenges (bootstrap again, protocol.md §9.2)."""
    boot = bootstrap(servers.bsf_url, USERS[0], k_of(0), OPC, REALM)
    key = boot.naf_key(FQDN)
    ans = keymanagement(
        servers.bmsc_http,
        "register",
        register_body(["urn:mbmsec:interop:nope", RADIO], 9),
        "application/mbms-register+xml",
        btid=boot.btid,
        mrk=key,
        bmsc_fqdn=FQDN,
    )
    assert ans.status == 200 and ans.rspauth_ok
    assert item_statuses(ans.body) == [("urn:mbmsec:interop:nope", 404), (RADIO, 403)]
    with pytest.raises(ProtocolError, match="no final answer"):
        keymanagement(
            servers.bmsc_http,
            "register",
            register_body([TV], 9),
            "application/mbms-register+xml",
            btid="AAAAAAAAAAAAAAAAAAAAAA==@" + REALM,
            mrk=bytes(32),
            bmsc_fqdn=FQDN,
            tries=3,
        )


def test_junk_datagram_does_not_subscribe_its_source(servers: Servers) -> None:
    """protocol.md §8.5: the BM-SC sends nothing but 24-byte errors to an unauthenticated
    source. In fan-out mode only an address that received an MSK message joins a service's
    fan-out (protocol.md §1), so one spoofed byte cannot direct an MTK stream at a victim."""
    with udp_socket() as victim:
        victim.sendto(b"\x00", servers.bmsc_udp)
        ready, _, _ = select.select([victim], [], [], 2.0)
        assert not ready, f"{len(victim.recv(4096))}-byte datagram sent to an unknown source"
