"""Recovery of a segment at open: rebuild its index from the log, never cut interior data.

The log is the authority; the index is its checked summary. On open, index entries that pass
their own check and tile the log from position 0 are trusted, except the last one (and, after
an unclean stop, every batch of the tail segment), which are verified against the log: by the
CRC-32C each entry holds (one C call per batch), or for entries of the first index format by
the batch's own checksums. Batches past the index are recognised from the log.

A batch that fails verification is one of two things:

- a **torn tail**: the last segment, after an unclean stop, ends with it and nothing
  verifiable follows (a crash mid-write). It was never acknowledged under any fsync policy that
  covered it, so it is cut — after its bytes are copied to lost+found;
- **damage**: a verifiable batch follows it (found through a later index entry), or the
  segment is not the last one (the next segment's start offset bounds it), or the server had
  stopped cleanly and a sound index entry gives the batch's extent. The bytes stay
  where they are and one DAMAGED index entry covers the range: reads of it answer a storage
  error until a verified copy (the archive) repairs it. Offsets after it keep their meaning.
"""

from __future__ import annotations

import logging
import mmap
import os
from operator import add, eq

from pyggy.core.crc import crc32c
from pyggy.core.lost_found import LostAndFound
from pyggy.core.records.encoding import StoredBatch, peek_length, recognise
from pyggy.core.storage.index import DAMAGED, HAS_CRC, Fields, SegmentIndex, mapped
from pyggy.core.storage.segment import Segment

log = logging.getLogger(__name__)
PEEK_SIZE = 1 << 20
_RESYNC_CANDIDATES = 64  # later index entries tried to find where valid data resumes


def recover_segment(seg: Segment, *, full: bool, next_start: int | None, may_be_torn: bool,
                    lost_found: LostAndFound) -> bool:
    """Rebuild `seg.index` (and its file, when it changed) from the log. Returns False when a
    torn tail was cut off (the segment's end moved back); damaged interior ranges are kept.

    `full`: verify every batch, not only the last indexed one; `next_start`: the next
    segment's start offset (None for the last segment); `may_be_torn`: the last segment after
    an unclean stop, whose final batch may be a torn write."""
    with mapped(seg.index_path) as raw:
        return _recover(seg, raw, full, next_start, may_be_torn, lost_found)


def _recover(seg: Segment, raw: bytes | mmap.mmap, full: bool, next_start: int | None,
             may_be_torn: bool, lost_found: LostAndFound) -> bool:
    stored = SegmentIndex.load(raw)
    file_size = os.fstat(seg.fd).st_size
    loaded = len(stored)
    keep = loaded if _tiles(stored, seg.start_offset, file_size) else 0
    pos, offset = 0, seg.start_offset
    while keep < loaded:  # not all of them: how many do, entry by entry
        b, p, ln, cnt = (stored.base_offsets[keep], stored.positions[keep],
                         stored.lengths[keep], stored.counts[keep])
        if p != pos or b != offset or p + ln > file_size:
            break
        pos, offset, keep = pos + ln, offset + cnt, keep + 1
    verify_from = 0 if full else max(keep - 1, 0)
    seg.index = stored.head(verify_from)
    pos = (stored.positions[verify_from - 1] + stored.lengths[verify_from - 1]) \
        if verify_from else 0
    offset = (stored.base_offsets[verify_from - 1] + stored.counts[verify_from - 1]) \
        if verify_from else seg.start_offset
    seg.max_timestamp = stored.max_timestamps[verify_from - 1] if verify_from else 0
    # every checked entry of the file, loaded at the first damage
    later: list[Fields | None] | None = None
    ok = True
    i = verify_from  # the stored entry expected at `pos`, while they still tile
    while pos < file_size:
        entry = stored.entry(i) if i < keep else None
        if entry is not None and entry[7] == HAS_CRC:
            data = os.pread(seg.fd, entry[4], pos)
            if crc32c(data) == entry[8]:
                seg.index.add(*entry)
                seg.max_timestamp = max(seg.max_timestamp, entry[3])
                pos, offset, i = pos + entry[4], offset + entry[5], i + 1
                continue
        else:
            found, crc = _recognise_at(seg.fd, pos, offset, file_size)
            if found is not None:
                seg.max_timestamp = max(seg.max_timestamp, found.max_timestamp)
                seg.index.add(offset, pos, found.timestamp, seg.max_timestamp, found.length,
                              found.record_count, found.encoding, HAS_CRC, crc)
                pos, offset, i = pos + found.length, offset + found.record_count, i + 1
                continue
        # the batch at `pos` fails: where does verifiable data resume?
        if later is None:
            later = SegmentIndex.load_entries(raw)
        resume = _resume_point(seg, later, pos, offset, file_size)
        if resume is None and next_start is not None and next_start > offset:
            resume = (file_size, next_start)
        if resume is None and not may_be_torn and entry is not None:
            resume = (pos + entry[4], offset + entry[5])  # corruption, not a torn write
        if resume is None:
            lost_found.copy_range(seg.fd, seg.log_path, pos, file_size,
                                  f"a torn tail of {file_size - pos} bytes at offset {offset} "
                                  f"(position {pos}), cut from the segment")
            os.ftruncate(seg.fd, pos)
            ok = False
            break
        end_pos, end_offset = resume
        last_ts = seg.index.timestamps[-1] if len(seg.index) else 0
        seg.index.add(offset, pos, last_ts, seg.max_timestamp, end_pos - pos,
                      end_offset - offset, 0, HAS_CRC | DAMAGED, 0)
        log.error("partition segment %s: offsets %d..%d (positions %d..%d) fail their "
                  "checksums; kept in place and refused to readers until a verified copy "
                  "repairs them (pyggy-scrub reports it)", seg.log_path, offset,
                  end_offset - 1, pos, end_pos)
        pos, offset, i = end_pos, end_offset, keep  # stored entries no longer tile from here
    seg.size = pos
    seg.next_offset = offset
    if not ok or len(seg.index) != loaded or len(raw) != loaded * 48 or any(
            seg.index.entry(n) != stored.entry(n) for n in range(verify_from, len(seg.index))):
        seg.rewrite_index()
    return ok


def _tiles(idx: SegmentIndex, start_offset: int, file_size: int) -> bool:
    """Whether every entry starts where the one before ends, in bytes and in offsets, from
    position 0 and `start_offset`, within the file (compared column-wise, at C speed)."""
    pos, lengths, base, counts = idx.positions, idx.lengths, idx.base_offsets, idx.counts
    return bool(len(pos)) and pos[0] == 0 and base[0] == start_offset and \
        pos[-1] + lengths[-1] <= file_size and \
        all(map(eq, pos[1:], map(add, pos, lengths))) and \
        all(map(eq, base[1:], map(add, base, counts)))


def _recognise_at(fd: int, pos: int, offset: int,
                  file_size: int) -> tuple[StoredBatch, int] | tuple[None, int]:
    """(StoredBatch, CRC-32C of its bytes) of a valid batch at `pos`, or (None, 0)."""
    head = os.pread(fd, min(PEEK_SIZE, file_size - pos), pos)
    length = peek_length(memoryview(head))
    if length is None or pos + length > file_size:
        return None, 0
    body = head if length <= len(head) else os.pread(fd, length, pos)
    found = recognise(memoryview(body)[:length], offset, verify=True)
    if found is None:
        return None, 0
    return found, crc32c(memoryview(body)[:length])


def _resume_point(seg: Segment, entries: list[Fields | None], pos: int, offset: int,
                  file_size: int) -> tuple[int, int] | None:
    """(position, base offset) of the first batch after `pos` that a checked index entry
    describes and that verifies against it; None if there is none."""
    tried = 0
    for e in entries:
        if e is None or e[1] <= pos or e[0] <= offset or e[1] + e[4] > file_size:
            continue
        if e[7] & DAMAGED:
            continue
        tried += 1
        data = os.pread(seg.fd, e[4], e[1])
        if (e[7] & HAS_CRC and crc32c(data) == e[8]) or (
                not e[7] & HAS_CRC and recognise(memoryview(data), e[0], verify=True)):
            return e[1], e[0]
        if tried >= _RESYNC_CANDIDATES:
            break
    return None
