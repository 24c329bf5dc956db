"""Large partition fetches, answered as streamed responses (core/storage/streamed.py), read by
the real clients: librdkafka (confluent-kafka), kafka-python and aiokafka each consume 12 MB
of one partition with 16 MB partition fetches and see every record, in order, intact."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioPartition
from confluent_kafka import Consumer, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KpPartition
from pyggy.core.records import kafka_batch
from support import RawKafka, metadata, produce_batch

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.timeout(180)

PER_BATCH, BATCHES, SIZE = 1000, 12, 1000  # 12 batches of ~1 MB: ~12 MB in partition 0
TOTAL = PER_BATCH * BATCHES
FETCH = 16 << 20


def value(offset: int) -> bytes:
    return b"%09d" % offset + b"." * (SIZE - 9)


@pytest.fixture(scope="module")
def big_topic(kafka_server: PyggyServer) -> str:
    topic = "large-fetches"
    with RawKafka(kafka_server.kafka_address) as raw:
        assert metadata(raw, topic)["error_code"] == 0
        for k in range(BATCHES):
            batch = kafka_batch.build_batch([(1_700_000_000_000 + i, None,
                                              value(k * PER_BATCH + i), [])
                                             for i in range(PER_BATCH)])
            p = produce_batch(raw, topic, 0, bytes(batch))
            assert p["error_code"] == 0 and p["base_offset"] == k * PER_BATCH, p
    return topic


def check(seen: list[tuple[int, bytes]]) -> None:
    assert len(seen) == TOTAL
    for expected, (offset, v) in enumerate(seen):
        assert offset == expected and v == value(offset), f"record {expected}: offset {offset}"


def test_librdkafka(kafka_server: PyggyServer, big_topic: str) -> None:
    c = Consumer({"bootstrap.servers": kafka_server.kafka_address, "group.id": "large-rd",
                  "enable.auto.commit": False, "max.partition.fetch.bytes": FETCH,
                  "fetch.max.bytes": 2 * FETCH, "receive.message.max.bytes": 3 * FETCH})
    c.assign([TopicPartition(big_topic, 0, 0)])
    seen: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 60
    try:
        while len(seen) < TOTAL and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                assert m.error() is None, m.error()
                seen.append((m.offset(), m.value()))
    finally:
        c.close()
    check(seen)


def test_kafka_python(kafka_server: PyggyServer, big_topic: str) -> None:
    c = KafkaConsumer(bootstrap_servers=kafka_server.kafka_address, enable_auto_commit=False,
                      max_partition_fetch_bytes=FETCH, fetch_max_bytes=2 * FETCH,
                      client_id="large-kp")
    tp = KpPartition(big_topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    seen: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 60
    try:
        while len(seen) < TOTAL and time.monotonic() < deadline:
            for records in c.poll(timeout_ms=500).values():
                seen += [(m.offset, m.value) for m in records]
    finally:
        c.close()
    check(seen)


def test_aiokafka(kafka_server: PyggyServer, big_topic: str) -> None:
    async def go() -> list[tuple[int, bytes]]:
        c = AIOKafkaConsumer(bootstrap_servers=kafka_server.kafka_address,
                             enable_auto_commit=False, max_partition_fetch_bytes=FETCH,
                             fetch_max_bytes=2 * FETCH, client_id="large-aio")
        await c.start()
        seen: list[tuple[int, bytes]] = []
        try:
            tp = AioPartition(big_topic, 0)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            deadline = time.monotonic() + 60
            while len(seen) < TOTAL and time.monotonic() < deadline:
                for records in (await c.getmany(timeout_ms=500)).values():
                    seen += [(m.offset, m.value) for m in records]
        finally:
            await c.stop()
        return seen

    check(asyncio.run(go()))
