"""Tests for mbmsec.mbms.keys: identifiers, Key ID extension contents, MRK/MUK selection."""

from __future__ import annotations

import pytest

from mbmsec.errors import BadLengthError, ConfigError, DecodeError, InvalidValueError
from mbmsec.mbms import keys as K
from mbmsec.mikey.codec import decode_message, encode_message
from mbmsec.mikey.constants import DataType, KeyIdType
from mbmsec.mikey.payloads import Header, KeyIdEntry, KeyIdExtension


def test_key_domain_id_is_plmn_bcd() -> None:
    # TS 24.008 §10.5.1.3: MCC 262, MNC 01 -> 62 F2 10 ; MCC 310, MNC 260 -> 13 00 62
    assert K.key_domain_id("262", "01") == bytes.fromhex("62f210")
    assert K.key_domain_id("310", "260") == bytes.fromhex("130062")
    for mcc, mnc in [("26", "01"), ("262", "1"), ("26a", "01"), ("262", "0123")]:
        with pytest.raises(ConfigError):
            K.key_domain_id(mcc, mnc)


def test_msk_id_layout_and_bounds() -> None:
    m = K.MskId(0x0102, 0x0304)
    assert m.to_bytes() == bytes.fromhex("01020304")
    assert m.value == 0x01020304
    assert K.MskId.from_bytes(m.to_bytes()) == m
    assert K.MskId.from_int(0xFFFF0001) == K.MskId(0xFFFF, 1)
    assert str(m) == "0102:0304"
    with pytest.raises(BadLengthError):
        K.MskId.from_bytes(b"\x01\x02\x03")
    with pytest.raises(ConfigError):
        K.MskId(0x10000, 0)
    with pytest.raises(ConfigError):
        K.MskRef(b"\x00\x01", m)


def test_srtp_mki_round_trip() -> None:
    m = K.MskId(7, 9)
    mki = K.srtp_mki(m, 0x0A0B)
    assert mki == bytes.fromhex("000700090a0b")
    assert K.parse_srtp_mki(mki) == (m, 0x0A0B)
    with pytest.raises(BadLengthError):
        K.parse_srtp_mki(mki + b"\x00")
    with pytest.raises(ConfigError):
        K.srtp_mki(m, 0x10000)


def test_key_id_extension_bytes_and_round_trip() -> None:
    ref = K.KeyRef(bytes.fromhex("62f210"), (K.MskId(1, 2),), 5, "urn:svc:tv")
    ext = K.key_id_extension(ref)
    data = encode_message(Header(DataType.PSK_INIT, 1), [ext])
    # EXT: next 0, type 3, length, then type|len|value sub-payloads (RFC 4563 §4)
    sub = (
        bytes.fromhex("000362f210")
        + bytes.fromhex("010400010002")
        + bytes.fromhex("02020005")
        + bytes([241, 10])
        + b"urn:svc:tv"
    )
    assert data[10:] == bytes([0, 3]) + len(sub).to_bytes(2, "big") + sub
    decoded = decode_message(data).payloads[0]
    assert isinstance(decoded, KeyIdExtension)
    assert K.parse_key_id_extension(decoded) == ref


@pytest.mark.parametrize(
    ("entries", "exc"),
    [
        ((KeyIdEntry(KeyIdType.MBMS_KEY_DOMAIN_ID, b"\x00\x01"),), BadLengthError),
        ((KeyIdEntry(KeyIdType.MBMS_MSK_ID, b"\x00\x01"),), BadLengthError),
        ((KeyIdEntry(KeyIdType.MBMS_MTK_ID, b"\x00"),), BadLengthError),
        (
            (
                KeyIdEntry(KeyIdType.MBMS_MTK_ID, b"\x00\x01"),
                KeyIdEntry(KeyIdType.MBMS_MTK_ID, b"\x00\x02"),
            ),
            InvalidValueError,
        ),
        ((KeyIdEntry(200, b"x"),), InvalidValueError),
        ((KeyIdEntry(K.KEY_ID_TYPE_SERVICE_ID, b"\xff\xfe"),), InvalidValueError),
    ],
)
def test_parse_key_id_extension_rejects(entries: tuple[KeyIdEntry, ...], exc: type) -> None:
    with pytest.raises(exc) as info:
        K.parse_key_id_extension(KeyIdExtension(entries))
    assert isinstance(info.value, DecodeError)


def test_mbms_user_keys_gba_me_and_gba_u() -> None:
    ks_naf, ks_int = bytes(range(32)), bytes(range(32, 64))
    me = K.derive_mbms_user_keys(K.GbaMode.GBA_ME, ks_naf=ks_naf)
    assert (me.mrk, me.muk, me.conformant) == (ks_naf, ks_naf, False)
    u = K.derive_mbms_user_keys(K.GbaMode.GBA_U, ks_naf=ks_naf, ks_int_naf=ks_int)
    assert (u.mrk, u.muk, u.conformant) == (ks_naf, ks_int, True)
    assert ks_naf.hex() not in repr(u) and "mrk" not in repr(u)
    with pytest.raises(ConfigError):
        K.derive_mbms_user_keys(K.GbaMode.GBA_U, ks_naf=ks_naf)
    with pytest.raises(ConfigError):
        K.derive_mbms_user_keys(K.GbaMode.GBA_ME, ks_naf=ks_naf, ks_int_naf=ks_int)
    with pytest.raises(ConfigError):
        K.derive_mbms_user_keys(K.GbaMode.GBA_ME, ks_naf=ks_naf[:16])


def test_muk_id() -> None:
    m = K.MukId.of("bmsc.home1.net", "abc@bsf.home1.net")
    assert (m.idi, m.idr) == (b"bmsc.home1.net", b"abc@bsf.home1.net")
