"""Tests for mbmsec.mbms.messages: MSK / MTK message layout, checks, verification message.

Layout assertions decode the bytes independently of the builder; the KEMAC plaintext is
decrypted here with the RFC 3830 §4.1.4 keys and §4.2.3 IV (mbmsec.mikey.prf + AES-CM), so a
builder that encrypted or MACed the wrong bytes fails these tests.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.crypto import aes_cm, hmac_sha1
from mbmsec.errors import AuthError, DecodeError, InvalidValueError
from mbmsec.mbms import messages as M
from mbmsec.mbms.keys import KeyRef, MskId, MskRef, MukId, key_id_extension, srtp_mki
from mbmsec.mikey.codec import decode_message
from mbmsec.mikey.constants import DataType, IdType, KeyDataType, TsType
from mbmsec.mikey.payloads import (
    Header,
    IdPayload,
    Kemac,
    KeyData,
    KeyIdExtension,
    Rand,
    Timestamp,
)
from mbmsec.mikey.prf import derive_transport_keys, kemac_iv
from mbmsec.mikey.protect import build_psk_message

KD = bytes.fromhex("62f210")
MUK = bytes(range(100, 132))
MSK1 = bytes(range(16))
MSK2 = bytes(range(16, 32))
MUK_ID = MukId.of("bmsc.home1.net", "c2lnbmFsQGJzZg==@bsf.home1.net")
RAND = bytes(range(200, 216))
REF1 = MskRef(KD, MskId(0x0001, 0x0007))
REF2 = MskRef(KD, MskId(0x0001, 0x0008))


def _msk_msg(v: bool = True, n: int = 1) -> bytes:
    keys = [M.MskKey(REF1, MSK1, 1, 144), M.MskKey(REF2, MSK2, 1, 144)][:n]
    return M.build_msk_message(
        keys, MUK, MUK_ID, Timestamp(TsType.COUNTER, 42), csb_id=0xA1B2C3D4, rand=RAND, v=v
    )


def _decrypt(data: bytes, psk: bytes) -> bytes:
    msg = decode_message(data)
    kemac = msg.payloads[-1]
    assert isinstance(kemac, Kemac)
    t = msg.find(Timestamp)
    assert t is not None
    keys = derive_transport_keys(psk, msg.header.csb_id, RAND)
    assert hmac_sha1(keys.auth_key, data[:-20]) == data[-20:]
    return aes_cm(
        keys.encr_key, kemac_iv(keys.salt_key, msg.header.csb_id, t.value), kemac.encr_data
    )


def test_msk_message_layout() -> None:
    data = _msk_msg()
    # HDR: version 1, data type 0, next = EXT (21), V set | PRF 0, CSB ID, #CS 0, map type 1
    assert data[:10] == bytes.fromhex("01001580a1b2c3d40001")
    msg = decode_message(data)
    kinds = [type(p).__name__ for p in msg.payloads]
    assert kinds == ["KeyIdExtension", "Timestamp", "Rand", "IdPayload", "IdPayload", "Kemac"]
    ext, t, r, idi, idr, _ = msg.payloads
    assert isinstance(ext, KeyIdExtension)
    assert ext.get(0) == KD and ext.get(1) == bytes.fromhex("00010007")
    assert t == Timestamp(TsType.COUNTER, 42)
    assert r == Rand(RAND)
    assert idi == IdPayload(IdType.URI, b"bmsc.home1.net")
    assert idr == IdPayload(IdType.NAI, MUK_ID.idr)
    # key data: next 0 | TGK<<4 | KV interval | len 16 | MSK | VF len 2 | 0001 | VT len 2 | 0090
    expect = bytes.fromhex("00020010") + MSK1 + bytes.fromhex("020001020090")
    assert _decrypt(data, MUK) == expect


def test_msk_message_check_round_trip() -> None:
    got = M.check_msk_message(_msk_msg(n=2), MUK, expected_muk_id=MUK_ID)
    assert [m.ref for m in got.msks] == [REF1, REF2]
    assert [m.key for m in got.msks] == [MSK1, MSK2]
    assert (got.msks[0].mtk_id_first, got.msks[0].mtk_id_last) == (1, 144)
    assert got.timestamp.value == 42 and got.csb_id == 0xA1B2C3D4 and got.v
    assert (got.idi, got.idr) == (MUK_ID.idi, MUK_ID.idr)
    assert MSK1.hex() not in repr(got)


def test_msk_message_rejects_wrong_key_and_ids() -> None:
    data = _msk_msg()
    with pytest.raises(AuthError):
        M.check_msk_message(data, bytes(32))
    with pytest.raises(AuthError):
        M.check_msk_message(data, MUK, expected_muk_id=MukId.of("bmsc.home1.net", "other@bsf"))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_is_rejected(pos: int, delta: int) -> None:
    data = bytearray(_msk_msg())
    i = pos % len(data)
    data[i] = (data[i] + delta) % 256
    with pytest.raises((DecodeError, AuthError)):
        M.check_msk_message(bytes(data), MUK, expected_muk_id=MUK_ID)


def test_random_input_raises_only_decode_or_auth_errors() -> None:
    rnd = random.Random(7)
    for _ in range(300):
        blob = rnd.randbytes(rnd.randrange(0, 120))
        for fn in (
            lambda b: M.check_msk_message(b, MUK),
            lambda b: M.check_mtk_message(b, MSK1),
        ):
            with pytest.raises((DecodeError, AuthError)):
                fn(blob)


def test_mtk_message_layout_and_check() -> None:
    mtk = M.MtkKey(REF1, 3, bytes(range(50, 66)), bytes(range(70, 84)))
    data = M.build_mtk_message(mtk, MSK1, 9, csb_id=0x01020304, rand=RAND)
    assert data[:10] == bytes.fromhex("01001500010203040001")
    msg = decode_message(data)
    kinds = [type(p).__name__ for p in msg.payloads]
    assert kinds == ["KeyIdExtension", "Timestamp", "Rand", "Kemac"]
    ext = msg.payloads[0]
    assert isinstance(ext, KeyIdExtension)
    assert (ext.get(0), ext.get(1), ext.get(2)) == (KD, REF1.msk_id.to_bytes(), b"\x00\x03")
    mki = srtp_mki(REF1.msk_id, 3)
    assert _decrypt(data, MSK1) == (
        bytes.fromhex("00310010")
        + mtk.key
        + b"\x00\x0e"
        + mtk.salt  # type: ignore[operator]
        + b"\x06"
        + mki
    )
    got = M.check_mtk_message(data, MSK1)
    assert got.mtk == mtk and got.counter == 9 and got.csb_id == 0x01020304
    with pytest.raises(AuthError):
        M.check_mtk_message(data, MSK2)
    no_salt = M.MtkKey(REF1, 4, bytes(16))
    assert (
        M.check_mtk_message(M.build_mtk_message(no_salt, MSK1, 10, csb_id=1, rand=RAND), MSK1).mtk
        == no_salt
    )


def test_mtk_message_with_foreign_mki_rejected() -> None:
    # A correctly MACed message whose key validity names another MTK ID than its EXT
    ext = key_id_extension(KeyRef(KD, (REF1.msk_id,), 3))
    kd = KeyData(KeyDataType.TEK, bytes(16), kv_data=srtp_mki(REF1.msk_id, 4))
    data = build_psk_message(
        Header(DataType.PSK_INIT, 5), [ext, Timestamp(TsType.COUNTER, 1), Rand(RAND)], [kd], MSK1
    )
    with pytest.raises(InvalidValueError):
        M.check_mtk_message(data, MSK1)


def test_verification_round_trip_and_rejections() -> None:
    data = _msk_msg()
    got = M.check_msk_message(data, MUK)
    ver = M.build_msk_verification(got, MUK, MUK_ID)
    vmsg = decode_message(ver)
    assert vmsg.header.data_type == DataType.PSK_VERIFY and vmsg.header.csb_id == 0xA1B2C3D4
    assert [type(p).__name__ for p in vmsg.payloads] == ["Timestamp", "IdPayload", "Verification"]
    # V MAC = HMAC(auth_key, msg || IDi || IDr || T as carried (4-byte COUNTER))
    auth = derive_transport_keys(MUK, 0xA1B2C3D4, RAND).auth_key
    expect = hmac_sha1(auth, ver[:-20] + MUK_ID.idi + MUK_ID.idr + (42).to_bytes(4, "big"))
    assert ver[-20:] == expect
    M.check_msk_verification(ver, data, MUK, MUK_ID)
    with pytest.raises(AuthError):
        M.check_msk_verification(ver, data, bytes(32), MUK_ID)
    with pytest.raises(AuthError):
        M.check_msk_verification(ver[:-1] + bytes([ver[-1] ^ 1]), data, MUK, MUK_ID)
    with pytest.raises(AuthError):
        M.check_msk_verification(ver, _other_csb(), MUK, MUK_ID)


def _other_csb() -> bytes:
    return M.build_msk_message(
        [M.MskKey(REF1, MSK1)], MUK, MUK_ID, Timestamp(TsType.COUNTER, 42), csb_id=7, rand=RAND
    )
