"""Unit tests for mbmsec.mikey.prf: structure of the PRF, labels, IV, errors, redaction.

Known-answer vectors live in tests/vectors/mikey_kat.txt (tests/mikey/test_prf_kat.py).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mbmsec.errors import ConfigError, PrfNotSupportedError
from mbmsec.mikey import prf as P

RAND = bytes(range(16))
CSB = 0x11223344


def test_label_layout() -> None:
    lab = P.label(P.LABEL_TRANSPORT_ENCR, 0xFF, CSB, RAND)
    assert lab == bytes.fromhex("150533e1ff11223344") + RAND
    assert len(P.label(P.LABEL_TEK, 0, 0, b"")) == 9


@pytest.mark.parametrize(
    ("constant", "cs_id", "csb_id"),
    [(-1, 0, 0), (1 << 32, 0, 0), (0, 256, 0), (0, -1, 0), (0, 0, 1 << 32), (0, 0, -1)],
)
def test_label_rejects_out_of_range(constant: int, cs_id: int, csb_id: int) -> None:
    with pytest.raises(ConfigError):
        P.label(constant, cs_id, csb_id, RAND)


def test_single_short_chunk_is_plain_p_function() -> None:
    # n = 1, m = 1: output = HMAC(s, HMAC(s, label) || label), truncated.
    key = b"\x0b" * 20
    lab = b"prf-test"
    a1 = hmac.digest(key, lab, "sha1")
    expect = hmac.digest(key, a1 + lab, "sha1")
    assert P.prf_mikey1(key, lab, 20) == expect
    assert P.prf_mikey1(key, lab, 7) == expect[:7]


def test_output_is_prefix_of_longer_output() -> None:
    # RFC 3830 §4.1.2: outkey = the outkey_len most significant bits.
    key = bytes(range(40))
    long = P.prf_mikey1(key, b"L", 100)
    for n in (1, 19, 20, 21, 40, 41, 99):
        assert P.prf_mikey1(key, b"L", n) == long[:n]


def test_two_chunks_xor() -> None:
    key = bytes(range(64))
    lab = b"label"
    a = P.prf_mikey1(key[:32], lab, 30)
    b = P.prf_mikey1(key[32:], lab, 30)
    assert P.prf_mikey1(key, lab, 30) == bytes(x ^ y for x, y in zip(a, b, strict=True))
    assert P.Prf(key).chunk_count == 2
    assert P.Prf(key[:32]).chunk_count == 1
    assert P.Prf(key[:33]).chunk_count == 2


def test_sha256_block_is_256_bits() -> None:
    # RFC 6043 §6.1: m = ceil(outkey_len / 256) blocks of HMAC-SHA-256.
    key = b"k" * 16
    lab = b"x"
    a1 = hmac.digest(key, lab, "sha256")
    first = hmac.digest(key, a1 + lab, "sha256")
    assert P.prf_hmac_sha256(key, lab, 32) == first
    a2 = hmac.digest(key, a1, "sha256")
    second = hmac.digest(key, a2 + lab, "sha256")
    assert P.prf_hmac_sha256(key, lab, 40) == first + second[:8]
    assert P.prf(1, key, lab, 40) == P.prf_hmac_sha256(key, lab, 40)
    assert P.prf(0, key, lab, 40) != P.prf(1, key, lab, 40)


def test_unknown_prf_func() -> None:
    with pytest.raises(PrfNotSupportedError) as exc:
        P.prf(2, b"k", b"l", 16)
    assert exc.value.mikey_error == 2
    with pytest.raises(PrfNotSupportedError):
        P.Prf(b"k", 127)


@pytest.mark.parametrize("out_len", [0, -1, P.MAX_OUT_LEN + 1])
def test_bad_out_len(out_len: int) -> None:
    with pytest.raises(ConfigError):
        P.prf_mikey1(b"k", b"l", out_len)


def test_empty_inkey() -> None:
    with pytest.raises(ConfigError):
        P.Prf(b"")


def test_precomputed_equals_one_shot_and_is_reusable() -> None:
    key = hashlib.sha256(b"muk").digest()
    pre = P.Prf(key)
    for rand in (RAND, b"\xff" * 16, b"\x00" * 32):
        assert P.derive_transport_keys(pre, CSB, rand) == P.derive_transport_keys(key, CSB, rand)


def test_precomputed_func_mismatch() -> None:
    pre = P.Prf(b"k" * 32, P.PRF_HMAC_SHA_256)
    with pytest.raises(ConfigError):
        P.derive_transport_keys(pre, CSB, RAND, prf_func=P.PRF_MIKEY_1)
    keys = P.derive_transport_keys(pre, CSB, RAND, prf_func=P.PRF_HMAC_SHA_256)
    assert keys == P.derive_transport_keys(b"k" * 32, CSB, RAND, prf_func=1)


def test_transport_keys_lengths_and_labels() -> None:
    key = b"\x42" * 32
    keys = P.derive_transport_keys(key, CSB, RAND)
    assert (len(keys.encr_key), len(keys.auth_key), len(keys.salt_key)) == (16, 20, 14)
    assert keys.encr_key == P.prf_mikey1(key, P.label(0x150533E1, 0xFF, CSB, RAND), 16)
    assert keys.auth_key == P.prf_mikey1(key, P.label(0x2D22AC75, 0xFF, CSB, RAND), 20)
    assert keys.salt_key == P.prf_mikey1(key, P.label(0x29B88916, 0xFF, CSB, RAND), 14)
    assert P.derive_transport_auth_key(key, CSB, RAND) == keys.auth_key
    other = P.derive_transport_keys(key, CSB + 1, RAND)
    assert other.encr_key != keys.encr_key


def test_tgk_derivations_use_distinct_labels() -> None:
    tgk = b"\x01" * 16
    outs = {
        P.derive_tek(tgk, 1, CSB, RAND, 16),
        P.derive_tek_salt(tgk, 1, CSB, RAND, 16),
        P.derive_tgk_auth_key(tgk, 1, CSB, RAND, 16),
        P.derive_tgk_encr_key(tgk, 1, CSB, RAND, 16),
        P.derive_tek(tgk, 2, CSB, RAND, 16),
    }
    assert len(outs) == 5
    assert P.derive_tek(tgk, 1, CSB, RAND, 16) == P.prf_mikey1(
        tgk, bytes.fromhex("2ad01c640111223344") + RAND, 16
    )


def test_kemac_iv_layout() -> None:
    salt = bytes(range(1, 15))
    iv = P.kemac_iv(salt, 0xA1A2A3A4, 0x0102030405060708)
    assert len(iv) == 16
    assert iv[:2] == salt[:2]
    assert iv[2:6] == bytes(s ^ c for s, c in zip(salt[2:6], b"\xa1\xa2\xa3\xa4", strict=True))
    assert iv[6:14] == bytes(s ^ t for s, t in zip(salt[6:14], bytes(range(1, 9)), strict=True))
    assert iv[14:] == b"\x00\x00"
    # COUNTER 1 padded to 64 bits touches only the last salt byte.
    iv0 = P.kemac_iv(salt, 0, 1)
    assert iv0[:13] == salt[:13] and iv0[13] == salt[13] ^ 1


@pytest.mark.parametrize(
    ("salt", "csb", "t"),
    [
        (b"\x00" * 13, 0, 0),
        (b"\x00" * 16, 0, 0),
        (b"\x00" * 14, 1 << 32, 0),
        (b"\x00" * 14, 0, 1 << 64),
    ],
)
def test_kemac_iv_rejects(salt: bytes, csb: int, t: int) -> None:
    with pytest.raises(ConfigError):
        P.kemac_iv(salt, csb, t)


def test_no_key_material_in_reprs() -> None:
    key = bytes.fromhex("deadbeef" * 8)
    pre = P.Prf(key)
    assert "deadbeef" not in repr(pre) and "redacted" in repr(pre)
    keys = P.derive_transport_keys(pre, CSB, RAND)
    text = repr(keys)
    for k in (keys.encr_key, keys.auth_key, keys.salt_key):
        assert k.hex() not in text and repr(k) not in text
