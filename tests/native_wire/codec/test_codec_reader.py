"""Reader: bounds checks, strings, trailing bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.errors import ErrorCode
from pyggy.native_wire.codec.reader import Reader, WireError


def test_integers_little_endian() -> None:
    raw = struct.pack("<BHIQQQf", 1, 0x0203, 0x04050607, 2**64 - 1, 5, 7, 1.5)
    r = Reader(raw)
    assert r.u8() == 1
    assert r.u16() == 0x0203
    assert r.u32() == 0x04050607
    assert r.u64() == 2**64 - 1
    assert r.u128() == 5 | (7 << 64)
    assert r.f32() == 1.5
    r.done()


def test_bytes_is_a_view_and_rest() -> None:
    r = Reader(bytearray(b"abcdef"))
    v = r.bytes(2)
    assert isinstance(v, memoryview) and bytes(v) == b"ab"
    assert r.remaining() == 4
    assert bytes(r.rest()) == b"cdef"
    assert r.remaining() == 0
    r.done()


@pytest.mark.parametrize("method", ["u8", "u16", "u32", "u64", "u128", "f32"])
def test_truncated_integers(method: str) -> None:
    with pytest.raises(WireError) as e:
        getattr(Reader(b""), method)()
    assert e.value.code == ErrorCode.INVALID_FORMAT


def test_bytes_beyond_end_and_negative() -> None:
    r = Reader(b"abc")
    with pytest.raises(WireError):
        r.bytes(4)
    with pytest.raises(WireError):
        r.bytes(-1)
    assert r.remaining() == 3  # a failed read consumes nothing


def test_huge_declared_length_refused_without_allocation() -> None:
    r = Reader(b"\xff\xff\xff\xff" + b"x")
    with pytest.raises(WireError):
        r.long_bytes()


def test_name() -> None:
    assert Reader(b"\x02s1").name() == "s1"
    assert Reader(b"\x02\xc3\xa9").name() == "é"
    with pytest.raises(WireError) as e:
        Reader(b"\x00").name()
    assert e.value.code == ErrorCode.INVALID_FORMAT
    with pytest.raises(WireError) as e:
        Reader(b"\x02\xff\xfe").name()
    assert e.value.code == ErrorCode.INVALID_UTF8
    with pytest.raises(WireError):
        Reader(b"\x05abc").name()


def test_short_and_long_strings() -> None:
    assert bytes(Reader(b"\x00").short_bytes()) == b""
    assert bytes(Reader(b"\x03xyz").short_bytes()) == b"xyz"
    assert Reader(b"\x02pw").short_string() == "pw"
    assert Reader(b"\x03\x00\x00\x00abc").long_string() == "abc"
    assert Reader(b"\x00\x00\x00\x00").long_string() == ""
    with pytest.raises(WireError):
        Reader(b"\x03\x00\x00\x00ab").long_string()


def test_done_rejects_trailing_bytes() -> None:
    r = Reader(b"\x01\x02")
    r.u8()
    with pytest.raises(WireError):
        r.done()


def test_start_position() -> None:
    r = Reader(b"\x00\x00\x07", pos=2)
    assert r.u8() == 7


_OPS = ["u8", "u16", "u32", "u64", "u128", "f32", "name", "short_bytes", "short_string",
        "long_bytes", "long_string", "done"]


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=64), st.lists(st.sampled_from(_OPS), max_size=12))
def test_random_reads_only_raise_wire_error(data: bytes, ops: list[str]) -> None:
    r = Reader(data)
    for op in ops:
        try:
            getattr(r, op)()
        except WireError:
            pass
        assert 0 <= r.pos <= len(data)
