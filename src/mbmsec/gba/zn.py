"""Zn over HTTP/JSON: the BSF answers a NAF's bootstrapping-info request (sans-I/O codec).

The fields mirror Diameter Zn (TS 29.109 §6.1, Bootstrapping-Info-Request/Answer, command 310,
application 16777220); see docs/gba.md for the wire description::

    POST /zn/bootstrapping-info                     Authorization: Bearer <token> | Basic ...
    {"btid": "<B-TID>",                              Transaction-Identifier (AVP 401)
     "naf_id": "<hex of FQDN || Ua id>",             NAF-Id (AVP 402)
       or "naf_fqdn": "...", "ua_protocol_id": "0100000001",
     "gba_u_aware": false,                           GBA_U-Awareness-Indicator (AVP 407)
     "gsids": ["4"]}                                 GAA-Service-Identifier (AVP 403), optional

    200 {"impi", "ks_naf" | "ks_ext_naf" + "ks_int_naf", "key_expiry", "bootstrap_time",
         "guss": {"naf_fqdns": [...], "mbms_service_ids": [...]}, "gba_type": "3G",
         "uicc_me": "GBA_ME" | "GBA_U"}
    4xx {"error": "<reason>", "diameter_result": <Experimental-Result-Code>}

Times are xs:dateTime strings in UTC with a "Z" (as in the Ub BootstrappingInfo XML).
Every decoder raises :class:`~mbmsec.errors.DecodeError` (or a subclass) for bad input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..errors import DecodeError, InvalidValueError, KeyUnavailableError, OversizeError
from ..store.protocols import Guss
from .kdf import UA_ID_LEN

__all__ = [
    "DIAMETER_ERROR_IDENTITY_UNKNOWN",
    "DIAMETER_ERROR_NOT_AUTHORIZED",
    "DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID",
    "ZN_MAX_BODY",
    "ZN_PATH",
    "ZnAnswer",
    "ZnLookupError",
    "ZnRequest",
    "format_xs_datetime",
    "parse_xs_datetime",
    "zn_error_from_response",
]

ZN_PATH = "/zn/bootstrapping-info"
ZN_MAX_BODY = 4096

# TS 29.109 §6.3.4 / TS 29.229: Experimental-Result-Code values used on Zn.
DIAMETER_ERROR_IDENTITY_UNKNOWN = 5401
DIAMETER_ERROR_NOT_AUTHORIZED = 5402
DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID = 5403

_MAX_BTID = 255
_MAX_FQDN = 255


def format_xs_datetime(ts: float) -> str:
    """Format POSIX seconds as xs:dateTime in UTC with "Z", whole seconds (TS 24.109 C.1)."""
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_xs_datetime(text: str) -> float:
    """Parse an xs:dateTime with a "Z" or numeric offset into POSIX seconds.

    Raises InvalidValueError when the text is not a date-time with a time zone.
    """
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise InvalidValueError("not an xs:dateTime") from None
    if dt.tzinfo is None:
        raise InvalidValueError("xs:dateTime without time zone")
    return dt.timestamp()


def _load_object(body: bytes) -> dict[str, object]:
    if len(body) > ZN_MAX_BODY:
        raise OversizeError(f"Zn body larger than {ZN_MAX_BODY} bytes")
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise DecodeError("Zn body is not JSON") from None
    if not isinstance(obj, dict):
        raise DecodeError("Zn body is not a JSON object")
    return obj


def _str(obj: dict[str, object], key: str, max_len: int, required: bool = True) -> str | None:
    v = obj.get(key)
    if v is None:
        if required:
            raise InvalidValueError(f"missing {key}")
        return None
    if not isinstance(v, str) or not v or len(v) > max_len:
        raise InvalidValueError(f"{key} must be a non-empty string of at most {max_len} chars")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in v):
        raise InvalidValueError(f"{key} contains control characters or lone surrogates")
    return v


def _hex(obj: dict[str, object], key: str, length: int | None, max_len: int = 512) -> bytes | None:
    s = _str(obj, key, max_len, required=False)
    if s is None:
        return None
    try:
        b = bytes.fromhex(s)
    except ValueError:
        raise InvalidValueError(f"{key} is not hex") from None
    if length is not None and len(b) != length:
        raise InvalidValueError(f"{key} must be {length} bytes")
    return b


def _str_list(v: object, key: str) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or len(v) > 256 or not all(isinstance(x, str) for x in v):
        raise InvalidValueError(f"{key} must be a list of strings")
    if any(0xD800 <= ord(c) <= 0xDFFF for x in v for c in x):
        raise InvalidValueError(f"{key} contains lone surrogates")
    return tuple(str(x) for x in v)


@dataclass(frozen=True, slots=True)
class ZnRequest:
    """A Bootstrapping-Info-Request: B-TID, NAF_Id (FQDN || Ua id), GBA_U awareness."""

    btid: str
    naf_id: bytes
    gba_u_aware: bool = False
    gsids: tuple[str, ...] = ()

    @property
    def naf_fqdn(self) -> str:
        """The FQDN part of NAF_Id (UTF-8 text before the 5-octet Ua id)."""
        return self.naf_id[:-UA_ID_LEN].decode("utf-8")

    def to_json(self) -> bytes:
        """Encode as the JSON request body (``naf_id`` as hex)."""
        d: dict[str, object] = {
            "btid": self.btid,
            "naf_id": self.naf_id.hex(),
            "gba_u_aware": self.gba_u_aware,
        }
        if self.gsids:
            d["gsids"] = list(self.gsids)
        return json.dumps(d, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, body: bytes) -> ZnRequest:
        """Decode a request body. Raises DecodeError (or a subclass) for anything malformed."""
        obj = _load_object(body)
        btid = _str(obj, "btid", _MAX_BTID)
        assert btid is not None
        naf_id = _hex(obj, "naf_id", None)
        if naf_id is None:
            fqdn = _str(obj, "naf_fqdn", _MAX_FQDN, required=False)
            ua = _hex(obj, "ua_protocol_id", UA_ID_LEN)
            if fqdn is None or ua is None:
                raise InvalidValueError("need naf_id, or naf_fqdn and ua_protocol_id")
            naf_id = fqdn.encode("utf-8") + ua
        if not UA_ID_LEN < len(naf_id) <= _MAX_FQDN + UA_ID_LEN:
            raise InvalidValueError("naf_id must be FQDN || 5-octet Ua security protocol id")
        try:
            fqdn_text = naf_id[:-UA_ID_LEN].decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidValueError("NAF FQDN is not UTF-8") from None
        if any(c.isspace() or ord(c) < 0x20 for c in fqdn_text):
            raise InvalidValueError("NAF FQDN contains spaces or control characters")
        aware = obj.get("gba_u_aware", False)
        if not isinstance(aware, bool):
            raise InvalidValueError("gba_u_aware must be true or false")
        gsids = _str_list(obj.get("gsids"), "gsids")
        return cls(btid=btid, naf_id=naf_id, gba_u_aware=aware, gsids=gsids)


@dataclass(frozen=True, slots=True)
class ZnAnswer:
    """A successful Bootstrapping-Info-Answer.

    GBA_ME: ``ks_naf``. GBA_U with a GBA_U-aware NAF: ``ks_ext_naf`` and ``ks_int_naf``.
    GBA_U with a NAF that is not GBA_U aware: ``ks_naf`` holds Ks_ext_NAF (TS 33.220 §5.3.3).
    """

    impi: str
    key_expiry: float
    bootstrap_time: float
    guss: Guss
    ks_naf: bytes | None = field(default=None, repr=False)
    ks_ext_naf: bytes | None = field(default=None, repr=False)
    ks_int_naf: bytes | None = field(default=None, repr=False)
    gba_type: str = "3G"
    uicc_me: str = "GBA_ME"

    @property
    def me_key(self) -> bytes:
        """The key the NAF uses with the ME: Ks_NAF, else Ks_ext_NAF."""
        key = self.ks_naf if self.ks_naf is not None else self.ks_ext_naf
        assert key is not None
        return key

    def to_json(self) -> bytes:
        """Encode as the JSON answer body."""
        d: dict[str, object] = {
            "impi": self.impi,
            "key_expiry": format_xs_datetime(self.key_expiry),
            "bootstrap_time": format_xs_datetime(self.bootstrap_time),
            "guss": {
                "naf_fqdns": list(self.guss.naf_fqdns),
                "mbms_service_ids": list(self.guss.mbms_service_ids),
            },
            "gba_type": self.gba_type,
            "uicc_me": self.uicc_me,
        }
        for name in ("ks_naf", "ks_ext_naf", "ks_int_naf"):
            v = getattr(self, name)
            if v is not None:
                d[name] = v.hex()
        return json.dumps(d, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, body: bytes) -> ZnAnswer:
        """Decode an answer body. Raises DecodeError (or a subclass) for anything malformed."""
        obj = _load_object(body)
        impi = _str(obj, "impi", 255)
        expiry = _str(obj, "key_expiry", 64)
        boot = _str(obj, "bootstrap_time", 64)
        assert impi is not None and expiry is not None and boot is not None
        g = obj.get("guss", {})
        if not isinstance(g, dict):
            raise InvalidValueError("guss must be an object")
        guss = Guss(
            naf_fqdns=_str_list(g.get("naf_fqdns"), "naf_fqdns"),
            mbms_service_ids=_str_list(g.get("mbms_service_ids"), "mbms_service_ids"),
        )
        keys = {n: _hex(obj, n, 32) for n in ("ks_naf", "ks_ext_naf", "ks_int_naf")}
        if keys["ks_naf"] is None and keys["ks_ext_naf"] is None:
            raise InvalidValueError("answer carries no ME key material")
        return cls(
            impi=impi,
            key_expiry=parse_xs_datetime(expiry),
            bootstrap_time=parse_xs_datetime(boot),
            guss=guss,
            ks_naf=keys["ks_naf"],
            ks_ext_naf=keys["ks_ext_naf"],
            ks_int_naf=keys["ks_int_naf"],
            gba_type=_str(obj, "gba_type", 8, required=False) or "3G",
            uicc_me=_str(obj, "uicc_me", 8, required=False) or "GBA_ME",
        )


class ZnLookupError(KeyUnavailableError):
    """A Zn lookup failed: ``status`` (HTTP), ``error`` (reason token), ``diameter_result``.

    ``btid_invalid`` is true for unknown or expired B-TIDs (5403): the NAF then asks the UE to
    bootstrap again (TS 24.109 §5.2.4).
    """

    def __init__(self, status: int, error: str, diameter_result: int | None = None) -> None:
        self.status = status
        self.error = error
        self.diameter_result = diameter_result
        super().__init__(f"Zn lookup failed: {status} {error}")

    @property
    def btid_invalid(self) -> bool:
        """True when the B-TID is unknown or expired."""
        return self.diameter_result == DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID


def zn_error_from_response(status: int, body: bytes) -> ZnLookupError:
    """Build the :class:`ZnLookupError` for a non-200 Zn answer (body may be anything)."""
    error, result = "http-error", None
    try:
        obj = _load_object(body)
        e = obj.get("error")
        r = obj.get("diameter_result")
        if isinstance(e, str) and 0 < len(e) <= 64:
            error = e
        if isinstance(r, int) and not isinstance(r, bool):
            result = r
    except DecodeError:
        pass
    return ZnLookupError(status, error, result)
