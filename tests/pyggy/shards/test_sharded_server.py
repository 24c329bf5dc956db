"""A server of 2 shard processes (`[system.sharding] shards = 2`) served to real clients:
librdkafka (confluent-kafka) on the Kafka door and the apache-iggy SDK on the Iggy door.

The kernel spreads connections over the shards (SO_REUSEPORT); with 4 partitions each shard
owns 2 (pyggy/shards/rule.py), so every connection reaches partitions of the other shard
through forwarding, whichever shard accepted it. Metadata is created through either door and
either shard and is seen by every connection."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import pytest
from apache_iggy import Consumer as IggyConsumer
from apache_iggy import IggyClient, PollingStrategy, SendMessage, TcpConfig
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pyggy.shards.rule import owner
from pyggy.testing import PyggyServer

SHARDS = {"IGGY_SYSTEM_SHARDING_SHARDS": "2", "IGGY_HTTP_ENABLED": "false"}
# Kafka clients see one broker (the shared port) and every shard forwards
ONE_BROKER = {**SHARDS, "IGGY_SYSTEM_SHARDING_KAFKA_BROKER_PER_SHARD": "false"}
PARTITIONS = 4
CONNECTIONS = 4  # per door and step: several, so both shards accept some


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def _kafka_read(bootstrap: str, topic: str, want: int) -> dict[int, list[bytes]]:
    """Every record of the topic's partitions through one new connection (plain assign)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        got: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
        deadline = time.monotonic() + 30
        while sum(map(len, got.values())) < want and time.monotonic() < deadline:
            for m in c.consume(500, 1.0):
                assert m.error() is None, m.error()
                got[m.partition()].append(m.value())
        return got
    finally:
        c.close()


async def _iggy(server: PyggyServer) -> IggyClient:
    client = IggyClient(TcpConfig(server_address=server.tcp_address))
    await client.connect()
    await client.login_user("iggy", "iggy")
    return client


async def _iggy_read(server: PyggyServer, stream: str, topic: str) -> dict[int, list[bytes]]:
    client = await _iggy(server)
    got: dict[int, list[bytes]] = {}
    for p in range(PARTITIONS):
        msgs = await client.poll_messages(stream, topic, partition_id=p,
                                          consumer=IggyConsumer.Single(1),
                                          polling_strategy=PollingStrategy.Offset(0),
                                          count=1000, auto_commit=False)
        got[p] = [m.payload() for m in msgs]
    return got


@pytest.mark.parametrize("env", [SHARDS, ONE_BROKER], ids=["broker-per-shard", "one-broker"])
def test_two_shards_serve_every_partition_through_both_doors(
        pyggy_server_factory: Callable[..., PyggyServer], env: dict[str, str]) -> None:
    server = pyggy_server_factory(env=env)
    server.wait_for_log("shards: 2 processes serving")
    assert server.pid is not None
    assert len(_children(server.pid)) == 1  # shard 1
    # the topic the Kafka door makes (stream "kafka") has partitions on both shards
    admin = AdminClient({"bootstrap.servers": server.kafka_address})
    admin.create_topics([NewTopic("orders", PARTITIONS, 1)])["orders"].result(15)

    # Kafka in, through several connections: each record on its partition
    for n in range(CONNECTIONS):
        producer = Producer({"bootstrap.servers": server.kafka_address, "linger.ms": 0})
        for p in range(PARTITIONS):
            producer.produce("orders", value=f"k{n}-p{p}".encode(), partition=p)
        assert producer.flush(20) == 0
    expected = {p: [f"k{n}-p{p}".encode() for n in range(CONNECTIONS)]
                for p in range(PARTITIONS)}
    # ... and out through the Kafka door, from several connections (either shard)
    for _ in range(CONNECTIONS):
        assert _kafka_read(server.kafka_address, "orders", CONNECTIONS * PARTITIONS) == expected
    # ... and through the Iggy door: the same records, by partition, in order
    for _ in range(CONNECTIONS):
        assert asyncio.run(_iggy_read(server, "kafka", "orders")) == expected


def test_iggy_metadata_and_messages_reach_every_shard(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")

    async def write() -> tuple[int, int]:
        client = await _iggy(server)
        await client.create_stream("shop")  # logged by shard 0, applied on both
        await client.create_topic("shop", "events", PARTITIONS)
        stream = await client.get_stream("shop")
        topic = await client.get_topic("shop", "events")
        assert stream is not None and topic is not None
        for n in range(CONNECTIONS):
            sender = await _iggy(server)
            for p in range(PARTITIONS):
                await sender.send_messages("shop", "events", p, [
                    SendMessage(f"i{n}-p{p}-{i}".encode()) for i in range(3)])
        return stream.id, topic.id

    stream_id, topic_id = asyncio.run(write())
    assert sorted(owner(stream_id, topic_id, p, 2) for p in range(PARTITIONS)) == [0, 0, 1, 1]
    expected = {p: [f"i{n}-p{p}-{i}".encode() for n in range(CONNECTIONS) for i in range(3)]
                for p in range(PARTITIONS)}
    for _ in range(CONNECTIONS):  # every connection sees the topic and all its messages
        assert asyncio.run(_iggy_read(server, "shop", "events")) == expected
    # the other door, by "<stream>.<topic>"
    assert _kafka_read(server.kafka_address, "shop.events",
                       CONNECTIONS * PARTITIONS * 3) == expected

    # a restart with the same shard count finds everything where it was
    server.restart(signal.SIGTERM)
    server.wait_for_log("shards: 2 processes serving")
    assert asyncio.run(_iggy_read(server, "shop", "events")) == expected


def test_a_shard_process_dying_stops_the_server(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")
    assert server.pid is not None
    (child,) = _children(server.pid)
    os.kill(child, signal.SIGKILL)
    assert server.wait_exit(20) == 1
    server.wait_for_log("stopping the server")


def test_a_long_poll_fetch_wakes_on_an_append_on_another_shard(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    """A consumer parked in Fetch (fetch.wait.max.ms 20 s) on all partitions gets a record
    appended to any of them at once, whichever shard owns it and whichever shard the record
    or the consumer came through (one broker: the Fetch is parked on one shard for all)."""
    server = pyggy_server_factory(env=ONE_BROKER)
    server.wait_for_log("shards: 2 processes serving")
    admin = AdminClient({"bootstrap.servers": server.kafka_address})  # alive until answered
    admin.create_topics([NewTopic("live", PARTITIONS, 1)])["live"].result(15)
    c = Consumer({"bootstrap.servers": server.kafka_address, "group.id": "live",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 20_000})
    try:
        c.assign([TopicPartition("live", p, 0) for p in range(PARTITIONS)])
        assert c.consume(10, 3.0) == []  # parked now
        producer = Producer({"bootstrap.servers": server.kafka_address, "linger.ms": 0})
        for p in range(PARTITIONS):
            sent = time.monotonic()
            producer.produce("live", value=f"now-{p}".encode(), partition=p)
            assert producer.flush(10) == 0
            got = []
            while not got and time.monotonic() - sent < 10:
                got = [m for m in c.consume(10, 0.5) if m.error() is None]
            assert [(m.partition(), m.value()) for m in got] == [(p, f"now-{p}".encode())]
            assert time.monotonic() - sent < 5  # woken, not the 20 s long-poll timeout
    finally:
        c.close()


def test_shard_0_dying_stops_the_other_shards(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")
    assert server.pid is not None
    (child,) = _children(server.pid)
    server.kill()  # SIGKILL: no chance to stop its children
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        with open(f"/proc/{child}/stat") as f:
            if f.read().split(") ")[1].startswith("Z"):  # exited; a zombie of init's
                break
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{child}") or open(
        f"/proc/{child}/stat").read().split(") ")[1].startswith("Z")
    server.wait_for_log("shard1 pyggy.shards.runtime: shard 1: its channel", timeout=5)


def test_kafka_clients_see_a_broker_per_shard_and_one_group_coordinator(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    """Metadata names each shard as a broker leading the partitions it owns (requests go to
    the owner, nothing is forwarded) and shard 0 as every group's coordinator: two members
    of one group on different connections share the partitions between them."""
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")
    admin = AdminClient({"bootstrap.servers": server.kafka_address})
    admin.create_topics([NewTopic("grouped", PARTITIONS, 1)])["grouped"].result(15)
    meta = admin.list_topics("grouped", timeout=15)
    assert sorted(meta.brokers) == [0, 1]
    assert server.kafka_port not in {b.port for b in meta.brokers.values()}
    leaders = {p.id: p.leader for p in meta.topics["grouped"].partitions.values()}
    assert sorted(leaders.values()) == [0, 0, 1, 1]
    producer = Producer({"bootstrap.servers": server.kafka_address, "linger.ms": 0})
    for i in range(40):
        producer.produce("grouped", value=f"g{i}".encode(), partition=i % PARTITIONS)
    assert producer.flush(20) == 0

    members = [Consumer({"bootstrap.servers": server.kafka_address, "group.id": "pair",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
               for _ in range(2)]
    try:
        for c in members:
            c.subscribe(["grouped"])
        seen: list[bytes] = []
        assigned: list[set[int]] = [set(), set()]
        deadline = time.monotonic() + 60
        while (len(seen) < 40 or not all(assigned)) and time.monotonic() < deadline:
            for n, c in enumerate(members):
                for m in c.consume(100, 0.5):
                    assert m.error() is None, m.error()
                    seen.append(m.value())
                assigned[n] = {tp.partition for tp in c.assignment()}
        # every record (a rebalance while the second member joins may deliver some twice:
        # nothing is committed here), and the partitions split between the two members
        assert set(seen) == {f"g{i}".encode() for i in range(40)}
        assert all(assigned) and not assigned[0] & assigned[1]
        assert assigned[0] | assigned[1] == set(range(PARTITIONS))
    finally:
        for c in members:
            c.close()
