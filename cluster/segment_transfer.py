"""State transfer of a partition's segments: the checkpoint manifest, serving index entries and
batches to a peer, fetching and verifying them, installing them.

A partition checkpoint (`PartitionMachine.snapshot`) is a manifest: the log's next and start
offsets, the applied-op marker, the DeleteRecords floor, and per local segment its start
offset, entry count, size and the CRC-32C of its first and last batch (what the index holds).
Replicas store byte-identical segments, and a segment's first `entries` entries never change
while it exists (appends go at its end), so any peer still holding the segment can serve that
prefix; the first and last CRC tell a prefix of another history (a purge that refilled
segment 0) from this one.

A replica whose log lacks what the manifest names (`lacks`) fetches it from a peer
(`SegmentFetch`, one request in flight): `REQUEST_SEGMENT` asks for index entries from a
position, `SEGMENT_CHUNK` answers with whole batches (their index entries, then their bytes,
at most `snapshot_chunk` bytes unless one batch is bigger). Every chunk is verified before a
byte of it is kept: each entry's own check, offsets and positions continuing the segment, the
batch's CRC-32C against its entry and the batch's own checksums (`recognise`, as recovery
does); a chunk that fails is refused and asked for again from the next peer. Segments are
staged under `<partition>/xfer/`, fsynced, then installed (`install`): files the manifest does
not name go to lost+found (never deleted), staged files replace the live ones with one rename
each, and the log reopens from its files.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
from bisect import bisect_left
from dataclasses import dataclass

from pyggy.consensus.message import HEADER_SIZE, Command, Message
from pyggy.core.crc import crc32c
from pyggy.core.records.encoding import recognise
from pyggy.core.storage.index import DAMAGED, ENTRY, ENTRY_SIZE, HAS_CRC, entry_ok
from pyggy.core.storage.partition_log import PartitionLog
from pyggy.core.storage.segment import Segment

log = logging.getLogger(__name__)
STAGING = "xfer"
GONE = 1  # SEGMENT_CHUNK flags: the peer no longer holds that prefix
_HEAD = struct.Struct("<QQQQI")  # next offset, start offset, marker, floor, segments
_SEG = struct.Struct("<QQQII")  # start offset, entries, size, first CRC, last CRC
_LEGACY = struct.Struct("<QQQ")  # the manifest before state transfer: no segment list
SEGMENTS_MAX = 1 << 20
COPY_CHUNK = 8 << 20  # bytes a staged segment's local prefix is copied by


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    start: int
    entries: int
    size: int
    first_crc: int
    last_crc: int


@dataclass(frozen=True, slots=True)
class Manifest:
    next_offset: int
    start_offset: int
    marker: int
    floor: int = 0
    segments: tuple[SegmentInfo, ...] | None = None  # None: a manifest of the old format

    def encode(self) -> bytes:
        segs = self.segments or ()
        return _HEAD.pack(self.next_offset, self.start_offset, self.marker, self.floor,
                          len(segs)) + b"".join(
            _SEG.pack(s.start, s.entries, s.size, s.first_crc, s.last_crc) for s in segs)

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        if len(data) == _LEGACY.size:
            return cls(*_LEGACY.unpack(data))
        if len(data) < _HEAD.size:
            raise ValueError("partition manifest too short")
        next_offset, start, marker, floor, count = _HEAD.unpack_from(data)
        if count > SEGMENTS_MAX or len(data) != _HEAD.size + count * _SEG.size:
            raise ValueError("partition manifest size does not match its segment count")
        segs = tuple(SegmentInfo(*_SEG.unpack_from(data, _HEAD.size + i * _SEG.size))
                     for i in range(count))
        return cls(next_offset, start, marker, floor, segs)


def describe(plog: PartitionLog, marker: int, upto: int | None = None) -> Manifest:
    """The manifest of the log as it is now or, with `upto`, as it was when its end was
    `upto`: the batches from `upto` on (appends of later ops that ran before a restart) left
    out. Valid only while no later op removed anything (the caller checks its marker):
    segments roll when a batch arrives, so one starting at or past `upto` did not exist then
    (but the first, which always does)."""
    end = plog.next_offset if upto is None else min(upto, plog.next_offset)
    segs = []
    for i, s in enumerate(plog.segments):
        if i and s.start_offset >= end:
            break
        idx, n = s.index, len(s.index)
        size = s.size
        if s.next_offset > end:
            n = bisect_left(idx.base_offsets, end)
            size = idx.positions[n - 1] + idx.lengths[n - 1] if n else 0
        segs.append(SegmentInfo(s.start_offset, n, size, idx.crcs[0] if n else 0,
                                idx.crcs[n - 1] if n else 0))
    return Manifest(end, min(plog.start_offset, end), marker, plog.floor, tuple(segs))


def _holds(seg: Segment, info: SegmentInfo) -> int:
    """How many of `info`'s entries `seg` holds (0 when it starts another history)."""
    idx, n = seg.index, min(len(seg.index), info.entries)
    if n == 0 or idx.crcs[0] != info.first_crc:
        return 0
    if n == info.entries and idx.crcs[n - 1] != info.last_crc:
        return 0
    return n


def lacks(plog: PartitionLog, m: Manifest) -> bool:
    """True when the local log does not reach the manifest's state in the same history: the
    segment holding the manifest's last batch (never removed by a later op but a purge) must
    be here with that batch."""
    if m.segments is None:
        return plog.next_offset < m.next_offset
    anchor = next((s for s in reversed(m.segments) if s.entries), None)
    if anchor is None:
        return plog.next_offset < m.next_offset
    seg = next((s for s in plog.segments if s.start_offset == anchor.start), None)
    return seg is None or _holds(seg, anchor) < anchor.entries


def extra_segments(plog: PartitionLog, m: Manifest) -> bool:
    """Local segments below the manifest's first one (the peers' retention removed them)."""
    if not m.segments:
        return False
    first = m.segments[0].start
    return any(s.start_offset < first for s in plog.segments)


# -- serving ----------------------------------------------------------------------------------

def serve(plog: PartitionLog, m: Message, budget: int) -> tuple[int, int, bytes]:
    """(flags, entries, body) answering a REQUEST_SEGMENT: whole batches from entry `m.entry`,
    at most `m.entries` of them and `budget` bytes (at least one batch); GONE when this log
    no longer holds them intact."""
    seg = next((s for s in plog.segments if s.start_offset == m.segment), None)
    if seg is None or m.entries == 0 or len(seg.index) < m.entry + m.entries:
        return GONE, 0, b""
    idx = seg.index
    n = size = 0
    while n < m.entries:
        i = m.entry + n
        add = idx.lengths[i] + ENTRY_SIZE
        if idx.flags[i] & DAMAGED or (n and size + add > budget):
            break
        size += add
        n += 1
    if n == 0:
        return GONE, 0, b""
    first = m.entry
    entries = b"".join(idx.entry_bytes(i) for i in range(first, first + n))
    return 0, n, entries + seg.read_span(first, first + n - 1)


# -- fetching ---------------------------------------------------------------------------------

class Refused(ValueError):
    """A chunk that does not verify (kept nowhere; asked for again)."""


class SegmentFetch:
    """Fetch the segments a manifest names that the local log lacks, from `peers` in turn."""

    ATTEMPTS_PER_PEER = 3

    def __init__(self, plog: PartitionLog, group: int, checkpoint_op: int, manifest: Manifest,
                 peers: list[int]) -> None:
        self.plog, self.group, self.checkpoint_op = plog, group, checkpoint_op
        self.manifest, self.peers = manifest, peers
        self.peer = 0  # index into peers
        self.failures = 0  # refusals, gone answers and timeouts since the last good chunk
        self.refused = 0  # chunks refused (stats and tests)
        self.dir = plog.path / STAGING
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir()
        local = {s.start_offset: s for s in plog.segments}
        assert manifest.segments is not None
        self.todo: list[SegmentInfo] = []
        self.staged: list[int] = []
        for info in manifest.segments:  # staged: every segment not exactly the manifest's
            seg = local.get(info.start)
            have = _holds(seg, info) if seg is not None and info.entries else 0
            if seg is None or have < info.entries or len(seg.index) > info.entries:
                self.todo.append(info)
        self.fd = self.index_fd = -1
        self._open_next()

    # -- staging files ------------------------------------------------------------------------
    def _open_next(self) -> None:
        """Stage the next segment, starting from the local prefix of it, if any."""
        self.entry = self.size = 0
        if not self.todo:
            return
        info = self.todo[0]
        self.next_offset = info.start
        name = f"{info.start:020}"
        self.fd = os.open(self.dir / f"{name}.log", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self.index_fd = os.open(self.dir / f"{name}.index",
                                os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        seg = next((s for s in self.plog.segments if s.start_offset == info.start), None)
        have = _holds(seg, info) if seg is not None else 0
        if seg is not None and have:
            idx = seg.index
            end = idx.positions[have - 1] + idx.lengths[have - 1]
            for pos in range(0, end, COPY_CHUNK):  # bounded memory, whatever the segment size
                os.pwrite(self.fd, seg.read_at(pos, min(COPY_CHUNK, end - pos)), pos)
            os.pwrite(self.index_fd, b"".join(idx.entry_bytes(i) for i in range(have)), 0)
            self.entry, self.size = have, end
            self.next_offset = idx.base_offsets[have - 1] + idx.counts[have - 1]
        self._finish_segment_if_done()

    def _finish_segment_if_done(self) -> None:
        while self.todo and self.entry == self.todo[0].entries:
            info = self.todo.pop(0)
            if self.size != info.size:
                raise Refused(f"segment {info.start}: {self.size} bytes staged, the "
                              f"checkpoint names {info.size}")
            os.fsync(self.fd)
            os.fsync(self.index_fd)
            self._close_files()
            self.staged.append(info.start)
            self._open_next()

    def _close_files(self) -> None:
        for fd in (self.fd, self.index_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.index_fd = -1

    @property
    def done(self) -> bool:
        return not self.todo

    # -- the conversation -------------------------------------------------------------------
    @property
    def target(self) -> int:
        return self.peers[self.peer % len(self.peers)]

    def request(self, cluster: bytes, view: int, replica: int) -> Message:
        info = self.todo[0]
        return Message(Command.REQUEST_SEGMENT, cluster=cluster, view=view, replica=replica,
                       group=self.group, checkpoint_op=self.checkpoint_op, segment=info.start,
                       entry=self.entry, entries=info.entries - self.entry)

    def failed(self) -> bool:
        """Count a failure (refused chunk, GONE, timeout) and move to the next peer; True when
        every peer failed `ATTEMPTS_PER_PEER` times in a row: give up."""
        self.failures += 1
        self.peer += 1
        return self.failures >= self.ATTEMPTS_PER_PEER * len(self.peers)

    def expects(self, m: Message) -> bool:
        return (not self.done and m.replica == self.target
                and m.checkpoint_op == self.checkpoint_op
                and m.segment == self.todo[0].start and m.entry == self.entry)

    def on_chunk(self, m: Message) -> None:
        """Verify and stage one chunk (raise Refused, keeping nothing, if it does not hold)."""
        if m.flags & GONE:
            raise Refused(f"replica {m.replica} no longer holds segment {m.segment}")
        info = self.todo[0]
        n, body = m.entries, m.body
        if n == 0 or n > info.entries - self.entry or len(body) < n * ENTRY_SIZE:
            raise Refused("chunk entry count out of range")
        raw = memoryview(body)[:n * ENTRY_SIZE]
        data = memoryview(body)[n * ENTRY_SIZE:]
        pos, offset = 0, self.next_offset
        for i in range(n):
            e = raw[i * ENTRY_SIZE:(i + 1) * ENTRY_SIZE]
            fields = ENTRY.unpack(e)
            base, position, _, _, length, count, _, flags, crc, _ = fields
            if not entry_ok(e, fields, legacy_allowed=False) or flags != HAS_CRC:
                raise Refused(f"index entry {self.entry + i} fails its check")
            if base != offset or position != self.size + pos or pos + length > len(data):
                raise Refused(f"index entry {self.entry + i} does not continue the segment")
            batch = data[pos:pos + length]
            if crc32c(batch) != crc or recognise(batch, base, verify=True) is None:
                raise Refused(f"batch at offset {base} fails its checksums")
            pos += length
            offset += count
        if pos != len(data):
            raise Refused("chunk has bytes after its last batch")
        if self.entry + n == info.entries and ENTRY.unpack(raw[-ENTRY_SIZE:])[8] != info.last_crc:
            raise Refused(f"segment {info.start} ends with another batch than the checkpoint's")
        if self.entry == 0 and ENTRY.unpack(raw[:ENTRY_SIZE])[8] != info.first_crc:
            raise Refused(f"segment {info.start} starts with another batch than the checkpoint's")
        os.pwrite(self.fd, data, self.size)
        os.pwrite(self.index_fd, raw, self.entry * ENTRY_SIZE)
        self.entry += n
        self.size += len(data)
        self.next_offset = offset
        self.failures = 0
        self._finish_segment_if_done()

    def abandon(self) -> None:
        self._close_files()
        shutil.rmtree(self.dir, ignore_errors=True)


def chunk_budget(snapshot_chunk: int, message_size_max: int) -> int:
    """Bytes of index entries and batches in one SEGMENT_CHUNK body."""
    return min(snapshot_chunk, message_size_max - HEADER_SIZE)


# -- installing -------------------------------------------------------------------------------

def install(plog: PartitionLog, m: Manifest, staged: list[int], why: str) -> None:
    """Make the log the manifest's: segment files it does not name go to lost+found, staged
    ones replace the live ones (one rename each, the log before its index: a crash in between
    leaves an index that recovery rebuilds from the log), then the log reopens."""
    assert m.segments is not None
    named = {s.start for s in m.segments}
    for seg in plog.segments:
        seg.close()
    for path in sorted(plog.path.iterdir()):
        if path.suffix in (".log", ".index") and path.stem.isdigit() and path.is_file() \
                and int(path.stem) not in named:
            plog.lost_found.move(path, f"not in the checkpoint installed by {why}")
    staging = plog.path / STAGING
    for start in staged:
        for suffix in (".log", ".index"):
            os.replace(staging / f"{start:020}{suffix}", plog.path / f"{start:020}{suffix}")
    fd = os.open(plog.path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    shutil.rmtree(staging, ignore_errors=True)
    plog.reopen(m.floor)
