"""Milenage against the TS 35.207/35.208 §4.3 test sets (tests/vectors/milenage_ts35208.txt)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mbmsec.gba.milenage import Milenage, compute_opc

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "milenage_ts35208.txt"


def _load() -> list[dict[str, str]]:
    sets: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for raw in VECTORS.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            if cur:
                sets.append(cur)
                cur = {}
            continue
        name, _, value = line.partition("=")
        cur[name.strip()] = value.strip()
    if cur:
        sets.append(cur)
    return sets


SETS = _load()


def _h(s: dict[str, str], name: str) -> bytes:
    return bytes.fromhex(s[name])


def test_all_six_sets_present() -> None:
    assert [s["set"] for s in SETS] == ["1", "2", "3", "4", "5", "6"]
    for s in SETS:
        assert len(s) == 14


@pytest.mark.parametrize("s", SETS, ids=[s["set"] for s in SETS])
def test_opc_from_op(s: dict[str, str]) -> None:
    assert compute_opc(_h(s, "K"), _h(s, "OP")) == _h(s, "OPc")


@pytest.mark.parametrize("s", SETS, ids=[s["set"] for s in SETS])
def test_functions(s: dict[str, str]) -> None:
    m = Milenage(_h(s, "K"), _h(s, "OPc"))
    rand, sqn, amf = _h(s, "RAND"), _h(s, "SQN"), _h(s, "AMF")
    assert m.f1(rand, sqn, amf) == _h(s, "f1")
    assert m.f1star(rand, sqn, amf) == _h(s, "f1star")
    res, ck, ik, ak = m.f2345(rand)
    assert res == _h(s, "f2")
    assert ck == _h(s, "f3")
    assert ik == _h(s, "f4")
    assert ak == _h(s, "f5")
    assert m.f5star(rand) == _h(s, "f5star")


def test_instance_reusable_across_rands() -> None:
    # One AES context per instance: results must not depend on call order.
    s1 = SETS[0]
    m = Milenage(_h(s1, "K"), _h(s1, "OPc"))
    other = bytes(16)
    m.f2345(other)
    m.f1(other, bytes(6), bytes(2))
    assert m.f2345(_h(s1, "RAND"))[0] == _h(s1, "f2")


def test_repr_redacted() -> None:
    s1 = SETS[0]
    m = Milenage(_h(s1, "K"), _h(s1, "OPc"))
    assert s1["K"] not in repr(m)
    assert s1["OPc"] not in repr(m)
    assert "redacted" in repr(m)


@pytest.mark.parametrize(("k", "opc"), [(bytes(15), bytes(16)), (bytes(16), bytes(17)), (b"", b"")])
def test_bad_key_lengths(k: bytes, opc: bytes) -> None:
    with pytest.raises(ValueError):
        Milenage(k, opc)


def test_bad_input_lengths() -> None:
    m = Milenage(bytes(16), bytes(16))
    with pytest.raises(ValueError):
        m.f2345(bytes(15))
    with pytest.raises(ValueError):
        m.f1(bytes(16), bytes(5), bytes(2))
    with pytest.raises(ValueError):
        m.f1star(bytes(16), bytes(6), bytes(3))
    with pytest.raises(ValueError):
        compute_opc(bytes(16), bytes(8))
