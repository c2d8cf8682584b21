"""``mbmsec ue run [--config FILE] [--profile compact|3gpp]``: the UE key client.

Bootstraps with the BSF (GBA Ub), activates every configured service (compact key request, or
3GPP registration + MSK push), keeps its keys current (MTK messages on the service groups,
renewal before expiry, missed key updates) and prints every key event as one JSON line on
stdout as it happens; logs are JSON lines on stderr. Key IDs only, never key bytes. SIGTERM /
SIGINT stop it cleanly.

Config (TOML)::

    [ue]
    impi = "ue1@mbmsec.test"
    k = "465b5ce8b199b49faa5f0a2ee238a6bc"   # or k_file = "..."; USIM K
    opc = "cd63cb71954a9f4e48a5994e37a02baf" # or op = "..."
    bsf = "http://127.0.0.1:8080"           # Ub
    realm = "bsf.mbmsec.test"               # BSF FQDN to insist on (default: learnt)
    bmsc_fqdn = "bmsc.mbmsec.test"
    bmsc_udp = "127.0.0.1:2269"             # compact requests, verification messages
    bmsc_http = "http://127.0.0.1:8081"     # 3GPP key management
    profile = "compact"                     # compact | 3gpp
    listen = "127.0.0.1:0"                  # the UE's MIKEY UDP port (0: any free port)
    multicast_interface = "127.0.0.1"
    store = "ue.db"                         # SQLite key store (omitted: in memory)
    http_timeout = 5.0
    log_level = "info"

    [ue.retry]                              # ue/retry.py RetryPolicy fields
    lead_time = 30.0

    [[ue.service]]
    id = "urn:mbmsec:tv"
    group = "239.1.1.1:5001"                # multicast group of its MTK messages
    key_domain = "001-01"                   # optional (USD): MCC-MNC or key_domain_id = hex
    key_group = 1                           # optional (USD)
    mtk_period = 600.0                      # optional (USD); estimated otherwise
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..logs import setup_json_logging
from ..mbms.keys import key_domain_id
from ..net.http_bsf import parse_listen
from .client import ServiceConfig, UeConfig
from .events import UeEvent
from .retry import RetryPolicy

__all__ = ["UeRunConfig", "load_ue_config", "register_ue", "run_ue"]

log = logging.getLogger("mbmsec.ue")


@dataclass(frozen=True)
class UeRunConfig:
    """Everything ``mbmsec ue run`` needs."""

    impi: str
    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    bsf: str
    ue: UeConfig
    groups: tuple[tuple[str, int], ...]
    realm: str | None = None
    bmsc_http: str | None = None
    listen: tuple[str, int] = ("127.0.0.1", 0)
    multicast_interface: str = "127.0.0.1"
    store: str | None = None
    http_timeout: float = 5.0
    log_level: str = "info"


def _get(
    d: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any, where: str
) -> Any:
    v = d.get(key, default)
    bad_bool = isinstance(v, bool) and kind in (int, float, (int, float))
    if v is not None and (not isinstance(v, kind) or bad_bool):
        raise ConfigError(f"{where}.{key} has the wrong type")
    return v


def _hex16(raw: dict[str, Any], key: str) -> bytes | None:
    text = _get(raw, key, str, None, "ue")
    file = _get(raw, f"{key}_file", str, None, "ue")
    if text is None and file is not None:
        text = Path(file).read_text(encoding="utf-8").strip()
    if text is None:
        return None
    try:
        b = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"ue.{key} must be hex") from None
    if len(b) != 16:
        raise ConfigError(f"ue.{key} must be 16 bytes (32 hex digits)")
    return b


def _service(raw: Any, i: int) -> tuple[ServiceConfig, tuple[str, int]]:
    where = f"ue.service #{i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    known = {"id", "group", "key_domain", "key_domain_id", "key_group", "mtk_period"}
    extra = sorted(set(raw) - known)
    if extra:
        raise ConfigError(f"unknown key {where}.{extra[0]}")
    sid = _get(raw, "id", str, None, where)
    if not sid:
        raise ConfigError(f"{where}: id is required")
    group = parse_listen(_get(raw, "group", str, "239.255.0.1:5001", where))
    kd = None
    if "key_domain_id" in raw:
        try:
            kd = bytes.fromhex(_get(raw, "key_domain_id", str, "", where))
        except ValueError:
            raise ConfigError(f"{where}: key_domain_id must be hex") from None
    elif "key_domain" in raw:
        mcc, _, mnc = str(_get(raw, "key_domain", str, "", where)).partition("-")
        kd = key_domain_id(mcc, mnc)
    period = _get(raw, "mtk_period", (int, float), None, where)
    svc = ServiceConfig(
        sid,
        kd,
        _get(raw, "key_group", int, None, where),
        None if period is None else float(period),
    )
    return svc, group


def load_ue_config(text: str | None, profile: str | None = None) -> UeRunConfig:
    """Parse the TOML config (``profile`` overrides ``ue.profile``); raise ConfigError."""
    try:
        doc = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config TOML syntax error: {exc}") from None
    if set(doc) - {"ue"}:
        raise ConfigError(f"unknown config section {sorted(set(doc) - {'ue'})[0]!r}")
    raw = doc.get("ue", {})
    known = {
        "impi", "k", "k_file", "opc", "opc_file", "op", "op_file", "bsf", "realm", "bmsc_fqdn",
        "bmsc_udp", "bmsc_http", "profile", "listen", "multicast_interface", "store",
        "http_timeout", "log_level", "retry", "service",
    }  # fmt: skip
    extra = sorted(set(raw) - known)
    if extra:
        raise ConfigError(f"unknown key ue.{extra[0]}")
    impi = _get(raw, "impi", str, None, "ue")
    bsf = _get(raw, "bsf", str, None, "ue")
    k = _hex16(raw, "k")
    if not impi or not bsf or k is None:
        raise ConfigError(
            "ue.impi, ue.bsf and ue.k are required: pass --config FILE (example in docs/ue.md)"
        )
    opc = _hex16(raw, "opc")
    if opc is None:
        op = _hex16(raw, "op")
        if op is None:
            raise ConfigError("ue.opc or ue.op is required")
        from ..gba.milenage import compute_opc

        opc = compute_opc(k, op)
    prof = profile or _get(raw, "profile", str, "compact", "ue")
    if prof not in ("compact", "3gpp"):
        raise ConfigError("ue.profile must be compact or 3gpp")
    retry_raw = _get(raw, "retry", dict, {}, "ue")
    names = {f.name for f in fields(RetryPolicy)}
    if set(retry_raw) - names:
        raise ConfigError(f"unknown key ue.retry.{sorted(set(retry_raw) - names)[0]}")
    retry = RetryPolicy(**retry_raw)
    pairs = [_service(s, i) for i, s in enumerate(_get(raw, "service", list, [], "ue"), 1)]
    if not pairs:
        raise ConfigError("at least one [[ue.service]] is required")
    ue = UeConfig(
        bmsc_fqdn=_get(raw, "bmsc_fqdn", str, "bmsc.mbmsec.test", "ue"),
        services=tuple(s for s, _ in pairs),
        profile="3gpp" if prof == "3gpp" else "compact",
        bmsc_addr=parse_listen(_get(raw, "bmsc_udp", str, "127.0.0.1:2269", "ue")),
        retry=retry,
    )
    if prof == "3gpp" and not raw.get("bmsc_http"):
        raise ConfigError("the 3gpp profile needs ue.bmsc_http")
    return UeRunConfig(
        impi=impi,
        k=k,
        opc=opc,
        bsf=bsf,
        ue=ue,
        groups=tuple(g for _, g in pairs),
        realm=_get(raw, "realm", str, None, "ue"),
        bmsc_http=_get(raw, "bmsc_http", str, None, "ue"),
        listen=parse_listen(_get(raw, "listen", str, "127.0.0.1:0", "ue")),
        multicast_interface=_get(raw, "multicast_interface", str, "127.0.0.1", "ue"),
        store=_get(raw, "store", str, None, "ue"),
        http_timeout=float(_get(raw, "http_timeout", (int, float), 5.0, "ue")),
        log_level=_get(raw, "log_level", str, "info", "ue"),
    )


async def run_ue(
    cfg: UeRunConfig,
    *,
    on_event: Callable[[UeEvent], None] | None = None,
    ready: Callable[[tuple[str, int]], None] | None = None,
    rng: Callable[[int], bytes] = os.urandom,
) -> int:
    """Run the UE until SIGTERM/SIGINT; return 0."""
    import time
    from dataclasses import replace
    from urllib.parse import urlsplit

    from ..gba.client import BootstrapClient, GbaUicc
    from ..net.ue_runner import UeRunner, bind_udp
    from ..store.ue_keys import MemoryUeKeyStore, UeKeyStore
    from ..store.ue_sqlite import SqliteUeKeyStore
    from .client import UeKeyClient

    sock = bind_udp(*cfg.listen)
    port = sock.getsockname()[1]
    store: UeKeyStore = SqliteUeKeyStore(cfg.store) if cfg.store else MemoryUeKeyStore()
    boot = BootstrapClient(
        cfg.impi,
        GbaUicc(cfg.k, cfg.opc),
        realm=cfg.realm or (urlsplit(cfg.bsf).hostname or ""),
        rng=rng,
        check_realm=cfg.realm is not None,
    )
    client = UeKeyClient(replace(cfg.ue, mikey_port=port), boot, rng, store, now=time.time())
    runner = UeRunner(
        client,
        bsf_url=cfg.bsf,
        bmsc_url=cfg.bmsc_http,
        http_timeout=cfg.http_timeout,
        on_event=on_event,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.start(sock, list(cfg.groups), cfg.multicast_interface)
        assert runner.local_address is not None
        log.info(
            "ue running",
            extra={
                "impi": cfg.impi,
                "profile": cfg.ue.profile,
                "udp": f"{runner.local_address[0]}:{runner.local_address[1]}",
                "joined": " ".join(f"{h}:{p}" for h, p in runner.joined),
            },
        )
        if ready is not None:
            ready(runner.local_address)
        await stop.wait()
        log.info("ue stopping")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await runner.close()
        store.close()
    return 0


def event_json(e: UeEvent) -> str:
    """One JSON line for a UE event (key IDs only)."""
    return json.dumps({"event": e.name, **e.fields()}, separators=(",", ":"))


def _run(args: argparse.Namespace) -> int:
    text = Path(args.config).read_text(encoding="utf-8") if args.config else None
    cfg = load_ue_config(text, args.profile)
    setup_json_logging(args.log_level or cfg.log_level.upper())

    def on_event(e: UeEvent) -> None:
        print(event_json(e), flush=True)

    def ready(addr: tuple[str, int]) -> None:
        print(json.dumps({"event": "ready", "udp": f"{addr[0]}:{addr[1]}"}), flush=True)

    try:
        return asyncio.run(run_ue(cfg, on_event=on_event, ready=ready))
    except BrokenPipeError:  # pragma: no cover - stdout closed
        sys.stderr.close()
        return 0


def register_ue(ue_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``run`` under ``mbmsec ue`` (see :mod:`mbmsec.ue_cli`)."""
    p = ue_subparsers.add_parser("run", help="run the UE key client (prints key events)")
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--profile", choices=("compact", "3gpp"), help="override ue.profile")
    p.add_argument("--log-level", help="override ue.log_level (DEBUG, INFO, ...)")
    p.set_defaults(func=_run)
