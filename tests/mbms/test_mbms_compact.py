"""Tests for the compact profile (mbmsec.mbms.compact): request bytes, MAC, answers, errors."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

import pytest

from mbmsec.crypto import hmac_sha1
from mbmsec.errors import AuthError, ConfigError, DecodeError, InvalidValueError
from mbmsec.mbms import compact as C
from mbmsec.mbms.keys import KeyRef, MskId, MskRef, MukId
from mbmsec.mbms.messages import MskKey, MskMessage
from mbmsec.mikey.codec import decode_message
from mbmsec.mikey.constants import DataType, ErrorNo, IdType, TsType
from mbmsec.mikey.payloads import IdPayload, Timestamp
from mbmsec.mikey.prf import derive_transport_keys
from mbmsec.mikey.replay import unix_to_ntp

MRK = bytes(range(32))
MUK = bytes(range(32, 64))
BTID = "AAECAwQFBgcICQoLDA0ODw==@bsf.home1.net"
MUK_ID = MukId.of("bmsc.home1.net", BTID)
KD = bytes.fromhex("62f210")
NOW = 1_700_000_000.25


def _rng(seed: int = 1) -> Callable[[int], bytes]:  # deterministic injected randomness
    counter = itertools.count(seed)
    return lambda n: bytes((next(counter) * 37 + i) % 256 for i in range(n))


def _request(ref: KeyRef | None = None) -> tuple[bytes, C.PendingKeyRequest]:
    return C.build_key_request(
        btid=BTID, key_ref=ref or KeyRef(service_id="urn:svc:news"), mrk=MRK, now=NOW, rng=_rng()
    )


def test_request_layout_and_mac() -> None:
    data, pending = _request()
    msg = decode_message(data)
    h = msg.header
    assert h.data_type == DataType.PSK_KEY_REQUEST == 241
    assert data[1] == 241 and data[3] == 0 and data[8:10] == b"\x00\x01"
    assert h.csb_id == pending.csb_id
    kinds = [type(p).__name__ for p in msg.payloads]
    assert kinds == ["Timestamp", "Rand", "IdPayload", "KeyIdExtension", "Verification"]
    t = msg.payloads[0]
    assert t == Timestamp(TsType.NTP_UTC, unix_to_ntp(NOW)) == pending.timestamp
    assert msg.payloads[2] == IdPayload(IdType.NAI, BTID.encode())
    # V: HMAC-SHA-1 under PRF(MRK, 0x2D22AC75 || 0xFF || CSB ID || RAND) over all but the MAC
    auth = derive_transport_keys(MRK, pending.csb_id, pending.rand).auth_key
    assert data[-20:] == hmac_sha1(auth, data[:-20])
    req = C.parse_key_request(data)
    assert (req.btid, req.key_ref, req.rand) == (BTID, pending.key_ref, pending.rand)
    assert abs(req.time(NOW) - NOW) < 1e-6
    C.verify_key_request(req, MRK)
    with pytest.raises(AuthError):
        C.verify_key_request(req, MUK)


def test_request_tampering_detected() -> None:
    data, _ = _request()
    for i in range(len(data) - 20):
        b = bytearray(data)
        b[i] ^= 0x01
        try:
            req = C.parse_key_request(bytes(b))
        except DecodeError:
            continue
        with pytest.raises(AuthError):
            C.verify_key_request(req, MRK)


@pytest.mark.parametrize(
    "ref",
    [KeyRef(), KeyRef(key_domain_id=KD), KeyRef(msk_ids=(MskId(1, 1),))],
)
def test_request_needs_a_key_ref(ref: KeyRef) -> None:
    if not ref.msk_ids and ref.service_id is None:
        with pytest.raises(ConfigError):
            _request(ref)
    else:  # an MSK ID without a Key Domain ID builds, but the BM-SC refuses it
        data, _ = _request(ref)
        with pytest.raises(InvalidValueError):
            C.parse_key_request(data)


def test_parse_rejects_other_messages() -> None:
    data, _ = _request()
    with pytest.raises(InvalidValueError):
        C.parse_key_request(data[:1] + b"\x00" + data[2:])  # data type 0
    with pytest.raises(DecodeError):
        C.parse_key_request(data + b"\x00")
    with pytest.raises(DecodeError):
        C.parse_key_request(b"\x01" * 2000)


def _answer(pending: C.PendingKeyRequest, req_bytes: bytes) -> bytes:
    req = C.parse_key_request(req_bytes)
    ref = MskRef(KD, MskId(3, 1))
    return C.build_key_response(req, [MskKey(ref, bytes(16))], MUK, MUK_ID, rand=bytes(16))


def test_response_echoes_and_checks() -> None:
    data, pending = _request()
    resp = _answer(pending, data)
    msg = decode_message(resp)
    assert msg.header.data_type == DataType.PSK_INIT and msg.header.csb_id == pending.csb_id
    assert msg.find(Timestamp) == pending.timestamp
    got = C.check_key_response(resp, pending, muk=MUK, mrk=MRK, muk_id=MUK_ID)
    assert isinstance(got, MskMessage) and got.msks[0].ref.msk_id == MskId(3, 1)
    # the same bytes do not answer another request (T / CSB ID differ): no replay
    _, other = C.build_key_request(
        btid=BTID, key_ref=pending.key_ref, mrk=MRK, now=NOW + 1, rng=_rng(9)
    )
    with pytest.raises(DecodeError):
        C.check_key_response(resp, other, muk=MUK, mrk=MRK, muk_id=MUK_ID)
    with pytest.raises(DecodeError):
        C.check_key_response(
            resp, replace(pending, csb_id=pending.csb_id ^ 1), muk=MUK, mrk=MRK, muk_id=MUK_ID
        )
    with pytest.raises(AuthError):
        C.check_key_response(resp, pending, muk=MRK, mrk=MRK, muk_id=MUK_ID)


def test_size_bound_two_msks() -> None:
    data, _ = _request()
    req = C.parse_key_request(data)
    msks = [MskKey(MskRef(KD, MskId(3, i)), bytes(16)) for i in (1, 2)]
    resp = C.build_key_response(req, msks, MUK, MUK_ID, rand=bytes(16))
    assert len(resp) <= 3 * len(data)


def test_authenticated_error() -> None:
    data, pending = _request()
    req = C.parse_key_request(data)
    err = C.build_key_error(req, C.ErrorCause.SERVICE_UNKNOWN, MRK)
    msg = decode_message(err)
    assert msg.header.data_type == DataType.ERROR and msg.header.csb_id == pending.csb_id
    assert [type(p).__name__ for p in msg.payloads] == ["Timestamp", "ErrorPayload", "Verification"]
    assert err[-20:] == hmac_sha1(
        derive_transport_keys(MRK, req.csb_id, req.rand).auth_key, err[:-20]
    )
    got = C.check_key_response(err, pending, muk=MUK, mrk=MRK, muk_id=MUK_ID)
    assert got == C.KeyErrorReply((243,), True)
    with pytest.raises(AuthError):
        C.check_key_response(err, pending, muk=MUK, mrk=MUK, muk_id=MUK_ID)
    t = C.build_key_error(req, C.ErrorCause.INVALID_TS, MRK)
    assert C.check_key_response(t, pending, muk=MUK, mrk=MRK, muk_id=MUK_ID) == C.KeyErrorReply(
        (ErrorNo.INVALID_TS,), True
    )


def test_unauthenticated_error_only_for_kek_causes() -> None:
    data, pending = _request()
    req = C.parse_key_request(data)
    err = C.build_key_error(req, C.ErrorCause.BTID_UNKNOWN, None)
    assert len(err) < len(data)
    got = C.check_key_response(err, pending, muk=MUK, mrk=MRK, muk_id=MUK_ID)
    assert got == C.KeyErrorReply((241,), False)
    with pytest.raises(ConfigError):
        C.build_key_error(req, C.ErrorCause.NOT_AUTHORIZED, None)
    with pytest.raises(ConfigError):
        C.build_key_error(req, C.ErrorCause.KEK_UNAVAILABLE, MRK)
    # a forged unauthenticated "not authorised" is refused by the UE
    from mbmsec.mikey.protect import build_error_message

    forged = build_error_message(req.csb_id, req.timestamp, [C.ErrorCause.NOT_AUTHORIZED])
    with pytest.raises(AuthError):
        C.check_key_response(forged, pending, muk=MUK, mrk=MRK, muk_id=MUK_ID)
