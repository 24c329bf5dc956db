"""The official apache-iggy 0.9.0 SDK against a three-process cluster: GET_CLUSTER_METADATA
returns the roster with the metadata primary as Leader; a client given a backup's address is
led to the leader (the SDK reads the roster after login) and its metadata commands and sends
succeed; every node then holds the stream, topic and messages, and a poll on any node serves
the committed messages (a reader connecting through any node reads them)."""

from __future__ import annotations

import asyncio
import re
import struct
import time
from pathlib import Path

from apache_iggy import Consumer as IggyConsumer
from apache_iggy import IggyClient, PollingStrategy, SendMessage
from pyggy.core.offsets import CONSUMER
from pyggy.native_wire.codec import primitives as p

from pyggy.testing import PyggyCluster

GET_CLUSTER_METADATA = 12
_U32 = struct.Struct("<I")


def parse_roster(raw: bytes) -> tuple[str, list[tuple[str, str, int, int]]]:
    """(cluster name, [(node name, ip, tcp port, role)]) of a GET_CLUSTER_METADATA reply."""
    pos = 0

    def string() -> str:
        nonlocal pos
        (n,) = _U32.unpack_from(raw, pos)
        pos += 4 + n
        return raw[pos - n:pos].decode()

    name = string()
    (count,) = _U32.unpack_from(raw, pos)
    pos += 4
    nodes = []
    for _ in range(count):
        node, ip = string(), string()
        tcp, _, _, _, role, _ = struct.unpack_from("<HHHHBB", raw, pos)
        pos += 10
        nodes.append((node, ip, tcp, role))
    assert pos == len(raw)
    return name, nodes


def test_the_sdk_sees_the_roster_and_is_led_to_the_leader(tmp_path: Path) -> None:
    c = PyggyCluster(tmp_path / "c").start()
    try:
        line = c.servers[0].wait_for_log("metadata primary is replica")
        leader = int(re.search(r"replica (\d+)", line).group(1))
        backup = next(i for i in range(3) if i != leader)

        async def main() -> None:
            client = IggyClient(c.servers[backup].tcp_address)
            await client.connect()
            await client.login_user("iggy", "iggy")
            name, nodes = parse_roster(await client.send_binary_request(GET_CLUSTER_METADATA,
                                                                        b""))
            assert name == "test-cluster"
            assert [(n, tcp) for n, _, tcp, _ in nodes] == [
                (f"node{i}", s.tcp_port) for i, s in enumerate(c.servers)]
            assert [role for *_, role in nodes] == [0 if i == leader else 1 for i in range(3)]
            await client.create_stream("s")
            await client.create_topic("s", "t", partitions_count=1)
            await client.send_messages("s", "t", 0, [SendMessage(f"m{i}") for i in range(20)])
            for server in c.servers:  # committed: readable whichever node a reader dials
                reader = IggyClient(server.tcp_address)
                await reader.connect()
                await reader.login_user("iggy", "iggy")
                deadline = time.monotonic() + 20
                while True:
                    got = await reader.poll_messages(
                        "s", "t", consumer=IggyConsumer.Single("r"),
                        polling_strategy=PollingStrategy.First(), count=100,
                        auto_commit=False, partition_id=0)
                    if len(got) == 20 or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.1)
                assert [m.payload() for m in got] == [b"m%d" % i for i in range(20)]

        asyncio.run(main())
        for i, s in enumerate(c.servers):
            assert (s.data_path / "streams" / "0" / "topics" / "0").is_dir(), i
    finally:
        c.close()


def latest_primary(server, needle: str, avoid: int | None = None,
                   timeout: float = 60.0) -> int:
    """The replica the newest log line `needle ... primary is replica N` of `server` names
    (other than `avoid`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [int(m.group(1)) for line in list(server.logs) if needle in line
                 and (m := re.search(r"primary is replica (\d+)", line))]
        if found and found[-1] != avoid:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError(f"no line {needle!r} naming a primary other than {avoid}")


def test_a_partition_led_by_a_backup_is_written_and_polled_through_the_leader(
        tmp_path: Path) -> None:
    """After the metadata primary was killed and came back, metadata is led by another node
    while a new topic's partition starts in view 0, led by the restarted node: the SDK (moved to
    the metadata leader) sends there, and that node forwards the writes to the partition's
    primary (before: TransientNotAccepted 58). Then the 0.9.0 SDK's cluster poll routing (a
    three-node roster: GET_POLL_ROUTING, ATTACH_CONSUMER_SESSION, POLL_MESSAGES_ON_PRIMARY):
    auto-commit polls of a consumer and of a consumer group continue where they stopped."""
    c = PyggyCluster(tmp_path / "c").start()
    try:
        first = latest_primary(c.servers[0], "metadata primary is replica")
        c.servers[first].kill()
        survivor = next(i for i in range(3) if i != first)
        boss = latest_primary(c.servers[survivor], "metadata primary is replica", avoid=first)
        c.servers[first].start(60)
        c.servers[first].wait_for_log("metadata primary is replica", 60)
        backup = next(i for i in range(3) if i not in (boss, first))

        async def main() -> None:
            client = IggyClient(c.servers[backup].tcp_address)
            await client.connect()
            await client.login_user("iggy", "iggy")
            await client.create_stream("s")
            await client.create_topic("s", "t", partitions_count=1)
            lead = latest_primary(c.servers[boss], "partition group 0x0 primary")
            assert lead != boss, "the partition should be led by a node the SDK does not use"
            await client.send_messages("s", "t", 0, [SendMessage(f"m{i}") for i in range(20)])
            got = await client.poll_messages(
                "s", "t", consumer=IggyConsumer.Single("r"),
                polling_strategy=PollingStrategy.First(), count=100, auto_commit=False,
                partition_id=0)
            assert [m.payload() for m in got] == [b"m%d" % i for i in range(20)]

            async def next_five(consumer: IggyConsumer) -> list[bytes]:
                got = await client.poll_messages(
                    "s", "t", consumer=consumer, polling_strategy=PollingStrategy.Next(),
                    count=5, auto_commit=True, partition_id=0)
                return [m.payload() for m in got]

            single = IggyConsumer.Single("auto")
            assert await next_five(single) == [b"m%d" % i for i in range(5)]
            assert await next_five(single) == [b"m%d" % i for i in range(5, 10)]
            stored = await client.send_binary_request(GET_CONSUMER_OFFSET, target("auto"))
            assert struct.unpack("<IQQ", stored)[2] == 9  # (partition, current, stored)
            await client.create_consumer_group("s", "t", "g")
            await client.join_consumer_group("s", "t", "g")
            group = IggyConsumer.Group("g")
            assert await next_five(group) == [b"m%d" % i for i in range(5)]
            assert await next_five(group) == [b"m%d" % i for i in range(5, 10)]

        asyncio.run(main())
    finally:
        c.close()


GET_CONSUMER_OFFSET = 120


def target(consumer: str) -> bytes:
    """Consumer, stream "s", topic "t", partition 0 (iggy-protocol.md, code 120)."""
    return (p.encode_consumer(CONSUMER, consumer) + p.encode_identifier("s")
            + p.encode_identifier("t") + p.encode_optional_partition(0))
