"""A segment: `{start:020}.log` holding batches as stored, plus its `.index` (one entry a batch)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from pyggy.core.crc import crc32c
from pyggy.core.storage.index import ENTRY_SIZE, SegmentIndex


class Segment:
    """One log file and its index. Appends go to the end; reads are positional."""

    __slots__ = ("start_offset", "log_path", "index_path", "fd", "index_fd", "size", "index",
                 "next_offset", "sealed", "max_timestamp")

    def __init__(self, directory: Path, start_offset: int) -> None:
        self.start_offset = start_offset
        self.log_path = directory / f"{start_offset:020}.log"
        self.index_path = directory / f"{start_offset:020}.index"
        self.fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT, 0o644)
        self.index_fd = os.open(self.index_path, os.O_RDWR | os.O_CREAT, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.index = SegmentIndex()
        self.next_offset = start_offset
        self.sealed = False
        self.max_timestamp = 0

    # -- writing -------------------------------------------------------------------------
    def append(self, parts: list[bytes | bytearray | memoryview], length: int, base_offset: int,
               count: int, timestamp: int, max_timestamp: int, encoding: int) -> None:
        """Write one batch (given as buffers) at the end with one writev, then its index entry
        (holding the batch's CRC-32C).

        On an OSError (a full disk, an I/O error) or a short write, whatever part of the batch
        reached the files is cut off again before the error is raised, so the segment stays as
        it was: the batch is not stored and nothing after it moves.
        """
        crc = 0
        for part in parts:
            crc = crc32c(part, crc)
        n = len(self.index)
        try:
            written = os.pwritev(self.fd, parts, self.size) if len(parts) > 1 else os.pwrite(
                self.fd, parts[0], self.size)
            if written != length:  # a regular file writes short only when it runs out of room
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (short write to "
                              f"{self.log_path}: {written} of {length} bytes)")
            entry = self.index.add(base_offset, self.size, timestamp,
                                   max(self.max_timestamp, max_timestamp), length, count,
                                   encoding, crc=crc)
            os.pwrite(self.index_fd, entry, n * ENTRY_SIZE)
        except OSError:
            self.index.truncate(n)
            self._cut_back(n)
            raise
        self.max_timestamp = max(self.max_timestamp, max_timestamp)
        self.size += length
        self.next_offset = base_offset + count

    def _cut_back(self, entries: int) -> None:
        """Best effort after a failed append: the files end where the segment did."""
        for fd, end in ((self.fd, self.size), (self.index_fd, entries * ENTRY_SIZE)):
            try:
                os.ftruncate(fd, end)
            except OSError:
                pass  # recovery cuts a torn tail at the next start

    def rewrite_entry(self, i: int) -> None:
        """Write index entry i again (after it was repaired or upgraded in memory)."""
        os.pwrite(self.index_fd, self.index.entry_bytes(i), i * ENTRY_SIZE)

    def write_at(self, position: int, data: bytes) -> None:
        """Overwrite stored bytes in place with a verified copy, durably (a repair)."""
        if os.pwrite(self.fd, data, position) != len(data):
            raise OSError(f"short write to {self.log_path} at {position}")
        os.fdatasync(self.fd)

    def truncate(self, entries: int) -> None:
        """Keep the first `entries` batches; cut the log and index files after them."""
        self.index.truncate(entries)
        end = (self.index.positions[-1] + self.index.lengths[-1]) if entries else 0
        os.ftruncate(self.fd, end)
        os.ftruncate(self.index_fd, entries * ENTRY_SIZE)
        self.size = end
        self.next_offset = (self.index.base_offsets[-1] + self.index.counts[-1]) if entries \
            else self.start_offset
        self.max_timestamp = self.index.max_timestamps[-1] if entries else 0

    def rewrite_index(self) -> None:
        os.ftruncate(self.index_fd, 0)
        os.pwrite(self.index_fd, self.index.to_bytes(), 0)

    # -- reading -------------------------------------------------------------------------
    def read_span(self, first: int, last: int) -> bytes:
        """Bytes of batches first..last (inclusive index entries), contiguous on disk."""
        pos = self.index.positions[first]
        end = self.index.positions[last] + self.index.lengths[last]
        return os.pread(self.fd, end - pos, pos)

    def read_at(self, position: int, length: int) -> bytes:
        return os.pread(self.fd, length, position)

    @property
    def messages_count(self) -> int:
        return self.next_offset - self.start_offset

    # -- lifecycle -----------------------------------------------------------------------
    def sync(self) -> None:
        os.fdatasync(self.fd)
        os.fdatasync(self.index_fd)

    def close(self) -> None:
        for fd in (self.fd, self.index_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.fd = self.index_fd = -1

    def delete(self) -> None:
        """Remove the files (and an unfinished compacted copy: core/storage/segment_swap.py,
        which must not come back as the segment when the partition opens again)."""
        self.close()
        for path in (self.log_path, self.index_path):
            path.unlink(missing_ok=True)
        for leftover in (f"{self.log_path}.new", f"{self.index_path}.new"):
            Path(leftover).unlink(missing_ok=True)
        self.log_path.with_suffix(".swap").unlink(missing_ok=True)
