"""Reading a partition log, written once as `Steps` (core/storage/tiered.py): local segments
are read with positional reads and verified against their index CRCs; archived segments and the
repair of a damaged local batch yield what they need from the archive and get it sent back.

`PartitionLog.read` / `read_async` (and the timestamp lookups) run these with the blocking or
the async driver.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

from pyggy.core.storage.index import DAMAGED, HAS_CRC, SegmentIndex
from pyggy.core.storage.repair import check_archived, sound, verified_steps
from pyggy.core.storage.tiered import NeedBytes, NeedIndex, RemoteSegment, Steps

if TYPE_CHECKING:
    from pyggy.core.storage.partition_log import PartitionLog
    from pyggy.core.storage.segment import Segment

PREFETCH_MAX = 8 << 20  # most bytes one read of archived data asks for at once
_ENTRY_COST = 256  # what PartReads counts per entry besides its bytes


class PartReads:
    """Verified bytes of stored batches that a read took only part of: a consumer polling
    fewer messages than a batch holds asks for the same batch again, and gets it without a
    second read and CRC-32C. A hit needs the index entry unchanged (same position, length and
    CRC, no DAMAGED flag): a truncated, repaired or compacted entry misses. At most
    `max_bytes` are kept, least recently used first out; entries are dropped once a read takes
    a batch's rest."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.entries: OrderedDict[tuple[Segment, int], tuple[int, int, int, bytes]] = \
            OrderedDict()
        self.lock = threading.Lock()  # reads of the blocking driver may run in threads

    def get(self, seg: Segment, i: int) -> bytes | None:
        idx = seg.index
        with self.lock:
            hit = self.entries.get((seg, i))
            if hit is None:
                return None
            if idx.flags[i] != HAS_CRC or hit[:3] != (idx.positions[i], idx.lengths[i],
                                                     idx.crcs[i]):
                self._drop((seg, i))
                return None
            self.entries.move_to_end((seg, i))
            return hit[3]

    def put(self, seg: Segment, i: int, data: bytes) -> None:
        """Keep `data`, the bytes of entry i of `seg`, just verified against its CRC."""
        if len(data) > self.max_bytes // 4:
            return
        idx = seg.index
        with self.lock:
            self._drop((seg, i))
            self.entries[(seg, i)] = (idx.positions[i], idx.lengths[i], idx.crcs[i], data)
            self.size += len(data) + _ENTRY_COST
            while self.size > self.max_bytes:
                self.size -= len(self.entries.popitem(last=False)[1][3]) + _ENTRY_COST

    def drop(self, seg: Segment, i: int) -> None:
        with self.lock:
            self._drop((seg, i))

    def _drop(self, key: tuple[Segment, int]) -> None:
        gone = self.entries.pop(key, None)
        if gone is not None:
            self.size -= len(gone[3]) + _ENTRY_COST


PART_READS = PartReads(32 << 20)  # one per process


class BatchRef(NamedTuple):
    """A stored batch as read back: its encoding, bytes, first offset and record count."""

    encoding: int
    data: bytes | memoryview
    base_offset: int
    record_count: int
    timestamp: int


def read_steps(plog: PartitionLog, offset: int, max_count: int, max_bytes: int,
               begun: bool = False) -> Steps[list[BatchRef]]:
    """Batches from the one holding `offset`, until `max_count` records or `max_bytes` (at
    least one batch when any exists at or after `offset`). A batch that fails verification
    and cannot be repaired ends the read there (a short read) or, when it is the first,
    raises CorruptBatch. With `begun` the read goes on one that already took batches before
    `offset` (core/engine/data.py, a streamed poll): its first batch is taken as a later one."""
    out: list[BatchRef] = []
    offset = max(offset, plog.start_offset)
    remaining, budget = max_count, max_bytes
    if plog.tiered and offset < plog.segments[0].start_offset:
        for r in plog.tiered:
            if r.next_offset <= offset:
                continue
            remaining, budget, done = yield from _read_archived(plog, r, offset, remaining,
                                                                budget, out)
            if done:
                return out
    for seg in plog.segments:
        if seg.next_offset <= offset or not len(seg.index):
            continue
        idx = seg.index
        i = idx.find_offset(offset)
        while i < len(idx) and remaining > 0:
            ln = idx.lengths[i]
            if (out or begun) and ln > budget:
                return out
            base, cnt = idx.base_offsets[i], idx.counts[i]
            # the read stops inside this batch: the next one (the same consumer's) starts there
            partial = base + cnt - max(offset, base) > remaining
            data = PART_READS.get(seg, i) if plog.validate_checksum else None
            if data is not None:
                if not partial:
                    PART_READS.drop(seg, i)
            else:
                data = seg.read_at(idx.positions[i], ln)
                if (plog.validate_checksum or idx.flags[i] & DAMAGED) and \
                        not sound(idx, i, data):
                    if out or begun:  # a short read; the next one starts at this batch
                        return out
                    data = yield from verified_steps(plog, seg, i, data)
                    ln = idx.lengths[i]
                    base, cnt = idx.base_offsets[i], idx.counts[i]
                elif partial and plog.validate_checksum:
                    PART_READS.put(seg, i, data)
            out.append(BatchRef(idx.encodings[i], data, base, cnt, idx.timestamps[i]))
            remaining -= base + cnt - max(offset, base)
            budget -= ln
            i += 1
        if remaining <= 0 or budget <= 0:
            break
    return out


def _read_archived(plog: PartitionLog, r: RemoteSegment, offset: int, remaining: int,
                   budget: int, out: list[BatchRef]) -> Steps[tuple[int, int, bool]]:
    """The batches of one archive-only segment; returns (remaining, budget, done). The bytes
    of the batches it will return are asked for in one range (at most PREFETCH_MAX)."""
    remote = plog.remote
    assert remote is not None
    idx = yield NeedIndex(remote, r.start_offset)
    assert isinstance(idx, SegmentIndex)
    i = idx.find_offset(offset)
    if i >= len(idx):
        return remaining, budget, False
    span = _span(idx, i, offset, remaining, budget)
    start = idx.positions[i]
    blob = yield NeedBytes(remote, r.start_offset, start, span)
    assert isinstance(blob, bytes)
    view = memoryview(blob)
    while i < len(idx) and remaining > 0:
        ln = idx.lengths[i]
        at = idx.positions[i] - start
        if (out and ln > budget) or at + ln > len(view):
            return remaining, budget, True  # the rest comes with the next read
        data = bytes(view[at:at + ln])
        if plog.validate_checksum and not sound(idx, i, data):
            if out:  # a short read; the next one starts at this batch
                return remaining, budget, True
            check_archived(plog, r.start_offset, idx, i, data)
        base, cnt = idx.base_offsets[i], idx.counts[i]
        out.append(BatchRef(idx.encodings[i], data, base, cnt, idx.timestamps[i]))
        remaining -= base + cnt - max(offset, base)
        budget -= ln
        i += 1
    return remaining, budget, remaining <= 0 or budget <= 0


def _span(idx: SegmentIndex, i: int, offset: int, remaining: int, budget: int) -> int:
    """Bytes from batch i on that a read for `remaining` records / `budget` bytes would take
    (at least batch i, at most PREFETCH_MAX)."""
    span = 0
    while i < len(idx) and remaining > 0 and span < PREFETCH_MAX:
        ln = idx.lengths[i]
        if span and ln > budget:
            break
        base = idx.base_offsets[i]
        span += ln
        budget -= ln
        remaining -= base + idx.counts[i] - max(offset, base)
        i += 1
    return span


def offset_for_timestamp_steps(plog: PartitionLog, timestamp: int,
                               use_max: bool = False) -> Steps[int | None]:
    """First offset of the first batch with (max) timestamp ≥ `timestamp` (not below the log
    start offset), None when there is none."""
    for r in plog.tiered:
        if (r.max_timestamp if use_max else r.last_timestamp) < timestamp:
            continue
        assert plog.remote is not None
        idx = yield NeedIndex(plog.remote, r.start_offset)
        assert isinstance(idx, SegmentIndex)
        i = idx.find_timestamp(timestamp, use_max)
        if i < len(idx):
            return max(idx.base_offsets[i], plog.start_offset)
    for seg in plog.segments:
        if seg.next_offset <= plog.floor:
            continue
        i = seg.index.find_timestamp(timestamp, use_max)
        if i < len(seg.index):
            return max(seg.index.base_offsets[i], plog.start_offset)
    return None
