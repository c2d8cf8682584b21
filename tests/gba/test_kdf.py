"""GBA KDF (TS 33.220 Annex B) against tests/vectors/gba_kdf.txt and a second, independent KDF."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbmsec.gba import kdf as gk

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "gba_kdf.txt"


def _load() -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in VECTORS.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        out[name.strip()] = value.strip()
    return out


V = _load()


def _h(name: str) -> bytes:
    return bytes.fromhex(V[name])


# --- a second KDF, written from the spec text without using mbmsec code ---------------------


def ref_s(fc: int, *params: bytes) -> bytes:
    """S = FC || P0 || L0 || ... (TS 33.220 B.2), built with struct instead of int.to_bytes."""
    parts = [struct.pack(">B", fc)]
    for p in params:
        parts.append(p)
        parts.append(struct.pack(">H", len(p)))
    return b"".join(parts)


def ref_kdf(key: bytes, fc: int, *params: bytes) -> bytes:
    return hmac.new(key, ref_s(fc, *params), hashlib.sha256).digest()


def ref_ks_naf(ks: bytes, p0: str, rand: bytes, impi: str, fqdn: str, ua: bytes) -> bytes:
    def enc(x: str) -> bytes:
        return unicodedata.normalize("NFKC", x).encode()

    return ref_kdf(ks, 1, enc(p0), rand, enc(impi), enc(fqdn) + ua)


# --- vectors ------------------------------------------------------------------------------


def test_ks() -> None:
    assert gk.derive_ks(_h("CK"), _h("IK")) == _h("Ks")


def test_s_string_reference_matches_file() -> None:
    naf = V["NAF_FQDN_str"].encode() + _h("UA_ID")
    s = ref_s(1, b"gba-me", _h("RAND"), V["IMPI_str"].encode(), naf)
    assert s == _h("S")


def test_naf_id() -> None:
    assert gk.naf_id(V["NAF_FQDN_str"], gk.UA_MBMS) == b"bmsc.home1.net\x01\x00\x00\x00\x01"
    assert _h("UA_ID") == gk.UA_MBMS


def test_ks_naf_vector() -> None:
    naf = gk.naf_id(V["NAF_FQDN_str"], gk.UA_MBMS)
    got = gk.ks_naf(_h("Ks"), _h("RAND"), V["IMPI_str"], naf)
    assert got == _h("Ks_NAF")
    assert gk.ks_ext_naf(_h("Ks"), _h("RAND"), V["IMPI_str"], naf) == _h("Ks_NAF")
    ref = ref_ks_naf(_h("Ks"), "gba-me", _h("RAND"), V["IMPI_str"], V["NAF_FQDN_str"], _h("UA_ID"))
    assert ref == _h("Ks_NAF")


def test_ks_int_naf_vector() -> None:
    naf = gk.naf_id(V["NAF_FQDN_str"], gk.UA_MBMS)
    assert gk.ks_int_naf(_h("Ks"), _h("RAND"), V["IMPI_str"], naf) == _h("Ks_int_NAF")
    ref = ref_ks_naf(_h("Ks"), "gba-u", _h("RAND"), V["IMPI_str"], V["NAF_FQDN_str"], _h("UA_ID"))
    assert ref == _h("Ks_int_NAF")


def test_kdf_generic_equals_s_hmac() -> None:
    naf = V["NAF_FQDN_str"].encode() + _h("UA_ID")
    got = gk.kdf(_h("Ks"), 0x01, b"gba-me", _h("RAND"), V["IMPI_str"].encode(), naf)
    assert got == hmac.new(_h("Ks"), _h("S"), hashlib.sha256).digest() == _h("Ks_NAF")


def test_btid_and_nonce() -> None:
    assert gk.btid(_h("RAND"), V["BSF_DOMAIN_str"]) == V["B_TID_str"]
    assert base64.b64encode(_h("RAND") + _h("AUTN")).decode() == V["nonce_str"]


def test_ua_ids_distinct_and_five_octets() -> None:
    ids = [getattr(gk, n) for n in gk.__all__ if n.startswith("UA_")]
    assert len(ids) == len(set(ids)) == 9
    assert all(len(i) == 5 for i in ids)


# --- properties ---------------------------------------------------------------------------


@given(
    key=st.binary(min_size=1, max_size=64),
    fc=st.integers(0, 255),
    params=st.lists(st.binary(max_size=300), max_size=5),
)
def test_kdf_matches_reference(key: bytes, fc: int, params: list[bytes]) -> None:
    assert gk.kdf(key, fc, *params) == ref_kdf(key, fc, *params)


@given(
    ks=st.binary(min_size=32, max_size=32),
    rand=st.binary(min_size=16, max_size=16),
    impi=st.text(max_size=40),
    fqdn=st.text(min_size=1, max_size=40),
)
def test_ks_naf_matches_reference(ks: bytes, rand: bytes, impi: str, fqdn: str) -> None:
    naf = gk.naf_id(fqdn, gk.UA_MBMS)
    assert gk.ks_naf(ks, rand, impi, naf) == ref_ks_naf(ks, "gba-me", rand, impi, fqdn, gk.UA_MBMS)
    assert gk.ks_int_naf(ks, rand, impi, naf) == ref_ks_naf(
        ks, "gba-u", rand, impi, fqdn, gk.UA_MBMS
    )


def test_nfkc_applied() -> None:
    # U+FB01 LATIN SMALL LIGATURE FI normalises to "fi" under NFKC (TS 33.220 B.2.1.2).
    ks, rand = _h("Ks"), _h("RAND")
    naf = gk.naf_id("bmsc.home1.net", gk.UA_MBMS)
    assert gk.ks_naf(ks, rand, "\ufb01le@home1.net", naf) == gk.ks_naf(
        ks, rand, "file@home1.net", naf
    )
    assert gk.naf_id("\ufb01.example", gk.UA_MBMS) == b"fi.example" + gk.UA_MBMS


def test_param_length_limit() -> None:
    gk.kdf(b"k", 1, bytes(0xFFFF))
    with pytest.raises(ValueError):
        gk.kdf(b"k", 1, bytes(0x10000))
    with pytest.raises(ValueError):
        gk.kdf(b"k", 256)


def test_input_checks() -> None:
    naf = gk.naf_id("a", gk.UA_MBMS)
    with pytest.raises(ValueError):
        gk.ks_naf(bytes(31), bytes(16), "u", naf)
    with pytest.raises(ValueError):
        gk.ks_naf(bytes(32), bytes(15), "u", naf)
    with pytest.raises(ValueError):
        gk.naf_id("a", b"\x01\x00")
    with pytest.raises(ValueError):
        gk.btid(bytes(8), "bsf")
