"""Typed wrappers over ``cryptography`` and ``hmac``: AES-CM, AES-KW, AES-ECB block, HMAC.

No cipher is written by hand here: AES itself always comes from ``cryptography``. The one
construction assembled here is RFC 3394 key wrap with a caller-chosen initial value
(:func:`aes_kw_wrap_iv`), because ``cryptography``'s ``aes_key_wrap`` fixes the IV to
A6A6A6A6A6A6A6A6 and MIKEY (RFC 3830 §4.2.3) sets it to the 64-bit salt S; it is the RFC 3394
§2.2.1 / §2.2.2 index method over single AES-ECB block operations, the same steps
``cryptography`` runs internally. MAC comparison is constant time (:func:`mac_equal`).
:class:`HmacKey` keeps the keyed HMAC state so that repeated MACs under one key (a MUK, an MSK)
skip the key schedule, which the architecture's per-UE cache relies on.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from .errors import ConfigError, DecryptError

KW_DEFAULT_IV: Final = bytes.fromhex("A6A6A6A6A6A6A6A6")  # RFC 3394 §2.2.3.1


def mac_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two MAC values."""
    return hmac.compare_digest(a, b)


def hmac_sha1(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA-1 (RFC 2104), 20 bytes."""
    return hmac.digest(key, data, "sha1")


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA-256, 32 bytes."""
    return hmac.digest(key, data, "sha256")


class HmacKey:
    """A keyed HMAC state that can be reused for many messages."""

    __slots__ = ("_proto",)

    def __init__(self, key: bytes, digest: str = "sha1") -> None:
        self._proto = hmac.new(key, digestmod=getattr(hashlib, digest))

    def __repr__(self) -> str:
        return "HmacKey(<redacted>)"

    def mac(self, *parts: bytes) -> bytes:
        h = self._proto.copy()
        for p in parts:
            h.update(p)
        return h.digest()


def aes_cm(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES counter mode (RFC 3711 §4.1.1 / RFC 3830 §4.2.3): keystream AES(key, IV + i) XOR data.

    ``iv`` is the full 128-bit initial counter block; the counter is the whole block taken as a
    big-endian integer, as ``cryptography``'s CTR mode does.
    """
    enc = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def aes_ecb_block(key: bytes, block: bytes) -> bytes:
    """Encrypt one 16-byte block with AES (used by Milenage, TS 35.206)."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 - single block
    return enc.update(block) + enc.finalize()


class AesBlock:
    """A reusable AES-ECB single-block encryptor under one key (Milenage E_K)."""

    __slots__ = ("_enc",)

    def __init__(self, key: bytes) -> None:
        self._enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305

    def __repr__(self) -> str:
        return "AesBlock(<redacted>)"

    def encrypt(self, block: bytes) -> bytes:
        if len(block) != 16:
            raise ValueError("AES block must be 16 bytes")
        return self._enc.update(block)


def aes_kw_wrap(kek: bytes, data: bytes) -> bytes:
    """AES key wrap (RFC 3394) with the default IV A6A6A6A6A6A6A6A6; data is 8n bytes, n >= 2."""
    return aes_key_wrap(kek, data)


def aes_kw_unwrap(kek: bytes, data: bytes) -> bytes:
    """AES key unwrap (RFC 3394). Raises DecryptError when the integrity check fails."""
    try:
        return aes_key_unwrap(kek, data)
    except (InvalidUnwrap, ValueError) as exc:
        raise DecryptError("AES-KW unwrap failed integrity check") from exc


def _kw_check(kek: bytes, iv: bytes) -> None:
    if len(kek) not in (16, 24, 32):
        raise ConfigError("AES-KW KEK must be 16, 24 or 32 bytes")
    if len(iv) != 8:
        raise ConfigError("AES-KW initial value must be 64 bits (8 bytes)")


def aes_kw_wrap_iv(kek: bytes, iv: bytes, data: bytes) -> bytes:
    """AES key wrap (RFC 3394 §2.2.1, index method) with the initial value ``iv``.

    RFC 3394 §2.2.3.2 allows an alternative IV; MIKEY's AES-KW-128 uses the 64-bit salt S
    (RFC 3830 §4.2.3). ``data`` is 8n bytes, n >= 2; returns 8(n+1) bytes. With
    :data:`KW_DEFAULT_IV` the result equals :func:`aes_kw_wrap`. Raises ConfigError for a bad
    KEK, IV or data length.
    """
    _kw_check(kek, iv)
    if len(data) % 8 or len(data) < 16:
        raise ConfigError("AES-KW data must be 8n bytes, n >= 2")
    n = len(data) // 8
    r = [data[8 * i : 8 * i + 8] for i in range(n)]
    a = iv
    enc = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()  # noqa: S305 - RFC 3394 W(S)
    for j in range(6):
        for i in range(n):
            b = enc.update(a + r[i])  # B = AES(K, A | R[i])
            t = n * j + i + 1
            a = (int.from_bytes(b[:8], "big") ^ t).to_bytes(8, "big")  # A = MSB(64, B) ^ t
            r[i] = b[8:]  # R[i] = LSB(64, B)
    return a + b"".join(r)


def aes_kw_unwrap_iv(kek: bytes, iv: bytes, data: bytes) -> bytes:
    """AES key unwrap (RFC 3394 §2.2.2, index method) checking the initial value ``iv``.

    Returns the 8n plaintext bytes. The recovered A is compared with ``iv`` in constant time
    (§2.2.3). Raises DecryptError when ``data`` is not 8(n+1) bytes with n >= 2 or the check
    fails, ConfigError for a bad KEK or IV.
    """
    _kw_check(kek, iv)
    if len(data) % 8 or len(data) < 24:
        raise DecryptError("AES-KW data must be 8(n+1) bytes, n >= 2")
    n = len(data) // 8 - 1
    a = data[:8]
    r = [data[8 * (i + 1) : 8 * (i + 2)] for i in range(n)]
    dec = Cipher(algorithms.AES(kek), modes.ECB()).decryptor()  # noqa: S305 - RFC 3394 W^-1
    for j in reversed(range(6)):
        for i in reversed(range(n)):
            t = n * j + i + 1
            b = dec.update((int.from_bytes(a, "big") ^ t).to_bytes(8, "big") + r[i])
            a = b[:8]
            r[i] = b[8:]
    if not mac_equal(a, iv):
        raise DecryptError("AES-KW unwrap failed integrity check")
    return b"".join(r)
