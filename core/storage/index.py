"""SegmentIndex: one fixed-size entry per batch, searched by offset and by timestamp."""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left, bisect_right

# base_offset, position, timestamp (append time, µs), max_timestamp (µs), length, count, encoding
ENTRY = struct.Struct("<QQQQIIB7x")
ENTRY_SIZE = ENTRY.size  # 48


class SegmentIndex:
    """The in-memory twin of a segment's `.index` file.

    Columns are kept in typed arrays, so memory is one machine word per batch and field, and
    lookups are binary searches.
    """

    __slots__ = ("base_offsets", "positions", "timestamps", "max_timestamps", "lengths",
                 "counts", "encodings")

    def __init__(self) -> None:
        self.base_offsets = array("Q")
        self.positions = array("Q")
        self.timestamps = array("Q")
        self.max_timestamps = array("Q")
        self.lengths = array("I")
        self.counts = array("I")
        self.encodings = array("B")

    def __len__(self) -> int:
        return len(self.base_offsets)

    def add(self, base_offset: int, position: int, timestamp: int, max_timestamp: int,
            length: int, count: int, encoding: int) -> bytes:
        """Append an entry; return its on-disk bytes."""
        self.base_offsets.append(base_offset)
        self.positions.append(position)
        self.timestamps.append(timestamp)
        self.max_timestamps.append(max_timestamp)
        self.lengths.append(length)
        self.counts.append(count)
        self.encodings.append(encoding)
        return ENTRY.pack(base_offset, position, timestamp, max_timestamp, length, count,
                          encoding)

    def entry(self, i: int) -> tuple[int, int, int, int, int, int, int]:
        return (self.base_offsets[i], self.positions[i], self.timestamps[i],
                self.max_timestamps[i], self.lengths[i], self.counts[i], self.encodings[i])

    def truncate(self, n: int) -> None:
        """Keep only the first n entries."""
        for col in (self.base_offsets, self.positions, self.timestamps, self.max_timestamps,
                    self.lengths, self.counts, self.encodings):
            del col[n:]

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
    def load(cls, data: bytes) -> SegmentIndex:
        """Parse an index file's bytes; a torn final entry is ignored."""
        index = cls()
        usable = len(data) - len(data) % ENTRY_SIZE
        for fields in ENTRY.iter_unpack(memoryview(data)[:usable]):
            index.add(*fields)
        return index

    def to_bytes(self) -> bytes:
        return b"".join(ENTRY.pack(*self.entry(i)) for i in range(len(self)))
