"""MIKEY payloads as frozen dataclasses, one per payload (RFC 3830 §6, RFC 4563, RFC 6043).

The next-payload bytes are not stored: the encoder derives them from the order of the payload
list. Every field that is on the wire is kept (reserved bits included), so decoding and
re-encoding a valid message gives the same bytes. Key material uses ``field(repr=False)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..errors import ConfigError
from .constants import (
    SALTED_KEY_DATA_TYPES,
    TS_VALUE_LENGTHS,
    CertType,
    CsIdMapType,
    DataType,
    DhGroup,
    EncrAlg,
    ErrorNo,
    ExtType,
    HashFunc,
    IdType,
    KeyDataType,
    KeyIdType,
    KvType,
    MacAlg,
    PayloadType,
    PkeCache,
    PrfFunc,
    ProtType,
    SType,
    TsType,
)

# --- HDR (RFC 3830 §6.1) ---------------------------------------------------------------------


@dataclass(frozen=True)
class SrtpIdEntry:
    """One SRTP-ID map entry (RFC 3830 §6.1.1); its CS ID is its 1-based position."""

    policy_no: int
    ssrc: int
    roc: int


@dataclass(frozen=True)
class GenericIdEntry:
    """One GENERIC-ID map entry (RFC 6043 §6.1.2.1).

    ``CS ID (8) | Prot type (8) | S (1) | #P (7) | Ps (#P bytes) | Session Data Length (16) |
    Session Data | SPI Length (8) | SPI``. Session Data is kept raw (its format depends on the
    Prot type and the S flag).
    """

    cs_id: int
    prot_type: ProtType | int = ProtType.SRTP
    s: bool = False
    policies: bytes = b""
    session_data: bytes = b""
    spi: bytes = b""


@dataclass(frozen=True)
class Header:
    """Common header HDR (RFC 3830 §6.1).

    ``cs_map`` holds the SRTP-ID or GENERIC-ID entries matching ``cs_id_map_type``; with the
    empty map (RFC 4563 §5) it is empty and ``empty_map_cs`` is the #CS byte carried as is.
    """

    data_type: DataType | int
    csb_id: int
    v: bool = False
    prf_func: PrfFunc | int = PrfFunc.MIKEY_1
    cs_id_map_type: CsIdMapType = CsIdMapType.EMPTY
    cs_map: tuple[SrtpIdEntry, ...] | tuple[GenericIdEntry, ...] = ()
    empty_map_cs: int = 0
    version: int = 1

    @property
    def cs_count(self) -> int:
        """#CS as carried on the wire."""
        if self.cs_id_map_type == CsIdMapType.EMPTY:
            return self.empty_map_cs
        return len(self.cs_map)


# --- payloads (RFC 3830 §6.2 - §6.15) ---------------------------------------------------------


@dataclass(frozen=True)
class Kemac:
    """Key data transport payload KEMAC (RFC 3830 §6.2).

    ``encr_data`` is the (encrypted) Key data sub-payload chain; decrypt it with
    :mod:`mbmsec.mikey.protect` or, for NULL encryption, decode it with
    :func:`mbmsec.mikey.codec.decode_key_data`.
    """

    payload_type: ClassVar[PayloadType] = PayloadType.KEMAC
    encr_alg: EncrAlg | int
    encr_data: bytes = field(repr=False)
    mac_alg: MacAlg
    mac: bytes


@dataclass(frozen=True)
class Pke:
    """Envelope data payload PKE (RFC 3830 §6.3): C (2 bits) | Data len (14 bits) | Data."""

    payload_type: ClassVar[PayloadType] = PayloadType.PKE
    cache: PkeCache | int
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Sign:
    """Signature payload SIGN (RFC 3830 §6.5); always last, no next-payload byte."""

    payload_type: ClassVar[PayloadType] = PayloadType.SIGN
    s_type: SType | int
    signature: bytes


@dataclass(frozen=True)
class Timestamp:
    """Timestamp payload T (RFC 3830 §6.6). ``value`` is the TS value as an integer; as the
    64-bit PRF / AES-CM IV input a COUNTER is the same integer zero-extended (§6.6)."""

    payload_type: ClassVar[PayloadType] = PayloadType.T
    ts_type: TsType
    value: int

    @property
    def value_bytes(self) -> bytes:
        """The TS value as carried: 8 bytes for NTP types, 4 for COUNTER."""
        return self.value.to_bytes(TS_VALUE_LENGTHS[self.ts_type], "big")


@dataclass(frozen=True)
class IdPayload:
    """ID payload (RFC 3830 §6.7)."""

    payload_type: ClassVar[PayloadType] = PayloadType.ID
    id_type: IdType | int
    data: bytes


@dataclass(frozen=True)
class Cert:
    """Certificate payload CERT (RFC 3830 §6.7)."""

    payload_type: ClassVar[PayloadType] = PayloadType.CERT
    cert_type: CertType | int
    data: bytes


@dataclass(frozen=True)
class Chash:
    """Cert hash payload CHASH (RFC 3830 §6.8)."""

    payload_type: ClassVar[PayloadType] = PayloadType.CHASH
    hash_func: HashFunc
    hash: bytes


@dataclass(frozen=True)
class Verification:
    """Ver msg payload V (RFC 3830 §6.9): Auth alg | Ver data (the MAC)."""

    payload_type: ClassVar[PayloadType] = PayloadType.V
    auth_alg: MacAlg
    mac: bytes


@dataclass(frozen=True)
class SecurityPolicy:
    """Security Policy payload SP (RFC 3830 §6.10); params are (type, value) pairs."""

    payload_type: ClassVar[PayloadType] = PayloadType.SP
    policy_no: int
    prot_type: ProtType | int
    params: tuple[tuple[int, bytes], ...] = ()

    def param(self, param_type: int) -> bytes | None:
        """Value of the first parameter of ``param_type``, or None."""
        for t, v in self.params:
            if t == param_type:
                return v
        return None


@dataclass(frozen=True)
class Rand:
    """RAND payload (RFC 3830 §6.11)."""

    payload_type: ClassVar[PayloadType] = PayloadType.RAND
    rand: bytes


@dataclass(frozen=True)
class ErrorPayload:
    """Error payload ERR (RFC 3830 §6.12): Error no | Reserved (16 bits, kept as carried)."""

    payload_type: ClassVar[PayloadType] = PayloadType.ERR
    error_no: ErrorNo | int
    reserved: int = 0


@dataclass(frozen=True)
class GeneralExtension:
    """General Extension payload EXT (RFC 3830 §6.15) with a type other than Key ID."""

    payload_type: ClassVar[PayloadType] = PayloadType.GENERAL_EXT
    ext_type: ExtType | int
    data: bytes


@dataclass(frozen=True)
class KeyIdEntry:
    """One Key ID Type sub-payload (RFC 4563 §4 Figure 2): type (8) | length (8) | Key ID."""

    key_id_type: KeyIdType | int
    key_id: bytes


@dataclass(frozen=True)
class KeyIdExtension:
    """General Extension of type Key ID (3), parsed (RFC 4563 §4)."""

    payload_type: ClassVar[PayloadType] = PayloadType.GENERAL_EXT
    ext_type: ClassVar[ExtType] = ExtType.KEY_ID
    entries: tuple[KeyIdEntry, ...] = ()

    def get(self, key_id_type: int) -> bytes | None:
        """Key ID of the first entry of ``key_id_type``, or None."""
        for e in self.entries:
            if e.key_id_type == key_id_type:
                return e.key_id
        return None


# --- key data (RFC 3830 §6.13, §6.14) ---------------------------------------------------------

KvData = bytes | tuple[bytes, bytes] | None
"""Key validity data: None (KV NULL), SPI/MKI bytes (KV SPI), or (valid from, valid to)."""


def kv_type_of(kv_data: KvData) -> KvType:
    """The KV type that carries ``kv_data``."""
    if kv_data is None:
        return KvType.NULL
    if isinstance(kv_data, tuple):
        return KvType.INTERVAL
    return KvType.SPI


@dataclass(frozen=True)
class Dh:
    """DH data payload (RFC 3830 §6.4): DH-Group | DH-value | Reserv (4) | KV (4) | KV data."""

    payload_type: ClassVar[PayloadType] = PayloadType.DH
    group: DhGroup
    value: bytes
    kv_data: KvData = None
    reserved: int = 0

    @property
    def kv_type(self) -> KvType:
        return kv_type_of(self.kv_data)


@dataclass(frozen=True)
class KeyData:
    """Key data sub-payload (RFC 3830 §6.13), found only inside KEMAC/PKE encrypted data.

    ``salt`` is present exactly for the TGK+SALT / TEK+SALT types. With ``salt_concat`` (set by
    the lenient decoder only) the wire carried a TGK/TEK whose key field was key || salt; the
    encoder then writes them back that way.
    """

    type: KeyDataType
    key: bytes = field(repr=False)
    salt: bytes | None = field(default=None, repr=False)
    kv_data: KvData = None
    salt_concat: bool = False

    def __post_init__(self) -> None:
        if self.salt_concat:
            if self.salt is None or self.type in SALTED_KEY_DATA_TYPES:
                raise ConfigError("salt_concat needs an unsalted type and a salt")
        elif (self.salt is not None) != (self.type in SALTED_KEY_DATA_TYPES):
            raise ConfigError(f"key data type {self.type.name} and salt presence disagree")

    @property
    def kv_type(self) -> KvType:
        return kv_type_of(self.kv_data)


Payload = (
    Kemac
    | Pke
    | Dh
    | Sign
    | Timestamp
    | IdPayload
    | Cert
    | Chash
    | Verification
    | SecurityPolicy
    | Rand
    | ErrorPayload
    | GeneralExtension
    | KeyIdExtension
)
"""Any payload that may follow the HDR in a MIKEY message."""
