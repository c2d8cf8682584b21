"""``mbmsec bsf --workers N``: N BSF processes on the same listen ports (SO_REUSEPORT).

The kernel spreads incoming connections over the workers. They share the store named by the
config (SQLite file or Redis), pending challenges included (see
:meth:`~mbmsec.net.http_bsf.BsfServerConfig.shared_challenges`), so the ``401`` of one worker
can be answered at another and no SQN is issued twice.

The parent resolves port 0 to one free port first (it holds an SO_REUSEPORT socket bound to
it, never listening, until every worker listens), starts the workers (``spawn``), waits until
each reports its URLs or an error, prints the banner once, and forwards SIGTERM/SIGINT. A
worker that dies stops the others; the exit status is then 1.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from types import FrameType

from ..errors import ConfigError
from ..logs import setup_json_logging
from .http_bsf import BsfServerConfig, run_bsf

__all__ = ["run_bsf_workers"]

log = logging.getLogger("mbmsec.net.bsf")

START_TIMEOUT = 30.0  # seconds for every worker to report
STOP_TIMEOUT = 10.0  # seconds for workers to exit after SIGTERM


@contextlib.contextmanager
def _reserved_ports(listen: tuple[tuple[str, int], ...]) -> Iterator[tuple[tuple[str, int], ...]]:
    """Replace each port 0 by a free port, held by a bound (not listening) SO_REUSEPORT socket
    until the block ends, so that every worker binds the same one."""
    held: list[socket.socket] = []
    out = []
    try:
        for host, port in listen:
            if port == 0:
                try:
                    info = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)[0]
                    s = socket.socket(info[0], socket.SOCK_STREAM)
                    held.append(s)
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                    s.bind(info[4])
                except OSError as exc:
                    raise ConfigError(f"cannot listen on {host}:0: {exc.strerror}") from None
                port = int(s.getsockname()[1])
            out.append((host, port))
        yield tuple(out)
    finally:
        for s in held:
            s.close()


def _worker(cfg: BsfServerConfig, index: int, reports: multiprocessing.Queue[object]) -> None:
    """One worker process: run the BSF with SO_REUSEPORT; report URLs or the error line."""
    import asyncio

    setup_json_logging(cfg.log_level.upper())

    def ready(urls: list[str]) -> None:
        reports.put((index, "ready", urls))

    try:
        asyncio.run(run_bsf(cfg, ready=ready, reuse_port=True))
    except ConfigError as exc:
        reports.put((index, "error", str(exc)))
        raise SystemExit(2) from None


def run_bsf_workers(
    cfg: BsfServerConfig, *, ready: Callable[[list[str]], None] | None = None
) -> int:
    """Run ``cfg.workers`` BSF processes until SIGTERM/SIGINT; return the exit status.

    ``ready`` gets the URLs once every worker listens. Raises ConfigError (one line) when a
    worker cannot start (port in use, store unreadable); the others are stopped first.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers needs SO_REUSEPORT, which this system lacks")
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    procs: list[multiprocessing.process.BaseProcess] = []
    try:
        with _reserved_ports(cfg.listen) as listen:
            wcfg = replace(cfg, listen=listen)
            reports: multiprocessing.Queue[object] = ctx.Queue()
            for i in range(cfg.workers):
                p = ctx.Process(target=_worker, args=(wcfg, i, reports), name=f"bsf-worker-{i}")
                p.start()
                procs.append(p)
            urls = _wait_ready(procs, reports, stop)
        if urls is None:  # stopped by a signal while starting
            return 0
        log.info("bsf workers listening", extra={"urls": " ".join(urls), "workers": len(procs)})
        if ready is not None:
            ready(urls)
        while not stop.is_set():
            if any(not p.is_alive() for p in procs):
                dead = [p.name for p in procs if not p.is_alive()]
                log.error("bsf worker exited", extra={"worker": dead[0]})
                return 1
            stop.wait(0.2)
        log.info("bsf workers stopping")
        return 0
    finally:
        _stop_all(procs)
        for s, h in old.items():
            signal.signal(s, h)


def _wait_ready(
    procs: list[multiprocessing.process.BaseProcess],
    reports: multiprocessing.Queue[object],
    stop: threading.Event,
) -> list[str] | None:
    """URLs of the first worker once all listen; None when stopped; ConfigError on failure."""
    import time

    pending = set(range(len(procs)))
    urls: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    while pending:
        if stop.is_set():
            return None
        try:
            item = reports.get(timeout=0.1)
        except queue.Empty:
            if any(not procs[i].is_alive() for i in pending):
                raise ConfigError("a BSF worker exited while starting") from None
            if time.monotonic() > deadline:
                raise ConfigError("BSF workers did not start in time") from None
            continue
        assert isinstance(item, tuple)
        index, what, value = item
        if what == "error":
            raise ConfigError(str(value))
        pending.discard(int(index))
        if not urls:
            urls = [str(u) for u in value]
    return urls


def _stop_all(procs: list[multiprocessing.process.BaseProcess]) -> None:
    """SIGTERM every live worker, wait, SIGKILL stragglers."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(STOP_TIMEOUT)
        if p.is_alive():
            p.kill()
            p.join()
