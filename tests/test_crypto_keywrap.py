"""AES key wrap with a chosen initial value (mbmsec.crypto.aes_kw_wrap_iv / aes_kw_unwrap_iv).

RFC 3394 §4 test vectors (default IV), cross-checks against ``cryptography``'s aes_key_wrap,
and, for non-default IVs (MIKEY's salt S, RFC 3830 §4.2.3), a second reference written here in
RFC 3394 §2.2.1's shift-register form (A(t), R(t, i), t = 1..6n) that shares no code with
mbmsec's index-method implementation.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.crypto import (
    KW_DEFAULT_IV,
    aes_kw_unwrap,
    aes_kw_unwrap_iv,
    aes_kw_wrap,
    aes_kw_wrap_iv,
)
from mbmsec.errors import ConfigError, DecryptError

K128 = "000102030405060708090A0B0C0D0E0F"
K192 = K128 + "1011121314151617"
K256 = K128 + "101112131415161718191A1B1C1D1E1F"
D128 = "00112233445566778899AABBCCDDEEFF"
D192 = D128 + "0001020304050607"
D256 = D128 + "000102030405060708090A0B0C0D0E0F"

# RFC 3394 §4.1 - §4.6: (KEK, key data, ciphertext), IV A6A6A6A6A6A6A6A6.
RFC3394_VECTORS = [
    ("4.1", K128, D128, "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"),
    ("4.2", K192, D128, "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"),
    ("4.3", K256, D128, "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"),
    ("4.4", K192, D192, "031D33264E15D33268F24EC260743EDCE1C6C7DDEE725A936BA814915C6762D2"),
    ("4.5", K256, D192, "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1"),
    (
        "4.6",
        K256,
        D256,
        "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21",
    ),
]


def reference_wrap(kek: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """RFC 3394 §2.2.1 "Inputs/Outputs" form: a shift register R(t, 1..n), 6n steps."""
    aes = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()
    n = len(plaintext) // 8
    a = iv
    regs = [plaintext[8 * i : 8 * i + 8] for i in range(n)]
    for t in range(1, 6 * n + 1):
        b = aes.update(a + regs[0])
        a = bytes(x ^ y for x, y in zip(b[:8], t.to_bytes(8, "big"), strict=True))
        regs = [*regs[1:], b[8:]]
    return a + b"".join(regs)


@pytest.mark.parametrize(("section", "kek", "data", "ct"), RFC3394_VECTORS)
def test_rfc3394_vectors(section: str, kek: str, data: str, ct: str) -> None:
    k, d, c = bytes.fromhex(kek), bytes.fromhex(data), bytes.fromhex(ct)
    assert aes_kw_wrap_iv(k, KW_DEFAULT_IV, d) == c, section
    assert aes_kw_unwrap_iv(k, KW_DEFAULT_IV, c) == d, section
    assert aes_key_wrap(k, d) == c == aes_kw_wrap(k, d) == reference_wrap(k, KW_DEFAULT_IV, d)
    assert aes_kw_unwrap(k, c) == d


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    st.binary(min_size=8, max_size=8),
    st.integers(2, 12).flatmap(lambda n: st.binary(min_size=8 * n, max_size=8 * n)),
)
def test_any_iv_matches_reference_and_round_trips(kek: bytes, iv: bytes, data: bytes) -> None:
    c = aes_kw_wrap_iv(kek, iv, data)
    assert len(c) == len(data) + 8
    assert c == reference_wrap(kek, iv, data)
    assert aes_kw_unwrap_iv(kek, iv, c) == data
    if iv != KW_DEFAULT_IV:
        # a non-default IV really changes the output, and the default-IV unwrap refuses it
        assert c != aes_key_wrap(kek, data)
        with pytest.raises(InvalidUnwrap):
            aes_key_unwrap(kek, c)
    else:
        assert c == aes_key_wrap(kek, data)


def test_salt_iv_known_answer() -> None:
    # RFC 3394 §4.1 KEK and data with IV = a MIKEY-style 64-bit salt. No published vector
    # exists for a non-default IV; this value was computed by reference_wrap above.
    kek, data = bytes.fromhex(K128), bytes.fromhex(D128)
    iv = bytes.fromhex("0123456789ABCDEF")
    expect = bytes.fromhex("a0f76f4b09e1f2191b8d94da2ca57adfd45ee9732992a98f")
    assert reference_wrap(kek, iv, data) == expect
    assert aes_kw_wrap_iv(kek, iv, data) == expect
    assert aes_kw_unwrap_iv(kek, iv, expect) == data


def test_unwrap_checks_the_iv_and_every_bit() -> None:
    kek, data = bytes.fromhex(K256), bytes.fromhex(D256)
    iv = bytes.fromhex("5A5A5A5A00000001")
    c = aes_kw_wrap_iv(kek, iv, data)
    with pytest.raises(DecryptError):
        aes_kw_unwrap_iv(kek, KW_DEFAULT_IV, c)
    with pytest.raises(DecryptError):
        aes_kw_unwrap_iv(kek, bytes.fromhex("5A5A5A5A00000002"), c)
    for i in range(len(c) * 8):
        bad = bytearray(c)
        bad[i // 8] ^= 0x80 >> (i % 8)
        with pytest.raises(DecryptError):
            aes_kw_unwrap_iv(kek, iv, bytes(bad))


@pytest.mark.parametrize(
    ("kek", "iv", "data"),
    [
        (bytes(15), KW_DEFAULT_IV, bytes(16)),
        (bytes(16), bytes(7), bytes(16)),
        (bytes(16), bytes(9), bytes(16)),
        (bytes(16), KW_DEFAULT_IV, bytes(8)),
        (bytes(16), KW_DEFAULT_IV, bytes(17)),
        (bytes(16), KW_DEFAULT_IV, b""),
    ],
)
def test_wrap_refuses_bad_arguments(kek: bytes, iv: bytes, data: bytes) -> None:
    with pytest.raises(ConfigError):
        aes_kw_wrap_iv(kek, iv, data)


@pytest.mark.parametrize("n", [0, 8, 16, 23, 25, 33])
def test_unwrap_refuses_bad_lengths(n: int) -> None:
    with pytest.raises(DecryptError):
        aes_kw_unwrap_iv(bytes(16), KW_DEFAULT_IV, bytes(n))
    with pytest.raises(ConfigError):
        aes_kw_unwrap_iv(bytes(16), bytes(4), bytes(24))
