"""FaultyArchiver: wraps a real archiver and injects faults, for tests of failures that a real
server cannot be made to produce on demand (a flipped byte in transit, refused credentials on a
server that does not check signatures, a hung request)."""

from __future__ import annotations

import os
import tempfile
import threading
import time

from pyggy.archiver.base import Archiver, ArchiverError, Source, Stored


class FaultyArchiver:
    """Every switch can be flipped at any time from any thread."""

    def __init__(self, inner: Archiver) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.down = False  # every operation fails (unreachable archive)
        self.init_error: ArchiverError | None = None  # init() raises this
        self.corrupt_uploads = 0  # the next N uploads store a damaged copy
        self.fail_reads = False
        self.delay = 0.0  # seconds added to every operation (a slow archive)
        self.uploads: list[str] = []  # keys of completed, verified uploads
        self.attempts = 0
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"faulty({self.inner.describe()})"

    def _gate(self, what: str) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            raise ArchiverError(f"injected fault: archive unreachable ({what})")

    def init(self) -> None:
        self._gate("init")
        if self.init_error is not None:
            raise self.init_error
        self.inner.init()

    def is_archived(self, key: str, sha256: str | None = None) -> bool:
        self._gate("head")
        return self.inner.is_archived(key, sha256)

    def archive(self, key: str, source: Source) -> Stored:
        with self._lock:
            self.attempts += 1
        self._gate(f"upload {key}")
        with self._lock:
            corrupt = self.corrupt_uploads > 0
            if corrupt:
                self.corrupt_uploads -= 1
        if not corrupt:
            stored = self.inner.archive(key, source)
            with self._lock:
                self.uploads.append(key)
            return stored
        # Upload a copy with one byte flipped, but claim the source's checksum: the inner
        # archiver's verification has to catch it.
        data = bytearray(os.pread(source.fd, source.size, 0))
        if data:
            data[len(data) // 2] ^= 0xFF
        with tempfile.TemporaryFile() as fh:
            fh.write(data)
            fh.flush()
            return self.inner.archive(key, Source(fh.fileno(), source.size, source.sha256))

    def read_range(self, key: str, start: int, length: int) -> bytes:
        self._gate(f"read {key}")
        if self.fail_reads:
            raise ArchiverError(f"injected fault: read of {key} failed")
        return self.inner.read_range(key, start, length)

    def read_all(self, key: str) -> bytes:
        self._gate(f"read {key}")
        if self.fail_reads:
            raise ArchiverError(f"injected fault: read of {key} failed")
        return self.inner.read_all(key)

    def delete(self, keys: list[str]) -> None:
        self._gate("delete")
        self.inner.delete(keys)

    def list(self, prefix: str) -> list[tuple[str, int]]:
        self._gate("list")
        return self.inner.list(prefix)
