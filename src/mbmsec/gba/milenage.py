"""Milenage authentication functions f1, f1*, f2, f3, f4, f5, f5* (3GPP TS 35.206 §4.1).

The block cipher E_K is AES-128 (Rijndael with 128-bit block and key), provided by
:class:`mbmsec.crypto.AesBlock`; nothing here is a hand-written cipher. Test data: TS 35.207 /
TS 35.208 §4.3 (tests/vectors/milenage_ts35208.txt).

::

    OPc   = OP xor E_K(OP)
    TEMP  = E_K(RAND xor OPc)
    IN1   = SQN || AMF || SQN || AMF
    OUT1  = E_K(TEMP xor rot(IN1 xor OPc, r1) xor c1) xor OPc
    OUTk  = E_K(rot(TEMP xor OPc, rk) xor ck) xor OPc          k = 2..5
    f1 = OUT1[0..63]   f1* = OUT1[64..127]   f5 = OUT2[0..47]   f2 = OUT2[64..127]
    f3 = OUT3          f4 = OUT4             f5* = OUT5[0..47]
"""

from __future__ import annotations

from ..crypto import AesBlock, aes_ecb_block

__all__ = ["Milenage", "compute_opc"]

KEY_LEN = 16
RAND_LEN = 16
SQN_LEN = 6
AMF_LEN = 2

# TS 35.206 §4.1: rotation amounts (bits) and constants c1..c5 (128-bit).
_R = {1: 64, 2: 0, 3: 32, 4: 64, 5: 96}
_C = {1: 0, 2: 1, 3: 2, 4: 4, 5: 8}


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rot(x: bytes, r: int) -> bytes:
    """Cyclic rotation of a 128-bit value towards the most significant bit by ``r`` bits.

    TS 35.206 §4.1 only uses multiples of 8, so a byte rotation suffices.
    """
    n = (r // 8) % 16
    return x[n:] + x[:n]


def _check(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


def compute_opc(k: bytes, op: bytes) -> bytes:
    """Return OPc = OP xor E_K(OP) (TS 35.206 §4.1), 16 bytes."""
    _check("K", k, KEY_LEN)
    _check("OP", op, KEY_LEN)
    return _xor(op, aes_ecb_block(k, op))


class Milenage:
    """The Milenage functions for one subscriber key K and operator variant OPc.

    One AES key schedule is built per instance and reused for every call. ``repr`` never shows
    K or OPc.
    """

    __slots__ = ("_e", "_opc")

    def __init__(self, k: bytes, opc: bytes) -> None:
        _check("K", k, KEY_LEN)
        _check("OPc", opc, KEY_LEN)
        self._e = AesBlock(k)
        self._opc = bytes(opc)

    def __repr__(self) -> str:
        return "Milenage(<redacted>)"

    def _temp(self, rand: bytes) -> bytes:
        _check("RAND", rand, RAND_LEN)
        return self._e.encrypt(_xor(rand, self._opc))

    def _out1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        # TS 35.206 §4.1: OUT1 = E_K(TEMP xor rot(IN1 xor OPc, r1) xor c1) xor OPc
        _check("SQN", sqn, SQN_LEN)
        _check("AMF", amf, AMF_LEN)
        temp = self._temp(rand)
        in1 = sqn + amf + sqn + amf
        block = _xor(temp, _rot(_xor(in1, self._opc), _R[1]))  # c1 = 0
        return _xor(self._e.encrypt(block), self._opc)

    def _outk(self, temp: bytes, k: int) -> bytes:
        # TS 35.206 §4.1: OUTk = E_K(rot(TEMP xor OPc, rk) xor ck) xor OPc, k = 2..5
        block = bytearray(_rot(_xor(temp, self._opc), _R[k]))
        block[15] ^= _C[k]
        return _xor(self._e.encrypt(bytes(block)), self._opc)

    def f1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """Network authentication function f1: MAC-A (8 bytes) over RAND, SQN (6), AMF (2)."""
        return self._out1(rand, sqn, amf)[:8]

    def f1star(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """Re-synchronisation message authentication function f1*: MAC-S (8 bytes)."""
        return self._out1(rand, sqn, amf)[8:]

    def f2345(self, rand: bytes) -> tuple[bytes, bytes, bytes, bytes]:
        """Return ``(RES, CK, IK, AK)``: f2 (8 bytes), f3 (16), f4 (16), f5 (6)."""
        temp = self._temp(rand)
        out2 = self._outk(temp, 2)
        return out2[8:], self._outk(temp, 3), self._outk(temp, 4), out2[:6]

    def f5star(self, rand: bytes) -> bytes:
        """Re-synchronisation anonymity key function f5*: AK* (6 bytes)."""
        return self._outk(self._temp(rand), 5)[:6]
