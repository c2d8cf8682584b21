"""``mbmsec bmsc --workers 2`` as real processes on loopback, over SQLite and over Redis.

A real ``mbmsec bsf`` process bootstraps independent UEs (tests/interop/independent_ue.py,
written from the documents only). Then:

1. compact key requests from many source ports reach both workers (each worker's stop line
   reports answers), every answer carries the same MSK;
2. a 3GPP registration's MSK push is confirmed by its verification message whichever worker
   receives it (the delivery record in the store), with no retry;
3. MTK messages come from one leader: per MSK the COUNTERs strictly increase in arrival order
   and each MTK ID keeps one key;
4. ``kill -9`` of the leader: another worker announces within the lease bound, the UE's
   MGV-F keeps accepting new MTKs with higher COUNTERs, the parent restarts the dead worker;
5. SIGTERM to the parent stops everything with exit status 0.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))

from independent_ue import (
    CompactUe,
    Msk,
    MtkReceiver,
    ProtocolError,
    PushReceiver,
    bootstrap,
    build_verification,
    item_statuses,
    keymanagement,
    open_group_socket,
    register_body,
)

from mbmsec.mbms.messages import check_mtk_message
from mbmsec.net.multicast import probe_loopback_multicast

OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
TOKEN = "workers-zn-token-0123456789"
REALM = "bsf.workers.mbmsec.test"
FQDN = "bmsc.workers.mbmsec.test"
TV = "urn:mbmsec:workers:tv"
GROUP = "239.77.0.21"
USERS = [f"w{i}@workers.mbmsec.test" for i in range(4)]
LEASE = 1.5
SOURCES_PER_UE = 8


def k_of(i: int) -> bytes:
    return (0x465B5CE8B199B49FAA5F0A2EE238A7C0 + i).to_bytes(16, "big")


def mbmsec(*args: str) -> list[str]:
    return [sys.executable, "-m", "mbmsec.cli", *args]


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A child process whose stdout/stderr lines are collected by reader threads."""

    popen: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, cmd: list[str]) -> Proc:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        p = cls(
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
        )
        for stream, sink in ((p.popen.stdout, p.out), (p.popen.stderr, p.err)):
            threading.Thread(target=_pump, args=(stream, sink), daemon=True).start()
        return p

    def wait_line(self, pred: object, timeout: float, where: str = "out") -> str:
        """The first line (stdout or the JSON logs on stderr) for which ``pred`` holds."""
        lines = self.out if where == "out" else self.err
        end = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < end:
            while seen < len(lines):
                line = lines[seen]
                seen += 1
                if pred(line):  # type: ignore[operator]
                    return line
            if self.popen.poll() is not None and seen == len(lines):
                break
            time.sleep(0.05)
        raise AssertionError(f"no wanted line from {self.popen.args!r}: {self.err[-20:]}")

    def logs(self, msg: str) -> list[dict[str, object]]:
        out = []
        for line in list(self.err):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("msg") == msg:
                out.append(rec)
        return out

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return -9


def _pump(stream: object, sink: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.append(line.rstrip("\n"))


def is_log(msg: str) -> object:
    def pred(line: str) -> bool:
        try:
            return bool(json.loads(line).get("msg") == msg)
        except ValueError:
            return False

    return pred


@dataclass
class Env:
    tmp: Path
    bsf_url: str
    bmsc: Proc
    udp: tuple[str, int]
    http: str
    group_port: int
    store: str
    prefix: str


def _redis_url() -> str:
    url = os.environ.get("MBMSEC_REDIS_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI run without MBMSEC_REDIS_URL")
        pytest.skip("MBMSEC_REDIS_URL not set")
    return url


@pytest.fixture(params=["sqlite", "redis"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """BSF + ``mbmsec bmsc --workers 2`` sending MTK messages by multicast."""
    if not probe_loopback_multicast():
        pytest.skip("no loopback multicast on this host (the fan-out test covers workers)")
    yield from start_env(str(request.param), tmp_path, "on")


@pytest.fixture(params=["sqlite", "redis"])
def fanout_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """BSF + ``mbmsec bmsc --workers 2`` with unicast fan-out of MTK messages."""
    yield from start_env(str(request.param), tmp_path, "off")


def start_env(kind: str, tmp_path: Path, multicast: str) -> Iterator[Env]:
    prefix = f"mbmsec-test:{uuid.uuid4().hex}:"
    store = str(tmp_path / "bmsc.db") if kind == "sqlite" else _redis_url()
    db = tmp_path / "gba.db"
    for i, impi in enumerate(USERS):
        subprocess.run(
            mbmsec("hss", "add", "--db", str(db), impi, "--k", k_of(i).hex(), "--opc", OPC.hex()),
            check=True,
            capture_output=True,
        )
    (tmp_path / "bsf.toml").write_text(
        f'[bsf]\ndomain = "{REALM}"\nlisten = ["127.0.0.1:0"]\nstore = "{db}"\n'
        f'[[bsf.naf]]\nname = "bmsc"\ntoken = "{TOKEN}"\nfqdns = ["{FQDN}"]\n'
    )
    group_port = free_udp_port()
    procs: list[Proc] = []
    try:
        bsf = Proc.start(mbmsec("bsf", "--config", str(tmp_path / "bsf.toml")))
        procs.append(bsf)
        bsf_url = bsf.wait_line(lambda s: s.startswith("bsf listening on "), 20).split()[3]
        (tmp_path / "bmsc.toml").write_text(
            f"""[bmsc]
fqdn = "{FQDN}"
udp = "127.0.0.1:0"
http = ["127.0.0.1:0"]
store = "{store}"
redis_prefix = "{prefix}"
push_timeout = 1.0
multicast = "{multicast}"
leader_lease = {LEASE}
workers = 3
[bmsc.zn]
url = "{bsf_url}"
user = "bmsc"
token = "{TOKEN}"
[[bmsc.service]]
id = "{TV}"
key_domain = "001-01"
key_group = 9
group = "{GROUP}:{group_port}"
msk_lifetime = 600.0
mtk_lifetime = 2.0
msk_lead = 30.0
mtk_lead = 0.5
announce_interval = 0.25
verification = true
start = {time.time() - 10.0}
"""
        )
        bmsc = Proc.start(mbmsec("bmsc", "--config", str(tmp_path / "bmsc.toml"), "--workers", "2"))
        procs.append(bmsc)
        _, _, udp, _, http = bmsc.wait_line(lambda s: s.startswith("bmsc udp "), 60).split()
        host, _, port = udp.rpartition(":")
        yield Env(tmp_path, bsf_url, bmsc, (host, int(port)), http, group_port, store, prefix)
    finally:
        codes = [p.stop() for p in reversed(procs)]
        if kind == "redis":
            from mbmsec.store.bmsc_redis import RedisBmscStore

            RedisBmscStore(store, prefix=prefix).flush()
    assert codes == [0] * len(procs), (codes, procs[-1].err[-30:] if procs else None)


def ask(ue: CompactUe, env: Env, sock: socket.socket) -> list[Msk]:
    """One compact request from ``sock``; the MSKs of the answer (retried once)."""
    for _ in range(2):
        req = ue.build_request(time.time(), service_id=TV)
        sock.sendto(req.raw, env.udp)
        end = time.monotonic() + 5
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                break
            try:
                ans = ue.take_answer(sock.recv(4096))
            except ProtocolError:
                continue
            assert isinstance(ans, list), ans
            return ans
    raise AssertionError("no key answer")


@dataclass
class MtkLog:
    """MTK messages seen on the group: (arrival, MSK ID, MTK ID, COUNTER, key)."""

    msks: dict[int, bytes]
    seen: list[tuple[float, int, int, int, bytes]] = field(default_factory=list)
    ue: MtkReceiver = field(default_factory=MtkReceiver)
    accepted: list[tuple[float, int, int]] = field(default_factory=list)  # by the UE's MGV-F

    def collect(self, sock: socket.socket, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                continue
            data = sock.recv(4096)
            t = time.monotonic()
            for msk_id, key in self.msks.items():
                try:
                    m = check_mtk_message(data, key)  # any repeat, MAC checked
                except Exception:
                    continue
                assert m.mtk.msk.msk_id.value == msk_id
                self.seen.append((t, msk_id, m.mtk.mtk_id, m.counter, m.mtk.key))
            try:
                got = self.ue.take(data)  # the independent UE's MGV-F (new MTKs only)
            except ProtocolError:
                continue
            self.accepted.append((t, got.mtk_id, got.counter))

    def check(self) -> None:
        keys: dict[tuple[int, int], bytes] = {}
        last: dict[int, int] = {}
        for _, msk_id, mtk_id, counter, key in self.seen:
            assert keys.setdefault((msk_id, mtk_id), key) == key, "one MTK ID, two keys"
            assert counter > last.get(msk_id, 0), "COUNTER not increasing"
            last[msk_id] = counter


def _stop_stats(env: Env) -> dict[str, dict[str, int]]:
    out = {}
    for rec in env.bmsc.logs("bmsc stopping"):
        out[str(rec["worker"])] = json.loads(str(rec["stats"]))
    return out


def worker_metrics(env: Env, want: int = 2) -> dict[str, dict[str, float]]:
    """/metrics of each worker: new connections land on either worker (SO_REUSEPORT hash),
    so ask until ``want`` distinct ``worker`` labels answered."""
    host, _, port = env.http.removeprefix("http://").rpartition(":")
    out: dict[str, dict[str, float]] = {}
    for _ in range(60):
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            metric, _, label = name.partition("{")
            worker = label.removeprefix('worker="').removesuffix('"}')
            out.setdefault(worker, {})[metric] = float(value)
        if len(out) >= want:
            break
    return out


PUSHES = "mbmsec_bmsc_push_sent_total"
KEYS = "mbmsec_bmsc_compact_keys_total"


def which_worker(env: Env, ue: CompactUe, sock: socket.socket) -> str:
    """The worker the kernel hands datagrams from ``sock`` to (whose answer count grows)."""
    before = worker_metrics(env)
    ask(ue, env, sock)
    after = worker_metrics(env)
    (w,) = [w for w in after if after[w].get(KEYS, 0) > before.get(w, {}).get(KEYS, 0)]
    return w


def compact_ues(env: Env, n: int) -> list[CompactUe]:
    ues = []
    for i in range(n):
        boot = bootstrap(env.bsf_url, USERS[i], k_of(i), OPC, REALM)
        key = boot.naf_key(FQDN)  # GBA_ME: MRK = MUK = Ks_NAF
        ues.append(CompactUe(boot.btid, FQDN, key, key))
    return ues


def get_keys(env: Env, ues: list[CompactUe], socks: list[socket.socket]) -> dict[int, Msk]:
    """Compact requests from every socket in turn; all answers carry the same MSKs."""
    msks: dict[int, Msk] = {}
    for n, sock in enumerate(socks):
        for m in ask(ues[n % len(ues)], env, sock):
            assert msks.setdefault(m.msk_id, m).key == m.key
    return msks


def udp_sockets(n: int) -> list[socket.socket]:
    out = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        out.append(s)
    return out


@pytest.mark.timeout(180)
def test_two_workers_serve_one_port_with_one_leader(env: Env) -> None:
    bmsc = env.bmsc
    assert len(bmsc.logs("worker ready")) == 2 and not bmsc.logs("worker failed")
    assert len({r["pid"] for r in bmsc.logs("worker started")}) == 2
    ues = compact_ues(env, 3)
    socks = udp_sockets(3 * SOURCES_PER_UE)
    group = open_group_socket(GROUP, env.group_port)
    try:
        # 1. compact requests from 24 source ports
        msks = get_keys(env, ues, socks)
        assert len(msks) == 1
        # a source port per worker (mapped now: after the push, time runs against push_timeout)
        by_worker: dict[str, socket.socket] = {}
        for s in socks:
            by_worker.setdefault(which_worker(env, ues[0], s), s)
            if len(by_worker) == 2:
                break
        assert set(by_worker) == {"1", "2"}
        # 2. 3GPP: register through HTTP (either worker); the verification may reach the
        # worker that did not push, which confirms it: no retry follows
        boot = bootstrap(env.bsf_url, USERS[3], k_of(3), OPC, REALM)
        muk = boot.naf_key(FQDN)
        (push_sock,) = udp_sockets(1)
        ans = keymanagement(
            env.http,
            "register",
            register_body([TV], push_sock.getsockname()[1]),
            "application/mbms-register+xml",
            btid=boot.btid,
            mrk=muk,
            bmsc_fqdn=FQDN,
        )
        assert ans.status == 200 and ans.rspauth_ok and item_statuses(ans.body) == [(TV, 200)]
        rx = PushReceiver(boot.btid, FQDN, muk)
        pushes = []
        end = time.monotonic() + 5
        while not pushes and time.monotonic() < end:
            ready, _, _ = select.select([push_sock], [], [], 0.5)
            if ready:
                try:
                    pushes.append(rx.take_push(push_sock.recv(4096)))
                except ProtocolError:
                    continue
        assert pushes, "no MSK push"
        msg, pushed = pushes[0]
        assert [(m.msk_id, m.key) for m in pushed] == [(m.msk_id, m.key) for m in msks.values()]
        # the worker that pushed, and a source port the kernel maps to the other one
        pusher = [w for w, m in worker_metrics(env).items() if m.get(PUSHES, 0) > 0]
        assert len(pusher) == 1, pusher
        (other,) = set(by_worker) - set(pusher)
        ver = build_verification(msg, muk=muk, bmsc_fqdn=FQDN, btid=boot.btid)
        by_worker[other].sendto(ver, env.udp)
        ready, _, _ = select.select([push_sock], [], [], 2.0)  # push_timeout is 1 s
        assert not ready, "the push was resent although its verification arrived"
        push_sock.close()
        metrics = worker_metrics(env)
        assert metrics[pusher[0]].get("mbmsec_bmsc_push_confirmed_elsewhere_total") == 1
        assert metrics[pusher[0]].get("mbmsec_bmsc_push_retry_total", 0) == 0
        (confirmer,) = set(metrics) - set(pusher)
        assert metrics[confirmer].get("mbmsec_bmsc_verification_ok_total") == 1
        # 3. MTK messages from one leader
        mtks = MtkLog({i: m.key for i, m in msks.items()})
        for m in msks.values():
            mtks.ue.install(m)
        mtks.collect(group, 3.0)
        assert len(mtks.seen) >= 6 and mtks.accepted
        mtks.check()
        # per-worker /metrics: both answered compact requests, one leader sent every MTK
        metrics = worker_metrics(env)
        assert set(metrics) == {"1", "2"}, metrics
        for w, m in metrics.items():
            assert m.get(KEYS, 0) > 0, (w, m)
        assert sorted(m["mbmsec_bmsc_leader"] for m in metrics.values()) == [0, 1]
        senders = [w for w, m in metrics.items() if m.get("mbmsec_bmsc_mtk_sent_total", 0) > 0]
        assert len(senders) == 1 and metrics[senders[0]]["mbmsec_bmsc_leader"] == 1
        assert len(bmsc.logs("leader acquired")) == 1
    finally:
        for s in socks:
            s.close()
        group.close()
    # 4. SIGTERM: both workers log their stop line, the parent exits 0
    assert bmsc.stop() == 0
    stats = _stop_stats(env)
    assert set(stats) == {"1", "2"} and all(s["compact.keys"] > 0 for s in stats.values())
    assert bmsc.logs("workers stopped")[-1]["code"] == 0


@pytest.mark.timeout(180)
def test_leader_killed_another_worker_takes_over(env: Env) -> None:
    bmsc = env.bmsc
    ues = compact_ues(env, 1)
    socks = udp_sockets(4)
    group = open_group_socket(GROUP, env.group_port)
    try:
        msks = get_keys(env, ues, socks)
        mtks = MtkLog({i: m.key for i, m in msks.items()})
        for m in msks.values():
            mtks.ue.install(m)
        mtks.collect(group, 2.0)
        assert mtks.seen
        (first,) = bmsc.logs("leader acquired")
        leader_pid, leader_worker = int(str(first["pid"])), first["worker"]
        killed_at = time.monotonic()
        os.kill(leader_pid, signal.SIGKILL)  # no lease release, no stop line
        mtks.collect(group, 4 * LEASE)
        late = [s for s in mtks.seen if s[0] > killed_at + 0.05]
        assert late, "no MTK messages after the leader died"
        assert late[0][0] - killed_at <= LEASE + LEASE / 3 + 1.0  # the lease bound
        assert any(a[0] > killed_at for a in mtks.accepted), "the UE took no MTK after failover"
        mtks.check()  # COUNTERs kept increasing across the two leaders, one key per MTK ID
        new = bmsc.logs("leader acquired")
        assert len(new) == 2 and int(str(new[1]["pid"])) != leader_pid
        # the parent saw the death and started that worker again (after its backoff)
        bmsc.wait_line(
            lambda s: is_log("worker ready")(s) and json.loads(s)["worker"] == leader_worker,  # type: ignore[operator]
            15,
            "err",
        )
        assert any(r["pid"] == leader_pid for r in bmsc.logs("worker exited"))
        assert bmsc.logs("worker restart scheduled")
        # keys are still served after the restart, from both workers' ports
        assert get_keys(env, ues, socks).keys() <= set(msks) | {max(msks) + 1}
    finally:
        for s in socks:
            s.close()
        group.close()
    assert bmsc.stop() == 0
    assert set(_stop_stats(env)) == {"1", "2"}


@pytest.mark.timeout(180)
def test_fanout_reaches_ues_answered_by_a_follower(fanout_env: Env) -> None:
    """Unicast fan-out: the leader sends MTK messages to UEs whose compact requests another
    worker answered (leases shared through the store in batches)."""
    env = fanout_env
    ues = compact_ues(env, 1)
    socks = udp_sockets(12)
    try:
        msks = get_keys(env, ues, socks[:1])
        metrics = worker_metrics(env)
        (leader,) = [w for w, m in metrics.items() if m.get("mbmsec_bmsc_leader") == 1]
        follower_socks = [s for s in socks[1:] if which_worker(env, ues[0], s) != leader][:2]
        assert follower_socks, "no source port mapped to the follower"
        for s in socks:  # drain what arrived during the mapping
            while select.select([s], [], [], 0)[0]:
                s.recv(4096)
        mtks = MtkLog({i: m.key for i, m in msks.items()})
        for m in msks.values():
            mtks.ue.install(m)
        mtks.collect(follower_socks[0], 3.0)  # MTK copies to the follower-answered UE
        assert len(mtks.seen) >= 3 and mtks.accepted
        mtks.check()
    finally:
        for s in socks:
            s.close()
    assert env.bmsc.stop() == 0
