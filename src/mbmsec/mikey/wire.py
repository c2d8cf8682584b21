"""Per-payload MIKEY wire routines (RFC 3830 §6, RFC 4563 §4-§5, RFC 6043 §6.1.2.1).

``pull_<payload>(buf)`` reads one payload including its next-payload byte and returns
``(payload, next_payload)``; ``push_<payload>(buf, p, next_payload)`` writes it. The HDR starts
the chain, SIGN ends it (it has no next-payload byte). Message-level decoding, limits and the
dispatch by payload type live in :mod:`mbmsec.mikey.codec`, which re-exports these routines.
Reads past the end raise TruncatedError; pushes of values that do not fit raise ConfigError.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final, TypeVar

from ..buffer import Buffer
from ..errors import (
    BadLengthError,
    ConfigError,
    InvalidValueError,
    UnsupportedVersionError,
)
from .constants import (
    DH_VALUE_LENGTHS,
    HASH_LENGTHS,
    MAC_LENGTHS,
    MIKEY_VERSION,
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
    enum_or_int,
)
from .payloads import (
    Cert,
    Chash,
    Dh,
    ErrorPayload,
    GeneralExtension,
    GenericIdEntry,
    Header,
    IdPayload,
    Kemac,
    KeyData,
    KeyIdEntry,
    KeyIdExtension,
    KvData,
    Pke,
    Rand,
    SecurityPolicy,
    Sign,
    SrtpIdEntry,
    Timestamp,
    Verification,
)

# Lenient key||salt split: total length -> key length (AES-128 / AES-256 key + 112-bit salt).
_CONCAT_SPLITS: Final = {30: 16, 46: 32}

# --- helpers --------------------------------------------------------------------------------

E = TypeVar("E", bound=IntEnum)


def _known(enum_cls: type[E], v: int, off: int, what: str) -> E:
    # a code point that decides the layout must be known (dict lookup: Enum calls are slow)
    member = enum_cls._value2member_map_.get(v)
    if member is None:
        raise InvalidValueError(f"unknown {what} {v}", off)
    return member  # type: ignore[return-value]


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise ConfigError(what)


def _pull_mac(buf: Buffer, alg: MacAlg, what: str) -> bytes:
    n = MAC_LENGTHS[alg]
    if buf.remaining() < n:
        raise BadLengthError(
            f"{what} needs {n} bytes for {alg.name}, {buf.remaining()} left", buf.offset
        )
    return buf.pull_bytes(n, what)


def _pull_kv(buf: Buffer, kv: int, off: int) -> KvData:
    # RFC 3830 §6.14
    if kv == KvType.NULL:
        return None
    if kv == KvType.SPI:
        return buf.pull_bytes(buf.pull_uint8("SPI length"), "SPI")
    if kv == KvType.INTERVAL:
        vf = buf.pull_bytes(buf.pull_uint8("VF length"), "Valid From")
        vt = buf.pull_bytes(buf.pull_uint8("VT length"), "Valid To")
        return (vf, vt)
    raise InvalidValueError(f"unknown KV type {kv}", off)


def _push_kv(buf: Buffer, kv_data: KvData) -> None:
    # RFC 3830 §6.14
    if kv_data is None:
        return
    parts = kv_data if isinstance(kv_data, tuple) else (kv_data,)
    for part in parts:
        _check(len(part) <= 0xFF, "KV data field longer than 255 bytes")
        buf.push_uint8(len(part))
        buf.push_bytes(part)


def _push_lv16(buf: Buffer, data: bytes, what: str) -> None:
    _check(len(data) <= 0xFFFF, f"{what} longer than 65535 bytes")
    buf.push_uint16(len(data))
    buf.push_bytes(data)


# --- HDR (RFC 3830 §6.1, §6.1.1; RFC 4563 §5; RFC 6043 §6.1.2.1) -----------------------------


def pull_header(buf: Buffer) -> tuple[Header, int]:
    """Read the HDR; return it and the type of the first payload. # RFC 3830 §6.1"""
    start = buf.offset
    version = buf.peek_uint8("version")
    if version != MIKEY_VERSION:
        raise UnsupportedVersionError(f"MIKEY version {version}", start)
    # fixed part, one read: version, data type, next payload, V|PRF, CSB ID, #CS, map type
    f = buf.pull_bytes(10, "HDR")
    data_type = enum_or_int(DataType, f[1])
    nxt = f[2]
    b = f[3]
    csb_id = int.from_bytes(f[4:8], "big")
    n_cs = f[8]
    map_type = _known(CsIdMapType, f[9], start + 9, "map type")
    cs_map: tuple[SrtpIdEntry, ...] | tuple[GenericIdEntry, ...] = ()
    empty_cs = 0
    if map_type == CsIdMapType.SRTP_ID:
        # RFC 3830 §6.1.1: Policy_no (8) | SSRC (32) | ROC (32) per crypto session
        cs_map = tuple(
            SrtpIdEntry(
                buf.pull_uint8("Policy_no"), buf.pull_uint32("SSRC"), buf.pull_uint32("ROC")
            )
            for _ in range(n_cs)
        )
    elif map_type == CsIdMapType.GENERIC_ID:
        cs_map = tuple(_pull_generic_entry(buf) for _ in range(n_cs))
    else:  # RFC 4563 §5: empty map, no map info
        empty_cs = n_cs
    hdr = Header(
        data_type=data_type,
        csb_id=csb_id,
        v=bool(b & 0x80),
        prf_func=enum_or_int(PrfFunc, b & 0x7F),
        cs_id_map_type=map_type,
        cs_map=cs_map,
        empty_map_cs=empty_cs,
        version=version,
    )
    return hdr, nxt


def _pull_generic_entry(buf: Buffer) -> GenericIdEntry:
    # RFC 6043 §6.1.2.1
    cs_id = buf.pull_uint8("CS ID")
    prot = enum_or_int(ProtType, buf.pull_uint8("Prot type"))
    sp = buf.pull_uint8("S/#P")
    policies = buf.pull_bytes(sp & 0x7F, "Ps")
    session_data = buf.pull_bytes(buf.pull_uint16("Session Data Length"), "Session Data")
    spi = buf.pull_bytes(buf.pull_uint8("SPI Length"), "SPI")
    return GenericIdEntry(cs_id, prot, bool(sp & 0x80), policies, session_data, spi)


def push_header(buf: Buffer, h: Header, next_payload: int) -> None:
    """Write the HDR with ``next_payload`` as its next-payload byte. # RFC 3830 §6.1"""
    _check(0 <= h.prf_func <= 0x7F, "PRF func must fit 7 bits")
    buf.push_uint8(h.version)
    buf.push_uint8(h.data_type)
    buf.push_uint8(next_payload)
    buf.push_uint8((0x80 if h.v else 0) | h.prf_func)
    buf.push_uint32(h.csb_id)
    buf.push_uint8(h.cs_count)
    buf.push_uint8(h.cs_id_map_type)
    if h.cs_id_map_type == CsIdMapType.EMPTY:
        _check(not h.cs_map, "empty CS ID map must have no entries")
    for e in h.cs_map:
        if isinstance(e, SrtpIdEntry):
            _check(h.cs_id_map_type == CsIdMapType.SRTP_ID, "SRTP-ID entry in another map type")
            buf.push_uint8(e.policy_no)
            buf.push_uint32(e.ssrc)
            buf.push_uint32(e.roc)
        else:
            _check(h.cs_id_map_type == CsIdMapType.GENERIC_ID, "GENERIC-ID entry in another map")
            _check(len(e.policies) <= 0x7F, "GENERIC-ID #P must fit 7 bits")
            buf.push_uint8(e.cs_id)
            buf.push_uint8(e.prot_type)
            buf.push_uint8((0x80 if e.s else 0) | len(e.policies))
            buf.push_bytes(e.policies)
            _push_lv16(buf, e.session_data, "Session Data")
            _check(len(e.spi) <= 0xFF, "GENERIC-ID SPI longer than 255 bytes")
            buf.push_uint8(len(e.spi))
            buf.push_bytes(e.spi)


# --- payloads --------------------------------------------------------------------------------


def pull_kemac(buf: Buffer) -> tuple[Kemac, int]:
    """# RFC 3830 §6.2"""
    f = buf.pull_bytes(4, "KEMAC")  # next payload, Encr alg, Encr data len
    encr_alg = enum_or_int(EncrAlg, f[1])
    encr_data = buf.pull_bytes((f[2] << 8) | f[3], "Encr data")
    off = buf.offset
    mac_alg = _known(MacAlg, buf.pull_uint8("MAC alg"), off, "MAC alg")
    nxt = f[0]
    return Kemac(encr_alg, encr_data, mac_alg, _pull_mac(buf, mac_alg, "KEMAC MAC")), nxt


def push_kemac(buf: Buffer, p: Kemac, next_payload: int, *, include_mac: bool = True) -> None:
    """# RFC 3830 §6.2"""
    buf.push_uint8(next_payload)
    buf.push_uint8(p.encr_alg)
    _push_lv16(buf, p.encr_data, "Encr data")
    buf.push_uint8(p.mac_alg)
    if include_mac:
        _check(len(p.mac) == MAC_LENGTHS.get(p.mac_alg, -1), "KEMAC MAC length != MAC alg's")
        buf.push_bytes(p.mac)


def pull_pke(buf: Buffer) -> tuple[Pke, int]:
    """# RFC 3830 §6.3: C (2 bits) | Data len (14 bits) | Data"""
    nxt = buf.pull_uint8("next payload")
    cl = buf.pull_uint16("C/Data len")
    return Pke(enum_or_int(PkeCache, cl >> 14), buf.pull_bytes(cl & 0x3FFF, "PKE data")), nxt


def push_pke(buf: Buffer, p: Pke, next_payload: int) -> None:
    """# RFC 3830 §6.3"""
    _check(0 <= p.cache <= 3 and len(p.data) <= 0x3FFF, "PKE C or data length out of range")
    buf.push_uint8(next_payload)
    buf.push_uint16((p.cache << 14) | len(p.data))
    buf.push_bytes(p.data)


def pull_dh(buf: Buffer) -> tuple[Dh, int]:
    """# RFC 3830 §6.4"""
    nxt = buf.pull_uint8("next payload")
    off = buf.offset
    group = _known(DhGroup, buf.pull_uint8("DH-Group"), off, "DH group")
    value = buf.pull_bytes(DH_VALUE_LENGTHS[group], "DH-value")
    off = buf.offset
    b = buf.pull_uint8("Reserv/KV")
    return Dh(group, value, _pull_kv(buf, b & 0x0F, off), b >> 4), nxt


def push_dh(buf: Buffer, p: Dh, next_payload: int) -> None:
    """# RFC 3830 §6.4"""
    _check(len(p.value) == DH_VALUE_LENGTHS.get(p.group, -1), "DH-value length != group size")
    _check(0 <= p.reserved <= 0x0F, "DH reserved must fit 4 bits")
    buf.push_uint8(next_payload)
    buf.push_uint8(p.group)
    buf.push_bytes(p.value)
    buf.push_uint8((p.reserved << 4) | p.kv_type)
    _push_kv(buf, p.kv_data)


def pull_sign(buf: Buffer) -> tuple[Sign, int]:
    """# RFC 3830 §6.5: S type (4) | Signature len (12) | Signature; no next payload"""
    sl = buf.pull_uint16("S type/Signature len")
    sig = buf.pull_bytes(sl & 0x0FFF, "Signature")
    return Sign(enum_or_int(SType, sl >> 12), sig), PayloadType.LAST


def push_sign(buf: Buffer, p: Sign, next_payload: int) -> None:
    """# RFC 3830 §6.5 (``next_payload`` must be LAST: SIGN ends the message)"""
    _check(next_payload == PayloadType.LAST, "SIGN must be the last payload")
    _check(0 <= p.s_type <= 0x0F and len(p.signature) <= 0x0FFF, "SIGN field out of range")
    buf.push_uint16((p.s_type << 12) | len(p.signature))
    buf.push_bytes(p.signature)


def pull_timestamp(buf: Buffer) -> tuple[Timestamp, int]:
    """# RFC 3830 §6.6"""
    off = buf.offset + 1
    f = buf.pull_bytes(2, "T")  # next payload, TS type
    nxt = f[0]
    ts_type = _known(TsType, f[1], off, "TS type")
    value = int.from_bytes(buf.pull_bytes(TS_VALUE_LENGTHS[ts_type], "TS value"), "big")
    return Timestamp(ts_type, value), nxt


def push_timestamp(buf: Buffer, p: Timestamp, next_payload: int) -> None:
    """# RFC 3830 §6.6"""
    buf.push_uint8(next_payload)
    buf.push_uint8(p.ts_type)
    buf.push_bytes(p.value_bytes)


def pull_id(buf: Buffer) -> tuple[IdPayload, int]:
    """# RFC 3830 §6.7"""
    f = buf.pull_bytes(4, "ID")  # next payload, ID type, ID len
    data = buf.pull_bytes((f[2] << 8) | f[3], "ID data")
    return IdPayload(enum_or_int(IdType, f[1]), data), f[0]


def push_id(buf: Buffer, p: IdPayload, next_payload: int) -> None:
    """# RFC 3830 §6.7"""
    buf.push_uint8(next_payload)
    buf.push_uint8(p.id_type)
    _push_lv16(buf, p.data, "ID data")


def pull_cert(buf: Buffer) -> tuple[Cert, int]:
    """# RFC 3830 §6.7"""
    nxt = buf.pull_uint8("next payload")
    cert_type = enum_or_int(CertType, buf.pull_uint8("Cert type"))
    return Cert(cert_type, buf.pull_bytes(buf.pull_uint16("Cert len"), "Cert data")), nxt


def push_cert(buf: Buffer, p: Cert, next_payload: int) -> None:
    """# RFC 3830 §6.7"""
    buf.push_uint8(next_payload)
    buf.push_uint8(p.cert_type)
    _push_lv16(buf, p.data, "Cert data")


def pull_chash(buf: Buffer) -> tuple[Chash, int]:
    """# RFC 3830 §6.8"""
    nxt = buf.pull_uint8("next payload")
    off = buf.offset
    func = _known(HashFunc, buf.pull_uint8("Hash func"), off, "hash function")
    return Chash(func, buf.pull_bytes(HASH_LENGTHS[func], "Hash")), nxt


def push_chash(buf: Buffer, p: Chash, next_payload: int) -> None:
    """# RFC 3830 §6.8"""
    _check(len(p.hash) == HASH_LENGTHS.get(p.hash_func, -1), "CHASH length != hash function's")
    buf.push_uint8(next_payload)
    buf.push_uint8(p.hash_func)
    buf.push_bytes(p.hash)


def pull_verification(buf: Buffer) -> tuple[Verification, int]:
    """# RFC 3830 §6.9"""
    off = buf.offset + 1
    f = buf.pull_bytes(2, "V")  # next payload, Auth alg
    alg = _known(MacAlg, f[1], off, "Auth alg")
    return Verification(alg, _pull_mac(buf, alg, "V MAC")), f[0]


def push_verification(
    buf: Buffer, p: Verification, next_payload: int, *, include_mac: bool = True
) -> None:
    """# RFC 3830 §6.9"""
    buf.push_uint8(next_payload)
    buf.push_uint8(p.auth_alg)
    if include_mac:
        _check(len(p.mac) == MAC_LENGTHS.get(p.auth_alg, -1), "V MAC length != Auth alg's")
        buf.push_bytes(p.mac)


def pull_sp(buf: Buffer) -> tuple[SecurityPolicy, int]:
    """# RFC 3830 §6.10: each parameter is Type (8) | Length (8) | Value"""
    nxt = buf.pull_uint8("next payload")
    policy_no = buf.pull_uint8("Policy no")
    prot = enum_or_int(ProtType, buf.pull_uint8("Prot type"))
    n = buf.pull_uint16("Policy param length")
    region = Buffer(buf.pull_bytes(n, "SP parameters"), base_offset=buf.offset - n)
    params: list[tuple[int, bytes]] = []
    while region.remaining():
        t = region.pull_uint8("SP param type")
        params.append((t, region.pull_bytes(region.pull_uint8("SP param length"), "SP value")))
    return SecurityPolicy(policy_no, prot, tuple(params)), nxt


def push_sp(buf: Buffer, p: SecurityPolicy, next_payload: int) -> None:
    """# RFC 3830 §6.10"""
    body = Buffer()
    for t, v in p.params:
        _check(len(v) <= 0xFF, "SP parameter value longer than 255 bytes")
        body.push_uint8(t)
        body.push_uint8(len(v))
        body.push_bytes(v)
    buf.push_uint8(next_payload)
    buf.push_uint8(p.policy_no)
    buf.push_uint8(p.prot_type)
    _push_lv16(buf, body.getvalue(), "SP parameters")


def pull_rand(buf: Buffer) -> tuple[Rand, int]:
    """# RFC 3830 §6.11"""
    off = buf.offset + 1
    f = buf.pull_bytes(2, "RAND")  # next payload, RAND len
    if f[1] == 0:
        raise BadLengthError("RAND len 0", off)
    return Rand(buf.pull_bytes(f[1], "RAND")), f[0]


def push_rand(buf: Buffer, p: Rand, next_payload: int) -> None:
    """# RFC 3830 §6.11"""
    _check(0 < len(p.rand) <= 0xFF, "RAND must be 1..255 bytes")
    buf.push_uint8(next_payload)
    buf.push_uint8(len(p.rand))
    buf.push_bytes(p.rand)


def pull_err(buf: Buffer) -> tuple[ErrorPayload, int]:
    """# RFC 3830 §6.12: Error no (8) | Reserved (16)"""
    f = buf.pull_bytes(4, "ERR")  # next payload, Error no, Reserved
    return ErrorPayload(enum_or_int(ErrorNo, f[1]), (f[2] << 8) | f[3]), f[0]


def push_err(buf: Buffer, p: ErrorPayload, next_payload: int) -> None:
    """# RFC 3830 §6.12"""
    buf.push_uint8(next_payload)
    buf.push_uint8(p.error_no)
    buf.push_uint16(p.reserved)


def pull_general_ext(buf: Buffer) -> tuple[GeneralExtension | KeyIdExtension, int]:
    """# RFC 3830 §6.15; type Key ID parsed per RFC 4563 §4"""
    f = buf.pull_bytes(4, "EXT")  # next payload, Type, Length
    nxt = f[0]
    ext_type = enum_or_int(ExtType, f[1])
    n = (f[2] << 8) | f[3]
    if ext_type != ExtType.KEY_ID:
        return GeneralExtension(ext_type, buf.pull_bytes(n, "EXT data")), nxt
    # the region is read whole, then parsed with its own cursor (offsets stay absolute)
    region = Buffer(buf.pull_bytes(n, "Key ID information"), base_offset=buf.offset - n)
    entries: list[KeyIdEntry] = []
    while region.remaining():
        f = region.pull_bytes(2, "Key ID Type/Length")
        entries.append(KeyIdEntry(enum_or_int(KeyIdType, f[0]), region.pull_bytes(f[1], "Key ID")))
    return KeyIdExtension(tuple(entries)), nxt


def push_general_ext(buf: Buffer, p: GeneralExtension | KeyIdExtension, next_payload: int) -> None:
    """# RFC 3830 §6.15; RFC 4563 §4"""
    if isinstance(p, KeyIdExtension):
        body = Buffer()
        for e in p.entries:
            _check(len(e.key_id) <= 0xFF, "Key ID longer than 255 bytes")
            body.push_uint8(e.key_id_type)
            body.push_uint8(len(e.key_id))
            body.push_bytes(e.key_id)
        ext_type: int = ExtType.KEY_ID
        data = body.getvalue()
    else:
        _check(p.ext_type != ExtType.KEY_ID, "use KeyIdExtension for EXT type Key ID")
        ext_type, data = p.ext_type, p.data
    buf.push_uint8(next_payload)
    buf.push_uint8(ext_type)
    _push_lv16(buf, data, "EXT data")


# --- key data sub-payload (RFC 3830 §6.13, §6.14) ---------------------------------------------


def pull_key_data(buf: Buffer, *, salt_concat: bool = False) -> tuple[KeyData, int]:
    """Read one Key data sub-payload; return it and its next payload. # RFC 3830 §6.13

    With ``salt_concat`` a TEK whose key is 30 or 46 bytes is split into key || 112-bit salt
    (some senders put the SRTP master salt into the key field).
    """
    off = buf.offset + 1
    f = buf.pull_bytes(4, "Key data")  # next payload, Type|KV, Key data len
    nxt = f[0]
    b = f[1]
    kd_type = _known(KeyDataType, b >> 4, off, "key data type")
    len_off = off + 1
    key = buf.pull_bytes((f[2] << 8) | f[3], "Key data")
    if not key:
        raise BadLengthError("Key data len 0", len_off)
    salt = None
    if kd_type in SALTED_KEY_DATA_TYPES:
        salt = buf.pull_bytes(buf.pull_uint16("Salt len"), "Salt data")
    kv_data = _pull_kv(buf, b & 0x0F, off)
    if salt_concat and kd_type == KeyDataType.TEK and len(key) in _CONCAT_SPLITS:
        k = _CONCAT_SPLITS[len(key)]
        return KeyData(kd_type, key[:k], key[k:], kv_data, salt_concat=True), nxt
    return KeyData(kd_type, key, salt, kv_data), nxt


def push_key_data(buf: Buffer, p: KeyData, next_payload: int) -> None:
    """# RFC 3830 §6.13"""
    buf.push_uint8(next_payload)
    buf.push_uint8((p.type << 4) | p.kv_type)
    if p.salt_concat:
        assert p.salt is not None
        _push_lv16(buf, p.key + p.salt, "Key data")
    else:
        _check(len(p.key) > 0, "Key data must not be empty")
        _push_lv16(buf, p.key, "Key data")
        if p.salt is not None:
            _push_lv16(buf, p.salt, "Salt data")
    _push_kv(buf, p.kv_data)
