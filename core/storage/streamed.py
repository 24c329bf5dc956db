"""Reads written while they are verified: a large read is chosen from the index alone, so a
door knows its size before any byte is read, and its bytes are read and checked a chunk at
a time as they are written out (README, "Every byte is verified before it is served").

`plan` picks exactly the batches `read_steps` (core/storage/reads.py) would pick, reads and
verifies the first chunk at once and leaves the rest as a `Deferred` of known length. Every
chunk `Deferred.chunks` yields has passed the CRC check of each of its batches against the
CRC the index held when the read was planned; a batch that fails raises CorruptBatch, and a
segment closed in the meantime raises OSError, before any of that chunk's bytes leave. A door
that already sent the head must then end the connection (the client retries), and the batch
is marked DAMAGED in memory once a second read confirms it, so the next read stops before it
and the one after goes through the repair path (core/storage/repair.py) like any other read.

Only what a stream can promise is planned: local segments, entries with a CRC and not
DAMAGED, one encoding (served verbatim, so sizes are stored sizes). `plan` answers None when
the first batch is not such (the caller reads the ordinary way, which repairs or refuses),
and ends the plan before the first later one that is not (a short read, as `read_steps`
makes before a batch that fails).

`plan_polled` does the same for an Iggy poll (served verbatim over 0.11, converted chunk by
chunk over the classic protocol: native_wire/handlers/messages.py): the poll's count is known
from the index only when it takes whole batches, so its plan starts at a batch's first offset
and ends before the first batch that would be cut by the count (the poll reads that one, and
anything after the plan, the ordinary way: core/engine/data.py).
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from pyggy.core.crc import crc32c
from pyggy.core.errors import CorruptBatch
from pyggy.core.storage.index import DAMAGED, HAS_CRC
from pyggy.core.storage.repair import sound

if TYPE_CHECKING:
    from pyggy.core.storage.partition_log import PartitionLog
    from pyggy.core.storage.segment import Segment

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read and verified at a time (at least one batch)


class Run(NamedTuple):
    """Batches of one segment, contiguous on disk, as the index described them at planning."""

    segment: Segment
    bases: array[int]
    positions: array[int]
    lengths: array[int]
    crcs: array[int]
    counts: array[int]


class Deferred:
    """The planned batches after the head: `len` is their byte length, `chunks()` their
    verified bytes (about `CHUNK` at a time)."""

    __slots__ = ("plog", "runs", "nbytes")

    def __init__(self, plog: PartitionLog, runs: list[Run]) -> None:
        self.plog = plog
        self.runs = runs
        self.nbytes = sum(sum(r.lengths) for r in runs)

    def __len__(self) -> int:
        return self.nbytes

    def chunks(self) -> Iterator[bytes]:
        """Verified bytes, chunk by chunk; CorruptBatch or OSError ends it (see the module)."""
        for run in self.runs:
            a = 0
            while a < len(run.lengths):
                data, b, bad = _read(run, a, CHUNK, self.plog.validate_checksum)
                if bad is not None:
                    raise _damaged(self.plog, run, bad)
                yield data
                a = b


def plan(plog: PartitionLog, offset: int, max_count: int, max_bytes: int,
         encoding: int) -> tuple[list[bytes], Deferred | None] | None:
    """(verified head chunks, the rest or None) for the read `read_steps` would make, or None
    when it cannot be streamed (see the module)."""
    runs = _choose(plog, offset, max_count, max_bytes, encoding)
    if not runs:
        return None
    data, b, bad = _read(runs[0], 0, CHUNK, plog.validate_checksum)
    if bad == 0:
        return None  # the first batch: the ordinary read repairs or refuses it
    if bad is not None:  # a short read before the batch that failed, as read_steps makes
        return [data[:sum(runs[0].lengths[:bad])]], None
    r = runs[0]
    rest = runs[1:]
    if b < len(r.lengths):
        rest.insert(0, Run(r.segment, r.bases[b:], r.positions[b:], r.lengths[b:], r.crcs[b:],
                           r.counts[b:]))
    return [data], (Deferred(plog, rest) if rest else None)


class Polled(NamedTuple):
    """A planned poll of whole batches: the head and rest as `plan` gives them, the messages
    they hold, the offset after them, their bytes, and whether the plan ended at a batch that
    failed (a short read: the poll ends there too)."""

    head: list[bytes]
    rest: Deferred | None
    messages: int
    next_offset: int
    nbytes: int
    short: bool


def plan_polled(plog: PartitionLog, offset: int, max_count: int, max_bytes: int,
                encoding: int) -> Polled | None:
    """`plan` for a read of whole batches from `offset` (see the module); None when the batch
    at `offset` does not start there or holds more than `max_count` records."""
    runs = _choose(plog, offset, max_count, max_bytes, encoding, whole=True)
    if not runs:
        return None
    data, b, bad = _read(runs[0], 0, CHUNK, plog.validate_checksum)
    if bad == 0:
        return None
    r = runs[0]
    if bad is not None:
        head = data[:sum(r.lengths[:bad])]
        return Polled([head], None, sum(r.counts[:bad]), r.bases[bad], len(head), True)
    rest = runs[1:]
    if b < len(r.lengths):
        rest.insert(0, Run(r.segment, r.bases[b:], r.positions[b:], r.lengths[b:], r.crcs[b:],
                           r.counts[b:]))
    last = runs[-1]
    messages = nbytes = 0  # loops, not generators: every poll plans
    for x in runs:
        messages += sum(x.counts)
    for x in rest:
        nbytes += sum(x.lengths)
    return Polled([data], Deferred(plog, rest) if rest else None, messages,
                  last.bases[-1] + last.counts[-1], len(data) + nbytes, False)


def _choose(plog: PartitionLog, offset: int, max_count: int, max_bytes: int,
            encoding: int, whole: bool = False) -> list[Run]:
    """The runs of batches `read_steps` would return, from the index alone, ended early at a
    batch a stream cannot serve (empty when that is the first); with `whole`, only batches
    taken whole (from one starting at `offset`, none cut by `max_count`)."""
    offset = max(offset, plog.start_offset)
    if plog.tiered and offset < plog.segments[0].start_offset:
        return []
    runs: list[Run] = []
    remaining, budget, taken = max_count, max_bytes, False
    for seg in plog.segments:
        idx = seg.index
        bases = idx.base_offsets
        n = len(bases)  # the index's columns as locals: every poll plans (a hot loop)
        if seg.next_offset <= offset or not n:
            continue
        positions, lengths, counts = idx.positions, idx.lengths, idx.counts
        flags, encodings = idx.flags, idx.encodings
        i = first = idx.find_offset(offset)
        end = positions[i] if i < n else 0
        while i < n and remaining > 0:
            ln = lengths[i]
            base = bases[i]
            span = base + counts[i] - (offset if offset > base else base)
            if (taken and ln > budget) or flags[i] != HAS_CRC or \
                    encodings[i] != encoding or positions[i] != end or \
                    (whole and (span > remaining or base < offset)):
                break
            remaining -= span
            budget -= ln
            end += ln
            taken = True
            i += 1
        if i > first:
            runs.append(Run(seg, bases[first:i], positions[first:i], lengths[first:i],
                            idx.crcs[first:i], counts[first:i]))
        if i < n and remaining > 0 and budget > 0:
            break  # stopped inside the segment: at the budget, or at a batch not to stream
        if remaining <= 0 or budget <= 0:
            break
    return runs


def _read(run: Run, a: int, size: int, validate: bool) -> tuple[bytes, int, int | None]:
    """(bytes of batches a..b-1 of `run`, b, index of the first that fails or None): at least
    one batch, at most `size` bytes otherwise; one positional read."""
    lengths, crcs = run.lengths, run.crcs
    b, span = a + 1, lengths[a]
    while b < len(lengths) and span + lengths[b] <= size:
        span += lengths[b]
        b += 1
    data = run.segment.read_at(run.positions[a], span)
    if len(data) != span:  # the file was cut since the plan
        return data, b, a
    if validate:
        if b == a + 1:  # one batch (a 1 MB poll's): no view to cut
            return data, b, (None if crc32c(data) == crcs[a] else a)
        view, at = memoryview(data), 0
        for j in range(a, b):
            ln = lengths[j]
            if crc32c(view[at:at + ln]) != crcs[j]:
                return data, b, j
            at += ln
    return data, b, None


def _damaged(plog: PartitionLog, run: Run, j: int) -> CorruptBatch:
    """Batch j of `run` failed after the head was sent: mark its entry DAMAGED when the index
    still describes it and a second read fails too; the error to end the stream with."""
    seg, base, pos = run.segment, run.bases[j], run.positions[j]
    idx = seg.index
    i = idx.find_offset(base)
    if seg.fd >= 0 and i < len(idx) and idx.positions[i] == pos and \
            idx.flags[i] == HAS_CRC and idx.crcs[i] == run.crcs[j] and \
            not sound(idx, i, seg.read_at(pos, idx.lengths[i])):
        idx.set_crc(i, run.crcs[j], HAS_CRC | DAMAGED)  # in memory: the next start rechecks
        log.error("partition %s: stored batch at offset %d (segment %s, position %d) fails "
                  "its checksum while being streamed; marked damaged", plog.partition_id,
                  base, seg.log_path, pos)
    return CorruptBatch(f"partition {plog.partition_id}: stored batch at offset {base} failed "
                        "verification while its response was being streamed")
