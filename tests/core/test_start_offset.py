"""The log start offset floor (Kafka DeleteRecords) and option resets on update."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pyggy.core.clock import SystemClock
from pyggy.core.engine import FIRST, LAST, NEXT, OFFSET, TIMESTAMP, LogEngine
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import NEVER_EXPIRE, TopicOptions
from pyggy.core.records.iggy_batch import build_batch, iter_messages
from pyggy.core.small_file import SmallFile
from pyggy.core.storage.fsync import GroupCommitter
from pyggy.core.storage.partition_log import START_OFFSET_FILE, PartitionLog


def batch(n: int, start: int = 0, size: int = 16) -> bytearray:
    return build_batch([(i + 1, f"m{start + i:06d}".encode().ljust(size, b"."), b"", 1000 + i)
                        for i in range(n)])


def offsets(result) -> list[int]:
    return [m[0] for c in result.chunks for m in iter_messages(c)]


def payloads(result) -> list[bytes]:
    return [bytes(m[4][:7]) for c in result.chunks for m in iter_messages(c)]


def run(coro):
    return asyncio.run(coro)


@pytest.fixture
def engine(tmp_path: Path):
    e = LogEngine(tmp_path / "data", state_fsync=False)
    e.open(("iggy", "iggy"))
    yield e
    e.close()


def small_log(path: Path, segment_size: int = 600) -> PartitionLog:
    log = PartitionLog(path, 0, TopicOptions(segment_size=segment_size), GroupCommitter(),
                       SystemClock())
    log.open()
    return log


def fill(log: PartitionLog, batches: int, per_batch: int = 10) -> None:
    for k in range(batches):
        run(log.append_iggy(batch(per_batch, k * per_batch), per_batch))


def test_advance_start_deletes_whole_segments_below_and_persists(tmp_path: Path) -> None:
    log = small_log(tmp_path / "p")
    fill(log, 6)
    assert log.segments_count > 2 and log.next_offset == 60
    starts = [s.start_offset for s in log.segments]
    assert log.advance_start(25) == 25
    assert log.start_offset == 25 and log.messages_count == 35
    assert all(s.next_offset > 25 for s in log.segments)  # wholly-below segments are gone
    assert log.segments[0].start_offset <= 25
    assert len(log.segments) < len(starts)
    # reads start at the batch holding 25 (the door slices the records below it away)
    refs = log.read(0, 100)
    assert refs[0].base_offset <= 25 < refs[0].base_offset + refs[0].record_count
    # lower or equal offsets change nothing
    assert log.advance_start(10) == 25 and log.advance_start(25) == 25
    with pytest.raises(ValueError):
        log.advance_start(61)
    log.close()
    again = small_log(tmp_path / "p")
    assert again.start_offset == 25 and again.next_offset == 60
    assert SmallFile(tmp_path / "p" / START_OFFSET_FILE).read() == b"25"  # two copies
    assert again.advance_start(60) == 60 and again.messages_count == 0
    again.close()


def test_floor_in_the_active_segment_and_retention_drops_it_after_a_roll(tmp_path: Path) -> None:
    log = small_log(tmp_path / "p", segment_size=1 << 20)
    fill(log, 3)
    assert log.segments_count == 1
    assert log.advance_start(30) == 30 and log.read(0, 100) == []
    assert log.offset_for_timestamp(0) is None
    log.options.segment_size = 1  # roll at the next append
    fill(log, 1)
    fill(log, 1)
    assert log.start_offset == 30 and log.next_offset == 50
    assert log.enforce_retention(0, NEVER_EXPIRE, None) >= 1
    assert log.segments[0].start_offset == 30
    log.close()


def test_purge_forgets_the_floor(tmp_path: Path) -> None:
    log = small_log(tmp_path / "p")
    fill(log, 3)
    log.advance_start(12)
    log.purge()
    assert log.start_offset == 0 and log.next_offset == 0 and log.floor == 0
    assert not (tmp_path / "p" / START_OFFSET_FILE).exists()
    fill(log, 1)
    assert log.start_offset == 0 and log.messages_count == 10
    log.close()


def test_floor_past_a_cut_tail_is_lowered_on_open(tmp_path: Path) -> None:
    log = small_log(tmp_path / "p", segment_size=1 << 20)
    fill(log, 2)
    log.close()
    (tmp_path / "p" / START_OFFSET_FILE).write_text("500\n")
    again = small_log(tmp_path / "p", segment_size=1 << 20)
    assert again.floor == 20 and again.start_offset == 20
    fill(again, 1)
    assert again.start_offset == 20 and again.messages_count == 10
    again.close()


def test_engine_delete_records_is_respected_by_the_iggy_door(engine: LogEngine) -> None:
    asyncio.run(engine.metadata.create_stream("s"))
    t = asyncio.run(engine.metadata.create_topic("s", "t", 1))
    for k in range(4):
        run(engine.data.append("s", "t", (2, 0), batch(10, k * 10)))
    assert asyncio.run(engine.metadata.delete_records(t, 0, 15)) == 15
    assert offsets(engine.data.poll("s", "t", 0, FIRST, 0, 3)) == [15, 16, 17]
    assert offsets(engine.data.poll("s", "t", 0, OFFSET, 3, 2)) == [15, 16]
    assert offsets(engine.data.poll("s", "t", 0, NEXT, 0, 1, consumer_id=7)) == [15]
    assert offsets(engine.data.poll("s", "t", 0, LAST, 0, 40))[0] == 15
    ts = engine.data.poll("s", "t", 0, TIMESTAMP, 0, 2)
    assert offsets(ts) == [15, 16] and payloads(ts) == [b"m000015", b"m000016"]
    assert t.partitions[0].log.messages_count == 25
    with pytest.raises(IggyError) as e:
        asyncio.run(engine.metadata.delete_records(t, 0, 41))
    assert e.value.code == ErrorCode.INVALID_OFFSET
    with pytest.raises(IggyError) as e:
        asyncio.run(engine.metadata.delete_records(t, 3, 1))
    assert e.value.code == ErrorCode.PARTITION_NOT_FOUND
    # the Kafka view starts at the batch holding the floor
    chunks = engine.data.read_kafka(t, 0, 0, 1 << 20)
    assert chunks
    asyncio.run(engine.metadata.purge_topic("s", "t"))
    assert t.partitions[0].log.start_offset == 0


def test_engine_delete_records_survives_restart(tmp_path: Path) -> None:
    e = LogEngine(tmp_path / "data", state_fsync=False)
    e.open(("iggy", "iggy"))
    asyncio.run(e.metadata.create_stream("s"))
    t = asyncio.run(e.metadata.create_topic("s", "t", 2))
    run(e.data.append("s", "t", (2, 1), batch(10)))
    asyncio.run(e.metadata.delete_records(t, 1, 7))
    e.close()
    e = LogEngine(tmp_path / "data", state_fsync=False)
    e.open()
    try:
        assert offsets(e.data.poll("s", "t", 1, FIRST, 0, 100)) == [7, 8, 9]
    finally:
        e.close()


def test_update_topic_reset_returns_options_to_defaults(tmp_path: Path) -> None:
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    asyncio.run(engine.metadata.create_stream("s"))
    t = asyncio.run(engine.metadata.create_topic(
        "s", "t", 1, [("message_expiry", 12, (5_000_000).to_bytes(8, "little")),
                      ("kafka.flush.ms", 2, b"10")]))
    assert t.options.message_expiry == 5_000_000
    asyncio.run(engine.metadata.update_topic("s", "t", "t", [("kafka.segment.ms", 2, b"99")],
                        reset=["message_expiry", "kafka.flush.ms"]))
    assert t.options.message_expiry == NEVER_EXPIRE
    assert [k for k, _, _ in t.options.explicit] == ["kafka.segment.ms"]
    with pytest.raises(IggyError) as e:
        asyncio.run(engine.metadata.update_topic("s", "t", "t", reset=["segment_size"]))
    assert e.value.code == ErrorCode.UNSUPPORTED_OPTION_KEY
    engine.close()
    again = LogEngine(engine.root, state_fsync=False)
    again.open()
    try:
        t2 = again.metadata.topic("s", "t")
        assert t2.options.message_expiry == NEVER_EXPIRE
        assert [k for k, _, _ in t2.options.explicit] == ["kafka.segment.ms"]
    finally:
        again.close()


@pytest.mark.parametrize("floor", [0, 25])
@pytest.mark.parametrize("expiry", [NEVER_EXPIRE, 1, 10**12])
@pytest.mark.parametrize("max_bytes", [None, 1, 10**9])
def test_retention_due_says_whether_retention_would_remove_a_segment(
        tmp_path: Path, floor: int, expiry: int, max_bytes: int | None) -> None:
    # a cluster's cleaner proposes a RETENTION op only when this says so
    log = small_log(tmp_path / "p")
    fill(log, 6)
    if floor:
        log.advance_start(floor)
    now = SystemClock().now_us()
    due = log.retention_due(now, expiry, max_bytes)
    assert due == (log.enforce_retention(now, expiry, max_bytes) > 0)
    assert not log.retention_due(now, expiry, max_bytes)  # nothing left to remove
    log.close()
