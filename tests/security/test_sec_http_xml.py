"""Key management XML bodies: a DTD (entity declarations) is refused whatever the encoding.

The BM-SC refused ``<!`` in the raw bytes only; a body encoded as UTF-16 (or EBCDIC) hides
``<!DOCTYPE`` from that byte check while expat still honours the declared encoding and
expands internal entities.
"""

from __future__ import annotations

import pytest

from mbmsec.bmsc.http_xml import parse_registration_response, parse_request_body
from mbmsec.errors import DecodeError

_DTD_DOC = (
    '<?xml version="1.0" encoding="{enc}"?>'
    '<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    "<mbmsUserServiceRegistration><serviceId>&b;</serviceId></mbmsUserServiceRegistration>"
)


@pytest.mark.parametrize("enc", ["UTF-16", "UTF-16-LE", "UTF-16-BE", "cp500"])
def test_dtd_in_non_utf8_body_refused(enc: str) -> None:
    codec = {"UTF-16-LE": "utf-16-le", "UTF-16-BE": "utf-16-be"}.get(enc, enc.lower())
    body = _DTD_DOC.format(enc=enc).encode(codec)
    assert b"<!" not in body  # the old byte check does not see it
    with pytest.raises(DecodeError):
        parse_request_body("register", body)


def test_non_utf8_body_refused_even_without_dtd() -> None:
    doc = (
        '<?xml version="1.0" encoding="UTF-16"?>'
        "<mbmsUserServiceRegistration><serviceId>urn:svc:news</serviceId>"
        "</mbmsUserServiceRegistration>"
    )
    with pytest.raises(DecodeError):
        parse_request_body("register", doc.encode("utf-16"))


def test_utf8_body_with_declaration_still_parses() -> None:
    doc = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<mbmsUserServiceRegistration xmlns="urn:x"><serviceId>urn:svc:n\u00e9ws</serviceId>'
        "</mbmsUserServiceRegistration>"
    )
    got = parse_request_body("register", doc.encode("utf-8"))
    assert got.service_ids == ("urn:svc:n\u00e9ws",)


def test_declared_encoding_cannot_reinterpret_utf8_bytes() -> None:
    # ASCII-clean bytes that declare another single-byte encoding are read as UTF-8
    doc = (
        '<?xml version="1.0" encoding="ISO-8859-1"?>'
        "<mbmsUserServiceRegistrationResponse><serviceResponse><serviceId>s</serviceId>"
        "<status>200</status></serviceResponse></mbmsUserServiceRegistrationResponse>"
    )
    assert parse_registration_response(doc.encode("ascii"))[0].status == 200
