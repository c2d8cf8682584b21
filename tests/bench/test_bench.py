"""Tests for `mbmsec bench`: output shape with a tiny duration (never performance), the case
registry, and that the mikey case measures real, correct work on both sides."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from mbmsec import cli as top_cli
from mbmsec.bench import (
    BenchConfig,
    Rate,
    Result,
    load_cases,
    measure,
    measure_pair,
    register_case,
)
from mbmsec.bench import cli as bench_cli
from mbmsec.bench.mikey import Fixture, _floor_functions
from mbmsec.errors import AuthError, ConfigError, DecodeError
from mbmsec.mikey.codec import encode_key_data
from mbmsec.mikey.constants import KeyDataType


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mbmsec")
    bench_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["bench", *argv])


def _run(*argv: str) -> str:
    args = _parse(*argv)
    out = io.StringIO()
    assert args.func is bench_cli.run
    assert bench_cli.run(args, out) == 0
    return out.getvalue()


def test_registered_as_subcommand() -> None:
    assert "mbmsec.bench.cli" in top_cli.COMMAND_MODULES


def test_json_output_shape() -> None:
    doc = json.loads(_run("mikey", "--seconds", "0.02", "--rounds", "1", "--json"))
    assert doc["seconds"] == 0.02 and doc["rounds"] == 1
    assert {"python", "cryptography", "openssl", "cpus"} <= set(doc["environment"])
    names = [r["name"] for r in doc["results"]]
    assert names == ["decode+verify+decrypt", "build+protect"]
    for r in doc["results"]:
        assert r["case"] == "mikey" and r["unit"] == "msg"
        for side in ("ours", "floor"):
            rate = r[side]
            assert rate["ops"] >= 1 and rate["seconds"] > 0
            assert rate["per_second"] == pytest.approx(rate["ops"] / rate["seconds"])
            assert rate["us_per_op"] == pytest.approx(1e6 * rate["seconds"] / rate["ops"])
        assert r["ratio"] == pytest.approx(r["ours"]["per_second"] / r["floor"]["per_second"])
        assert "HMAC-SHA-1" in r["floor_definition"]
        assert any("bytes" in n for n in r["notes"])


def test_text_output_shape() -> None:
    text = _run("--seconds", "0.02", "--rounds", "1")  # all cases
    lines = text.splitlines()
    assert lines[0].startswith("mbmsec bench:")
    assert any(line.startswith("ratio = ours ops/s / floor ops/s") for line in lines)
    rows = [line.split() for line in lines if line.startswith("mikey ")]
    assert [r[1] for r in rows] == ["decode+verify+decrypt", "build+protect"]
    for r in rows:
        assert len(r) == 7
        float(r[-1])  # ratio column is a number
    assert "floor definitions:" in lines


def test_list_and_unknown_case() -> None:
    text = _run("--list")
    assert text.startswith("mikey")
    with pytest.raises(ConfigError):
        _run("no-such-case", "--seconds", "0.01")


def test_bad_config() -> None:
    with pytest.raises(ConfigError):
        BenchConfig(seconds=0)
    with pytest.raises(ConfigError):
        BenchConfig(rounds=0)


def test_registry_rejects_duplicate_name() -> None:
    cases = load_cases()
    assert "mikey" in cases
    with pytest.raises(ConfigError):
        register_case("mikey", "again")(lambda cfg: [])
    # re-registering the same function (module re-import) is harmless
    register_case("mikey", cases["mikey"].description)(cases["mikey"].run)


def test_measure_counts_calls() -> None:
    calls = []
    rate = measure(lambda: calls.append(1), BenchConfig(seconds=0.01, rounds=2))
    assert rate.ops >= 1 and len(calls) >= rate.ops + 1  # one warm-up call
    a, b = measure_pair(lambda: None, lambda: None, BenchConfig(seconds=0.01, rounds=1))
    assert a.ops >= 1 and b.ops >= 1


def test_result_ratio() -> None:
    r = Result("c", "n", "op", Rate(10, 1.0), Rate(40, 1.0))
    assert r.ratio == 0.25
    assert Result("c", "n", "op", Rate(1, 1.0)).ratio is None


# --- the mikey case does real work ---------------------------------------------------------------


def test_mikey_fixture_round_trip_and_size() -> None:
    fx = Fixture()
    assert 150 <= len(fx.wire) <= 200
    (kd,) = fx.receive(fx.wire)
    assert kd.type == KeyDataType.TGK and kd.key == fx.msk
    other = fx.build()
    assert other != fx.wire  # new RAND each build
    assert fx.receive(other)[0].key == fx.msk


def test_mikey_receive_rejects_tampering() -> None:
    fx = Fixture()
    data = bytearray(fx.wire)
    data[30] ^= 1  # inside RAND
    with pytest.raises(AuthError):
        fx.receive(bytes(data))
    with pytest.raises(DecodeError):
        fx.receive(fx.wire[:-1])


def test_mikey_floor_matches_ours() -> None:
    fx = Fixture()
    floor_receive, floor_build = _floor_functions(fx)
    assert floor_build() == fx.wire
    assert floor_receive() == encode_key_data(fx.key_data)
    # the floor verifies the MAC too: a tampered message makes it fail
    data = bytearray(fx.wire)
    data[-1] ^= 1
    fx.wire = bytes(data)
    with pytest.raises(AuthError):
        _floor_functions(fx)
