"""No key material in any repr(), str() or exception message of the MIKEY layer.

Messages are built and decoded with known secrets (the PSK, the derived transport keys, TEKs
and salts, a TGK), every error path we can reach is triggered, and every object and error
(with its chained causes) is rendered. No 6-byte window of any secret may appear in the text,
neither as hex (either case) nor as a Python bytes literal. The NULL-encrypted message carries
its keys in clear on the wire, so its truncations and byte mutations also check that decode
errors never quote input bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from mbmsec.crypto import HmacKey, aes_kw_unwrap_iv, aes_kw_wrap_iv
from mbmsec.errors import MbmsecError
from mbmsec.mikey import protect
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
    EncrAlg,
    ErrorNo,
    IdType,
    KeyDataType,
    MacAlg,
    PrfFunc,
    ProtType,
    SrtpParam,
    TsType,
)
from mbmsec.mikey.payloads import (
    Header,
    IdPayload,
    Kemac,
    KeyData,
    Payload,
    Rand,
    SecurityPolicy,
    SrtpIdEntry,
    Timestamp,
)
from mbmsec.mikey.prf import (
    Prf,
    derive_tek,
    derive_transport_keys,
    kemac_iv,
    prf_mikey1,
)
from mbmsec.mikey.replay import CounterState, ReplayGuard


def _secret(tag: str, n: int) -> bytes:
    # random-looking, so a window cannot match a header field or a counter by accident
    return hashlib.sha256(tag.encode()).digest()[:n]


PSK = _secret("psk", 32)
TEK = _secret("tek", 16)
TEK_SALT = _secret("tek salt", 14)
TGK = _secret("tgk", 32)
RAND = bytes(range(0x40, 0x50))
CSB_ID = 0x0BADCAFE
KEYS = derive_transport_keys(PSK, CSB_ID, RAND)
SECRETS = {
    "psk": PSK,
    "tek": TEK,
    "tek_salt": TEK_SALT,
    "tgk": TGK,
    "encr_key": KEYS.encr_key,
    "auth_key": KEYS.auth_key,
    "salt_key": KEYS.salt_key,
    "tek_from_tgk": derive_tek(TGK, 1, CSB_ID, RAND, 16),
}
WINDOW = 6


def _needles() -> list[tuple[str, str]]:
    out = []
    for name, secret in SECRETS.items():
        for i in range(len(secret) - WINDOW + 1):
            w = secret[i : i + WINDOW]
            out += [(name, w.hex()), (name, w.hex().upper()), (name, repr(w)[2:-1])]
            out.append((name, " ".join(f"{b:02x}" for b in w)))
    return out


NEEDLES = _needles()


def assert_clean(text: str, what: str) -> None:
    for name, needle in NEEDLES:
        assert needle not in text, f"{name} leaks into {what}: {text[:200]!r}"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def assert_error_clean(exc: BaseException) -> None:
    for e in _chain(exc):
        assert_clean(str(e), f"str({type(e).__name__})")
        assert_clean(repr(e), f"repr({type(e).__name__})")
        assert_clean(repr(e.args), f"{type(e).__name__}.args")


def assert_raises_clean(fn: Callable[[], object]) -> MbmsecError:
    with pytest.raises(MbmsecError) as info:
        fn()
    assert_error_clean(info.value)
    return info.value


def assert_objects_clean(*objs: object) -> None:
    for o in objs:
        assert_clean(repr(o), f"repr({type(o).__name__})")
        assert_clean(str(o), f"str({type(o).__name__})")


KD = (
    KeyData(KeyDataType.TEK_SALT, TEK, TEK_SALT, kv_data=b"\x00\x00\x00\x01"),
    KeyData(KeyDataType.TGK, TGK),
)
SRTP_HDR = Header(
    DataType.PSK_INIT,
    CSB_ID,
    v=True,
    cs_id_map_type=CsIdMapType.SRTP_ID,
    cs_map=(SrtpIdEntry(1, 0x01020304, 0),),
)
BEFORE: list[Payload] = [
    Timestamp(TsType.NTP_UTC, 0xE9A12B3C80000000),
    Rand(RAND),
    IdPayload(IdType.URI, b"bmsc.home1.net"),
    IdPayload(IdType.NAI, b"ue@home1.net"),
    SecurityPolicy(1, ProtType.SRTP, ((SrtpParam.ENCR_ALG, b"\x01"),)),
]


def _message(encr: EncrAlg, mac: MacAlg = MacAlg.HMAC_SHA_1_160) -> bytes:
    return protect.build_psk_message(SRTP_HDR, BEFORE, KD, PSK, encr, mac)


def test_needles_would_catch_a_leak() -> None:
    # the checker itself: a repr of raw key bytes, a hex dump and a bytes literal are caught
    for text in (repr(TEK), TEK.hex(), KEYS.auth_key.hex().upper(), repr(KD[0].__dict__)):
        with pytest.raises(AssertionError):
            assert_clean(text, "probe")


@pytest.mark.parametrize("encr", list(EncrAlg))
def test_built_and_decoded_objects(encr: EncrAlg) -> None:
    raw = _message(encr)
    m = decode_message(raw)
    got = protect.verify_and_decrypt(m, PSK, allow_null_encr=True)
    assert got == KD
    kemac = m.find(Kemac)
    assert kemac is not None
    assert_objects_clean(m, m.header, *m.payloads, kemac, *got, got, KEYS)
    assert_objects_clean(Prf(PSK), Prf(TGK, PrfFunc.HMAC_SHA_256), HmacKey(KEYS.auth_key))
    assert_objects_clean(protect.transport_keys(PSK, m.header, RAND), DecodeOptions())
    r = decode_message(protect.build_verification(m, PSK))
    protect.verify_verification(r, m, PSK)
    assert_objects_clean(r, *r.payloads)
    if encr == EncrAlg.NULL:  # the keys are in clear on the wire, yet not in any repr
        assert TEK in raw
        assert_objects_clean(decode_key_data(kemac.encr_data))


def test_error_message_objects() -> None:
    t = Timestamp(TsType.COUNTER, 7)
    raw = protect.build_error_message(CSB_ID, t, [ErrorNo.INVALID_TS], PSK, RAND)
    m = decode_message(raw)
    assert protect.verify_error_message(m, PSK, RAND) == (ErrorNo.INVALID_TS,)
    assert_objects_clean(m, *m.payloads)
    assert_raises_clean(lambda: protect.verify_error_message(m, _secret("x", 32), RAND))


def test_protect_error_paths() -> None:
    good = _message(EncrAlg.AES_CM_128)
    m = decode_message(good)
    wrong = _secret("wrong psk", 32)
    assert_raises_clean(lambda: protect.verify_and_decrypt(m, wrong))
    bad_mac = decode_message(good[:-1] + bytes([good[-1] ^ 1]))
    assert_raises_clean(lambda: protect.verify_and_decrypt(bad_mac, PSK))
    # NULL MAC lets a tampered ciphertext reach the decryption and the key data parser
    for encr in (EncrAlg.AES_CM_128, EncrAlg.AES_KW_128, EncrAlg.NULL):
        raw = _message(encr, MacAlg.NULL)
        nm = decode_message(raw)
        assert_raises_clean(lambda nm=nm: protect.verify_and_decrypt(nm, PSK))  # NULL MAC
        kemac = nm.payloads[-1]
        assert isinstance(kemac, Kemac)
        for flip in range(0, len(kemac.encr_data), 3):
            data = bytearray(kemac.encr_data)
            data[flip] ^= 0xA5
            tampered = replace(nm, payloads=(*nm.payloads[:-1], replace(kemac, encr_data=data)))
            try:
                got = protect.verify_and_decrypt(
                    tampered, PSK, allow_null_mac=True, allow_null_encr=True
                )
            except MbmsecError as exc:
                assert_error_clean(exc)
            else:
                assert_objects_clean(got)
    null_enc = decode_message(_message(EncrAlg.NULL))
    assert_raises_clean(lambda: protect.verify_and_decrypt(null_enc, PSK))
    r = decode_message(protect.build_verification(m, PSK))
    assert_raises_clean(lambda: protect.verify_verification(r, m, wrong))
    assert_raises_clean(lambda: protect.verify_verification(m, m, PSK))
    assert_raises_clean(lambda: protect.build_psk_message(SRTP_HDR, [], KD, PSK))  # no RAND
    assert_raises_clean(lambda: protect.build_psk_message(SRTP_HDR, BEFORE, KD, PSK, 9))
    sha256_hdr = replace(SRTP_HDR, prf_func=PrfFunc.HMAC_SHA_256)
    m256 = decode_message(protect.build_psk_message(sha256_hdr, BEFORE, KD, PSK))
    assert_raises_clean(lambda: protect.verify_and_decrypt(m256, Prf(PSK)))


def test_crypto_and_prf_error_paths() -> None:
    iv = KEYS.salt_key[:8]
    wrapped = aes_kw_wrap_iv(KEYS.encr_key, iv, TEK + TGK)
    assert_raises_clean(lambda: aes_kw_unwrap_iv(KEYS.encr_key, bytes(8), wrapped))
    assert_raises_clean(lambda: aes_kw_unwrap_iv(KEYS.encr_key, iv, wrapped[:-1]))
    assert_raises_clean(lambda: aes_kw_wrap_iv(KEYS.encr_key, iv, TEK[:15]))
    assert_raises_clean(lambda: aes_kw_wrap_iv(PSK[:15], iv, TEK))
    assert_raises_clean(lambda: kemac_iv(KEYS.salt_key[:13], CSB_ID, 1))
    assert_raises_clean(lambda: kemac_iv(KEYS.salt_key, CSB_ID, 1 << 64))
    assert_raises_clean(lambda: Prf(PSK, 7))
    assert_raises_clean(lambda: Prf(PSK).derive(RAND, 0))
    assert_raises_clean(lambda: prf_mikey1(PSK, RAND, 1 << 20))
    assert_raises_clean(lambda: derive_transport_keys(Prf(PSK), CSB_ID, RAND, 1))
    assert_raises_clean(lambda: KeyData(KeyDataType.TEK_SALT, TEK))
    assert_raises_clean(lambda: KeyData(KeyDataType.TEK, TEK, TEK_SALT))
    assert_raises_clean(lambda: encode_key_data([KeyData(KeyDataType.TGK, TGK, kv_data=PSK * 8)]))
    assert_raises_clean(lambda: encode_key_data([KeyData(KeyDataType.TGK, TGK * 2048)]))
    big = Kemac(EncrAlg.NULL, TGK * 2048, MacAlg.NULL, b"")
    assert_raises_clean(lambda: encode_message(SRTP_HDR, [big]))
    assert_objects_clean(ReplayGuard(), CounterState(5))


def test_decode_errors_never_quote_input_bytes() -> None:
    # NULL encryption: TEK, salt and TGK are in clear inside the message
    raw = _message(EncrAlg.NULL)
    kemac = decode_message(raw).payloads[-1]
    assert isinstance(kemac, Kemac)
    chain = kemac.encr_data
    assert TEK in raw and TGK in chain
    inputs: list[bytes] = [raw[:n] for n in range(len(raw))]
    inputs += [raw + b"\x00", raw + TEK]
    for i in range(len(raw)):
        for v in (0x00, 0x01, 0x15, 0xFF, raw[i] ^ 0x80):
            b = bytearray(raw)
            b[i] = v
            inputs.append(bytes(b))
    for data in inputs:
        try:
            m = decode_message(data)
        except MbmsecError as exc:
            assert_error_clean(exc)
        else:
            assert_objects_clean(m, *m.payloads)
    for n in range(len(chain)):
        for sub in (chain[:n], chain[:n] + b"\x07" + chain[n + 1 :]):
            try:
                assert_objects_clean(decode_key_data(sub, max_zero_padding=7))
            except MbmsecError as exc:
                assert_error_clean(exc)
