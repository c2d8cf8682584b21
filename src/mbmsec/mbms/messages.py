"""MSK and MTK messages: the MIKEY profile of TS 33.246 §6.4 (as settled in docs/protocol.md).

Every message here is a standard RFC 3830 PSK I_MESSAGE (data type 0) ending in a KEMAC with
AES-CM-128 encryption and HMAC-SHA-1-160 MAC (RFC 3830 §3.1, §4.2.3, §4.2.4), PRF MIKEY-1,
``#CS`` 0 with the empty CS ID map (RFC 4563 §5, which forbids SP payloads with it)::

    MSK message  (BM-SC -> UE, PSK = MUK, unicast UDP)                       TS 33.246 §6.4
      HDR(type 0, V = verification wanted, CSB ID, #CS 0, map 1)
      EXT(Key ID: {0: Key Domain ID} {1: MSK ID} [{1: MSK ID}])              RFC 4563 §4
      T(COUNTER per MUK  |  NTP-UTC echoed from a compact key request)       RFC 3830 §6.6
      RAND(16)  IDi(URI: BM-SC FQDN)  IDr(NAI: B-TID)                        MUK ID = (IDi, IDr)
      KEMAC{ Key data(TGK, KV Interval: VF = first MTK ID, VT = last MTK ID, 2 bytes each)
             = MSK, one per MSK ID in EXT order }

    MTK message  (BM-SC -> multicast group, PSK = MSK)
      HDR(type 0, V 0, CSB ID, #CS 0, map 1)
      EXT(Key ID: {0: Key Domain ID} {1: MSK ID} {2: MTK ID})
      T(COUNTER per MSK)  RAND(16)
      KEMAC{ Key data(TEK or TEK+SALT, KV SPI = SRTP MKI = MSK ID || MTK ID) = MTK [+ salt] }

    MSK verification message (UE -> BM-SC)                                   RFC 3830 §3.1
      HDR(type 1, CSB ID of the MSK message)  T(copy)  IDr(NAI: B-TID)  V
      V MAC = HMAC-SHA-1(auth_key(MUK, CSB ID, RAND), msg || IDi || IDr || T as carried)

Builders take the injected randomness as arguments (CSB ID, RAND); checkers verify the MAC on the
received bytes before decrypting and return small frozen dataclasses. Replay rules (COUNTER
greater than the last, MTK ID greater than the current one) are the MGV-F's, in
:mod:`mbmsec.mbms.mgvf`; the compact profile's T echo rule is in :mod:`mbmsec.mbms.compact`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from ..errors import AuthError, BadLengthError, ConfigError, DecodeError, InvalidValueError
from ..mikey.codec import DecodeOptions, Message, decode_message
from ..mikey.constants import (
    CsIdMapType,
    DataType,
    EncrAlg,
    IdType,
    KeyDataType,
    KvType,
    MacAlg,
    PrfFunc,
    TsType,
)
from ..mikey.payloads import (
    Header,
    IdPayload,
    Kemac,
    KeyData,
    KeyIdExtension,
    Payload,
    Rand,
    Timestamp,
)
from ..mikey.protect import Psk, build_psk_message, build_verification, verify_and_decrypt
from ..mikey.protect import verify_verification as _verify_verification
from .keys import (
    MSK_LEN,
    MTK_ID_LEN,
    MTK_LEN,
    MTK_SALT_LEN,
    KeyRef,
    MskId,
    MskRef,
    MukId,
    key_id_extension,
    parse_key_id_extension,
    srtp_mki,
)

__all__ = [
    "MAX_MSKS_PER_MESSAGE",
    "MIKEY_PORT",
    "MSG_OPTIONS",
    "RAND_LEN",
    "MskKey",
    "MskMessage",
    "MtkKey",
    "MtkMessage",
    "build_msk_message",
    "build_msk_verification",
    "build_mtk_message",
    "check_msk_message",
    "check_msk_verification",
    "check_mtk_message",
    "peek_key_ref",
]

MIKEY_PORT: Final = 2269  # IANA "mikey" (UDP); MSK push destination by default
RAND_LEN: Final = 16  # RFC 3830 §6.11: at least 128 bits
MAX_MSKS_PER_MESSAGE: Final = 2  # current + next (activation with first key)
MSG_OPTIONS: Final = DecodeOptions(max_message_size=2048, max_payloads=12)
BMSC_ID_TYPE: Final = IdType.URI
UE_ID_TYPE: Final = IdType.NAI


@dataclass(frozen=True, slots=True)
class MskKey:
    """An MSK as delivered: its name, key and validity as the MTK ID range [first, last]."""

    ref: MskRef
    key: bytes = field(repr=False)
    mtk_id_first: int = 1
    mtk_id_last: int = 0xFFFF

    def __post_init__(self) -> None:
        if len(self.key) != MSK_LEN:
            raise ConfigError(f"MSK must be {MSK_LEN} bytes")
        if not 0 <= self.mtk_id_first <= self.mtk_id_last <= 0xFFFF:
            raise ConfigError("MSK validity must be an MTK ID range within 16 bits")


@dataclass(frozen=True, slots=True)
class MtkKey:
    """An MTK (SRTP master key) with optional 112-bit salt, named by MSK and MTK ID."""

    msk: MskRef
    mtk_id: int
    key: bytes = field(repr=False)
    salt: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != MTK_LEN:
            raise ConfigError(f"MTK must be {MTK_LEN} bytes")
        if self.salt is not None and len(self.salt) != MTK_SALT_LEN:
            raise ConfigError(f"MTK salt must be {MTK_SALT_LEN} bytes")
        if not 0 <= self.mtk_id <= 0xFFFF:
            raise ConfigError("MTK ID must fit 16 bits")

    @property
    def mki(self) -> bytes:
        """The SRTP MKI of packets protected with this MTK (MSK ID || MTK ID)."""
        return srtp_mki(self.msk.msk_id, self.mtk_id)


@dataclass(frozen=True, slots=True)
class MskMessage:
    """A verified MSK message: keys, timestamp, CSB ID, V flag, identities, decoded message."""

    msks: tuple[MskKey, ...]
    timestamp: Timestamp
    csb_id: int
    v: bool
    idi: bytes
    idr: bytes
    message: Message = field(repr=False)


@dataclass(frozen=True, slots=True)
class MtkMessage:
    """A MAC-verified MTK message (MGV-F rules not yet applied)."""

    mtk: MtkKey
    counter: int
    csb_id: int


def _header(csb_id: int, v: bool = False) -> Header:
    # RFC 3830 §6.1 + RFC 4563 §5: PSK init, MIKEY-1 PRF, #CS 0, empty map
    if not 0 <= csb_id <= 0xFFFFFFFF:
        raise ConfigError("CSB ID must fit 32 bits")
    return Header(
        DataType.PSK_INIT,
        csb_id,
        v=v,
        prf_func=PrfFunc.MIKEY_1,
        cs_id_map_type=CsIdMapType.EMPTY,
    )


def _check_rand(rand: bytes) -> None:
    if len(rand) != RAND_LEN:
        raise ConfigError(f"RAND must be {RAND_LEN} bytes")


def build_msk_message(
    msks: Sequence[MskKey],
    muk: Psk,
    muk_id: MukId,
    timestamp: Timestamp,
    *,
    csb_id: int,
    rand: bytes,
    v: bool = False,
) -> bytes:
    """Build an MSK message carrying one or two MSKs of one Key Domain (TS 33.246 §6.4).

    ``timestamp`` is the per-MUK COUNTER (3GPP push) or the NTP-UTC T of the compact request
    being answered. ``csb_id`` and ``rand`` come from the injected rng. Returns the bytes;
    raises ConfigError for inconsistent arguments.
    """
    if not 1 <= len(msks) <= MAX_MSKS_PER_MESSAGE:
        raise ConfigError(f"an MSK message carries 1..{MAX_MSKS_PER_MESSAGE} MSKs")
    kd = msks[0].ref.key_domain_id
    if any(m.ref.key_domain_id != kd for m in msks):
        raise ConfigError("MSKs of one message must share the Key Domain ID")
    _check_rand(rand)
    ext = key_id_extension(KeyRef(kd, tuple(m.ref.msk_id for m in msks)))
    payloads: list[Payload] = [
        ext,
        timestamp,
        Rand(rand),
        IdPayload(BMSC_ID_TYPE, muk_id.idi),
        IdPayload(UE_ID_TYPE, muk_id.idr),
    ]
    key_data = [
        KeyData(
            KeyDataType.TGK,
            m.key,
            kv_data=(
                m.mtk_id_first.to_bytes(MTK_ID_LEN, "big"),
                m.mtk_id_last.to_bytes(MTK_ID_LEN, "big"),
            ),
        )
        for m in msks
    ]
    return build_psk_message(_header(csb_id, v), payloads, key_data, muk, rand=rand)


def build_mtk_message(
    mtk: MtkKey, msk_key: Psk, counter: int, *, csb_id: int, rand: bytes
) -> bytes:
    """Build an MTK message under the MSK (TS 33.246 §6.4): T = per-MSK COUNTER ``counter``.

    Returns the bytes; raises ConfigError for values out of range.
    """
    _check_rand(rand)
    if not 0 <= counter <= 0xFFFFFFFF:
        raise ConfigError("COUNTER must fit 32 bits")
    ext = key_id_extension(KeyRef(mtk.msk.key_domain_id, (mtk.msk.msk_id,), mtk.mtk_id))
    payloads: list[Payload] = [ext, Timestamp(TsType.COUNTER, counter), Rand(rand)]
    kd_type = KeyDataType.TEK if mtk.salt is None else KeyDataType.TEK_SALT
    key_data = [KeyData(kd_type, mtk.key, mtk.salt, kv_data=mtk.mki)]
    return build_psk_message(_header(csb_id), payloads, key_data, msk_key, rand=rand)


# --- checking --------------------------------------------------------------------------------


def _decode(data: bytes | Message) -> Message:
    return data if isinstance(data, Message) else decode_message(data, MSG_OPTIONS)


def _shape(msg: Message, data_type: int) -> None:
    h = msg.header
    if h.data_type != data_type:
        raise InvalidValueError(f"data type {h.data_type}, expected {data_type}")
    if h.cs_id_map_type != CsIdMapType.EMPTY or h.cs_count != 0:
        raise InvalidValueError("MBMS messages use #CS 0 with the empty CS ID map")
    if h.prf_func != PrfFunc.MIKEY_1:
        raise InvalidValueError(f"PRF func {h.prf_func} is not MIKEY-1")


def _only(msg: Message, cls: type[Payload], what: str) -> Payload:
    found = msg.find_all(cls)
    if len(found) != 1:
        raise InvalidValueError(f"expected exactly one {what} payload, found {len(found)}")
    return found[0]


def _kemac_algs(msg: Message) -> None:
    k = msg.payloads[-1] if msg.payloads else None
    if not isinstance(k, Kemac):
        raise DecodeError("MBMS key message must end with a KEMAC")
    if k.encr_alg != EncrAlg.AES_CM_128 or k.mac_alg != MacAlg.HMAC_SHA_1_160:
        raise InvalidValueError("MBMS KEMAC must use AES-CM-128 and HMAC-SHA-1-160")


def peek_key_ref(data: bytes | Message) -> tuple[Message, KeyRef]:
    """Decode a message and return it with its Key ID extension, before any MAC check.

    Lets a receiver find the key (MUK by IDi, MSK by MSK ID) to verify with. Raises
    DecodeError (or a subclass) when the message has no single Key ID extension.
    """
    msg = _decode(data)
    ext = _only(msg, KeyIdExtension, "Key ID EXT")
    assert isinstance(ext, KeyIdExtension)
    return msg, parse_key_id_extension(ext)


def _id_data(msg: Message) -> tuple[bytes, bytes]:
    ids = msg.find_all(IdPayload)
    if len(ids) != 2:
        raise InvalidValueError("MSK message needs IDi and IDr")
    if ids[0].id_type != BMSC_ID_TYPE or ids[1].id_type != UE_ID_TYPE:
        raise InvalidValueError("MSK message IDi must be a URI and IDr an NAI")
    return ids[0].data, ids[1].data


def check_msk_message(
    data: bytes | Message, muk: Psk, *, expected_muk_id: MukId | None = None
) -> MskMessage:
    """Verify and decrypt an MSK message (TS 33.246 §6.4, RFC 3830 §5.3).

    Shape checks, then the KEMAC MAC on the received bytes (constant time), then decryption.
    With ``expected_muk_id`` the IDi / IDr must match it. Returns :class:`MskMessage`; raises
    DecodeError (shape), AuthError (MAC, identities), DecryptError.
    """
    msg, ref = peek_key_ref(data)
    _shape(msg, DataType.PSK_INIT)
    _kemac_algs(msg)
    t = _only(msg, Timestamp, "T")
    assert isinstance(t, Timestamp)
    _only(msg, Rand, "RAND")
    idi, idr = _id_data(msg)
    if ref.key_domain_id is None or not 1 <= len(ref.msk_ids) <= MAX_MSKS_PER_MESSAGE:
        raise InvalidValueError("MSK message must name a Key Domain ID and 1..2 MSK IDs")
    if ref.mtk_id is not None or ref.service_id is not None:
        raise InvalidValueError("MSK message Key ID carries only Key Domain ID and MSK IDs")
    if expected_muk_id is not None and (idi, idr) != (expected_muk_id.idi, expected_muk_id.idr):
        raise AuthError("MSK message for another MUK ID")
    items = verify_and_decrypt(msg, muk, MSG_OPTIONS)
    if len(items) != len(ref.msk_ids):
        raise InvalidValueError("MSK message: key data count differs from MSK ID count")
    msks = []
    for msk_id, kd in zip(ref.msk_ids, items, strict=True):
        msks.append(_msk_key(MskRef(ref.key_domain_id, msk_id), kd))
    return MskMessage(tuple(msks), t, msg.header.csb_id, msg.header.v, idi, idr, msg)


def _msk_key(ref: MskRef, kd: KeyData) -> MskKey:
    if kd.type != KeyDataType.TGK or kd.kv_type != KvType.INTERVAL:
        raise InvalidValueError("MSK key data must be TGK with an Interval key validity")
    if len(kd.key) != MSK_LEN:
        raise BadLengthError(f"MSK must be {MSK_LEN} bytes")
    if not isinstance(kd.kv_data, tuple):
        raise InvalidValueError("MSK key validity must be an interval")
    vf, vt = kd.kv_data
    if len(vf) != MTK_ID_LEN or len(vt) != MTK_ID_LEN:
        raise BadLengthError("MSK validity Valid From / Valid To must be 2-byte MTK IDs")
    first, last = int.from_bytes(vf, "big"), int.from_bytes(vt, "big")
    if first > last:
        raise InvalidValueError("MSK validity range is empty")
    return MskKey(ref, kd.key, first, last)


def check_mtk_message(data: bytes | Message, msk_key: Psk) -> MtkMessage:
    """Verify and decrypt an MTK message under the MSK (TS 33.246 §6.4).

    Returns :class:`MtkMessage` (MGV-F counter / MTK ID rules are applied by
    :mod:`mbmsec.mbms.mgvf`). Raises DecodeError (shape), AuthError (MAC), DecryptError.
    """
    msg, ref = peek_key_ref(data)
    _shape(msg, DataType.PSK_INIT)
    if msg.header.v:
        raise InvalidValueError("MTK messages never ask for verification")
    _kemac_algs(msg)
    t = _only(msg, Timestamp, "T")
    assert isinstance(t, Timestamp)
    if t.ts_type != TsType.COUNTER:
        raise InvalidValueError("MTK message T must be a COUNTER")
    _only(msg, Rand, "RAND")
    if msg.find_all(IdPayload):
        raise InvalidValueError("MTK message carries no ID payloads")
    if ref.key_domain_id is None or len(ref.msk_ids) != 1 or ref.mtk_id is None:
        raise InvalidValueError("MTK message must name Key Domain ID, MSK ID and MTK ID")
    msk_id: MskId = ref.msk_ids[0]
    items = verify_and_decrypt(msg, msk_key, MSG_OPTIONS)
    if len(items) != 1:
        raise InvalidValueError("MTK message carries exactly one key data sub-payload")
    kd = items[0]
    if kd.type not in (KeyDataType.TEK, KeyDataType.TEK_SALT) or kd.salt_concat:
        raise InvalidValueError("MTK key data must be TEK or TEK+SALT")
    if len(kd.key) != MTK_LEN or (kd.salt is not None and len(kd.salt) != MTK_SALT_LEN):
        raise BadLengthError("MTK must be 16 bytes and its salt 14 bytes")
    if kd.kv_type != KvType.SPI or kd.kv_data != srtp_mki(msk_id, ref.mtk_id):
        raise InvalidValueError("MTK key validity must be the MKI MSK ID || MTK ID")
    mtk = MtkKey(MskRef(ref.key_domain_id, msk_id), ref.mtk_id, kd.key, kd.salt)
    return MtkMessage(mtk, t.value, msg.header.csb_id)


# --- MSK verification message (RFC 3830 §3.1, TS 33.246 §6.3.2.3.1) ---------------------------


def build_msk_verification(msk_message: MskMessage | Message, muk: Psk, muk_id: MukId) -> bytes:
    """UE side: the verification message answering an MSK message whose V bit was set.

    HDR(type 1, same CSB ID), T (copy), IDr (B-TID), V; the V MAC appends IDi || IDr || T
    (RFC 3830 §5.2). Returns the bytes.
    """
    msg = msk_message.message if isinstance(msk_message, MskMessage) else msk_message
    return build_verification(
        msg, muk, idr=IdPayload(UE_ID_TYPE, muk_id.idr), id_i=muk_id.idi, id_r=muk_id.idr
    )


def check_msk_verification(
    data: bytes | Message, msk_message: bytes | Message, muk: Psk, muk_id: MukId
) -> None:
    """BM-SC side: check a verification message against the MSK message it answers.

    Returns None; raises DecodeError (shape), AuthError (CSB ID, MAC).
    """
    r = _decode(data)
    i = _decode(msk_message)
    ids = r.find_all(IdPayload)
    if len(ids) > 1 or (ids and ids[0].data != muk_id.idr):
        raise AuthError("verification message from another identity")
    _verify_verification(r, i, muk, id_i=muk_id.idi, id_r=muk_id.idr)
