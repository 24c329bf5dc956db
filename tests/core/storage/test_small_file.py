"""Small files kept as two checksummed copies: round trip, repair, both lost, old formats, and
a decoder that never crashes on random or truncated bytes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.small_file import (
    HEAD,
    CorruptFile,
    SmallFile,
    copy_path,
    decimal,
    decimal_value,
    decode,
    encode,
)


def test_round_trip_writes_two_identical_copies(tmp_path: Path) -> None:
    f = SmallFile(tmp_path / "mark")
    assert f.read() is None
    f.write(b"42")
    f.write(b"43")
    assert f.path.read_bytes() == copy_path(f.path).read_bytes() == encode(2, b"43")
    assert SmallFile(f.path).read() == b"43"


@pytest.mark.parametrize("damaged", ["primary", "copy"])
def test_one_damaged_copy_is_repaired_with_a_warning(tmp_path: Path, caplog,
                                                     damaged: str) -> None:
    f = SmallFile(tmp_path / "mark")
    f.write(b"payload")
    bad = f.path if damaged == "primary" else f.copy
    data = bytearray(bad.read_bytes())
    data[HEAD.size + 2] ^= 0x10
    bad.write_bytes(data)
    with caplog.at_level(logging.WARNING):
        assert SmallFile(f.path).read() == b"payload"
    assert f"repaired {bad.name}" in caplog.text
    assert f.path.read_bytes() == f.copy.read_bytes()


def test_a_crash_between_the_two_writes_reads_the_newer_copy(tmp_path: Path) -> None:
    f = SmallFile(tmp_path / "mark")
    f.write(b"old")
    f.copy.write_bytes(encode(2, b"new"))  # the copy is written first; the primary never was
    assert SmallFile(f.path).read() == b"new"
    assert decode(f.path.read_bytes())[1] == b"new"


def test_both_damaged_raises_and_can_be_set_aside(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()  # marks tmp_path as the data directory
    f = SmallFile(tmp_path / "p" / "mark")
    f.path.parent.mkdir()
    f.write(b"x")
    f.path.write_bytes(b"junk")
    f.copy.write_bytes(b"")
    with pytest.raises(CorruptFile) as e:
        SmallFile(f.path).read()
    assert str(f.path) in str(e.value)
    f.set_aside("test")
    assert not f.path.exists() and not f.copy.exists()
    aside = sorted(p.relative_to(tmp_path).parts[-2:]
                   for p in (tmp_path / "lost+found").rglob("mark*"))
    assert aside == [("p", "mark"), ("p", "mark.copy")]


def test_missing_primary_means_missing_and_a_stale_copy_goes(tmp_path: Path) -> None:
    f = SmallFile(tmp_path / "mark")
    f.write(b"1")
    f.path.unlink()  # a delete a crash cut short, or a plain unlink of the primary
    assert SmallFile(f.path).read() is None and not f.copy.exists()


def test_old_format_loads_and_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "mark"
    path.write_text("1234\n")
    assert SmallFile(path, legacy=decimal).read() == b"1234"
    assert decode(path.read_bytes()) == (1, b"1234") == decode(copy_path(path).read_bytes())
    copy_path(path).write_text("99\n")  # a copy is never of the old format
    assert SmallFile(path, legacy=decimal).read() == b"1234"


def test_a_fresh_object_continues_the_sequence(tmp_path: Path) -> None:
    SmallFile(tmp_path / "mark").write(b"a")
    SmallFile(tmp_path / "mark").write(b"b")  # did not read first
    assert decode((tmp_path / "mark").read_bytes())[0] == 2


def test_oversized_files_are_not_read(tmp_path: Path) -> None:
    f = SmallFile(tmp_path / "mark")
    f.write(b"ok")
    with open(f.copy, "r+b") as fh:
        fh.truncate(HEAD.size + (64 << 20) + 1)  # sparse: costs no disk
    assert SmallFile(f.path).read() == b"ok"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decode_random_bytes_is_a_clean_error(data: bytes) -> None:
    try:
        seq, payload = decode(data)
    except ValueError:
        return
    assert encode(seq, payload) == data


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1), st.binary(max_size=100), st.data())
def test_decode_truncated_or_flipped_is_a_clean_error(seq: int, payload: bytes, data) -> None:
    good = encode(seq, payload)
    assert decode(good) == (seq, payload)
    cut = data.draw(st.integers(0, len(good) - 1))
    with pytest.raises(ValueError):
        decode(good[:cut])
    pos = data.draw(st.integers(0, len(good) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(good)
    flipped[pos] ^= 1 << bit
    with pytest.raises(ValueError):
        decode(bytes(flipped))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40))
def test_decimal_decoders_take_digits_only(data: bytes) -> None:
    try:
        payload = decimal(data)
    except ValueError:
        return
    assert payload.isdigit() and decimal_value(payload) == int(data.decode("ascii"))
