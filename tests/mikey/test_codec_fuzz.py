"""The decoder invariant: any input either parses or raises DecodeError, nothing else; and
whatever parses re-encodes to the same bytes. Fed random bytes and mutations of the golden
messages, whole and truncated at every offset."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mbmsec.errors import DecodeError
from mbmsec.mikey.codec import (
    DecodeOptions,
    decode_key_data,
    decode_message,
    encode_key_data,
    encode_message,
)

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
LENIENT = DecodeOptions(lenient_trailing_padding=True, lenient_key_salt_concat=True)


def load_golden(name: str) -> bytes:
    text = (VECTORS / f"mikey_golden_{name}.txt").read_text()
    return bytes.fromhex("".join(line.split("#", 1)[0].strip() for line in text.splitlines()))


GOLDEN = {
    p.stem.removeprefix("mikey_golden_"): load_golden(p.stem.removeprefix("mikey_golden_"))
    for p in sorted(VECTORS.glob("mikey_golden_*.txt"))
}


def check(data: bytes, options: DecodeOptions | None = None) -> bool:
    """Decode; on success the message must re-encode to the same bytes. True if parsed."""
    try:
        m = decode_message(data, options)
    except DecodeError as exc:
        assert exc.offset is None or 0 <= exc.offset <= max(len(data), 4096)
        return False
    assert encode_message(m.header, m.payloads) + b"\x00" * m.padding == data
    return True


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_every_truncation_is_a_decode_error(name: str) -> None:
    raw = GOLDEN[name]
    for n in range(len(raw)):
        with pytest.raises(DecodeError):
            decode_message(raw[:n])
        check(raw[:n], LENIENT)


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_every_byte_mutation_parses_or_raises(name: str) -> None:
    raw = GOLDEN[name]
    parsed = 0
    for i in range(len(raw)):
        for v in (0x00, 0x01, 0x02, 0x14, 0x7F, 0x80, 0xFF, raw[i] ^ 0x01, raw[i] ^ 0x10):
            bad = bytearray(raw)
            bad[i] = v
            parsed += check(bytes(bad))
            # and the mutation truncated at a few points
            for n in (i, i + 1, len(raw) - 1):
                check(bytes(bad[:n]))
    assert parsed > 0


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    check(data)
    check(data, LENIENT)
    try:
        items = decode_key_data(data)
    except DecodeError:
        return
    assert encode_key_data(items) == data


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_behind_a_valid_header(tail: bytes) -> None:
    # a valid HDR (empty map) steering into random payload bytes reaches every payload parser
    for first in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 21):
        check(bytes([1, 0, first, 0, 0, 0, 0, 1, 0, 1]) + tail)


@settings(max_examples=800, deadline=None)
@given(
    st.sampled_from(sorted(GOLDEN)),
    st.lists(
        st.tuples(st.integers(0, 400), st.integers(0, 255), st.sampled_from(["set", "ins", "del"])),
        min_size=1,
        max_size=4,
    ),
)
def test_random_edits_of_golden_messages(name: str, edits: list[tuple[int, int, str]]) -> None:
    data = bytearray(GOLDEN[name])
    for pos, val, op in edits:
        pos %= len(data) + 1
        if op == "ins":
            data[pos:pos] = bytes([val])
        elif pos < len(data):
            if op == "set":
                data[pos] = val
            else:
                del data[pos]
    check(bytes(data))
    check(bytes(data), LENIENT)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 7))
def test_key_data_with_padding_allowance(data: bytes, pad: int) -> None:
    try:
        items = decode_key_data(data, LENIENT, max_zero_padding=pad)
    except DecodeError:
        return
    enc = encode_key_data(items)
    assert data.startswith(enc)
    assert len(data) - len(enc) <= pad and not any(data[len(enc) :])
