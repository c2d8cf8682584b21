"""Golden MIKEY messages (tests/vectors/mikey_golden_*.txt), checked both ways: decoding asserts
every field, encoding the decoded payloads reproduces the bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mbmsec.mikey.codec import Message, decode_key_data, decode_message, encode_message
from mbmsec.mikey.constants import (
    CertType,
    CsIdMapType,
    DataType,
    DhGroup,
    EncrAlg,
    ErrorNo,
    HashFunc,
    IdType,
    KeyDataType,
    KeyIdType,
    KvType,
    MacAlg,
    PkeCache,
    PrfFunc,
    ProtType,
    SrtpParam,
    SType,
    TsType,
)
from mbmsec.mikey.payloads import (
    Cert,
    Chash,
    Dh,
    ErrorPayload,
    GenericIdEntry,
    IdPayload,
    Kemac,
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

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
R16 = bytes(range(16))
BTID = b"I1U8vpY3qJ0hiuZNrke/NQ==@bsf.home1.net"


def load_golden(name: str) -> bytes:
    """Annotated hex: one field per line, '#' starts a comment, blank lines ignored."""
    text = (VECTORS / f"mikey_golden_{name}.txt").read_text()
    return bytes.fromhex("".join(line.split("#", 1)[0].strip() for line in text.splitlines()))


ALL = sorted(p.stem.removeprefix("mikey_golden_") for p in VECTORS.glob("mikey_golden_*.txt"))


def test_all_golden_files_found() -> None:
    assert len(ALL) >= 9


@pytest.mark.parametrize("name", ALL)
def test_golden_round_trip(name: str) -> None:
    raw = load_golden(name)
    m = decode_message(raw)
    assert m.raw == raw
    assert encode_message(m.header, m.payloads) == raw
    # payload offsets point at each payload's first byte, in order
    assert list(m.payload_offsets) == sorted(m.payload_offsets)
    assert m.payload_offsets[0] == 10 + _map_len(m)
    if m.mac_offset is not None:
        assert raw[m.mac_offset :] == m.payloads[-1].mac  # type: ignore[union-attr]
        assert encode_message(m.header, m.payloads, without_final_mac=True) == m.mac_input


def _map_len(m: Message) -> int:
    if m.header.cs_id_map_type == CsIdMapType.SRTP_ID:
        return 9 * len(m.header.cs_map)
    if m.header.cs_id_map_type == CsIdMapType.GENERIC_ID:
        return sum(
            3 + len(e.policies) + 2 + len(e.session_data) + 1 + len(e.spi)
            for e in m.header.cs_map
            if isinstance(e, GenericIdEntry)
        )
    return 0


def test_psk_i_message() -> None:
    raw = load_golden("psk_i_message")
    m = decode_message(raw)
    h = m.header
    assert (h.version, h.data_type, h.v, h.prf_func) == (
        1,
        DataType.PSK_INIT,
        True,
        PrfFunc.MIKEY_1,
    )
    assert h.csb_id == 0x11223344
    assert (h.cs_id_map_type, h.cs_count, h.cs_map) == (CsIdMapType.EMPTY, 0, ())
    t, rand, kemac = m.payloads
    assert t == Timestamp(TsType.COUNTER, 1)
    assert t.value_bytes == b"\x00\x00\x00\x01"
    assert rand == Rand(R16)
    assert isinstance(kemac, Kemac)
    assert kemac.encr_alg == EncrAlg.AES_CM_128
    assert kemac.encr_data.hex() == "3749766af07ac1b0c66cef5bbc3c1bb4b28760a2"
    assert kemac.mac_alg == MacAlg.HMAC_SHA_1_160
    assert kemac.mac.hex() == "0b8bc7161bc6529e5a5a19f0dfc117270661828c"
    assert m.mac_offset == len(raw) - 20
    assert m.payload_offsets == (10, 16, 34)


def test_psk_r_message() -> None:
    m = decode_message(load_golden("psk_r_message"))
    assert m.header.data_type == DataType.PSK_VERIFY and not m.header.v
    assert m.header.csb_id == 0x11223344
    assert m.payloads[0] == Timestamp(TsType.COUNTER, 1)
    v = m.payloads[1]
    assert isinstance(v, Verification) and v.auth_alg == MacAlg.HMAC_SHA_1_160
    assert v.mac.hex() == "a061a2261a028b8d326e9355c3126d4e9a3839a1"
    assert m.mac_input.hex() == "010105001122334400010902000000010001"


def test_srtp_id_map_with_sp() -> None:
    m = decode_message(load_golden("srtp_sp"))
    h = m.header
    assert h.cs_id_map_type == CsIdMapType.SRTP_ID and h.cs_count == 2
    assert h.cs_map == (SrtpIdEntry(1, 0xDEADBEEF, 0), SrtpIdEntry(1, 0xCAFEBABE, 5))
    t, rand, idi, idr, sp, kemac = m.payloads
    assert t == Timestamp(TsType.NTP_UTC, 0xE7A1B2C340000000)
    assert rand == Rand(R16)
    assert idi == IdPayload(IdType.URI, b"sip:alice@home1.net")
    assert idr == IdPayload(IdType.URI, b"sip:bob@home1.net")
    assert sp == SecurityPolicy(
        1,
        ProtType.SRTP,
        ((0, b"\x01"), (1, b"\x10"), (2, b"\x01"), (4, b"\x0e"), (11, b"\x0a")),
    )
    assert isinstance(sp, SecurityPolicy)
    assert sp.param(SrtpParam.AUTH_TAG_LEN) == b"\x0a" and sp.param(SrtpParam.FEC_ORDER) is None
    assert isinstance(kemac, Kemac) and kemac.encr_alg == EncrAlg.NULL
    (kd,) = decode_key_data(kemac.encr_data)
    assert kd.type == KeyDataType.TEK_SALT and kd.kv_type == KvType.SPI
    assert kd.key == bytes.fromhex("00112233445566778899aabbccddeeff")
    assert kd.salt == bytes.fromhex("0102030405060708090a0b0c0d0e")
    assert kd.kv_data == b"\x00\x00\x00\x01"


def test_error_message() -> None:
    m = decode_message(load_golden("error"))
    assert m.header.data_type == DataType.ERROR
    assert m.payloads[0] == Timestamp(TsType.COUNTER, 2)
    assert m.find_all(ErrorPayload) == (
        ErrorPayload(ErrorNo.INVALID_TS),
        ErrorPayload(ErrorNo.INVALID_ID),
    )
    assert isinstance(m.payloads[-1], Verification)


def test_key_id_extension() -> None:
    m = decode_message(load_golden("key_id"))
    ext = m.payloads[0]
    assert ext == KeyIdExtension(
        (
            KeyIdEntry(KeyIdType.MBMS_KEY_DOMAIN_ID, bytes.fromhex("32f410")),
            KeyIdEntry(KeyIdType.MBMS_MSK_ID, bytes.fromhex("00010002")),
        )
    )
    assert isinstance(ext, KeyIdExtension)
    assert ext.get(KeyIdType.MBMS_MSK_ID) == bytes.fromhex("00010002")
    assert ext.get(KeyIdType.MBMS_MTK_ID) is None
    assert m.find_all(IdPayload) == (
        IdPayload(IdType.NAI, b"bmsc.home1.net"),
        IdPayload(IdType.NAI, BTID),
    )
    assert m.find(Timestamp) == Timestamp(TsType.COUNTER, 7)
    kemac = m.find(Kemac)
    assert kemac is not None and len(kemac.encr_data) == 26


def test_generic_id_map() -> None:
    m = decode_message(load_golden("generic_id"))
    h = m.header
    assert h.prf_func == PrfFunc.HMAC_SHA_256 and h.cs_id_map_type == CsIdMapType.GENERIC_ID
    assert h.cs_map == (
        GenericIdEntry(1, ProtType.SRTP, True, b"\x07", bytes.fromhex("12345678"), b"\0\0\0\1"),
    )
    t, rand, sp, kemac = m.payloads
    assert t == Timestamp(TsType.NTP_UTC, 0xE7A1B2C300000000)
    assert rand == Rand(bytes(range(1, 9)))
    assert sp == SecurityPolicy(7, ProtType.SRTP, ((SrtpParam.SRTP_ENCRYPTION, b"\x00"),))
    assert isinstance(kemac, Kemac) and kemac.mac_alg == MacAlg.NULL and kemac.mac == b""
    (kd,) = decode_key_data(kemac.encr_data)
    assert kd.type == KeyDataType.TGK and kd.kv_data is None and kd.salt is None
    assert kd.key == bytes(range(15, -1, -1))
    assert m.mac_offset == len(m.raw)


def test_pk_shapes() -> None:
    raw = load_golden("pk_shapes")
    m = decode_message(raw)
    assert m.header.data_type == DataType.PK_INIT
    t, rand, cert, chash, kemac, pke, sign = m.payloads
    assert t == Timestamp(TsType.NTP, 0xE7A1B2C380000000)
    assert rand == Rand(bytes.fromhex("ffeeddccbbaa99887766554433221100"))
    assert cert == Cert(CertType.X509V3, bytes.fromhex("3003020101"))
    assert chash == Chash(HashFunc.SHA_1, b"\x11" * 20)
    assert kemac == Kemac(EncrAlg.AES_KW_128, b"\x22" * 24, MacAlg.HMAC_SHA_1_160, b"\x33" * 20)
    assert pke == Pke(PkeCache.CACHE, b"\x44" * 16)
    assert sign == Sign(SType.RSA_PKCS1_1_5, b"\x55" * 64)
    assert m.mac_offset is None and m.signature_offset == len(raw) - 64


def test_dh_shape() -> None:
    m = decode_message(load_golden("dh"))
    assert m.header.data_type == DataType.DH_INIT
    idp, dh, sign = m.payloads[2:]
    assert idp == IdPayload(IdType.BYTE_STRING, b"\xbe\xef")
    assert dh == Dh(DhGroup.OAKLEY_1, b"\x66" * 96, b"\xab\xcd")
    assert isinstance(dh, Dh) and dh.kv_type == KvType.SPI and dh.reserved == 0
    assert sign == Sign(SType.RSA_PSS, b"\x77" * 32)


def test_key_request() -> None:
    m = decode_message(load_golden("key_request"))
    assert m.header.data_type == DataType.PSK_KEY_REQUEST == 241
    assert [type(p).__name__ for p in m.payloads] == [
        "Timestamp",
        "Rand",
        "IdPayload",
        "KeyIdExtension",
        "Verification",
    ]
    assert m.payloads[2] == IdPayload(IdType.NAI, BTID)
