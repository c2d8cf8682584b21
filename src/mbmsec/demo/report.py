"""What the demo counts while it runs, and the report it prints at the end.

Sans-I/O: the orchestrator feeds events with timestamps it reads itself; this module only keeps
counters and renders them. The same :func:`build_report` dictionary is printed as text
(:func:`render_text`) and written as JSON (``--json FILE``).

The verdict rule (docs/demo.md): the demo passes when every phase completed, every UE obtained
its keys, and every UE decrypted every SRTP packet that was sent after it held the keys for
that packet (the MTK named by the packet's MKI) while it was reachable. Packets sent while a UE
was unreachable, or before its keys arrived, are counted as "not expected", never as failures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DeliverySample",
    "DemoMetrics",
    "PhaseRecord",
    "UeCounters",
    "build_report",
    "percentile",
    "render_text",
]


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile ``p`` (0-100] of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class PhaseRecord:
    """One scenario phase: when it ran (seconds since the demo started) and what happened."""

    name: str
    title: str
    started: float
    ended: float | None = None
    events: list[str] = field(default_factory=list)
    ok: bool = True


@dataclass(frozen=True, slots=True)
class DeliverySample:
    """One MSK installed by one UE. ``latency``: from the request attempt that was answered to
    the MSK being installed (None for a key the BM-SC pushed unasked); ``via``: how it came."""

    profile: str
    latency: float | None
    via: str = ""


@dataclass
class UeCounters:
    """SRTP and key counters of one UE. Packet numbers are the media source's send index."""

    name: str
    profile: str
    expected: set[int] = field(default_factory=set)
    decrypted: set[int] = field(default_factory=set)
    received: int = 0
    auth_failures: int = 0
    unknown_mki: int = 0
    replayed: int = 0
    key_deliveries: int = 0
    bootstrapped: bool = False
    held_keys: bool = False
    error_causes: dict[str, int] = field(default_factory=dict)

    @property
    def missed(self) -> set[int]:
        """Expected packets that were not decrypted."""
        return self.expected - self.decrypted


class DemoMetrics:
    """Counters of one demo run, fed by the orchestrator."""

    def __init__(self) -> None:
        self.phases: list[PhaseRecord] = []
        self.deliveries: list[DeliverySample] = []
        # key management traffic per profile: [messages, octets] (UDP datagrams between UE
        # and BM-SC MIKEY port, HTTP messages between UE and BM-SC; not Ub, not MTK messages)
        self.traffic: dict[str, list[int]] = {}
        self.ues: dict[str, UeCounters] = {}
        self.srtp_sent = 0
        self.srtp_octets = 0
        self.mtk_messages = 0
        self.mtk_octets = 0
        self.mtk_rotations = 0
        self.msk_rotations = 0
        self.failures: list[str] = []
        self.notes: list[str] = []

    # --- phases ---------------------------------------------------------------------------

    def begin_phase(self, name: str, title: str, now: float) -> PhaseRecord:
        """Close the running phase (if any) and open ``name`` at ``now``."""
        self.end_phase(now)
        rec = PhaseRecord(name, title, now)
        self.phases.append(rec)
        return rec

    def end_phase(self, now: float) -> None:
        """Close the running phase at ``now`` (no effect when none is open)."""
        if self.phases and self.phases[-1].ended is None:
            self.phases[-1].ended = now

    @property
    def current_phase(self) -> PhaseRecord | None:
        """The open phase, or None."""
        if self.phases and self.phases[-1].ended is None:
            return self.phases[-1]
        return None

    def event(self, text: str) -> None:
        """Record one line under the running phase (or as a general note)."""
        phase = self.current_phase
        if phase is None:
            self.notes.append(text)
        else:
            phase.events.append(text)

    def fail(self, text: str) -> None:
        """Record a failure: the verdict becomes FAIL and ``text`` is shown as the reason."""
        self.failures.append(text)
        phase = self.current_phase
        if phase is not None:
            phase.ok = False
            phase.events.append(f"FAILED: {text}")

    # --- UEs and keys ---------------------------------------------------------------------

    def add_ue(self, name: str, profile: str) -> UeCounters:
        """Register UE ``name`` of ``profile`` and return its counters."""
        counters = UeCounters(name, profile)
        self.ues[name] = counters
        return counters

    def delivery(self, sample: DeliverySample) -> None:
        """Record one completed MSK delivery."""
        self.deliveries.append(sample)

    def key_traffic(self, profile: str, octets: int, messages: int = 1) -> None:
        """Count key management traffic of ``profile`` UEs."""
        t = self.traffic.setdefault(profile, [0, 0])
        t[0] += messages
        t[1] += octets

    def error_cause(self, ue: str, cause: str) -> None:
        """Count an error cause (MIKEY Error / HTTP status) that UE ``ue`` received."""
        causes = self.ues[ue].error_causes
        causes[cause] = causes.get(cause, 0) + 1

    # --- verdict --------------------------------------------------------------------------

    def verdict_reasons(self) -> list[str]:
        """Why the run fails (empty when it passes)."""
        reasons = list(self.failures)
        for phase in self.phases:
            if phase.ended is None:
                reasons.append(f"phase {phase.name} did not finish")
        no_keys = sorted(u.name for u in self.ues.values() if not u.held_keys)
        if no_keys:
            reasons.append(f"{len(no_keys)} UE(s) never held keys: {_names(no_keys)}")
        missing = sorted(u.name for u in self.ues.values() if u.missed)
        if missing:
            total = sum(len(self.ues[n].missed) for n in missing)
            reasons.append(
                f"{len(missing)} UE(s) missed {total} SRTP packet(s) they held keys for: "
                f"{_names(missing)}"
            )
        if self.ues and self.srtp_sent == 0:
            reasons.append("no SRTP packet was sent")
        return reasons


def _names(names: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown}, ... (+{len(names) - limit})"


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 3)


def _delivery_summary(samples: Iterable[DeliverySample], traffic: Sequence[int]) -> dict[str, Any]:
    items = list(samples)
    lat = [s.latency for s in items if s.latency is not None]
    n = len(items)
    msgs, octets = (traffic[0], traffic[1]) if traffic else (0, 0)
    vias: dict[str, int] = {}
    for s in items:
        vias[s.via] = vias.get(s.via, 0) + 1
    return {
        "deliveries": n,
        "via": dict(sorted(vias.items())),
        "latency_ms": {
            "p50": _ms(percentile(lat, 50)),
            "p99": _ms(percentile(lat, 99)),
            "max": _ms(max(lat) if lat else None),
            "samples": len(lat),
        },
        "messages": msgs,
        "bytes": octets,
        "messages_per_delivery": round(msgs / n, 2) if n else None,
        "bytes_per_delivery": round(octets / n, 1) if n else None,
    }


def _srtp_summary(ues: Sequence[UeCounters]) -> dict[str, Any]:
    expected = [len(u.expected) for u in ues]
    decrypted = [len(u.decrypted & u.expected) for u in ues]
    missed = [len(u.missed) for u in ues]
    return {
        "ues": len(ues),
        "ues_complete": sum(1 for u in ues if not u.missed and u.held_keys),
        "expected_total": sum(expected),
        "decrypted_total": sum(decrypted),
        "missed_total": sum(missed),
        "auth_failures_total": sum(u.auth_failures for u in ues),
        "unknown_mki_total": sum(u.unknown_mki for u in ues),
        "expected_per_ue": {
            "min": min(expected, default=0),
            "median": percentile(expected, 50) if expected else 0,
            "max": max(expected, default=0),
        },
    }


def build_report(
    metrics: DemoMetrics, *, config: dict[str, Any], transport: str, duration: float
) -> dict[str, Any]:
    """Return the report as a JSON-ready dictionary (see docs/demo.md for the fields)."""
    reasons = metrics.verdict_reasons()
    profiles = sorted({u.profile for u in metrics.ues.values()})
    ues = list(metrics.ues.values())
    per_profile = {
        p: _delivery_summary(
            (s for s in metrics.deliveries if s.profile == p), metrics.traffic.get(p, [])
        )
        for p in profiles
    }
    return {
        "verdict": {
            "ok": not reasons,
            "text": verdict_line(metrics, reasons),
            "reasons": reasons,
        },
        "config": config,
        "transport": transport,
        "duration_s": round(duration, 3),
        "phases": [
            {
                "name": ph.name,
                "title": ph.title,
                "start_s": round(ph.started, 3),
                "end_s": None if ph.ended is None else round(ph.ended, 3),
                "ok": ph.ok,
                "events": list(ph.events),
            }
            for ph in metrics.phases
        ],
        "key_delivery": per_profile,
        "mtk": {
            "messages": metrics.mtk_messages,
            "bytes": metrics.mtk_octets,
            "mtk_rotations": metrics.mtk_rotations,
            "msk_rotations": metrics.msk_rotations,
        },
        "srtp": {
            "sent": metrics.srtp_sent,
            "bytes": metrics.srtp_octets,
            "all": _srtp_summary(ues),
            "by_profile": {p: _srtp_summary([u for u in ues if u.profile == p]) for p in profiles},
            "per_ue": [
                {
                    "ue": u.name,
                    "profile": u.profile,
                    "expected": len(u.expected),
                    "decrypted": len(u.decrypted & u.expected),
                    "missed": len(u.missed),
                    "received": u.received,
                    "auth_failures": u.auth_failures,
                    "unknown_mki": u.unknown_mki,
                    "key_deliveries": u.key_deliveries,
                    "error_causes": dict(sorted(u.error_causes.items())),
                }
                for u in ues
            ],
        },
        "notes": list(metrics.notes),
    }


def verdict_line(metrics: DemoMetrics, reasons: Sequence[str]) -> str:
    """The one-line verdict."""
    n = len(metrics.ues)
    if not reasons:
        return (
            f"PASS: {n} UE(s) decrypted every SRTP packet sent after they held its keys "
            f"({metrics.srtp_sent} packets, {metrics.mtk_rotations} MTK and "
            f"{metrics.msk_rotations} MSK rotation(s))"
        )
    return f"FAIL: {reasons[0]}" + (f" (+{len(reasons) - 1} more)" if len(reasons) > 1 else "")


def _fmt_ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def render_text(report: dict[str, Any]) -> str:
    """Render :func:`build_report` output as the short text report."""
    lines: list[str] = []
    cfg = report["config"]
    lines.append(
        f"mbmsec demo: {cfg.get('ues')} UE(s), profile {cfg.get('profile')}, "
        f"transport {report['transport']}, {report['duration_s']:.1f} s"
    )
    lines.append("phases:")
    for ph in report["phases"]:
        end = "..." if ph["end_s"] is None else f"{ph['end_s']:6.2f}"
        mark = "ok" if ph["ok"] else "FAILED"
        lines.append(f"  [{ph['start_s']:6.2f} - {end}] {ph['title']}: {mark}")
        for ev in ph["events"][:8]:
            lines.append(f"      {ev}")
        if len(ph["events"]) > 8:
            lines.append(f"      ... {len(ph['events']) - 8} more")
    lines.append("key delivery (MSK, per profile):")
    for prof, s in report["key_delivery"].items():
        lat = s["latency_ms"]
        per = (
            "-"
            if s["messages_per_delivery"] is None
            else f"{s['messages_per_delivery']:g} msgs / {s['bytes_per_delivery']:g} bytes"
        )
        lines.append(
            f"  {prof:8s} {s['deliveries']:5d} deliveries  p50 {_fmt_ms(lat['p50'])}  "
            f"p99 {_fmt_ms(lat['p99'])}  per delivery {per}"
        )
    mtk = report["mtk"]
    lines.append(
        f"MTK messages: {mtk['messages']} ({mtk['bytes']} bytes); rotations: "
        f"{mtk['mtk_rotations']} MTK, {mtk['msk_rotations']} MSK"
    )
    srtp = report["srtp"]
    a = srtp["all"]
    lines.append(
        f"SRTP: {srtp['sent']} packets sent; per UE expected min/median/max "
        f"{a['expected_per_ue']['min']}/{a['expected_per_ue']['median']}/"
        f"{a['expected_per_ue']['max']}; decrypted {a['decrypted_total']} of "
        f"{a['expected_total']} expected, missed {a['missed_total']}, auth failures "
        f"{a['auth_failures_total']}, unknown MKI {a['unknown_mki_total']}; "
        f"{a['ues_complete']}/{a['ues']} UEs complete"
    )
    worst = sorted(
        (u for u in srtp["per_ue"] if u["missed"]), key=lambda u: u["missed"], reverse=True
    )
    for u in worst[:5]:
        lines.append(
            f"  {u['ue']} ({u['profile']}): missed {u['missed']} of {u['expected']} "
            f"(auth failures {u['auth_failures']}, unknown MKI {u['unknown_mki']})"
        )
    for note in report["notes"]:
        lines.append(f"note: {note}")
    lines.append(report["verdict"]["text"])
    return "\n".join(lines) + "\n"
