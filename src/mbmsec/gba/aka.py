"""UMTS AKA (3GPP TS 33.102 §6.3) on top of Milenage: authentication vectors, AUTN, AUTS.

Network side (HSS)::

    AK    = f5(RAND)                 AUTN = (SQN xor AK) || AMF || MAC-A       (§6.3.2)
    MAC-A = f1(SQN || RAND || AMF)   AV   = RAND, XRES, CK, IK, AUTN

UE side (USIM), §6.3.3: compute AK, recover SQN, check MAC-A first (failure -> user
authentication reject, :class:`~mbmsec.errors.AkaMacError`), then check that SQN is in the
correct range (failure -> synchronisation failure carrying AUTS,
:class:`~mbmsec.errors.SyncFailureError`)::

    AUTS  = (SQN_MS xor AK*) || MAC-S     AK* = f5*(RAND)
    MAC-S = f1*(SQN_MS || RAND || AMF*)   AMF* = 0x0000 (dummy, §6.3.3)

HSS re-synchronisation (§6.3.5): :func:`resync` recovers SQN_MS from AUTS and checks MAC-S.

SQN freshness: the TS 33.102 Annex C profile. SQN (48 bits) = SEQ (43 bits) || IND (5 bits).
The USIM keeps an array SEQ_MS(0..a-1), a = 2^IND_BITS = 32 (Annex C.2.1) and accepts SQN only if

* SEQ > SEQ_MS(IND)                                   (C.2.1, per-index freshness)
* SEQ - SEQ_MS <= DELTA, DELTA = 2^28                  (C.2.2, wrap-around protection; SEQ_MS
  is the highest SEQ accepted so far)
* optionally SEQ_MS - SEQ <= L                         (C.2.3, limit on the age of an AV)

On success it stores SEQ in SEQ_MS(IND). The SQN_MS sent in AUTS is the highest SQN accepted
so far (SEQ_MS || its IND). The HSS generates SQNs as in Annex C.1.2/C.3: SEQ_HE increases by one
per vector and IND cycles through 0..a-1 (:func:`next_sqn`); after a resync it continues from
SQN_MS (:func:`sqn_after_resync`).

All state is immutable: :class:`SqnState` methods return new values, so a store can persist it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..crypto import mac_equal
from ..errors import AkaMacError, SyncFailureError
from .milenage import Milenage

__all__ = [
    "AMF_RESYNC",
    "AUTN_LEN",
    "AUTS_LEN",
    "DELTA",
    "IND_BITS",
    "SQN_MAX",
    "AkaResult",
    "AuthVector",
    "SqnState",
    "Usim",
    "build_auts",
    "generate_av",
    "next_sqn",
    "resync",
    "sqn_after_resync",
    "sqn_from_bytes",
    "sqn_ind",
    "sqn_join",
    "sqn_seq",
    "sqn_to_bytes",
    "verify_autn",
]

SQN_BITS = 48
SQN_MAX = (1 << SQN_BITS) - 1
IND_BITS = 5  # TS 33.102 Annex C.3.2: a = 32 entries
DELTA = 1 << 28  # TS 33.102 Annex C.3.1 recommended value
RAND_LEN = 16
AMF_LEN = 2
AUTN_LEN = 16  # 6 (SQN xor AK) + 2 (AMF) + 8 (MAC-A)
AUTS_LEN = 14  # 6 (SQN_MS xor AK*) + 8 (MAC-S)
AMF_RESYNC = b"\x00\x00"  # TS 33.102 §6.3.3: dummy AMF for MAC-S


# --- SQN helpers (48-bit, TS 33.102 Annex C.1) ------------------------------------------------


def sqn_to_bytes(sqn: int) -> bytes:
    """Encode a 48-bit SQN as 6 big-endian bytes. Raises ``ValueError`` if out of range."""
    if not 0 <= sqn <= SQN_MAX:
        raise ValueError("SQN out of 48-bit range")
    return sqn.to_bytes(6, "big")


def sqn_from_bytes(data: bytes) -> int:
    """Decode 6 big-endian bytes into a SQN."""
    if len(data) != 6:
        raise ValueError("SQN must be 6 bytes")
    return int.from_bytes(data, "big")


def sqn_seq(sqn: int, ind_bits: int = IND_BITS) -> int:
    """Return SEQ, the high 48 - ind_bits bits of SQN (Annex C.1.1)."""
    return sqn >> ind_bits


def sqn_ind(sqn: int, ind_bits: int = IND_BITS) -> int:
    """Return IND, the low ind_bits bits of SQN (Annex C.1.1)."""
    return sqn & ((1 << ind_bits) - 1)


def sqn_join(seq: int, ind: int, ind_bits: int = IND_BITS) -> int:
    """Return SQN = SEQ || IND. Raises ``ValueError`` if a part does not fit."""
    if not 0 <= ind < (1 << ind_bits) or not 0 <= seq < (1 << (SQN_BITS - ind_bits)):
        raise ValueError("SEQ or IND out of range")
    return (seq << ind_bits) | ind


def next_sqn(sqn_he: int, ind_bits: int = IND_BITS) -> int:
    """Return the SQN for the next vector after ``sqn_he``: SEQ + 1, IND + 1 mod a (Annex C.3.2).

    Raises ``ValueError`` when SEQ would overflow its 43 bits.
    """
    seq, ind = sqn_seq(sqn_he, ind_bits), sqn_ind(sqn_he, ind_bits)
    return sqn_join(seq + 1, (ind + 1) % (1 << ind_bits), ind_bits)


def sqn_after_resync(sqn_he: int, sqn_ms: int, ind_bits: int = IND_BITS, delta: int = DELTA) -> int:
    """Return the new SQN_HE after a re-synchronisation (TS 33.102 §6.3.5, Annex C.3.4).

    If the next SQN the HSS would generate would be accepted by the USIM (its SEQ is above
    SEQ_MS and at most ``delta`` ahead) SQN_HE is kept; otherwise it is reset to SQN_MS, so the
    next generated SQN (``next_sqn`` of the result) has SEQ = SEQ_MS + 1.
    """
    ahead = sqn_seq(next_sqn(sqn_he, ind_bits), ind_bits) - sqn_seq(sqn_ms, ind_bits)
    if 0 < ahead <= delta:
        return sqn_he
    return sqn_ms


@dataclass(frozen=True)
class SqnState:
    """The USIM's record of accepted sequence numbers (TS 33.102 Annex C.2).

    ``seq_ms[i]`` is the highest SEQ accepted with IND = i; ``sqn_ms`` the highest SQN accepted
    overall (sent in AUTS). ``limit`` is the optional age limit L of Annex C.2.3 (None: off).
    """

    seq_ms: tuple[int, ...] = (0,) * (1 << IND_BITS)
    sqn_ms: int = 0
    ind_bits: int = IND_BITS
    delta: int = DELTA
    limit: int | None = None

    def __post_init__(self) -> None:
        if len(self.seq_ms) != 1 << self.ind_bits:
            raise ValueError("seq_ms must have 2^ind_bits entries")
        if not 0 <= self.sqn_ms <= SQN_MAX:
            raise ValueError("SQN_MS out of 48-bit range")

    def is_fresh(self, sqn: int) -> bool:
        """True when ``sqn`` is in the correct range (Annex C.2.1-C.2.3)."""
        seq, ind = sqn_seq(sqn, self.ind_bits), sqn_ind(sqn, self.ind_bits)
        highest = sqn_seq(self.sqn_ms, self.ind_bits)
        if seq <= self.seq_ms[ind]:
            return False  # C.2.1
        if seq - highest > self.delta:
            return False  # C.2.2
        return not (self.limit is not None and highest - seq > self.limit)  # C.2.3

    def accept(self, sqn: int) -> SqnState:
        """Return the state after accepting ``sqn`` (caller has checked :meth:`is_fresh`)."""
        seq, ind = sqn_seq(sqn, self.ind_bits), sqn_ind(sqn, self.ind_bits)
        arr = list(self.seq_ms)
        arr[ind] = seq
        highest = self.sqn_ms
        if seq > sqn_seq(highest, self.ind_bits):
            highest = sqn
        return SqnState(tuple(arr), highest, self.ind_bits, self.delta, self.limit)


# --- vectors and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class AuthVector:
    """A UMTS authentication vector (quintet) RAND, XRES, CK, IK, AUTN (TS 33.102 §6.3.2)."""

    rand: bytes
    xres: bytes = field(repr=False)
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    autn: bytes

    @property
    def ks(self) -> bytes:
        """Ks = CK || IK (TS 33.220 §4.5.2)."""
        return self.ck + self.ik


@dataclass(frozen=True)
class AkaResult:
    """Outcome of a successful AUTN check on the UE: RES, CK, IK and the accepted SQN."""

    res: bytes = field(repr=False)
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    sqn: int = 0

    @property
    def ks(self) -> bytes:
        """Ks = CK || IK (TS 33.220 §4.5.2)."""
        return self.ck + self.ik


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _check(name: str, value: bytes, length: int) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")


# --- network side ------------------------------------------------------------------------------


def generate_av(k: bytes, opc: bytes, sqn: int, amf: bytes, rand: bytes) -> AuthVector:
    """Return the authentication vector for SQN, AMF and RAND (TS 33.102 §6.3.2).

    AUTN = (SQN xor AK) || AMF || MAC-A. RAND comes from the caller's injected rng.
    """
    _check("AMF", amf, AMF_LEN)
    _check("RAND", rand, RAND_LEN)
    m = Milenage(k, opc)
    sqn_b = sqn_to_bytes(sqn)
    mac_a = m.f1(rand, sqn_b, amf)
    res, ck, ik, ak = m.f2345(rand)
    autn = _xor(sqn_b, ak) + amf + mac_a
    return AuthVector(rand=rand, xres=res, ck=ck, ik=ik, autn=autn)


def resync(k: bytes, opc: bytes, rand: bytes, auts: bytes) -> int:
    """Recover SQN_MS from AUTS and verify MAC-S (TS 33.102 §6.3.5).

    ``rand`` is the RAND of the vector the UE rejected. Returns SQN_MS. Raises
    :class:`~mbmsec.errors.AkaMacError` when MAC-S does not verify.
    """
    _check("RAND", rand, RAND_LEN)
    _check("AUTS", auts, AUTS_LEN)
    m = Milenage(k, opc)
    sqn_ms_b = _xor(auts[:6], m.f5star(rand))
    if not mac_equal(m.f1star(rand, sqn_ms_b, AMF_RESYNC), auts[6:]):
        raise AkaMacError("AUTS MAC-S verification failed")
    return sqn_from_bytes(sqn_ms_b)


# --- UE side -----------------------------------------------------------------------------------


def build_auts(k: bytes, opc: bytes, sqn_ms: int, rand: bytes) -> bytes:
    """Return AUTS = (SQN_MS xor AK*) || MAC-S with the dummy AMF 0x0000 (TS 33.102 §6.3.3)."""
    return _build_auts(Milenage(k, opc), sqn_ms, rand)


def _build_auts(m: Milenage, sqn_ms: int, rand: bytes) -> bytes:
    _check("RAND", rand, RAND_LEN)
    sqn_ms_b = sqn_to_bytes(sqn_ms)
    return _xor(sqn_ms_b, m.f5star(rand)) + m.f1star(rand, sqn_ms_b, AMF_RESYNC)


def _verify(m: Milenage, rand: bytes, autn: bytes, state: SqnState) -> AkaResult:
    # TS 33.102 §6.3.3: MAC first, then SQN range.
    _check("RAND", rand, RAND_LEN)
    _check("AUTN", autn, AUTN_LEN)
    res, ck, ik, ak = m.f2345(rand)
    sqn_b = _xor(autn[:6], ak)
    amf, mac_a = autn[6:8], autn[8:]
    if not mac_equal(m.f1(rand, sqn_b, amf), mac_a):
        raise AkaMacError("AUTN MAC-A verification failed")
    sqn = sqn_from_bytes(sqn_b)
    if not state.is_fresh(sqn):
        raise SyncFailureError("SQN out of range", _build_auts(m, state.sqn_ms, rand))
    return AkaResult(res=res, ck=ck, ik=ik, sqn=sqn)


def verify_autn(k: bytes, opc: bytes, rand: bytes, autn: bytes, state: SqnState) -> AkaResult:
    """Check AUTN as the USIM does (TS 33.102 §6.3.3) and return RES, CK, IK and the SQN.

    The caller stores ``state.accept(result.sqn)`` afterwards (or uses :class:`Usim`).
    Raises :class:`~mbmsec.errors.AkaMacError` on a MAC-A mismatch and
    :class:`~mbmsec.errors.SyncFailureError` (with ``auts``) when SQN is not fresh.
    """
    return _verify(Milenage(k, opc), rand, autn, state)


class Usim:
    """A USIM: K, OPc and the SQN state, updated on every accepted AUTN (TS 33.102 §6.3.3)."""

    __slots__ = ("_m", "sqn_state")

    def __init__(self, k: bytes, opc: bytes, sqn_state: SqnState | None = None) -> None:
        self._m = Milenage(k, opc)
        self.sqn_state = sqn_state if sqn_state is not None else SqnState()

    def __repr__(self) -> str:
        return f"Usim(<redacted>, sqn_ms={self.sqn_state.sqn_ms})"

    def authenticate(self, rand: bytes, autn: bytes) -> AkaResult:
        """Run AUTHENTICATE: verify AUTN, update the SQN state, return RES/CK/IK.

        Raises AkaMacError or SyncFailureError (state unchanged in both cases).
        """
        result = _verify(self._m, rand, autn, self.sqn_state)
        self.sqn_state = self.sqn_state.accept(result.sqn)
        return result
