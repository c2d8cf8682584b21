"""``mbmsec sim --plot/--csv``: the recorder's series against independent counts of the same run,
the figure and CSV the CLI writes, and the spread of first requests seen in the request peak."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from mbmsec.cli import main
from mbmsec.sim.engine import Address
from mbmsec.sim.metrics import SimRecorder, burst_window
from mbmsec.sim.world import BMSC_ADDR, build_world, ue_addr
from mbmsec.ue import events as ev

T0 = 1_700_000_000.0


def sim_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    rc = main(["sim", *args, "--json"])
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    assert rc == 0
    return out


def test_recorder_counts_match_an_independent_tap() -> None:
    rec = SimRecorder(T0, bucket=1.0)
    world = build_world(6, profile="mixed", seed=4, recorder=rec)
    into: Counter[int] = Counter()
    out: set[tuple[bytes, Address, float]] = set()

    def tap(src: Address, dst: Address, data: bytes, ts: float) -> None:
        k = int((ts - T0) // 1.0)
        if dst == BMSC_ADDR:
            into[k] += 1
        if src == BMSC_ADDR:  # a group datagram's copies (same bytes, time, dst) count once
            out.add((data, dst, ts))

    world.sim.add_tap(tap)
    world.run_until(T0 + 250)
    series = rec.result(250.0)
    # lossless links: every datagram the BM-SC sends or gets is delivered
    assert sum(series.counts["bmsc-datagrams-in"]) == sum(into.values()) > 0
    assert sum(series.counts["bmsc-datagrams-out"]) == len(out) > 0
    # datagrams in are counted in the bucket they arrive in (delivery is within the bucket)
    assert {k: c for k, c in enumerate(series.counts["bmsc-datagrams-in"]) if c} == dict(into)
    # requests: every non-bootstrap request-sent event, first attempts and retransmissions
    sent = [(i, e) for i, e in world.events if isinstance(e, ev.RequestSent)]
    keyreq = [(i, e) for i, e in sent if e.want != "bootstrap"]
    total = sum(sum(v) for k, v in series.counts.items() if k.startswith("requests-"))
    assert total == len(keyreq) == len(series.requests)
    gpp = sum(1 for i, _ in keyreq if i % 2 == 1)
    assert sum(series.counts["requests-3gpp-first"] + series.counts["requests-3gpp-retry"]) == gpp
    # a 3GPP key request is one HTTP request to the BM-SC, or two with a digest challenge
    assert gpp < sum(series.counts["bmsc-http-in"]) <= 2 * gpp
    # samples: one per second from the start; every UE current at the end
    assert [s[0] for s in series.samples] == [float(k) for k in range(251)]
    assert series.samples[0] == (0.0, 6, 0, 0)
    assert series.samples[-1] == (250.0, 6, 6, 6)
    assert series.msk_changes == (120.0, 240.0)
    # latency: lossless, so every delivery is one round trip (plus the BM-SC's Zn look-up)
    lat = [v for p in series.profiles for _, v in series.latencies[p]]
    assert lat and all(0 < v < 0.5 for v in lat)
    installed = sum(1 for _, e in world.events if isinstance(e, ev.MskInstalled))
    assert len(lat) <= installed


def test_recording_does_not_change_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = ["--ues", "5", "--duration", "260", "--loss", "0.2", "--seed", "9"]
    args += ["--unreachable", "1:100:200", "--bsf-outage", "30:60"]
    plain = sim_json(capsys, *args)
    recorded = sim_json(capsys, *args, "--plot", str(tmp_path / "f.svg"))
    assert plain == recorded


def test_cut_off_ue_shows_in_the_samples() -> None:
    rec = SimRecorder(T0, bucket=2.0)
    world = build_world(4, profile="compact", seed=3, recorder=rec)
    world.run_until(T0 + 50)
    world.sim.set_up(ue_addr(2), False)
    world.run_until(T0 + 150)
    world.sim.set_up(ue_addr(2), True)
    world.run_until(T0 + 200)
    s = {t: (msk, mtk) for t, _, msk, mtk in rec.result(200.0).samples}
    assert s[40.0] == (4, 4)
    assert s[100.0] == (4, 3)  # MTKs go by while cut off; the MSK still holds
    assert s[130.0] == (3, 3)  # after the MSK change at 120 s
    assert s[200.0] == (4, 4)  # caught up


def test_cli_writes_plot_and_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    svg, table = tmp_path / "run.svg", tmp_path / "run.csv"
    summary = sim_json(
        capsys, "--ues", "4", "--duration", "150", "--seed", "2", "--bsf-outage", "20:40",
        "--plot", str(svg), "--csv", str(table),
    )  # fmt: skip
    root = ET.fromstring(svg.read_bytes())
    ids = {e.get("id") for e in root.iter()}
    for panel in ("ues", "requests", "burst", "latency", "bmsc"):
        assert f"panel-{panel}" in ids
    for series in ("ues-total", "ues-msk", "ues-mtk", "requests-compact-first",
                   "requests-3gpp-retry", "latency-compact", "latency-3gpp",
                   "bmsc-datagrams-in", "bmsc-datagrams-out", "bmsc-http-in"):  # fmt: skip
        assert series in ids
    title = root.find("{http://www.w3.org/2000/svg}title")
    assert title is not None and "4 UEs (mixed)" in (title.text or "")
    assert any(e.text == "BSF down" for e in root.iter())
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    by: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by.setdefault(r["series"], []).append(r)
    assert [float(r["t"]) for r in by["ues-total"]] == [float(k) for k in range(151)]
    assert by["ues-current-mtk"][-1]["value"] == "4"
    assert [float(r["t"]) for r in by["msk-change"]] == [120.0]
    requests = sum(
        float(r["value"]) for name, rs in by.items() if name.startswith("requests-") for r in rs
    )
    peak = summary["request_peak"]
    assert isinstance(peak, dict) and 0 < peak["requests"] <= requests
    assert len(by["bmsc-datagrams-out"]) == 150


def test_zero_spread_makes_a_higher_request_peak(capsys: pytest.CaptureFixture[str]) -> None:
    # Triggers common to every UE (start-up, the renewal before each MSK change) fire at the
    # same instant; the first request is delayed by a random time in [0, spread). With spread
    # 0 they all land in one bucket of virtual time.
    for seed in ("1", "7"):
        base = ["--ues", "20", "--duration", "150", "--profile", "compact", "--seed", seed]
        spread = sim_json(capsys, *base)["request_peak"]
        burst = sim_json(capsys, *base, "--spread", "0")["request_peak"]
        nojit = sim_json(capsys, *base, "--no-jitter")["request_peak"]
        assert isinstance(spread, dict) and isinstance(burst, dict) and isinstance(nojit, dict)
        assert burst["requests"] > spread["requests"]
        assert burst["requests"] == nojit["requests"] == 20  # every UE in one bucket


def test_burst_window_is_around_the_renewal_burst() -> None:
    rec = SimRecorder(T0)
    world = build_world(10, profile="compact", seed=1, recorder=rec)
    world.run_until(T0 + 150)
    series = rec.result(150.0)
    a, b = burst_window(series)
    # the start-up is skipped: the window holds the renewal before the MSK change at 120 s
    renewals = [t for t, _, _ in series.requests if t > 30]
    assert renewals and a <= min(renewals) and max(renewals) < b < 120


def test_bad_bucket(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--ues", "2", "--bucket", "0"]) == 2
    assert "--bucket" in capsys.readouterr().err
