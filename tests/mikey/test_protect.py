"""KEMAC protection, verification message and Error message (mbmsec.mikey.protect)."""

from __future__ import annotations

import hmac
from dataclasses import replace
from pathlib import Path

import pytest

from mbmsec.crypto import aes_kw_unwrap, aes_kw_unwrap_iv, aes_kw_wrap_iv
from mbmsec.errors import (
    AuthError,
    DecodeError,
    DecryptError,
    EncryptionNotSupportedError,
    MbmsecError,
    PrfNotSupportedError,
    UnsupportedAlgorithmError,
)
from mbmsec.mikey import protect
from mbmsec.mikey.codec import decode_message, encode_key_data, encode_message
from mbmsec.mikey.constants import (
    CsIdMapType,
    DataType,
    EncrAlg,
    ErrorNo,
    IdType,
    KeyDataType,
    MacAlg,
    PrfFunc,
    TsType,
)
from mbmsec.mikey.payloads import (
    Header,
    IdPayload,
    Kemac,
    KeyData,
    Rand,
    Timestamp,
    Verification,
)
from mbmsec.mikey.prf import Prf, derive_transport_keys

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
# spec-digest §5.2 / §5.3: Ks_NAF used as MUK (a 256-bit PSK)
PSK32 = bytes.fromhex("9e7f591d867c2c51bcf388beffa209771eed795d08db4a470895468faff293cb")
PSK16 = bytes(range(16))
R16 = bytes(range(16))
I_MESSAGE = bytes.fromhex(
    "010005801122334400010b02000000010110000102030405060708090a0b0c0d0e0f00010014"
    "3749766af07ac1b0c66cef5bbc3c1bb4b28760a2010b8bc7161bc6529e5a5a19f0dfc117270661828c"
)
R_MESSAGE = bytes.fromhex(
    "010105001122334400010902000000010001a061a2261a028b8d326e9355c3126d4e9a3839a1"
)


def load_golden(name: str) -> bytes:
    text = (VECTORS / f"mikey_golden_{name}.txt").read_text()
    return bytes.fromhex("".join(line.split("#", 1)[0].strip() for line in text.splitlines()))


def hdr(csb_id: int = 0x11223344, v: bool = True, prf: int = PrfFunc.MIKEY_1) -> Header:
    return Header(DataType.PSK_INIT, csb_id, v=v, prf_func=prf)


# --- spec-digest §5.2 [X] vectors ---------------------------------------------------------------


def test_digest_i_message_reproduced() -> None:
    out = protect.build_psk_message(
        hdr(),
        [Timestamp(TsType.COUNTER, 1), Rand(R16)],
        [KeyData(KeyDataType.TEK, b"\xaa" * 16)],
        PSK32,
    )
    assert out == I_MESSAGE
    assert out[-20:].hex() == "0b8bc7161bc6529e5a5a19f0dfc117270661828c"


def test_digest_i_message_verifies_and_decrypts() -> None:
    (kd,) = protect.verify_and_decrypt(decode_message(I_MESSAGE), PSK32)
    assert kd == KeyData(KeyDataType.TEK, b"\xaa" * 16)


def test_digest_r_message_reproduced_and_verified() -> None:
    i_msg = decode_message(I_MESSAGE)
    assert protect.build_verification(i_msg, PSK32) == R_MESSAGE
    protect.verify_verification(decode_message(R_MESSAGE), i_msg, PSK32)


def test_minisip_style_v_mac_is_rejected() -> None:
    # spec-digest §5.2: the V MAC with T_i padded to 8 bytes (minisip) differs from ours
    i_msg = decode_message(I_MESSAGE)
    other = R_MESSAGE[:-20] + bytes.fromhex("b3abbe8a127a5ec5c4b54ef49435235ecc9a11aa")
    with pytest.raises(AuthError):
        protect.verify_verification(decode_message(other), i_msg, PSK32)


# --- round trips --------------------------------------------------------------------------------

KEYS = [
    KeyData(KeyDataType.TGK, b"\x01" * 16, kv_data=(b"\x00\x01", b"\xff\xff")),
    KeyData(KeyDataType.TEK_SALT, b"\x02" * 16, b"\x03" * 14, kv_data=b"\x00\x00\x00\x07"),
    KeyData(KeyDataType.TEK, b"\x04" * 32),
]


@pytest.mark.parametrize("encr", list(EncrAlg))
@pytest.mark.parametrize("mac", list(MacAlg))
@pytest.mark.parametrize("psk", [PSK16, PSK32, bytes(range(40))], ids=["16", "32", "40"])
@pytest.mark.parametrize("n_keys", [1, 2, 3])
def test_build_verify_round_trip(encr: EncrAlg, mac: MacAlg, psk: bytes, n_keys: int) -> None:
    before = [Timestamp(TsType.NTP_UTC, 0xE7A1B2C312345678), Rand(bytes(range(32)))]
    out = protect.build_psk_message(hdr(0xCAFE), before, KEYS[:n_keys], psk, encr, mac)
    m = decode_message(out)
    kemac = m.payloads[-1]
    assert isinstance(kemac, Kemac) and kemac.encr_alg == encr and kemac.mac_alg == mac
    if encr != EncrAlg.NULL:
        assert encode_key_data(KEYS[:n_keys]) not in kemac.encr_data
    got = protect.verify_and_decrypt(m, psk, allow_null_mac=True, allow_null_encr=True)
    assert got == tuple(KEYS[:n_keys])
    # the precomputed PRF state gives the same result
    got2 = protect.verify_and_decrypt(m, Prf(psk), allow_null_mac=True, allow_null_encr=True)
    assert got2 == got


def test_prf_hmac_sha256_round_trip() -> None:
    h = hdr(prf=PrfFunc.HMAC_SHA_256)
    out = protect.build_psk_message(h, [Timestamp(TsType.COUNTER, 5), Rand(R16)], KEYS, PSK32)
    m = decode_message(out)
    assert protect.verify_and_decrypt(m, PSK32) == tuple(KEYS)
    assert protect.verify_and_decrypt(m, Prf(PSK32, PrfFunc.HMAC_SHA_256)) == tuple(KEYS)
    # a key state prepared for MIKEY-1 is refused for a message asking for HMAC-SHA-256
    with pytest.raises(PrfNotSupportedError):
        protect.verify_and_decrypt(m, Prf(PSK32))
    # and the MIKEY-1 keys would not verify it anyway
    m1 = decode_message(out[:3] + b"\x80" + out[4:])
    with pytest.raises(AuthError):
        protect.verify_and_decrypt(m1, PSK32)


def test_update_message_without_rand_uses_given_rand() -> None:
    out = protect.build_psk_message(
        hdr(), [Timestamp(TsType.COUNTER, 9)], KEYS[:1], PSK32, rand=R16
    )
    m = decode_message(out)
    assert m.find(Rand) is None
    with pytest.raises(DecodeError):
        protect.verify_and_decrypt(m, PSK32)
    assert protect.verify_and_decrypt(m, PSK32, rand=R16) == (KEYS[0],)
    with pytest.raises(AuthError):
        protect.verify_and_decrypt(m, PSK32, rand=bytes(16))


def test_precomputed_transport_keys() -> None:
    keys = derive_transport_keys(PSK32, 0x11223344, R16)
    m = decode_message(I_MESSAGE)
    assert protect.verify_and_decrypt(m, b"unused", keys=keys) == protect.verify_and_decrypt(
        m, PSK32
    )
    assert protect.transport_keys(PSK32, m.header, R16) == keys


# --- policy: NULL algorithms --------------------------------------------------------------------


def test_null_mac_and_null_encryption_refused_by_default() -> None:
    before = [Timestamp(TsType.COUNTER, 1), Rand(R16)]
    null_mac = protect.build_psk_message(hdr(), before, KEYS, PSK32, mac_alg=MacAlg.NULL)
    with pytest.raises(AuthError):
        protect.verify_and_decrypt(decode_message(null_mac), PSK32)
    null_enc = protect.build_psk_message(hdr(), before, KEYS, PSK32, encr_alg=EncrAlg.NULL)
    with pytest.raises(EncryptionNotSupportedError):
        protect.verify_and_decrypt(decode_message(null_enc), PSK32)


def test_unknown_encr_alg_after_valid_mac() -> None:
    # a correctly MACed KEMAC naming Encr alg 9: the MAC passes, then the algorithm is refused
    h = hdr()
    before = [Timestamp(TsType.COUNTER, 1), Rand(R16)]
    keys = derive_transport_keys(PSK32, h.csb_id, R16)
    body = encode_message(
        h, [*before, Kemac(9, b"\x00" * 20, MacAlg.HMAC_SHA_1_160, b"")], without_final_mac=True
    )
    out = body + hmac.digest(keys.auth_key, body, "sha1")
    with pytest.raises(EncryptionNotSupportedError):
        protect.verify_and_decrypt(decode_message(out), PSK32)


# --- tampering ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encr", [EncrAlg.AES_CM_128, EncrAlg.AES_KW_128])
def test_tampered_byte_anywhere_is_rejected(encr: EncrAlg) -> None:
    before = [Timestamp(TsType.COUNTER, 3), Rand(R16), IdPayload(IdType.NAI, b"ue@home1.net")]
    out = protect.build_psk_message(hdr(), before, KEYS, PSK32, encr)
    for i in range(len(out)):
        for flip in (0x01, 0x80):
            bad = bytearray(out)
            bad[i] ^= flip
            try:
                m = decode_message(bytes(bad))
            except DecodeError:
                continue
            with pytest.raises(MbmsecError) as info:
                protect.verify_and_decrypt(m, PSK32)
            # nothing is decrypted: the failure is the MAC check, or a refusal before it
            assert not isinstance(info.value, DecryptError)
            assert isinstance(info.value, AuthError | UnsupportedAlgorithmError | DecodeError)
            if i > 3:  # past version/data type/next/V-PRF: header keys and algorithms unchanged
                assert isinstance(info.value, AuthError | DecodeError), i


def test_tampered_ciphertext_without_mac_is_decrypt_error() -> None:
    before = [Timestamp(TsType.COUNTER, 1), Rand(R16)]
    out = protect.build_psk_message(hdr(), before, KEYS[:1], PSK32, mac_alg=MacAlg.NULL)
    m = decode_message(out)
    kemac = m.payloads[-1]
    assert isinstance(kemac, Kemac)
    # flip the key data Type nibble (byte 1 of the plaintext) to an unknown type
    start = m.mac_offset - 1 - len(kemac.encr_data)  # type: ignore[operator]
    bad = bytearray(out)
    bad[start + 1] ^= 0xF0
    with pytest.raises(DecryptError):
        protect.verify_and_decrypt(decode_message(bytes(bad)), PSK32, allow_null_mac=True)
    kw = protect.build_psk_message(hdr(), before, KEYS[:1], PSK32, EncrAlg.AES_KW_128, MacAlg.NULL)
    bad = bytearray(kw)
    bad[-2] ^= 1  # last ciphertext byte (MAC alg byte is last)
    with pytest.raises(DecryptError):
        protect.verify_and_decrypt(decode_message(bytes(bad)), PSK32, allow_null_mac=True)


def test_wrong_psk_is_auth_error() -> None:
    with pytest.raises(AuthError):
        protect.verify_and_decrypt(decode_message(I_MESSAGE), PSK16)


def test_message_not_ending_in_kemac() -> None:
    with pytest.raises(DecodeError):
        protect.verify_and_decrypt(decode_message(R_MESSAGE), PSK32)


# --- AES key wrap (RFC 3830 §4.2.3: RFC 3394 with IV = the 64-bit salt S) -----------------------


def test_aes_kw_kemac_uses_salt_iv_and_zero_padding() -> None:
    before = [Timestamp(TsType.COUNTER, 1), Rand(R16)]
    out = protect.build_psk_message(hdr(), before, KEYS[:1], PSK32, EncrAlg.AES_KW_128)
    m = decode_message(out)
    kemac = m.payloads[-1]
    assert isinstance(kemac, Kemac)
    keys = derive_transport_keys(PSK32, 0x11223344, R16)
    # the IV is S, the first 64 bits of the salt PRF output, not A6A6...: the default unwrap fails
    with pytest.raises(DecryptError):
        aes_kw_unwrap(keys.encr_key, kemac.encr_data)
    pt = aes_kw_unwrap_iv(keys.encr_key, keys.salt_key[:8], kemac.encr_data)
    chain = encode_key_data(KEYS[:1])  # 4 + 16 + 6 = 26 bytes -> padded to 32
    assert pt == chain + bytes(32 - len(chain))
    assert kemac.encr_data == aes_kw_wrap_iv(keys.encr_key, keys.salt_key[:8], pt)


@pytest.mark.parametrize("encr", list(EncrAlg))
def test_kemac_without_key_data_round_trips(encr: EncrAlg) -> None:
    # RFC 3830 §6.2: an update message may carry an empty Key data chain
    before = [Timestamp(TsType.COUNTER, 2), Rand(R16)]
    out = protect.build_psk_message(hdr(), before, [], PSK32, encr)
    kemac = decode_message(out).payloads[-1]
    assert isinstance(kemac, Kemac) and kemac.encr_data == b""
    got = protect.verify_and_decrypt(decode_message(out), PSK32, allow_null_encr=True)
    assert got == ()


@pytest.mark.parametrize("key_len", [1, 2, 3, 4, 5, 12, 13])
def test_aes_kw_short_chain_padded_to_16_bytes_round_trips(key_len: int) -> None:
    # a chain shorter than 9 bytes is padded to 16 (RFC 3394 needs n >= 2): up to 11 zero bytes
    kd = (KeyData(KeyDataType.TGK, bytes(range(1, key_len + 1))),)
    before = [Timestamp(TsType.COUNTER, 4), Rand(R16)]
    out = protect.build_psk_message(hdr(), before, kd, PSK32, EncrAlg.AES_KW_128)
    assert protect.verify_and_decrypt(decode_message(out), PSK32) == kd


# --- verification message ------------------------------------------------------------------------


def _i_with_ids() -> bytes:
    before = [
        Timestamp(TsType.NTP_UTC, 0xE7A1B2C300000000),
        Rand(R16),
        IdPayload(IdType.NAI, b"bmsc.home1.net"),
        IdPayload(IdType.NAI, b"btid@bsf.home1.net"),
    ]
    return protect.build_psk_message(hdr(0x5555), before, KEYS[:1], PSK32)


def test_verification_with_ids() -> None:
    i_msg = decode_message(_i_with_ids())
    r = protect.build_verification(i_msg, PSK32, idr=IdPayload(IdType.NAI, b"btid@bsf.home1.net"))
    r_msg = decode_message(r)
    assert r_msg.header == replace(i_msg.header, data_type=DataType.PSK_VERIFY, v=False)
    assert r_msg.payloads[0] == i_msg.find(Timestamp)
    assert isinstance(r_msg.payloads[1], IdPayload)
    protect.verify_verification(r_msg, i_msg, PSK32)
    # explicit identities equal to the carried ones give the same MAC
    protect.verify_verification(
        r_msg, i_msg, PSK32, id_i=b"bmsc.home1.net", id_r=b"btid@bsf.home1.net"
    )
    with pytest.raises(AuthError):
        protect.verify_verification(r_msg, i_msg, PSK32, id_i=b"other.home1.net")
    # the MAC input is R up to Auth alg || ID_i || ID_r || T_i (8 bytes NTP-UTC)
    keys = derive_transport_keys(PSK32, 0x5555, R16)
    expect = hmac.digest(
        keys.auth_key,
        r[:-20] + b"bmsc.home1.net" + b"btid@bsf.home1.net" + bytes.fromhex("e7a1b2c300000000"),
        "sha1",
    )
    assert r[-20:] == expect


def test_verification_without_idr_uses_i_message_idr() -> None:
    i_msg = decode_message(_i_with_ids())
    r = protect.build_verification(i_msg, PSK32)
    protect.verify_verification(decode_message(r), i_msg, PSK32, id_r=b"btid@bsf.home1.net")
    with pytest.raises(AuthError):
        protect.verify_verification(decode_message(r), i_msg, PSK32, id_r=b"")


def test_verification_fresh_t_still_checked_against_t_i() -> None:
    # a responder that sends its own T but MACs T_i (as the RFC asks) verifies
    i_msg = decode_message(I_MESSAGE)
    keys = derive_transport_keys(PSK32, 0x11223344, R16)
    h = replace(i_msg.header, data_type=DataType.PSK_VERIFY, v=False)
    body = encode_message(
        h,
        [Timestamp(TsType.COUNTER, 77), Verification(MacAlg.HMAC_SHA_1_160, b"")],
        without_final_mac=True,
    )
    good = body + hmac.digest(keys.auth_key, body + b"\x00\x00\x00\x01", "sha1")
    protect.verify_verification(decode_message(good), i_msg, PSK32)
    bad = body + hmac.digest(keys.auth_key, body + b"\x00\x00\x00\x4d", "sha1")
    with pytest.raises(AuthError):
        protect.verify_verification(decode_message(bad), i_msg, PSK32)


def test_verification_rejections() -> None:
    i_msg = decode_message(I_MESSAGE)
    with pytest.raises(DecodeError):  # not a verification message
        protect.verify_verification(i_msg, i_msg, PSK32)
    other_csb = bytearray(R_MESSAGE)
    other_csb[7] ^= 1
    with pytest.raises(AuthError):
        protect.verify_verification(decode_message(bytes(other_csb)), i_msg, PSK32)
    for i in range(len(R_MESSAGE)):
        bad = bytearray(R_MESSAGE)
        bad[i] ^= 0x04
        try:
            m = decode_message(bytes(bad))
        except DecodeError:
            continue
        with pytest.raises((AuthError, DecodeError, UnsupportedAlgorithmError)):
            protect.verify_verification(m, i_msg, PSK32)


# --- Error message -------------------------------------------------------------------------------


def test_error_message_golden() -> None:
    out = protect.build_error_message(
        0x11223344,
        Timestamp(TsType.COUNTER, 2),
        [ErrorNo.INVALID_TS, ErrorNo.INVALID_ID],
        PSK32,
        R16,
    )
    assert out == load_golden("error")
    m = decode_message(out)
    assert m.header.cs_id_map_type == CsIdMapType.EMPTY
    assert protect.verify_error_message(m, PSK32, R16) == (ErrorNo.INVALID_TS, ErrorNo.INVALID_ID)
    with pytest.raises(AuthError):
        protect.verify_error_message(m, PSK32, bytes(16))
    for i in range(len(out)):
        bad = bytearray(out)
        bad[i] ^= 0x10
        try:
            mb = decode_message(bytes(bad))
        except DecodeError:
            continue
        with pytest.raises((AuthError, DecodeError, UnsupportedAlgorithmError)):
            protect.verify_error_message(mb, PSK32, R16)


def test_unauthenticated_error_message() -> None:
    out = protect.build_error_message(7, Timestamp(TsType.COUNTER, 1), [ErrorNo.AUTH_FAILURE])
    m = decode_message(out)
    assert not any(isinstance(p, Verification) for p in m.payloads)
    with pytest.raises(AuthError):
        protect.verify_error_message(m, PSK32, R16)
    assert protect.verify_error_message(m, require_mac=False) == (ErrorNo.AUTH_FAILURE,)
    with pytest.raises(DecodeError):
        protect.verify_error_message(decode_message(I_MESSAGE), require_mac=False)


# --- the other golden messages carry real MACs --------------------------------------------------


def test_golden_srtp_sp_kemac() -> None:
    m = decode_message(load_golden("srtp_sp"))
    (kd,) = protect.verify_and_decrypt(m, PSK32, allow_null_encr=True)
    assert kd.type == KeyDataType.TEK_SALT and kd.kv_data == b"\x00\x00\x00\x01"


def test_golden_key_id_kemac() -> None:
    m = decode_message(load_golden("key_id"))
    (kd,) = protect.verify_and_decrypt(m, Prf(PSK32))
    assert kd == KeyData(KeyDataType.TGK, b"\x5a" * 16, kv_data=(b"\x00\x01", b"\xff\xff"))


def test_golden_key_request_v() -> None:
    # the compact request's V covers the message only, under its own CSB ID / RAND
    raw = load_golden("key_request")
    m = decode_message(raw)
    keys = protect.transport_keys(PSK32, m.header, R16)
    assert raw[-20:] == hmac.digest(keys.auth_key, m.mac_input, "sha1")
