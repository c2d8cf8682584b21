"""MIKEY key derivation: the default PRF (RFC 3830 §4.1.2), PRF-HMAC-SHA-256 (RFC 6043 §6.1),
the derivation labels (RFC 3830 §4.1.3, §4.1.4) and the KEMAC AES-CM IV (RFC 3830 §4.2.3).

Decisions, each checked against the RFC text (tex2e/rfc-translater html/rfc3830.html and
html/rfc6043.html, English column):

- **MIKEY-1 PRF** (RFC 3830 §4.1.2). ``n = ceil(inkey_len / 256)``; the inkey is split into
  ``s_1 || ... || s_n`` where every ``s_i`` except possibly ``s_n`` is 256 bits (32 bytes).
  A 32-byte inkey (a 256-bit MUK from Ks_NAF) is therefore ONE full chunk. minisip passes the last
  chunk with length ``inkey_len % 32``, giving a zero-length HMAC key for 32-byte inkeys; that is
  a bug, and ``tests/mikey/test_prf_kat.py`` shows the vectors tell the two apart.
  ``m = ceil(outkey_len / 160)``;
  ``P(s, label, m) = HMAC(s, A_1 || label) || ... || HMAC(s, A_m || label)`` with
  ``A_0 = label``, ``A_i = HMAC(s, A_(i-1))``; the output is the ``outkey_len`` most significant
  bits of ``P(s_1, label, m) XOR ... XOR P(s_n, label, m)``. HMAC is HMAC-SHA-1.
- **PRF-HMAC-SHA-256** (RFC 6043 §6.1, PRF func 1): "constructed as described in Section 4.1.2
  of [RFC3830] with the differences that HMAC-SHA-256 SHALL be used instead of HMAC-SHA-1 and
  the value 256 SHALL be used instead of 160". Only the output block size changes (160 -> 256
  bits); the inkey chunk size stays 256 bits (half the 512-bit input block of SHA-256 too).
- Lengths here are in bytes: every MIKEY key length in use is a whole number of bytes, so
  ``outkey_len`` bits = ``8 * out_len``.
- **Labels**: ``constant (32) || cs_id (8) || csb_id (32) || RAND``, big-endian. Keys from the
  TGK (§4.1.3) use the crypto session's CS ID; keys protecting the MIKEY message itself (§4.1.4,
  inkey = pre-shared or envelope key) use CS ID 0xFF. The CSB ID and RAND are those of the
  Initiator's message (the Responder's verification message reuses them).
- **KEMAC AES-CM IV** (§4.2.3): ``IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000`` with S the
  112-bit salt key and T the 64-bit timestamp of the Initiator; a COUNTER timestamp is padded
  with leading zeros to 64 bits (§6.6).
- **Hot path**: :class:`Prf` keeps one keyed HMAC state per inkey chunk (the ``hmac`` objects
  that :class:`mbmsec.crypto.HmacKey` wraps, used directly to save a call layer), so a cached
  per-UE MUK skips the HMAC key schedule. The
  transport keys for one message cost 6 HMAC-SHA-1 calls with a 32-byte PSK (2 per key).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Final

from ..errors import ConfigError, PrfNotSupportedError

# PRF func code points (RFC 3830 §6.1 HDR "PRF func"; RFC 6043 §6.1 Table 6.3).
PRF_MIKEY_1: Final = 0
PRF_HMAC_SHA_256: Final = 1

# Inkey chunk size: 256 bits (RFC 3830 §4.1.2, unchanged by RFC 6043 §6.1).
PRF_CHUNK_LEN: Final = 32

# Label constants, RFC 3830 §4.1.3 (from the TGK).
LABEL_TEK: Final = 0x2AD01C64
LABEL_TGK_AUTH: Final = 0x1B5C7973
LABEL_TGK_ENCR: Final = 0x15798CEF
LABEL_TGK_SALT: Final = 0x39A2C14B

# Label constants, RFC 3830 §4.1.4 (from the pre-shared / envelope key), with CS ID 0xFF.
LABEL_TRANSPORT_ENCR: Final = 0x150533E1
LABEL_TRANSPORT_AUTH: Final = 0x2D22AC75
LABEL_TRANSPORT_SALT: Final = 0x29B88916
TRANSPORT_CS_ID: Final = 0xFF
_ENCR_PREFIX: Final = LABEL_TRANSPORT_ENCR.to_bytes(4, "big")
_AUTH_PREFIX: Final = LABEL_TRANSPORT_AUTH.to_bytes(4, "big")
_SALT_PREFIX: Final = LABEL_TRANSPORT_SALT.to_bytes(4, "big")

# (digest name, output block size in bytes) per PRF func.
_PRF_PARAMS: Final[dict[int, tuple[str, int]]] = {
    PRF_MIKEY_1: ("sha1", 20),  # RFC 3830 §4.1.2: 160-bit blocks
    PRF_HMAC_SHA_256: ("sha256", 32),  # RFC 6043 §6.1: 256-bit blocks
}

# Largest output we agree to produce (far above any MIKEY key; guards against misuse).
MAX_OUT_LEN: Final = 1024


def _params(func: int) -> tuple[str, int]:
    try:
        return _PRF_PARAMS[func]
    except KeyError:
        raise PrfNotSupportedError(f"PRF func {func} is not supported") from None


class Prf:
    """The MIKEY PRF keyed once with an inkey (RFC 3830 §4.1.2 / RFC 6043 §6.1).

    Holds a precomputed HMAC state per 256-bit inkey chunk; :meth:`derive` then costs
    ``2 * m * n`` HMAC computations without any key schedule. Build one per long-lived key (a
    MUK, an MSK, a TGK) and reuse it. The repr never shows key material.
    """

    __slots__ = ("_block", "_chunks", "func", "inkey_len")

    def __init__(self, inkey: bytes, func: int = PRF_MIKEY_1) -> None:
        """Key the PRF. Raises PrfNotSupportedError for an unknown ``func`` and ConfigError for
        an empty inkey (RFC 3830 §4.1.2 needs n >= 1)."""
        digest, block = _params(func)
        if not inkey:
            raise ConfigError("PRF inkey must not be empty")
        self.func = int(func)
        self.inkey_len = len(inkey)
        self._block = block
        # RFC 3830 §4.1.2: s_1 .. s_n, all 256 bits except possibly s_n (never empty).
        # Keyed HMAC states (the hmac objects behind mbmsec.crypto.HmacKey), copied per call.
        self._chunks = tuple(
            hmac.new(inkey[i : i + PRF_CHUNK_LEN], digestmod=digest)
            for i in range(0, len(inkey), PRF_CHUNK_LEN)
        )

    def __repr__(self) -> str:
        return f"Prf(func={self.func}, inkey_len={self.inkey_len}, <redacted>)"

    @property
    def chunk_count(self) -> int:
        """n, the number of 256-bit inkey chunks."""
        return len(self._chunks)

    def derive(self, label: bytes, out_len: int) -> bytes:
        """Return the ``out_len`` most significant bytes of PRF(inkey, label).

        RFC 3830 §4.1.2: XOR over the chunks of P(s_i, label, m), m = ceil(out_len / block).
        Raises ConfigError for a length outside 1..MAX_OUT_LEN.
        """
        if not 0 < out_len <= MAX_OUT_LEN:
            raise ConfigError(f"PRF output length {out_len} out of range")
        m = -(-out_len // self._block)
        acc = 0
        p = b""
        for s in self._chunks:
            a = label  # A_0 = label
            blocks = []
            for _ in range(m):
                h = s.copy()
                h.update(a)
                a = h.digest()  # A_i = HMAC(s, A_(i-1))
                h = s.copy()
                h.update(a + label)
                blocks.append(h.digest())  # HMAC(s, A_i || label)
            p = b"".join(blocks)
            if len(self._chunks) > 1:
                acc ^= int.from_bytes(p, "big")
        if len(self._chunks) > 1:
            p = acc.to_bytes(m * self._block, "big")
        return p[:out_len]


def prf(func: int, inkey: bytes, label: bytes, out_len: int) -> bytes:
    """PRF(inkey, label) truncated to ``out_len`` bytes for PRF func ``func`` (0: MIKEY-1,
    1: PRF-HMAC-SHA-256). Raises PrfNotSupportedError for another func."""
    return Prf(inkey, func).derive(label, out_len)


def prf_mikey1(inkey: bytes, label: bytes, out_len: int) -> bytes:
    """The default MIKEY PRF with HMAC-SHA-1 (RFC 3830 §4.1.2), ``out_len`` bytes."""
    return Prf(inkey, PRF_MIKEY_1).derive(label, out_len)


def prf_hmac_sha256(inkey: bytes, label: bytes, out_len: int) -> bytes:
    """PRF-HMAC-SHA-256 (RFC 6043 §6.1), ``out_len`` bytes."""
    return Prf(inkey, PRF_HMAC_SHA_256).derive(label, out_len)


def label(constant: int, cs_id: int, csb_id: int, rand: bytes) -> bytes:
    """Return the PRF label ``constant || cs_id || csb_id || RAND`` (RFC 3830 §4.1.3, §4.1.4).

    Raises ConfigError when a field does not fit its width (32, 8, 32 bits).
    """
    if not 0 <= constant <= 0xFFFFFFFF:
        raise ConfigError("label constant must fit 32 bits")
    if not 0 <= cs_id <= 0xFF:
        raise ConfigError("CS ID must fit 8 bits")
    if not 0 <= csb_id <= 0xFFFFFFFF:
        raise ConfigError("CSB ID must fit 32 bits")
    return constant.to_bytes(4, "big") + bytes((cs_id,)) + csb_id.to_bytes(4, "big") + rand


def _keyed(inkey: bytes | Prf, prf_func: int) -> Prf:
    if isinstance(inkey, Prf):
        if inkey.func != prf_func:
            raise ConfigError(f"precomputed PRF has func {inkey.func}, message uses {prf_func}")
        return inkey
    return Prf(inkey, prf_func)


@dataclass(frozen=True)
class TransportKeys:
    """Keys protecting one MIKEY message (RFC 3830 §4.1.4): KEMAC encryption, MAC (KEMAC and
    verification message) and the AES-CM salt."""

    encr_key: bytes = field(repr=False)
    auth_key: bytes = field(repr=False)
    salt_key: bytes = field(repr=False)


def derive_transport_keys(
    psk: bytes | Prf,
    csb_id: int,
    rand: bytes,
    prf_func: int = PRF_MIKEY_1,
    encr_len: int = 16,
    auth_len: int = 20,
    salt_len: int = 14,
) -> TransportKeys:
    """Derive encr_key, auth_key and salt_key from the pre-shared key (RFC 3830 §4.1.4).

    ``psk`` may be a precomputed :class:`Prf` (its func must equal ``prf_func``). The defaults
    fit AES-CM-128 (16-byte key, 112-bit salt, §4.2.3) and HMAC-SHA-1-160 (20-byte key, §4.2.4).
    Raises PrfNotSupportedError or ConfigError.
    """
    p = _keyed(psk, prf_func)
    tail = label(0, TRANSPORT_CS_ID, csb_id, rand)[4:]  # 0xFF || csb_id || RAND
    encr = p.derive(_ENCR_PREFIX + tail, encr_len)
    auth = p.derive(_AUTH_PREFIX + tail, auth_len)
    salt = p.derive(_SALT_PREFIX + tail, salt_len)
    return TransportKeys(encr_key=encr, auth_key=auth, salt_key=salt)


def derive_transport_auth_key(
    psk: bytes | Prf, csb_id: int, rand: bytes, prf_func: int = PRF_MIKEY_1, length: int = 20
) -> bytes:
    """Only the auth_key of RFC 3830 §4.1.4 (e.g. to check a verification message's V MAC)."""
    p = _keyed(psk, prf_func)
    return p.derive(label(LABEL_TRANSPORT_AUTH, TRANSPORT_CS_ID, csb_id, rand), length)


def derive_tek(
    tgk: bytes | Prf,
    cs_id: int,
    csb_id: int,
    rand: bytes,
    length: int,
    prf_func: int = PRF_MIKEY_1,
) -> bytes:
    """Derive a TEK (e.g. an SRTP master key) from the TGK (RFC 3830 §4.1.3, 0x2AD01C64)."""
    return _keyed(tgk, prf_func).derive(label(LABEL_TEK, cs_id, csb_id, rand), length)


def derive_tek_salt(
    tgk: bytes | Prf,
    cs_id: int,
    csb_id: int,
    rand: bytes,
    length: int = 14,
    prf_func: int = PRF_MIKEY_1,
) -> bytes:
    """Derive a salting key (e.g. an SRTP master salt) from the TGK (RFC 3830 §4.1.3,
    0x39A2C14B). A salt carried in the Key data sub-payload takes precedence (§4.1.3)."""
    return _keyed(tgk, prf_func).derive(label(LABEL_TGK_SALT, cs_id, csb_id, rand), length)


def derive_tgk_auth_key(
    tgk: bytes | Prf,
    cs_id: int,
    csb_id: int,
    rand: bytes,
    length: int,
    prf_func: int = PRF_MIKEY_1,
) -> bytes:
    """Derive a security-protocol authentication key from the TGK (RFC 3830 §4.1.3,
    0x1B5C7973), for protocols that cannot derive it from the TEK."""
    return _keyed(tgk, prf_func).derive(label(LABEL_TGK_AUTH, cs_id, csb_id, rand), length)


def derive_tgk_encr_key(
    tgk: bytes | Prf,
    cs_id: int,
    csb_id: int,
    rand: bytes,
    length: int,
    prf_func: int = PRF_MIKEY_1,
) -> bytes:
    """Derive a security-protocol encryption key from the TGK (RFC 3830 §4.1.3, 0x15798CEF)."""
    return _keyed(tgk, prf_func).derive(label(LABEL_TGK_ENCR, cs_id, csb_id, rand), length)


def kemac_iv(salt_key: bytes, csb_id: int, t_value: int) -> bytes:
    """Return the 128-bit initial AES-CM counter block for KEMAC encryption (RFC 3830 §4.2.3).

    ``IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000``: S is the 112-bit (14-byte) salt_key,
    T the 64-bit timestamp value of the Initiator's T payload (a 32-bit COUNTER zero-extended,
    RFC 3830 §6.6). Raises ConfigError for a salt that is not 14 bytes or fields out of range.
    """
    if len(salt_key) != 14:
        raise ConfigError("AES-CM salt_key must be 112 bits (14 bytes)")
    if not 0 <= csb_id <= 0xFFFFFFFF:
        raise ConfigError("CSB ID must fit 32 bits")
    if not 0 <= t_value <= 0xFFFFFFFFFFFFFFFF:
        raise ConfigError("timestamp value must fit 64 bits")
    x = (csb_id << 64) | t_value  # 0x0000 || CSB ID || T, 112 bits
    s = int.from_bytes(salt_key, "big") ^ x
    return s.to_bytes(14, "big") + b"\x00\x00"
