"""A segment: `{start:020}.log` holding batches as stored, plus its `.index` (one entry a batch)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

from pyggy.core.crc import crc32c
from pyggy.core.storage.index import ENTRY_SIZE, SegmentIndex

PREALLOCATE_FROM = 256 * 1024  # a batch at least this big gets its blocks before its write

_fallocate: Callable[[int, int, int, int], int] | None = None
_FALLOC_FL_KEEP_SIZE = 1  # linux/falloc.h


def preallocate(fd: int, offset: int, length: int) -> None:
    """Allocate the blocks of ``[offset, offset + length)`` before a write fills them, without
    changing the file's size (Linux ``fallocate(2)`` with FALLOC_FL_KEEP_SIZE; Python has no
    binding, so libc through ctypes, loaded at the first big batch).

    On ext4 a write into unallocated space takes the delayed-allocation path page by page
    (block reservation, extent-status lookups); one call for the whole batch first is cheaper
    (BENCHMARKS.md, "The classic send per batch"). Only an optimisation: any error (no libc, a
    file system without fallocate, a full disk: the write then fails on its own) is ignored,
    and an unsupported call is not tried again. The size is unchanged, so recovery,
    truncation and retention see the same files; a failed write's ``_cut_back`` truncates
    whatever was allocated past the end."""
    global _fallocate
    if _fallocate is None:
        _fallocate = _load_fallocate()
    if _fallocate(fd, _FALLOC_FL_KEEP_SIZE, offset, length) != 0 and \
            _fallocate is not _unsupported and _errno() in (errno.EOPNOTSUPP, errno.ENOSYS):
        _fallocate = _unsupported


def _unsupported(fd: int, mode: int, offset: int, length: int) -> int:
    return 0


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def _load_fallocate() -> Callable[[int, int, int, int], int]:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fallocate = libc.fallocate
    except (OSError, AttributeError):
        return _unsupported
    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    fallocate.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], fallocate)


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
        if length >= PREALLOCATE_FROM:
            preallocate(self.fd, self.size, length)
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
