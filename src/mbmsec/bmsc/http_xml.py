"""HTTP key management bodies of the 3GPP profile (TS 33.246 §6.3.2, media types of TS 26.346).

Both directions, sans-I/O: the UE builds requests and parses responses, the BM-SC the reverse.
Element names follow TS 33.246 as far as it could be checked (docs/spec-findings.md Q5: the
schemas themselves are unconfirmed, so the names here are our documented choice; every element
is matched by local name, any namespace is accepted, ours is :data:`NS`)::

    POST /keymanagement?requesttype=register        application/mbms-register+xml
      <mbmsUserServiceRegistration><serviceId>..</serviceId>+ [<mikeyPort>N</mikeyPort>]
    200  application/mbms-register-response+xml
      <mbmsUserServiceRegistrationResponse>
        <serviceResponse><serviceId>..</serviceId><status>200</status></serviceResponse>+

    POST /keymanagement?requesttype=deregister      application/mbms-deregister+xml
      <mbmsUserServiceDeregistration><serviceId>..</serviceId>+ ; answer as for register

    POST /keymanagement?requesttype=msk-request     application/mbms-msk+xml
      <mbmsMSKRequest><keyId><keyDomainId>hex6</keyDomainId><MSKID>hex8</MSKID></keyId>+
         [<mikeyPort>N</mikeyPort>]
    200  application/mbms-msk-response+xml
      <mbmsMSKResponse><MSKResponse><keyDomainId>..</keyDomainId><MSKID>..</MSKID>
         <status>200</status></MSKResponse>+

``mikeyPort`` is our extension: the UDP port the UE listens on for MSK pushes (default 2269),
so many UEs can share one host. Item status codes: 200 OK (the MSK push follows), 403 user not
authorised, 404 service (or Key Domain / key group) unknown, 410 MSK not available (expired or
not yet offered), 503 keys temporarily unavailable.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Final
from xml.sax.saxutils import escape

from ..errors import DecodeError, InvalidValueError, OversizeError
from ..mbms.keys import MskId, MskRef

__all__ = [
    "CT_DEREGISTER",
    "CT_MSK",
    "CT_MSK_RESPONSE",
    "CT_REGISTER",
    "CT_REGISTER_RESPONSE",
    "KEYMGMT_PATH",
    "MAX_BODY",
    "NS",
    "KeyMgmtRequest",
    "MskStatus",
    "ServiceStatus",
    "build_msk_request",
    "build_msk_response",
    "build_registration",
    "build_registration_response",
    "parse_msk_response",
    "parse_registration_response",
    "parse_request_body",
]

KEYMGMT_PATH: Final = "/keymanagement"
NS: Final = "urn:mbmsec:mbms:keymanagement"
CT_REGISTER: Final = "application/mbms-register+xml"
CT_DEREGISTER: Final = "application/mbms-deregister+xml"
CT_MSK: Final = "application/mbms-msk+xml"
CT_REGISTER_RESPONSE: Final = "application/mbms-register-response+xml"
CT_MSK_RESPONSE: Final = "application/mbms-msk-response+xml"
MAX_BODY: Final = 16384
MAX_ITEMS: Final = 32

REQUEST_TYPES: Final = {
    "register": ("mbmsUserServiceRegistration", CT_REGISTER),
    "deregister": ("mbmsUserServiceDeregistration", CT_DEREGISTER),
    "msk-request": ("mbmsMSKRequest", CT_MSK),
}


@dataclass(frozen=True, slots=True)
class KeyMgmtRequest:
    """A parsed request body: type, service IDs or MSK refs, optional MIKEY port."""

    request_type: str
    service_ids: tuple[str, ...] = ()
    msks: tuple[MskRef, ...] = ()
    mikey_port: int | None = None


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One ``serviceResponse`` item."""

    service_id: str
    status: int


@dataclass(frozen=True, slots=True)
class MskStatus:
    """One ``MSKResponse`` item."""

    ref: MskRef
    status: int


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _parse(body: bytes, root_name: str) -> ET.Element:
    if len(body) > MAX_BODY:
        raise OversizeError(f"key management body larger than {MAX_BODY} bytes")
    # A body in another encoding (UTF-16, EBCDIC) would hide "<!DOCTYPE" from a byte check
    # while expat honours its declared (or sniffed) encoding: require UTF-8 without NULs, and
    # make expat read UTF-8 whatever the XML declaration says.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidValueError("body is not UTF-8") from None
    if "\x00" in text:
        raise InvalidValueError("NUL in body")
    if "<!" in text:
        raise InvalidValueError("DOCTYPE/ENTITY/CDATA not allowed")
    try:
        parser = ET.XMLParser(encoding="utf-8")  # noqa: S314 - bounded, UTF-8, no DTD
        parser.feed(body)
        root = parser.close()
    except ET.ParseError:
        raise DecodeError("body is not well-formed XML") from None
    if _local(root.tag) != root_name:
        raise InvalidValueError(f"root element is not {root_name}")
    if len(root) > MAX_ITEMS + 1:
        raise InvalidValueError("too many items")
    return root


def _text(el: ET.Element, what: str, max_len: int = 255) -> str:
    t = (el.text or "").strip()
    if not t or len(t) > max_len:
        raise InvalidValueError(f"{what} must be 1..{max_len} characters")
    return t


def _int(el: ET.Element, what: str, lo: int, hi: int) -> int:
    t = _text(el, what, 10)
    if not t.isdigit() or not lo <= int(t) <= hi:
        raise InvalidValueError(f"{what} must be an integer in {lo}..{hi}")
    return int(t)


def _hex(el: ET.Element, what: str, n: int) -> bytes:
    try:
        b = bytes.fromhex(_text(el, what, 2 * n))
    except ValueError:
        raise InvalidValueError(f"{what} is not hex") from None
    if len(b) != n:
        raise InvalidValueError(f"{what} must be {n} bytes")
    return b


def _key_id(el: ET.Element) -> MskRef:
    kd = msk = None
    for c in el:
        name = _local(c.tag)
        if name == "keyDomainId":
            kd = _hex(c, "keyDomainId", 3)
        elif name == "MSKID":
            msk = _hex(c, "MSKID", 4)
    if kd is None or msk is None:
        raise InvalidValueError("a key ID needs keyDomainId and MSKID")
    return MskRef(kd, MskId.from_bytes(msk))


def parse_request_body(request_type: str, body: bytes) -> KeyMgmtRequest:
    """Parse the body of a ``requesttype`` request. Raises DecodeError (or a subclass)."""
    if request_type not in REQUEST_TYPES:
        raise InvalidValueError(f"unknown requesttype {request_type!r}")
    root = _parse(body, REQUEST_TYPES[request_type][0])
    services: list[str] = []
    msks: list[MskRef] = []
    port = None
    for el in root:
        name = _local(el.tag)
        if name == "serviceId" and request_type != "msk-request":
            services.append(_text(el, "serviceId"))
        elif name == "keyId" and request_type == "msk-request":
            msks.append(_key_id(el))
        elif name == "mikeyPort" and port is None:
            port = _int(el, "mikeyPort", 1, 65535)
        else:
            raise InvalidValueError(f"unexpected element {name}")
    if not services and not msks:
        raise InvalidValueError("request names no service and no MSK")
    return KeyMgmtRequest(request_type, tuple(services), tuple(msks), port)


def _doc(root: str, items: list[str]) -> bytes:
    inner = "".join(items)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">{inner}</{root}>'.encode()


def _port(p: int | None) -> list[str]:
    return [] if p is None else [f"<mikeyPort>{int(p)}</mikeyPort>"]


def _kid(ref: MskRef) -> str:
    return (
        f"<keyDomainId>{ref.key_domain_id.hex()}</keyDomainId>"
        f"<MSKID>{ref.msk_id.to_bytes().hex()}</MSKID>"
    )


def build_registration(
    service_ids: list[str], *, deregister: bool = False, mikey_port: int | None = None
) -> bytes:
    """UE side: the register (or deregister) body."""
    root = REQUEST_TYPES["deregister" if deregister else "register"][0]
    items = [f"<serviceId>{escape(s)}</serviceId>" for s in service_ids]
    return _doc(root, items + _port(mikey_port))


def build_msk_request(msks: list[MskRef], *, mikey_port: int | None = None) -> bytes:
    """UE side: the MSK request body."""
    items = [f"<keyId>{_kid(r)}</keyId>" for r in msks]
    return _doc("mbmsMSKRequest", items + _port(mikey_port))


def build_registration_response(items: list[ServiceStatus]) -> bytes:
    """BM-SC side: the registration (or deregistration) response body."""
    return _doc(
        "mbmsUserServiceRegistrationResponse",
        [
            f"<serviceResponse><serviceId>{escape(i.service_id)}</serviceId>"
            f"<status>{i.status}</status></serviceResponse>"
            for i in items
        ],
    )


def build_msk_response(items: list[MskStatus]) -> bytes:
    """BM-SC side: the MSK request response body."""
    return _doc(
        "mbmsMSKResponse",
        [f"<MSKResponse>{_kid(i.ref)}<status>{i.status}</status></MSKResponse>" for i in items],
    )


def parse_registration_response(body: bytes) -> list[ServiceStatus]:
    """UE side: parse a registration response. Raises DecodeError (or a subclass)."""
    out = []
    for el in _parse(body, "mbmsUserServiceRegistrationResponse"):
        sid = status = None
        for c in el:
            if _local(c.tag) == "serviceId":
                sid = _text(c, "serviceId")
            elif _local(c.tag) == "status":
                status = _int(c, "status", 100, 599)
        if _local(el.tag) != "serviceResponse" or sid is None or status is None:
            raise InvalidValueError("serviceResponse needs serviceId and status")
        out.append(ServiceStatus(sid, status))
    return out


def parse_msk_response(body: bytes) -> list[MskStatus]:
    """UE side: parse an MSK request response. Raises DecodeError (or a subclass)."""
    out = []
    for el in _parse(body, "mbmsMSKResponse"):
        if _local(el.tag) != "MSKResponse":
            raise InvalidValueError("unexpected element in mbmsMSKResponse")
        status = None
        for c in el:
            if _local(c.tag) == "status":
                status = _int(c, "status", 100, 599)
        if status is None:
            raise InvalidValueError("MSKResponse needs a status")
        out.append(MskStatus(_key_id(el), status))
    return out
