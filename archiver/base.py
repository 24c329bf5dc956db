"""The archiver interface, shared types and helpers.

An archiver stores immutable files (sealed segment logs and indexes, state-log snapshots) under
object keys (see `archiver.layout`) and reads byte ranges back. Every method blocks: the server
calls them from worker threads (`archiver.service`, `archiver.tiered`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import BinaryIO, Protocol

HASH_CHUNK = 1 << 20


class ArchiverError(Exception):
    """An archive operation failed. `permanent` errors (wrong credentials, missing bucket) will
    not go away by retrying soon; the server logs them loudly and retries slowly."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ChecksumMismatch(ArchiverError):
    """The stored object does not match what was uploaded."""


@dataclass(frozen=True, slots=True)
class Source:
    """A file to archive: an open descriptor (so a concurrent delete cannot cut it short),
    its length and SHA-256 (hex), computed before the upload starts."""

    fd: int
    size: int
    sha256: str

    @classmethod
    def open(cls, path: str | os.PathLike, size: int | None = None) -> Source:
        """Open `path` and hash its first `size` bytes (all of it when None)."""
        fd = os.open(path, os.O_RDONLY)
        try:
            if size is None:
                size = os.fstat(fd).st_size
            return cls(fd, size, sha256_fd(fd, size))
        except BaseException:
            os.close(fd)
            raise

    def reader(self, start: int = 0, end: int | None = None) -> _RangeReader:
        return _RangeReader(self.fd, start, self.size if end is None else end)

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


class _RangeReader:
    """A file-like view of fd[start:end) for upload bodies (pread: no shared file position)."""

    def __init__(self, fd: int, start: int, end: int) -> None:
        self.fd, self.start, self.end, self.pos = fd, start, end, start

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.end - self.pos:
            n = self.end - self.pos
        data = os.pread(self.fd, n, self.pos) if n else b""
        self.pos += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: self.start, 1: self.pos, 2: self.end}[whence]
        self.pos = min(max(base + offset, self.start), self.end)
        return self.pos - self.start

    def tell(self) -> int:
        return self.pos - self.start

    def __len__(self) -> int:
        return self.end - self.start


def sha256_fd(fd: int, size: int) -> str:
    h = hashlib.sha256()
    pos = 0
    while pos < size:
        chunk = os.pread(fd, min(HASH_CHUNK, size - pos), pos)
        if not chunk:
            raise ArchiverError(f"file shorter than {size} bytes")
        h.update(chunk)
        pos += len(chunk)
    return h.hexdigest()


def sha256_stream(stream: BinaryIO) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    while chunk := stream.read(HASH_CHUNK):
        h.update(chunk)
        n += len(chunk)
    return h.hexdigest(), n


@dataclass(frozen=True, slots=True)
class Stored:
    """An object confirmed in the archive."""

    key: str
    size: int
    sha256: str


class Archiver(Protocol):
    """Where sealed segments and state-log snapshots go. Implementations: `DiskArchiver`,
    `S3Archiver`; `FaultyArchiver` wraps one to inject faults in tests."""

    kind: str

    def describe(self) -> str:
        """Where the archive is, for log lines ("s3://bucket at http://...")."""
        ...

    def init(self) -> None:
        """Check that the archive is usable (create the directory, find the bucket); raise
        ArchiverError (permanent for wrong credentials or a missing bucket)."""
        ...

    def is_archived(self, key: str, sha256: str | None = None) -> bool:
        """True if `key` exists (and, given `sha256`, holds exactly that content)."""
        ...

    def archive(self, key: str, source: Source) -> Stored:
        """Store `source` under `key` (replacing any object there), verify the stored copy
        against the source's size and SHA-256, and return it. Raises ArchiverError; a
        ChecksumMismatch when the stored copy differs."""
        ...

    def read_range(self, key: str, start: int, length: int) -> bytes:
        """Bytes [start, start + length) of the object (exactly that many; raises otherwise)."""
        ...

    def read_all(self, key: str) -> bytes:
        """The whole object (indexes, state-log snapshots)."""
        ...

    def delete(self, keys: list[str]) -> None:
        """Delete objects; missing ones are fine."""
        ...

    def list(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under `prefix`, sorted by key."""
        ...
