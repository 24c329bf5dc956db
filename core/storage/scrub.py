"""Scrubbing: read every stored batch of a partition back and verify it, repairing what a
verified copy can repair — the same checks and repairs as a read (`core/storage/repair.py`),
walked over the whole local log instead of what a client asks for.

Used by `pyggy-scrub` (offline, blocking reads of the archive), by the server's optional
background scrubber (on the event loop: `scrub_partition` yields after each batch so the caller
can pace it, and a repair that must fetch from the archive is awaited, not blocked on), and by
the archiver before it uploads a sealed segment (`verify_segment_file`: the archive never
receives damaged bytes, so it can be the copy that repairs come from).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pyggy.core.crc import crc32c
from pyggy.core.errors import CorruptBatch
from pyggy.core.records.encoding import recognise
from pyggy.core.storage.index import ENTRY_SIZE, HAS_CRC, SegmentIndex
from pyggy.core.storage.partition_log import PartitionLog
from pyggy.core.storage.repair import sound, verified_steps
from pyggy.core.storage.tiered import Steps


@dataclass(slots=True)
class ScrubReport:
    """What a scrub saw: batches and bytes verified, and what it found."""

    batches: int = 0
    bytes: int = 0
    upgraded: int = 0  # first-format index entries verified and given a CRC
    repaired: int = 0  # batches (or damaged ranges) rewritten from a verified copy
    refused: list[str] = field(default_factory=list)  # damage nothing could repair

    def add(self, other: ScrubReport) -> None:
        self.batches += other.batches
        self.bytes += other.bytes
        self.upgraded += other.upgraded
        self.repaired += other.repaired
        self.refused += other.refused


def scrub_partition(plog: PartitionLog, report: ScrubReport) -> Steps[None]:
    """Verify every batch of the partition's local segments into `report`, as `Steps`: it
    asks for archived copies it repairs from, and yields None after each batch (a point where
    a paced driver may pause)."""
    for seg in list(plog.segments):
        i = 0
        while i < len(seg.index) and seg.fd >= 0:
            idx = seg.index
            flags = idx.flags[i]
            data = seg.read_at(idx.positions[i], idx.lengths[i])
            if not sound(idx, i, data):
                try:
                    yield from verified_steps(plog, seg, i, data)
                except CorruptBatch as e:
                    report.refused.append(str(e))
                else:
                    if flags == 0 and idx.flags[i] == HAS_CRC:
                        report.upgraded += 1
                    else:
                        report.repaired += 1
            report.batches += 1
            report.bytes += idx.lengths[i]
            i += 1
            yield None


def verify_segment_file(log_fd: int, index_bytes: bytes) -> list[str]:
    """Check a sealed segment's log against its index (given as entry bytes) without touching
    either: every batch against its CRC, or its own checksums for first-format entries. Returns
    the problems found (empty: sound). Safe on a worker thread (positional reads only)."""
    idx = SegmentIndex.load(index_bytes)
    problems = []
    if len(idx) * ENTRY_SIZE != len(index_bytes):
        problems.append(f"index entries {len(idx)}.. fail their checks")
    for i in range(len(idx)):
        data = os.pread(log_fd, idx.lengths[i], idx.positions[i])
        flags = idx.flags[i]
        ok = (flags == HAS_CRC and crc32c(data) == idx.crcs[i]) or (
            flags == 0 and recognise(memoryview(data), idx.base_offsets[i], verify=True))
        if not ok:
            problems.append(f"batch at offset {idx.base_offsets[i]} (position "
                            f"{idx.positions[i]}) fails its checksum")
    return problems
