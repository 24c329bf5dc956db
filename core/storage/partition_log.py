"""PartitionLog: the ordered segments of one partition, with append, read, retention, recovery."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from pyggy.core import small_file
from pyggy.core.clock import Clock
from pyggy.core.errors import ErrorCode
from pyggy.core.lost_found import LostAndFound
from pyggy.core.model import NEVER_EXPIRE, TopicOptions
from pyggy.core.records import iggy_batch, kafka_batch
from pyggy.core.records.encoding import ENCODING_IGGY, ENCODING_KAFKA
from pyggy.core.storage import segment_swap
from pyggy.core.storage.fsync import GroupCommitter
from pyggy.core.storage.index import SegmentIndex
from pyggy.core.storage.outage import WriteOutage
from pyggy.core.storage.reads import BatchRef, offset_for_timestamp_steps, read_steps
from pyggy.core.storage.recovery import recover_segment
from pyggy.core.storage.segment import Segment
from pyggy.core.storage.tiered import (
    RemoteSegment,
    RemoteSegments,
    run_async,
    run_blocking,
)

log = logging.getLogger(__name__)

CLEAN_MARKER = ".clean"
START_OFFSET_FILE = "start_offset"


class PartitionLog:
    """Segments of one partition on disk. Offsets start at 0 and are shared by both protocols."""

    def __init__(self, path: Path, partition_id: int, options: TopicOptions,
                 committer: GroupCommitter, clock: Clock, validate_checksum: bool = True,
                 remote: RemoteSegments | None = None, lost_found: LostAndFound | None = None,
                 writes: WriteOutage | None = None) -> None:
        self.path = path
        self.partition_id = partition_id
        self.options = options
        self.committer = committer
        self.clock = clock
        self.validate_checksum = validate_checksum
        self.segments: list[Segment] = []
        # A log start offset set by Kafka DeleteRecords (persisted in START_OFFSET_FILE):
        # records below it are gone for both doors even while their segment is still on disk.
        self.floor = 0
        # The archive tier (injected; see core/storage/tiered.py) and the segments below the
        # first local one that exist only there, oldest first, ending where local ones begin.
        self.remote = remote
        self.tiered: list[RemoteSegment] = []
        # Called with the segment just sealed (the engine's seal listeners hang here).
        self.on_seal: Callable[[Segment], None] | None = None
        # Where recovery puts bytes it cannot account for (never deleted).
        self.lost_found = lost_found or LostAndFound.near(path)
        # Shared by the partitions of one engine: logs write failures without a flood.
        self.writes = writes or WriteOutage("messages", clock, log,
                                            ErrorCode.CANNOT_SAVE_MESSAGES_TO_SEGMENT)
        # (segment start, position) of damaged batches already logged once.
        self.reported: set[tuple[int, int]] = set()
        # Segments replaced by a compacted copy; closed at the next pass (a read suspended on
        # the archive may still hold one: its descriptor keeps reading the old file).
        self.retired: list[Segment] = []

    # -- state ---------------------------------------------------------------------------
    @property
    def next_offset(self) -> int:
        return self.segments[-1].next_offset if self.segments else 0

    @property
    def start_offset(self) -> int:
        """The log start offset: the first offset still stored, raised to the floor."""
        if self.tiered:
            return min(max(self.tiered[0].start_offset, self.floor), self.next_offset)
        for seg in self.segments:
            if len(seg.index):
                return min(max(seg.index.base_offsets[0], self.floor), seg.next_offset)
        return self.next_offset

    @property
    def size_bytes(self) -> int:
        """Bytes stored, locally and (for segments only there) in the archive."""
        return sum(s.size for s in self.segments) + sum(r.size for r in self.tiered)

    @property
    def local_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def messages_count(self) -> int:
        return self.next_offset - self.start_offset

    @property
    def segments_count(self) -> int:
        return len(self.segments) + len(self.tiered)

    # -- open / recover ------------------------------------------------------------------
    def open(self) -> None:
        """Open or create the partition directory, recovering a torn or corrupt tail."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.floor = self._load_floor()
        self._open_segments()
        self._attach_tiered()
        if self.floor > self.next_offset:  # a recovered tail was cut below the floor
            self._store_floor(self.next_offset)
        self._drop_below_floor()

    def reopen(self, floor: int) -> None:
        """Open again from the files, with `floor` as the log start offset (after a cluster's
        state transfer replaced segment files: pyggy.cluster.segment_transfer)."""
        for seg in self.segments:
            seg.close()
        self.segments, self.tiered = [], []
        if floor != self._load_floor():
            self._store_floor(floor)
        self.open()

    def _open_segments(self) -> None:
        segment_swap.finish_swaps(self.path)  # a compaction interrupted by a crash
        clean = (self.path / CLEAN_MARKER).exists()
        (self.path / CLEAN_MARKER).unlink(missing_ok=True)
        starts = sorted(int(p.stem) for p in self.path.glob("*.log") if p.stem.isdigit())
        if not starts:
            self.segments.append(Segment(self.path, 0))
            return
        for n, start in enumerate(starts):
            expected = self.segments[-1].next_offset if self.segments else start
            if start != expected:
                self._set_aside(starts[n:], expected)
                break
            seg = Segment(self.path, start)
            self.segments.append(seg)
            last = n == len(starts) - 1
            recover_segment(seg, full=not clean and last,
                            next_start=None if last else starts[n + 1],
                            may_be_torn=last and not clean, lost_found=self.lost_found)

    def _set_aside(self, starts: list[int], expected: int) -> None:
        """Segments that do not continue the log (a gap or an overlap: an external change)
        are moved to lost+found, never deleted; the log continues from `expected`."""
        for start in starts:
            for suffix in (".log", ".index"):
                path = self.path / f"{start:020}{suffix}"
                if path.exists():
                    self.lost_found.move(path, f"the segment does not continue the log at "
                                               f"offset {expected}")

    def _attach_tiered(self) -> None:
        """Take the archived segments that end exactly where the local ones begin."""
        if self.remote is None:
            return
        first = self.segments[0].start_offset
        chain: list[RemoteSegment] = []
        for r in reversed(self.remote.segments()):
            if r.start_offset >= first:
                continue  # an archived copy of a segment still on local disk
            if r.next_offset != (chain[-1].start_offset if chain else first):
                log.warning("partition %s: archived segments below offset %d do not join the "
                            "log; they are dropped", self.path, r.next_offset)
                for gone in self.remote.segments():
                    if gone.next_offset <= r.next_offset:
                        self.remote.drop(gone.start_offset)
                break
            chain.append(r)
        self.tiered = chain[::-1]

    # -- append --------------------------------------------------------------------------
    async def append_iggy(self, batch: bytearray | memoryview, count: int,
                          frame_sums: bytes = b"") -> int:
        """Stamp a validated Iggy batch in place, store it, make it durable per policy.

        Returns the base offset.
        """
        base = self.next_offset
        now = self.clock.now_us()
        iggy_batch.stamp_batch(batch, self.partition_id, base, now, frame_sums)
        await self._store(batch, base, count, now, now, ENCODING_IGGY)
        return base

    async def append_kafka(self, batch: bytearray | memoryview, count: int,
                           max_timestamp_ms: int, log_append_time: bool = False) -> int:
        """Stamp a validated Kafka RecordBatch v2 in place, store it, make it durable.

        Returns the base offset. The index keeps the append time and the batch's max
        timestamp (µs) so both Iggy timestamp polls and Kafka ListOffsets can search.
        """
        base = self.next_offset
        now = self.clock.now_us()
        kafka_batch.stamp_batch(batch, base, now // 1000 if log_append_time else None)
        # the index column is u64 µs: a client's timestamp beyond it is clamped (an overflow
        # here left the segment's index half-written and failed every later batch)
        max_us = now if log_append_time else min(max(max_timestamp_ms, 0),
                                                 ((1 << 64) - 1) // 1000) * 1000
        await self._store(batch, base, count, now, max_us, ENCODING_KAFKA)
        return base

    async def _store(self, batch: bytearray | memoryview, base: int, count: int, timestamp: int,
                     max_timestamp: int, encoding: int) -> None:
        """Write a stamped batch and make it durable per policy; a write or fsync failure
        (full disk, I/O error) becomes a storage error for this request only: the segment is
        left as it was before the batch, and the next append tries again."""
        try:
            seg = self._writable_segment()
            seg.append([batch], len(batch), base, count, timestamp, max_timestamp, encoding)
            if self.options.enforce_fsync:
                await self.committer.sync(seg.fd)
        except OSError as e:
            raise self.writes.failed(e) from None
        self.writes.ok()

    def append_stamped(self, batch: bytearray | memoryview, base: int, count: int,
                       timestamp: int, max_timestamp: int, encoding: int) -> None:
        """Store a batch another node stamped (a replicated partition: the batch is already
        committed), without fsync: the consensus journal holds it durably until a checkpoint
        syncs the segments (pyggy.cluster.partition_sm)."""
        if base != self.next_offset:
            raise ValueError(f"batch stamped at {base} but the log ends at {self.next_offset}")
        self._writable_segment().append([batch], len(batch), base, count, timestamp,
                                        max_timestamp, encoding)

    def _writable_segment(self) -> Segment:
        seg = self.segments[-1]
        if seg.size >= self.options.segment_size and len(seg.index):
            seg.sealed = True
            sealed, seg = seg, Segment(self.path, seg.next_offset)
            self.segments.append(seg)
            if self.on_seal is not None:
                self.on_seal(sealed)
        return seg

    def replace_segment(self, old: Segment, index: SegmentIndex) -> None:
        """Put the compacted copy of sealed segment `old` (its files already swapped in,
        core/storage/segment_swap.py) in its place."""
        seg = Segment(self.path, old.start_offset)
        seg.index = index
        seg.size = os.fstat(seg.fd).st_size
        seg.next_offset = old.next_offset
        seg.sealed = True
        seg.max_timestamp = old.max_timestamp
        self.segments[self.segments.index(old)] = seg
        self.retired.append(old)

    def close_retired(self) -> None:
        for seg in self.retired:
            seg.close()
        self.retired = []

    # -- read ----------------------------------------------------------------------------
    def read(self, offset: int, max_count: int, max_bytes: int = 1 << 62) -> list[BatchRef]:
        """Batches from the one holding `offset`, until `max_count` records or `max_bytes`
        (core/storage/reads.py); archived data is read on this thread (offline tools, tests)."""
        return run_blocking(read_steps(self, offset, max_count, max_bytes))

    async def read_async(self, offset: int, max_count: int,
                         max_bytes: int = 1 << 62) -> list[BatchRef]:
        """`read`, awaiting archived data from the archive's reader pool (the server)."""
        return await run_async(read_steps(self, offset, max_count, max_bytes))

    def offset_for_timestamp(self, timestamp: int, use_max: bool = False) -> int | None:
        """First offset of the first batch with (max) timestamp ≥ `timestamp`."""
        return run_blocking(offset_for_timestamp_steps(self, timestamp, use_max))

    async def offset_for_timestamp_async(self, timestamp: int,
                                         use_max: bool = False) -> int | None:
        return await run_async(offset_for_timestamp_steps(self, timestamp, use_max))

    def batch_heads(self, encoding: int, size: int, segments: int = 2
                    ) -> Iterator[tuple[int, bytes]]:
        """(base offset, first `size` bytes) of each batch stored with `encoding` in the last
        `segments` local segments, oldest first: one positional read per batch."""
        for seg in self.segments[-segments:]:
            idx = seg.index
            for i in range(len(idx)):
                if idx.encodings[i] == encoding:
                    yield idx.base_offsets[i], seg.read_at(idx.positions[i], size)

    # -- log start offset (Kafka DeleteRecords) ------------------------------------------
    def advance_start(self, offset: int) -> int:
        """Raise the log start offset to `offset` (≤ next offset); return the start offset.

        Records below it can no longer be read through either door; sealed segments wholly
        below it are deleted (the active segment stays until it rolls and the cleaner or the
        next call removes it). An offset at or below the current start changes nothing.
        """
        if offset > self.next_offset:
            raise ValueError(f"offset {offset} is past the end {self.next_offset}")
        if offset > self.start_offset:
            self._store_floor(offset)
            self._drop_below_floor()
        return self.start_offset

    def _drop_below_floor(self) -> int:
        removed = 0
        while self.tiered and self.tiered[0].next_offset <= self.floor:
            self._drop_first_tiered()
            removed += 1
        while len(self.segments) > 1 and self.segments[0].next_offset <= self.floor:
            self._delete_first()
            removed += 1
        return removed

    def _load_floor(self) -> int:
        """The persisted floor (two checksummed copies, core/small_file.py). When both
        are damaged the floor is 0: a lower floor hides nothing (records below the lost one
        are readable again); an error says so and the copies go to lost+found."""
        f = small_file.SmallFile(self.path / START_OFFSET_FILE, legacy=small_file.decimal)
        try:
            payload = f.read()
            return 0 if payload is None else small_file.decimal_value(payload)
        except (small_file.CorruptFile, ValueError) as e:
            log.error("partition %s: log start offset lost (%s); using 0, which hides no "
                      "record", self.path, e)
            f.set_aside("damaged log start offset")
            return 0

    def _store_floor(self, offset: int) -> None:
        """Persist the floor durably (two checksummed copies, each fdatasync'd)."""
        small_file.SmallFile(self.path / START_OFFSET_FILE).write(f"{offset}".encode())
        self.floor = offset

    # -- retention / purge ---------------------------------------------------------------
    def _delete_first(self) -> None:
        """Delete the oldest local segment, and its archived copy if it has one."""
        seg = self.segments.pop(0)
        if self.remote is not None:
            self.remote.drop(seg.start_offset)
        seg.delete()

    def _drop_first_tiered(self) -> None:
        r = self.tiered.pop(0)
        assert self.remote is not None
        self.remote.drop(r.start_offset)

    def delete_oldest(self, count: int) -> int:
        """Delete up to `count` oldest sealed segments (archived ones first); return how many
        went."""
        gone = 0
        while gone < count and self.tiered:
            self._drop_first_tiered()
            gone += 1
        while gone < count and len(self.segments) > 1:
            self._delete_first()
            gone += 1
        return gone

    def enforce_retention(self, now_us: int, expiry_us: int, max_bytes: int | None) -> int:
        """Drop sealed segments whose newest batch expired, or while over `max_bytes`
        (archived-only segments first: retention covers the archive too)."""
        removed = 0
        while (remove := self._retention_victim(now_us, expiry_us, max_bytes)) is not None:
            remove()
            removed += 1
        return removed

    def retention_due(self, now_us: int, expiry_us: int, max_bytes: int | None) -> bool:
        """Whether `enforce_retention` would remove a segment now (a cluster's cleaner asks
        before it proposes the op to the partition's group)."""
        return self._retention_victim(now_us, expiry_us, max_bytes) is not None

    def _retention_victim(self, now_us: int, expiry_us: int, max_bytes: int | None
                          ) -> Callable[[], None] | None:
        """Retention's next removal, None when nothing is due: what lies wholly below the log
        start first, then archived-only segments, then the oldest sealed local one."""
        if self.tiered and self.tiered[0].next_offset <= self.floor:
            return self._drop_first_tiered
        if len(self.segments) > 1 and self.segments[0].next_offset <= self.floor:
            return self._delete_first
        too_big = max_bytes is not None and self.size_bytes > max_bytes
        if self.tiered and (too_big or (expiry_us != NEVER_EXPIRE and
                                        self.tiered[0].last_timestamp + expiry_us <= now_us)):
            return self._drop_first_tiered
        if len(self.segments) > 1:
            idx = self.segments[0].index
            if too_big or not len(idx) or (
                    expiry_us != NEVER_EXPIRE and idx.timestamps[-1] + expiry_us <= now_us):
                return self._delete_first
        return None

    def offload(self, max_bytes: int | None, max_segments: int | None) -> int:
        """Tiering: delete the local copies of the oldest sealed segments while more than
        `max_segments` segments or `max_bytes` bytes are local, but only segments the archive
        has confirmed; the first one not confirmed stops it (the local log stays contiguous).
        The active segment always stays. Returns how many local copies went."""
        if self.remote is None:
            return 0
        gone = 0
        while len(self.segments) > 1:
            seg = self.segments[0]
            over = ((max_segments is not None and len(self.segments) > max_segments)
                    or (max_bytes is not None and self.local_bytes > max_bytes))
            idx = seg.index
            if not over or not len(idx) or not self.remote.is_archived(
                    seg.start_offset, seg.next_offset, seg.size):
                break
            self.tiered.append(RemoteSegment(seg.start_offset, seg.next_offset, seg.size,
                                             idx.timestamps[0], idx.timestamps[-1],
                                             idx.max_timestamps[-1]))
            self.segments.pop(0).delete()
            gone += 1
        return gone

    def purge(self) -> None:
        """Remove every message (archived copies too); offsets start again at 0."""
        if self.remote is not None:
            self.remote.drop_all()
        self.tiered = []
        self.close_retired()
        for seg in self.segments:
            seg.delete()
        self.segments = [Segment(self.path, 0)]
        self.floor = 0
        (self.path / START_OFFSET_FILE).unlink(missing_ok=True)

    def sync(self) -> None:
        """fsync every open segment's files now."""
        for seg in self.segments:
            if seg.fd >= 0:
                seg.sync()

    def close(self, clean: bool = True) -> None:
        self.close_retired()
        for seg in self.segments:
            if clean and seg.fd >= 0:
                seg.sync()
            seg.close()
        if clean and self.path.exists():
            (self.path / CLEAN_MARKER).touch()

    def destroy(self) -> None:
        if self.remote is not None:
            self.remote.drop_all()
        self.tiered = []
        self.close_retired()
        for seg in self.segments:
            seg.close()
        self.segments = []
        shutil.rmtree(self.path, ignore_errors=True)

