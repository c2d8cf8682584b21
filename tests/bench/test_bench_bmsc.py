"""The ``bmsc`` bench case: a tiny real run (servers process, BSF, BM-SC, TLS proxy, UEs on
loopback) checked for output shape and correctness of every delivery, never for speed; and the
pieces that make its numbers honest (TLS record counting, certificate pinning, MSK check)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import ssl
import tempfile
from pathlib import Path

import pytest

from mbmsec.bench import CASE_MODULES, BenchConfig, Rate, load_cases

load_cases()  # import the case modules in CASE_MODULES order before importing one directly

from mbmsec.bench.bmsc import PROFILES, _result, _Tally, report, run_bench  # noqa: E402
from mbmsec.bench.bmsc_ue import Conn, Delivery, _Records  # noqa: E402
from mbmsec.bench.tls_proxy import (  # noqa: E402
    TlsProxy,
    _key_body,
    client_context,
    make_self_signed,
    parse_key_body,
    server_context,
)
from mbmsec.errors import DecodeError  # noqa: E402
from mbmsec.mbms.keys import MskId, MskRef, key_domain_id  # noqa: E402
from mbmsec.mbms.messages import MskKey  # noqa: E402

NAMES = ["compact", "3gpp", "3gpp-ka", "tls-proxy", "tls-proxy-ka"]


def test_registered() -> None:
    assert "mbmsec.bench.bmsc" in CASE_MODULES
    case = load_cases()["bmsc"]
    assert case.report is report
    assert [p.name for p in PROFILES] == NAMES


@pytest.mark.timeout(120)
def test_tiny_run_every_delivery_verified() -> None:
    results = run_bench(BenchConfig(seconds=0.5, rounds=1), ues=4, concurrency=2)
    assert [r.name for r in results] == NAMES
    by = {r.name: r.extra for r in results}
    for r in results:
        e = r.extra
        assert r.case == "bmsc" and r.unit == "delivery" and r.floor is None
        # correctness: every delivery decrypted the BM-SC's own MSK, nothing failed
        assert e["deliveries"] >= 1, r.name
        assert e["failed"] == 0 and e["errors"] == {}, (r.name, e["errors"])
        assert e["msk_verified"] == e["deliveries"] and e["msk_wrong"] == 0
        assert r.ours.ops == e["deliveries"]  # one round: the best round is the whole run
        assert e["ues"] == 4 and e["concurrency"] == 2
        assert 0 < e["p50_ms"] <= e["p99_ms"]
        assert e["server_cpu_us"] > 0 and e["client_cpu_us"] > 0
        json.dumps(r.as_dict())  # --json stays serialisable

    # the BM-SC / baseline servers saw exactly these deliveries
    c = by["compact"]
    assert c["server_counters"].get("compact.keys") == c["deliveries"]
    assert (c["udp_datagrams"], c["tcp_bytes"], c["connections"]) == (2, 0, 0)
    assert 150 < c["udp_bytes"] < 600
    for name, conns, exchanges in (("3gpp", 1, 2), ("3gpp-ka", 0, 1)):
        e = by[name]
        n = e["deliveries"]
        counters = e["server_counters"]
        assert counters.get("push.sent") == n and counters.get("verification.ok") == n, name
        assert counters.get("http.200.msk-request") == n
        assert e["udp_datagrams"] == 2  # MSK push + verification message
        assert e["connections"] == conns and e["http_exchanges"] == exchanges
        assert e["tcp_bytes"] > 0 and e["tls_records"] == 0
    for name, conns, exchanges in (("tls-proxy", 1, 2), ("tls-proxy-ka", 0, 1)):
        e = by[name]
        n = e["deliveries"]
        counters = e["server_counters"]
        assert counters.get("keyserver.served") == n, name
        assert counters.get("proxy.connections", 0) == n * conns
        assert e["connections"] == conns and e["http_exchanges"] == exchanges
        assert e["udp_datagrams"] == 0 and e["tls_records"] >= 2 * exchanges
    # a new TLS connection costs more bytes than a kept one (handshake, tickets, close_notify)
    assert by["tls-proxy"]["tcp_bytes"] > by["tls-proxy-ka"]["tcp_bytes"]

    ratios = results[0].extra["ratios"]
    assert set(ratios) == {
        "compact/3gpp",
        "compact/tls-proxy",
        "compact/3gpp-ka",
        "compact/tls-proxy-ka",
    }
    q = ratios["compact/tls-proxy"]
    assert q["rate_a_over_b"] == pytest.approx(
        results[0].ours.per_second / results[3].ours.per_second
    )

    out = io.StringIO()
    report(results, out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("bmsc: 4 UEs, 2 deliveries in flight")
    rows = [line.split() for line in lines if line.split()[:1] and line.split()[0] in NAMES]
    table = [r for r in rows if len(r) == 12]
    assert [r[0] for r in table] == NAMES
    for row in table:
        for cell in row[1:]:
            float(cell.replace(",", ""))
    assert sum(1 for line in lines if line.strip().startswith("compact/")) == 4
    total = sum(r.extra["deliveries"] for r in results)
    assert lines[-1] == (
        f"correctness: {total} deliveries, {total} MSKs equal to the BM-SC's, 0 wrong, 0 failed"
    )


def _ref() -> MskRef:
    return MskRef(key_domain_id("001", "01"), MskId(1, 7))


def test_msk_check_catches_a_wrong_key() -> None:
    t = _Tally()
    good, bad = os.urandom(16), os.urandom(16)
    t.add(Delivery(MskKey(_ref(), good), 0.0, 2, 300), 0.001)
    t.add(Delivery(MskKey(_ref(), bad), 0.0, 2, 300), 0.002)
    t.rounds.append(Rate(2, 1.0))
    e = _result(PROFILES[0], t, {str(_ref()): hashlib.sha256(good).hexdigest()}, 1, 1).extra
    assert (e["msk_verified"], e["msk_wrong"]) == (1, 1)
    assert e["p50_ms"] == pytest.approx(1.0) and e["p99_ms"] == pytest.approx(2.0)


def test_tls_record_counter_across_chunks() -> None:
    records = [bytes([23, 3, 3]) + n.to_bytes(2, "big") + os.urandom(n) for n in (0, 1, 300, 17)]
    stream = b"".join(records)
    for cut in (1, 2, 5, 7, 64, len(stream)):
        r = _Records()
        counted = sum(r.feed(stream[i : i + cut]) for i in range(0, len(stream), cut))
        assert counted == len(records), cut
    r = _Records()
    assert r.feed(stream[:3]) == 0  # half a header is not a record yet
    assert r.feed(stream[3:]) == len(records)


def test_key_body_round_trip_and_refusals() -> None:
    key = MskKey(_ref(), os.urandom(16), 3, 99)
    other = MskRef(key_domain_id("001", "01"), MskId(1, 8))
    [(ref, status, got), (ref2, status2, none)] = parse_key_body(
        _key_body([(key.ref, 200, key), (other, 410, None)])
    )
    assert (ref, status, got) == (key.ref, 200, key) and got is not None and got.key == key.key
    assert (ref2, status2, none) == (other, 410, None)
    for bad in (
        b"",
        b"{}",
        b'{"msks": [{"keyDomainId": "00f110", "mskId": "00010007", "status": 200}]}',
        b'{"msks": [{"keyDomainId": "00f1", "mskId": "00010007", "status": 410}]}',
        b'{"msks": [{"keyDomainId": "00f110", "mskId": "00010007", "status": 200, '
        b'"key": "abcd", "first": 1, "last": 2}]}',
        b'{"msks": 5}',
    ):
        with pytest.raises(DecodeError):
            parse_key_body(bad)


def test_ue_tls_pins_the_proxy_certificate() -> None:
    """The baseline's UE really authenticates the proxy: a certificate other than the pinned
    one fails the handshake; the right one completes it (relaying to a dead upstream)."""
    cert, key = make_self_signed()
    other_cert, _ = make_self_signed()

    async def go() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            cf, kf = Path(tmp) / "c.pem", Path(tmp) / "k.pem"
            cf.write_bytes(cert)
            kf.write_bytes(key)
            proxy = TlsProxy(server_context(cf, kf), ("127.0.0.1", 9))
        addr = await proxy.start(("127.0.0.1", 0))
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                await Conn.open(addr, client_context(other_cert))
            conn = await Conn.open(addr, client_context(cert))
            assert conn.records >= 4 and conn.bytes_in > 500  # server flight with certificate
            await conn.close()
        finally:
            await proxy.close()

    asyncio.run(go())


@pytest.mark.timeout(120)
def test_cli_prints_the_case_report_after_the_common_table() -> None:
    import argparse

    from mbmsec.bench import cli as bench_cli

    parser = argparse.ArgumentParser(prog="mbmsec")
    bench_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", "bmsc", "--seconds", "0.05", "--rounds", "1"])
    out = io.StringIO()
    assert bench_cli.run(args, out) == 0
    lines = out.getvalue().splitlines()
    common = [i for i, line in enumerate(lines) if line.startswith("bmsc     ")]
    assert len(common) == len(NAMES)
    own = lines.index(next(line for line in lines if line.startswith("bmsc: 64 UEs")))
    assert own > max(common)
    assert lines[-1].startswith("correctness: ") and lines[-1].endswith(" 0 wrong, 0 failed")
