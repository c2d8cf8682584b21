"""``mbmsec bmsc --workers N``: N BM-SC processes on one UDP port and one HTTP port.

The parent (:func:`supervise`) serves nothing itself. It

1. checks the config (a shared store is required: a SQLite file or ``redis://``), opens the
   store once (so the schema exists before N processes race to create it), resolves port 0 to
   a concrete port by binding with ``SO_REUSEPORT`` and closing again, and settles multicast
   ``auto`` once for all workers;
2. spawns N workers (``multiprocessing`` *spawn*: fresh interpreters, nothing inherited but the
   pickled config), each running :func:`mbmsec.bmsc.cli.run_bmsc` with ``worker=k``: a UDP
   socket and HTTP listeners with ``SO_REUSEPORT`` on the same ports, the shared store, and one
   HTTP digest nonce secret made by the parent (a challenge from worker A is answered at B);
3. prints ``bmsc udp HOST:PORT http URL...`` once every worker is listening;
4. supervises: a worker that dies is started again after a backoff (0.5 s doubling to 10 s;
   reset once it ran 30 s); five failed starts in a row (dead before listening) stop
   everything with exit status 1;
5. on SIGTERM / SIGINT forwards SIGTERM to every worker, waits ``stop_timeout`` for them
   (then SIGKILL) and returns 0 when each one stopped cleanly. A worker whose parent vanished
   (``kill -9`` of the supervisor) stops by itself within a second.

Every lifecycle event is one JSON log line (logger ``mbmsec.net.workers``): ``workers
starting``, ``worker started``, ``worker ready``, ``worker exited``, ``worker restart
scheduled``, ``workers stopping``, ``worker killed``, ``workers stopped``.

Leadership among the workers comes from the store's lease (:mod:`mbmsec.bmsc.leadership`);
the parent has no part in it, so the same works for workers on several hosts over Redis.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Final

import redis

from ..bmsc.cli import BmscServerConfig, is_redis_url, open_bmsc_store
from ..errors import ConfigError, MbmsecError

__all__ = ["SupervisorPolicy", "resolve_ports", "supervise"]

log = logging.getLogger("mbmsec.net.workers")

Addr = tuple[str, int]
NONCE_SECRET_LEN: Final = 32
PARENT_POLL: Final = 1.0


@dataclass(frozen=True)
class SupervisorPolicy:
    """Restart and stop limits of :func:`supervise`."""

    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    stable_after: float = 30.0
    max_start_failures: int = 5
    stop_timeout: float = 15.0


def _bind_probe(kind: socket.SocketKind, addr: Addr) -> int:
    infos = socket.getaddrinfo(addr[0], addr[1], type=kind)
    family, _, _, _, sockaddr = infos[0]
    if kind == socket.SOCK_DGRAM:
        family, sockaddr = socket.AF_INET, addr  # the MIKEY socket is IPv4 (BmscServer)
    with socket.socket(family, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(sockaddr)
        return int(s.getsockname()[1])


def resolve_ports(udp: Addr, http: tuple[Addr, ...]) -> tuple[Addr, tuple[Addr, ...]]:
    """Bind each address once with SO_REUSEPORT (port 0 becomes a concrete free port; a port
    held by a process outside the group fails with OSError) and close again."""
    u = (udp[0], _bind_probe(socket.SOCK_DGRAM, udp))
    h = tuple((host, _bind_probe(socket.SOCK_STREAM, (host, port))) for host, port in http)
    return u, h


def _check_store(cfg: BmscServerConfig) -> None:
    """Open the store once (SQLite: the schema exists before N processes race to create it;
    Redis: the server answers). Raises ConfigError."""
    store = open_bmsc_store(cfg)
    try:
        store.services()
    except (OSError, sqlite3.Error, redis.RedisError) as exc:
        raise ConfigError(f"BM-SC store unusable: {type(exc).__name__}: {exc}") from None
    finally:
        store.close()


def _watch_parent(parent: int) -> None:
    """Worker thread: when the supervisor is gone (killed with -9), stop this worker cleanly
    with SIGTERM to itself instead of serving on as an orphan."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL)
    log.warning("supervisor gone: stopping", extra={"pid": os.getpid()})
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(
    cfg: BmscServerConfig, index: int, secret: bytes, conn: Connection, log_level: str
) -> None:
    """Worker process body: run the BM-SC on the shared ports; report readiness on ``conn``."""
    import asyncio
    import sys

    from ..bmsc.cli import run_bmsc
    from ..logs import setup_json_logging

    setup_json_logging(log_level)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    def ready(udp: str, urls: list[str]) -> None:
        conn.send((udp, urls))

    try:
        code = asyncio.run(run_bmsc(cfg, ready=ready, worker=index, nonce_secret=secret))
    except (OSError, sqlite3.Error, redis.RedisError, MbmsecError) as exc:
        log.error(
            "worker failed", extra={"worker": str(index), "error": f"{type(exc).__name__}: {exc}"}
        )
        code = 2
    finally:
        conn.close()
    sys.exit(code)


@dataclass
class _Slot:
    index: int
    proc: BaseProcess | None = None
    conn: Connection | None = None
    started: float = 0.0
    ready: bool = False
    failures: int = 0  # consecutive deaths before running stable_after
    restart_at: float | None = None


class _Supervisor:
    def __init__(
        self,
        cfg: BmscServerConfig,
        ready: Callable[[str, list[str]], None] | None,
        log_level: str,
        policy: SupervisorPolicy,
    ) -> None:
        self.cfg = cfg
        self.ready_cb = ready
        self.log_level = log_level
        self.policy = policy
        self.ctx = multiprocessing.get_context("spawn")
        self.secret = os.urandom(NONCE_SECRET_LEN)
        self.slots = [_Slot(i) for i in range(1, cfg.workers + 1)]
        self.stop_signal: int | None = None
        self.announced = False
        self.address: tuple[str, list[str]] | None = None
        self.failed = False

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum

    def _start(self, slot: _Slot) -> None:
        reader, writer = self.ctx.Pipe(duplex=False)
        proc = self.ctx.Process(
            target=_worker_main,
            args=(self.cfg, slot.index, self.secret, writer, self.log_level),
            name=f"bmsc-worker-{slot.index}",
        )
        proc.start()
        writer.close()
        slot.proc, slot.conn = proc, reader
        slot.started, slot.ready, slot.restart_at = time.monotonic(), False, None
        log.info("worker started", extra={"worker": str(slot.index), "pid": proc.pid})

    def _on_ready(self, slot: _Slot) -> None:
        assert slot.conn is not None
        try:
            udp, urls = slot.conn.recv()
        except (EOFError, OSError):
            slot.conn.close()
            slot.conn = None
            return
        slot.ready = True
        pid = slot.proc.pid if slot.proc is not None else None
        log.info("worker ready", extra={"worker": str(slot.index), "pid": pid, "udp": udp})
        if self.address is None:
            self.address = (udp, list(urls))
        if not self.announced and all(s.ready for s in self.slots):
            self.announced = True
            log.info(
                "workers ready",
                extra={"workers": len(self.slots), "udp": udp, "urls": " ".join(urls)},
            )
            if self.ready_cb is not None:
                self.ready_cb(*self.address)

    def _on_exit(self, slot: _Slot) -> None:
        assert slot.proc is not None
        slot.proc.join()
        code, pid = slot.proc.exitcode, slot.proc.pid
        ran = time.monotonic() - slot.started
        if slot.conn is not None:
            slot.conn.close()
        slot.proc, slot.conn = None, None
        log.log(
            logging.INFO if self.stop_signal is not None else logging.WARNING,
            "worker exited",
            extra={"worker": str(slot.index), "pid": pid, "code": code, "ran": round(ran, 3)},
        )
        if self.stop_signal is not None:
            return
        if ran >= self.policy.stable_after:
            slot.failures = 0
        if not slot.ready:
            slot.failures += 1
            if slot.failures >= self.policy.max_start_failures:
                log.error(
                    "worker cannot start: giving up",
                    extra={"worker": str(slot.index), "failures": slot.failures},
                )
                self.failed = True
                return
        else:
            slot.failures = min(slot.failures + 1, 16)
        delay = min(
            self.policy.backoff_max, self.policy.backoff_initial * 2 ** max(slot.failures - 1, 0)
        )
        slot.restart_at = time.monotonic() + delay
        log.info("worker restart scheduled", extra={"worker": str(slot.index), "delay": delay})

    def _stop_all(self) -> int:
        sig = self.stop_signal
        log.info(
            "workers stopping",
            extra={"signal": signal.Signals(sig).name if sig else "", "failed": self.failed},
        )
        live = [s for s in self.slots if s.proc is not None and s.proc.is_alive()]
        for s in live:
            assert s.proc is not None and s.proc.pid is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(s.proc.pid, signal.SIGTERM)
        end = time.monotonic() + self.policy.stop_timeout
        clean = True
        for s in self.slots:
            if s.proc is None:
                continue
            s.proc.join(max(0.0, end - time.monotonic()))
            if s.proc.is_alive():
                log.error("worker killed", extra={"worker": str(s.index), "pid": s.proc.pid})
                s.proc.kill()
                s.proc.join()
                clean = False
            elif s.proc.exitcode != 0:
                clean = False
            log.info(
                "worker exited",
                extra={"worker": str(s.index), "pid": s.proc.pid, "code": s.proc.exitcode},
            )
            if s.conn is not None:
                s.conn.close()
            s.proc, s.conn = None, None
        code = 0 if clean and not self.failed else 1
        log.info("workers stopped", extra={"code": code})
        return code

    def run(self) -> int:
        rfd, wfd = socket.socketpair()
        rfd.setblocking(False)
        wfd.setblocking(False)
        old_wakeup = signal.set_wakeup_fd(wfd.fileno())
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in self.slots:
                self._start(slot)
            while self.stop_signal is None and not self.failed:
                waits: list[object] = [rfd]
                now = time.monotonic()
                timeout: float | None = None
                for slot in self.slots:
                    if slot.proc is not None:
                        waits.append(slot.proc.sentinel)
                        if slot.conn is not None:
                            waits.append(slot.conn)
                    elif slot.restart_at is not None:
                        left = max(0.0, slot.restart_at - now)
                        timeout = left if timeout is None else min(timeout, left)
                done = wait(waits, timeout)  # type: ignore[arg-type]
                if rfd in done:
                    with contextlib.suppress(BlockingIOError):
                        rfd.recv(512)
                if self.stop_signal is not None:
                    break
                for slot in self.slots:
                    if slot.conn is not None and slot.conn in done:
                        self._on_ready(slot)
                    if slot.proc is not None and slot.proc.sentinel in done:
                        self._on_exit(slot)
                now = time.monotonic()
                for slot in self.slots:
                    if slot.proc is None and slot.restart_at is not None and slot.restart_at <= now:
                        self._start(slot)
            return self._stop_all()
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_wakeup)
            rfd.close()
            wfd.close()


def supervise(
    cfg: BmscServerConfig,
    *,
    ready: Callable[[str, list[str]], None] | None = None,
    log_level: str = "INFO",
    policy: SupervisorPolicy | None = None,
) -> int:
    """Run ``cfg.workers`` BM-SC worker processes until SIGTERM/SIGINT (see the module doc).

    ``ready(udp, urls)`` once all listen. Returns 0 after a clean stop, 1 when a worker could
    not be started or did not stop cleanly. Raises ConfigError (no shared store) and OSError
    (a port cannot be bound) before anything starts."""
    if cfg.workers < 2:
        raise ConfigError("supervise() is for two workers or more")
    if not cfg.store:
        raise ConfigError("bmsc.workers > 1 needs a shared store (SQLite file or redis://)")
    if cfg.leader == "static":
        raise ConfigError("bmsc.leader = static with several workers: every one would lead")
    _check_store(cfg)
    udp, http = resolve_ports(cfg.udp, cfg.http)
    multicast = cfg.multicast
    if multicast == "auto":
        from .multicast import choose_mode

        multicast = "on" if choose_mode() else "off"
    if multicast == "off":
        log.info("unicast fan-out: workers share fan-out leases through the store")
    cfg = replace(cfg, udp=udp, http=http, multicast=multicast)
    log.info(
        "workers starting",
        extra={
            "workers": cfg.workers,
            "udp": f"{udp[0]}:{udp[1]}",
            "http": " ".join(f"{h}:{p}" for h, p in http),
            "store": "redis" if is_redis_url(cfg.store) else "sqlite",
            "pid": os.getpid(),
        },
    )
    return _Supervisor(cfg, ready, log_level, policy or SupervisorPolicy()).run()
