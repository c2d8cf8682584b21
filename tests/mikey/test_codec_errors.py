"""Each strict decoding rule raises its exact error class at the exact offset; the lenient
options relax only what they name; the encoder refuses values that do not fit."""

from __future__ import annotations

import pytest

from mbmsec.errors import (
    BadLengthError,
    ConfigError,
    DecodeError,
    InvalidValueError,
    OversizeError,
    TooManyPayloadsError,
    TrailingDataError,
    TruncatedError,
    UnknownPayloadError,
    UnsupportedVersionError,
)
from mbmsec.mikey.codec import (
    DecodeOptions,
    decode_key_data,
    decode_message,
    encode_key_data,
    encode_message,
)
from mbmsec.mikey.constants import (
    CsIdMapType,
    DataType,
    DhGroup,
    ErrorNo,
    ExtType,
    KeyDataType,
    MacAlg,
    TsType,
)
from mbmsec.mikey.payloads import (
    Chash,
    Dh,
    ErrorPayload,
    GeneralExtension,
    GenericIdEntry,
    Header,
    Kemac,
    KeyData,
    KeyIdEntry,
    KeyIdExtension,
    Pke,
    Rand,
    SecurityPolicy,
    Sign,
    SrtpIdEntry,
    Timestamp,
    Verification,
)

# spec-digest §5.2 I_MESSAGE. Offsets: HDR 0-9 (next payload at 2, map type at 9); T 10-15
# (TS type 11); RAND 16-33 (len 17); KEMAC 34-78 (Encr data len 36, MAC alg 58, MAC 59-78).
I_MESSAGE = bytes.fromhex(
    "010005801122334400010b02000000010110000102030405060708090a0b0c0d0e0f00010014"
    "3749766af07ac1b0c66cef5bbc3c1bb4b28760a2010b8bc7161bc6529e5a5a19f0dfc117270661828c"
)
HDR_EMPTY = bytes.fromhex("01000000112233440001")  # next payload patched per test


def patched(data: bytes, offset: int, value: int) -> bytes:
    b = bytearray(data)
    b[offset] = value
    return bytes(b)


def raises_at(exc: type[DecodeError], offset: int, data: bytes, **opts: object) -> DecodeError:
    with pytest.raises(exc) as info:
        decode_message(data, DecodeOptions(**opts) if opts else None)  # type: ignore[arg-type]
    assert info.value.offset == offset, str(info.value)
    assert isinstance(info.value, DecodeError)
    return info.value


def hdr_then(first: int, tail: bytes) -> bytes:
    hdr = patched(HDR_EMPTY, 2, first)
    if first == 10:  # SP needs a map other than the empty one (RFC 4563 §5): SRTP-ID, #CS 0
        hdr = patched(hdr, 9, CsIdMapType.SRTP_ID)
    return hdr + tail


# --- header ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 2, 0xFF])
def test_version(version: int) -> None:
    raises_at(UnsupportedVersionError, 0, patched(I_MESSAGE, 0, version))


@pytest.mark.parametrize("np", [13, 17, 19, 22, 26, 0xF1, 0xFF])
def test_unknown_next_payload_in_hdr(np: int) -> None:
    raises_at(UnknownPayloadError, 2, patched(I_MESSAGE, 2, np))


def test_unknown_next_payload_after_a_payload() -> None:
    raises_at(UnknownPayloadError, 10, patched(I_MESSAGE, 10, 0x0D))  # T's next payload byte
    raises_at(UnknownPayloadError, 16, patched(I_MESSAGE, 16, 0x63))  # RAND's


def test_key_data_outside_kemac() -> None:
    e = raises_at(UnknownPayloadError, 2, patched(I_MESSAGE, 2, 20))
    assert "outside" in e.reason


def test_unknown_cs_id_map_type() -> None:
    raises_at(InvalidValueError, 9, patched(I_MESSAGE, 9, 3))


def test_unknown_data_type_and_prf_decode_as_int() -> None:
    m = decode_message(patched(patched(I_MESSAGE, 1, 200), 3, 0x80 | 0x55))
    assert m.header.data_type == 200 and not isinstance(m.header.data_type, DataType)
    assert m.header.prf_func == 0x55 and m.header.v


def test_srtp_map_truncated() -> None:
    # #CS 2 with SRTP-ID map: entry 1 complete (offsets 10-18), entry 2 ends inside its ROC
    data = bytes.fromhex("010000001122334402000100000001000000000100000002000000")
    raises_at(TruncatedError, 24, data)


# --- payload rules ---------------------------------------------------------------------------


def test_unknown_ts_type() -> None:
    raises_at(InvalidValueError, 11, patched(I_MESSAGE, 11, 3))


def test_unknown_mac_alg() -> None:
    raises_at(InvalidValueError, 58, patched(I_MESSAGE, 58, 2))


def test_mac_shorter_than_its_algorithm() -> None:
    e = raises_at(BadLengthError, 59, I_MESSAGE[:-1])
    assert "20" in e.reason


def test_v_mac_missing() -> None:
    r = bytes.fromhex("010105001122334400010902000000010001")  # V with HMAC alg, no MAC
    raises_at(BadLengthError, 18, r)


def test_rand_len_zero() -> None:
    raises_at(BadLengthError, 11, hdr_then(11, bytes.fromhex("0000")))


def test_encr_data_len_overruns() -> None:
    raises_at(TruncatedError, 38, patched(patched(I_MESSAGE, 36, 0xFF), 37, 0xFF))


def test_unknown_dh_group_and_hash_function() -> None:
    raises_at(InvalidValueError, 11, hdr_then(3, bytes.fromhex("0003") + bytes(200)))
    raises_at(InvalidValueError, 11, hdr_then(8, bytes.fromhex("0002") + bytes(20)))


def test_dh_unknown_kv_type() -> None:
    body = bytes([0, DhGroup.OAKLEY_1]) + bytes(96) + b"\x03"
    raises_at(InvalidValueError, 10 + 2 + 96, hdr_then(3, body))


def test_sp_parameter_overruns_its_region() -> None:
    # SP param length 3, but the parameter claims 5 value bytes
    body = bytes.fromhex("00010000030005") + bytes(10)
    raises_at(TruncatedError, 17, hdr_then(10, body))


def test_sp_region_longer_than_message() -> None:
    raises_at(TruncatedError, 15, hdr_then(10, bytes.fromhex("0001000010") + b"\x00\x01"))


def test_key_id_entry_overruns_extension() -> None:
    # EXT type 3 length 3: entry Key ID Length 4 does not fit
    body = bytes.fromhex("000300030104") + bytes(4)
    raises_at(TruncatedError, 16, hdr_then(21, body))


def test_sign_must_be_last() -> None:
    body = bytes.fromhex("0002") + b"\xaa\xbb"
    assert isinstance(decode_message(hdr_then(4, body)).payloads[-1], Sign)
    raises_at(TrailingDataError, 14, hdr_then(4, body + b"\x00"))


def test_trailing_data_and_lenient_padding() -> None:
    raises_at(TrailingDataError, 79, I_MESSAGE + b"\x00")
    m = decode_message(I_MESSAGE + b"\x00", DecodeOptions(lenient_trailing_padding=True))
    assert m.padding == 1 and m.mac_offset == 59 and m.raw == I_MESSAGE + b"\x00"
    assert m.mac_input == I_MESSAGE[:59]
    raises_at(TrailingDataError, 79, I_MESSAGE + b"\x01", lenient_trailing_padding=True)
    raises_at(TrailingDataError, 79, I_MESSAGE + b"\x00\x00", lenient_trailing_padding=True)


def test_too_many_payloads() -> None:
    errs = [ErrorPayload(ErrorNo.UNSPECIFIED)] * 33
    data = encode_message(Header(DataType.ERROR, 1), errs)
    raises_at(TooManyPayloadsError, 10 + 32 * 4, data)
    assert len(decode_message(data, DecodeOptions(max_payloads=33)).payloads) == 33
    raises_at(TooManyPayloadsError, 10 + 4 * 4, data, max_payloads=4)


def test_oversize() -> None:
    big = encode_message(Header(DataType.ERROR, 1), [Sign(0, bytes(4000))])
    assert len(big) > 4000
    decode_message(big)
    raises_at(OversizeError, 1000, big, max_message_size=1000)
    raises_at(OversizeError, 4096, big + bytes(100))


def test_empty_input() -> None:
    raises_at(TruncatedError, 0, b"")


# --- key data chain --------------------------------------------------------------------------


def test_key_data_rules() -> None:
    good = encode_key_data([KeyData(KeyDataType.TEK, b"\x01" * 16)])
    assert decode_key_data(good) == (KeyData(KeyDataType.TEK, b"\x01" * 16),)
    assert decode_key_data(b"") == ()
    with pytest.raises(InvalidValueError) as e1:
        decode_key_data(patched(good, 1, 0x40), base_offset=100)  # Type 4
    assert e1.value.offset == 101
    with pytest.raises(InvalidValueError) as e2:
        decode_key_data(patched(good, 1, 0x23))  # KV 3
    assert e2.value.offset == 1
    with pytest.raises(BadLengthError) as e3:
        decode_key_data(bytes.fromhex("00200000"))  # Key data len 0
    assert e3.value.offset == 2
    with pytest.raises(UnknownPayloadError) as e4:
        decode_key_data(patched(good, 0, 5))  # next payload T inside the chain
    assert e4.value.offset == 0
    with pytest.raises(TrailingDataError) as e5:
        decode_key_data(good + b"\x00")
    assert e5.value.offset == len(good)
    assert decode_key_data(good + b"\x00" * 7, max_zero_padding=7)[0].key == b"\x01" * 16
    with pytest.raises(TrailingDataError):
        decode_key_data(good + b"\x00" * 8, max_zero_padding=7)
    with pytest.raises(TrailingDataError):
        decode_key_data(good + b"\x00\x01", max_zero_padding=7)
    chain = encode_key_data([KeyData(KeyDataType.TGK, b"k")] * 5)
    with pytest.raises(TooManyPayloadsError):
        decode_key_data(chain, DecodeOptions(max_payloads=4))


def test_lenient_key_salt_concat_only_for_tek_30_or_46() -> None:
    opts = DecodeOptions(lenient_key_salt_concat=True)
    for t, n, split in [
        (KeyDataType.TEK, 30, True),
        (KeyDataType.TEK, 46, True),
        (KeyDataType.TEK, 16, False),
        (KeyDataType.TGK, 30, False),
    ]:
        raw = encode_key_data([KeyData(t, bytes(range(n)))])
        (kd,) = decode_key_data(raw, opts)
        assert kd.salt_concat is split
        if split:
            assert kd.salt == bytes(range(n))[-14:] and len(kd.key) == n - 14
        assert encode_key_data([kd]) == raw


# --- unknown values of non-structural fields keep their int ------------------------------------


def test_unknown_non_structural_values_round_trip() -> None:
    payloads = [
        Kemac(9, b"x", MacAlg.NULL, b""),
        Pke(3, b"env"),
        ErrorPayload(99, 0xBEEF),
        GeneralExtension(200, b"vendor"),
        KeyIdExtension((KeyIdEntry(250, b"\x01"),)),
        SecurityPolicy(1, 7, ((99, b""),)),
    ]
    raw = encode_message(Header(0xF5, 5, cs_id_map_type=CsIdMapType.SRTP_ID), payloads)
    m = decode_message(raw)
    assert m.payloads == tuple(payloads) and m.header.data_type == 0xF5


# --- RFC 4563 §5: no SP payload with the empty CS ID map ----------------------------------------


def test_sp_with_empty_map_is_refused_unless_lenient() -> None:
    sp = SecurityPolicy(0, 0, ((0, b"\x01"),))
    t = Timestamp(TsType.COUNTER, 1)
    for map_type in (CsIdMapType.SRTP_ID, CsIdMapType.GENERIC_ID):
        ok = encode_message(Header(DataType.PSK_INIT, 1, cs_id_map_type=map_type), [t, sp])
        assert decode_message(ok).payloads == (t, sp)
    empty = Header(DataType.PSK_INIT, 1, cs_id_map_type=CsIdMapType.EMPTY)
    with pytest.raises(ConfigError):
        encode_message(empty, [t, sp])
    raw = encode_message(empty, [t, sp], allow_empty_map_sp=True)
    assert raw == ok[:9] + b"\x01" + ok[10:]  # only the map type byte differs
    # HDR 0-9, T 10-15, SP at 16: the error names the SP payload's offset
    err = raises_at(InvalidValueError, 16, raw)
    assert "empty map" in str(err)
    raises_at(InvalidValueError, 10, encode_message(empty, [sp], allow_empty_map_sp=True))
    m = decode_message(raw, DecodeOptions(lenient_empty_map_sp=True))
    assert m.payloads == (t, sp)
    assert encode_message(m.header, m.payloads, allow_empty_map_sp=True) == raw
    # without SP the empty map is fine (the MBMS profile's shape)
    assert decode_message(encode_message(empty, [t])).payloads == (t,)


# --- encoder refusals (local misuse -> ConfigError) ---------------------------------------------


@pytest.mark.parametrize(
    ("header", "payloads"),
    [
        (Header(DataType.PSK_INIT, 1), [Rand(b"")]),
        (Header(DataType.PSK_INIT, 1), [Rand(bytes(256))]),
        (Header(DataType.PSK_INIT, 1), [Kemac(1, b"", MacAlg.HMAC_SHA_1_160, b"short")]),
        (Header(DataType.PSK_INIT, 1), [Verification(MacAlg.NULL, b"x")]),
        (Header(DataType.PSK_INIT, 1), [Sign(0, b""), Rand(b"r")]),
        (Header(DataType.PSK_INIT, 1), [Sign(0, bytes(4096))]),
        (Header(DataType.PSK_INIT, 1), [Dh(DhGroup.OAKLEY_1, bytes(95))]),
        (Header(DataType.PSK_INIT, 1), [Chash(0, bytes(16))]),
        (Header(DataType.PSK_INIT, 1), [Pke(4, b"")]),
        (Header(DataType.PSK_INIT, 1), [GeneralExtension(ExtType.KEY_ID, b"")]),
        (Header(DataType.PSK_INIT, 1), [Timestamp(TsType.COUNTER, 2**32)]),
        (Header(DataType.PSK_INIT, 1), [SecurityPolicy(1, 0, ((0, bytes(256)),))]),
        (Header(DataType.PSK_INIT, 2**32), []),
        (Header(DataType.PSK_INIT, 1, prf_func=128), []),
        (Header(DataType.PSK_INIT, 1, cs_map=(SrtpIdEntry(1, 2, 3),)), []),
        (
            Header(
                DataType.PSK_INIT,
                1,
                cs_id_map_type=CsIdMapType.SRTP_ID,
                cs_map=(GenericIdEntry(1),),
            ),
            [],
        ),
        (Header(DataType.PSK_INIT, 1), [object()]),
    ],
)
def test_encoder_refuses(header: Header, payloads: list[object]) -> None:
    with pytest.raises(ConfigError):
        encode_message(header, payloads)  # type: ignore[arg-type]


def test_without_final_mac_needs_kemac_or_v() -> None:
    with pytest.raises(ConfigError):
        encode_message(Header(0, 1), [Rand(b"r")], without_final_mac=True)


def test_key_data_consistency() -> None:
    with pytest.raises(ConfigError):
        KeyData(KeyDataType.TEK_SALT, b"k")
    with pytest.raises(ConfigError):
        KeyData(KeyDataType.TEK, b"k", b"salt")
    with pytest.raises(ConfigError):
        KeyData(KeyDataType.TEK_SALT, b"k", b"s", salt_concat=True)
    with pytest.raises(ConfigError):
        encode_key_data([KeyData(KeyDataType.TGK, b"")])
    with pytest.raises(ConfigError):
        encode_key_data([KeyData(KeyDataType.TGK, b"k", kv_data=bytes(256))])


def test_reprs_hide_key_material() -> None:
    kd = KeyData(KeyDataType.TEK_SALT, b"SECRETKEY", b"SECRETSALT")
    kemac = Kemac(1, b"SECRETDATA", MacAlg.NULL, b"")
    for obj in (kd, kemac, decode_message(I_MESSAGE)):
        assert "SECRET" not in repr(obj)
    assert "3749766a" not in repr(decode_message(I_MESSAGE)).replace("\\x", "")
