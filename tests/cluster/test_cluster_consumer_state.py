"""Consumer state across SIGKILL of the metadata primary, with real clients against three pyggy
processes: a Kafka consumer group (librdkafka) commits, the group coordinator is killed, and the
group resumes on the new coordinator from its committed offset; the Iggy SDK (0.9.0) stores a
consumer offset on the leader, the leader is killed, and the new leader returns that offset
and a Next poll continues after it."""

from __future__ import annotations

import asyncio
import struct
import time
from pathlib import Path

from apache_iggy import Consumer as IggyConsumer
from apache_iggy import IggyClient, PollingStrategy, SendMessage
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient
from pyggy.core.offsets import CONSUMER
from pyggy.native_wire.codec import primitives as p
from test_cluster_processes import create_topic, produce

from pyggy.testing import PyggyCluster


def controller(c: PyggyCluster, avoid: int | None = None, timeout: float = 30.0) -> int:
    """The metadata primary (Kafka's controller and group coordinator) a live node names."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in c.servers:
            if s.running:
                md = AdminClient({"bootstrap.servers": s.kafka_address}).list_topics(timeout=5)
                if md.controller_id >= 0 and md.controller_id != avoid:
                    return md.controller_id
        time.sleep(0.2)
    raise AssertionError("no controller")


def group_consumer(c: PyggyCluster) -> Consumer:
    return Consumer({"bootstrap.servers": c.kafka_bootstrap, "group.id": "resume",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "session.timeout.ms": 6000, "topic.metadata.refresh.interval.ms": 1000})


def take(consumer: Consumer, count: int, timeout: float = 90.0) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got.append((m.offset(), m.value()))
    return got


def test_a_kafka_group_resumes_from_its_commit_after_sigkill_of_the_coordinator(
        tmp_path: Path) -> None:
    c = PyggyCluster(tmp_path / "c").start()
    try:
        create_topic(c, "events")
        values = [b"ev-%03d" % i for i in range(100)]
        acked = produce(c, "events", values)
        assert sorted(acked.values()) == list(range(100))
        first = group_consumer(c)
        first.subscribe(["events"])
        got = take(first, 40)
        assert [o for o, _ in got] == list(range(40))
        first.commit(offsets=[TopicPartition("events", 0, 40)], asynchronous=False)
        first.close()  # leaves the group: Empty, with its committed offset
        boss = controller(c)
        c.servers[boss].kill()
        heir = controller(c, avoid=boss, timeout=60)
        assert heir != boss
        second = group_consumer(c)
        try:
            committed = second.committed([TopicPartition("events", 0)], timeout=60)
            assert committed[0].offset == 40
            second.subscribe(["events"])
            rest = take(second, 60)
        finally:
            second.close()
        assert [o for o, _ in rest] == list(range(40, 100))  # where the group committed
        assert [v for _, v in rest] == values[40:]
    finally:
        c.close()


STORE_CONSUMER_OFFSET, GET_CONSUMER_OFFSET = 121, 120
QUORUM = 1  # the store's ack level


def target(consumer: str) -> bytes:
    """Consumer, stream "s", topic "t", partition 0 (iggy-protocol.md, codes 120/121)."""
    return (p.encode_consumer(CONSUMER, consumer) + p.encode_identifier("s")
            + p.encode_identifier("t") + p.encode_optional_partition(0))


def test_an_iggy_offset_stored_before_sigkill_of_the_leader_is_read_after(
        tmp_path: Path) -> None:
    """The SDK stores an offset (STORE_CONSUMER_OFFSET, ack Quorum) on the leader; after the
    leader's SIGKILL the new one returns it (GET_CONSUMER_OFFSET) and a Next poll continues
    after it. (Auto-commit polls through the SDK's cluster poll routing, codes 103/14/104:
    test_cluster_iggy_sdk.py.)"""
    c = PyggyCluster(tmp_path / "c").start()
    try:
        boss = controller(c)

        async def client(index: int) -> IggyClient:
            cl = IggyClient(c.servers[index].tcp_address)
            await cl.connect()
            await cl.login_user("iggy", "iggy")
            return cl

        async def before() -> None:
            cl = await client(boss)
            await cl.create_stream("s")
            await cl.create_topic("s", "t", partitions_count=1)
            await cl.send_messages("s", "t", 0, [SendMessage(f"m{i}") for i in range(30)])
            await cl.send_binary_request(STORE_CONSUMER_OFFSET, target("reader")
                                         + struct.pack("<QB", 11, QUORUM))

        asyncio.run(before())
        c.servers[boss].kill()
        heir = controller(c, avoid=boss, timeout=60)

        async def after() -> tuple[bytes, list[bytes]]:
            deadline = time.monotonic() + 60
            stored, got = b"", []
            while len(got) < 18:  # the new leader may still be taking over the partition
                if time.monotonic() > deadline:
                    break
                try:
                    cl = await client(heir)
                    stored = await cl.send_binary_request(GET_CONSUMER_OFFSET, target("reader"))
                    got = [m.payload() for m in await cl.poll_messages(
                        "s", "t", consumer=IggyConsumer.Single("reader"),
                        polling_strategy=PollingStrategy.Next(), count=100, auto_commit=False,
                        partition_id=0)]
                except RuntimeError:
                    await asyncio.sleep(0.5)
            return stored, got

        stored, rest = asyncio.run(after())
        assert struct.unpack("<IQQ", stored)[2] == 11  # (partition, current, stored)
        assert rest == [b"m%d" % i for i in range(12, 30)]
    finally:
        c.close()
