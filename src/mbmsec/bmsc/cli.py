"""``mbmsec bmsc [--config FILE]``: run the BM-SC (MIKEY UDP, HTTP key management, MTK multicast).

Config (TOML; every key optional except the Zn credentials)::

    [bmsc]
    fqdn = "bmsc.mbmsec.test"          # NAF FQDN: IDi of MSK messages, digest realm, NAF_Id
    udp = "127.0.0.1:2269"             # MIKEY port (compact requests, verifications, pushes)
    http = ["127.0.0.1:8081"]          # key management listeners (3GPP profile)
    store = "bmsc.db"                  # SQLite file, or "redis://host:port/db"; omitted: memory
    redis_prefix = "mbmsec:bmsc:"      # key prefix in Redis
    workers = 1                        # processes sharing the UDP/HTTP ports (SO_REUSEPORT)
    leader = "auto"                    # auto | lease | static (see below)
    leader_lease = 5.0                 # seconds: the leader's lease in the store
    multicast = "auto"                 # auto | on | off (off: unicast fan-out to each UE)
    multicast_interface = "127.0.0.1"
    multicast_ttl = 1
    push_timeout = 3.0                 # MSK push: wait for the verification message
    push_retries = 2
    nonce_lifetime = 300.0             # HTTP digest nonces
    replay_skew = 300.0                # compact requests: allowed clock skew (RFC 3830 §5.4)
    log_level = "info"

    [bmsc.zn]                          # where NAF keys come from (the BSF's Zn interface)
    url = "http://127.0.0.1:8080"
    user = "bmsc"                      # Basic user name
    token = "..."                      # Basic password / Bearer token (or token_file = "...")

    [[bmsc.service]]
    id = "urn:mbmsec:tv"               # the MBMS user service ID
    key_domain = "001-01"              # MCC-MNC (or key_domain_id = "00f110", 6 hex digits)
    key_group = 1                      # the MSK IDs' key group
    group = "239.1.1.1:5001"           # MTK messages go here
    msk_lifetime = 86400.0
    mtk_lifetime = 600.0
    msk_lead = 3600.0                  # next MSK offered this long before it starts
    mtk_lead = 5.0                     # next MTK announced this long before it starts
    announce_interval = 5.0
    salt = true
    verification = true
    allowed_users = []                 # IMPIs; empty = anyone the BSF's GUSS allows
    start = 0.0                        # time origin of the key schedule (POSIX seconds)

``workers`` > 1 (or ``--workers N``) runs N worker processes supervised by this one
(:mod:`mbmsec.net.workers`, docs/scale-out.md); they need a shared store (SQLite file or Redis).
Leadership (key generation, MTK announcements, next-MSK pushes): ``static`` = this process,
``lease`` = whoever holds the store's lease, ``auto`` = lease with several workers or a Redis
store (other processes may share it), static otherwise.

SIGTERM / SIGINT stop the server cleanly. Logs are JSON lines on stderr; they name key IDs and
B-TIDs, never key bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..logs import setup_json_logging
from ..mbms.keys import key_domain_id
from ..mikey.replay import ReplayConfig
from ..net.http_bsf import parse_listen
from ..store.bmsc_protocols import BmscStore, ServiceRecord
from .core import BmscConfig

__all__ = [
    "BmscServerConfig",
    "ZnSettings",
    "load_bmsc_config",
    "open_bmsc_store",
    "register",
    "run_bmsc",
    "uses_lease",
]

log = logging.getLogger("mbmsec.bmsc")


@dataclass(frozen=True)
class ZnSettings:
    """The BSF's Zn endpoint and this NAF's credentials."""

    url: str
    user: str
    token: str = field(repr=False)
    timeout: float = 5.0


@dataclass(frozen=True)
class BmscServerConfig:
    """Everything ``mbmsec bmsc`` needs."""

    core: BmscConfig
    zn: ZnSettings
    services: tuple[ServiceRecord, ...]
    udp: tuple[str, int] = ("127.0.0.1", 2269)
    http: tuple[tuple[str, int], ...] = (("127.0.0.1", 8081),)
    store: str | None = None
    multicast: str = "auto"
    multicast_interface: str = "127.0.0.1"
    multicast_ttl: int = 1
    log_level: str = "info"
    workers: int = 1
    leader: str = "auto"
    leader_lease: float = 5.0
    redis_prefix: str = "mbmsec:bmsc:"


def is_redis_url(store: str | None) -> bool:
    """True when ``store`` names a Redis server rather than a SQLite file."""
    return store is not None and store.startswith(("redis://", "rediss://", "unix://"))


def uses_lease(cfg: BmscServerConfig) -> bool:
    """True when leadership comes from the store's lease (see the module docstring)."""
    if cfg.leader != "auto":
        return cfg.leader == "lease"
    return cfg.workers > 1 or is_redis_url(cfg.store)


def open_bmsc_store(cfg: BmscServerConfig) -> BmscStore:
    """The configured store: Redis, SQLite or (no ``store``) memory. Raises ConfigError."""
    from ..store.bmsc_memory import MemoryBmscStore
    from ..store.bmsc_sqlite import SqliteBmscStore

    if is_redis_url(cfg.store):
        from ..store.bmsc_redis import RedisBmscStore

        assert cfg.store is not None
        return RedisBmscStore(cfg.store, prefix=cfg.redis_prefix)
    return SqliteBmscStore(cfg.store) if cfg.store else MemoryBmscStore()


def _get(
    d: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str
) -> Any:
    v = d.get(key, default)
    bad_bool = isinstance(v, bool) and kind in (int, float, (int, float))
    if v is not None and (not isinstance(v, kind) or bad_bool):
        raise ConfigError(f"{where}.{key} has the wrong type")
    return v


def _check_keys(d: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]}")


def _service(raw: Any, i: int) -> ServiceRecord:
    where = f"bmsc.service #{i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    _check_keys(
        raw,
        {
            "id", "key_domain", "key_domain_id", "key_group", "group", "msk_lifetime",
            "mtk_lifetime", "msk_lead", "mtk_lead", "announce_interval", "salt",
            "verification", "allowed_users", "start",
        },
        where,
    )  # fmt: skip
    sid = _get(raw, "id", str, None, where)
    if not sid:
        raise ConfigError(f"{where}: id is required")
    if "key_domain_id" in raw:
        try:
            kd = bytes.fromhex(_get(raw, "key_domain_id", str, "", where))
        except ValueError:
            raise ConfigError(f"{where}: key_domain_id must be hex") from None
    else:
        mcc, _, mnc = str(_get(raw, "key_domain", str, "001-01", where)).partition("-")
        kd = key_domain_id(mcc, mnc)
    group = parse_listen(_get(raw, "group", str, "239.255.0.1:5001", where))
    nums: dict[str, float] = {}
    for key in ("msk_lifetime", "mtk_lifetime", "msk_lead", "mtk_lead", "announce_interval"):
        v = _get(raw, key, (int, float), None, where)
        if v is not None:
            nums[key] = float(v)
    users = _get(raw, "allowed_users", list, [], where)
    if not all(isinstance(u, str) for u in users):
        raise ConfigError(f"{where}.allowed_users must be strings")
    return ServiceRecord(
        sid,
        kd,
        int(_get(raw, "key_group", int, 1, where)),
        group[0],
        group[1],
        salt=bool(_get(raw, "salt", bool, True, where)),
        verification=bool(_get(raw, "verification", bool, True, where)),
        allowed_users=tuple(users),
        start=float(_get(raw, "start", (int, float), 0.0, where)),
        **nums,
    )


def load_bmsc_config(text: str | None) -> BmscServerConfig:
    """Parse the TOML config; raise ConfigError with one readable line."""
    try:
        doc = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config TOML syntax error: {exc}") from None
    _check_keys(doc, {"bmsc"}, "config")
    raw = doc.get("bmsc", {})
    if not isinstance(raw, dict):
        raise ConfigError("[bmsc] must be a table")
    _check_keys(
        raw,
        {
            "fqdn", "udp", "http", "store", "multicast", "multicast_interface",
            "multicast_ttl", "push_timeout", "push_retries", "nonce_lifetime", "replay_skew",
            "log_level", "zn", "service", "workers", "leader", "leader_lease", "redis_prefix",
        },
        "bmsc",
    )  # fmt: skip
    fqdn = _get(raw, "fqdn", str, "bmsc.mbmsec.test", "bmsc")
    zn_raw = _get(raw, "zn", dict, None, "bmsc")
    if zn_raw is None:
        raise ConfigError("[bmsc.zn] with url, user and token is required")
    _check_keys(zn_raw, {"url", "user", "token", "token_file", "timeout"}, "bmsc.zn")
    token = _get(zn_raw, "token", str, None, "bmsc.zn")
    token_file = _get(zn_raw, "token_file", str, None, "bmsc.zn")
    if token is None and token_file is not None:
        token = Path(token_file).read_text(encoding="utf-8").strip()
    url, user = (
        _get(zn_raw, "url", str, None, "bmsc.zn"),
        _get(zn_raw, "user", str, None, "bmsc.zn"),
    )
    if not url or not user or not token:
        raise ConfigError("bmsc.zn needs url, user and token (or token_file)")
    zn = ZnSettings(url, user, token, float(_get(zn_raw, "timeout", (int, float), 5.0, "bmsc.zn")))
    services = tuple(
        _service(s, i) for i, s in enumerate(_get(raw, "service", list, [], "bmsc"), 1)
    )
    if not services:
        raise ConfigError("at least one [[bmsc.service]] is required")
    multicast = _get(raw, "multicast", str, "auto", "bmsc")
    if multicast not in ("auto", "on", "off"):
        raise ConfigError("bmsc.multicast must be auto, on or off")
    level = _get(raw, "log_level", str, "info", "bmsc")
    if level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("bmsc.log_level must be debug, info, warning or error")
    core = BmscConfig(
        fqdn=fqdn,
        replay=ReplayConfig(max_skew=float(_get(raw, "replay_skew", (int, float), 300.0, "bmsc"))),
        push_timeout=float(_get(raw, "push_timeout", (int, float), 3.0, "bmsc")),
        push_retries=int(_get(raw, "push_retries", int, 2, "bmsc")),
        nonce_lifetime=float(_get(raw, "nonce_lifetime", (int, float), 300.0, "bmsc")),
    )
    http = tuple(parse_listen(h) for h in _get(raw, "http", list, ["127.0.0.1:8081"], "bmsc"))
    workers = int(_get(raw, "workers", int, 1, "bmsc"))
    leader = _get(raw, "leader", str, "auto", "bmsc")
    if leader not in ("auto", "lease", "static"):
        raise ConfigError("bmsc.leader must be auto, lease or static")
    leader_lease = float(_get(raw, "leader_lease", (int, float), 5.0, "bmsc"))
    if leader_lease <= 0:
        raise ConfigError("bmsc.leader_lease must be positive")
    return BmscServerConfig(
        core=core,
        zn=zn,
        services=services,
        udp=parse_listen(_get(raw, "udp", str, "127.0.0.1:2269", "bmsc")),
        http=http,
        store=_get(raw, "store", str, None, "bmsc"),
        multicast=multicast,
        multicast_interface=_get(raw, "multicast_interface", str, "127.0.0.1", "bmsc"),
        multicast_ttl=int(_get(raw, "multicast_ttl", int, 1, "bmsc")),
        log_level=level,
        workers=check_workers(workers),
        leader=leader,
        leader_lease=leader_lease,
        redis_prefix=_get(raw, "redis_prefix", str, "mbmsec:bmsc:", "bmsc"),
    )


def check_workers(n: int) -> int:
    """``n`` if it is a sane worker count (1..256); raise ConfigError otherwise."""
    if not 1 <= n <= 256:
        raise ConfigError("bmsc.workers must be 1..256")
    return n


async def run_bmsc(
    cfg: BmscServerConfig,
    *,
    ready: Callable[[str, list[str]], None] | None = None,
    rng: Callable[[int], bytes] = os.urandom,
    worker: int | None = None,
    nonce_secret: bytes | None = None,
) -> int:
    """Run the BM-SC until SIGTERM/SIGINT; return 0. ``ready(udp, urls)`` once listening.

    ``worker``: this process is worker ``worker`` of ``--workers`` (ports shared with
    SO_REUSEPORT, ``worker`` label on metrics and logs); ``nonce_secret``: the digest nonce key
    all workers share."""
    import time

    from ..net.bmsc_server import BmscServer
    from ..net.gba_client import ZnClient
    from ..net.multicast import choose_mode
    from .core import BmscCore
    from .zn import ZnAnswerCache

    core_cfg = cfg.core
    if uses_lease(cfg):
        wid = f"{socket.gethostname()}/{os.getpid()}" + ("" if worker is None else f"/w{worker}")
        core_cfg = replace(core_cfg, leader_lease=cfg.leader_lease, worker_id=wid)
    if nonce_secret is not None:
        core_cfg = replace(core_cfg, nonce_secret=nonce_secret)
    store = open_bmsc_store(cfg)
    cache = ZnAnswerCache()
    core = BmscCore(core_cfg, store, cache, rng)
    now = time.time()
    for svc in cfg.services:
        core.add_service(svc, now)
    multicast = cfg.multicast == "on" or choose_mode(force_unicast=cfg.multicast == "off")
    zn = ZnClient(cfg.zn.url, basic=(cfg.zn.user, cfg.zn.token), timeout=cfg.zn.timeout)
    server = BmscServer(
        core,
        cache,
        zn,
        multicast=multicast,
        multicast_interface=cfg.multicast_interface,
        multicast_ttl=cfg.multicast_ttl,
        worker=None if worker is None else str(worker),
        share_members=uses_lease(cfg),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start(cfg.udp, cfg.http, reuse_port=worker is not None)
        udp = f"{server.udp_address[0]}:{server.udp_address[1]}" if server.udp_address else ""
        log.info(
            "bmsc listening",
            extra={
                "udp": udp,
                "urls": " ".join(server.urls),
                "fqdn": cfg.core.fqdn,
                "multicast": multicast,
                "services": " ".join(s.service_id for s in cfg.services),
                "worker": "" if worker is None else str(worker),
                "pid": os.getpid(),
            },
        )
        if ready is not None:
            ready(udp, server.urls)
        await stop.wait()
        log.info(
            "bmsc stopping",
            extra={
                "worker": "" if worker is None else str(worker),
                "pid": os.getpid(),
                "leader": core.leader,
                "stats": json.dumps(dict(sorted(core.stats.items()))),
            },
        )
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await server.close()
        try:
            core.release_leadership()  # the next leader need not wait for the lease to end
        finally:
            store.close()
    return 0


def _run(args: argparse.Namespace) -> int:
    text = Path(args.config).read_text(encoding="utf-8") if args.config else None
    cfg = load_bmsc_config(text)
    if args.workers is not None:
        cfg = replace(cfg, workers=check_workers(args.workers))
    level = args.log_level or cfg.log_level.upper()
    setup_json_logging(level)

    def ready(udp: str, urls: list[str]) -> None:
        print(f"bmsc udp {udp} http {' '.join(urls)}", flush=True)

    if cfg.workers > 1:
        from ..net.workers import supervise

        return supervise(cfg, ready=ready, log_level=level)
    return asyncio.run(run_bmsc(cfg, ready=ready))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mbmsec bmsc``."""
    p = subparsers.add_parser(
        "bmsc",
        help="run the BM-SC key server",
        description="Serve MBMS keys: compact MIKEY key requests over UDP, TS 33.246 HTTP key "
        "management with MSK push, MTK messages to each service's multicast group. Config: "
        "TOML, see docs/ue.md (one-host deployment), docs/protocol.md and docs/scale-out.md.",
    )
    p.add_argument("--config", help="TOML config file (see docs)")
    p.add_argument("--log-level", help="override bmsc.log_level (DEBUG, INFO, ...)")
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="override bmsc.workers: N processes on the same ports sharing the store",
    )
    p.set_defaults(func=_run)
