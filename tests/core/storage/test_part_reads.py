"""core/storage/reads.py PartReads: a batch a read took only part of is kept verified, so the
consumer's next poll into it costs no second read and CRC-32C; a changed entry misses."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from pyggy.core.clock import SystemClock
from pyggy.core.errors import CorruptBatch
from pyggy.core.model import TopicOptions
from pyggy.core.records.iggy_batch import build_batch, iter_messages
from pyggy.core.storage import reads
from pyggy.core.storage.fsync import GroupCommitter
from pyggy.core.storage.partition_log import PartitionLog
from pyggy.core.storage.reads import PartReads
from pyggy.core.storage.segment import Segment


def batch(n: int, tag: bytes) -> bytearray:
    return build_batch([(i + 1, tag + b"%04d" % i, b"", 1000 + i) for i in range(n)])


def open_log(path: Path, validate: bool = True) -> PartitionLog:
    log = PartitionLog(path, 0, TopicOptions(), GroupCommitter(), SystemClock(),
                       validate_checksum=validate)
    log.open()
    return log


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> PartReads:
    fresh = PartReads(1 << 20)
    monkeypatch.setattr(reads, "PART_READS", fresh)
    return fresh


@pytest.fixture
def disk_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Positions Segment.read_at was asked for (the real read still happens)."""
    seen: list[int] = []
    real = Segment.read_at

    def spy(self: Segment, position: int, length: int) -> bytes:
        seen.append(position)
        return real(self, position, length)
    monkeypatch.setattr(Segment, "read_at", spy)
    return seen


def test_polls_inside_one_batch_read_it_once(tmp_path: Path, cache: PartReads,
                                             disk_reads: list[int]) -> None:
    log = open_log(tmp_path / "p")
    asyncio.run(log.append_iggy(batch(100, b"a"), 100))
    asyncio.run(log.append_iggy(batch(100, b"b"), 100))
    for offset in range(0, 90, 10):  # nine polls of 10 from the first batch
        (ref,) = log.read(offset, 10)
        assert ref.base_offset == 0 and ref.record_count == 100
    assert disk_reads == [0]
    assert len(cache.entries) == 1
    (ref,) = log.read(90, 10)  # takes the rest: the entry goes
    assert disk_reads == [0] and not cache.entries and cache.size == 0
    refs = log.read(95, 10)  # both batches, the second one only in part
    assert [r.base_offset for r in refs] == [0, 100] and len(disk_reads) == 3
    assert list(cache.entries) == [(log.segments[0], 1)]
    log.close()


def test_a_rewritten_entry_is_read_again(tmp_path: Path, cache: PartReads,
                                         disk_reads: list[int]) -> None:
    """The log is cut back and another batch stored where the cached one was (same index
    entry number, same position): the new bytes are read, not the kept ones."""
    log = open_log(tmp_path / "p")
    asyncio.run(log.append_iggy(batch(50, b"a"), 50))
    log.read(0, 10)
    seg = log.segments[0]
    seg.truncate(0)
    asyncio.run(log.append_iggy(batch(50, b"z"), 50))
    (ref,) = log.read(0, 10)
    assert bytes(next(iter_messages(ref.data))[4]) == b"z0000"
    assert disk_reads == [0, 0]
    log.close()


def test_corruption_on_disk_is_still_caught_on_a_fresh_read(tmp_path: Path,
                                                            cache: PartReads) -> None:
    """Only verified bytes are kept: a batch damaged on disk before its first read is
    refused as before (nothing was cached for it)."""
    log = open_log(tmp_path / "p")
    asyncio.run(log.append_iggy(batch(50, b"a"), 50))
    seg = log.segments[0]
    fd = os.open(seg.log_path, os.O_RDWR)
    os.pwrite(fd, b"\xff", 400)
    os.close(fd)
    with pytest.raises(CorruptBatch):
        log.read(0, 10)
    assert not cache.entries
    log.close()


def test_without_verification_nothing_is_kept(tmp_path: Path, cache: PartReads,
                                              disk_reads: list[int]) -> None:
    log = open_log(tmp_path / "p", validate=False)
    asyncio.run(log.append_iggy(batch(50, b"a"), 50))
    log.read(0, 10)
    log.read(10, 10)
    assert disk_reads == [0, 0] and not cache.entries
    log.close()


def test_the_budget_drops_the_least_recently_used(tmp_path: Path) -> None:
    log = open_log(tmp_path / "p")
    for tag in (b"a", b"b", b"c", b"d", b"e"):
        asyncio.run(log.append_iggy(batch(40, tag), 40))
    seg = log.segments[0]
    lengths = list(seg.index.lengths)
    assert len(set(lengths)) == 1
    cost = lengths[0] + 256
    cache = PartReads(4 * cost)  # room for four
    for i in range(5):
        cache.put(seg, i, seg.read_at(seg.index.positions[i], lengths[i]))
    assert [k[1] for k in cache.entries] == [1, 2, 3, 4] and cache.size == 4 * cost
    assert cache.get(seg, 0) is None and cache.get(seg, 1) is not None
    cache.put(seg, 0, seg.read_at(seg.index.positions[0], lengths[0]))
    assert [k[1] for k in cache.entries] == [3, 4, 1, 0]  # 1 was used last, 2 went
    small = PartReads(4 * lengths[0] - 1)  # an entry over a quarter of the budget is not kept
    small.put(seg, 0, seg.read_at(seg.index.positions[0], lengths[0]))
    assert not small.entries and small.size == 0
    log.close()
