"""Small metadata files kept as two checksummed copies: `<name>` and `<name>.copy`.

Each copy is `[4s magic "PGSF"][u64 sequence][u32 payload length][u32 crc32c][payload]`, the
CRC-32C covering sequence, length and payload; a copy is valid only when all of it verifies and
the file is exactly that long. A write bumps the sequence and overwrites the copy in place, then
the primary (superblock style: each copy is written, and with `durable` fdatasync'd, before the
other is touched, so at every instant at least one copy is complete). No temp file, rename or
directory fsync per write: a torn copy is what the other copy is for. A read takes the valid copy
with the highest sequence and rewrites the other one from it (a warning names the file); if no
copy is valid it raises `CorruptFile` and the caller applies that file kind's policy (see its
module). The primary decides existence: when it is missing the file is missing, and a leftover
copy (a delete or a first write cut short by a crash) is removed.

Files written before this format (a `legacy` decoder per kind turns their bytes into a payload)
still load, and are rewritten in this format with a copy when read.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from pathlib import Path

from pyggy.core.crc import crc32c
from pyggy.core.lost_found import LostAndFound

log = logging.getLogger(__name__)

MAGIC = b"PGSF"
HEAD = struct.Struct("<4sQII")  # magic, sequence, payload length, crc32c
_SEQ_LEN = struct.Struct("<QI")
COPY_SUFFIX = ".copy"
MAX_PAYLOAD = 64 << 20  # a flipped length bit cannot make a read allocate more

Legacy = Callable[[bytes], bytes]  # old-format bytes -> payload, ValueError if not one


class CorruptFile(Exception):
    """No copy of a small file verifies."""

    def __init__(self, path: Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(message)


def encode(seq: int, payload: bytes) -> bytes:
    body = _SEQ_LEN.pack(seq, len(payload))
    return HEAD.pack(MAGIC, seq, len(payload), crc32c(body + payload)) + payload


def decode(data: bytes) -> tuple[int, bytes]:
    """(sequence, payload) of one copy; ValueError unless every byte of it verifies."""
    if len(data) < HEAD.size:
        raise ValueError(f"{len(data)} bytes is shorter than the header")
    magic, seq, length, crc = HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ValueError("no PGSF header")
    if length > MAX_PAYLOAD or HEAD.size + length != len(data):
        raise ValueError(f"length {length} does not match the file ({len(data)} bytes)")
    payload = bytes(data[HEAD.size:])
    if crc32c(_SEQ_LEN.pack(seq, length) + payload) != crc:
        raise ValueError("checksum mismatch")
    return seq, payload


def decimal_value(payload: bytes) -> int:
    """The number a payload of ASCII decimal digits holds (ValueError otherwise)."""
    text = payload.decode("ascii", "replace")
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"not a decimal number: {text[:40]!r}")
    return int(text)


def decimal(data: bytes) -> bytes:
    """`Legacy` decoder of the old files holding one decimal number and a newline."""
    payload = data.strip()
    decimal_value(payload)
    return payload


def copy_path(path: Path) -> Path:
    return path.with_name(path.name + COPY_SUFFIX)


def _read_bounded(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size > HEAD.size + MAX_PAYLOAD:
            raise ValueError(f"{size} bytes is larger than any small file")
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view, pos = memoryview(data), 0
    while pos < len(view):
        pos += os.pwrite(fd, view[pos:], pos)


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SmallFile:
    """One small file: `read()` the newest valid copy, `write()` both, `remove()` both."""

    def __init__(self, path: Path, durable: bool = True, legacy: Legacy | None = None) -> None:
        self.path = Path(path)
        self.copy = copy_path(self.path)
        self.durable = durable
        self.legacy = legacy
        self.seq = 0
        self.known = False  # seq is that of the copies on disk (after a read or a write)

    def _parse(self, path: Path) -> tuple[int, bytes] | str | None:
        """(seq, payload), None when missing, or why the copy is unusable."""
        try:
            data = _read_bounded(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            return str(e)
        try:
            return decode(data)
        except ValueError as e:  # only a primary can be of the old format (it had no copy)
            if self.legacy is None or data[:4] == MAGIC or path != self.path:
                return str(e)
        try:
            return 0, self.legacy(data)
        except (ValueError, UnicodeDecodeError) as e:
            return f"neither format: {e}"

    def read(self) -> bytes | None:
        """The payload, None when there is no file; CorruptFile when no copy verifies."""
        first = self._parse(self.path)
        if first is None:
            if self.copy.exists():  # a delete or a first write that a crash cut short
                self.copy.unlink(missing_ok=True)
            return None
        second = self._parse(self.copy)
        valid = [c for c in (first, second) if isinstance(c, tuple)]
        if not valid:
            why = f"{first}; {self.copy.name}: {second or 'missing'}"
            raise CorruptFile(self.path, f"{self.path}: no valid copy ({why})")
        seq, payload = max(valid, key=lambda c: c[0])
        self.seq, self.known = seq, True
        if seq == 0:  # old format: rewrite it in this one, with its copy
            self._repair(payload, "upgraded to two checksummed copies", logging.INFO)
        elif first != (seq, payload) or second != (seq, payload):
            bad = self.path if first != (seq, payload) else self.copy
            found = (first if bad == self.path else second) or "missing"
            self._repair(payload, f"repaired {bad.name} from the other copy ({found})",
                         logging.WARNING)
        return payload

    def _repair(self, payload: bytes, what: str, level: int) -> None:
        try:
            self.write(payload)
        except OSError as e:
            log.warning("%s: could not rewrite (%s); using the valid copy", self.path, e)
            return
        log.log(level, "%s: %s", self.path, what)

    def write(self, payload: bytes) -> None:
        """Write both copies (the copy first, then the primary) with the next sequence."""
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"{len(payload)} bytes is too large for a small file")
        if not self.known:  # continue the sequence of copies written by someone else
            seqs = [c[0] for c in map(self._parse, (self.path, self.copy))
                    if isinstance(c, tuple)]
            self.seq, self.known = max(seqs, default=0), True
        data = encode(self.seq + 1, payload)
        created = not self.path.exists()
        self._put(self.copy, data)
        self._put(self.path, data)
        self.seq += 1
        if created and self.durable:
            sync_dir(self.path.parent)

    def _put(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            _write_all(fd, data)
            if os.fstat(fd).st_size > len(data):
                os.ftruncate(fd, len(data))
            if self.durable:
                os.fdatasync(fd)
        finally:
            os.close(fd)

    def remove(self) -> None:
        """Delete both copies (the primary first: a leftover copy means "missing")."""
        self.path.unlink(missing_ok=True)
        self.copy.unlink(missing_ok=True)
        self.seq, self.known = 0, True
        if self.durable and self.path.parent.exists():
            sync_dir(self.path.parent)

    def set_aside(self, why: str, lost_found: LostAndFound | None = None) -> None:
        """Move both copies to lost+found (after `CorruptFile`: keep them, use them never)."""
        found = lost_found or LostAndFound.near(self.path)
        for p in (self.path, self.copy):
            if p.exists():
                found.move(p, why)
        self.seq, self.known = 0, True
