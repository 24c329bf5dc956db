"""What a read does with a stored batch that fails verification: repair it or refuse it.

`PartitionLog.read` checks every batch it serves against the CRC-32C in its index entry (one C
call per batch). This module handles the rest, off the hot path:

- an entry of the first index format (no CRC) is verified by the batch's own checksums and, if
  sound, upgraded in place (its CRC recorded);
- a batch whose bytes do not match, or a range recovery marked DAMAGED, is repaired from the
  archive when the archive holds a verified copy of the segment (the archived bytes must match
  the archived index's CRCs, and the archived entries must describe the same batches); the
  local bytes are overwritten in place, made durable, and the read goes on;
- otherwise the read refuses it with `CorruptBatch` (Iggy: CANNOT_READ_MESSAGE; the Kafka door
  answers KAFKA_STORAGE_ERROR for that partition). Bad bytes are never served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyggy.core.crc import crc32c
from pyggy.core.errors import CorruptBatch, RemoteReadError
from pyggy.core.records.encoding import recognise
from pyggy.core.storage.index import DAMAGED, HAS_CRC, Fields, SegmentIndex
from pyggy.core.storage.tiered import NeedBytes, NeedIndex, Steps

if TYPE_CHECKING:
    from pyggy.core.storage.partition_log import PartitionLog
    from pyggy.core.storage.segment import Segment

log = logging.getLogger(__name__)


def sound(idx: SegmentIndex, i: int, data: bytes) -> bool:
    """The hot-path test: the entry carries a CRC and the bytes match it."""
    return idx.flags[i] == HAS_CRC and crc32c(data) == idx.crcs[i]


def verified_steps(plog: PartitionLog, seg: Segment, i: int, data: bytes) -> Steps[bytes]:
    """Bytes of entry i of `seg` that are proven sound (upgraded, or repaired from the
    archive, which it asks for as `Steps`); raises CorruptBatch. A repaired DAMAGED range may
    become several entries: entry i is then the first of them (callers read its fields after
    this)."""
    idx = seg.index
    flags = idx.flags[i]
    if flags == 0:  # first index format: the batch's own checksums decide
        found = recognise(memoryview(data), idx.base_offsets[i], verify=True)
        if found is not None and found.length == len(data) and found.record_count == idx.counts[i]:
            idx.set_crc(i, crc32c(data))
            _best_effort(seg.rewrite_entry, i)
            return data
    repaired = yield from _from_archive(plog, seg, i)
    if repaired is not None:
        return repaired
    base = idx.base_offsets[i]
    what = "is marked damaged" if flags & DAMAGED else "fails its checksum"
    message = (f"partition {plog.partition_id}: stored batch at offset {base} "
               f"(segment {seg.log_path}, position {idx.positions[i]}) {what}; "
               "no verified copy to repair it from")
    key = (seg.start_offset, idx.positions[i])
    if key not in plog.reported:  # one log line per damaged batch, not one per read
        plog.reported.add(key)
        log.error("%s", message)
    raise CorruptBatch(message)


def check_archived(plog: PartitionLog, start_offset: int, idx: SegmentIndex, i: int,
                   data: bytes) -> None:
    """A batch read from the archive (the only copy left) that failed the CRC test: accepted
    only for an archived index of the first format whose batch passes its own checksums;
    otherwise refused with CorruptBatch."""
    if idx.flags[i] == 0 and recognise(memoryview(data), idx.base_offsets[i], verify=True):
        return
    message = (f"partition {plog.partition_id}: archived batch at offset {idx.base_offsets[i]} "
               f"(archived segment {start_offset}) fails its checksum")
    key = (start_offset, idx.positions[i])
    if key not in plog.reported:
        plog.reported.add(key)
        log.error("%s", message)
    raise CorruptBatch(message)


def _from_archive(plog: PartitionLog, seg: Segment, i: int) -> Steps[bytes | None]:
    remote = plog.remote
    if remote is None or not remote.is_archived(seg.start_offset, seg.next_offset, seg.size):
        return None
    idx = seg.index
    pos, length, base = idx.positions[i], idx.lengths[i], idx.base_offsets[i]
    try:
        ridx = yield NeedIndex(remote, seg.start_offset)
        assert isinstance(ridx, SegmentIndex)
        span = _covering(ridx, pos, length, base, idx.counts[i])
        if span is None:
            return None
        first, last = span
        data = yield NeedBytes(remote, seg.start_offset, pos, length)
        assert isinstance(data, bytes)
    except RemoteReadError as e:
        log.warning("partition %s: could not read the archived copy of segment %d to repair "
                    "offset %d: %s", plog.path, seg.start_offset, base, e)
        return None
    if seg.fd < 0 or i >= len(idx) or idx.positions[i] != pos or idx.base_offsets[i] != base:
        return None  # the segment went or changed while the archive answered
    again = seg.read_at(pos, length)
    if sound(idx, i, again):  # another read repaired it while the archive answered
        return again
    for j in range(first, last):  # every archived batch of the range must verify
        at = ridx.positions[j] - pos
        part = data[at:at + ridx.lengths[j]]
        if ridx.flags[j] & HAS_CRC:
            if ridx.flags[j] != HAS_CRC or crc32c(part) != ridx.crcs[j]:
                return None
        elif recognise(memoryview(part), ridx.base_offsets[j], verify=True) is None:
            return None
    seg.write_at(pos, data)
    if idx.flags[i] & DAMAGED:  # a placeholder entry (one or more batches): take the archive's
        idx.replace(i, [_sound_entry(ridx, j, data, pos) for j in range(first, last)])
        _best_effort(seg.rewrite_index)
    else:
        idx.set_crc(i, ridx.crcs[first] if ridx.flags[first] & HAS_CRC else crc32c(data))
        _best_effort(seg.rewrite_entry, i)
    plog.reported.discard((seg.start_offset, pos))
    log.warning("partition %s: repaired offsets %d..%d of segment %d from the archive",
                plog.path, idx.base_offsets[i], idx.base_offsets[i] + idx.counts[i] - 1,
                seg.start_offset)
    return data[:idx.lengths[i]]  # entry i is now the first archived batch of the range


def _sound_entry(ridx: SegmentIndex, j: int, data: bytes, pos: int) -> Fields:
    """Archived entry j as a local entry with its CRC (computed for a first-format entry)."""
    entry = ridx.entry(j)
    if entry[7] & HAS_CRC:
        return entry
    at = ridx.positions[j] - pos
    return entry[:7] + (HAS_CRC, crc32c(data[at:at + ridx.lengths[j]]))


def _covering(ridx: SegmentIndex, pos: int, length: int, base: int,
              count: int) -> tuple[int, int] | None:
    """The archived entries [first, last) that tile exactly the local range."""
    first = ridx.find_offset(base)
    if first >= len(ridx) or ridx.positions[first] != pos or ridx.base_offsets[first] != base:
        return None
    end, last, offset = pos, first, base
    while last < len(ridx) and end < pos + length:
        if ridx.positions[last] != end or ridx.base_offsets[last] != offset:
            return None
        end += ridx.lengths[last]
        offset += ridx.counts[last]
        last += 1
    if end != pos + length or offset != base + count:
        return None
    return first, last


def _best_effort(action: Callable[..., None], *args: int) -> None:
    try:
        action(*args)
    except OSError as e:  # the data is right in memory; the index is rebuilt at the next start
        log.warning("could not rewrite an index entry: %s", e)
