"""Zn JSON codec: round trips, error bodies, and the decode-or-DecodeError invariant."""

from __future__ import annotations

import contextlib
import json

from hypothesis import given
from hypothesis import strategies as st

from mbmsec.errors import DecodeError
from mbmsec.gba.kdf import UA_MBMS, naf_id
from mbmsec.gba.zn import (
    ZnAnswer,
    ZnRequest,
    format_xs_datetime,
    parse_xs_datetime,
    zn_error_from_response,
)
from mbmsec.store.protocols import Guss


def test_round_trips() -> None:
    req = ZnRequest("abc@bsf", naf_id("bmsc.h", UA_MBMS), True, ("4",))
    assert ZnRequest.from_json(req.to_json()) == req
    assert req.naf_fqdn == "bmsc.h"
    ans = ZnAnswer(
        "u@h", 2000.0, 1000.0, Guss(("bmsc.h",), ("s1",)), ks_ext_naf=b"\x01" * 32,
        ks_int_naf=b"\x02" * 32, uicc_me="GBA_U",
    )  # fmt: skip
    back = ZnAnswer.from_json(ans.to_json())
    assert back == ans and back.me_key == b"\x01" * 32
    assert "01010101" not in repr(ans)
    assert format_xs_datetime(1073643197.0) == "2004-01-09T10:13:17Z"
    assert parse_xs_datetime("2004-01-09T12:13:17+02:00") == 1073643197.0


def test_error_bodies() -> None:
    e = zn_error_from_response(404, b'{"error":"btid-expired","diameter_result":5403}')
    assert e.btid_invalid and e.status == 404 and e.error == "btid-expired"
    e = zn_error_from_response(502, b"<html>bad gateway</html>")
    assert not e.btid_invalid and e.error == "http-error" and e.diameter_result is None
    e = zn_error_from_response(403, json.dumps({"error": 7, "diameter_result": True}).encode())
    assert e.error == "http-error" and e.diameter_result is None


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=6),
    max_leaves=12,
)
_keys = st.sampled_from(
    ["btid", "naf_id", "naf_fqdn", "ua_protocol_id", "gba_u_aware", "gsids", "impi",
     "key_expiry", "bootstrap_time", "guss", "ks_naf", "ks_ext_naf", "ks_int_naf"]
)  # fmt: skip


@given(st.dictionaries(_keys, _json, max_size=8))
def test_decoders_fuzz_objects(obj: dict[str, object]) -> None:
    body = json.dumps(obj).encode()
    for dec in (ZnRequest.from_json, ZnAnswer.from_json):
        with contextlib.suppress(DecodeError):
            dec(body)


@given(st.binary(max_size=200))
def test_decoders_fuzz_bytes(body: bytes) -> None:
    for dec in (ZnRequest.from_json, ZnAnswer.from_json):
        with contextlib.suppress(DecodeError):
            dec(body)
