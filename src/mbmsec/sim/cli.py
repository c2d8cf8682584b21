"""``mbmsec sim``: run N UEs against one BM-SC on virtual time, over seeded lossy links.

Every node is the real sans-I/O object (:mod:`.world`); a run of hours takes seconds and is
reproducible from its seed. Every MTK period (at its middle) the run checks which UEs hold the
MTK the BM-SC uses, and prints one line per check; the summary counts requests, retries,
give-ups, error causes, and datagrams sent and lost. Exit status 0 when every UE is current at
the end, 1 otherwise.

Scenario knobs: ``--loss`` (each way, every UE link), ``--bsf-outage START:END`` (seconds from
the start; Ub and Zn down), ``--unreachable N:START:END`` (UE N cut off), ``--pcap FILE`` (every
delivered datagram), ``--json`` (the summary as one JSON object), ``--spread S`` (window of the
random delay before a UE's first request after a trigger; ``--no-jitter`` sets it and the
retransmission jitter to 0, so simultaneous triggers become one burst).

Plots: ``--plot FILE.svg`` draws five stacked panels (:mod:`.metrics`, :mod:`.plot`): UEs
holding the current MSK/MTK, key requests per second (first attempts and retransmissions per
profile), the key delivery latency CDF per profile, and the BM-SC's datagrams per second;
``--csv FILE`` writes the same series (``series,t,value``). Series are counted per ``--bucket``
seconds of virtual time. The summary names the fullest bucket of key requests
(``request_peak``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from ..errors import ConfigError
from ..ue import events as ev
from ..ue.retry import RetryPolicy
from .engine import LinkProfile
from .metrics import SimRecorder, figure
from .plot import render_svg
from .world import build_world, default_service, ue_addr

__all__ = ["register", "run_sim"]


def _span(text: str, parts: int) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(":"))
    except ValueError:
        raise ConfigError(f"bad span {text!r}") from None
    if len(values) != parts:
        raise ConfigError(f"bad span {text!r}: need {parts} numbers separated by ':'")
    return values


def run_sim(args: argparse.Namespace) -> dict[str, object]:
    """Run the scenario described by ``args``; return the summary."""
    if args.ues < 1 or not 0 <= args.loss < 1 or args.duration <= 0:
        raise ConfigError("need --ues >= 1, 0 <= --loss < 1, --duration > 0")
    if not args.bucket > 0:
        raise ConfigError("need --bucket > 0")
    start = 1_700_000_000.0
    svc = default_service(start, mtk_lifetime=args.mtk_period, msk_lifetime=args.msk_period)
    timing: dict[str, float] = {}
    if args.spread is not None:
        timing["spread"] = args.spread
    if args.no_jitter:
        timing.update(spread=0.0, jitter_ratio=0.0)
    retry = RetryPolicy(
        max_interval=args.max_interval,
        max_attempts=args.max_attempts,
        **timing,
    )
    plotting = args.plot is not None or args.csv is not None
    recorder = SimRecorder(start, args.bucket) if plotting else None
    world = build_world(
        args.ues,
        profile=args.profile,
        seed=args.seed,
        services=[svc],
        link=LinkProfile(loss=args.loss, delay=0.01, jitter=0.005),
        retry=retry,
        capture=args.pcap is not None,
        recorder=recorder,
    )
    changes: list[tuple[float, str, int, bool]] = []  # (time, what, UE, up)
    spans: list[tuple[float, float, str]] = []
    if args.bsf_outage:
        a, b = _span(args.bsf_outage, 2)
        changes += [(start + a, "bsf", -1, False), (start + b, "bsf", -1, True)]
        spans.append((a, b, "BSF down"))
    for text in args.unreachable or []:
        n, a, b = _span(text, 3)
        if not 0 <= int(n) < args.ues:
            raise ConfigError(f"--unreachable names UE {int(n)}, there are {args.ues}")
        changes += [(start + a, "ue", int(n), False), (start + b, "ue", int(n), True)]
        spans.append((a, b, f"UE {int(n)} cut off"))
    changes.sort()
    checks = []
    t = start + args.mtk_period / 2
    while t <= start + args.duration:
        while changes and changes[0][0] <= t:
            when, what, n, up = changes.pop(0)
            world.run_until(when)
            if what == "bsf":
                world.set_bsf_up(up)
            else:
                world.sim.set_up(ue_addr(n), up)
        world.run_until(t)
        stale = world.all_current(svc)
        checks.append({"t": round(t - start, 3), "current": args.ues - len(stale), "stale": stale})
        if not args.json:
            print(f"t={t - start:8.1f}s current {args.ues - len(stale):5d}/{args.ues}", flush=True)
        t += args.mtk_period
    world.run_until(start + args.duration)
    counts: Counter[str] = Counter()
    causes: Counter[str] = Counter()
    for _, e in world.events:
        counts[e.name] += 1
        if isinstance(e, ev.RequestSent) and e.attempt > 1:
            counts["retransmission"] += 1
        if isinstance(e, ev.RequestRefused):
            causes[e.cause_name] += 1
    if args.pcap is not None and world.pcap is not None:
        Path(args.pcap).write_bytes(world.pcap.getvalue())
    if recorder is None:  # the request peak comes from the events alone
        recorder = SimRecorder(start, args.bucket)
        recorder.add_events(world.events, [ue.config.profile for ue in world.ues])
    series = recorder.result(args.duration)
    if args.plot is not None:
        Path(args.plot).write_text(render_svg(figure(series, spans), *_titles(args, retry)))
    if args.csv is not None:
        Path(args.csv).write_text(series.to_csv())
    peak_t, peak_n = series.peak_requests()
    s = world.sim.stats
    return {
        "ues": args.ues,
        "profile": args.profile,
        "seed": args.seed,
        "loss": args.loss,
        "checks": checks,
        "all_current_at_end": bool(checks) and not checks[-1]["stale"],
        "events": dict(sorted(counts.items())),
        "causes": dict(sorted(causes.items())),
        "datagrams": {"sent": s.sent, "delivered": s.delivered, "lost": s.lost},
        "http": {"requests": s.http_requests, "failed": s.http_failed},
        "bmsc": dict(sorted(world.core.stats.items())),
        "request_peak": {"t": peak_t, "requests": peak_n, "bucket": args.bucket},
    }


def _titles(args: argparse.Namespace, retry: RetryPolicy) -> tuple[str, str]:
    title = (
        f"mbmsec sim: {args.ues} UEs ({args.profile}), loss {args.loss:g} each way, "
        f"seed {args.seed}"
    )
    sub = (
        f"MTK {args.mtk_period:g} s, MSK {args.msk_period:g} s; first request spread "
        f"{retry.spread:g} s, retransmission jitter \u00b1{retry.jitter_ratio * 100:g}%, "
        f"back-off cap {retry.max_interval:g} s; counts per {args.bucket:g} s of virtual time"
    )
    return title, sub


def _run(args: argparse.Namespace) -> int:
    summary = run_sim(args)
    if args.json:
        print(json.dumps(summary, separators=(",", ":")))
    else:
        for key in ("events", "causes", "datagrams", "http"):
            print(f"{key}: {json.dumps(summary[key])}")
    ok = bool(summary["all_current_at_end"])
    if not ok:
        print("mbmsec sim: not every UE is current at the end", file=sys.stderr)
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mbmsec sim``."""
    p = subparsers.add_parser(
        "sim",
        help="simulate N UEs and a BM-SC on virtual time",
        description="Run the real HSS, BSF, BM-SC and UE objects on virtual time over lossy "
        "simulated links (seeded, reproducible); print a summary, optionally plots and a pcap. "
        "See docs/sim.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ues", type=int, default=50, help="number of UEs")
    p.add_argument(
        "--profile",
        choices=("compact", "3gpp", "mixed"),
        default="mixed",
        help="request profile of the UEs (mixed: half each)",
    )
    p.add_argument("--loss", type=float, default=0.0, help="loss probability, each way")
    p.add_argument("--duration", type=float, default=600.0, help="virtual seconds")
    p.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    p.add_argument("--mtk-period", type=float, default=20.0, help="MTK rotation period (s)")
    p.add_argument("--msk-period", type=float, default=120.0, help="MSK rotation period (s)")
    p.add_argument("--max-interval", type=float, default=4.0, help="retry back-off cap (s)")
    p.add_argument(
        "--max-attempts", type=int, default=12, help="request attempts before a UE gives up"
    )
    p.add_argument(
        "--bsf-outage", metavar="START:END", help="BSF down between these virtual times (s)"
    )
    p.add_argument(
        "--unreachable",
        action="append",
        metavar="UE:START:END",
        help="UE number UE cut off between these virtual times (repeatable)",
    )
    p.add_argument("--pcap", help="write every delivered datagram to this pcap file")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument(
        "--spread",
        type=float,
        help=f"window (s) of the random delay before a first request (default "
        f"{RetryPolicy().spread:g})",
    )
    p.add_argument(
        "--no-jitter",
        action="store_true",
        help="no random spread of first requests and no retransmission jitter",
    )
    p.add_argument("--plot", metavar="FILE.svg", help="write plots of the run (SVG)")
    p.add_argument("--csv", metavar="FILE", help="write the plotted series (series,t,value)")
    p.add_argument(
        "--bucket", type=float, default=1.0, help="seconds per sample and count (default 1)"
    )
    p.set_defaults(func=_run)
