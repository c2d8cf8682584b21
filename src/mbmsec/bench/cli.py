"""``mbmsec bench [CASE...] [--seconds S] [--json] [--list]``: run benchmark cases and print
ours next to the floor measured in the same run, with the ratio ours/floor (ops/s)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from typing import Any, TextIO

from ..errors import ConfigError
from . import DEFAULT_ROUNDS, DEFAULT_SECONDS, BenchConfig, Result, load_cases


def register(subparsers: Any) -> None:
    """Add the ``bench`` sub-command."""
    p = subparsers.add_parser(
        "bench",
        help="measure MIKEY/GBA/BM-SC work against a raw-crypto floor",
        description=(
            "Run benchmark cases (all when none is named). Each line shows mbmsec's rate, the "
            "floor (the crypto the protocol requires, done directly with cryptography/hmac) "
            "measured in the same run, and the ratio ours/floor."
        ),
    )
    p.add_argument("cases", nargs="*", metavar="CASE", help="case names (default: all)")
    p.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help=f"seconds per measured function (default {DEFAULT_SECONDS:g})",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"alternating rounds, best counts (default {DEFAULT_ROUNDS})",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.set_defaults(func=run)


def environment() -> dict[str, Any]:
    """The facts a reader needs to compare runs."""
    import cryptography

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cryptography": cryptography.__version__,
        "openssl": _openssl_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def _openssl_version() -> str:
    from cryptography.hazmat.backends.openssl.backend import backend

    return str(backend.openssl_version_text())


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the selected cases; return 0. Raises ConfigError for an unknown case name."""
    stream = out if out is not None else sys.stdout
    registry = load_cases()
    if args.list:
        for case in registry.values():
            print(f"{case.name:12} {case.description}", file=stream)
        return 0
    names = list(args.cases) or list(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise ConfigError(f"unknown bench case(s) {unknown}; known: {sorted(registry)}")
    cfg = BenchConfig(seconds=args.seconds, rounds=args.rounds)
    results: list[Result] = []
    for name in names:
        results.extend(registry[name].run(cfg))
    if args.json:
        doc = {
            "seconds": cfg.seconds,
            "rounds": cfg.rounds,
            "environment": environment(),
            "results": [r.as_dict() for r in results],
        }
        json.dump(doc, stream, indent=2)
        stream.write("\n")
    else:
        print_table(results, cfg, stream)
        for name in names:
            report = registry[name].report
            if report is not None:
                print(file=stream)
                report([r for r in results if r.case == name], stream)
    return 0


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


def print_table(results: list[Result], cfg: BenchConfig, out: TextIO) -> None:
    """Human-readable table, then the floor definitions and notes."""
    env = environment()
    print(
        f"mbmsec bench: {cfg.seconds:g} s per function in {cfg.rounds} alternating rounds, "
        f"best round counts; Python {env['python']}, cryptography {env['cryptography']}, "
        f"{env['openssl']}, {env['cpus']} CPUs",
        file=out,
    )
    print("ratio = ours ops/s / floor ops/s (1.00 = no overhead above the floor)\n", file=out)
    header = (
        f"{'case':8} {'measurement':26} {'ours/s':>10} {'us/op':>8} "
        f"{'floor/s':>10} {'us/op':>8} {'ratio':>6}"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in results:
        if r.floor is None:
            floor_cols = f"{'-':>10} {'-':>8} {'-':>6}"
        else:
            floor_cols = (
                f"{_fmt_rate(r.floor.per_second):>10} {r.floor.us_per_op:8.1f} "
                f"{r.ratio or 0.0:6.2f}"
            )
        print(
            f"{r.case:8} {r.name:26} {_fmt_rate(r.ours.per_second):>10} "
            f"{r.ours.us_per_op:8.1f} {floor_cols}",
            file=out,
        )
    print("\nfloor definitions:", file=out)
    for r in results:
        if r.floor_definition:
            print(f"  {r.case} {r.name}: {r.floor_definition}", file=out)
        for note in r.notes:
            print(f"  {r.case} {r.name}: note: {note}", file=out)
