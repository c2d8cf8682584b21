"""``mbmsec hss ...``, ``mbmsec bsf`` and ``mbmsec ue bootstrap``.

* ``mbmsec hss [--db FILE] add IMPI --k HEX (--opc HEX | --op HEX) [--sqn N] [--amf HEX]
  [--naf FQDN]... [--mbms-service ID]... [--uicc]``; ``list [--json]``; ``remove IMPI``;
  ``import FILE [--format csv|toml]``. A key given as ``-`` is read from stdin (one line), so
  it does not show in the process list. Keys are never printed; bad input ends with one line on
  stderr and a non-zero exit, and nothing is written (one transaction per command).
* ``mbmsec bsf [--config FILE] [--listen HOST:PORT] [--store FILE|URL] [--workers N]``: run
  the BSF (Ub + Zn); ``--db`` is another name for ``--store``.
* ``mbmsec ue bootstrap --bsf URL --impi IMPI --k HEX (--opc HEX | --op HEX) [--realm FQDN]
  [--gba-u] [--naf FQDN [--show-key]]``: one Ub bootstrap; prints the B-TID and lifetime.

The database defaults to ``$MBMSEC_GBA_DB`` or ``./mbmsec-gba.db`` for every command, so
``mbmsec hss add`` and ``mbmsec bsf`` meet without flags. ``--db`` also takes a Redis URL
(``redis://host:6379/0``, optional ``?prefix=...``): see :mod:`mbmsec.store.gba_open`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError, UnknownEntryError
from ..logs import setup_json_logging
from ..store.gba_open import describe_store, is_redis_url, open_subscriber_store
from .hss import make_subscriber, parse_hex, parse_subscribers_csv, parse_subscribers_toml
from .milenage import compute_opc

__all__ = ["register", "register_ue"]

DEFAULT_DB = "mbmsec-gba.db"


def _default_db() -> str:
    return os.environ.get("MBMSEC_GBA_DB", DEFAULT_DB)


def _secret(value: str | None) -> str | None:
    """A key argument; ``-`` reads one line from stdin."""
    if value == "-":
        return sys.stdin.readline().strip()
    return value


# --- hss -------------------------------------------------------------------------------------


def _hss_add(args: argparse.Namespace) -> int:
    sub = make_subscriber(
        args.impi,
        _secret(args.k) or "",
        opc=_secret(args.opc),
        op=_secret(args.op),
        sqn=args.sqn,
        amf=args.amf,
        naf_fqdns=args.naf or ("*",),
        mbms_service_ids=args.mbms_service or (),
        uicc=args.uicc,
    )
    store = open_subscriber_store(args.db)
    try:
        store.add(sub)
    finally:
        store.close()
    print(f"added {sub.impi}")
    return 0


def _hss_list(args: argparse.Namespace) -> int:
    if not is_redis_url(args.db) and not Path(args.db).exists():
        raise ConfigError(f"no database at {args.db!r}")
    store = open_subscriber_store(args.db)
    try:
        subs = store.all()
    finally:
        store.close()
    if args.json:
        rows = [
            {
                "impi": s.impi,
                "sqn": s.sqn,
                "amf": s.amf.hex(),
                "uicc": s.uicc,
                "naf_fqdns": list(s.guss.naf_fqdns),
                "mbms_service_ids": list(s.guss.mbms_service_ids),
            }
            for s in subs
        ]
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'IMPI':40} {'SQN':>16} AMF  UICC   NAFs / MBMS services")
    for s in subs:
        nafs = ",".join(s.guss.naf_fqdns) or "-"
        svcs = ",".join(s.guss.mbms_service_ids) or "-"
        kind = "GBA_U" if s.uicc else "GBA_ME"
        print(f"{s.impi:40} {s.sqn:>16} {s.amf.hex()} {kind:6} {nafs} / {svcs}")
    return 0


def _hss_remove(args: argparse.Namespace) -> int:
    store = open_subscriber_store(args.db)
    try:
        if not store.remove(args.impi):
            raise UnknownEntryError(f"no subscriber {args.impi}")
    finally:
        store.close()
    print(f"removed {args.impi}")
    return 0


def _hss_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    fmt = args.format or ("toml" if path.suffix.lower() == ".toml" else "csv")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {args.file!r}: {exc}") from None
    subs = parse_subscribers_toml(text) if fmt == "toml" else parse_subscribers_csv(text)
    if not subs:
        raise ConfigError("the file holds no subscribers")
    store = open_subscriber_store(args.db)
    try:
        store.add_many(subs)
    finally:
        store.close()
    print(f"imported {len(subs)} subscribers")
    return 0


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        default=_default_db(),
        help="SQLite file or redis://host:port/db URL (default: %(default)s)",
    )


def _register_hss(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hss = subparsers.add_parser("hss", help="provision HSS subscribers (GBA)")
    hsub = hss.add_subparsers(dest="hss_command", metavar="HSS_COMMAND")
    hsub.required = True

    add = hsub.add_parser("add", help="add a subscriber")
    _add_db(add)
    add.add_argument("impi", help="IMS private identity, e.g. user1_private@home1.net")
    add.add_argument("--k", required=True, help="K, 32 hex digits ('-': read from stdin)")
    grp = add.add_mutually_exclusive_group(required=True)
    grp.add_argument("--opc", help="OPc, 32 hex digits ('-': stdin)")
    grp.add_argument("--op", help="OP, 32 hex digits; OPc is computed ('-': stdin)")
    add.add_argument("--sqn", default="0", help="initial SQN_HE (default 0)")
    add.add_argument("--amf", default="8000", help="AMF, 4 hex digits (default 8000)")
    add.add_argument("--naf", action="append", help="allowed NAF FQDN (repeat; default: any)")
    add.add_argument("--mbms-service", action="append", help="MBMS user service id (repeat)")
    add.add_argument("--uicc", action="store_true", help="GBA_U capable UICC")
    add.set_defaults(func=_hss_add)

    ls = hsub.add_parser("list", help="list subscribers (never shows keys)")
    _add_db(ls)
    ls.add_argument("--json", action="store_true", help="JSON output")
    ls.set_defaults(func=_hss_list)

    rm = hsub.add_parser("remove", help="remove a subscriber")
    _add_db(rm)
    rm.add_argument("impi")
    rm.set_defaults(func=_hss_remove)

    imp = hsub.add_parser("import", help="import subscribers from CSV or TOML, all or none")
    _add_db(imp)
    imp.add_argument("file")
    imp.add_argument("--format", choices=("csv", "toml"), help="default: by file extension")
    imp.set_defaults(func=_hss_import)


# --- bsf -------------------------------------------------------------------------------------


def _bsf(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ..net.http_bsf import MAX_WORKERS, load_bsf_config, parse_listen, run_bsf

    text = None
    if args.config:
        try:
            text = Path(args.config).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config {args.config!r}: {exc}") from None
    cfg = load_bsf_config(text)
    if args.listen:
        cfg = replace(cfg, listen=tuple(parse_listen(x) for x in args.listen))
    if args.store:
        cfg = replace(cfg, store=args.store)
    if args.workers is not None:
        if not 1 <= args.workers <= MAX_WORKERS:
            raise ConfigError(f"--workers must be 1..{MAX_WORKERS}")
        cfg = replace(cfg, workers=args.workers)
    setup_json_logging(cfg.log_level.upper())
    where = describe_store(cfg.store)
    if cfg.workers > 1:
        where += f", {cfg.workers} workers"

    def ready(urls: list[str]) -> None:
        for u in urls:
            print(f"bsf listening on {u} (domain {cfg.bsf.domain}, store {where})")
        if cfg.generated_token:
            token = cfg.bsf.naf_credentials[0].secret
            print(f"zn bearer token (generated, no [[bsf.naf]] configured): {token}")
        sys.stdout.flush()

    if cfg.workers > 1:
        from ..net.bsf_workers import run_bsf_workers

        return run_bsf_workers(cfg, ready=ready)
    return asyncio.run(run_bsf(cfg, ready=ready))


def _register_bsf(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "bsf",
        help="run the BSF (GBA Ub + Zn over HTTP)",
        description="Serve GBA bootstrapping (Ub, TS 24.109: HTTP Digest AKA) and the Zn "
        "interface for NAFs (HTTP JSON) from the HSS store. Config: TOML, see docs/gba.md.",
    )
    p.add_argument("--config", help="TOML config file (see docs/gba.md)")
    p.add_argument("--listen", action="append", help="HOST:PORT (repeat; overrides config)")
    p.add_argument(
        "--store",
        "--db",
        dest="store",
        help="SQLite file or redis://host:port/db URL (overrides config; default ./mbmsec-gba.db)",
    )
    p.add_argument("--workers", type=int, help="processes sharing the listen ports (SO_REUSEPORT)")
    p.set_defaults(func=_bsf)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``hss`` and ``bsf`` to the top-level parser."""
    _register_hss(subparsers)
    _register_bsf(subparsers)


# --- ue bootstrap ----------------------------------------------------------------------------


def _ue_bootstrap(args: argparse.Namespace) -> int:
    import aiohttp

    from ..net.gba_client import bootstrap
    from .client import BootstrapClient, GbaUicc
    from .kdf import UA_MBMS, naf_id
    from .zn import format_xs_datetime

    k = parse_hex("K", _secret(args.k) or "", 16)
    opc_text, op_text = _secret(args.opc), _secret(args.op)
    opc = (
        parse_hex("OPc", opc_text, 16)
        if opc_text
        else compute_opc(k, parse_hex("OP", op_text or "", 16))
    )
    host = urlsplit(args.bsf).hostname
    if not args.bsf.startswith(("http://", "https://")) or not host:
        raise ConfigError("--bsf must be an http(s) URL")
    client = BootstrapClient(
        args.impi,
        GbaUicc(k, opc, gba_u=args.gba_u),
        realm=args.realm or host,
        rng=os.urandom,
        check_realm=args.realm is not None,
    )
    try:
        result = asyncio.run(bootstrap(client, args.bsf, timeout=args.timeout))
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        print(f"mbmsec: error: BSF unreachable: {type(exc).__name__}", file=sys.stderr)
        return 1
    print(f"btid {result.btid}")
    print(f"lifetime {format_xs_datetime(result.expires)}")
    print(f"gba {'GBA_U' if result.gba_u else 'GBA_ME'}")
    if args.naf:
        nid = naf_id(args.naf, UA_MBMS)
        key = client.naf_key(nid, result.created)
        label = "ks_ext_naf" if result.gba_u else "ks_naf"
        print(f"naf_id {nid.hex()}")
        if args.show_key:
            print(f"{label} {key.hex()}")
    return 0


def register_ue(ue_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bootstrap`` under ``mbmsec ue`` (see :mod:`mbmsec.ue_cli`)."""
    p = ue_subparsers.add_parser("bootstrap", help="bootstrap with a BSF (GBA Ub)")
    p.add_argument("--bsf", required=True, help="BSF base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--impi", required=True)
    p.add_argument("--k", required=True, help="K, 32 hex digits ('-': read from stdin)")
    grp = p.add_mutually_exclusive_group(required=True)
    grp.add_argument("--opc", help="OPc, 32 hex digits ('-': stdin)")
    grp.add_argument("--op", help="OP, 32 hex digits ('-': stdin)")
    p.add_argument("--realm", help="BSF FQDN to insist on (default: learnt from the challenge)")
    p.add_argument("--gba-u", action="store_true", help="behave as a GBA_U UICC")
    p.add_argument("--naf", help="NAF FQDN: also derive the key for NAF_Id = FQDN || MBMS id")
    p.add_argument("--show-key", action="store_true", help="print the NAF key (testing only)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.set_defaults(func=_ue_bootstrap)
