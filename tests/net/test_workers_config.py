"""``mbmsec bmsc --workers``: config keys, leadership mode, and the refusals that happen before
any worker starts (no shared store, store unreachable, port held by a foreign socket, bad
counts), each one line with exit status 2; port 0 resolution for the whole worker group; a
worker that can never start makes the supervisor give up with exit status 1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mbmsec.bmsc.cli import load_bmsc_config, open_bmsc_store, uses_lease
from mbmsec.errors import ConfigError
from mbmsec.net.workers import resolve_ports
from mbmsec.store.bmsc_memory import MemoryBmscStore
from mbmsec.store.bmsc_sqlite import SqliteBmscStore

BASE = """
[bmsc.zn]
url = "http://127.0.0.1:1"
user = "bmsc"
token = "t"
[[bmsc.service]]
id = "urn:tv"
"""


def cfg(extra: str) -> str:
    return "[bmsc]\n" + extra + "\n" + BASE


def test_worker_keys_and_leadership_mode(tmp_path: Path) -> None:
    c = load_bmsc_config(BASE)
    assert (c.workers, c.leader, c.leader_lease) == (1, "auto", 5.0)
    assert not uses_lease(c)  # one process, no shared store: static leader
    assert isinstance(open_bmsc_store(c), MemoryBmscStore)
    c = load_bmsc_config(cfg(f'workers = 4\nleader_lease = 2\nstore = "{tmp_path / "b.db"}"'))
    assert (c.workers, c.leader_lease) == (4, 2.0) and uses_lease(c)
    s = open_bmsc_store(c)
    assert isinstance(s, SqliteBmscStore)
    s.close()
    c = load_bmsc_config(cfg('store = "redis://127.0.0.1:6399/0"\nredis_prefix = "x:"'))
    assert c.workers == 1 and uses_lease(c)  # Redis: other processes may share it
    assert not uses_lease(load_bmsc_config(cfg('workers = 3\nleader = "static"')))
    assert uses_lease(load_bmsc_config(cfg('leader = "lease"')))
    for bad in ("workers = 0", "workers = 1000", 'workers = "2"', 'leader = "me"'):
        with pytest.raises(ConfigError):
            load_bmsc_config(cfg(bad))
    with pytest.raises(ConfigError):
        load_bmsc_config(cfg("leader_lease = 0"))


def test_port_zero_becomes_one_port_for_all_workers() -> None:
    udp, http = resolve_ports(("127.0.0.1", 0), (("127.0.0.1", 0),))
    assert udp[1] > 0 and http[0][1] > 0
    # the resolved ports are free for a SO_REUSEPORT group: two sockets bind the same one
    socks = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(udp)
        socks.append(s)
    for s in socks:
        s.close()


def run_cli(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "b.toml").write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "mbmsec.cli", "bmsc", "--config", str(tmp_path / "b.toml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(120)
def test_refusals_before_any_worker_starts(tmp_path: Path) -> None:
    r = run_cli(tmp_path, BASE, "--workers", "2")  # memory store: nothing to share
    assert r.returncode == 2 and "shared store" in r.stderr and "worker started" not in r.stderr
    r = run_cli(
        tmp_path, cfg(f'store = "{tmp_path / "b.db"}"\nleader = "static"'), "--workers", "2"
    )
    assert r.returncode == 2 and "every one would lead" in r.stderr
    r = run_cli(tmp_path, BASE, "--workers", "0")
    assert r.returncode == 2 and "workers" in r.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:  # no SO_REUSEPORT
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        text = cfg(f'udp = "127.0.0.1:{port}"\nstore = "{tmp_path / "b.db"}"\nworkers = 2')
        r = run_cli(tmp_path, text)
    assert r.returncode == 2 and "in use" in r.stderr and "worker started" not in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 2

    r = run_cli(tmp_path, cfg('store = "redis://127.0.0.1:1/0"\nworkers = 2'))  # nobody there
    assert r.returncode == 2 and "store unusable" in r.stderr and "worker started" not in r.stderr


@pytest.mark.timeout(120)
def test_supervisor_gives_up_on_a_worker_that_cannot_start(tmp_path: Path) -> None:
    # the parent cannot see it: each worker fails when it sets IP_MULTICAST_IF to an address
    # this host does not have, exits, is restarted with backoff (0.5, 1, 2, 4 s), then given up
    text = cfg(
        f'store = "{tmp_path / "b.db"}"\nworkers = 2\nudp = "127.0.0.1:0"\n'
        'http = ["127.0.0.1:0"]\nmulticast = "on"\nmulticast_interface = "192.0.2.1"'
    )
    r = run_cli(tmp_path, text)
    assert r.returncode == 1, r.stderr[-2000:]
    events = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    msgs = [e["msg"] for e in events]
    assert "worker cannot start: giving up" in msgs and "workers stopped" in msgs
    assert msgs.count("worker failed") >= 5 and "worker ready" not in msgs
    delays = [e["delay"] for e in events if e["msg"] == "worker restart scheduled"]
    assert {0.5, 1.0, 2.0, 4.0} <= set(delays)
    assert events[-1]["msg"] == "workers stopped" and events[-1]["code"] == 1


def _udp_port_holders(port: int) -> set[int]:
    """PIDs with a UDP socket bound to ``port`` (from /proc/net/udp and /proc/PID/fd)."""
    inodes = set()
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port:
            inodes.add(fields[9])
    holders = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = [os.readlink(f) for f in fd_dir.iterdir()]
        except OSError:
            continue
        if any(link == f"socket:[{i}]" for link in links for i in inodes):
            holders.add(int(fd_dir.parent.name))
    return holders


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status  # a zombie no longer serves


def _start_workers(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str], int]:
    """``mbmsec bmsc --workers 2`` (no BSF needed until a request comes); its stderr lines
    are collected; returns the process, the lines and the UDP port once all listen."""
    (tmp_path / "b.toml").write_text(cfg(f'store = "{tmp_path / "b.db"}"\nhttp = ["127.0.0.1:0"]'))
    cmd = [sys.executable, "-m", "mbmsec.cli", "bmsc", "--config", str(tmp_path / "b.toml")]
    proc = subprocess.Popen(
        [*cmd, "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    err: list[str] = []
    threading.Thread(target=lambda: err.extend(proc.stderr or []), daemon=True).start()
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "bmsc udp HOST:PORT http URL"
    assert line.startswith("bmsc udp "), err
    return proc, err, int(line.split()[2].rpartition(":")[2])


def _pids(err: list[str], want: int = 2) -> list[int]:
    """The workers' PIDs from their "worker started" log lines; waits up to 10 s for ``want``
    of them (stderr is read by another thread, so lines may still be on their way)."""
    end = time.monotonic() + 10
    while True:
        recs = [json.loads(x) for x in list(err) if x.startswith("{")]
        pids = [int(r["pid"]) for r in recs if r["msg"] == "worker started"]
        if len(pids) >= want or time.monotonic() > end:
            return pids
        time.sleep(0.05)


@pytest.mark.timeout(60)
def test_sigint_stops_the_workers_with_status_0(tmp_path: Path) -> None:
    proc, err, _ = _start_workers(tmp_path)
    pids = _pids(err)
    assert len(pids) == 2
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    assert all(_gone(p) for p in pids)
    end = time.monotonic() + 10  # the stderr reader thread may still be catching up
    while True:
        msgs = [json.loads(x)["msg"] for x in list(err) if x.startswith("{")]
        if "workers stopped" in msgs or time.monotonic() > end:
            break
        time.sleep(0.05)
    assert msgs.count("bmsc stopping") == 2 and "workers stopped" in msgs


@pytest.mark.timeout(60)
def test_workers_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    proc, err, port = _start_workers(tmp_path)
    pids = _pids(err)
    assert len(pids) == 2
    proc.kill()  # kill -9: no signal reaches the workers
    proc.wait(timeout=10)
    end = time.monotonic() + 15
    while time.monotonic() < end and not all(_gone(p) for p in pids):
        time.sleep(0.1)
    assert all(_gone(p) for p in pids), "orphaned workers still run"
    # no process of ours holds the MIKEY port any more (another test may have taken the freed
    # ephemeral port since, so binding it ourselves would be a race, not a check)
    assert not _udp_port_holders(port) & set(pids)
