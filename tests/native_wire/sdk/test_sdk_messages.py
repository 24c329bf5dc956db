"""Sending and polling messages with the apache-iggy 0.9.0 SDK: payloads, ids, offsets,
server and origin timestamps, user headers of every kind, the three partitionings, every
polling strategy, large payloads and batches, and the high-level producer."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import xxhash
from apache_iggy import (
    BackgroundProducerConfig,
    Consumer,
    DirectProducerConfig,
    HeaderKey,
    HeaderValue,
    IggyClient,
    IggyExpiry,
    MaxTopicSize,
    Partitioning,
    PollingStrategy,
    SendMessage,
)
from sdk_support import now_us, offsets, payloads, poll

pytestmark = pytest.mark.asyncio

U128_MAX = 2**128 - 1


async def _stream_topic(root: IggyClient, partitions: int = 1) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", partitions)


async def test_messages_come_back_with_ids_offsets_and_timestamps(root: IggyClient) -> None:
    await _stream_topic(root, 3)
    created_from = now_us()
    first = [SendMessage("hello", id=42), SendMessage(b"\x00\x01binary\xff", id=U128_MAX),
             SendMessage("no id given")]
    created_to = now_us()
    sent = await root.send_messages("s", "t", Partitioning.partition_id(1), first)
    sent_at = now_us()
    [confirmation] = sent.confirmations
    assert (confirmation.stream_id, confirmation.topic_id, confirmation.partition_id,
            confirmation.base_offset) == (0, 0, 1, 0)
    second = await root.send_messages("s", "t", 1, [SendMessage("again")])  # int = partition id
    assert [(c.partition_id, c.base_offset) for c in second.confirmations] == [(1, 3)]

    messages = await poll(root, "s", "t", PollingStrategy.First(), partition_id=1)
    assert payloads(messages) == [b"hello", b"\x00\x01binary\xff", b"no id given", b"again"]
    assert offsets(messages) == [0, 1, 2, 3]
    assert [m.partition_id() for m in messages] == [1, 1, 1, 1]
    assert [m.length() for m in messages] == [5, 9, 11, 5]
    assert messages[0].id() == 42
    assert messages[1].id() == U128_MAX
    assert messages[2].id() not in (0, 42)  # the SDK mints a random id for "none"
    assert all(m.checksum() != 0 for m in messages)
    assert all(m.user_headers() is None for m in messages)

    # The server stamps one append time per batch, µs since the epoch, non-decreasing.
    stamps = [m.timestamp() for m in messages]
    assert stamps[0] == stamps[1] == stamps[2] < stamps[3]
    assert created_to <= stamps[0] <= sent_at
    assert stamps[3] <= now_us()
    # The origin timestamp is the producer's: the SDK takes it when a SendMessage is built.
    for m in messages[:3]:
        assert created_from <= m.origin_timestamp() <= created_to <= m.timestamp()
    assert messages[3].origin_timestamp() >= sent_at

    # Other partitions are untouched; the topic's counters follow.
    assert await poll(root, "s", "t", partition_id=0) == []
    t = await root.get_topic("s", "t")
    assert [(p.messages_count, p.current_offset) for p in t.partitions] == [
        (0, 0), (4, 3), (0, 0)]
    assert t.messages_count == 4


ALL_VALUE_KINDS = {
    HeaderKey.String("raw"): HeaderValue.Raw(b"\x00\x01\xfe"),
    HeaderKey.String("string"): HeaderValue.String("zażółć"),
    HeaderKey.String("bool"): HeaderValue.Bool(True),
    HeaderKey.String("int8"): HeaderValue.Int8(-128),
    HeaderKey.String("int16"): HeaderValue.Int16(-32768),
    HeaderKey.String("int32"): HeaderValue.Int32(-(2**31)),
    HeaderKey.String("int64"): HeaderValue.Int64(-(2**63)),
    HeaderKey.String("int128"): HeaderValue.Int128(-(2**127)),
    HeaderKey.String("uint8"): HeaderValue.UnsignedInt8(255),
    HeaderKey.String("uint16"): HeaderValue.UnsignedInt16(65535),
    HeaderKey.String("uint32"): HeaderValue.UnsignedInt32(2**32 - 1),
    HeaderKey.String("uint64"): HeaderValue.UnsignedInt64(2**64 - 1),
    HeaderKey.String("uint128"): HeaderValue.UnsignedInt128(U128_MAX),
    HeaderKey.String("float32"): HeaderValue.Float32(1.5),
    HeaderKey.String("float64"): HeaderValue.Float64(3.141592653589793),
}
ALL_KEY_KINDS = {
    HeaderKey.Raw(b"\xffraw-key"): HeaderValue.String("raw key"),
    HeaderKey.Bool(False): HeaderValue.String("bool key"),
    HeaderKey.Int8(-1): HeaderValue.String("int8 key"),
    HeaderKey.Int16(-2): HeaderValue.String("int16 key"),
    HeaderKey.Int32(-3): HeaderValue.String("int32 key"),
    HeaderKey.Int64(-4): HeaderValue.String("int64 key"),
    HeaderKey.Int128(-5): HeaderValue.String("int128 key"),
    HeaderKey.UnsignedInt8(6): HeaderValue.String("uint8 key"),
    HeaderKey.UnsignedInt16(7): HeaderValue.String("uint16 key"),
    HeaderKey.UnsignedInt32(8): HeaderValue.String("uint32 key"),
    HeaderKey.UnsignedInt64(9): HeaderValue.String("uint64 key"),
    HeaderKey.UnsignedInt128(10): HeaderValue.String("uint128 key"),
    HeaderKey.Float32(0.5): HeaderValue.String("float32 key"),
    HeaderKey.Float64(0.25): HeaderValue.String("float64 key"),
}


async def test_user_headers_of_every_kind_survive_the_round_trip(root: IggyClient) -> None:
    await _stream_topic(root)
    plain = {"trace": "abc-123", "attempt": 3, "negative": -200, "wide": 70000,
             "huge": 2**63, "ratio": 0.1, "half": 1.5, "flag": False, "blob": b"\x00\x01",
             7: "int key", b"bytes-key": True}
    await root.send_messages("s", "t", 0, [
        SendMessage("typed values", ALL_VALUE_KINDS),
        SendMessage("typed keys", ALL_KEY_KINDS),
        SendMessage("plain scalars", plain),
        SendMessage("no headers"),
        SendMessage("empty dict", {}),
    ])
    typed_values, typed_keys, scalars, none, empty = await poll(root, "s", "t")

    assert typed_values.user_headers() == ALL_VALUE_KINDS
    assert typed_keys.user_headers() == ALL_KEY_KINDS
    assert none.user_headers() is None
    assert empty.user_headers() is None

    # Plain scalars travel as the smallest fitting kind, and read back as the same scalars.
    got = scalars.user_headers()
    assert got[HeaderKey.String("trace")] == HeaderValue.String("abc-123")
    assert got[HeaderKey.String("attempt")] == HeaderValue.UnsignedInt8(3)
    assert got[HeaderKey.String("negative")] == HeaderValue.Int16(-200)
    assert got[HeaderKey.String("wide")] == HeaderValue.UnsignedInt32(70000)
    assert got[HeaderKey.String("huge")] == HeaderValue.UnsignedInt64(2**63)
    assert got[HeaderKey.String("ratio")] == HeaderValue.Float64(0.1)
    assert got[HeaderKey.String("half")] == HeaderValue.Float32(1.5)
    assert got[HeaderKey.String("flag")] == HeaderValue.Bool(False)
    assert got[HeaderKey.String("blob")] == HeaderValue.Raw(b"\x00\x01")
    assert got[HeaderKey.UnsignedInt8(7)] == HeaderValue.String("int key")
    assert got[HeaderKey.Raw(b"bytes-key")] == HeaderValue.Bool(True)
    assert got.to_scalar_dict() == plain
    assert typed_values.user_headers().to_scalar_dict()["uint128"] == U128_MAX


async def test_balanced_partitioning_goes_round_robin(root: IggyClient) -> None:
    await _stream_topic(root, 3)
    placed = []
    for i in range(7):
        sent = await root.send_messages("s", "t", Partitioning.balanced(), [SendMessage(f"b{i}")])
        [c] = sent.confirmations
        placed.append((c.partition_id, c.base_offset))
    assert placed == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2)]
    assert payloads(await poll(root, "s", "t", partition_id=0)) == [b"b0", b"b3", b"b6"]
    assert payloads(await poll(root, "s", "t", partition_id=2)) == [b"b2", b"b5"]


async def test_messages_with_the_same_key_land_on_the_same_partition(root: IggyClient) -> None:
    await _stream_topic(root, 4)
    keys = [f"customer-{i}" for i in range(12)]
    where: dict[str, set[int]] = {}
    for round_ in range(2):
        for key in keys:
            sent = await root.send_messages("s", "t", Partitioning.messages_key(key),
                                            [SendMessage(f"{key}/{round_}")])
            where.setdefault(key, set()).add(sent.confirmations[0].partition_id)
    assert all(len(parts) == 1 for parts in where.values())
    # the key's XxHash32 modulo the partition count, computed by the SDK
    assert {k: p.pop() for k, p in where.items()} == {
        k: xxhash.xxh32_intdigest(k.encode()) % 4 for k in keys}
    assert len({xxhash.xxh32_intdigest(k.encode()) % 4 for k in keys}) > 1
    # a bytes key equal to the UTF-8 of a str key is the same key
    sent = await root.send_messages("s", "t", Partitioning.messages_key(b"customer-3"),
                                    [SendMessage("bytes key")])
    assert sent.confirmations[0].partition_id == xxhash.xxh32_intdigest(b"customer-3") % 4
    # every message of a key is on its partition, in order
    pid = xxhash.xxh32_intdigest(b"customer-3") % 4
    mine = [p for p in payloads(await poll(root, "s", "t", partition_id=pid))
            if p.startswith(b"customer-3/") or p == b"bytes key"]
    assert mine == [b"customer-3/0", b"customer-3/1", b"bytes key"]


async def test_every_polling_strategy(root: IggyClient) -> None:
    await _stream_topic(root, 2)
    # three batches: offsets 0-2, 3-4, 5
    for batch in (["a", "b", "c"], ["d", "e"], ["f"]):
        await root.send_messages("s", "t", 1, [SendMessage(x) for x in batch])
    everything = await poll(root, "s", "t", PollingStrategy.Offset(0), partition_id=1)
    assert payloads(everything) == [b"a", b"b", b"c", b"d", b"e", b"f"]
    ts = [m.timestamp() for m in everything]

    async def p(strategy: PollingStrategy, count: int = 100) -> list[int]:
        return offsets(await poll(root, "s", "t", strategy, count=count, partition_id=1))

    assert await p(PollingStrategy.Offset(4)) == [4, 5]
    assert await p(PollingStrategy.Offset(1), count=3) == [1, 2, 3]  # across batches
    assert await p(PollingStrategy.Offset(6)) == []
    assert await p(PollingStrategy.Offset(1000)) == []
    assert await p(PollingStrategy.First()) == [0, 1, 2, 3, 4, 5]
    assert await p(PollingStrategy.First(), count=2) == [0, 1]
    assert await p(PollingStrategy.Last()) == [0, 1, 2, 3, 4, 5]
    assert await p(PollingStrategy.Last(), count=1) == [5]
    assert await p(PollingStrategy.Last(), count=3) == [3, 4, 5]
    # Timestamp: the first message stamped at or after the value
    assert await p(PollingStrategy.Timestamp(ts[3])) == [3, 4, 5]
    assert await p(PollingStrategy.Timestamp(ts[2] + 1)) == [3, 4, 5]
    assert await p(PollingStrategy.Timestamp(ts[1])) == [0, 1, 2, 3, 4, 5]  # a batch's time
    assert await p(PollingStrategy.Timestamp(0)) == [0, 1, 2, 3, 4, 5]
    assert await p(PollingStrategy.Timestamp(ts[5] + 1)) == []
    assert await p(PollingStrategy.Timestamp(ts[0]), count=2) == [0, 1]
    # Next: from the consumer's stored offset + 1, or 0 without one
    assert await p(PollingStrategy.Next(), count=2) == [0, 1]
    assert await p(PollingStrategy.Next(), count=2) == [0, 1]  # nothing was stored
    # an empty partition
    assert await poll(root, "s", "t", PollingStrategy.Last(), partition_id=0) == []
    assert await poll(root, "s", "t", PollingStrategy.Next(), partition_id=0) == []


async def test_next_with_auto_commit_resumes_where_each_consumer_left_off(
        root: IggyClient) -> None:
    await _stream_topic(root)
    await root.send_messages("s", "t", 0, [SendMessage(f"m{i}") for i in range(5)])

    async def next_(consumer: Consumer, count: int = 2) -> list[bytes]:
        return payloads(await poll(root, "s", "t", PollingStrategy.Next(), count=count,
                                   consumer=consumer, auto_commit=True))

    alice, bob, by_id = Consumer.Single("alice"), Consumer.Single("bob"), Consumer.Single(7)
    assert await next_(alice) == [b"m0", b"m1"]
    assert await next_(alice) == [b"m2", b"m3"]
    assert await next_(bob, 3) == [b"m0", b"m1", b"m2"]  # consumers are independent
    assert await next_(by_id, 1) == [b"m0"]  # numeric ids are consumers of their own
    assert await next_(alice) == [b"m4"]
    assert await next_(alice) == []
    await root.send_messages("s", "t", 0, [SendMessage("m5")])
    assert await next_(alice) == [b"m5"]
    assert await next_(bob, 10) == [b"m3", b"m4", b"m5"]
    # a poll without auto_commit reads without moving the consumer
    assert payloads(await poll(root, "s", "t", PollingStrategy.Next(), consumer=by_id,
                               count=1)) == [b"m1"]
    assert await next_(by_id, 1) == [b"m1"]


async def test_large_payloads_and_large_batches(root: IggyClient) -> None:
    await _stream_topic(root)
    big = os.urandom(3 * 1024 * 1024)  # larger than the server's 256 KiB receive buffer
    await root.send_messages("s", "t", 0, [SendMessage(big), SendMessage(b"small")])
    many = [SendMessage(f"msg-{i:05}", id=i + 1) for i in range(5000)]
    sent = await root.send_messages("s", "t", 0, many)
    assert sent.confirmations[0].base_offset == 2

    got = await poll(root, "s", "t", PollingStrategy.First(), count=2)
    assert got[0].payload() == big and got[1].payload() == b"small"
    middle = await poll(root, "s", "t", PollingStrategy.Offset(1002), count=1000)
    assert offsets(middle) == list(range(1002, 2002))
    assert [m.id() for m in middle] == list(range(1001, 2001))
    assert middle[0].payload() == b"msg-01000"
    tail = await poll(root, "s", "t", PollingStrategy.Last(), count=3)
    assert payloads(tail) == [b"msg-04997", b"msg-04998", b"msg-04999"]
    everything = await poll(root, "s", "t", PollingStrategy.First(), count=10_000)
    assert len(everything) == 5002
    assert len({m.timestamp() for m in everything[2:]}) == 1  # one batch, one append time
    t = await root.get_topic("s", "t")
    assert (t.messages_count, t.partitions[0].current_offset) == (5002, 5001)
    assert t.size > len(big)


async def test_message_errors(root: IggyClient) -> None:
    await _stream_topic(root, 2)
    with pytest.raises(RuntimeError, match="^Partition with ID: .*was not found"):
        await root.send_messages("s", "t", 2, [SendMessage("x")])
    with pytest.raises(RuntimeError, match="^Topic with name: .*was not found"):
        await root.send_messages("s", "nope", 0, [SendMessage("x")])
    with pytest.raises(RuntimeError, match="^Stream with name: .*was not found"):
        await root.send_messages("nope", "t", 0, [SendMessage("x")])
    with pytest.raises(RuntimeError, match="^Invalid messages count$"):
        await root.send_messages("s", "t", 0, [])
    with pytest.raises(RuntimeError, match="^Partition with ID: .*was not found"):
        await poll(root, "s", "t", partition_id=5)
    with pytest.raises(RuntimeError, match="^Topic with name: .*was not found"):
        await poll(root, "s", "nope")
    with pytest.raises(RuntimeError, match="^Invalid messages count$"):
        await poll(root, "s", "t", count=0)
    with pytest.raises(ValueError):  # an empty payload never leaves the SDK
        SendMessage(b"")
    assert (await root.get_topic("s", "t")).messages_count == 0


async def test_the_high_level_producer_creates_its_topic_and_sends(root: IggyClient) -> None:
    producer = await root.producer(
        "shop", "orders", partitioning=Partitioning.partition_id(2),
        mode=DirectProducerConfig(batch_length=100, linger_time=timedelta(0)),
        topic_partitions_count=3,
        topic_message_expiry=IggyExpiry.ExpireDuration(timedelta(hours=2)),
        topic_max_size=MaxTopicSize.Custom(50_000_000))
    shop = await root.get_stream("shop")
    assert (shop.id, shop.topics_count) == (0, 1)
    t = await root.get_topic("shop", "orders")
    assert (t.id, t.partitions_count) == (0, 3)
    assert t.message_expiry.duration == timedelta(hours=2)
    assert t.max_topic_size.bytes == 50_000_000

    sent = await producer.send([SendMessage("o1"), SendMessage("o2")])
    assert [(c.stream_id, c.topic_id, c.partition_id, c.base_offset)
            for c in sent.confirmations] == [(0, 0, 2, 0)]
    sent = await producer.send_one(SendMessage("o3", {"kind": "single"}))
    assert [(c.partition_id, c.base_offset) for c in sent.confirmations] == [(2, 2)]
    sent = await producer.send_with_partitioning([SendMessage("o4")],
                                                 Partitioning.partition_id(0))
    assert [(c.partition_id, c.base_offset) for c in sent.confirmations] == [(0, 0)]
    await root.create_stream("elsewhere")
    await root.create_topic("elsewhere", "log", 1)
    sent = await producer.send_to("elsewhere", "log", [SendMessage("o5")],
                                  Partitioning.partition_id(0))
    assert [(c.stream_id, c.topic_id, c.partition_id, c.base_offset)
            for c in sent.confirmations] == [(1, 0, 0, 0)]
    await producer.shutdown()
    await producer.shutdown()  # repeated calls are safe

    on_two = await poll(root, "shop", "orders", partition_id=2)
    assert payloads(on_two) == [b"o1", b"o2", b"o3"]
    assert on_two[2].user_headers().to_scalar_dict() == {"kind": "single"}
    assert payloads(await poll(root, "shop", "orders", partition_id=0)) == [b"o4"]
    assert payloads(await poll(root, "elsewhere", "log")) == [b"o5"]

    # a second producer on the existing topic reuses it; balanced goes round-robin
    async with await root.producer("shop", "orders",
                                   partitioning=Partitioning.balanced()) as balanced:
        placed = [(await balanced.send_one(SendMessage(f"b{i}"))).confirmations[0].partition_id
                  for i in range(3)]
    assert sorted(placed) == [0, 1, 2]
    assert [s.name for s in await root.get_streams()] == ["shop", "elsewhere"]

    with pytest.raises(RuntimeError, match="was not found"):
        await root.producer("missing", "topic", create_stream_if_not_exists=False)
    with pytest.raises(RuntimeError, match="was not found"):
        await root.producer("shop", "missing", create_topic_if_not_exists=False)


async def test_a_background_producer_flushes_everything_on_shutdown(root: IggyClient) -> None:
    config = BackgroundProducerConfig(linger_time=timedelta(milliseconds=5), batch_length=10)
    async with await root.producer("s", "t", mode=config,
                                   partitioning=Partitioning.partition_id(0)) as producer:
        for i in range(5):
            accepted = await producer.send([SendMessage(f"bg-{i}-{j}") for j in range(7)])
            assert accepted.confirmations == []  # queue acceptance, not a commit
    got = await poll(root, "s", "t", count=1000)
    assert payloads(got) == [f"bg-{i}-{j}".encode() for i in range(5) for j in range(7)]
    assert offsets(got) == list(range(35))
    assert [m.timestamp() for m in got] == sorted(m.timestamp() for m in got)
