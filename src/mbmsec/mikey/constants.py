"""MIKEY code-point tables (RFC 3830 §6, RFC 4563, RFC 6043) as IntEnums.

Fields whose value decides the wire layout (payload type, CS ID map type, MAC alg, TS type,
DH group, hash function, key data type, KV type) must hold a known value to decode. Other
fields keep unknown values as plain ``int`` (see :func:`enum_or_int`), so a message naming a
code point we do not know still decodes and re-encodes byte for byte.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, TypeVar

MIKEY_VERSION: Final = 1  # RFC 3830 §6.1: version 1


class DataType(IntEnum):
    """HDR data type (RFC 3830 §6.1 Table 6.1.a; RFC 4650; RFC 4738; IANA private use)."""

    PSK_INIT = 0
    PSK_VERIFY = 1
    PK_INIT = 2
    PK_VERIFY = 3
    DH_INIT = 4
    DH_RESP = 5
    ERROR = 6
    DHHMAC_INIT = 7  # RFC 4650
    DHHMAC_RESP = 8  # RFC 4650
    RSA_R_I_MSG = 9  # RFC 4738
    RSA_R_R_MSG = 10  # RFC 4738
    # 241-255: private use (RFC 3830 §10). Ours: the compact profile's authenticated key
    # request, HDR, T, RAND, IDi, EXT(Key ID), V (a UE asks the BM-SC for a key).
    PSK_KEY_REQUEST = 241


class PayloadType(IntEnum):
    """Next payload values (RFC 3830 §6.1 Table 6.1.c; RFC 4563 uses 21)."""

    LAST = 0
    KEMAC = 1
    PKE = 2
    DH = 3
    SIGN = 4
    T = 5
    ID = 6
    CERT = 7
    CHASH = 8
    V = 9
    SP = 10
    RAND = 11
    ERR = 12
    KEY_DATA = 20  # only inside KEMAC / PKE encrypted data (RFC 3830 §6.13)
    GENERAL_EXT = 21


class PrfFunc(IntEnum):
    """HDR PRF func, 7 bits (RFC 3830 §6.1 Table 6.1.d; RFC 6043 §6.1)."""

    MIKEY_1 = 0
    HMAC_SHA_256 = 1


class CsIdMapType(IntEnum):
    """HDR CS ID map type (RFC 3830 §6.1; RFC 4563 §5; RFC 6043 §6.1.2)."""

    SRTP_ID = 0
    EMPTY = 1
    GENERIC_ID = 2


class EncrAlg(IntEnum):
    """KEMAC Encr alg (RFC 3830 §6.2 Table 6.2.a)."""

    NULL = 0
    AES_CM_128 = 1
    AES_KW_128 = 2


class MacAlg(IntEnum):
    """KEMAC MAC alg and V Auth alg (RFC 3830 §6.2 Table 6.2.b, §6.9)."""

    NULL = 0
    HMAC_SHA_1_160 = 1


MAC_LENGTHS: Final[dict[int, int]] = {MacAlg.NULL: 0, MacAlg.HMAC_SHA_1_160: 20}


class PkeCache(IntEnum):
    """PKE envelope key cache indicator C, 2 bits (RFC 3830 §6.3 Table 6.3)."""

    NO_CACHE = 0
    CACHE = 1
    CACHE_FOR_CSB = 2


class DhGroup(IntEnum):
    """DH-Group (RFC 3830 §6.4 Table 6.4)."""

    OAKLEY_5 = 0
    OAKLEY_1 = 1
    OAKLEY_2 = 2


DH_VALUE_LENGTHS: Final[dict[int, int]] = {
    DhGroup.OAKLEY_5: 192,  # 1536-bit MODP
    DhGroup.OAKLEY_1: 96,  # 768-bit MODP
    DhGroup.OAKLEY_2: 128,  # 1024-bit MODP
}


class SType(IntEnum):
    """SIGN S type, 4 bits (RFC 3830 §6.5 Table 6.5)."""

    RSA_PKCS1_1_5 = 0
    RSA_PSS = 1


class TsType(IntEnum):
    """T payload TS type (RFC 3830 §6.6 Table 6.6)."""

    NTP_UTC = 0
    NTP = 1
    COUNTER = 2


TS_VALUE_LENGTHS: Final[dict[int, int]] = {TsType.NTP_UTC: 8, TsType.NTP: 8, TsType.COUNTER: 4}


class IdType(IntEnum):
    """ID type (RFC 3830 §6.7 Table 6.7.a; RFC 6043 §6.6 adds byte string)."""

    NAI = 0
    URI = 1
    BYTE_STRING = 2


class CertType(IntEnum):
    """CERT type (RFC 3830 §6.7 Table 6.7.b)."""

    X509V3 = 0
    X509V3_URL = 1
    X509V3_SIGN = 2
    X509V3_ENCR = 3


class HashFunc(IntEnum):
    """CHASH hash function (RFC 3830 §6.8 Table 6.8)."""

    SHA_1 = 0
    MD5 = 1


HASH_LENGTHS: Final[dict[int, int]] = {HashFunc.SHA_1: 20, HashFunc.MD5: 16}


class ProtType(IntEnum):
    """SP Prot type (RFC 3830 §6.10 Table 6.10)."""

    SRTP = 0


class SrtpParam(IntEnum):
    """SRTP policy parameter types (RFC 3830 §6.10.1 Table 6.10.1.a)."""

    ENCR_ALG = 0
    SESSION_ENCR_KEY_LEN = 1
    AUTH_ALG = 2
    SESSION_AUTH_KEY_LEN = 3
    SESSION_SALT_KEY_LEN = 4
    SRTP_PRF = 5
    KEY_DERIVATION_RATE = 6
    SRTP_ENCRYPTION = 7
    SRTCP_ENCRYPTION = 8
    FEC_ORDER = 9
    SRTP_AUTHENTICATION = 10
    AUTH_TAG_LEN = 11
    SRTP_PREFIX_LEN = 12


class ErrorNo(IntEnum):
    """ERR Error no (RFC 3830 §6.12 Table 6.12)."""

    AUTH_FAILURE = 0
    INVALID_TS = 1
    INVALID_PRF = 2
    INVALID_MAC = 3
    INVALID_EA = 4
    INVALID_HA = 5
    INVALID_DH = 6
    INVALID_ID = 7
    INVALID_CERT = 8
    INVALID_SP = 9
    INVALID_SPPAR = 10
    INVALID_DT = 11
    UNSPECIFIED = 12


class KeyDataType(IntEnum):
    """Key data sub-payload Type, 4 bits (RFC 3830 §6.13 Table 6.13.a)."""

    TGK = 0
    TGK_SALT = 1
    TEK = 2
    TEK_SALT = 3


SALTED_KEY_DATA_TYPES: Final = frozenset({KeyDataType.TGK_SALT, KeyDataType.TEK_SALT})


class KvType(IntEnum):
    """Key validity type KV, 4 bits (RFC 3830 §6.13 Table 6.13.b)."""

    NULL = 0
    SPI = 1
    INTERVAL = 2


class ExtType(IntEnum):
    """General Extension Type (RFC 3830 §6.15; RFC 4442; RFC 4563 §4, §8)."""

    VENDOR_ID = 0
    SDP_IDS = 1
    TESLA = 2  # RFC 4442
    KEY_ID = 3  # RFC 4563 §8: "The registered value for Key ID is 3"


class KeyIdType(IntEnum):
    """Key ID Type inside a Key ID General Extension (RFC 4563 §4 Table 2); 241-255 private."""

    MBMS_KEY_DOMAIN_ID = 0
    MBMS_MSK_ID = 1
    MBMS_MTK_ID = 2


E = TypeVar("E", bound=IntEnum)


def enum_or_int(enum_cls: type[E], value: int) -> E | int:
    """Return the member of ``enum_cls`` with ``value``, or ``value`` itself when unknown."""
    member = enum_cls._value2member_map_.get(value)
    return member if member is not None else value  # type: ignore[return-value]
