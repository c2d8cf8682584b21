"""`mbmsec mikey decode --psk` against an independent MIKEY builder (issue 2, "Done when").

The builder below is a second, minimal implementation of an RFC 3830 PSK I_MESSAGE written
from the RFC text only: its own PRF (§4.1.2), labels (§4.1.4), AES-CM (§4.2.3, AES-CTR from
``cryptography``), HMAC-SHA-1 MAC over the whole message except the MAC field (§5.2). It
imports nothing from mbmsec. It reproduces the spec-digest §5.2 message byte for byte before it
is trusted to build new ones. The CLI runs as a separate process, as a user would run it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

# --- the independent builder ------------------------------------------------------------------


def rfc3830_prf(inkey: bytes, label: bytes, out_len: int) -> bytes:
    """RFC 3830 §4.1.2: split inkey in 256-bit pieces, P() per piece with HMAC-SHA-1, XOR."""
    pieces = [inkey[i : i + 32] for i in range(0, len(inkey), 32)]
    m = -(-out_len // 20)
    out = bytes(m * 20)
    for s in pieces:
        a = label
        p = b""
        for _ in range(m):
            a = hmac.new(s, a, hashlib.sha1).digest()
            p += hmac.new(s, a + label, hashlib.sha1).digest()
        out = bytes(x ^ y for x, y in zip(out, p, strict=True))
    return out[:out_len]


def psk_label(constant: int, csb_id: int, rand: bytes) -> bytes:
    """RFC 3830 §4.1.4: constant || 0xFF || CSB ID || RAND."""
    return struct.pack("!IBI", constant, 0xFF, csb_id) + rand


def build_psk_i_message(
    psk: bytes,
    csb_id: int,
    counter: int,
    rand: bytes,
    key: bytes,
    *,
    v: bool = False,
    idi: bytes | None = None,
    idr: bytes | None = None,
    key_type: int = 0,
) -> bytes:
    """HDR, T(COUNTER), RAND, [IDi], [IDr], KEMAC(AES-CM-128, HMAC-SHA-1-160), one key.

    ``key_type`` is the Key data Type (0 TGK, 2 TEK); KV is NULL.
    """
    payloads: list[tuple[int, bytes]] = [
        (5, bytes([2]) + struct.pack("!I", counter)),  # T: TS type COUNTER
        (11, bytes([len(rand)]) + rand),  # RAND
    ]
    for ident in (idi, idr):
        if ident is not None:
            payloads.append((6, bytes([0]) + struct.pack("!H", len(ident)) + ident))  # ID, NAI
    encr_key = rfc3830_prf(psk, psk_label(0x150533E1, csb_id, rand), 16)
    auth_key = rfc3830_prf(psk, psk_label(0x2D22AC75, csb_id, rand), 20)
    salt_key = rfc3830_prf(psk, psk_label(0x29B88916, csb_id, rand), 14)
    # Key data sub-payload (§6.13): next 0, Type (4 bits) | KV NULL (0), key len, key.
    key_data = bytes([0, key_type << 4]) + struct.pack("!H", len(key)) + key
    # §4.2.3: IV = (S XOR (0x0000 || CSB ID || T)) || 0x0000, T = 64-bit (COUNTER zero-padded).
    mask = bytes(2) + struct.pack("!IQ", csb_id, counter)
    iv = bytes(a ^ b for a, b in zip(salt_key, mask, strict=True)) + bytes(2)
    enc = Cipher(algorithms.AES(encr_key), modes.CTR(iv)).encryptor()
    encrypted = enc.update(key_data) + enc.finalize()
    payloads.append((1, bytes([1]) + struct.pack("!H", len(encrypted)) + encrypted + b"\x01"))
    # HDR (§6.1): version 1, data type 0, next payload, V | PRF 0, CSB ID, #CS 0, map type 1.
    msg = bytes([1, 0, payloads[0][0], 0x80 if v else 0]) + struct.pack("!IBB", csb_id, 0, 1)
    for i, (_, body) in enumerate(payloads):
        nxt = payloads[i + 1][0] if i + 1 < len(payloads) else 0
        msg += bytes([nxt]) + body
    return msg + hmac.new(auth_key, msg, hashlib.sha1).digest()


# spec-digest §5.2 inputs and message.
KS_NAF = bytes.fromhex("9e7f591d867c2c51bcf388beffa209771eed795d08db4a470895468faff293cb")
SPEC_MESSAGE = bytes.fromhex(
    "010005801122334400010b02000000010110000102030405060708090a0b0c0d0e0f0001001437"
    "49766af07ac1b0c66cef5bbc3c1bb4b28760a2010b8bc7161bc6529e5a5a19f0dfc117270661828c"
)


def test_builder_reproduces_spec_digest_vector() -> None:
    # §5.2: 256-bit PSK (Ks_NAF), CSB 0x11223344, COUNTER 1, RAND 00..0f, TEK aa x 16, V=1.
    msg = build_psk_i_message(
        KS_NAF, 0x11223344, 1, bytes(range(16)), b"\xaa" * 16, v=True, key_type=2
    )
    assert msg == SPEC_MESSAGE


# --- the CLI under test ------------------------------------------------------------------------


def run_decode(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mbmsec.cli", "mikey", "decode", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PSK = bytes.fromhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
TGK = bytes.fromhex("c0ffee00112233445566778899aabbcc")
RAND = bytes.fromhex("5a" * 16)


@pytest.fixture
def message() -> bytes:
    return build_psk_i_message(
        PSK,
        0xCAFEBABE,
        42,
        RAND,
        TGK,
        v=True,
        idi=b"bmsc.home1.net",
        idr=b"I1U8vpY3qJ0hiuZNrke/NQ==@bsf.home1.net",
    )


def test_decode_psk_json_prints_the_key(message: bytes) -> None:
    res = run_decode("--psk", PSK.hex(), "--json", "-", stdin=message.hex().encode())
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    out: dict[str, Any] = json.loads(res.stdout)
    text = json.dumps(out)
    assert TGK.hex() in text
    assert "c0ffee" in res.stdout


def test_decode_psk_text_prints_the_key(message: bytes, tmp_path: Any) -> None:
    path = tmp_path / "msg.bin"
    path.write_bytes(message)
    res = run_decode("--psk", PSK.hex(), str(path))
    assert res.returncode == 0, res.stderr
    assert TGK.hex() in res.stdout.replace(" ", "").lower()
    assert "bmsc.home1.net" in res.stdout


def test_decode_wrong_psk_exit_1(message: bytes) -> None:
    wrong = bytes([PSK[0] ^ 1]) + PSK[1:]
    res = run_decode("--psk", wrong.hex(), "-", stdin=message.hex().encode())
    assert res.returncode == 1
    assert len(res.stderr.strip().splitlines()) == 1
    assert TGK.hex() not in res.stdout + res.stderr


def test_decode_malformed_exit_2(message: bytes) -> None:
    res = run_decode("-", stdin=message[:-25].hex().encode())
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "offset" in lines[0]
    assert res.stdout == ""
