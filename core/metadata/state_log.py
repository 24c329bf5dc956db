"""The metadata state log: append-only, each entry checksummed, mirrored, replayed on start.

Entry: `[u32 length][u32 crc32c(body)][body]`, body = UTF-8 JSON `{"i": index, "c": command}`.

Redundancy: a mirrored log. Every entry is written to `state/state.log` and to
`state/state.log.copy` at the same byte position, one file after the other (each written and,
with `fsync`, fdatasync'd before the other is touched), before the command is applied. On open
both files are read and walked entry by entry: each entry is taken from whichever copy verifies
(length, CRC-32C, JSON, index continuity); a copy that differs from the verified bytes is
rewritten from them, with a warning naming the entry. The metadata is small and changes rarely,
so two full copies cost little; unlike snapshots they keep `state/state.log` a complete log, the
file the archiver uploads and `pyggy-restore` writes back.

Where no copy holds a valid entry at position p:
- torn tail: no valid entry follows and some copy simply ends at p (a crash cut the append
  short: it was never acknowledged) — both copies are cut at p, with a warning;
- damage: a valid entry follows, or, with `fsync`, every copy holds bytes at p that do not
  verify (an append tears at most one copy, so this was committed) — `CorruptState` names the
  file, byte offset and entry index and the ways out: `pyggy-restore` from the archive, or
  `pyggy-server --repair-state`, which keeps the provable prefix (the entries before p), copies
  both damaged files to `<data>/lost+found/` and cuts them at p.
A data directory from before the mirror (one `state.log`) opens as a single copy (any bad entry
with nothing valid after it is a torn tail, as before) and gets its mirror written.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Sequence
from dataclasses import field
from pathlib import Path

from pyggy.core.crc import crc32c
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.lean import lean
from pyggy.core.lost_found import LostAndFound
from pyggy.core.metadata.commands import MetadataCommand
from pyggy.core.small_file import CorruptFile

log = logging.getLogger(__name__)
ENTRY_HEAD = struct.Struct("<II")
MAX_ENTRY = 16 << 20
MIRROR_SUFFIX = ".copy"


class CorruptState(CorruptFile):
    """The state log is damaged in every copy at one entry; replay cannot go on."""

    def __init__(self, path: Path, offset: int, index: int, reasons: str) -> None:
        self.offset, self.index = offset, index
        super().__init__(path, (
            f"state log {path}: entry {index} at byte {offset} is damaged in every copy "
            f"({reasons}) and cannot be recovered; the server will not start on partial "
            f"metadata. Ways out: restore the metadata archived by [data_maintenance.state] "
            f"with `pyggy-restore --force`, or start once with `pyggy-server --repair-state` "
            f"to keep the {index} entries before it and move the damaged state files to "
            f"<data>/lost+found/ (streams they describe are kept there too, never deleted)"))


def entry_at(data: bytes | memoryview, pos: int,
             index: int) -> tuple[MetadataCommand, int] | str | None:
    """The command of a valid entry `index` at `pos` and where it ends; None when the data ends
    at `pos`; otherwise why the bytes there are not that entry."""
    if pos >= len(data):
        return None
    if pos + ENTRY_HEAD.size > len(data):
        return "incomplete header"
    length, crc = ENTRY_HEAD.unpack_from(data, pos)
    end = pos + ENTRY_HEAD.size + length
    if length > MAX_ENTRY or end > len(data):
        return f"length {length} runs past the end"
    body = bytes(data[pos + ENTRY_HEAD.size:end])
    if crc32c(body) != crc:
        return "checksum mismatch"
    try:
        entry = json.loads(body)
    except ValueError:
        return "not JSON"
    if not isinstance(entry, dict) or not isinstance(entry.get("c"), dict):
        return "not an entry"
    if entry.get("i") != index:
        return f"index {entry.get('i')!r} where {index} was expected"
    return entry["c"], end


def valid_entry_after(data: bytes | memoryview, pos: int, index: int) -> int | None:
    """The first position after `pos` holding a valid entry with an index above `index`."""
    for q in range(pos + 1, len(data) - ENTRY_HEAD.size + 1):
        length, crc = ENTRY_HEAD.unpack_from(data, q)
        end = q + ENTRY_HEAD.size + length
        if length > MAX_ENTRY or end > len(data):
            continue
        body = bytes(data[q + ENTRY_HEAD.size:end])
        if crc32c(body) != crc:
            continue
        try:
            entry = json.loads(body)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("i"), int) and entry["i"] > index:
            return q
    return None


@lean
class Damage:
    """Where a state log is damaged."""

    offset: int
    index: int
    reasons: str


@lean
class Merged:
    """What the copies of a state log prove: the commands and their verified bytes."""

    commands: list[MetadataCommand] = field(default_factory=list)
    good: bytearray = field(default_factory=bytearray)
    # per copy: (entry index, byte offset, why) of each entry taken from another copy
    repaired: list[list[tuple[int, int, str]]] = field(default_factory=list)
    damage: Damage | None = None  # set when replay had to stop before the end


def merge(copies: Sequence[bytes | memoryview], strict_tail: bool,
          names: Sequence[str] = ("state.log", "state.log.copy")) -> Merged:
    """Walk the copies entry by entry (sans-I/O). `strict_tail`: an entry present but bad in
    every copy at the end is damage, not a torn tail (mirrored copies written with fsync)."""
    out = Merged(repaired=[[] for _ in copies])
    pos = index = 0
    while True:
        found = [entry_at(c, pos, index) for c in copies]
        valid = [f for f in found if isinstance(f, tuple)]
        if valid:
            cmd, end = valid[0]
            chosen = bytes(copies[found.index(valid[0])][pos:end])
            for n, f in enumerate(found):
                if not isinstance(f, tuple):
                    out.repaired[n].append((index, pos, f or "missing"))
                elif bytes(copies[n][pos:f[1]]) != chosen:
                    out.damage = Damage(pos, index, "the copies hold different valid entries")
                    return out
            out.commands.append(cmd)
            out.good += chosen
            pos, index = end, index + 1
            continue
        if all(f is None for f in found):
            return out
        reasons = "; ".join(f"{names[n]}: {f or 'ends here'}" for n, f in enumerate(found))
        later = any(valid_entry_after(c, pos, index) is not None for c in copies)
        if later or (strict_tail and None not in found):
            out.damage = Damage(pos, index, reasons)
        return out


class StateLog:
    """Appends metadata commands durably, to both copies, before they are applied."""

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.mirror = self.path.with_name(self.path.name + MIRROR_SUFFIX)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fds: list[int] = []
        self.size = 0
        self.next_index = 0

    @property
    def fd(self) -> int:
        return self.fds[0] if self.fds else -1

    # -- open / replay -------------------------------------------------------------------
    def replay(self, repair: bool = False,
               lost_found: LostAndFound | None = None) -> list[MetadataCommand]:
        """Open both copies and return the commands in order, repairing a damaged copy and
        cutting a torn tail; `CorruptState` when every copy is damaged at one entry, unless
        `repair` (then the provable prefix is kept, the damaged files copied to lost+found)."""
        copies = [_read(self.path), _read(self.mirror)]
        mirrored = self.mirror.exists()
        merged = merge(copies if mirrored else copies[:1], strict_tail=mirrored and self.fsync,
                       names=(self.path.name, self.mirror.name))
        if merged.damage is not None:
            d = merged.damage
            if not repair:
                raise CorruptState(self.path, d.offset, d.index, d.reasons)
            found = lost_found or LostAndFound.near(self.path)
            why = f"state log damaged at entry {d.index}, byte {d.offset} (--repair-state)"
            for p in (self.path, self.mirror):
                if p.exists():
                    found.copy(p, why)
            log.warning("state log %s: --repair-state keeps the %d entries (%d bytes) before "
                        "entry %d at byte %d (%s); what follows is in %s", self.path, d.index,
                        d.offset, d.index, d.offset, d.reasons, found.folder)
        self._report(merged, copies, mirrored)
        self.fds = [os.open(p, os.O_RDWR | os.O_CREAT, 0o644) for p in (self.path, self.mirror)]
        for fd, data in zip(self.fds, copies, strict=True):
            _converge(fd, data, merged.good, self.fsync)
        self.size = len(merged.good)
        self.next_index = len(merged.commands)
        return merged.commands

    def _report(self, merged: Merged, copies: list[bytes], mirrored: bool) -> None:
        good = len(merged.good)
        cut = max(len(c) for c in copies) - good
        if merged.damage is None and cut > 0:
            log.warning("state log %s: cut %d bytes of torn tail at byte %d (entry %d: an "
                        "append a crash interrupted, never acknowledged)", self.path, cut, good,
                        len(merged.commands))
        if not mirrored:
            if copies[0]:
                log.info("state log %s: writing its mirror %s (upgrade to a mirrored log)",
                         self.path, self.mirror.name)
            return
        names = (self.path, self.mirror)
        for n, fixes in enumerate(merged.repaired):
            fixes = [f for f in fixes if f[1] < len(copies[n])]  # not just a shorter copy
            if fixes:
                index, pos, why = fixes[0]
                log.warning("state log %s: %d damaged entr%s repaired from %s (first: entry "
                            "%d at byte %d: %s)", names[n], len(fixes),
                            "y" if len(fixes) == 1 else "ies", names[1 - n].name, index, pos,
                            why)
            elif len(copies[n]) < good:
                log.warning("state log %s: %d missing bytes restored from %s", names[n],
                            good - len(copies[n]), names[1 - n].name)

    def read_verified(self, size: int) -> bytes:
        """The first `size` bytes of the log, each entry verified in either copy (for the
        archiver; runs on a worker thread while appends go on past `size`)."""
        copies = [_read(p)[:size] for p in (self.path, self.mirror)]
        merged = merge(copies, strict_tail=True)
        if merged.damage is not None or len(merged.good) != size:
            d = merged.damage or Damage(len(merged.good), len(merged.commands), "short")
            raise CorruptState(self.path, d.offset, d.index, d.reasons)
        return bytes(merged.good)

    # -- append --------------------------------------------------------------------------
    def append(self, command: MetadataCommand) -> int:
        """Write the command to both copies (fdatasync'd with `fsync`); return the position
        before it, for `rollback`. On OSError the partial write is cut off and it re-raises."""
        body = json.dumps({"i": self.next_index, "c": command}, separators=(",", ":")).encode()
        if len(body) > MAX_ENTRY:  # replay would take it for damage: never write it
            raise IggyError(ErrorCode.INVALID_COMMAND,
                            f"state command {command.get('type')} too large ({len(body)} B)")
        data = ENTRY_HEAD.pack(len(body), crc32c(body)) + body
        pos = self.size
        try:
            for fd in self.fds:
                _write_all(fd, data, pos)
                if self.fsync:
                    os.fdatasync(fd)
        except OSError:
            self._cut(pos)
            raise
        self.size += len(data)
        self.next_index += 1
        return pos

    def rollback(self, pos: int) -> None:
        """Undo the last append (its command did not apply). Should the cut not reach the disk,
        replay meets the command again, it fails again and is skipped, as it was live."""
        self._cut(pos)
        self.size = pos
        self.next_index -= 1

    def _cut(self, pos: int) -> None:
        for fd in self.fds:
            try:
                os.ftruncate(fd, pos)
            except OSError as e:
                log.error("state log %s: could not cut back to byte %d: %s", self.path, pos, e)

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        self.fds = []


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _write_all(fd: int, data: bytes, pos: int) -> None:
    view, done = memoryview(data), 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], pos + done)


def _converge(fd: int, data: bytes, good: bytes | bytearray, fsync: bool) -> None:
    """Make one copy hold exactly the verified bytes (rewriting from the first difference)."""
    if data == good:
        return
    first = next((i for i, (a, b) in enumerate(zip(data, good, strict=False)) if a != b),
                 min(len(data), len(good)))
    _write_all(fd, bytes(good[first:]), first)
    os.ftruncate(fd, len(good))
    if fsync:
        os.fdatasync(fd)
