"""Statistics and partition maintenance on a server of 2 shard processes, through real
clients: the apache-iggy 0.9.0 SDK (topic details, `stats`, purge, DeleteSegments), HTTP
(`/metrics`, on shard 0) and librdkafka (DeleteRecords, with one broker: every shard forwards).

Whichever shard a connection reached, the figures cover the partitions of both shards, and a
maintenance request on another shard's partition is done by its owner."""

from __future__ import annotations

import asyncio
import json
import struct
import urllib.request
from collections.abc import Callable

from apache_iggy import (
    Consumer,
    IggyClient,
    PollingStrategy,
    SendMessage,
    TcpConfig,
)
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.parser import text_string_to_metric_families

from pyggy.shards.rule import owner
from pyggy.testing import PyggyServer, free_port

SHARDS = {"IGGY_SYSTEM_SHARDING_SHARDS": "2"}
ONE_BROKER = {**SHARDS, "IGGY_HTTP_ENABLED": "false",
              "IGGY_SYSTEM_SHARDING_KAFKA_BROKER_PER_SHARD": "false"}
PARTITIONS = 4
CONNECTIONS = 4  # several, so both shards answer some
DELETE_SEGMENTS = 503
BIG = b"x" * (100 << 10)  # 12 of these fill a 1 MiB segment and start another


async def _client(server: PyggyServer) -> IggyClient:
    client = IggyClient(TcpConfig(server_address=server.tcp_address))
    await client.connect()
    await client.login_user("iggy", "iggy")
    return client


def _identifier(value: str) -> bytes:
    return struct.pack("<BB", 2, len(value)) + value.encode()


def _metrics(base: str) -> dict[tuple[str, str], float]:
    """pyggy_partition_* samples of stream "shop" by (name, partition), via a login's JWT."""
    login = urllib.request.Request(
        base + "/users/login", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"username": "iggy", "password": "iggy"}).encode())
    with urllib.request.urlopen(login, timeout=30) as resp:
        token = json.loads(resp.read())["access_token"]["token"]
    req = urllib.request.Request(base + "/metrics",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        text = resp.read().decode()
    return {(s.name, s.labels["partition"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name.startswith("pyggy_partition_") and s.labels.get("stream") == "shop"}


def test_statistics_purge_and_delete_segments_cover_both_shards(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    port = free_port()
    server = pyggy_server_factory(env={**SHARDS, "IGGY_HTTP_ENABLED": "true",
                                       "IGGY_HTTP_ADDRESS": f"127.0.0.1:{port}"})
    server.wait_for_log("shards: 2 processes serving")

    async def run() -> None:
        admin = await _client(server)
        await admin.create_stream("shop")
        await admin.create_topic("shop", "events", PARTITIONS, segment_size=1 << 20)
        stream, topic = await admin.get_stream("shop"), await admin.get_topic("shop", "events")
        assert stream is not None and topic is not None
        assert sorted(owner(stream.id, topic.id, p, 2) for p in range(PARTITIONS)) == [
            0, 0, 1, 1]
        for p in range(PARTITIONS):
            for _ in range(12):
                await admin.send_messages("shop", "events", p, [SendMessage(BIG)])
            await admin.send_messages("shop", "events", p, [SendMessage(b"s") for _ in range(3)])

        # every connection (either shard) sees the figures of all four partitions
        clients = [await _client(server) for _ in range(CONNECTIONS)]
        for client in clients:
            t = await client.get_topic("shop", "events")
            assert t is not None
            assert [(p.id, p.messages_count, p.current_offset, p.segments_count)
                    for p in t.partitions] == [(p, 15, 14, 2) for p in range(PARTITIONS)]
            assert t.messages_count == 60 and t.size > PARTITIONS * 12 * len(BIG)
            stats = await client.get_stats()
            assert (stats.messages_count, stats.partitions_count, stats.segments_count) == (
                60, PARTITIONS, 2 * PARTITIONS)
            assert stats.messages_size_bytes == t.size
            assert stats.written_bytes >= t.size
        metrics = _metrics(f"http://127.0.0.1:{port}")  # shard 0's HTTP door
        assert [metrics[("pyggy_partition_log_end_offset", str(p))]
                for p in range(PARTITIONS)] == [15.0] * PARTITIONS
        assert [metrics[("pyggy_partition_segments", str(p))]
                for p in range(PARTITIONS)] == [2.0] * PARTITIONS

        # DeleteSegments of every partition through every connection: the sealed segment of
        # each goes (once), wherever the partition is
        for client in clients:
            for p in range(PARTITIONS):
                await client.send_binary_request(DELETE_SEGMENTS, _identifier("shop")
                                                 + _identifier("events")
                                                 + struct.pack("<II", p, 1))
            t = await client.get_topic("shop", "events")
            assert t is not None
            assert [(p.segments_count, p.current_offset) for p in t.partitions] == [
                (1, 14)] * PARTITIONS
        for p in range(PARTITIONS):  # what is left: the second segment's messages
            msgs = await admin.poll_messages("shop", "events", partition_id=p,
                                             consumer=Consumer.Single(1), count=100,
                                             polling_strategy=PollingStrategy.First(),
                                             auto_commit=False)
            assert [m.payload() for m in msgs][-3:] == [b"s"] * 3
            assert msgs[0].offset() > 0

        # purge through one connection of each shard in turn: every partition is emptied
        await clients[0].purge_topic("shop", "events")
        for client in clients:
            t = await client.get_topic("shop", "events")
            assert t is not None
            assert t.messages_count == 0 and all(p.messages_count == 0 for p in t.partitions)
            for p in range(PARTITIONS):
                assert await client.poll_messages(
                    "shop", "events", partition_id=p, consumer=Consumer.Single(1), count=10,
                    polling_strategy=PollingStrategy.First(), auto_commit=False) == []
        assert (await clients[-1].get_stats()).messages_count == 0

    asyncio.run(run())


def test_kafka_delete_records_of_another_shards_partition(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    """One broker (the shared port): a DeleteRecords is answered by whichever shard took the
    connection, for all four partitions, two of them another shard's."""
    server = pyggy_server_factory(env=ONE_BROKER)
    server.wait_for_log("shards: 2 processes serving")
    admin = AdminClient({"bootstrap.servers": server.kafka_address})
    admin.create_topics([NewTopic("trim", PARTITIONS, 1)])["trim"].result(15)
    producer = Producer({"bootstrap.servers": server.kafka_address, "linger.ms": 0})
    for i in range(10):
        for p in range(PARTITIONS):
            producer.produce("trim", value=f"{p}-{i}".encode(), partition=p)
    assert producer.flush(20) == 0
    for n in range(CONNECTIONS):
        client = AdminClient({"bootstrap.servers": server.kafka_address})
        futures = client.delete_records([TopicPartition("trim", p, n + p + 1)
                                         for p in range(PARTITIONS)], request_timeout=15)
        got = {tp.partition: f.result(15).low_watermark for tp, f in futures.items()}
        assert got == {p: n + p + 1 for p in range(PARTITIONS)}

    async def low_watermarks() -> list[int]:
        client = await _client(server)
        out = []
        for p in range(PARTITIONS):
            msgs = await client.poll_messages("kafka", "trim", partition_id=p,
                                              consumer=Consumer.Single(1), count=100,
                                              polling_strategy=PollingStrategy.First(),
                                              auto_commit=False)
            out.append(msgs[0].offset())
        return out

    assert asyncio.run(low_watermarks()) == [CONNECTIONS + p for p in range(PARTITIONS)]
