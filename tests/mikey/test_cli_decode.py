"""`mbmsec mikey decode` in process: input detection, dump content, JSON, exit codes.

Messages come from the real builders (mbmsec.mikey.protect, mbmsec.mbms.messages); the
independent-implementation check is in test_cli_decode_independent.py, the tshark comparison
of the dump's offsets and values in tests/conformance/test_tshark_mikey.py.
"""

from __future__ import annotations

import contextlib
import io
import json
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.cli import main
from mbmsec.mbms.compact import ErrorCause
from mbmsec.mbms.keys import KEY_ID_TYPE_SERVICE_ID, MskId, MskRef, MukId
from mbmsec.mbms.messages import MskKey, build_msk_message
from mbmsec.mikey import constants
from mbmsec.mikey.cli import InputError, parse_hex_text
from mbmsec.mikey.constants import (
    DataType,
    EncrAlg,
    ErrorNo,
    KeyDataType,
    KeyIdType,
    MacAlg,
    TsType,
)
from mbmsec.mikey.dump import CODE_NAMES, code_name
from mbmsec.mikey.payloads import Header, KeyData, Rand, Timestamp
from mbmsec.mikey.protect import build_error_message, build_psk_message

# spec-digest §5.2 (Ks_NAF as PSK; the KEMAC carries TEK aa x 16).
KS_NAF = "9e7f591d867c2c51bcf388beffa209771eed795d08db4a470895468faff293cb"
SPEC = (
    "010005801122334400010b02000000010110000102030405060708090a0b0c0d0e0f0001001437"
    "49766af07ac1b0c66cef5bbc3c1bb4b28760a2010b8bc7161bc6529e5a5a19f0dfc117270661828c"
)


def run(*argv: str, stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin))
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setattr("sys.stdin", fake_stdin)
        rc = main(["mikey", "decode", *argv])
    return rc, out.getvalue(), err.getvalue()


# --- input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        SPEC,
        SPEC.upper(),
        " ".join(SPEC[i : i + 2] for i in range(0, len(SPEC), 2)),
        ":".join(SPEC[i : i + 2] for i in range(0, len(SPEC), 2)),
        "0x" + SPEC,
        " ".join("0x" + SPEC[i : i + 8] for i in range(0, len(SPEC), 8)),
        "# spec-digest 5.2\n" + SPEC[:20] + "  # HDR\n" + SPEC[20:] + "\n",
    ],
)
def test_hex_text_forms(text: str) -> None:
    assert parse_hex_text(text.encode()) == bytes.fromhex(SPEC)
    rc, out, err = run("-", stdin=text.encode())
    assert (rc, err) == (0, "")
    assert "0x11223344" in out


@pytest.mark.parametrize(
    ("text", "reason"),
    [("0100g0", "unexpected character 'g'"), ("010", "odd number"), ("0x", "no hex digits")],
)
def test_bad_hex_exit_2(text: str, reason: str) -> None:
    rc, out, err = run("-", stdin=text.encode())
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and reason in err


def test_binary_file_and_literal_hex_argument(tmp_path: Path) -> None:
    path = tmp_path / "m.bin"
    path.write_bytes(bytes.fromhex(SPEC))
    rc_file, out_file, _ = run(str(path))
    rc_lit, out_lit, _ = run(SPEC)
    assert rc_file == rc_lit == 0
    assert out_file == out_lit


def test_hex_file(tmp_path: Path) -> None:
    path = tmp_path / "m.hex"
    path.write_text("# a MIKEY message\n" + SPEC + "\n")
    rc, out, _ = run(str(path))
    assert rc == 0 and "Pre-shared key (PSK init)" in out


@pytest.mark.parametrize("arg", ["missing.bin", "/nonexistent/dir/m.bin"])
def test_unreadable_file_exit_2(arg: str) -> None:
    rc, out, err = run(arg)
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and "cannot read" in err


def test_empty_input_exit_2() -> None:
    rc, _, err = run("-", stdin=b"")
    assert rc == 2 and "empty input" in err


@pytest.mark.parametrize("psk", ["", "xyz", "abc"])
def test_bad_psk_exit_2_without_echo(psk: str) -> None:
    rc, out, err = run("--psk", psk, SPEC)
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and "--psk" in err
    if psk:
        assert psk not in err.split(":", 1)[1].replace("--psk", "")


def test_parse_hex_text_errors_are_input_errors() -> None:
    with pytest.raises(InputError):
        parse_hex_text(b"zz")


# --- dump content -----------------------------------------------------------------------------


def test_text_dump_of_spec_vector() -> None:
    rc, out, err = run(SPEC)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "MIKEY message, 79 bytes: Pre-shared key (PSK init)"
    expected = [
        "    1    data type                0  Pre-shared key (PSK init)",
        "    4    CSB ID                   0x11223344",
        "    9    CS ID map type           1  Empty map (RFC 4563)",
        "   11    TS type                  2  COUNTER",
        "   12    TS value                 1",
        "   18    RAND                     000102030405060708090a0b0c0d0e0f",
        "   35    Encr alg                 1  AES-CM-128",
        "   58    MAC alg                  1  HMAC-SHA-1-160",
        "   59    MAC                      0b8bc7161bc6529e5a5a19f0dfc117270661828c",
    ]
    for line in expected:
        assert line in lines
    assert "Key data" not in out.replace("Key data len", "")  # encrypted, no --psk: no keys


def test_json_dump_offsets_and_names() -> None:
    rc, out, _ = run("--json", SPEC)
    assert rc == 0
    doc = json.loads(out)
    assert doc["size"] == 79 and doc["mac_offset"] == 59
    kinds = [(p["payload"], p["offset"], p["size"]) for p in doc["payloads"]]
    assert kinds == [("HDR", 0, 10), ("T", 10, 6), ("RAND", 16, 18), ("KEMAC", 34, 45)]
    hdr = doc["payloads"][0]
    assert hdr["csb_id"] == 0x11223344 and hdr["v"] == 1
    assert hdr["data_type"] == {"value": 0, "name": "Pre-shared key (PSK init)"}
    assert doc["payloads"][1]["ts_type"] == {"value": 2, "name": "COUNTER"}
    assert doc["payloads"][3]["encr_data"] == "3749766af07ac1b0c66cef5bbc3c1bb4b28760a2"
    assert "psk" not in doc


def test_psk_decrypts_spec_vector() -> None:
    rc, out, err = run("--psk", KS_NAF, "--json", SPEC)
    assert (rc, err) == (0, "")
    doc = json.loads(out)
    [kd] = doc["payloads"][3]["key_data"]
    assert kd["type"] == {"value": 2, "name": "TEK"}
    assert kd["key"] == "aa" * 16
    assert (kd["offset"], kd["size"]) == (38, 20)
    tk = doc["psk"]["transport_keys"]
    assert tk["encr_key"] == "bf0d0d37cb318ee351a442dc0a2cc7cd"
    assert tk["auth_key"] == "63b583b7f7ad753a7215f568a390567310900834"
    assert tk["salt_key"] == "34d25200eff94df04114993f9e02"


def test_wrong_psk_exit_1_prints_no_key() -> None:
    rc, out, err = run("--psk", "00" * 32, SPEC)
    assert rc == 1
    assert err.splitlines() == [
        "mbmsec mikey decode: verification failed: KEMAC MAC does not verify"
    ]
    assert "aaaaaaaa" not in out


def test_tampered_ciphertext_exit_1() -> None:
    data = bytearray.fromhex(SPEC)
    data[45] ^= 0x01  # inside the encrypted key data: the MAC no longer verifies
    rc, _, err = run("--psk", KS_NAF, data.hex())
    assert rc == 1 and "verification failed" in err


MSK_A, MSK_B = b"\x5a" * 16, b"\xa5" * 16
MUK = bytes(range(32))


def _msk_message() -> bytes:
    kd = bytes.fromhex("62f210")
    msks = [
        MskKey(MskRef(kd, MskId(7, 1)), MSK_A, 1, 50),
        MskKey(MskRef(kd, MskId(7, 2)), MSK_B, 51, 0xFFFF),
    ]
    muk_id = MukId.of("bmsc.home1.net", "btid@bsf.home1.net")
    t = Timestamp(TsType.COUNTER, 12)
    return build_msk_message(msks, MUK, muk_id, t, csb_id=0xABCD, rand=b"\x01" * 16, v=True)


def test_msk_message_text_dump_with_psk() -> None:
    rc, out, err = run("--psk", MUK.hex(), _msk_message().hex())
    assert (rc, err) == (0, "")
    for text in (
        "3  Key ID (RFC 4563)",
        "0  MBMS Key Domain ID",
        "1  MBMS MSK ID",
        "'bmsc.home1.net'",
        "'btid@bsf.home1.net'",
        "(decrypted with --psk)",
        "0  TGK",
        "2  Interval",
        MSK_A.hex(),
        MSK_B.hex(),
        "KEMAC MAC verified with --psk",
    ):
        assert text in out, text
    assert out.count("Key data (") == 2


def test_msk_message_json_key_ids_and_two_keys() -> None:
    rc, out, _ = run("--json", "--psk", MUK.hex(), _msk_message().hex())
    assert rc == 0
    doc = json.loads(out)
    ext = doc["payloads"][1]
    assert [e["type"]["value"] for e in ext["key_ids"]] == [0, 1, 1]
    assert [e["key_id"] for e in ext["key_ids"]] == ["62f210", "00070001", "00070002"]
    kemac = doc["payloads"][-1]
    assert [k["key"] for k in kemac["key_data"]] == [MSK_A.hex(), MSK_B.hex()]
    assert [(k["valid_from"], k["valid_to"]) for k in kemac["key_data"]] == [
        ("0001", "0032"),
        ("0033", "ffff"),
    ]


def test_null_encryption_shows_key_data_without_psk() -> None:
    hdr = Header(DataType.PSK_INIT, 99)
    before = [Timestamp(TsType.NTP_UTC, 0xE9A12B3C80000000), Rand(b"\x02" * 16)]
    key = KeyData(KeyDataType.TEK_SALT, b"\x77" * 16, b"\x88" * 14, kv_data=b"\x01\x02")
    data = build_psk_message(hdr, before, [key], MUK, EncrAlg.NULL)
    rc, out, _ = run(data.hex())
    assert rc == 0
    assert "(sent in clear, MAC not checked)" in out
    assert "77" * 16 in out and "88" * 14 in out and "SPI/MKI" in out
    assert "2024-" in out  # the NTP-UTC timestamp rendered as a date (0xE9A12B3C = 2024)


def test_null_mac_with_psk_exit_1() -> None:
    hdr = Header(DataType.PSK_INIT, 5)
    before = [Timestamp(TsType.COUNTER, 1), Rand(b"\x03" * 16)]
    data = build_psk_message(
        hdr, before, [KeyData(KeyDataType.TGK, b"\x44" * 16)], MUK, EncrAlg.NULL, MacAlg.NULL
    )
    rc, _, err = run("--psk", MUK.hex(), data.hex())
    assert rc == 1 and len(err.splitlines()) == 1


def test_psk_on_message_without_kemac_exit_2() -> None:
    data = build_error_message(1, Timestamp(TsType.COUNTER, 1), [ErrorNo.INVALID_TS])
    rc, out, err = run(data.hex())
    assert rc == 0 and "1  Invalid timestamp" in out and "6  Error" in out
    rc, out, err = run("--psk", MUK.hex(), data.hex())
    assert rc == 2 and "no" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("hex_", "reason", "offset"),
    [
        (SPEC[:100], "Encr data", 38),
        ("02" + SPEC[2:], "version 2", 0),
        (SPEC + "00", "after the last payload", 79),
        (SPEC[:4] + "0d" + SPEC[6:], "13", 2),
        (SPEC[:18] + "07" + SPEC[20:], "map type 7", 9),
    ],
)
def test_malformed_exit_2_names_error_and_offset(hex_: str, reason: str, offset: int) -> None:
    rc, out, err = run(hex_)
    assert rc == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith("mbmsec mikey decode: malformed message: ")
    assert reason in line and line.endswith(f"at offset {offset}")


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=120))
def test_any_input_parses_or_exits_2_with_one_line(data: bytes) -> None:
    rc, out, err = run(data.hex())
    if rc == 0:
        assert err == "" and out.startswith("MIKEY message")
    else:
        assert rc == 2 and out == "" and len(err.splitlines()) == 1


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=80))
def test_any_spec_mutation_with_psk_exit_code_is_defined(tail: bytes) -> None:
    data = bytes.fromhex(SPEC)[:40] + tail
    rc, _out, err = run("--psk", KS_NAF, data.hex())
    assert rc in (0, 1, 2)
    assert (rc == 0) == (err == "")
    if rc:
        assert len(err.splitlines()) == 1


# --- names for every code point ---------------------------------------------------------------


def _tables() -> list[type[IntEnum]]:
    return [
        v
        for v in vars(constants).values()
        if isinstance(v, type) and issubclass(v, IntEnum) and v is not IntEnum
    ]


@pytest.mark.parametrize("table", _tables(), ids=lambda t: t.__name__)
def test_every_code_point_has_a_name(table: type[IntEnum]) -> None:
    assert table in CODE_NAMES
    for member in table:
        name = code_name(table, member)
        assert name not in ("unknown", "private use"), f"{table.__name__}.{member.name}"


def test_unknown_and_private_use_names() -> None:
    assert code_name(DataType, 200) == "unknown"
    assert code_name(DataType, 250) == "private use"
    assert code_name(KeyIdType, 242) == "private use"
    assert code_name(ErrorNo, 13) == "unknown"


def test_private_names_follow_the_compact_profile() -> None:
    for cause in ErrorCause:
        if cause >= 241:
            assert "private use" in code_name(ErrorNo, cause)
    assert code_name(KeyIdType, KEY_ID_TYPE_SERVICE_ID).startswith("MBMS User Service ID")


def test_json_is_plain_data() -> None:
    rc, out, _ = run("--json", "--psk", MUK.hex(), _msk_message().hex())
    assert rc == 0

    def walk(x: Any) -> None:
        assert isinstance(x, dict | list | str | int | bool | type(None))
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(json.loads(out))
