"""Bench case ``mikey``: a typical MIKEY PSK message (an MSK delivery) received and built.

Message (about 160 bytes): HDR (PSK init, PRF MIKEY-1, empty CS map), T (NTP-UTC), RAND (16),
IDi (NAI, BM-SC NAF-Id), IDr (NAI, B-TID), EXT Key ID (Key Domain ID, MSK ID), KEMAC (AES-CM-128
+ HMAC-SHA-1-160) carrying one TGK key data (16-byte MSK). PSK: a 256-bit MUK.

- **receive** (``codec.decode_message`` + ``protect.verify_and_decrypt``): decode, derive the
  transport keys from the cached MUK PRF state, verify the KEMAC MAC over the received bytes,
  decrypt, decode the key data.
- **build** (``protect.build_psk_message``): new RAND from the injected rng, derive, encode,
  encrypt, MAC.

**Floor**: the crypto the protocol requires for the same message, done directly with
``hmac`` / ``cryptography`` at fixed, precomputed offsets (no parsing, no objects, no checks
beyond the MAC compare): 6 HMAC-SHA-1 for the three transport keys (MIKEY-1 PRF with one
256-bit chunk and one output block each; the PSK's keyed HMAC state is precomputed, as our
per-UE cache does), 1 HMAC-SHA-1 over the message under the fresh auth_key, the AES-CM IV
(3 XORs) and one AES-128-CTR context over the 20-byte key data; receive adds a constant-time
MAC compare, build adds the byte concatenation of the message. RAND generation is excluded on
both sides (ours draws from a precomputed pool).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable
from itertools import cycle

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import AuthError
from ..mikey.codec import decode_message, encode_key_data
from ..mikey.constants import DataType, IdType, KeyDataType, KeyIdType, PrfFunc, TsType
from ..mikey.payloads import (
    Header,
    IdPayload,
    KeyData,
    KeyIdEntry,
    KeyIdExtension,
    Payload,
    Rand,
    Timestamp,
)
from ..mikey.prf import Prf
from ..mikey.protect import build_psk_message, verify_and_decrypt
from . import BenchConfig, Rate, Result, measure_pair, register_case

FLOOR_RECEIVE = (
    "6 HMAC-SHA-1 (transport keys, PSK state precomputed) + 1 HMAC-SHA-1 over the message + "
    "constant-time compare + AES-CM IV + 1 AES-128-CTR context decrypting 20 bytes; fixed "
    "offsets, no parsing"
)
FLOOR_BUILD = (
    "6 HMAC-SHA-1 (transport keys, PSK state precomputed) + AES-CM IV + 1 AES-128-CTR context "
    "encrypting 20 bytes + 1 HMAC-SHA-1 over the message + byte concatenation; RAND pre-drawn"
)

_NAF_ID = b"bmsc.home1.net"
_B_TID = b"I1U8vpY3qJ0hiuZNrke/NQ==@bsf.home1.net"
_CSB_ID = 0x11223344
_NTP_T = 0xE90101D080000000


class Fixture:
    """One sample message with everything both sides need, built deterministically."""

    def __init__(self, seed: int = 1) -> None:
        rnd = random.Random(seed)
        self.muk = hashlib.sha256(b"mbmsec bench MUK").digest()
        self.msk = rnd.randbytes(16)
        self.prf = Prf(self.muk)  # the per-UE cache entry
        self.rand_pool = cycle([rnd.randbytes(16) for _ in range(64)])
        self.header = Header(data_type=DataType.PSK_INIT, csb_id=_CSB_ID, prf_func=PrfFunc.MIKEY_1)
        self.key_data = (KeyData(type=KeyDataType.TGK, key=self.msk),)
        self.wire = self.build()

    def rng(self, n: int) -> bytes:
        r = next(self.rand_pool)
        return r if n == len(r) else r[:n]

    def payloads(self, rand: bytes) -> list[Payload]:
        """The payloads before the KEMAC."""
        return [
            Timestamp(TsType.NTP_UTC, _NTP_T),
            Rand(rand),
            IdPayload(IdType.NAI, _NAF_ID),
            IdPayload(IdType.NAI, _B_TID),
            KeyIdExtension(
                (
                    KeyIdEntry(KeyIdType.MBMS_KEY_DOMAIN_ID, b"\x00\xf1\x10"),
                    KeyIdEntry(KeyIdType.MBMS_MSK_ID, b"\x00\x00\x00\x07"),
                )
            ),
        ]

    # --- ours ------------------------------------------------------------------------------

    def build(self) -> bytes:
        """Build and protect one MSK message (ours: mikey.protect.build_psk_message)."""
        return build_psk_message(self.header, self.payloads(self.rng(16)), self.key_data, self.prf)

    def receive(self, data: bytes) -> tuple[KeyData, ...]:
        """Decode, verify and decrypt one MSK message (ours: codec + protect)."""
        return verify_and_decrypt(decode_message(data), self.prf)


# --- floor ------------------------------------------------------------------------------------


def _floor_functions(fx: Fixture) -> tuple[Callable[[], object], Callable[[], object]]:
    data = fx.wire
    mac_off = len(data) - 20
    encr_off = mac_off - 1 - 20
    rand_off = 10 + 10 + 2  # HDR, T (NTP), RAND header
    csb = data[4:8]
    t_int = _NTP_T
    psk_state = hmac.new(fx.muk, digestmod=hashlib.sha1)
    enc_c = bytes.fromhex("150533e1ff")
    auth_c = bytes.fromhex("2d22ac75ff")
    salt_c = bytes.fromhex("29b88916ff")
    csb_int = int.from_bytes(csb, "big")
    plain = encode_key_data(fx.key_data)
    prefix = data[:rand_off]
    middle = data[rand_off + 16 : encr_off]

    def p1(label: bytes) -> bytes:
        a = psk_state.copy()
        a.update(label)
        b = psk_state.copy()
        b.update(a.digest() + label)
        return b.digest()

    def iv_of(salt: bytes) -> bytes:
        return (int.from_bytes(salt, "big") ^ ((csb_int << 64) | t_int)).to_bytes(
            14, "big"
        ) + b"\x00\x00"

    def floor_receive() -> bytes:
        tail = csb + data[rand_off : rand_off + 16]
        encr = p1(enc_c + tail)[:16]
        auth = p1(auth_c + tail)
        salt = p1(salt_c + tail)[:14]
        if not hmac.compare_digest(hmac.digest(auth, data[:mac_off], "sha1"), data[mac_off:]):
            raise AuthError("floor MAC mismatch")
        d = Cipher(algorithms.AES(encr), modes.CTR(iv_of(salt))).decryptor()
        return d.update(data[encr_off : mac_off - 1]) + d.finalize()

    rand = data[rand_off : rand_off + 16]

    def floor_build() -> bytes:
        tail = csb + rand
        encr = p1(enc_c + tail)[:16]
        auth = p1(auth_c + tail)
        salt = p1(salt_c + tail)[:14]
        e = Cipher(algorithms.AES(encr), modes.CTR(iv_of(salt))).encryptor()
        body = b"".join((prefix, rand, middle, e.update(plain) + e.finalize(), b"\x01"))
        return body + hmac.digest(auth, body, "sha1")

    # The floor must compute the same bytes as ours, or it is not the same work.
    if floor_receive() != plain:
        raise AssertionError("floor receive disagrees with the message")
    if floor_build() != data:
        raise AssertionError("floor build disagrees with ours")
    return floor_receive, floor_build


@register_case("mikey", "MIKEY PSK message (MSK delivery): receive and build vs raw crypto")
def run(cfg: BenchConfig) -> list[Result]:
    """Measure receive and build of the sample message against their floors."""
    fx = Fixture()
    data = fx.wire
    floor_receive, floor_build = _floor_functions(fx)
    note = f"message {len(data)} bytes, PSK 256 bits, AES-CM-128 + HMAC-SHA-1-160"
    out: list[Result] = []
    ours, floor = measure_pair(lambda: fx.receive(data), floor_receive, cfg)
    out.append(_result("decode+verify+decrypt", ours, floor, FLOOR_RECEIVE, note))
    # build draws a fresh RAND each time; the floor reuses the fixture's (RAND drawing excluded)
    ours, floor = measure_pair(fx.build, floor_build, cfg)
    out.append(_result("build+protect", ours, floor, FLOOR_BUILD, note))
    return out


def _result(name: str, ours: Rate, floor: Rate, definition: str, note: str) -> Result:
    return Result(
        case="mikey",
        name=name,
        unit="msg",
        ours=ours,
        floor=floor,
        floor_definition=definition,
        notes=(note,),
    )
