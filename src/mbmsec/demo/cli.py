"""``mbmsec demo``: run HSS+BSF, the BM-SC and N UEs on loopback and play the scenario.

See docs/demo.md. Exit status: 0 when every UE decrypted every SRTP packet sent after it held
its keys (verdict PASS), 1 otherwise (a phase failed, a deliberate ``--break``, the global
timeout), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .scenario import Break, DemoConfig, ProfileMix

__all__ = ["config_from_args", "register"]


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command."""
    p = subparsers.add_parser(
        "demo",
        help="run the whole system on loopback and play a key-rotation scenario",
        description=(
            "Start HSS+BSF, the BM-SC and N UEs (real servers and clients over loopback "
            "sockets, SQLite stores in a temp dir), bootstrap, register, stream SRTP keyed "
            "from the MTK through MTK and MSK rotations, an unreachable UE and a BSF outage, "
            "then print a report. Exit 0 only when every UE decrypted every packet it held "
            "the keys for."
        ),
    )
    p.add_argument("--ues", type=int, default=20, help="number of UEs (default 20)")
    p.add_argument(
        "--profile",
        choices=[m.value for m in ProfileMix],
        default=ProfileMix.MIXED.value,
        help="key request profile of the UEs: compact, 3gpp, or mixed (half each; default)",
    )
    p.add_argument(
        "--mtk-period", type=float, default=1.0, help="MTK period in seconds (default 1)"
    )
    p.add_argument(
        "--mtk-rotations",
        type=int,
        default=3,
        help="MTK rotations at least in the stream phase (default 3)",
    )
    p.add_argument(
        "--outage", type=float, default=1.5, help="seconds the UE stays unreachable (default 1.5)"
    )
    p.add_argument(
        "--packet-interval",
        type=float,
        default=None,
        help="seconds between SRTP packets (default 0.02, longer for many UEs)",
    )
    p.add_argument(
        "--unicast",
        action="store_true",
        help="do not use multicast: the BM-SC and the media source fan out unicast copies",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the report as JSON")
    p.add_argument(
        "--pcap", type=Path, metavar="FILE", help="write every datagram and HTTP message"
    )
    p.add_argument(
        "--keylog",
        type=Path,
        metavar="FILE",
        help="write the keys used (secret! format in docs/demo.md) to decrypt the capture",
    )
    p.add_argument(
        "--break",
        dest="break_",
        choices=[b.value for b in Break],
        help="break something on purpose: one UE gets a wrong K, or the BM-SC wrong Zn "
        "credentials; the demo must then fail",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="global timeout in seconds (default 90 + 0.3/UE)",
    )
    p.add_argument(
        "--phase-timeout", type=float, default=20.0, help="base deadline of each phase (s)"
    )
    p.add_argument("--workdir", type=Path, help="keep the SQLite stores here (default: temp dir)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, report only on FAIL")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> DemoConfig:
    """Build the :class:`DemoConfig`; raises ConfigError for bad values."""
    return DemoConfig(
        ues=args.ues,
        profile=ProfileMix(args.profile),
        mtk_period=args.mtk_period,
        mtk_rotations=args.mtk_rotations,
        outage=args.outage,
        packet_interval=args.packet_interval,
        phase_timeout=args.phase_timeout,
        timeout=args.timeout,
        force_unicast=args.unicast,
        pcap=args.pcap,
        keylog=args.keylog,
        json=args.json,
        workdir=args.workdir,
        break_=Break(args.break_) if args.break_ else None,
        quiet=args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    """Entry point of ``mbmsec demo``."""
    from .orchestrate import run_demo

    return run_demo(config_from_args(args))
