"""The ``gba`` bench case: runs real bootstraps and Zn lookups (shape only, never speed)."""

from __future__ import annotations

import tempfile

from mbmsec.bench import BenchConfig, load_cases
from mbmsec.gba.kdf import ks_naf


def test_case_registered_and_results_shape() -> None:
    case = load_cases()["gba"]
    results = case.run(BenchConfig(seconds=0.05, rounds=1))
    assert [r.name for r in results] == ["bootstrap (Ub)", "zn lookup"]
    for r in results:
        assert r.case == "gba" and r.floor is not None and r.ours.ops >= 1
        assert r.ratio is not None and r.ratio > 0 and r.floor_definition


def test_measured_functions_do_the_real_work() -> None:
    load_cases()  # registry order: import the case modules in CASE_MODULES order first
    from mbmsec.bench.gba import GbaBench

    with tempfile.TemporaryDirectory() as tmp:
        b = GbaBench(tmp)
        try:
            f = b.functions()
            btid = f["bootstrap"]()
            assert isinstance(btid, str) and btid.endswith("@bsf.home1.net")
            session = b.bsf.sessions.get(btid)
            assert session is not None
            key = f["zn"]()
            first = b.bsf.sessions.get(b.btid)
            assert first is not None
            assert key == ks_naf(first.ks, first.rand, first.impi, b.naf_id)
            assert f["bootstrap-floor"]() == b"x" * 200
            assert f["zn-floor"]() == b'{"ok":true}'
        finally:
            b.close()
