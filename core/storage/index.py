"""SegmentIndex: one fixed-size entry per batch, searched by offset and by timestamp.

Entry (48 bytes, little endian): base offset u64, position u64, append time µs u64, max
timestamp µs u64, length u32, record count u32, encoding u8, flags u8, crc u32, check u16.

- `crc` is the CRC-32C of the batch's stored bytes (after stamping): a read compares it with one
  C call per batch before anything is served (`PartitionLog.read`).
- `check` is the low 16 bits of the CRC-32C of the entry's first 46 bytes, so a
  flipped bit in an entry (a wrong position, timestamp or encoding) is caught when the index is
  loaded, and the entry is rebuilt from the log.
- `flags`: HAS_CRC marks an entry written in this format. Entries of the first format (flags,
  check and crc all zero: the seven padding bytes it had) load as "legacy": their batches are
  verified by their own checksums instead, and the entry is upgraded when that succeeds.
  DAMAGED marks a range of the log that failed verification and could not be repaired yet: it
  is kept (never cut), and served as a storage error until a copy repairs it.
"""

from __future__ import annotations

import mmap
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyggy.core.crc import crc32c

ENTRY = struct.Struct("<QQQQIIBBIH")
ENTRY_SIZE = ENTRY.size  # 48
_CHECKED = ENTRY_SIZE - 2  # the check covers every byte before it
HAS_CRC = 1
DAMAGED = 2
_COLUMNS = ("base_offsets", "positions", "timestamps", "max_timestamps", "lengths", "counts",
            "encodings", "flags", "crcs")
_TYPES = "QQQQIIBBI"
# An entry's unpacked fields (`ENTRY`'s ten integers; nine without the check)
Fields = tuple[int, ...]


def pack_entry(base_offset: int, position: int, timestamp: int, max_timestamp: int,
               length: int, count: int, encoding: int, flags: int, crc: int) -> bytes:
    """An entry's bytes with its check filled in."""
    raw = ENTRY.pack(base_offset, position, timestamp, max_timestamp, length, count, encoding,
                     flags, crc, 0)[:_CHECKED]
    return raw + (crc32c(raw) & 0xFFFF).to_bytes(2, "little")


def entry_ok(raw: memoryview | bytes, fields: Fields, legacy_allowed: bool = True) -> bool:
    """True if the 48 bytes (unpacked as `fields`) are a sound entry: its check holds, or it
    is a legacy entry (flags, crc and check zero; a batch of some length and count) where one
    may still stand (`legacy_allowed`: no entry of this format came before it, so a zeroed
    sector never passes for legacy entries)."""
    if not fields[7] & HAS_CRC:
        return (legacy_allowed and fields[7] == 0 and fields[8] == 0 and fields[9] == 0
                and fields[4] > 0 and fields[5] > 0)
    return crc32c(raw[:_CHECKED]) & 0xFFFF == fields[9]


class SegmentIndex:
    """The in-memory twin of a segment's `.index` file.

    Columns are kept in typed arrays, so memory is one machine word per batch and field, and
    lookups are binary searches.
    """

    __slots__ = _COLUMNS

    def __init__(self) -> None:
        self.base_offsets = array("Q")
        self.positions = array("Q")
        self.timestamps = array("Q")
        self.max_timestamps = array("Q")
        self.lengths = array("I")
        self.counts = array("I")
        self.encodings = array("B")
        self.flags = array("B")
        self.crcs = array("I")

    def __len__(self) -> int:
        return len(self.base_offsets)

    def add(self, base_offset: int, position: int, timestamp: int, max_timestamp: int,
            length: int, count: int, encoding: int, flags: int = HAS_CRC, crc: int = 0) -> bytes:
        """Append an entry; return its on-disk bytes."""
        self.base_offsets.append(base_offset)
        self.positions.append(position)
        self.timestamps.append(timestamp)
        self.max_timestamps.append(max_timestamp)
        self.lengths.append(length)
        self.counts.append(count)
        self.encodings.append(encoding)
        self.flags.append(flags)
        self.crcs.append(crc)
        return pack_entry(base_offset, position, timestamp, max_timestamp, length, count,
                          encoding, flags, crc)

    def entry(self, i: int) -> tuple[int, int, int, int, int, int, int, int, int]:
        return (self.base_offsets[i], self.positions[i], self.timestamps[i],
                self.max_timestamps[i], self.lengths[i], self.counts[i], self.encodings[i],
                self.flags[i], self.crcs[i])

    def entry_bytes(self, i: int) -> bytes:
        return pack_entry(*self.entry(i))

    def set_crc(self, i: int, crc: int, flags: int = HAS_CRC) -> bytes:
        """Record a verified batch's CRC (upgrading a legacy entry, or clearing DAMAGED);
        return the entry's new bytes."""
        self.crcs[i] = crc
        self.flags[i] = flags
        return self.entry_bytes(i)

    def replace(self, i: int, entries: list[Fields]) -> None:
        """Replace entry i by `entries` (tuples as `entry` returns them)."""
        for n, (name, typecode) in enumerate(zip(_COLUMNS, _TYPES, strict=True)):
            getattr(self, name)[i:i + 1] = array(typecode, (e[n] for e in entries))

    def head(self, n: int) -> SegmentIndex:
        """A copy of the first n entries (column slices: no per-entry work)."""
        out = SegmentIndex()
        for name in _COLUMNS:
            setattr(out, name, getattr(self, name)[:n])
        return out

    def truncate(self, n: int) -> None:
        """Keep only the first n entries."""
        for name in _COLUMNS:
            del getattr(self, name)[n:]

    def find_offset(self, offset: int) -> int:
        """Index of the batch holding `offset` (or the first batch after it); len() if none."""
        i = bisect_right(self.base_offsets, offset) - 1
        if i < 0:
            return 0
        if offset < self.base_offsets[i] + self.counts[i]:
            return i
        return i + 1

    def find_timestamp(self, timestamp: int, use_max: bool = False) -> int:
        """Index of the first batch whose (max) timestamp is ≥ `timestamp`; len() if none.

        Timestamps are non-decreasing per segment because the log stamps append time and the
        max-timestamp column is kept monotonic by the writer.
        """
        col = self.max_timestamps if use_max else self.timestamps
        return bisect_left(col, timestamp)

    @classmethod
    def load(cls, data: bytes | mmap.mmap) -> SegmentIndex:
        """Parse an index file's bytes up to the first entry that fails its check (a torn
        final entry, or a damaged one: the log is the authority, recovery rebuilds the rest)."""
        fast = _load_columns(data)
        if fast is not None:
            return fast
        usable = len(data) - len(data) % ENTRY_SIZE
        view = memoryview(data)[:usable]
        rows = []
        pos = 0
        legacy = True
        for fields in ENTRY.iter_unpack(view):
            if not entry_ok(view[pos:pos + ENTRY_SIZE], fields, legacy):
                break
            legacy = legacy and not fields[7]
            rows.append(fields)
            pos += ENTRY_SIZE
        index = cls()
        if rows:
            columns = list(zip(*rows, strict=True))
            del columns[9]  # the check
            for name, typecode, values in zip(_COLUMNS, _TYPES, columns, strict=True):
                setattr(index, name, array(typecode, values))
        return index

    @classmethod
    def load_entries(cls, data: bytes | mmap.mmap) -> list[Fields | None]:
        """Every entry of an index file's bytes, None where an entry fails its check: what
        recovery consults to find valid batches past a damaged one."""
        usable = len(data) - len(data) % ENTRY_SIZE
        view = memoryview(data)
        out: list[Fields | None] = []
        pos = 0
        legacy = True
        for fields in ENTRY.iter_unpack(view[:usable]):
            ok = entry_ok(view[pos:pos + ENTRY_SIZE], fields, legacy)
            legacy = legacy and not (ok and fields[7])
            out.append(fields[:9] if ok else None)
            pos += ENTRY_SIZE
        return out

    def to_bytes(self) -> bytes:
        return b"".join(self.entry_bytes(i) for i in range(len(self)))


def _load_columns(data: bytes | mmap.mmap) -> SegmentIndex | None:
    """`SegmentIndex.load` without a Python step per field: when every entry is of this
    format (HAS_CRC) and passes its check, each column is cut out of the bytes by a strided
    slice and the checks are compared as one column. None when the entry-by-entry path must
    decide (a legacy or failing entry, a big-endian machine): it finds where loading stops."""
    n = len(data) // ENTRY_SIZE
    if sys.byteorder != "little" or not n:
        return None
    with memoryview(data) as whole, whole[:n * ENTRY_SIZE] as view:
        octets, words, halves = _typed("B", view), _typed("Q", view), _typed("I", view)
        flags = octets[41::ENTRY_SIZE]
        if flags.count(HAS_CRC) + flags.count(HAS_CRC | DAMAGED) != n:
            return None
        computed = array("H", [crc32c(view[at:at + _CHECKED]) & 0xFFFF
                               for at in range(0, n * ENTRY_SIZE, ENTRY_SIZE)])
    if computed != _gather("H", octets, 46, 2):
        return None
    index = SegmentIndex()
    q, i = ENTRY_SIZE // 8, ENTRY_SIZE // 4
    index.base_offsets, index.positions = words[0::q], words[1::q]
    index.timestamps, index.max_timestamps = words[2::q], words[3::q]
    index.lengths, index.counts = halves[8::i], halves[9::i]
    index.encodings, index.flags = octets[40::ENTRY_SIZE], flags
    index.crcs = _gather("I", octets, 42, 4)
    return index


def _typed(typecode: str, view: memoryview) -> array:  # type: ignore[type-arg]
    out = array(typecode)
    out.frombytes(view)
    return out


def _gather(typecode: str, octets: array, at: int, width: int) -> array:  # type: ignore[type-arg]
    """The unaligned `width`-byte field at byte `at` of every entry, as one column."""
    n = len(octets) // ENTRY_SIZE
    packed = bytearray(width * n)
    for k in range(width):
        packed[k::width] = octets[at + k::ENTRY_SIZE]
    out = array(typecode)
    out.frombytes(packed)
    return out


@contextmanager
def mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """An index file's bytes, mapped read-only instead of read (b"" for an empty file)."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if not size:
            yield b""
            return
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield mm
    finally:
        try:
            mm.close()
        except BufferError:  # a view still alive (a traceback's frame): unmapped when freed
            pass
