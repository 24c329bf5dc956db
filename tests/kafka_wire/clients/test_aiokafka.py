"""aiokafka 0.14.0 (asyncio; ApiVersions v0, non-flexible versions only) against pyggy."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from support import (
    PARTITIONS,
    Got,
    Rec,
    check_round_trip,
    iggy_headers,
    iggy_poll,
    iggy_send,
    make_records,
    normalize_headers,
    stored_codecs,
)

from pyggy.testing import PyggyServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio]
CLIENT_ID = "aiokafka"


def _address(server: PyggyServer | str) -> str:
    return server if isinstance(server, str) else server.kafka_address


async def producer(server: PyggyServer | str, **config) -> AIOKafkaProducer:
    config.setdefault("acks", "all")
    p = AIOKafkaProducer(bootstrap_servers=_address(server), client_id=CLIENT_ID,
                         linger_ms=5, **config)
    await p.start()
    return p


async def consumer(server: PyggyServer | str, **config) -> AIOKafkaConsumer:
    c = AIOKafkaConsumer(bootstrap_servers=_address(server), client_id=CLIENT_ID,
                         enable_auto_commit=False, **config)
    await c.start()
    return c


async def produce(p: AIOKafkaProducer, topic: str, records: list[Rec],
                  **kw) -> list[tuple[int, int]]:
    futures = [await p.send(topic, key=r.key, value=r.value, headers=list(r.headers), **kw)
               for r in records]
    return [(m.partition, m.offset) for m in await asyncio.gather(*futures)]


async def consume(c: AIOKafkaConsumer, count: int, timeout: float = 30) -> list[Got]:
    got: list[Got] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for records in (await c.getmany(timeout_ms=500)).values():
            got += [Got(m.partition, m.offset, m.key, m.value, normalize_headers(m.headers),
                        m.timestamp) for m in records]
    return got


async def assign_from_start(c: AIOKafkaConsumer, topic: str) -> None:
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    c.assign(tps)
    await c.seek_to_beginning(*tps)


async def test_10k_keyed_records_with_headers_round_trip(kafka_server: PyggyServer,
                                                         topic: str):
    """acks=all producer; a group consumer (subscribe, earliest) reads everything back and
    commits its positions."""
    records = make_records(10_000, null_header_values=False)
    p = await producer(kafka_server)
    acks = await produce(p, topic, records)
    await p.stop()
    c = await consumer(kafka_server, group_id=f"g-{topic}", auto_offset_reset="earliest")
    c.subscribe([topic])
    got = await consume(c, len(records))
    await c.commit()
    ends = {p: 1 + max(o for q, o in acks if q == p) for p in range(PARTITIONS)}
    assert {tp.partition: await c.committed(tp) for tp in c.assignment()} == ends
    await c.stop()
    check_round_trip(records, acks, got)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_compression(kafka_server: PyggyServer, topic: str, codec: str):
    records = make_records(500, null_header_values=False)
    p = await producer(kafka_server, compression_type=codec, max_batch_size=64 * 1024)
    acks = await produce(p, topic, records)
    await p.stop()
    c = await consumer(kafka_server)
    await assign_from_start(c, topic)
    check_round_trip(records, acks, await consume(c, len(records)))
    await c.stop()
    stored = [await asyncio.to_thread(stored_codecs, kafka_server, topic, p)
              for p in range(PARTITIONS)]
    assert set().union(*stored) == {codec}


async def test_seek_by_offset_and_by_timestamp(kafka_server: PyggyServer, topic: str):
    base = int(time.time() * 1000) - 100_000
    p = await producer(kafka_server)
    for i in range(30):
        await p.send_and_wait(topic, value=b"v%d" % i, partition=1, timestamp_ms=base + i * 1000)
    await p.stop()
    c = await consumer(kafka_server)
    tp = TopicPartition(topic, 1)
    c.assign([tp])
    assert await c.beginning_offsets([tp]) == {tp: 0}
    assert await c.end_offsets([tp]) == {tp: 30}

    c.seek(tp, 10)
    got = await consume(c, 20)
    assert [(g.offset, g.value) for g in got] == [(i, b"v%d" % i) for i in range(10, 30)]

    found = (await c.offsets_for_times({tp: base + 15_000}))[tp]
    assert (found.offset, found.timestamp) == (15, base + 15_000)
    found = (await c.offsets_for_times({tp: base + 15_500}))[tp]
    assert (found.offset, found.timestamp) == (16, base + 16_000)
    assert (await c.offsets_for_times({tp: base + 10**6}))[tp] is None
    c.seek(tp, (await c.offsets_for_times({tp: base + 25_000}))[tp].offset)
    assert [g.offset for g in await consume(c, 5)] == [25, 26, 27, 28, 29]
    await c.stop()


async def test_idempotent_producer(kafka_server: PyggyServer, topic: str):
    records = make_records(300, null_header_values=False)
    p = await producer(kafka_server, enable_idempotence=True)
    acks = await produce(p, topic, records)
    pid, epoch = p._txn_manager.producer_id, p._txn_manager.producer_epoch
    await p.stop()
    assert pid >= 0 and epoch >= 0
    c = await consumer(kafka_server)
    await assign_from_start(c, topic)
    check_round_trip(records, acks, await consume(c, len(records)))
    await c.stop()


async def test_idempotent_retry_after_a_lost_response_is_not_stored_twice(losing_proxy,
                                                                          topic: str):
    """The proxy loses the first Produce response: aiokafka reconnects and sends the batch
    again with the same sequence; pyggy answers with the original offset."""
    _server, proxy = losing_proxy
    records = make_records(500, null_header_values=False)
    p = await producer(proxy.address, enable_idempotence=True, retry_backoff_ms=20)
    acks = await produce(p, topic, records)
    await p.stop()
    assert len(proxy.dropped) == 1
    c = await consumer(proxy.address)
    await assign_from_start(c, topic)
    check_round_trip(records, acks, await consume(c, len(records)))
    await c.stop()


async def test_kafka_to_iggy_and_back(kafka_server: PyggyServer, topic: str):
    p = await producer(kafka_server)
    sent = [Rec(b"k1", b"hello", (("h", b"v"),)), Rec(None, b"no key"),
            Rec(b"k2", None), Rec(b"k3", b"\x00\xffbin", (("a", b"1"), ("b", b"2")))]
    acks = []
    for r in sent:
        m = await p.send_and_wait(topic, key=r.key, value=r.value, headers=list(r.headers),
                                  partition=0)
        acks.append((m.partition, m.offset))
    assert acks == [(0, 0), (0, 1), (0, 2), (0, 3)]

    messages = await asyncio.to_thread(iggy_poll, kafka_server, "kafka", topic, 0)
    assert [m.offset() for m in messages] == [0, 1, 2, 3]
    assert [m.payload() for m in messages] == [b"hello", b"no key", b"\x00", b"\x00\xffbin"]
    heads = [{k: v.value for k, v in iggy_headers(m).items()} for m in messages]
    assert heads == [{"kafka.key": b"k1", "h": b"v"}, {},
                     {"kafka.key": b"k2", "kafka.value": "null"},
                     {"kafka.key": b"k3", "a": b"1", "b": b"2"}]

    from apache_iggy import HeaderKey, HeaderValue, SendMessage

    await asyncio.to_thread(iggy_send, kafka_server, "kafka", topic, 0, [
        SendMessage(b"from iggy"),
        SendMessage(b"keyed", {HeaderKey.String("kafka.key"): HeaderValue.Raw(b"ik")})])
    await p.stop()
    c = await consumer(kafka_server)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = await consume(c, 6)
    await c.stop()
    assert [g.offset for g in got] == list(range(6))
    assert [(g.key, g.value, g.headers) for g in got[:4]] == [
        (r.key, r.value, r.headers) for r in sent]
    assert [(g.key, g.value, g.headers) for g in got[4:]] == [
        (None, b"from iggy", ()), (b"ik", b"keyed", ())]
