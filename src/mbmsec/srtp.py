"""SRTP sessions keyed from the MTK (TS 33.246 §6.6.2, RFC 3711) over libsrtp via pylibsrtp.

Theory of operation
-------------------
The MTK (128 bits) is the SRTP master key and the salt from the MTK message (112 bits) the master
salt. Every SRTP packet carries an MKI of 6 bytes, ``MSK ID (4) || MTK ID (2)``, so that a
receiver can pick the MTK for each packet and can detect that it misses an MSK (TS 33.246 §6.6.2,
spec digest §2.10).

pylibsrtp 1.0 (libsrtp 2.7) exposes neither the MKI nor the ROC in its Python API. We therefore:

* put the MKI on the wire in this layer. RFC 3711 §3.1 places the MKI between the encrypted
  portion and the authentication tag, and the tag covers only ``header || encrypted portion``
  (RFC 3711 §4.2: ``M = Authenticated Portion || ROC``). So a packet protected by libsrtp without
  MKI, with the 6 MKI bytes inserted before its tag, is exactly the packet libsrtp would emit with
  MKI enabled; a receiver removes the MKI, picks the session for that MKI and hands the rest to
  libsrtp. Each MKI gets its own libsrtp session (one master key each).
* set the ROC through ``srtp_set_stream_roc``, which the pylibsrtp extension exports as a C
  symbol; we call it with ``ctypes`` on the same shared object. Streams are created per SSRC
  (``ssrc_specific``) so their ROC can be set before the first packet.

ROC across MTK changes (:class:`RocMode`). The MBMS profile signals no ROC (MTK messages use
the empty CS ID map, so there is no SRTP-ID map ROC field). Default ``PER_KEY``: each new MTK
starts a fresh crypto context at ROC 0 (or the ``roc`` a key message gives), as recommended in
docs/spec-findings.md Q6; a receiver that joins in the middle of an MTK period then works unless
the sequence number already wrapped under that MTK. ``CONTINUOUS`` keeps one packet index per
SSRC across keys (RFC 3711 §3.3.1 with master key change by MKI); sender and receiver must use
the same mode.

A missing salt (MTK message without TEK+SALT) gives an all-zero master salt; RFC 3711 §8.2 lets
the salt be public, and TS 33.246 makes the salt optional.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any

import pylibsrtp
from pylibsrtp._binding import ffi

from .buffer import Buffer
from .errors import AuthError, ConfigError, DecodeError, ReplayError, UnknownMkiError

MKI_LENGTH = 6  # TS 33.246 §6.6.2: MSK ID (4 bytes) || MTK ID (2 bytes)
MASTER_KEY_LENGTH = 16
MASTER_SALT_LENGTH = 14
RTP_HEADER_LENGTH = 12  # RFC 3550 §5.1 fixed header
RTCP_HEADER_LENGTH = 8  # RFC 3550 §6.4.1: V/P/RC, PT, length, SSRC
SRTCP_INDEX_LENGTH = 4  # RFC 3711 §3.4: E flag + 31-bit SRTCP index
SRTCP_TAG_LENGTH = 10  # libsrtp uses the 80-bit tag for SRTCP in both AES-CM profiles


class RocMode(Enum):
    """How the ROC behaves when the MTK changes (see the module docstring)."""

    PER_KEY = "per-key"
    CONTINUOUS = "continuous"


class SrtpProfile(IntEnum):
    """SRTP protection profiles supported with an MKI (RFC 3711 §5, RFC 5764 §4.1.2 names)."""

    AES128_CM_HMAC_SHA1_80 = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
    AES128_CM_HMAC_SHA1_32 = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32

    @property
    def tag_length(self) -> int:
        """Length in bytes of the SRTP authentication tag."""
        return 10 if self is SrtpProfile.AES128_CM_HMAC_SHA1_80 else 4


# --- MKI -------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Mki:
    """The SRTP MKI of MBMS: MSK ID (32 bits) || MTK ID (16 bits)."""

    msk_id: int
    mtk_id: int

    def __post_init__(self) -> None:
        if not 0 <= self.msk_id <= 0xFFFFFFFF or not 0 <= self.mtk_id <= 0xFFFF:
            raise ConfigError("MKI out of range: MSK ID is 32 bits, MTK ID 16 bits")

    def encode(self) -> bytes:
        """Return the 6 MKI bytes.  # TS 33.246 §6.6.2"""
        buf = Buffer()
        buf.push_uint32(self.msk_id)
        buf.push_uint16(self.mtk_id)
        return buf.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Mki:
        """Parse 6 MKI bytes; raise DecodeError on any other length.  # TS 33.246 §6.6.2"""
        buf = Buffer(data)
        with buf.restrict(len(data), "MKI"):
            msk_id = buf.pull_uint32("MKI MSK ID")
            mtk_id = buf.pull_uint16("MKI MTK ID")
        return cls(msk_id, mtk_id)


@dataclass(frozen=True)
class SrtpKey:
    """Master key material for one MKI: the MTK and its salt, and the ROC to start from."""

    mki: Mki
    master_key: bytes = field(repr=False)
    master_salt: bytes | None = field(default=None, repr=False)
    roc: int = 0

    def __post_init__(self) -> None:
        if len(self.master_key) != MASTER_KEY_LENGTH:
            raise ConfigError("SRTP master key (MTK) must be 16 bytes")
        if self.master_salt is not None and len(self.master_salt) != MASTER_SALT_LENGTH:
            raise ConfigError("SRTP master salt must be 14 bytes")
        if not 0 <= self.roc <= 0xFFFFFFFF:
            raise ConfigError("ROC is 32 bits")

    def libsrtp_key(self) -> bytes:
        """Master key || master salt as libsrtp expects it (missing salt = zeros)."""
        return self.master_key + (self.master_salt or bytes(MASTER_SALT_LENGTH))


# --- ROC access through the libsrtp symbol ---------------------------------------------------


def _load_roc_setter() -> Any:
    lib = ctypes.CDLL(pylibsrtp._binding.__file__)
    fn = lib.srtp_set_stream_roc
    fn.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32]
    fn.restype = ctypes.c_int
    return fn


try:
    _SET_STREAM_ROC: Any = _load_roc_setter()
except (OSError, AttributeError):  # pragma: no cover - depends on the pylibsrtp build
    _SET_STREAM_ROC = None


def _set_stream_roc(session: pylibsrtp.Session, ssrc: int, roc: int) -> None:
    if roc == 0:
        return  # libsrtp's initial ROC
    if _SET_STREAM_ROC is None:  # pragma: no cover - depends on the pylibsrtp build
        raise ConfigError("this pylibsrtp build cannot set the SRTP ROC")
    ptr = int(ffi.cast("uintptr_t", session._srtp[0]))
    if _SET_STREAM_ROC(ptr, ssrc, roc) != 0:  # pragma: no cover - stream was just added
        raise ConfigError("libsrtp refused to set the ROC")


# --- RFC 3711 index tracking -----------------------------------------------------------------


def estimate_roc(roc: int, s_l: int, seq: int) -> int:
    """Return the ROC guess for ``seq`` given the highest sequence number s_l.

    # RFC 3711 §3.3.1 and Appendix A
    """
    if s_l < 32768:
        if seq - s_l > 32768:
            return (roc - 1) & 0xFFFFFFFF
        return roc
    if s_l - 32768 > seq:
        return (roc + 1) & 0xFFFFFFFF
    return roc


@dataclass
class _StreamState:
    roc: int
    s_l: int

    def advance(self, seq: int) -> int:
        """Record ``seq`` as received/sent; return its ROC (RFC 3711 §3.3.1)."""
        v = estimate_roc(self.roc, self.s_l, seq)
        if v == (self.roc + 1) & 0xFFFFFFFF:
            self.roc, self.s_l = v, seq
        elif v == self.roc and seq > self.s_l:
            self.s_l = seq
        return v


def _pull_rtp_header(packet: bytes) -> tuple[int, int]:
    """Return (sequence number, SSRC) of an RTP/SRTP packet.  # RFC 3550 §5.1"""
    buf = Buffer(packet)
    first = buf.pull_uint8("RTP V/P/X/CC")
    if first >> 6 != 2:
        raise DecodeError("RTP version is not 2", 0)
    buf.pull_uint8("RTP M/PT")
    seq = buf.pull_uint16("RTP sequence number")
    buf.pull_uint32("RTP timestamp")
    ssrc = buf.pull_uint32("RTP SSRC")
    return seq, ssrc


def _pull_rtcp_ssrc(packet: bytes) -> int:
    """Return the sender SSRC of an RTCP/SRTCP compound packet.  # RFC 3550 §6.4.1"""
    buf = Buffer(packet)
    first = buf.pull_uint8("RTCP V/P/RC")
    if first >> 6 != 2:
        raise DecodeError("RTCP version is not 2", 0)
    buf.pull_bytes(3, "RTCP PT/length")
    return buf.pull_uint32("RTCP SSRC")


def _translate(exc: pylibsrtp.Error) -> Exception:
    text = str(exc)
    if "replay" in text:
        return ReplayError(f"SRTP {text}")
    if "authentication" in text:
        return AuthError("SRTP authentication failure")
    return DecodeError(f"SRTP: {text}")


class _KeySession:
    """One libsrtp session for one master key, with streams added per SSRC."""

    __slots__ = ("_key", "_profile", "_session", "_streams")

    def __init__(self, key: SrtpKey, profile: SrtpProfile) -> None:
        self._key = key
        self._profile = profile
        self._session = pylibsrtp.Session()
        self._streams: set[int] = set()

    def ensure_stream(self, ssrc: int, roc: int, *, outbound: bool) -> None:
        if ssrc in self._streams:
            return
        policy = pylibsrtp.Policy(
            key=self._key.libsrtp_key(),
            ssrc_type=pylibsrtp.Policy.SSRC_SPECIFIC,
            ssrc_value=ssrc,
            srtp_profile=int(self._profile),
        )
        if outbound:
            policy.allow_repeat_tx = True
        self._session.add_stream(policy)
        _set_stream_roc(self._session, ssrc, roc)
        self._streams.add(ssrc)

    @property
    def session(self) -> pylibsrtp.Session:
        return self._session


# --- sender ----------------------------------------------------------------------------------


class SrtpSender:
    """Protect RTP/RTCP of one SSRC with the current MTK and tag each packet with its MKI.

    :meth:`set_key` switches to a new MTK; with :attr:`RocMode.CONTINUOUS` the packet index
    (ROC) continues across keys, with :attr:`RocMode.PER_KEY` it restarts at the key's ``roc``.
    """

    def __init__(
        self,
        ssrc: int,
        profile: SrtpProfile = SrtpProfile.AES128_CM_HMAC_SHA1_80,
        roc_mode: RocMode = RocMode.PER_KEY,
    ) -> None:
        self.ssrc = ssrc
        self.profile = profile
        self.roc_mode = roc_mode
        self._key: SrtpKey | None = None
        self._session: _KeySession | None = None
        self._state: _StreamState | None = None

    @property
    def mki(self) -> Mki | None:
        """The MKI of the key in use, or None before :meth:`set_key`."""
        return None if self._key is None else self._key.mki

    @property
    def roc(self) -> int:
        """The sender's current rollover counter."""
        return 0 if self._state is None else self._state.roc

    def set_key(self, key: SrtpKey) -> None:
        """Use ``key`` from the next packet on.

        Its ``roc`` seeds the index of a fresh context (PER_KEY, or a CONTINUOUS sender that has
        sent nothing yet).
        """
        if self._state is None or self.roc_mode is RocMode.PER_KEY:
            self._state = _StreamState(roc=key.roc, s_l=-1)
        self._key = key
        self._session = _KeySession(key, self.profile)

    def _advance(self, seq: int) -> int:
        assert self._state is not None
        if self._state.s_l < 0:
            self._state.s_l = seq
            return self._state.roc
        return self._state.advance(seq)

    def protect(self, rtp: bytes) -> bytes:
        """Return the SRTP packet for ``rtp``: header || encrypted payload || MKI || tag.

        Raises ConfigError without a key or when the SSRC is not this sender's.
        """
        if self._session is None or self._key is None:
            raise ConfigError("no SRTP key set")
        seq, ssrc = _pull_rtp_header(rtp)
        if ssrc != self.ssrc:
            raise ConfigError("RTP packet SSRC differs from the sender's")
        roc = self._advance(seq)
        self._session.ensure_stream(ssrc, roc, outbound=True)
        protected = self._session.session.protect(rtp)
        cut = len(protected) - self.profile.tag_length
        return protected[:cut] + self._key.mki.encode() + protected[cut:]

    def protect_rtcp(self, rtcp: bytes) -> bytes:
        """Return the SRTCP packet: header || encrypted || E+index || MKI || tag (RFC 3711 §3.4)."""
        if self._session is None or self._key is None:
            raise ConfigError("no SRTP key set")
        ssrc = _pull_rtcp_ssrc(rtcp)
        self._session.ensure_stream(ssrc, self.roc, outbound=True)
        protected = self._session.session.protect_rtcp(rtcp)
        cut = len(protected) - SRTCP_TAG_LENGTH
        return protected[:cut] + self._key.mki.encode() + protected[cut:]


# --- receiver --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedPacket:
    """An unprotected RTP packet and the MKI that keyed it."""

    mki: Mki
    ssrc: int
    sequence_number: int
    rtp: bytes = field(repr=False)


class SrtpReceiver:
    """Unprotect SRTP/SRTCP packets of any SSRC with the key their MKI names.

    An MKI with no installed key raises :class:`UnknownMkiError`; the UE's supervision turns an
    unknown MSK ID into an MSK request. Bad tags raise AuthError, replays ReplayError.
    """

    def __init__(
        self,
        profile: SrtpProfile = SrtpProfile.AES128_CM_HMAC_SHA1_80,
        max_keys: int = 16,
        roc_mode: RocMode = RocMode.PER_KEY,
    ) -> None:
        self.profile = profile
        self.max_keys = max_keys
        self.roc_mode = roc_mode
        self._keys: dict[Mki, SrtpKey] = {}
        self._sessions: dict[Mki, _KeySession] = {}
        self._streams: dict[int, _StreamState] = {}

    def add_key(self, key: SrtpKey) -> None:
        """Install ``key`` under its MKI; the oldest key goes when ``max_keys`` is exceeded."""
        self._keys[key.mki] = key
        self._sessions[key.mki] = _KeySession(key, self.profile)
        while len(self._keys) > self.max_keys:
            oldest = next(iter(self._keys))
            self.remove_key(oldest)

    def remove_key(self, mki: Mki) -> None:
        """Forget the key for ``mki`` (no error if it is not installed)."""
        self._keys.pop(mki, None)
        self._sessions.pop(mki, None)

    def remove_msk(self, msk_id: int) -> None:
        """Forget every key whose MKI names ``msk_id``."""
        for mki in [m for m in self._keys if m.msk_id == msk_id]:
            self.remove_key(mki)

    def has_key(self, mki: Mki) -> bool:
        return mki in self._keys

    @property
    def mkis(self) -> list[Mki]:
        """MKIs of the installed keys, oldest first."""
        return list(self._keys)

    def _split(self, packet: bytes, tag_length: int, min_length: int) -> tuple[Mki, bytes]:
        if len(packet) < min_length + MKI_LENGTH + tag_length:
            raise DecodeError("SRTP packet too short for MKI and tag", len(packet))
        mki_at = len(packet) - tag_length - MKI_LENGTH
        mki = Mki.decode(packet[mki_at : mki_at + MKI_LENGTH])
        return mki, packet[:mki_at] + packet[mki_at + MKI_LENGTH :]

    def peek_mki(self, packet: bytes) -> Mki:
        """Return the MKI of an SRTP packet without unprotecting it; DecodeError if too short."""
        return self._split(packet, self.profile.tag_length, RTP_HEADER_LENGTH)[0]

    def unprotect(self, packet: bytes) -> ReceivedPacket:
        """Verify and decrypt one SRTP packet.  # RFC 3711 §3.3

        Raises DecodeError (malformed), UnknownMkiError, AuthError or ReplayError.
        """
        mki, inner = self._split(packet, self.profile.tag_length, RTP_HEADER_LENGTH)
        seq, ssrc = _pull_rtp_header(inner)
        ks = self._sessions.get(mki)
        if ks is None:
            raise UnknownMkiError(mki.msk_id, mki.mtk_id)
        st = self._streams.get(ssrc)
        if st is None or self.roc_mode is RocMode.PER_KEY:
            roc = self._keys[mki].roc
        else:
            roc = estimate_roc(st.roc, st.s_l, seq)
        ks.ensure_stream(ssrc, roc, outbound=False)
        try:
            rtp = ks.session.unprotect(inner)
        except pylibsrtp.Error as exc:
            raise _translate(exc) from None
        if st is None:
            self._streams[ssrc] = _StreamState(roc=roc, s_l=seq)
        else:
            st.advance(seq)
        return ReceivedPacket(mki=mki, ssrc=ssrc, sequence_number=seq, rtp=rtp)

    def unprotect_rtcp(self, packet: bytes) -> tuple[Mki, bytes]:
        """Verify and decrypt one SRTCP packet; return its MKI and the RTCP bytes."""
        mki, inner = self._split(packet, SRTCP_TAG_LENGTH, RTCP_HEADER_LENGTH + SRTCP_INDEX_LENGTH)
        ssrc = _pull_rtcp_ssrc(inner)
        ks = self._sessions.get(mki)
        if ks is None:
            raise UnknownMkiError(mki.msk_id, mki.mtk_id)
        st = self._streams.get(ssrc)
        continuous = st is not None and self.roc_mode is RocMode.CONTINUOUS
        ks.ensure_stream(ssrc, st.roc if st and continuous else self._keys[mki].roc, outbound=False)
        try:
            return mki, ks.session.unprotect_rtcp(inner)
        except pylibsrtp.Error as exc:
            raise _translate(exc) from None


def build_rtp(ssrc: int, seq: int, timestamp: int, payload: bytes, payload_type: int = 96) -> bytes:
    """Return a minimal RTP packet (version 2, no CSRC, no extension).  # RFC 3550 §5.1"""
    buf = Buffer()
    buf.push_uint8(0x80)
    buf.push_uint8(payload_type & 0x7F)
    buf.push_uint16(seq & 0xFFFF)
    buf.push_uint32(timestamp & 0xFFFFFFFF)
    buf.push_uint32(ssrc)
    buf.push_bytes(payload)
    return buf.getvalue()
