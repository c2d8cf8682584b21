"""Annotated dump of a decoded MIKEY message: text for people, JSON for tools.

Both renderings come from one description: a list of :class:`Section` (one per payload, Key data
sub-payloads nested under their KEMAC), each a list of :class:`Item` with the byte offset, the
field name, its value, and a name for every code point (:func:`code_name`). Offsets are
absolute in the message; for decrypted AES-CM key data they are the positions of the
corresponding ciphertext bytes (counter mode keeps lengths and positions).

This is a debugging view: it shows key bytes when it is given decrypted key data.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Final

from .codec import Message
from .constants import (
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
    SrtpParam,
    SType,
    TsType,
)
from .payloads import (
    Cert,
    Chash,
    Dh,
    ErrorPayload,
    GeneralExtension,
    GenericIdEntry,
    IdPayload,
    Kemac,
    KeyData,
    KeyIdExtension,
    KvData,
    Payload,
    Pke,
    Rand,
    SecurityPolicy,
    Sign,
    SrtpIdEntry,
    Timestamp,
    Verification,
)

# --- names for code points -------------------------------------------------------------------

CODE_NAMES: Final[dict[type[IntEnum], dict[int, str]]] = {
    DataType: {
        0: "Pre-shared key (PSK init)",
        1: "PSK verification message",
        2: "Public key (PK init)",
        3: "PK verification message",
        4: "D-H init",
        5: "D-H response",
        6: "Error",
        7: "DHHMAC init",
        8: "DHHMAC response",
        9: "RSA-R I_MESSAGE",
        10: "RSA-R R_MESSAGE",
        241: "PSK key request (mbmsec compact profile, private use)",
    },
    PayloadType: {
        0: "Last payload",
        1: "KEMAC",
        2: "PKE",
        3: "DH",
        4: "SIGN",
        5: "T",
        6: "ID",
        7: "CERT",
        8: "CHASH",
        9: "V",
        10: "SP",
        11: "RAND",
        12: "ERR",
        20: "Key data",
        21: "General Extension",
    },
    PrfFunc: {0: "MIKEY-1", 1: "PRF-HMAC-SHA-256"},
    CsIdMapType: {0: "SRTP-ID", 1: "Empty map (RFC 4563)", 2: "GENERIC-ID (RFC 6043)"},
    EncrAlg: {0: "NULL", 1: "AES-CM-128", 2: "AES-KW-128"},
    MacAlg: {0: "NULL", 1: "HMAC-SHA-1-160"},
    PkeCache: {0: "No cache", 1: "Cache", 2: "Cache for CSB"},
    DhGroup: {0: "OAKLEY 5", 1: "OAKLEY 1", 2: "OAKLEY 2"},
    SType: {0: "RSA/PKCS#1/1.5", 1: "RSA/PSS"},
    TsType: {0: "NTP-UTC", 1: "NTP", 2: "COUNTER"},
    IdType: {0: "NAI", 1: "URI", 2: "Byte string"},
    CertType: {0: "X.509v3", 1: "X.509v3 URL", 2: "X.509v3 Sign", 3: "X.509v3 Encr"},
    HashFunc: {0: "SHA-1", 1: "MD5"},
    ProtType: {0: "SRTP"},
    SrtpParam: {
        0: "Encryption algorithm",
        1: "Session encr. key length",
        2: "Authentication algorithm",
        3: "Session auth. key length",
        4: "Session salt key length",
        5: "SRTP PRF",
        6: "Key derivation rate",
        7: "SRTP encryption off/on",
        8: "SRTCP encryption off/on",
        9: "Sender's FEC order",
        10: "SRTP authentication off/on",
        11: "Authentication tag length",
        12: "SRTP prefix length",
    },
    ErrorNo: {
        0: "Authentication failure",
        1: "Invalid timestamp",
        2: "PRF function not supported",
        3: "MAC algorithm not supported",
        4: "Encryption algorithm not supported",
        5: "Hash function not supported",
        6: "DH group not supported",
        7: "ID not supported",
        8: "Certificate not supported",
        9: "SP type not supported",
        10: "SP parameters not supported",
        11: "Data type not supported",
        12: "Unspecified error",
        # private use (RFC 3830 §10): mbmsec compact profile causes, mbms/compact.py ErrorCause
        241: "B-TID unknown or expired (mbmsec, private use)",
        242: "KEK unavailable, retry later (mbmsec, private use)",
        243: "service unknown (mbmsec, private use)",
        244: "not authorized (mbmsec, private use)",
        245: "key not available (mbmsec, private use)",
    },
    KeyDataType: {0: "TGK", 1: "TGK+SALT", 2: "TEK", 3: "TEK+SALT"},
    KvType: {0: "Null", 1: "SPI/MKI", 2: "Interval"},
    ExtType: {0: "Vendor-ID", 1: "SDP-IDs", 2: "TESLA (RFC 4442)", 3: "Key ID (RFC 4563)"},
    KeyIdType: {
        0: "MBMS Key Domain ID",
        1: "MBMS MSK ID",
        2: "MBMS MTK ID",
        241: "MBMS User Service ID (mbmsec, private use)",  # mbms/keys.py
    },
}

# Private-use ranges (RFC 3830 §10 data types and error numbers; RFC 4563 §8 Key ID types).
_PRIVATE_USE: Final[dict[type[IntEnum], range]] = {
    DataType: range(241, 256),
    ErrorNo: range(241, 256),
    KeyIdType: range(241, 256),
}

# Value names of one-byte SRTP policy parameters (RFC 3830 §6.10.1).
_ON_OFF: Final = {0: "Off", 1: "On"}
_SRTP_PARAM_VALUES: Final[dict[int, dict[int, str]]] = {
    SrtpParam.ENCR_ALG: {0: "NULL", 1: "AES-CM", 2: "AES-F8"},
    SrtpParam.AUTH_ALG: {0: "NULL", 1: "HMAC-SHA-1"},
    SrtpParam.SRTP_PRF: {0: "AES-CM"},
    SrtpParam.SRTP_ENCRYPTION: _ON_OFF,
    SrtpParam.SRTCP_ENCRYPTION: _ON_OFF,
    SrtpParam.FEC_ORDER: {0: "FEC-SRTP"},
    SrtpParam.SRTP_AUTHENTICATION: _ON_OFF,
}

NTP_UNIX_OFFSET: Final = 2208988800  # seconds from 1900-01-01 to 1970-01-01


def code_name(table: type[IntEnum], value: int) -> str:
    """Human name of ``value`` in the code-point table ``table`` ("unknown" if unassigned)."""
    name = CODE_NAMES[table].get(int(value))
    if name is not None:
        return name
    if int(value) in _PRIVATE_USE.get(table, range(0)):
        return "private use"
    return "unknown"


# --- the description -------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One field: byte offset and size (None when derived), name, JSON value, display text."""

    offset: int | None
    size: int
    name: str
    key: str
    value: Any
    text: str
    group: str = ""  # repeated structure (SP parameter, Key ID entry) this field belongs to
    group_index: int = 0


@dataclass(frozen=True)
class Section:
    """One payload (or Key data sub-payload) with its fields and nested sub-payloads."""

    title: str
    offset: int | None
    size: int
    items: tuple[Item, ...]
    children: tuple[Section, ...] = ()
    note: str = ""


@dataclass
class _Fields:
    offset: int | None
    items: list[Item] = field(default_factory=list)
    group: str = ""
    group_index: int = 0

    def begin(self, group: str) -> None:
        """Start the next entry of a repeated structure named ``group``."""
        if group != self.group:
            self.group, self.group_index = group, 0
        else:
            self.group_index += 1

    def _add(self, size: int, name: str, key: str, value: Any, text: str) -> None:
        item = Item(self.offset, size, name, key, value, text, self.group, self.group_index)
        self.items.append(item)
        if self.offset is not None:
            self.offset += size

    def uint(self, size: int, name: str, key: str, value: int, *, hex_: bool = False) -> None:
        self._add(size, name, key, value, f"0x{value:0{2 * size}x}" if hex_ else str(value))

    def code(self, size: int, name: str, key: str, table: type[IntEnum], value: int) -> None:
        label = code_name(table, value)
        self._add(size, name, key, {"value": int(value), "name": label}, f"{int(value)}  {label}")

    def raw(self, name: str, key: str, data: bytes, *, as_text: bool = False) -> None:
        text = data.hex()
        if as_text and data:
            try:
                s = data.decode("utf-8")
            except UnicodeDecodeError:
                s = ""
            if s.isprintable():
                text = repr(s)
        self._add(len(data), name, key, data.hex(), text if data else "(empty)")

    def next_payload(self, value: int) -> None:
        self.code(1, "next payload", "next_payload", PayloadType, value)

    def skip(self, n: int) -> None:
        if self.offset is not None:
            self.offset += n


def _ntp_text(value: int) -> str:
    seconds, frac = value >> 32, value & 0xFFFFFFFF
    try:
        when = dt.datetime.fromtimestamp(seconds - NTP_UNIX_OFFSET, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return f"0x{value:016x}"
    micro = (frac * 1_000_000) >> 32
    return f"0x{value:016x}  {when.replace(microsecond=micro).isoformat()}"


def _kv(f: _Fields, kv_data: KvData) -> None:
    # RFC 3830 §6.14
    if kv_data is None:
        return
    if isinstance(kv_data, tuple):
        vf, vt = kv_data
        f.uint(1, "VF length", "valid_from_len", len(vf))
        f.raw("Valid From", "valid_from", vf)
        f.uint(1, "VT length", "valid_to_len", len(vt))
        f.raw("Valid To", "valid_to", vt)
    else:
        f.uint(1, "SPI length", "spi_len", len(kv_data))
        f.raw("SPI/MKI", "spi", kv_data)


def describe_key_data(
    items: Sequence[KeyData], base_offset: int | None, *, note: str = ""
) -> tuple[Section, ...]:
    """Sections for a Key data chain (RFC 3830 §6.13); ``base_offset`` of its first byte."""
    out = []
    off = base_offset
    for i, kd in enumerate(items):
        f = _Fields(off)
        f.next_payload(PayloadType.KEY_DATA if i + 1 < len(items) else PayloadType.LAST)
        f.code(1, "Type", "type", KeyDataType, kd.type)
        f.offset = off + 1 if off is not None else None  # Type and KV share one byte
        f.code(1, "KV", "kv", KvType, kd.kv_type)
        if kd.salt_concat and kd.salt is not None:
            f.uint(2, "Key data len", "key_len", len(kd.key) + len(kd.salt))
            f.raw("Key data (key)", "key", kd.key)
            f.raw("Key data (salt, sent as key || salt)", "salt", kd.salt)
        else:
            f.uint(2, "Key data len", "key_len", len(kd.key))
            f.raw("Key data", "key", kd.key)
            if kd.salt is not None:
                f.uint(2, "Salt len", "salt_len", len(kd.salt))
                f.raw("Salt data", "salt", kd.salt)
        _kv(f, kd.kv_data)
        size = sum(it.size for it in f.items) - 1  # Type and KV counted once
        out.append(Section("Key data", off, size, tuple(f.items), note=note if i == 0 else ""))
        if off is not None:
            off += size
    return tuple(out)


def _describe_header(msg: Message, end: int) -> Section:
    h = msg.header
    f = _Fields(0)
    f.uint(1, "version", "version", h.version)
    f.code(1, "data type", "data_type", DataType, h.data_type)
    first = msg.payloads[0].payload_type if msg.payloads else PayloadType.LAST
    f.next_payload(first)
    f.uint(1, "V", "v", int(h.v))
    f.offset = 3
    f.code(1, "PRF func", "prf_func", PrfFunc, h.prf_func)
    f.uint(4, "CSB ID", "csb_id", h.csb_id, hex_=True)
    f.uint(1, "#CS", "cs_count", h.cs_count)
    f.code(1, "CS ID map type", "cs_id_map_type", CsIdMapType, h.cs_id_map_type)
    for n, e in enumerate(h.cs_map, start=1):
        if isinstance(e, SrtpIdEntry):
            f.uint(1, f"CS {n} Policy_no", f"cs{n}_policy_no", e.policy_no)
            f.uint(4, f"CS {n} SSRC", f"cs{n}_ssrc", e.ssrc, hex_=True)
            f.uint(4, f"CS {n} ROC", f"cs{n}_roc", e.roc)
        elif isinstance(e, GenericIdEntry):
            f.uint(1, f"CS {n} CS ID", f"cs{n}_cs_id", e.cs_id)
            f.code(1, f"CS {n} Prot type", f"cs{n}_prot_type", ProtType, e.prot_type)
            f.uint(1, f"CS {n} S", f"cs{n}_s", int(e.s))
            f.offset = f.offset - 1 if f.offset is not None else None
            f.uint(1, f"CS {n} #P", f"cs{n}_policy_count", len(e.policies))
            f.raw(f"CS {n} Ps", f"cs{n}_policies", e.policies)
            f.uint(2, f"CS {n} Session Data Length", f"cs{n}_session_data_len", len(e.session_data))
            f.raw(f"CS {n} Session Data", f"cs{n}_session_data", e.session_data)
            f.uint(1, f"CS {n} SPI Length", f"cs{n}_spi_len", len(e.spi))
            f.raw(f"CS {n} SPI", f"cs{n}_spi", e.spi)
    return Section("HDR", 0, end, tuple(f.items))


def _describe_payload(
    p: Payload, nxt: int, off: int, size: int, key_data: Sequence[KeyData] | None, note: str
) -> Section:
    f = _Fields(off)
    if not isinstance(p, Sign):
        f.next_payload(nxt)
    children: tuple[Section, ...] = ()
    title = CODE_NAMES[PayloadType][p.payload_type]
    if isinstance(p, Kemac):  # RFC 3830 §6.2
        f.code(1, "Encr alg", "encr_alg", EncrAlg, p.encr_alg)
        f.uint(2, "Encr data len", "encr_data_len", len(p.encr_data))
        data_off = f.offset
        f.raw("Encr data", "encr_data", p.encr_data)
        f.code(1, "MAC alg", "mac_alg", MacAlg, p.mac_alg)
        f.raw("MAC", "mac", p.mac)
        if key_data is not None:
            same_len = p.encr_alg in (EncrAlg.NULL, EncrAlg.AES_CM_128)
            children = describe_key_data(key_data, data_off if same_len else None, note=note)
    elif isinstance(p, Pke):  # RFC 3830 §6.3
        f.code(2, "C", "cache", PkeCache, p.cache)
        f.skip(-2)
        f.uint(2, "Data len", "data_len", len(p.data))
        f.raw("Data", "data", p.data)
    elif isinstance(p, Dh):  # RFC 3830 §6.4
        f.code(1, "DH-Group", "group", DhGroup, p.group)
        f.raw("DH-value", "value", p.value)
        f.uint(1, "Reserv", "reserved", p.reserved)
        f.skip(-1)
        f.code(1, "KV", "kv", KvType, p.kv_type)
        _kv(f, p.kv_data)
    elif isinstance(p, Sign):  # RFC 3830 §6.5
        f.code(2, "S type", "s_type", SType, p.s_type)
        f.skip(-2)
        f.uint(2, "Signature len", "signature_len", len(p.signature))
        f.raw("Signature", "signature", p.signature)
    elif isinstance(p, Timestamp):  # RFC 3830 §6.6
        f.code(1, "TS type", "ts_type", TsType, p.ts_type)
        n = len(p.value_bytes)
        if p.ts_type == TsType.COUNTER:
            f.uint(n, "TS value", "ts_value", p.value)
        else:
            f._add(n, "TS value", "ts_value", p.value, _ntp_text(p.value))
    elif isinstance(p, IdPayload):  # RFC 3830 §6.7
        f.code(1, "ID type", "id_type", IdType, p.id_type)
        f.uint(2, "ID len", "id_len", len(p.data))
        f.raw("ID data", "id_data", p.data, as_text=True)
    elif isinstance(p, Cert):  # RFC 3830 §6.7
        f.code(1, "Cert type", "cert_type", CertType, p.cert_type)
        f.uint(2, "Cert len", "cert_len", len(p.data))
        f.raw("Cert data", "cert_data", p.data)
    elif isinstance(p, Chash):  # RFC 3830 §6.8
        f.code(1, "Hash func", "hash_func", HashFunc, p.hash_func)
        f.raw("Hash", "hash", p.hash)
    elif isinstance(p, Verification):  # RFC 3830 §6.9
        f.code(1, "Auth alg", "auth_alg", MacAlg, p.auth_alg)
        f.raw("Ver data (MAC)", "mac", p.mac)
    elif isinstance(p, SecurityPolicy):  # RFC 3830 §6.10
        f.uint(1, "Policy no", "policy_no", p.policy_no)
        f.code(1, "Prot type", "prot_type", ProtType, p.prot_type)
        f.uint(2, "Policy param length", "param_len", sum(2 + len(v) for _, v in p.params))
        for t, v in p.params:
            f.begin("params")
            _sp_param(f, p.prot_type, t, v)
    elif isinstance(p, Rand):  # RFC 3830 §6.11
        f.uint(1, "RAND len", "rand_len", len(p.rand))
        f.raw("RAND", "rand", p.rand)
    elif isinstance(p, ErrorPayload):  # RFC 3830 §6.12
        f.code(1, "Error no", "error_no", ErrorNo, p.error_no)
        f.uint(2, "Reserved", "reserved", p.reserved, hex_=True)
    elif isinstance(p, KeyIdExtension):  # RFC 4563 §4
        f.code(1, "Type", "ext_type", ExtType, p.ext_type)
        f.uint(2, "Length", "length", sum(2 + len(e.key_id) for e in p.entries))
        for e in p.entries:
            f.begin("key_ids")
            f.code(1, "Key ID Type", "type", KeyIdType, e.key_id_type)
            f.uint(1, "Key ID Length", "length", len(e.key_id))
            f.raw("Key ID", "key_id", e.key_id)
    elif isinstance(p, GeneralExtension):  # RFC 3830 §6.15
        f.code(1, "Type", "ext_type", ExtType, p.ext_type)
        f.uint(2, "Length", "length", len(p.data))
        f.raw("Data", "data", p.data, as_text=p.ext_type == ExtType.SDP_IDS)
    return Section(title, off, size, tuple(f.items), children)


def _sp_param(f: _Fields, prot: int, t: int, v: bytes) -> None:
    # RFC 3830 §6.10.1: Type (8) | Length (8) | Value
    srtp = prot == ProtType.SRTP
    name = code_name(SrtpParam, t) if srtp else "parameter"
    f.uint(1, f"param type ({name})", "type", t)
    f.uint(1, "param length", "length", len(v))
    values = _SRTP_PARAM_VALUES.get(t) if srtp else None
    if len(v) == 1:
        label = values.get(v[0], "unknown") if values is not None else ""
        f._add(1, "param value", "value", v[0], f"{v[0]}  {label}".rstrip())
    else:
        f.raw("param value", "value", v)


def describe(
    msg: Message, *, key_data: Sequence[KeyData] | None = None, key_data_note: str = ""
) -> tuple[Section, ...]:
    """Sections for the HDR and every payload of ``msg`` in wire order.

    ``key_data`` (clear or decrypted Key data sub-payloads) is shown under the KEMAC.
    """
    offsets = list(msg.payload_offsets)
    end = len(msg.raw) - msg.padding
    bounds = [*offsets, end]
    sections = [_describe_header(msg, bounds[0])]
    for i, p in enumerate(msg.payloads):
        nxt = msg.payloads[i + 1].payload_type if i + 1 < len(msg.payloads) else 0
        size = bounds[i + 1] - bounds[i]
        kd = key_data if isinstance(p, Kemac) else None
        sections.append(_describe_payload(p, nxt, bounds[i], size, kd, key_data_note))
    return tuple(sections)


# --- renderings ------------------------------------------------------------------------------


def render_text(msg: Message, sections: Sequence[Section], notes: Sequence[str] = ()) -> str:
    """The annotated dump: one line per field with its byte offset, name and value."""
    dtype = msg.header.data_type
    lines = [f"MIKEY message, {len(msg.raw)} bytes: {code_name(DataType, dtype)}"]

    def emit(sec: Section, indent: str) -> None:
        where = f"{sec.offset:5d}" if sec.offset is not None else "    -"
        lines.append(f"{where}  {indent}{sec.title} ({sec.size} bytes)")
        if sec.note:
            lines.append(f"       {indent}  ({sec.note})")
        for it in sec.items:
            at = f"{it.offset:5d}" if it.offset is not None else "    -"
            lines.append(f"{at}  {indent}  {it.name:<24} {it.text}")
        for child in sec.children:
            emit(child, indent + "  ")

    for sec in sections:
        emit(sec, "")
    if msg.padding:
        lines.append(f"{len(msg.raw) - msg.padding:5d}  padding ({msg.padding} bytes)")
    lines.extend(notes)
    return "\n".join(lines) + "\n"


def _section_json(sec: Section) -> dict[str, Any]:
    out: dict[str, Any] = {"payload": sec.title, "offset": sec.offset, "size": sec.size}
    for it in sec.items:
        if not it.group:
            out[it.key] = it.value
            continue
        entries = out.setdefault(it.group, [])
        if len(entries) <= it.group_index:
            entries.append({})
        entries[it.group_index][it.key] = it.value
    if sec.children:
        out["key_data"] = [_section_json(c) for c in sec.children]
    return out


def render_json(
    msg: Message, sections: Sequence[Section], extra: dict[str, Any] | None = None
) -> str:
    """The dump as a JSON document (bytes as lowercase hex, code points as value + name)."""
    doc: dict[str, Any] = {
        "size": len(msg.raw),
        "data_type": {
            "value": int(msg.header.data_type),
            "name": code_name(DataType, msg.header.data_type),
        },
        "mac_offset": msg.mac_offset,
        "padding": msg.padding,
        "payloads": [_section_json(s) for s in sections],
    }
    if extra:
        doc.update(extra)
    return json.dumps(doc, indent=2) + "\n"
