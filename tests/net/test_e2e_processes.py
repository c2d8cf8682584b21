"""End to end over real loopback sockets, every role its own process.

``mbmsec bsf`` (HSS + BSF over SQLite), ``mbmsec bmsc`` and four ``mbmsec ue run`` (two compact,
two 3GPP) run as separate processes with TOML configs. Each UE must bootstrap, activate (compact
key response / 3GPP registration + MSK push with verification), receive MTKs on the multicast
group (or by unicast fan-out where the kernel refuses loopback multicast) and follow one MSK
rotation. Then every process stops on SIGTERM with exit status 0.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

IMPIS = [f"ue{i}@e2e.mbmsec.test" for i in range(4)]
PROFILES = ["compact", "compact", "3gpp", "3gpp"]
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
TOKEN = "e2e-zn-token-0123456789"
GROUP = "239.77.0.1"
DEADLINE = 60.0


def k_of(i: int) -> str:
    return f"{0x465B5CE8B199B49FAA5F0A2EE238A600 + i:032x}"


def mbmsec(*args: str) -> list[str]:
    return [sys.executable, "-m", "mbmsec.cli", *args]


def free_udp_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, bufsize=1
    )


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
    err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"no {prefix!r} line from {proc.args!r}: {err[-2000:]}")


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return -9


@pytest.mark.timeout(180)
def test_bsf_bmsc_and_ues_as_processes(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    db = tmp_path / "gba.db"
    for i, impi in enumerate(IMPIS):
        subprocess.run(
            mbmsec("hss", "add", "--db", str(db), impi, "--k", k_of(i), "--opc", OPC),
            check=True,
            env=env,
            capture_output=True,
        )
    (tmp_path / "bsf.toml").write_text(
        f"""[bsf]
domain = "bsf.e2e.mbmsec.test"
listen = ["127.0.0.1:0"]
store = "{db}"
[[bsf.naf]]
name = "bmsc"
token = "{TOKEN}"
fqdns = ["bmsc.e2e.mbmsec.test"]
"""
    )
    group_port = free_udp_port()
    (tmp_path / "bmsc.toml").write_text(
        f"""[bmsc]
fqdn = "bmsc.e2e.mbmsec.test"
udp = "127.0.0.1:0"
http = ["127.0.0.1:0"]
store = "{tmp_path / "bmsc.db"}"
push_timeout = 1.0
[bmsc.zn]
url = "BSF_URL"
user = "bmsc"
token = "{TOKEN}"
[[bmsc.service]]
id = "urn:mbmsec:e2e:tv"
key_domain = "001-01"
key_group = 7
group = "{GROUP}:{group_port}"
msk_lifetime = 8.0
mtk_lifetime = 2.0
msk_lead = 4.0
mtk_lead = 0.5
announce_interval = 0.5
start = 0.0
"""
    )
    procs: list[subprocess.Popen[str]] = []
    try:
        bsf = start(mbmsec("bsf", "--config", str(tmp_path / "bsf.toml")), env)
        procs.append(bsf)
        bsf_url = first_line(bsf, "bsf listening on ").split()[3]
        cfg = (tmp_path / "bmsc.toml").read_text().replace("BSF_URL", bsf_url)
        (tmp_path / "bmsc.toml").write_text(cfg)
        bmsc = start(mbmsec("bmsc", "--config", str(tmp_path / "bmsc.toml")), env)
        procs.append(bmsc)
        _, _, udp, _, http = first_line(bmsc, "bmsc udp ").split()
        ues = []
        for i, (impi, profile) in enumerate(zip(IMPIS, PROFILES, strict=True)):
            path = tmp_path / f"ue{i}.toml"
            path.write_text(
                f"""[ue]
impi = "{impi}"
k = "{k_of(i)}"
opc = "{OPC}"
bsf = "{bsf_url}"
realm = "bsf.e2e.mbmsec.test"
bmsc_fqdn = "bmsc.e2e.mbmsec.test"
bmsc_udp = "{udp}"
bmsc_http = "{http}"
store = "{tmp_path / f"ue{i}.db"}"
[ue.retry]
spread = 0.3
first_timeout = 0.5
max_interval = 2.0
lead_time = 2.0
[[ue.service]]
id = "urn:mbmsec:e2e:tv"
group = "{GROUP}:{group_port}"
mtk_period = 2.0
"""
            )
            ue = start(mbmsec("ue", "run", "--config", str(path), "--profile", profile), env)
            procs.append(ue)
            ues.append(ue)
        events: dict[int, list[dict[str, object]]] = {i: [] for i in range(len(ues))}

        def done(i: int) -> bool:
            msks = {e["msk_id"] for e in events[i] if e["event"] == "msk-installed"}
            mtk_msks = {e["msk_id"] for e in events[i] if e["event"] == "mtk-installed"}
            return len(msks) >= 2 and len(mtk_msks) >= 2  # one MSK rotation, MTKs of both

        end = time.monotonic() + DEADLINE
        streams = {ue.stdout: i for i, ue in enumerate(ues) if ue.stdout is not None}
        while time.monotonic() < end and not all(done(i) for i in events):
            ready, _, _ = select.select(list(streams), [], [], 0.5)
            for s in ready:
                line = s.readline()  # type: ignore[attr-defined]
                if line:
                    events[streams[s]].append(json.loads(line))
            for p in procs:
                assert p.poll() is None, f"{p.args!r} died: {p.stderr.read() if p.stderr else ''}"
        for i in events:
            names = [e["event"] for e in events[i]]
            assert done(i), f"UE {i} ({PROFILES[i]}) did not finish: {names}"
            assert "bootstrapped" in names
            if PROFILES[i] == "3gpp":
                assert "registered" in names
            vias = {e.get("via") for e in events[i] if e["event"] == "msk-installed"}
            assert vias <= {"compact", "push"} and vias
            for e in events[i]:  # key IDs only, never key material
                assert set(e) & {"key", "msk_key", "mtk_key", "salt"} == set()
    finally:
        codes = [stop(p) for p in reversed(procs)]
        for p in procs:
            for s in (p.stdout, p.stderr):
                if s is not None:
                    s.close()
    assert codes == [0] * len(procs), codes
