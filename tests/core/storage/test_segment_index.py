"""SegmentIndex entries: a CRC of each stored batch, and a check that catches a bad entry."""

from __future__ import annotations

import struct

from hypothesis import given
from hypothesis import strategies as st
from pyggy.core.storage.index import DAMAGED, ENTRY_SIZE, HAS_CRC, SegmentIndex


def sample(n: int = 5) -> SegmentIndex:
    idx = SegmentIndex()
    for i in range(n):
        idx.add(100 + 10 * i, 1000 * i, 7_000 + i, 9_000 + i, 1000, 10, 1 + i % 2, HAS_CRC,
                0xDEAD0000 + i)
    return idx


def test_entries_round_trip_through_their_file_bytes() -> None:
    idx = sample()
    data = idx.to_bytes()
    assert len(data) == 5 * ENTRY_SIZE == 240
    again = SegmentIndex.load(data)
    assert [again.entry(i) for i in range(5)] == [idx.entry(i) for i in range(5)]
    assert again.crcs[3] == 0xDEAD0003 and again.flags[3] == HAS_CRC


def test_every_single_bit_flip_in_an_entry_is_caught_and_loading_stops_there() -> None:
    data = sample().to_bytes()
    for bit in range(ENTRY_SIZE * 8):
        bad = bytearray(data)
        bad[2 * ENTRY_SIZE + bit // 8] ^= 1 << (bit % 8)
        assert len(SegmentIndex.load(bytes(bad))) == 2, f"bit {bit} not caught"
        entries = SegmentIndex.load_entries(bytes(bad))
        assert entries[2] is None and entries[3] is not None


def test_a_zeroed_sector_ends_the_trusted_prefix() -> None:
    data = bytearray(sample(200).to_bytes())
    data[4096:8192] = bytes(4096)
    assert len(SegmentIndex.load(bytes(data))) == 4096 // ENTRY_SIZE


def test_first_format_entries_load_as_legacy_without_a_crc() -> None:
    old = struct.Struct("<QQQQIIB7x")  # the first index format: seven zero padding bytes
    data = b"".join(old.pack(10 * i, 100 * i, i, i, 100, 10, 1) for i in range(3))
    idx = SegmentIndex.load(data)
    assert len(idx) == 3 and list(idx.flags) == [0, 0, 0] and list(idx.crcs) == [0, 0, 0]
    idx.set_crc(0, 1234)  # a verified first batch is upgraded in place
    again = SegmentIndex.load(idx.to_bytes())
    assert len(again) == 1 and again.flags[0] == HAS_CRC and again.crcs[0] == 1234
    # legacy entries never follow an upgraded one: they would be a zeroed sector's look-alike
    idx.set_crc(1, 1)
    idx.set_crc(2, 2)
    assert len(SegmentIndex.load(idx.to_bytes())) == 3


def test_replace_splices_entries_for_a_repaired_damaged_range() -> None:
    idx = sample(3)
    idx.add(130, 3000, 1, 1, 2000, 20, 0, HAS_CRC | DAMAGED, 0)
    idx.add(150, 5000, 1, 1, 1000, 10, 1, HAS_CRC, 5)
    idx.replace(3, [(130, 3000, 1, 1, 1000, 10, 1, HAS_CRC, 1),
                    (140, 4000, 1, 1, 1000, 10, 2, HAS_CRC, 2)])
    assert list(idx.base_offsets) == [100, 110, 120, 130, 140, 150]
    assert list(idx.flags) == [HAS_CRC] * 6
    assert idx.find_offset(145) == 4


@given(st.binary(max_size=10 * ENTRY_SIZE + 7))
def test_random_index_bytes_never_crash_the_loader(data: bytes) -> None:
    idx = SegmentIndex.load(data)
    entries = SegmentIndex.load_entries(data)
    assert len(idx) <= len(entries) == len(data) // ENTRY_SIZE
    assert all(e is not None for e in entries[:len(idx)])


def _entry_by_entry(data: bytes) -> list[tuple[int, ...]]:
    """What loading keeps, by the entry-by-entry rule (load_entries up to the first failure)."""
    out = []
    for e in SegmentIndex.load_entries(data):
        if e is None:
            break
        out.append(e)
    return out


_fields = st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                    st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255),
                    st.sampled_from([HAS_CRC, HAS_CRC | DAMAGED]), st.integers(0, 2**32 - 1))


@given(st.lists(_fields, max_size=12), st.lists(st.tuples(st.integers(0, 10**6),
                                                          st.integers(1, 255)), max_size=3),
       st.integers(0, ENTRY_SIZE - 1))
def test_the_column_loader_keeps_what_the_entry_by_entry_rule_keeps(
        rows: list[tuple[int, ...]], flips: list[tuple[int, int]], tail: int) -> None:
    """Every field lands in its column (the strided slices of index._load_columns), and a
    mutated file (flipped bytes, a torn tail) loads exactly the entries the rule accepts."""
    idx = SegmentIndex()
    for r in rows:
        idx.add(*r)
    data = bytearray(idx.to_bytes() + bytes(tail))
    assert [SegmentIndex.load(bytes(data)).entry(i) for i in range(len(rows))] == rows
    for at, mask in flips:
        if data:
            data[at % len(data)] ^= mask
    loaded = SegmentIndex.load(bytes(data))
    assert [loaded.entry(i) for i in range(len(loaded))] == _entry_by_entry(bytes(data))


def test_head_copies_the_first_entries() -> None:
    idx = sample(5)
    head = idx.head(3)
    assert [head.entry(i) for i in range(3)] == [idx.entry(i) for i in range(3)]
    head.add(1, 1, 1, 1, 1, 1, 1)
    assert len(head) == 4 and len(idx) == 5
