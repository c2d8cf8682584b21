"""``mbmsec demo`` end to end at a small size: the JSON report, the capture (through tshark) and
the key log (it decrypts the captured SRTP), and the deliberate failures.

Each run starts the real BSF, BM-SC and UEs on loopback sockets in this process.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest

from mbmsec.cli import main
from mbmsec.demo.keylog import parse_keylog
from mbmsec.demo.scenario import PHASES
from mbmsec.srtp import Mki, SrtpKey, SrtpReceiver

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
from tshark_harness import assert_clean, dissect

FAST = ["--mtk-period", "0.5", "--quiet"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["demo", *argv])
    return rc, capsys.readouterr().out


def _decode_as(report: dict[str, object]) -> list[str]:
    """The ``-d`` options the demo printed for ports tshark does not know by default."""
    capture = report["capture"]
    assert isinstance(capture, dict)
    words = shlex.split(str(capture["tshark"]))
    return [words[i + 1] for i, w in enumerate(words) if w == "-d"]


@pytest.mark.timeout(120)
def test_demo_passes_and_its_capture_and_keylog_decode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report_path, pcap, keys = tmp_path / "r.json", tmp_path / "d.pcap", tmp_path / "k.txt"
    rc, out = _run(
        ["--ues", "4", *FAST, "--json", str(report_path), "--pcap", str(pcap), "--keylog",
         str(keys)],
        capsys,
    )  # fmt: skip
    report = json.loads(report_path.read_text())
    assert rc == 0, report["verdict"]
    assert report["verdict"]["ok"] and report["verdict"]["text"].startswith("PASS")
    assert [p["name"] for p in report["phases"]] == [name for name, _ in PHASES]
    assert all(p["ok"] and p["end_s"] is not None for p in report["phases"])
    outage = next(p for p in report["phases"] if p["name"] == "bsf-outage")
    assert any("got an error cause" in e for e in outage["events"]), outage
    assert report["mtk"]["mtk_rotations"] >= 3 and report["mtk"]["msk_rotations"] == 1
    for profile in ("compact", "3gpp"):
        kd = report["key_delivery"][profile]
        assert kd["deliveries"] >= 4  # two UEs, first MSK and the next one each
        assert kd["latency_ms"]["p50"] is not None and kd["messages_per_delivery"] > 1
    srtp = report["srtp"]
    assert srtp["sent"] > 0 and len(srtp["per_ue"]) == 4
    for ue in srtp["per_ue"]:
        assert ue["expected"] > 0 and ue["missed"] == 0 and ue["decrypted"] == ue["expected"]
    assert srtp["all"]["ues_complete"] == 4
    assert out.strip().splitlines()[-1].startswith("capture written: tshark -r")

    # the capture: every MIKEY datagram dissects cleanly; HTTP shows Ub, Zn and key management
    pkts = dissect(pcap, ("udp.check_checksum:TRUE", "tcp.check_checksum:TRUE"), _decode_as(report))
    mikey = [p for p in pkts if p.has_proto("mikey")]
    for p in mikey:
        assert_clean(p)
    types = {p.proto("mikey").one("mikey.type").int for p in mikey}
    assert {0, 1, 6, 241} <= types  # key/MSK/MTK messages, verification, Error, key request
    codes = {f.show for p in pkts for f in p.find("http.response.code")}
    assert {"200", "401", "503"} <= codes
    for p in pkts:
        if p.has_proto("http"):
            assert_clean(p)
    assert report["capture"]["datagrams"] > srtp["sent"]

    # the key log decrypts every captured SRTP packet
    entries = parse_keylog(keys.read_text().splitlines())
    labels = {e.label for e in entries}
    assert {"KS_NAF", "MRK", "MUK", "MSK", "MTK", "SRTP"} <= labels
    receiver = SrtpReceiver(max_keys=256)
    for e in entries:
        if e.label == "SRTP":
            salt, roc = e.extra
            mki = Mki.decode(bytes.fromhex(e.ids[0]))
            receiver.add_key(SrtpKey(mki, e.key, bytes.fromhex(salt), int(roc)))
    media = {
        f.raw
        for p in pkts
        if p.has_proto("udp") and not p.has_proto("mikey")
        for f in p.find("data.data")
    }
    assert len(media) == srtp["sent"]
    for packet in sorted(media, key=lambda m: int.from_bytes(m[2:4], "big")):
        receiver.unprotect(packet)


@pytest.mark.timeout(120)
def test_demo_unicast_fan_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report_path = tmp_path / "r.json"
    rc, _ = _run(
        ["--ues", "2", "--profile", "3gpp", "--unicast", *FAST, "--json", str(report_path)],
        capsys,
    )
    report = json.loads(report_path.read_text())
    assert rc == 0, report["verdict"]
    assert report["transport"] == "unicast fan-out"
    assert set(report["key_delivery"]) == {"3gpp"}


@pytest.mark.timeout(60)
def test_break_wrong_k_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report_path = tmp_path / "r.json"
    rc, out = _run(["--ues", "3", *FAST, "--break", "wrong-k", "--json", str(report_path)], capsys)
    assert rc == 1
    last = out.strip().splitlines()[-1]
    assert last.startswith("FAIL: ue002 cannot bootstrap: AkaMacError"), last
    assert "disagree on the subscriber key K" in last
    assert "Traceback" not in out
    assert not json.loads(report_path.read_text())["verdict"]["ok"]


@pytest.mark.timeout(60)
def test_break_zn_credentials_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _run(["--ues", "3", *FAST, "--break", "zn-credentials"], capsys)
    assert rc == 1
    last = out.strip().splitlines()[-1]
    assert last.startswith("FAIL: the BSF refused the BM-SC's Zn requests"), last
    assert "HTTP 401" in last and "Traceback" not in out


@pytest.mark.timeout(60)
def test_global_timeout_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out = _run(["--ues", "2", *FAST, "--timeout", "1.5"], capsys)
    assert rc == 1
    assert "FAIL: global timeout: the demo did not finish within 2 s in phase" in out


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--ues", "0"]) == 2
    assert "--ues must be between" in capsys.readouterr().err
    assert main(["demo", "--ues", "2", "--json", "/nonexistent-dir/r.json"]) == 2
    assert "--json /nonexistent-dir/r.json" in capsys.readouterr().err
