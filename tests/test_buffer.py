import pytest

from mbmsec.buffer import Buffer
from mbmsec.errors import DecodeError, TrailingDataError, TruncatedError


def test_pull_ints_big_endian() -> None:
    b = Buffer(bytes.fromhex("01 0203 04050607 08090a0b0c0d0e0f"))
    assert b.pull_uint8() == 1
    assert b.pull_uint16() == 0x0203
    assert b.pull_uint32() == 0x04050607
    assert b.pull_uint64() == 0x08090A0B0C0D0E0F
    assert b.eof()


def test_truncated_names_offset() -> None:
    b = Buffer(b"\x00\x01\x02", base_offset=10)
    b.pull_uint8()
    with pytest.raises(TruncatedError) as ei:
        b.pull_uint32()
    assert ei.value.offset == 11
    assert isinstance(ei.value, DecodeError)


def test_restrict_must_consume_exactly() -> None:
    b = Buffer(b"\x00\x01\x02\x03")
    with pytest.raises(TrailingDataError) as ei, b.restrict(3):
        b.pull_uint8()
    assert ei.value.offset == 1
    b2 = Buffer(b"\x00\x01\x02\x03")
    with b2.restrict(2):
        assert b2.pull_uint16() == 1
        with pytest.raises(TruncatedError):
            b2.pull_uint8()
    assert b2.pull_uint16() == 0x0203


def test_restrict_longer_than_data() -> None:
    b = Buffer(b"\x00")
    with pytest.raises(TruncatedError), b.restrict(5):
        pass


def test_push() -> None:
    b = Buffer()
    b.push_uint8(1)
    b.push_uint16(2)
    b.push_uint32(3)
    b.push_uint64(4)
    b.push_bytes(b"xy")
    assert b.getvalue() == bytes.fromhex("01 0002 00000003 0000000000000004") + b"xy"
    assert b.written == 17
