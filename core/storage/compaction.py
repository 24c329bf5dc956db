"""Log compaction (Kafka's ``cleanup.policy=compact``): keep the latest record per key.

What it does and what it keeps is docs/compaction.md; in short, per partition:

- only sealed local segments are cleaned, never the active one, nor anything at or past the
  last stable offset, nor a segment whose newest batch is younger than
  ``min.compaction.lag.ms`` (append time), nor a segment holding a damaged batch;
- a pass runs when the dirty part (past the persisted cleaner checkpoint) is at least
  ``min.cleanable.dirty.ratio`` of the cleanable bytes, or its oldest batch is older than
  ``max.compaction.lag.ms``;
- the offset map (key digest → latest offset) is built from the dirty part; a Kafka record
  is dropped when a later offset holds its key, or when it is a tombstone whose batch was
  appended ``delete.retention.ms`` ago, or when it belongs to an aborted transaction.
  Keyless records, control batches (transaction markers) and batches sent through the Iggy
  door are kept;
- a thinned batch keeps its base offset and lastOffsetDelta (so offsets keep their meaning:
  a fetch from a removed offset gets the next record), an emptied one stays as a header;
- the segment's new copy is written, verified and swapped in crash-safely
  (core/storage/segment_swap.py).

The record walk runs in a worker thread (`asyncio.to_thread`); the swap, a few renames and
fsyncs, runs on the event loop where the segment list lives.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pyggy.core import small_file
from pyggy.core.crc import crc32c
from pyggy.core.records import kafka_batch
from pyggy.core.records.encoding import ENCODING_KAFKA
from pyggy.core.storage import segment_swap
from pyggy.core.storage.compaction_policy import (  # noqa: F401 - the settings' names, here too
    KEYS,
    Aborted,
    Policy,
    check_value,
    policy_of,
)
from pyggy.core.storage.index import DAMAGED, SegmentIndex
from pyggy.core.storage.segment import Segment
from xxhash import xxh3_128_digest

if TYPE_CHECKING:
    from pyggy.core.storage.partition_log import PartitionLog

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "cleaner_checkpoint"


# -- planning ---------------------------------------------------------------------------------
class Plan(NamedTuple):
    segments: list[Segment]  # the sealed segments to clean, oldest first
    dirty: int  # the first of them past the checkpoint
    end: int  # the first offset not cleaned (the next checkpoint)
    ratio: float


def plan(sealed: Sequence[Segment], policy: Policy, now_us: int, checkpoint: int,
         stable: int) -> Plan | None:
    """Which sealed segments a pass cleans now (None: no pass is due)."""
    cleanable: list[Segment] = []
    for seg in sealed:
        idx = seg.index
        if not len(idx):
            continue
        if seg.next_offset > stable or any(f & DAMAGED for f in idx.flags):
            break
        if policy.min_lag_us and idx.timestamps[-1] > now_us - policy.min_lag_us:
            break
        cleanable.append(seg)
    dirty = next((n for n, s in enumerate(cleanable) if s.next_offset > checkpoint), None)
    if dirty is None:
        return None
    total = sum(s.size for s in cleanable)
    ratio = sum(s.size for s in cleanable[dirty:]) / total if total else 0.0
    overdue = now_us - cleanable[dirty].index.timestamps[0] >= policy.max_lag_us
    if ratio < policy.min_dirty_ratio and not overdue:
        return None
    return Plan(cleanable, dirty, cleanable[-1].next_offset, ratio)


# -- the record walk (worker thread) ----------------------------------------------------------
class Snapshot(NamedTuple):
    """A segment as the worker reads it: its own descriptor and a copy of its index."""

    start: int
    directory: Path
    fd: int
    entries: SegmentIndex


def _batches(snap: Snapshot) -> list[tuple[int, bytes]]:
    """(entry number, bytes) of the segment's batches, each checked against its index CRC."""
    idx = snap.entries
    out = []
    for i in range(len(idx)):
        data = os.pread(snap.fd, idx.lengths[i], idx.positions[i])
        if crc32c(data) != idx.crcs[i]:
            raise segment_swap.SwapError(f"segment {snap.start}: batch at offset "
                                         f"{idx.base_offsets[i]} fails its checksum")
        out.append((i, data))
    return out


def _records(data: bytes) -> tuple[tuple[int, ...], kafka_batch.Buffer] | None:
    """(header fields, records bytes) of a Kafka data batch; None for a control batch."""
    fields = kafka_batch.batch_fields(data)
    if fields[5] & kafka_batch.CONTROL_MASK:
        return None
    return fields, kafka_batch.records_region(data)


def offset_map(dirty: Sequence[Snapshot], aborted: Aborted) -> dict[bytes, int]:
    """Key digest (XXH3-128) → latest offset, over the Kafka records of `dirty`."""
    latest: dict[bytes, int] = {}
    for snap in dirty:
        for i, data in _batches(snap):
            if snap.entries.encodings[i] != ENCODING_KAFKA:
                continue
            try:
                found = _records(data)
                if found is None:
                    continue
                fields, body = found
                base = fields[0]
                if fields[5] & kafka_batch.TRANSACTIONAL_MASK and aborted(fields[9], base):
                    continue
                for delta, key, _tomb, _a, _b in kafka_batch.record_spans(body, fields[12],
                                                                          fields[6]):
                    if key is not None:
                        latest[xxh3_128_digest(key)] = base + delta
            except kafka_batch.KafkaBatchError as e:
                log.warning("compaction: segment %d, batch at %d unreadable (%s); kept whole",
                            snap.start, snap.entries.base_offsets[i], e)
    return latest


def clean_batch(data: bytes, latest: dict[bytes, int], tombstones_expired: bool,
                aborted: Aborted) -> bytes | bytearray:
    """The batch as compaction leaves it (`data` itself when no record goes)."""
    found = _records(data)
    if found is None:
        return data
    fields, body = found
    base, count = fields[0], fields[12]
    drop_all = bool(fields[5] & kafka_batch.TRANSACTIONAL_MASK) and aborted(fields[9], base)
    kept: list[tuple[int, int]] = []
    for delta, key, tomb, start, stop in kafka_batch.record_spans(body, count, fields[6]):
        if drop_all:
            continue
        if key is not None and (latest.get(xxh3_128_digest(key), -1) > base + delta
                                or (tomb and tombstones_expired)):
            continue
        kept.append((start, stop))
    if len(kept) == count:
        return data
    view = memoryview(body)
    records = b"".join(view[a:b] for a, b in kept)
    return kafka_batch.thinned_batch(data, records, len(kept))


def rewrite(snap: Snapshot, latest: dict[bytes, int], policy: Policy, now_us: int,
            aborted: Aborted, hook: segment_swap.SwapHook = segment_swap.no_hook
            ) -> SegmentIndex | None:
    """Write, sync and verify the segment's cleaned copy (``.new`` files); None when no
    record of it goes (nothing written)."""
    idx = snap.entries
    out: list[tuple[bytes | bytearray, tuple[int, ...]]] = []
    changed = False
    for i, data in _batches(snap):
        new: bytes | bytearray = data
        if idx.encodings[i] == ENCODING_KAFKA:
            expired = idx.timestamps[i] + policy.delete_retention_us <= now_us
            try:
                new = clean_batch(data, latest, expired, aborted)
            except kafka_batch.KafkaBatchError as e:
                log.warning("compaction: segment %d, batch at %d unreadable (%s); kept whole",
                            snap.start, idx.base_offsets[i], e)
        changed = changed or new is not data
        out.append((new, (idx.base_offsets[i], idx.counts[i], idx.timestamps[i],
                          idx.max_timestamps[i], idx.encodings[i])))
    if not changed:
        return None
    return segment_swap.write_copy(snap.directory, snap.start, out, hook)


def _work(snaps: list[Snapshot], dirty: int, policy: Policy, now_us: int, aborted: Aborted,
          hook: segment_swap.SwapHook) -> list[tuple[int, SegmentIndex]]:
    """The worker's part of a pass: (segment number, new index) of each copy written."""
    try:
        latest = offset_map(snaps[dirty:], aborted)
        done = []
        for n, snap in enumerate(snaps):
            new = rewrite(snap, latest, policy, now_us, aborted, hook)
            if new is not None:
                done.append((n, new))
        return done
    finally:
        for snap in snaps:
            os.close(snap.fd)


# -- a pass -----------------------------------------------------------------------------------
def load_checkpoint(path: Path) -> int:
    """Offset below which the log was cleaned (0 when unknown: everything is dirty)."""
    try:
        payload = small_file.SmallFile(path / CHECKPOINT_FILE).read()
        return 0 if payload is None else int(payload)
    except (small_file.CorruptFile, ValueError):
        return 0


def store_checkpoint(path: Path, offset: int) -> None:
    small_file.SmallFile(path / CHECKPOINT_FILE).write(str(offset).encode())


async def compact(plog: PartitionLog, policy: Policy, now_us: int, stable: int,
                  aborted: Aborted, hook: segment_swap.SwapHook = segment_swap.no_hook) -> int:
    """One compaction pass over a partition if one is due; returns segments rewritten.
    `hook` is called at each step of a segment's swap (tests crash there)."""
    plog.close_retired()
    checkpoint = load_checkpoint(plog.path)
    p = plan(plog.segments[:-1], policy, now_us, checkpoint, stable)
    if p is None:
        return 0
    snaps = [Snapshot(s.start_offset, plog.path, os.open(s.log_path, os.O_RDONLY),
                      _copy(s.index)) for s in p.segments]
    try:
        done = await asyncio.to_thread(_work, snaps, p.dirty, policy, now_us, aborted, hook)
    except (OSError, segment_swap.SwapError) as e:
        log.error("compaction of %s failed, the log is unchanged: %s", plog.path, e)
        for s in p.segments:
            segment_swap.discard(plog.path, s.start_offset)
        return 0
    swapped = 0
    failed = False
    for n, new_index in done:
        seg = p.segments[n]
        if failed or seg not in plog.segments or len(seg.index) != len(
                snaps[n].entries) or any(f & DAMAGED for f in seg.index.flags):
            segment_swap.discard(plog.path, seg.start_offset)  # deleted or repaired meanwhile
            continue
        try:
            segment_swap.commit(plog.path, seg.start_offset, hook)
        except OSError as e:  # a marked swap is rolled forward when the partition opens
            log.error("compaction of %s: swapping segment %d failed: %s", plog.path,
                      seg.start_offset, e)
            failed = True
            continue
        plog.replace_segment(seg, new_index)
        swapped += 1
    if swapped == len(done):
        store_checkpoint(plog.path, p.end)
    log.info("compacted %s: %d of %d segments rewritten (dirty ratio %.2f)", plog.path,
             swapped, len(p.segments), p.ratio)
    return swapped


def _copy(idx: SegmentIndex) -> SegmentIndex:
    out = SegmentIndex()
    for i in range(len(idx)):
        out.add(*idx.entry(i))
    return out
