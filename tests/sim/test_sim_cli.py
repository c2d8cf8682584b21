"""``mbmsec sim``: the scenario runner prints per-period checks and a summary."""

from __future__ import annotations

import json

import pytest

from mbmsec.cli import main


def test_sim_json_summary_with_unreachable_ue(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "sim", "--ues", "6", "--duration", "400", "--loss", "0.1", "--seed", "3",
            "--unreachable", "2:30:250", "--bsf-outage", "60:90", "--json",
        ]
    )  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["all_current_at_end"]
    by_t = {c["t"]: c["stale"] for c in summary["checks"]}
    assert 2 in by_t[230.0]  # cut off across an MSK change (T+120, T+240): stale
    assert all(not by_t[t] for t in by_t if t >= 290)  # caught up after coming back
    assert summary["events"]["bootstrapped"] >= 6
    assert summary["datagrams"]["lost"] > 0


def test_sim_text_output_and_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "--ues", "2", "--duration", "45"]) == 0
    out = capsys.readouterr().out
    assert "current     2/2" in out and "events:" in out
    assert main(["sim", "--ues", "2", "--unreachable", "5:1:2"]) == 2
    assert "UE 5" in capsys.readouterr().err
