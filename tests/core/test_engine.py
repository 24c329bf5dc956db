"""The log engine as a library: metadata, append/poll, offsets, groups, restart, recovery."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pyggy.core.engine import (
    CONSUMER,
    CONSUMER_GROUP,
    FIRST,
    LAST,
    NEXT,
    OFFSET,
    TIMESTAMP,
    LogEngine,
)
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.records.iggy_batch import build_batch, iter_messages


def batch(n: int, start: int = 0, size: int = 16) -> bytearray:
    return build_batch([(i + 1, f"m{start + i:06d}".encode().ljust(size, b"."), b"", 1000 + i)
                        for i in range(n)])


def payloads(result) -> list[bytes]:
    return [bytes(m[4]) for c in result.chunks for m in iter_messages(c)]


@pytest.fixture
def engine(tmp_path: Path):
    e = LogEngine(tmp_path / "data", state_fsync=False)
    e.open(("iggy", "iggy"))
    yield e
    e.close()


def run(coro):
    return asyncio.run(coro)


def test_streams_topics_ids_are_zero_based_and_recycled(engine: LogEngine) -> None:
    s0 = asyncio.run(engine.metadata.create_stream("s0"))
    s1 = asyncio.run(engine.metadata.create_stream("s1"))
    assert (s0.id, s1.id) == (0, 1)
    with pytest.raises(IggyError) as e:
        asyncio.run(engine.metadata.create_stream("s0"))
    assert e.value.code == ErrorCode.STREAM_NAME_ALREADY_EXISTS
    asyncio.run(engine.metadata.delete_stream(0))
    assert asyncio.run(engine.metadata.create_stream("again")).id == 0
    t = asyncio.run(engine.metadata.create_topic("s1", "t", 3))
    assert t.id == 0 and [p.id for p in t.partitions] == [0, 1, 2]
    assert engine.metadata.get_topic(1, "t") is t
    assert engine.metadata.get_stream("missing") is None


def test_append_and_poll_with_every_strategy(engine: LogEngine) -> None:
    asyncio.run(engine.metadata.create_stream("s"))
    asyncio.run(engine.metadata.create_topic("s", "t", 1))
    for k in range(5):
        sid, tid, pid, base = run(engine.data.append("s", "t", (2, 0), batch(10, k * 10)))
        assert (sid, tid, pid, base) == (0, 0, 0, k * 10)
    r = engine.data.poll("s", "t", 0, OFFSET, 15, 7)
    assert r.count == 7 and r.current_offset == 49
    assert payloads(r)[0].startswith(b"m000015") and payloads(r)[-1].startswith(b"m000021")
    assert engine.data.poll("s", "t", 0, FIRST, 0, 3).count == 3
    last = engine.data.poll("s", "t", 0, LAST, 0, 4)
    assert payloads(last)[0].startswith(b"m000046")
    assert engine.data.poll("s", "t", 0, OFFSET, 50, 10).count == 0
    ts = engine.data.poll("s", "t", 0, TIMESTAMP, 0, 100)
    assert ts.count == 50
    r1 = engine.data.poll("s", "t", 0, NEXT, 0, 20, CONSUMER, "c1", auto_commit=True)
    r2 = engine.data.poll("s", "t", 0, NEXT, 0, 20, CONSUMER, "c1", auto_commit=True)
    assert payloads(r1)[-1].startswith(b"m000019") and payloads(r2)[0].startswith(b"m000020")
    assert engine.consumers.get_offset(CONSUMER, "c1", "s", "t", 0) == (0, 49, 39)


def test_a_poll_reads_a_bounded_number_of_bytes(engine: LogEngine) -> None:
    """A poll asking for 2**32 - 1 messages gets whole batches up to `poll_max_bytes` (at
    least one), and the next poll goes on from there, so nothing is skipped."""
    asyncio.run(engine.metadata.create_stream("s"))
    asyncio.run(engine.metadata.create_topic("s", "t", 1))
    for k in range(8):
        run(engine.data.append("s", "t", (2, 0), batch(100, k * 100, size=1000)))
    engine.data.poll_max_bytes = 250_000  # ~2.4 stored batches of ~104 KB
    got: list[bytes] = []
    offset = 0
    while True:
        r = engine.data.poll("s", "t", 0, OFFSET, offset, 2**32 - 1)
        if not r.count:
            break
        assert r.count in (100, 200)  # whole batches, never more than fit the budget
        got += payloads(r)
        offset += r.count
    assert [p[:7] for p in got] == [b"m%06d" % i for i in range(800)]
    engine.data.poll_max_bytes = 10  # smaller than one batch: still one batch
    assert engine.data.poll("s", "t", 0, OFFSET, 0, 2**32 - 1).count == 100


def test_restart_keeps_metadata_messages_and_offsets(tmp_path: Path) -> None:
    e = LogEngine(tmp_path, state_fsync=False)
    e.open(("iggy", "iggy"))
    asyncio.run(e.metadata.create_stream("s"))
    segment = (1 << 20).to_bytes(8, "little")
    asyncio.run(e.metadata.create_topic("s", "t", 2, [("segment_size", 12, segment)]))
    for k in range(300):
        run(e.data.append("s", "t", (2, k % 2), batch(10, k * 10, size=1000)))
    asyncio.run(e.consumers.store_offset(CONSUMER, 7, "s", "t", 1, 42))
    segs = e.metadata.topic("s", "t").partitions[0].log.segments_count
    assert segs > 1
    e.close()
    e2 = LogEngine(tmp_path, state_fsync=False)
    e2.open()
    t = e2.metadata.topic("s", "t")
    assert t.options.segment_size == 1 << 20
    assert t.partitions[0].log.next_offset == 1500
    assert t.partitions[0].log.segments_count == segs
    assert e2.consumers.get_offset(CONSUMER, 7, "s", "t", 1) == (1, 1499, 42)
    r = e2.data.poll("s", "t", 1, OFFSET, 1234, 3)
    assert r.count == 3
    e2.identity.authenticate("iggy", "iggy")
    e2.close()


def test_corrupt_last_batch_is_refused_never_served_or_cut(tmp_path: Path) -> None:
    e = LogEngine(tmp_path, state_fsync=False)
    e.open(("iggy", "iggy"))
    asyncio.run(e.metadata.create_stream("s"))
    asyncio.run(e.metadata.create_topic("s", "t", 1))
    for k in range(4):
        run(e.data.append("s", "t", (2, 0), batch(10, k * 10)))
    seg = e.metadata.topic("s", "t").partitions[0].log.segments[0]
    last_pos = seg.index.positions[-1]
    log_path = seg.log_path
    e.close()
    data = bytearray(log_path.read_bytes())
    data[last_pos + 300] ^= 0xFF  # inside the last batch's first message
    log_path.write_bytes(bytes(data))
    e2 = LogEngine(tmp_path, state_fsync=False)
    e2.open()
    p = e2.metadata.topic("s", "t").partitions[0]
    assert p.log.next_offset == 40  # acknowledged offsets are never cut after a clean stop
    assert e2.data.poll("s", "t", 0, FIRST, 0, 100).count == 30  # served up to the damage
    with pytest.raises(IggyError) as err:
        e2.data.poll("s", "t", 0, OFFSET, 30, 100)
    assert err.value.code == ErrorCode.CANNOT_READ_MESSAGE
    run(e2.data.append("s", "t", (2, 0), batch(1)))
    assert p.log.next_offset == 41
    assert e2.data.poll("s", "t", 0, OFFSET, 40, 10).count == 1
    assert log_path.read_bytes()[:len(data)] == bytes(data)
    e2.close()


def test_consumer_group_assignment_and_fencing(engine: LogEngine) -> None:
    asyncio.run(engine.metadata.create_stream("s"))
    asyncio.run(engine.metadata.create_topic("s", "t", 3))
    g = asyncio.run(engine.consumers.create_group("s", "t", "g"))
    assert g.id == 0
    engine.consumers.join_group("s", "t", "g", 100)
    gen1, parts = engine.consumers.sync_group("s", "t", "g", 100)
    assert parts == [0, 1, 2]
    engine.consumers.join_group("s", "t", "g", 200)
    gen2, a = engine.consumers.sync_group("s", "t", "g", 100)
    _, b = engine.consumers.sync_group("s", "t", "g", 200)
    assert gen2 > gen1 and sorted(a + b) == [0, 1, 2] and not set(a) & set(b)
    with pytest.raises(IggyError) as e:
        engine.data.poll("s", "t", b[0], NEXT, 0, 1, CONSUMER_GROUP, "g", member_id=100)
    assert e.value.code == ErrorCode.CONSUMER_GROUP_PARTITION_NOT_OWNED
    engine.consumers.member_gone(200)
    assert engine.consumers.sync_group("s", "t", "g", 100)[1] == [0, 1, 2]
    assert engine.consumers.sync_group("s", "t", "g", 200) is None


def test_users_tokens_and_permissions_survive_restart(tmp_path: Path) -> None:
    e = LogEngine(tmp_path, state_fsync=False)
    e.open(None)
    assert e.generated_root_password
    root_pw = e.generated_root_password
    u = asyncio.run(e.identity.create_user("alice", "secret1", 1, None))
    token = asyncio.run(e.identity.create_token(u.id, "tok", 0))
    e.close()
    e2 = LogEngine(tmp_path, state_fsync=False)
    e2.open(None)
    assert e2.generated_root_password is None
    assert e2.identity.authenticate("iggy", root_pw).id == 0
    assert e2.identity.authenticate_token(token).username == "alice"
    with pytest.raises(IggyError):
        e2.identity.authenticate("alice", "wrong")
    e2.close()


def test_one_log_two_doors_offsets_are_shared(engine: LogEngine) -> None:
    from pyggy.core.records import kafka_batch

    asyncio.run(engine.metadata.create_stream("kafka"))
    t = asyncio.run(engine.metadata.create_topic("kafka", "orders", 1))
    run(engine.data.append("kafka", "orders", (2, 0), batch(3)))  # offsets 0..2 via Iggy
    kb = kafka_batch.build_batch([(1_700_000_000_000 + i, b"k%d" % i, b"v%d" % i,
                                   [("h", b"x")]) for i in range(4)])
    info = kafka_batch.validate_batch(kb, produce=False)
    base = run(engine.data.append_kafka(t, 0, kb, info))
    assert base == 3
    polled = engine.data.poll("kafka", "orders", 0, OFFSET, 0, 100)
    assert polled.count == 7
    offsets = [m[0] for c in polled.chunks for m in iter_messages(c)]
    assert offsets == list(range(7))
    assert payloads(polled)[3:] == [b"v0", b"v1", b"v2", b"v3"]
    fetched = engine.data.read_kafka(t, 0, 0, 1 << 20)
    records = [r for data in fetched for r in kafka_batch.iter_records(data)]
    assert [r[0] for r in records] == list(range(7))
    assert records[4][2:4] == (b"k1", b"v1")
    assert records[0][3].startswith(b"m000000")


def test_expired_tokens_are_refused_and_cleaned(tmp_path: Path) -> None:
    class Clock:
        now = 1_000_000_000

        def now_us(self) -> int:
            return self.now

        def monotonic(self) -> float:
            return self.now / 1e6

    clock = Clock()
    e = LogEngine(tmp_path, clock=clock, state_fsync=False)
    e.open(("iggy", "iggy"))
    token = asyncio.run(e.identity.create_token(0, "short", 1_000_000))  # expires in 1 s
    assert e.identity.authenticate_token(token).id == 0
    clock.now += 2_000_000
    with pytest.raises(IggyError) as err:
        e.identity.authenticate_token(token)
    assert err.value.code == ErrorCode.PAT_EXPIRED
    assert asyncio.run(e.identity.expire_tokens()) == 1 and e.identity.tokens(0) == []
    e.close()


def test_delete_listeners_hear_every_partition_deletion(engine: LogEngine) -> None:
    heard: list[tuple[str, str, list[int]]] = []
    engine.delete_listeners.append(
        lambda stream, topic, parts: heard.append((stream, topic.name, [p.id for p in parts])))
    asyncio.run(engine.metadata.create_stream("s"))
    asyncio.run(engine.metadata.create_topic("s", "a", 3))
    asyncio.run(engine.metadata.create_topic("s", "b", 1))
    asyncio.run(engine.metadata.create_topic("s", "c", 2))
    asyncio.run(engine.metadata.delete_partitions("s", "a", 2))
    asyncio.run(engine.metadata.delete_topic("s", "b"))
    asyncio.run(engine.metadata.delete_stream("s"))
    assert heard == [("s", "a", [1, 2]), ("s", "b", [0]), ("s", "a", [0]), ("s", "c", [0, 1])]


def test_compacted_topics_are_compacted_and_kept_from_retention(engine) -> None:
    """`LogEngine.compact` reads the policy from the topic's options (either door sets it);
    `clean` leaves a compact-only topic's segments to the compactor."""
    from pyggy.core.options import STRING
    from pyggy.core.records import kafka_batch

    async def go() -> None:
        await engine.metadata.create_stream("s")
        t = await engine.metadata.create_topic("s", "t", 1, [
            ("message_expiry", STRING, b"1us"), ("kafka.cleanup.policy", STRING, b"compact"),
            ("kafka.min.cleanable.dirty.ratio", STRING, b"0.01")])
        t.options.segment_size = 2000  # below Iggy's minimum, set directly for a small test
        plog = t.partitions[0].log
        for n in range(100):
            b = kafka_batch.build_batch([(1_700_000_000_000, b"k%d" % (n % 5), b"v" * 80, [])])
            await plog.append_kafka(b, 1, 1_700_000_000_000)
        sealed = len(plog.segments) - 1
        assert sealed >= 3
        assert engine.clean() == 0  # expired, but compact only: retention does not apply
        assert await engine.compact() == sealed
        assert await engine.compact() == 0  # nothing dirty
        await engine.metadata.update_topic("s", "t", "t", [
            ("kafka.cleanup.policy", STRING, b"compact,delete")])
        assert engine.clean() == sealed  # now retention applies as well
    run(go())
