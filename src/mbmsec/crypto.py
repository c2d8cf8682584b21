"""Typed wrappers over ``cryptography`` and ``hmac``: AES-CM, AES-KW, AES-ECB block, HMAC.

No cipher is written by hand here. MAC comparison is constant time (:func:`mac_equal`).
:class:`HmacKey` keeps the keyed HMAC state so that repeated MACs under one key (a MUK, an MSK)
skip the key schedule, which the architecture's per-UE cache relies on.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from .errors import DecryptError


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
