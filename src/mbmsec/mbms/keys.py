"""MBMS key identifiers and the MRK/MUK derivation (3GPP TS 33.246, RFC 4563, TS 31.102).

::

    Key Domain ID   3 bytes  = MCC || MNC, BCD as a PLMN identity        TS 33.246 §6.3.2.1
    MSK ID          4 bytes  = Key Group (2) || Key Number (2)           TS 31.102 §4.2.80
    MTK ID          2 bytes  unsigned, increased by one per new MTK      TS 33.246 §6.3.3.1
    SRTP MKI        6 bytes  = MSK ID || MTK ID                           TS 33.246 §6.6.2
    MUK ID          (IDi, IDr) = (BM-SC NAF FQDN, B-TID)                 TS 31.102 §4.2.81

An MSK is named by (Key Domain ID, MSK ID) (:class:`MskRef`). On the wire these identifiers
travel in a General Extension of type Key ID (RFC 4563 §4): Key ID Type 0 Key Domain ID,
1 MSK ID, 2 MTK ID, and one private-use type of ours, 241 (MBMS User Service ID, UTF-8), used
by the compact profile's key request to name a service by its serviceId.

MRK / MUK (TS 33.246 §6.1; see docs/spec-findings.md Q2):

- GBA_U: MRK = Ks_ext_NAF (in the ME, HTTP digest and the compact request MAC), MUK =
  Ks_int_NAF (in the UICC, PSK of the MSK messages). TS 33.220 §G.2 confirms Ks_int_NAF as MUK.
- GBA_ME: MRK = MUK = Ks_NAF. The TS 33.246 text giving distinct KDF inputs for GBA_ME could
  not be read; we do not invent FC values. This is flagged as ``conformant=False`` on the
  result so a deployment can see it. Every MAC in our profiles covers the HDR data type, so the
  shared key cannot make a request, an Error message and a key message stand in for each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from ..errors import BadLengthError, ConfigError, InvalidValueError
from ..mikey.constants import KeyIdType
from ..mikey.payloads import KeyIdEntry, KeyIdExtension

__all__ = [
    "KEY_DOMAIN_ID_LEN",
    "KEY_ID_TYPE_SERVICE_ID",
    "MSK_ID_LEN",
    "MSK_LEN",
    "MTK_ID_LEN",
    "MTK_ID_MAX",
    "MTK_LEN",
    "MTK_SALT_LEN",
    "SRTP_MKI_LEN",
    "GbaMode",
    "KeyRef",
    "MbmsUserKeys",
    "MskId",
    "MskRef",
    "MukId",
    "derive_mbms_user_keys",
    "key_domain_id",
    "key_id_extension",
    "parse_key_id_extension",
    "parse_srtp_mki",
    "srtp_mki",
]

KEY_DOMAIN_ID_LEN: Final = 3
MSK_ID_LEN: Final = 4
MTK_ID_LEN: Final = 2
MTK_ID_MAX: Final = 0xFFFF
SRTP_MKI_LEN: Final = MSK_ID_LEN + MTK_ID_LEN
MSK_LEN: Final = 16  # 128-bit MSK
MTK_LEN: Final = 16  # 128-bit MTK = SRTP master key (AES-128)
MTK_SALT_LEN: Final = 14  # 112-bit SRTP master salt
SERVICE_ID_MAX_LEN: Final = 255  # Key ID Length is 8 bits (RFC 4563 §4)

# RFC 4563 §8: Key ID Types 241-255 are private use. Ours: an MBMS User Service ID (the
# serviceId of the user service description, UTF-8), so a UE can ask for "the key of service X"
# before it knows the service's Key Domain ID / Key Group.
KEY_ID_TYPE_SERVICE_ID: Final = 241


def key_domain_id(mcc: str, mnc: str) -> bytes:
    """Return the 3-byte Key Domain ID = MCC || MNC, BCD-coded as a PLMN identity.

    Coding of TS 24.008 §10.5.1.3: byte 0 = MCC2|MCC1, byte 1 = MNC3|MCC3 (F when the MNC has
    two digits), byte 2 = MNC2|MNC1 (high nibble first). Raises ConfigError on bad digits.
    """
    if len(mcc) != 3 or not mcc.isdigit() or len(mnc) not in (2, 3) or not mnc.isdigit():
        raise ConfigError("MCC must be 3 digits and MNC 2 or 3 digits")
    d = [int(c) for c in mcc]
    n = [int(c) for c in mnc]
    mnc3 = n[2] if len(n) == 3 else 0xF
    return bytes(((d[1] << 4) | d[0], (mnc3 << 4) | d[2], (n[1] << 4) | n[0]))


@dataclass(frozen=True, order=True, slots=True)
class MskId:
    """MSK ID: Key Group (bytes 0-1) || Key Number (bytes 2-3) (TS 31.102 §4.2.80)."""

    key_group: int
    key_number: int

    def __post_init__(self) -> None:
        if not (0 <= self.key_group <= 0xFFFF and 0 <= self.key_number <= 0xFFFF):
            raise ConfigError("MSK ID key group and key number are 16 bits each")

    @property
    def value(self) -> int:
        """The MSK ID as a 32-bit integer."""
        return (self.key_group << 16) | self.key_number

    def to_bytes(self) -> bytes:
        """The 4-byte wire form."""
        return self.value.to_bytes(MSK_ID_LEN, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> MskId:
        """Parse 4 bytes. Raises BadLengthError for another length."""
        if len(data) != MSK_ID_LEN:
            raise BadLengthError(f"MSK ID must be {MSK_ID_LEN} bytes, got {len(data)}")
        v = int.from_bytes(data, "big")
        return cls(v >> 16, v & 0xFFFF)

    @classmethod
    def from_int(cls, value: int) -> MskId:
        """Build from the 32-bit integer form."""
        if not 0 <= value <= 0xFFFFFFFF:
            raise ConfigError("MSK ID must fit 32 bits")
        return cls(value >> 16, value & 0xFFFF)

    def __str__(self) -> str:
        return f"{self.key_group:04x}:{self.key_number:04x}"


@dataclass(frozen=True, order=True, slots=True)
class MskRef:
    """An MSK named uniquely by its Key Domain ID and MSK ID (TS 33.246 §6.3.2.1)."""

    key_domain_id: bytes
    msk_id: MskId

    def __post_init__(self) -> None:
        if len(self.key_domain_id) != KEY_DOMAIN_ID_LEN:
            raise ConfigError(f"Key Domain ID must be {KEY_DOMAIN_ID_LEN} bytes")

    def __str__(self) -> str:
        return f"{self.key_domain_id.hex()}/{self.msk_id}"


def _check_mtk_id(mtk_id: int) -> None:
    if not 0 <= mtk_id <= MTK_ID_MAX:
        raise ConfigError("MTK ID must fit 16 bits")


def srtp_mki(msk_id: MskId, mtk_id: int) -> bytes:
    """Return the 6-byte SRTP MKI = MSK ID || MTK ID (TS 33.246 §6.6.2)."""
    _check_mtk_id(mtk_id)
    return msk_id.to_bytes() + mtk_id.to_bytes(MTK_ID_LEN, "big")


def parse_srtp_mki(mki: bytes) -> tuple[MskId, int]:
    """Split a 6-byte MKI into (MSK ID, MTK ID). Raises BadLengthError for another length."""
    if len(mki) != SRTP_MKI_LEN:
        raise BadLengthError(f"MBMS SRTP MKI must be {SRTP_MKI_LEN} bytes, got {len(mki)}")
    return MskId.from_bytes(mki[:MSK_ID_LEN]), int.from_bytes(mki[MSK_ID_LEN:], "big")


# --- Key ID General Extension contents (RFC 4563 §4) -------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyRef:
    """What a Key ID extension names: an MSK (and MTK) or a user service.

    ``msk_ids`` may list several MSKs of one Key Domain (our compact response carries up to two
    MSKs in one message, in the order of the Key data sub-payloads). ``service_id`` is our
    private Key ID Type 241.
    """

    key_domain_id: bytes | None = None
    msk_ids: tuple[MskId, ...] = ()
    mtk_id: int | None = None
    service_id: str | None = None

    @property
    def msk_id(self) -> MskId | None:
        """The first (usually only) MSK ID, or None."""
        return self.msk_ids[0] if self.msk_ids else None

    def msk_refs(self) -> tuple[MskRef, ...]:
        """Every named MSK as an :class:`MskRef` (empty without a Key Domain ID)."""
        if self.key_domain_id is None:
            return ()
        return tuple(MskRef(self.key_domain_id, m) for m in self.msk_ids)


def key_id_extension(ref: KeyRef) -> KeyIdExtension:
    """Build the Key ID General Extension for ``ref`` (RFC 4563 §4).

    Order: Key Domain ID (0), MSK ID(s) (1), MTK ID (2), service ID (241). Raises ConfigError
    when a field does not fit.
    """
    entries: list[KeyIdEntry] = []
    if ref.key_domain_id is not None:
        if len(ref.key_domain_id) != KEY_DOMAIN_ID_LEN:
            raise ConfigError("Key Domain ID must be 3 bytes")
        entries.append(KeyIdEntry(KeyIdType.MBMS_KEY_DOMAIN_ID, ref.key_domain_id))
    entries.extend(KeyIdEntry(KeyIdType.MBMS_MSK_ID, m.to_bytes()) for m in ref.msk_ids)
    if ref.mtk_id is not None:
        _check_mtk_id(ref.mtk_id)
        entries.append(KeyIdEntry(KeyIdType.MBMS_MTK_ID, ref.mtk_id.to_bytes(MTK_ID_LEN, "big")))
    if ref.service_id is not None:
        sid = ref.service_id.encode("utf-8")
        if not 0 < len(sid) <= SERVICE_ID_MAX_LEN:
            raise ConfigError("service ID must be 1..255 bytes of UTF-8")
        entries.append(KeyIdEntry(KEY_ID_TYPE_SERVICE_ID, sid))
    return KeyIdExtension(entries=tuple(entries))


def parse_key_id_extension(ext: KeyIdExtension) -> KeyRef:
    """Interpret a decoded Key ID extension (RFC 4563 §4).

    Raises BadLengthError for a Key Domain ID / MSK ID / MTK ID of the wrong size and
    InvalidValueError for a repeated Key Domain ID, MTK ID or service ID, an unknown Key ID
    Type, or a service ID that is not UTF-8.
    """
    kd: bytes | None = None
    msk_ids: list[MskId] = []
    mtk_id: int | None = None
    service_id: str | None = None
    for e in ext.entries:
        t = int(e.key_id_type)
        if t == KeyIdType.MBMS_KEY_DOMAIN_ID:
            if kd is not None:
                raise InvalidValueError("repeated Key Domain ID")
            if len(e.key_id) != KEY_DOMAIN_ID_LEN:
                raise BadLengthError("Key Domain ID must be 3 bytes")
            kd = e.key_id
        elif t == KeyIdType.MBMS_MSK_ID:
            msk_ids.append(MskId.from_bytes(e.key_id))
        elif t == KeyIdType.MBMS_MTK_ID:
            if mtk_id is not None:
                raise InvalidValueError("repeated MTK ID")
            if len(e.key_id) != MTK_ID_LEN:
                raise BadLengthError("MTK ID must be 2 bytes")
            mtk_id = int.from_bytes(e.key_id, "big")
        elif t == KEY_ID_TYPE_SERVICE_ID:
            if service_id is not None:
                raise InvalidValueError("repeated service ID")
            try:
                service_id = e.key_id.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidValueError("service ID is not UTF-8") from None
            if not service_id:
                raise InvalidValueError("empty service ID")
        else:
            raise InvalidValueError(f"Key ID Type {t} is not used by MBMS")
    return KeyRef(kd, tuple(msk_ids), mtk_id, service_id)


# --- MRK / MUK (TS 33.246 §6.1) ---------------------------------------------------------------


class GbaMode(Enum):
    """Which GBA variant produced the NAF keys (TS 33.220 §4, §5)."""

    GBA_ME = "gba-me"
    GBA_U = "gba-u"


@dataclass(frozen=True, slots=True)
class MbmsUserKeys:
    """The two per-user MBMS keys.

    ``mrk``: MBMS Request Key, password of the HTTP digest (``gba.digest.naf_password``) and
    key of the compact request MAC and of our authenticated Error messages. ``muk``: MBMS User
    Key, pre-shared key of the MSK messages. ``conformant`` is False when the derivation is our
    stand-in (GBA_ME, see module docstring).
    """

    mrk: bytes = field(repr=False)
    muk: bytes = field(repr=False)
    mode: GbaMode
    conformant: bool


def derive_mbms_user_keys(
    mode: GbaMode, *, ks_naf: bytes | None = None, ks_int_naf: bytes | None = None
) -> MbmsUserKeys:
    """Return MRK and MUK from the NAF keys of the BM-SC (TS 33.246 §6.1).

    GBA_ME: pass ``ks_naf``; MRK = MUK = Ks_NAF (non-conformant stand-in, see module docstring).
    GBA_U: pass ``ks_naf`` = Ks_ext_NAF and ``ks_int_naf``; MRK = Ks_ext_NAF, MUK = Ks_int_NAF.
    Raises ConfigError for a missing key or a key that is not 32 bytes.
    """
    if ks_naf is None or len(ks_naf) != 32:
        raise ConfigError("Ks_NAF / Ks_ext_NAF must be 32 bytes")
    if mode is GbaMode.GBA_U:
        if ks_int_naf is None or len(ks_int_naf) != 32:
            raise ConfigError("GBA_U needs a 32-byte Ks_int_NAF")
        return MbmsUserKeys(mrk=ks_naf, muk=ks_int_naf, mode=mode, conformant=True)
    if ks_int_naf is not None:
        raise ConfigError("GBA_ME has no Ks_int_NAF")
    return MbmsUserKeys(mrk=ks_naf, muk=ks_naf, mode=mode, conformant=False)


@dataclass(frozen=True, slots=True)
class MukId:
    """MUK ID = (IDi, IDr) of the MSK messages: BM-SC NAF FQDN and B-TID (TS 31.102 §4.2.81).

    Both are the ID data bytes as carried in the ID payloads (UTF-8).
    """

    idi: bytes
    idr: bytes

    @classmethod
    def of(cls, bmsc_fqdn: str, btid: str) -> MukId:
        """Build from the BM-SC FQDN and the B-TID."""
        return cls(bmsc_fqdn.encode("utf-8"), btid.encode("utf-8"))
