"""aiohttp adapter for the BSF (Ub + Zn on one listener), its TOML config and its runner.

:class:`BsfServer` turns each aiohttp request into a :class:`~mbmsec.httpmsg.HttpRequest`,
calls :meth:`mbmsec.gba.bsf.Bsf.handle` with the wall clock, and writes the response back. A
background task purges expired challenges and sessions. :func:`run_bsf` is ``mbmsec bsf``:
load the config, open the store (SQLite file or Redis URL), listen, print the URL, stop cleanly
on SIGTERM/SIGINT. ``workers > 1`` runs that many such processes on the same ports
(SO_REUSEPORT, see :mod:`mbmsec.net.bsf_workers`).

Config (TOML, every key optional)::

    [bsf]
    domain = "bsf.mbmsec.test"        # BSF FQDN: Digest realm and B-TID suffix
    listen = ["127.0.0.1:8080"]       # host:port, "[::1]:8080"; port 0 picks a free port
    store = "mbmsec-gba.db"           # SQLite file, created 0600 (default: $MBMSEC_GBA_DB),
                                      # or "redis://host:6379/0[?prefix=mbmsec:gba:]"
    key_lifetime = 86400              # seconds
    nonce_lifetime = 60
    max_pending = 10000               # outstanding challenges, in all
    max_pending_per_impi = 8          # outstanding challenges per IMPI
    challenges = "auto"               # "memory" (this process) or "store" (shared with other
                                      # BSF processes); auto: store for Redis or workers > 1
    workers = 1                       # processes sharing the listen ports (SO_REUSEPORT)
    gba_u_mac_star = true
    purge_interval = 60
    log_level = "info"

    [[bsf.naf]]                       # NAFs allowed on Zn
    name = "bmsc"                     # Basic user name
    token = "..."                     # Bearer token / Basic password
    fqdns = ["bmsc.mbmsec.test"]      # NAF FQDNs it may request keys for ("*": any)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import ConfigError
from ..gba.bsf import Bsf, BsfConfig, NafCredential
from ..gba.hss import Hss
from ..httpmsg import HttpRequest
from ..store.challenges import ChallengeStore, MemoryChallengeStore
from ..store.gba_open import (
    is_redis_url,
    open_challenge_store,
    open_session_store,
    open_subscriber_store,
)

__all__ = [
    "CHALLENGE_MODES",
    "DEFAULT_STORE",
    "BsfServer",
    "BsfServerConfig",
    "load_bsf_config",
    "open_bsf",
    "parse_listen",
    "run_bsf",
]

log = logging.getLogger("mbmsec.net.bsf")
http_log = logging.getLogger("mbmsec.net.bsf.http")  # aiohttp's own errors, see _HttpErrorFilter

DEFAULT_STORE = "mbmsec-gba.db"
MAX_BODY = 16384  # client_max_size: larger bodies get 413 before the BSF sees them
BODY_TIMEOUT = 10.0  # seconds to receive a request body once the headers are in
KEEPALIVE_TIMEOUT = 75.0  # idle keep-alive connections are closed after this
# aiohttp parser limits (its defaults, stated here): longer lines / more headers get 400
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 128
CHALLENGE_MODES = ("auto", "memory", "store")
MAX_WORKERS = 256


class _HttpErrorFilter(logging.Filter):
    """Turn aiohttp's server log records into one JSON-friendly line each, without traceback.

    aiohttp logs every request it refuses itself (bad request line, header too long, NUL in a
    header, ...) with ``logger.exception`` and a traceback whose text quotes the raw bytes, which
    may hold a NAF's Bearer token. Here such a record becomes ``http malformed request`` (INFO)
    with the peer, the status and the aiohttp error class, anything else that carries an
    exception ``http internal error`` (ERROR); other aiohttp debug chatter is dropped. The
    ``mbmsec`` level still applies.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else ""
        if isinstance(exc, HttpProcessingError):
            msg, level = "http malformed request", logging.INFO
            record.status = exc.code
        elif exc is not None:
            msg, level = "http internal error", logging.ERROR
        else:
            return False
        record.msg, record.args = msg, ()
        record.levelno, record.levelname = level, logging.getLevelName(level)
        record.peer = str(peer)
        record.error = type(exc).__name__
        record.exc_info, record.exc_text = None, None
        return logging.getLogger("mbmsec.net.bsf").isEnabledFor(level)


http_log.addFilter(_HttpErrorFilter())
http_log.setLevel(logging.DEBUG)  # let the filter see aiohttp's debug-level refusals


@dataclass(frozen=True)
class BsfServerConfig:
    """Everything ``mbmsec bsf`` needs: the sans-I/O BSF settings plus sockets and store."""

    bsf: BsfConfig = field(default_factory=BsfConfig)
    listen: tuple[tuple[str, int], ...] = (("127.0.0.1", 8080),)
    store: str = DEFAULT_STORE
    purge_interval: float = 60.0
    log_level: str = "info"
    generated_token: bool = False
    challenges: str = "auto"
    workers: int = 1

    def shared_challenges(self) -> bool:
        """True when pending challenges go to the store (another process may get the answer)."""
        if self.challenges == "auto":
            return is_redis_url(self.store) or self.workers > 1
        return self.challenges == "store"


def parse_listen(text: str) -> tuple[str, int]:
    """Parse ``host:port`` or ``[v6]:port``. Raises ConfigError."""
    t = text.strip()
    if t.startswith("["):
        host, sep, rest = t[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ConfigError(f"bad listen address {text!r}")
        port_s = rest[1:]
    else:
        host, sep, port_s = t.rpartition(":")
        if not sep:
            raise ConfigError(f"listen address needs host:port, got {text!r}")
    try:
        port = int(port_s)
    except ValueError:
        raise ConfigError(f"bad port in {text!r}") from None
    if not 0 <= port <= 65535 or not host:
        raise ConfigError(f"bad listen address {text!r}")
    return host, port


def _typed(
    d: dict[str, object], key: str, kind: type | tuple[type, ...], default: object
) -> object:
    v = d.get(key, default)
    if not isinstance(v, kind) or (isinstance(v, bool) and kind in (int, float, (int, float))):
        raise ConfigError(f"bsf.{key} has the wrong type")
    return v


def load_bsf_config(text: str | None, rng: Callable[[int], bytes] = os.urandom) -> BsfServerConfig:
    """Parse the TOML config (None: all defaults). Raises ConfigError with one line.

    When no ``[[bsf.naf]]`` is configured a random Bearer token is generated (for the
    operator to hand to the BM-SC) and ``generated_token`` is set.
    """
    try:
        doc = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config TOML syntax error: {exc}") from None
    unknown_top = sorted(set(doc) - {"bsf"})
    if unknown_top:
        raise ConfigError(f"unknown config section {unknown_top[0]!r}")
    raw = doc.get("bsf", {})
    if not isinstance(raw, dict):
        raise ConfigError("[bsf] must be a table")
    known = {
        "domain", "listen", "store", "key_lifetime", "nonce_lifetime", "max_pending",
        "max_pending_per_impi", "gba_u_mac_star", "purge_interval", "log_level", "naf",
        "challenges", "workers",
    }  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key bsf.{unknown[0]}")
    base = BsfConfig()
    domain = str(_typed(raw, "domain", str, base.domain))
    if not domain or any(c.isspace() or c in '"\\@' for c in domain):
        raise ConfigError("bsf.domain must be a host name")
    listen_raw = _typed(raw, "listen", list, ["127.0.0.1:8080"])
    assert isinstance(listen_raw, list)
    if not listen_raw or not all(isinstance(x, str) for x in listen_raw):
        raise ConfigError("bsf.listen must be a non-empty list of host:port strings")
    listen = tuple(parse_listen(x) for x in listen_raw)
    nums = {}
    for key, default in (
        ("key_lifetime", base.key_lifetime),
        ("nonce_lifetime", base.nonce_lifetime),
        ("purge_interval", 60.0),
    ):
        v = _typed(raw, key, (int, float), default)
        assert isinstance(v, int | float)
        if v <= 0:
            raise ConfigError(f"bsf.{key} must be positive")
        nums[key] = float(v)
    bounds = {}
    for key, default_n in (
        ("max_pending", base.max_pending),
        ("max_pending_per_impi", base.max_pending_per_impi),
    ):
        n = _typed(raw, key, int, default_n)
        assert isinstance(n, int)
        if n < 1:
            raise ConfigError(f"bsf.{key} must be at least 1")
        bounds[key] = n
    challenges = str(_typed(raw, "challenges", str, "auto"))
    if challenges not in CHALLENGE_MODES:
        raise ConfigError("bsf.challenges must be auto, memory or store")
    workers = _typed(raw, "workers", int, 1)
    assert isinstance(workers, int)
    if not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"bsf.workers must be 1..{MAX_WORKERS}")
    nafs_raw = _typed(raw, "naf", list, [])
    assert isinstance(nafs_raw, list)
    creds = []
    for i, n in enumerate(nafs_raw, start=1):
        if not isinstance(n, dict):
            raise ConfigError(f"bsf.naf #{i} must be a table")
        extra = sorted(set(n) - {"name", "token", "fqdns"})
        if extra:
            raise ConfigError(f"bsf.naf #{i}: unknown key {extra[0]!r}")
        name, token, fqdns = n.get("name"), n.get("token"), n.get("fqdns", ["*"])
        if not isinstance(name, str) or not name or ":" in name:
            raise ConfigError(f"bsf.naf #{i}: name must be a non-empty string without ':'")
        if not isinstance(token, str) or len(token) < 8:
            raise ConfigError(f"bsf.naf #{i}: token must be a string of at least 8 characters")
        if not isinstance(fqdns, list) or not all(isinstance(f, str) and f for f in fqdns):
            raise ConfigError(f"bsf.naf #{i}: fqdns must be a list of host names")
        creds.append(NafCredential(name=name, secret=token, fqdns=tuple(fqdns)))
    generated = not creds
    if generated:
        creds.append(NafCredential(name="naf", secret=rng(24).hex(), fqdns=("*",)))
    store = str(_typed(raw, "store", str, os.environ.get("MBMSEC_GBA_DB", DEFAULT_STORE)))
    level = str(_typed(raw, "log_level", str, "info"))
    if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("bsf.log_level must be debug, info, warning or error")
    gba_u = _typed(raw, "gba_u_mac_star", bool, True)
    assert isinstance(gba_u, bool)
    return BsfServerConfig(
        bsf=BsfConfig(
            domain=domain,
            key_lifetime=nums["key_lifetime"],
            nonce_lifetime=nums["nonce_lifetime"],
            max_pending=bounds["max_pending"],
            max_pending_per_impi=bounds["max_pending_per_impi"],
            naf_credentials=tuple(creds),
            gba_u_mac_star=gba_u,
        ),
        listen=listen,
        store=store,
        purge_interval=nums["purge_interval"],
        log_level=level,
        generated_token=generated,
        challenges=challenges,
        workers=workers,
    )


class BsfServer:
    """Serve a :class:`Bsf` over HTTP with aiohttp (Ub and Zn on the same listeners)."""

    def __init__(
        self,
        bsf: Bsf,
        *,
        clock: Callable[[], float] = time.time,
        purge_interval: float = 60.0,
        body_timeout: float = BODY_TIMEOUT,
    ) -> None:
        self.bsf = bsf
        self._clock = clock
        self._purge_interval = purge_interval
        self._body_timeout = body_timeout
        self.app = web.Application(client_max_size=MAX_BODY)
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner: web.AppRunner | None = None
        self._purger: asyncio.Task[None] | None = None
        self.urls: list[str] = []

    @staticmethod
    def _refuse(status: int, event: str, peer: str) -> web.Response:
        log.info(event, extra={"peer": peer, "status": status})
        return web.Response(status=status, text=event + "\n")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.remote or ""
        try:
            async with asyncio.timeout(self._body_timeout):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(413, "http request body too large", peer)
        except TimeoutError:
            return self._refuse(408, "http request body timeout", peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            return self._refuse(400, "http connection lost before the body", peer)
        req = HttpRequest(
            method=request.method,
            target=request.raw_path,
            headers=tuple(request.headers.items()),
            body=body,
            peer=peer,
        )
        try:
            resp = self.bsf.handle(req, self._clock())
        except Exception as exc:  # a bug or a store failure: one line, no traceback
            log.error("bsf internal error", extra={"peer": peer, "error": type(exc).__name__})
            return web.Response(status=500, text="internal error\n")
        out = web.Response(status=resp.status, body=resp.body)
        for k, v in resp.headers:
            out.headers.add(k, v)
        return out

    async def _purge_loop(self) -> None:
        while True:
            await asyncio.sleep(self._purge_interval)
            n = self.bsf.purge(self._clock())
            if n:
                log.info("bsf purged expired sessions", extra={"count": n})

    async def start(
        self, listen: tuple[tuple[str, int], ...], *, reuse_port: bool = False
    ) -> list[str]:
        """Bind every address (port 0: any free port); return the base URLs.

        ``reuse_port`` sets SO_REUSEPORT, so that several processes share the ports.
        """
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            logger=http_log,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
            max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE,
            max_headers=MAX_HEADERS,
        )
        await self._runner.setup()
        for host, port in listen:
            site = web.TCPSite(
                self._runner, host, port, reuse_address=True, reuse_port=reuse_port or None
            )
            try:
                await site.start()
            except OSError as exc:
                await self._runner.cleanup()
                self._runner = None
                raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        for addr in self._runner.addresses:
            h, p = str(addr[0]), int(addr[1])
            self.urls.append(f"http://[{h}]:{p}" if ":" in h else f"http://{h}:{p}")
        self._purger = asyncio.get_running_loop().create_task(self._purge_loop())
        return self.urls

    async def close(self) -> None:
        """Stop listening and the purge task (the stores stay open: the caller owns them)."""
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
        if self._runner is not None:
            await self._runner.cleanup()


def open_bsf(cfg: BsfServerConfig, rng: Callable[[int], bytes] = os.urandom) -> Bsf:
    """Open the stores named by ``cfg.store`` (SQLite file or Redis URL) and build the BSF.

    Pending challenges go to the same store when :meth:`BsfServerConfig.shared_challenges`,
    else stay in this process's memory. Raises ConfigError.
    """
    subs = open_subscriber_store(cfg.store)
    sessions = open_session_store(cfg.store)
    challenges: ChallengeStore
    if cfg.shared_challenges():
        challenges = open_challenge_store(
            cfg.store, cfg.bsf.max_pending, cfg.bsf.max_pending_per_impi
        )
    else:
        challenges = MemoryChallengeStore(cfg.bsf.max_pending, cfg.bsf.max_pending_per_impi)
    return Bsf(cfg.bsf, Hss(subs, rng), sessions, challenges)


async def run_bsf(
    cfg: BsfServerConfig,
    *,
    ready: Callable[[list[str]], None] | None = None,
    reuse_port: bool = False,
) -> int:
    """Run the BSF until SIGTERM/SIGINT; return 0. ``ready`` gets the URLs once listening.

    ``reuse_port``: bind with SO_REUSEPORT (one of several worker processes).
    """
    bsf = open_bsf(cfg)
    server = BsfServer(bsf, purge_interval=cfg.purge_interval)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        urls = await server.start(cfg.listen, reuse_port=reuse_port)
        log.info("bsf listening", extra={"urls": " ".join(urls), "domain": cfg.bsf.domain})
        if ready is not None:
            ready(urls)
        await stop.wait()
        log.info("bsf stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.close()
        bsf.hss.store.close()
        bsf.sessions.close()
        bsf.challenges.close()
    return 0
