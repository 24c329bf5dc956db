"""Streamed Iggy polls (core/engine/data.py `poll_async(streamed=True)`, core/storage/streamed.py
`plan_polled`) on a real engine: they answer exactly what a whole read answers, byte for byte;
only polls of whole stored Iggy batches are planned; a batch that rots after the poll was
planned is never yielded, and the next poll stops before it."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyggy.core.engine import CONSUMER, OFFSET, LogEngine
from pyggy.core.engine.data import Deferred, PollResult
from pyggy.core.errors import CorruptBatch
from pyggy.core.records import kafka_batch
from pyggy.core.records.iggy_batch import build_batch
from pyggy.core.storage import streamed

BATCHES = 60
KAFKA_AT = 41  # one Kafka batch among the Iggy ones: a plan ends before it
SIZES = [random.Random(7).randint(40, 400) for _ in range(BATCHES)]  # messages per batch


def batch(n: int, start: int) -> bytearray:
    return build_batch([(start + i + 1, b"p%07d" % (start + i) + b"." * 200, b"", 1000 + i)
                        for i in range(n)])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    e = LogEngine(tmp_path_factory.mktemp("polls") / "data", state_fsync=False)
    e.open(("iggy", "iggy"))

    async def fill() -> None:
        await e.metadata.create_stream("s")
        t = await e.metadata.create_topic("s", "t", 1)
        t.options.segment_size = 1 << 20  # several segments; plans cross them
        plog = t.partitions[0].log
        for k, n in enumerate(SIZES):
            if k == KAFKA_AT:
                b = kafka_batch.build_batch([(1_700_000_000_000 + i, b"k", b"v" * 200, [])
                                             for i in range(n)])
                await plog.append_kafka(b, n, 1_700_000_000_000)
            else:
                await e.data.append("s", "t", (2, 0), batch(n, plog.next_offset))

    asyncio.run(fill())
    assert len(e.metadata.topic("s", "t").partitions[0].log.segments) > 2
    yield e
    e.close()


def poll(e: LogEngine, offset: int, count: int, stream: bool, commit: bool = False,
         consumer: str = "c") -> PollResult:
    return asyncio.run(e.data.poll_async("s", "t", 0, OFFSET, offset, count, CONSUMER,
                                         consumer, commit, streamed=stream))


def body(r: PollResult) -> bytes:
    parts = r.streamed if r.streamed is not None else r.chunks
    out = bytearray()
    for p in parts:
        if type(p) is Deferred:
            got = b"".join(p.chunks())
            assert len(got) == len(p)  # the length the reply's header announced
            out += got
        else:
            out += p
    return bytes(out)


def starts() -> list[int]:
    out, at = [], 0
    for n in SIZES:
        out.append(at)
        at += n
    return out


TOTAL = sum(SIZES)


@settings(max_examples=80, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.one_of(st.sampled_from(starts()), st.integers(0, TOTAL)),
       count=st.one_of(st.just(2**32 - 1), st.integers(1, TOTAL)),
       budget=st.one_of(st.just(64 << 20), st.integers(1, 4 << 20)))
def test_a_streamed_poll_answers_what_a_whole_read_answers(engine: LogEngine, offset: int,
                                                           count: int, budget: int) -> None:
    engine.data.poll_max_bytes = budget
    try:
        whole = poll(engine, offset, count, False)
        lazy = poll(engine, offset, count, True)
    finally:
        engine.data.poll_max_bytes = 64 << 20
    assert whole.streamed is None
    assert (lazy.partition_id, lazy.current_offset, lazy.count) == \
        (whole.partition_id, whole.current_offset, whole.count)
    assert body(lazy) == body(whole)


def test_a_large_poll_of_whole_batches_is_deferred_after_its_first_chunk(
        engine: LogEngine) -> None:
    r = poll(engine, 0, 2**32 - 1, True)
    assert r.streamed is not None
    kinds = [type(p) is Deferred for p in r.streamed]
    # the head, the rest up to the Kafka batch, then what follows read the ordinary way (the
    # Kafka batch transcoded, the Iggy batches after it), as a whole read does
    assert kinds[:2] == [False, True] and not any(kinds[2:]) and len(kinds) > 3
    head, rest = r.streamed[:2]
    assert streamed.CHUNK // 2 < len(head) <= streamed.CHUNK and len(rest) > streamed.CHUNK
    assert r.count == TOTAL
    assert body(r) == body(poll(engine, 0, 2**32 - 1, False))


def test_polls_that_cannot_be_planned_are_read_whole(engine: LogEngine) -> None:
    assert poll(engine, 3, 2**32 - 1, True).streamed is None  # inside a batch
    assert poll(engine, 0, SIZES[0] - 1, True).streamed is None  # cuts the first batch
    kafka_start = starts()[KAFKA_AT]
    assert poll(engine, kafka_start, 2**32 - 1, True).streamed is None  # a Kafka batch
    # auto-commit stores the offset before the bytes leave: never streamed
    r = poll(engine, 0, 2**32 - 1, True, commit=True, consumer="auto")
    assert r.streamed is None and r.count == poll(engine, 0, 2**32 - 1, False).count


def test_a_batch_rotting_mid_stream_is_never_yielded_and_the_next_poll_stops_before_it(
        tmp_path: Path) -> None:
    e = LogEngine(tmp_path / "data", state_fsync=False)
    e.open(("iggy", "iggy"))
    try:
        async def fill() -> None:
            await e.metadata.create_stream("s")
            await e.metadata.create_topic("s", "t", 1)
            for k in range(40):
                await e.data.append("s", "t", (2, 0), batch(300, k * 300))

        asyncio.run(fill())
        seg = e.metadata.topic("s", "t").partitions[0].log.segments[0]
        bad = 30  # ~65 KB batches: many chunks after the head
        pos, ln = seg.index.positions[bad], seg.index.lengths[bad]
        good = seg.log_path.read_bytes()
        r = poll(e, 0, 2**32 - 1, True)
        assert r.streamed is not None and type(r.streamed[-1]) is Deferred
        assert sum(map(len, r.streamed[:-1])) < pos  # the batch is read after the head
        with open(seg.log_path, "r+b") as f:  # a bit rots after the poll was planned
            f.seek(pos + ln // 2)
            f.write(bytes([good[pos + ln // 2] ^ 0x10]))
        served = bytearray(b"".join(p for p in r.streamed if type(p) is not Deferred))
        with pytest.raises(CorruptBatch):
            for chunk in r.streamed[-1].chunks():
                served += chunk
        assert served == good[:len(served)] and len(served) <= pos  # verified bytes only
        again = poll(e, 0, 2**32 - 1, True)  # the client's retry: up to the batch
        assert again.count == bad * 300 and body(again) == good[:pos]
        with pytest.raises(CorruptBatch):  # at it: refused (no archive to repair from)
            poll(e, bad * 300, 2**32 - 1, True)
    finally:
        e.close()
