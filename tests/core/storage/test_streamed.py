"""Streamed reads (core/storage/streamed.py) on real partition logs: they pick exactly the
batches an ordinary read picks and serve the same bytes; a batch that fails verification is
never yielded, and what a stream learns about it reaches the ordinary read path."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyggy.core.errors import CorruptBatch
from pyggy.core.records import kafka_batch
from pyggy.core.records.encoding import ENCODING_KAFKA
from pyggy.core.storage import streamed
from pyggy.core.storage.index import DAMAGED
from pyggy.core.storage.partition_log import PartitionLog
from storage_support import iggy, kafka, open_log

PER_BATCH = 1000  # records of ~110 B: batches of ~110 KB, ~9 to a 1 MiB chunk
BATCHES = 60  # ~6.6 MB in three 3 MB segments


def append_kafka(log: PartitionLog, batches: int, per_batch: int = PER_BATCH) -> None:
    async def go() -> None:
        for _ in range(batches):
            b = kafka(per_batch, log.next_offset)
            info = kafka_batch.validate_batch(b)
            await log.append_kafka(b, info.record_count, info.max_timestamp)

    asyncio.run(go())


@pytest.fixture(scope="module")
def big_log(tmp_path_factory: pytest.TempPathFactory) -> PartitionLog:
    log = open_log(tmp_path_factory.mktemp("streamed"), segment_size=3_000_000)
    append_kafka(log, BATCHES)
    assert len(log.segments) == 3
    return log


def streamed_bytes(log: PartitionLog, offset: int, max_count: int, max_bytes: int) -> bytes:
    planned = streamed.plan(log, offset, max_count, max_bytes, ENCODING_KAFKA)
    assert planned is not None
    head, rest = planned
    assert sum(map(len, head)) <= streamed.CHUNK or len(head) == 1
    tail = b"".join(rest.chunks()) if rest is not None else b""
    assert rest is None or len(rest) == len(tail)
    return b"".join(head) + tail


def read_bytes(log: PartitionLog, offset: int, max_count: int, max_bytes: int) -> bytes:
    return b"".join(bytes(r.data) for r in log.read(offset, max_count, max_bytes))


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.integers(0, BATCHES * PER_BATCH - 1),
       max_count=st.one_of(st.just(1 << 62), st.integers(1, BATCHES * PER_BATCH)),
       max_bytes=st.one_of(st.just(1 << 62), st.integers(1, 8_000_000)))
def test_a_streamed_read_serves_what_an_ordinary_read_serves(big_log: PartitionLog, offset: int,
                                                             max_count: int,
                                                             max_bytes: int) -> None:
    assert streamed_bytes(big_log, offset, max_count, max_bytes) == \
        read_bytes(big_log, offset, max_count, max_bytes)


def test_a_large_read_leaves_all_but_its_first_chunk_deferred(big_log: PartitionLog) -> None:
    planned = streamed.plan(big_log, 0, 1 << 62, 1 << 62, ENCODING_KAFKA)
    assert planned is not None
    head, rest = planned
    assert rest is not None
    total = sum(map(len, head)) + len(rest)
    assert total == sum(s.size for s in big_log.segments)
    assert streamed.CHUNK // 2 < sum(map(len, head)) <= streamed.CHUNK
    chunks = list(rest.chunks())
    assert len(chunks) > 5 and all(len(c) <= streamed.CHUNK for c in chunks)


def test_a_read_ends_before_a_batch_of_the_other_encoding(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_size=1 << 30)
    append_kafka(log, 20)
    stop = log.next_offset

    async def one_iggy() -> None:
        await log.append_iggy(iggy(5, stop), 5)

    asyncio.run(one_iggy())
    append_kafka(log, 3)
    got = streamed_bytes(log, 0, 1 << 62, 1 << 62)
    assert got == read_bytes(log, 0, stop, 1 << 62)  # up to the Iggy batch: a short read
    assert streamed.plan(log, stop, 1 << 62, 1 << 62, ENCODING_KAFKA) is None  # read whole


def _flip(log: PartitionLog, batch: int) -> tuple[int, int]:
    """Flip a byte in the middle of batch `batch` of the first segment, on disk; (its base
    offset, its position in the log)."""
    seg = log.segments[0]
    pos, ln = seg.index.positions[batch], seg.index.lengths[batch]
    with open(seg.log_path, "r+b") as f:
        f.seek(pos + ln // 2)
        byte = f.read(1)[0]
        f.seek(pos + ln // 2)
        f.write(bytes([byte ^ 0x40]))
    return seg.index.base_offsets[batch], pos


def test_a_batch_failing_mid_stream_is_never_yielded_and_is_marked(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = open_log(tmp_path, segment_size=1 << 30)
    append_kafka(log, 40)
    bad = 25  # well past the first chunk
    base, pos = _flip(log, bad)
    planned = streamed.plan(log, 0, 1 << 62, 1 << 62, ENCODING_KAFKA)
    assert planned is not None
    head, rest = planned
    assert rest is not None
    served = bytearray(b"".join(head))
    with caplog.at_level(logging.ERROR), pytest.raises(CorruptBatch):
        for chunk in rest.chunks():
            served += chunk
    assert len(served) <= pos  # nothing of the bad batch (nor of its chunk) was yielded
    assert bytes(served) == read_bytes(log, 0, base, 1 << 62)[:len(served)]
    idx = log.segments[0].index
    assert idx.flags[bad] & DAMAGED
    assert "marked damaged" in caplog.text
    # the next read stops before it, and the ordinary read refuses it (no copy to repair from)
    assert streamed_bytes(log, 0, 1 << 62, 1 << 62) == read_bytes(log, 0, base, 1 << 62)
    assert streamed.plan(log, base, 1 << 62, 1 << 62, ENCODING_KAFKA) is None
    with pytest.raises(CorruptBatch):
        log.read(base, 1 << 62)


def test_a_bad_batch_in_the_head_makes_a_short_read_or_an_ordinary_one(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_size=1 << 30)
    append_kafka(log, 20)
    base, _ = _flip(log, 3)
    assert streamed.plan(log, 0, 1 << 62, 1 << 62, ENCODING_KAFKA) == (
        [read_bytes(log, 0, base, 1 << 62)], None)  # the three before it
    assert streamed.plan(log, base, 1 << 62, 1 << 62, ENCODING_KAFKA) is None
    assert not log.segments[0].index.flags[3] & DAMAGED  # the ordinary read decides


def test_a_segment_closed_mid_stream_ends_it_without_marking(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_size=1 << 30)
    append_kafka(log, 30)
    planned = streamed.plan(log, 0, 1 << 62, 1 << 62, ENCODING_KAFKA)
    assert planned is not None and planned[1] is not None
    chunks = planned[1].chunks()
    next(chunks)
    log.segments[0].close()  # as retention or a compaction swap would
    with pytest.raises(OSError):
        next(chunks)
    assert not any(f & DAMAGED for f in log.segments[0].index.flags)
