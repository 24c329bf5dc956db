"""The metadata state log: append-only, each entry checksummed, replayed on start.

Entry: `[u32 length][u32 crc32c(body)][body]`, body = UTF-8 JSON `{"i": index, "c": command}`.
A torn or corrupt tail (crash mid-write) is cut on open and logged.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import crc32c

log = logging.getLogger(__name__)
ENTRY_HEAD = struct.Struct("<II")
MAX_ENTRY = 16 << 20


class StateLog:
    """Appends metadata commands durably before they are applied and acknowledged."""

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self.size = 0
        self.next_index = 0

    def replay(self) -> Iterator[dict]:
        """Yield the commands in order; cut the file after the last valid entry."""
        data = memoryview(Path(self.path).read_bytes())
        pos = 0
        while pos + ENTRY_HEAD.size <= len(data):
            length, crc = ENTRY_HEAD.unpack_from(data, pos)
            body = data[pos + ENTRY_HEAD.size: pos + ENTRY_HEAD.size + length]
            if length > MAX_ENTRY or len(body) != length or crc32c.crc32c(body) != crc:
                break
            try:
                entry = json.loads(bytes(body))
            except ValueError:
                break
            if entry.get("i") != self.next_index:
                log.error("state log %s: entry %s out of order (expected %s); cutting",
                          self.path, entry.get("i"), self.next_index)
                break
            pos += ENTRY_HEAD.size + length
            self.next_index += 1
            yield entry["c"]
        if pos != len(data):
            log.warning("state log %s: cut %d bytes of torn or corrupt tail at %d", self.path,
                        len(data) - pos, pos)
            os.ftruncate(self.fd, pos)
        self.size = pos

    def append(self, command: dict) -> None:
        body = json.dumps({"i": self.next_index, "c": command}, separators=(",", ":")).encode()
        os.pwrite(self.fd, ENTRY_HEAD.pack(len(body), crc32c.crc32c(body)) + body, self.size)
        if self.fsync:
            os.fdatasync(self.fd)
        self.size += ENTRY_HEAD.size + len(body)
        self.next_index += 1

    def close(self) -> None:
        if self.fd >= 0:
            os.fdatasync(self.fd)
            os.close(self.fd)
            self.fd = -1
