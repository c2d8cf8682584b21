"""Known-answer tests generated from tests/vectors/mikey_kat.txt.

Every record is checked twice: against mbmsec (prf.py, crypto.py) and against a second,
deliberately independent implementation written below. The reference shares no code with
mbmsec: HMAC is built by hand from hashlib (RFC 2104), the PRF is written from the RFC 3830
§4.1.2 text with explicit A_i lists and bit-length arithmetic, labels use struct, and the AES-CM
keystream comes from single-block AES encryptions of explicit counter blocks.
"""

from __future__ import annotations

import hashlib
import math
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mbmsec.crypto import aes_cm, hmac_sha1, mac_equal
from mbmsec.mikey import prf as P

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "mikey_kat.txt"

# --- vector file -------------------------------------------------------------------------------


def _load() -> dict[str, list[dict[str, str]]]:
    sections: dict[str, list[dict[str, str]]] = {}
    current: list[dict[str, str]] | None = None
    record: dict[str, str] = {}
    for raw in [*VECTORS.read_text().splitlines(), ""]:
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            if record:
                assert current is not None, "record outside a [section]"
                current.append(record)
                record = {}
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep, f"bad line in vector file: {raw!r}"
        assert key.strip() not in record, f"duplicate field {key.strip()}"
        record[key.strip()] = value.strip()
    return sections


ALL = _load()


def _cases(section: str) -> list[object]:
    return [pytest.param(r, id=r["SOURCE"]) for r in ALL[section]]


def h(s: str) -> bytes:
    return bytes.fromhex(s)


# --- independent reference implementation (shares no code with mbmsec) -------------------------

_HASHES = {0: ("sha1", 20), 1: ("sha256", 32)}  # PRF func -> (hash, output bytes)


def ref_hmac(name: str, key: bytes, msg: bytes) -> bytes:
    """RFC 2104 HMAC by hand; SHA-1 and SHA-256 both have a 64-byte block."""
    block = 64
    if len(key) > block:
        key = hashlib.new(name, key).digest()
    key = key + b"\x00" * (block - len(key))
    inner = hashlib.new(name, bytes(k ^ 0x36 for k in key) + msg).digest()
    return hashlib.new(name, bytes(k ^ 0x5C for k in key) + inner).digest()


def ref_prf(func: int, inkey: bytes, label: bytes, outkey_bytes: int) -> bytes:
    """RFC 3830 §4.1.2 (RFC 6043 §6.1 for func 1), written from the text in bits."""
    name, hlen = _HASHES[func]
    inkey_len = 8 * len(inkey)
    outkey_len = 8 * outkey_bytes
    n = math.ceil(inkey_len / 256)
    s = [inkey[i * 32 : (i + 1) * 32] for i in range(n)]
    m = math.ceil(outkey_len / (8 * hlen))
    total = 0
    for s_i in s:
        a = [label]  # A_0
        for i in range(1, m + 1):
            a.append(ref_hmac(name, s_i, a[i - 1]))
        p = b"".join(ref_hmac(name, s_i, a[i] + label) for i in range(1, m + 1))
        total ^= int.from_bytes(p, "big")
    full_bits = m * 8 * hlen
    return (total >> (full_bits - outkey_len)).to_bytes(outkey_bytes, "big")


def ref_label(constant: int, cs_id: int, csb_id: int, rand: bytes) -> bytes:
    return struct.pack(">IBI", constant, cs_id, csb_id) + rand


def ref_aes_cm(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    ctr = int.from_bytes(iv, "big")
    stream = b""
    while len(stream) < len(data):
        stream += enc.update(ctr.to_bytes(16, "big"))
        ctr = (ctr + 1) % (1 << 128)
    return bytes(d ^ k for d, k in zip(data, stream, strict=False))


def ref_iv(salt: bytes, csb_id: int, t: int) -> bytes:
    mask = b"\x00\x00" + struct.pack(">IQ", csb_id, t)
    return bytes(a ^ b for a, b in zip(salt, mask, strict=True)) + b"\x00\x00"


def ref_transport(func: int, psk: bytes, csb_id: int, rand: bytes) -> tuple[bytes, bytes, bytes]:
    return (
        ref_prf(func, psk, ref_label(0x150533E1, 0xFF, csb_id, rand), 16),
        ref_prf(func, psk, ref_label(0x2D22AC75, 0xFF, csb_id, rand), 20),
        ref_prf(func, psk, ref_label(0x29B88916, 0xFF, csb_id, rand), 14),
    )


def minisip_prf(inkey: bytes, label: bytes, outkey_bytes: int) -> bytes:
    """minisip's reading: the last chunk is handed over with length inkey_len % 32 bytes, so a
    32-byte inkey gets a zero-length HMAC key (the bug this file's vectors must expose)."""
    n = math.ceil(len(inkey) / 32)
    m = math.ceil(outkey_bytes / 20)
    out = bytearray(20 * m)
    for i in range(n):
        last = i == n - 1
        s = inkey[i * 32 : i * 32 + len(inkey) % 32] if last else inkey[i * 32 : (i + 1) * 32]
        a = label
        p = b""
        for _ in range(m):
            a = ref_hmac("sha1", s, a)
            p += ref_hmac("sha1", s, a + label)
        for j, b in enumerate(p):
            out[j] ^= b
    return bytes(out[:outkey_bytes])


# --- the file itself -----------------------------------------------------------------------------


def test_vector_file_covers_required_cases() -> None:
    assert set(ALL) == {"PRF", "TRANSPORT", "TGK", "KEMAC_IV", "KEMAC", "V_MAC"}
    sizes = {len(h(r["INKEY"])) for r in ALL["PRF"] if r["PRF_FUNC"] == "0"}
    assert {16, 32, 40, 64} <= sizes
    assert {r["PRF_FUNC"] for r in ALL["PRF"]} == {"0", "1"}


def test_reference_hmac_matches_rfc2202_case_1() -> None:
    # RFC 2202 test case 1, so the reference itself is anchored to published values.
    assert ref_hmac("sha1", b"\x0b" * 20, b"Hi There") == h(
        "b617318655057264e28bc0b6fb378c8ef146be00"
    )
    # RFC 4231 test case 1 (HMAC-SHA-256)
    assert ref_hmac("sha256", b"\x0b" * 20, b"Hi There") == h(
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    )


# --- PRF ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("r", _cases("PRF"))
def test_prf(r: dict[str, str]) -> None:
    func, inkey, label, want = int(r["PRF_FUNC"]), h(r["INKEY"]), h(r["LABEL"]), h(r["OUTKEY"])
    assert ref_prf(func, inkey, label, len(want)) == want
    assert P.prf(func, inkey, label, len(want)) == want
    assert P.Prf(inkey, func).derive(label, len(want)) == want
    named = P.prf_mikey1 if func == 0 else P.prf_hmac_sha256
    assert named(inkey, label, len(want)) == want


def test_minisip_32_byte_bug_is_detected() -> None:
    r = next(r for r in ALL["PRF"] if len(h(r["INKEY"])) == 32 and r["PRF_FUNC"] == "0")
    inkey, label, want = h(r["INKEY"]), h(r["LABEL"]), h(r["OUTKEY"])
    bad = minisip_prf(inkey, label, len(want))
    assert bad != want
    assert bad.hex().startswith("32407670f0")  # spec-digest §1.7
    # For inkeys that are not a multiple of 32 bytes the two readings agree, so the difference
    # above comes from the zero-length chunk alone.
    for r2 in ALL["PRF"]:
        k2 = h(r2["INKEY"])
        if r2["PRF_FUNC"] == "0" and len(k2) % 32:
            assert minisip_prf(k2, h(r2["LABEL"]), len(h(r2["OUTKEY"]))) == h(r2["OUTKEY"])


# --- key derivation ----------------------------------------------------------------------------


@pytest.mark.parametrize("r", _cases("TRANSPORT"))
def test_transport_keys(r: dict[str, str]) -> None:
    func, psk, csb, rand = int(r["PRF_FUNC"]), h(r["PSK"]), int(r["CSB_ID"], 16), h(r["RAND"])
    want = (h(r["ENCR_KEY"]), h(r["AUTH_KEY"]), h(r["SALT_KEY"]))
    assert ref_transport(func, psk, csb, rand) == want
    for src in (psk, P.Prf(psk, func)):
        keys = P.derive_transport_keys(src, csb, rand, prf_func=func)
        assert (keys.encr_key, keys.auth_key, keys.salt_key) == want


@pytest.mark.parametrize("r", _cases("TGK"))
def test_tgk_keys(r: dict[str, str]) -> None:
    func, tgk = int(r["PRF_FUNC"]), h(r["TGK"])
    cs, csb, rand = int(r["CS_ID"], 16), int(r["CSB_ID"], 16), h(r["RAND"])
    table = [
        ("TEK", 0x2AD01C64, P.derive_tek),
        ("TEK_SALT", 0x39A2C14B, P.derive_tek_salt),
        ("TGK_AUTH_KEY", 0x1B5C7973, P.derive_tgk_auth_key),
        ("TGK_ENCR_KEY", 0x15798CEF, P.derive_tgk_encr_key),
    ]
    for field, constant, derive in table:
        want = h(r[field])
        assert ref_prf(func, tgk, ref_label(constant, cs, csb, rand), len(want)) == want, field
        assert derive(tgk, cs, csb, rand, len(want), prf_func=func) == want, field


@pytest.mark.parametrize("r", _cases("KEMAC_IV"))
def test_kemac_iv(r: dict[str, str]) -> None:
    salt, csb, t, want = h(r["SALT_KEY"]), int(r["CSB_ID"], 16), int(r["T"], 16), h(r["IV"])
    assert ref_iv(salt, csb, t) == want
    assert P.kemac_iv(salt, csb, t) == want


# --- KEMAC and V MAC ---------------------------------------------------------------------------


@pytest.mark.parametrize("r", _cases("KEMAC"))
def test_kemac(r: dict[str, str]) -> None:
    psk, csb, rand, t = h(r["PSK"]), int(r["CSB_ID"], 16), h(r["RAND"]), int(r["T"], 16)
    key_data, encr, msg, mac = h(r["KEY_DATA"]), h(r["ENCR_DATA"]), h(r["MESSAGE"]), h(r["MAC"])
    encr_key, auth_key, salt_key = ref_transport(0, psk, csb, rand)
    iv = ref_iv(salt_key, csb, t)
    assert ref_aes_cm(encr_key, iv, key_data) == encr
    assert ref_aes_cm(encr_key, iv, encr) == key_data
    # RFC 3830 §5.2: MAC over the whole message except the MAC field, which is last.
    assert msg[-20:] == mac
    assert msg[-21 - len(encr) : -21] == encr  # Encr data, MAC alg (1 byte), MAC
    assert ref_hmac("sha1", auth_key, msg[:-20]) == mac
    # and mbmsec agrees
    keys = P.derive_transport_keys(psk, csb, rand)
    ours_iv = P.kemac_iv(keys.salt_key, csb, t)
    assert aes_cm(keys.encr_key, ours_iv, key_data) == encr
    assert mac_equal(hmac_sha1(keys.auth_key, msg[:-20]), mac)


@pytest.mark.parametrize("r", _cases("V_MAC"))
def test_v_mac(r: dict[str, str]) -> None:
    psk, csb, rand = h(r["PSK"]), int(r["CSB_ID"], 16), h(r["RAND"])
    tail = h(r["ID_I"]) + h(r["ID_R"]) + h(r["T_I"])
    msg, mac = h(r["MESSAGE_WITHOUT_MAC"]), h(r["MAC"])
    _, auth_key, _ = ref_transport(0, psk, csb, rand)
    assert ref_hmac("sha1", auth_key, msg + tail) == mac
    ours = P.derive_transport_auth_key(psk, csb, rand)
    assert hmac_sha1(ours, msg + tail) == mac


def test_v_mac_t_width_matters() -> None:
    # The 8-byte T_i reading (minisip) gives spec-digest's other value: the vector discriminates.
    r = ALL["V_MAC"][0]
    _, auth_key, _ = ref_transport(0, h(r["PSK"]), int(r["CSB_ID"], 16), h(r["RAND"]))
    t8 = int(r["T_I"], 16).to_bytes(8, "big")
    other = ref_hmac("sha1", auth_key, h(r["MESSAGE_WITHOUT_MAC"]) + t8)
    assert other.hex() == "b3abbe8a127a5ec5c4b54ef49435235ecc9a11aa"
    assert other != h(r["MAC"])
