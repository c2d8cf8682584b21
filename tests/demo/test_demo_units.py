"""Report, progress, key log and capture pieces of the demo (tshark decodes the capture)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from mbmsec.demo.capture import Capture, serialize_request, serialize_response
from mbmsec.demo.keylog import KeyLog, parse_keylog
from mbmsec.demo.progress import Progress
from mbmsec.demo.report import DeliverySample, DemoMetrics, build_report, percentile, render_text
from mbmsec.errors import ConfigError, DecodeError
from mbmsec.httpmsg import HttpRequest, HttpResponse

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
from tshark_harness import assert_clean, dissect


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    vals = [float(i) for i in range(1, 101)]
    assert percentile(vals, 50) == 50.0
    assert percentile(vals, 99) == 99.0
    assert percentile(vals, 100) == 100.0
    assert percentile([5.0, 1.0, 3.0], 50) == 3.0


def _metrics() -> DemoMetrics:
    m = DemoMetrics()
    m.begin_phase("bootstrap", "Bootstrap (Ub)", 0.0)
    a = m.add_ue("ue-0", "compact")
    b = m.add_ue("ue-1", "3gpp")
    for u in (a, b):
        u.held_keys = True
        u.bootstrapped = True
    m.delivery(DeliverySample("compact", 0.002, "compact"))
    m.delivery(DeliverySample("3gpp", 0.010, "push"))
    m.delivery(DeliverySample("3gpp", None, "push"))
    m.key_traffic("compact", 180, 2)
    m.key_traffic("3gpp", 2800, 10)
    m.srtp_sent = 10
    a.expected.update(range(10))
    a.decrypted.update(range(10))
    b.expected.update(range(3, 10))
    b.decrypted.update(range(10))
    m.end_phase(1.0)
    return m


def test_report_pass_and_json_roundtrip() -> None:
    m = _metrics()
    rep = build_report(m, config={"ues": 2, "profile": "mixed"}, transport="multicast", duration=1)
    assert rep["verdict"]["ok"], rep["verdict"]
    assert rep["verdict"]["text"].startswith("PASS")
    assert rep["key_delivery"]["compact"]["latency_ms"]["p50"] == 2.0
    assert rep["key_delivery"]["3gpp"]["messages_per_delivery"] == 5
    assert rep["key_delivery"]["3gpp"]["bytes_per_delivery"] == 1400
    assert rep["key_delivery"]["3gpp"]["latency_ms"]["samples"] == 1
    assert rep["srtp"]["all"]["expected_total"] == 17
    assert rep["srtp"]["all"]["decrypted_total"] == 17
    assert json.loads(json.dumps(rep)) == rep
    text = render_text(rep)
    assert "PASS" in text.splitlines()[-1]
    assert "compact" in text and "3gpp" in text


def test_report_fails_on_a_missed_packet_and_unfinished_phase() -> None:
    m = _metrics()
    m.ues["ue-1"].decrypted.discard(7)
    m.begin_phase("stream", "SRTP stream", 2.0)
    rep = build_report(m, config={}, transport="unicast", duration=3)
    assert not rep["verdict"]["ok"]
    reasons = rep["verdict"]["reasons"]
    assert any("did not finish" in r for r in reasons)
    assert any("missed 1 SRTP packet" in r and "ue-1" in r for r in reasons)
    assert rep["verdict"]["text"].startswith("FAIL")


def test_report_fails_when_a_ue_never_held_keys() -> None:
    m = _metrics()
    m.ues["ue-0"].held_keys = False
    m.fail("registration timed out")
    rep = build_report(m, config={}, transport="multicast", duration=1)
    assert rep["verdict"]["reasons"][0] == "registration timed out"
    assert any("never held keys: ue-0" in r for r in rep["verdict"]["reasons"])


def test_progress_tty_rewrites_one_line_and_pipe_prints_lines() -> None:
    out = io.StringIO()
    p = Progress(out, tty=True, tty_interval=0.1)
    p.state.phase = "bootstrap"
    p.tick(0.0)
    p.tick(0.05)  # not due
    p.tick(0.2)
    p.close(0.3)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1

    out = io.StringIO()
    p = Progress(out, tty=False, line_interval=2.0)
    p.state.phase = "bootstrap"
    p.tick(0.0)
    p.tick(1.0)
    p.state.phase = "stream"
    p.tick(1.5)  # phase change forces a line
    p.tick(5.0)
    assert "\r" not in out.getvalue()
    assert len(out.getvalue().splitlines()) == 3


def test_keylog_writes_parses_and_refuses_spaces(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    log = KeyLog(path)
    log.muk("bmsc.example", "btid@bsf", bytes(range(32)))
    log.msk(b"\x00\xf1\x10", 0x00010002, b"\x11" * 16)
    log.mtk(0x00010002, 3, b"\x22" * 16, b"\x33" * 14)
    log.mtk(0x00010002, 3, b"\x22" * 16, b"\x33" * 14)  # duplicate: written once
    log.srtp(bytes.fromhex("000100020003"), b"\x22" * 16, b"\x33" * 14, 0)
    assert path.stat().st_mode & 0o777 == 0o600
    entries = parse_keylog(path.read_text().splitlines())
    assert [e.label for e in entries] == ["MUK", "MSK", "MTK", "SRTP"]
    assert entries[2].ids == ("00010002", "0003") and entries[2].key == b"\x22" * 16
    assert entries[2].extra == ("33" * 14,)
    assert entries[3].extra == ("33" * 14, "0")
    assert "22222222" not in repr(entries[2])
    with pytest.raises(ConfigError):
        log.muk("bad id", "x", b"\x00")
    with pytest.raises(DecodeError):
        parse_keylog(["MTK 1 2"])


# spec-digest §5.2 PSK I_MESSAGE (as in tests/conformance/test_tshark_mikey.py).
SPEC_I_MESSAGE = bytes.fromhex(
    "010005801122334400010b02000000010110000102030405060708090a0b0c0d0e0f0001001437"
    "49766af07ac1b0c66cef5bbc3c1bb4b28760a2010b8bc7161bc6529e5a5a19f0dfc117270661828c"
)


def test_capture_decodes_in_tshark(tmp_path: Path) -> None:
    cap = Capture()
    ue, bsf = ("127.0.0.1", 40001), ("127.0.0.1", 8080)
    req = HttpRequest("GET", "/", (("User-Agent", "mbmsec-test"),))
    resp = HttpResponse.text(401, "unauthorized", (("WWW-Authenticate", 'Digest realm="x"'),))
    assert serialize_request(req, "h:1").startswith(b"GET / HTTP/1.1\r\nUser-Agent: mbmsec-test")
    assert b"Content-Length: 12\r\n\r\nunauthorized" in serialize_response(resp)
    cap.http_messages(ue, bsf, req, resp, 1700000000.0, 1700000000.001)
    cap.http_messages(ue, bsf, req, HttpResponse.text(200, "ok"), 1700000000.01)
    cap.udp(("127.0.0.1", 2269), ("239.255.1.1", 2269), SPEC_I_MESSAGE, 1700000000.005)
    path = tmp_path / "c.pcap"
    path.write_bytes(cap.pcap_bytes())
    pkts = dissect(path, ("udp.check_checksum:TRUE", "tcp.check_checksum:TRUE"))
    for p in pkts:
        assert_clean(p)
    codes = [f.show for p in pkts for f in p.find("http.response.code")]
    assert codes == ["401", "200"]
    csb = [p.proto("mikey").one("mikey.csb_id").int for p in pkts if p.has_proto("mikey")]
    assert csb == [0x11223344]
    assert cap.stats.http_exchanges == 2 and cap.stats.datagrams == 1


def test_timing_places_the_msk_rotation_after_the_phases_that_precede_it() -> None:
    from mbmsec.demo.scenario import DemoConfig, make_timing, profiles_for, rotation_boundary

    for ues, p in ((4, 0.5), (20, 1.0), (200, 1.0)):
        cfg = DemoConfig(ues=ues, mtk_period=p)
        t = make_timing(cfg, 1000.0)
        assert t.msk_lifetime % p == 0 and t.start <= 1000.0
        assert t.ue_retry.lead_time < t.msk_lead  # UEs ask once the next MSK is offered
        need = cfg.mtk_rotations * p + cfg.outage + 1.5 * p + t.msk_lead + 0.2 * p
        for s in (1000.0 + 0.5, 1000.0 + 3.0 + 0.05 * ues, 1000.0 + 40.0):
            b = rotation_boundary(cfg, t, s)
            assert b - s >= need - 1e-6 and b - s < need + t.msk_lifetime
            assert round((b - t.start) / t.msk_lifetime, 6).is_integer()
    assert profiles_for(4, DemoConfig().profile) == ["compact", "3gpp", "compact", "3gpp"]
    assert DemoConfig(ues=200).media_interval == 0.1 and DemoConfig().media_interval == 0.02
