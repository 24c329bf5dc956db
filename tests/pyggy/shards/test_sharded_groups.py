"""Iggy consumer groups and consumer offsets on a server of 2 shard processes, driven by the
official apache-iggy 0.9.0 SDK.

Shard 0 owns group membership: members connected to different shards are one group, and
every connection sees the same members and assignment. A group poll of a partition another
shard owns is served by that shard, which stores the group's offset; offsets stored, read or
deleted outside a poll go to the partition's owner too.

Which shard accepted a connection is known from its client id: shard k of N hands out ids
k + 1, k + 1 + N, … (pyggy/server.py), and a group member's id is its client id."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from apache_iggy import (
    AutoCommit,
    AutoCommitWhen,
    Consumer,
    IggyClient,
    IggyConsumer,
    PollingStrategy,
    SendMessage,
    TcpConfig,
)

from pyggy.shards.rule import owner
from pyggy.testing import PyggyServer

SHARDS = {"IGGY_SYSTEM_SHARDING_SHARDS": "2", "IGGY_HTTP_ENABLED": "false"}
PARTITIONS = 4
GET_CONSUMER_OFFSET = 120
CONSUMER_GROUP = 2


def _shard(client_id: int) -> int:
    return (client_id - 1) % 2


async def _client(server: PyggyServer) -> IggyClient:
    client = IggyClient(TcpConfig(server_address=server.tcp_address))
    await client.connect()
    await client.login_user("iggy", "iggy")
    return client


def _identifier(value: str | int) -> bytes:
    if isinstance(value, int):
        return struct.pack("<BBI", 1, 4, value)
    return struct.pack("<BB", 2, len(value)) + value.encode()


async def _stored(client: IggyClient, group: str, partition: int) -> int | None:
    """GET_CONSUMER_OFFSET (120) of the group on the partition (not in the typed SDK API)."""
    body = (bytes((CONSUMER_GROUP,)) + _identifier(group) + _identifier("shop")
            + _identifier("events") + struct.pack("<BI", 1, partition))
    reply = await client.send_binary_request(GET_CONSUMER_OFFSET, body)
    return struct.unpack("<IQQ", reply)[2] if reply else None


async def _members(client: IggyClient) -> dict[int, list[int]]:
    group = await client.get_consumer_group("shop", "events", "workers")
    assert group is not None
    return {m.id: sorted(m.partitions) for m in group.members}


async def _one_member_per_shard(server: PyggyServer) -> dict[int, IggyClient]:
    """Join clients until a member came in on each shard; the surplus leave again (a leave
    forwarded too). The kernel picks the shard of each connection (SO_REUSEPORT)."""
    by_shard: dict[int, IggyClient] = {}
    seen: set[int] = set()
    for _ in range(40):
        client = await _client(server)
        await client.join_consumer_group("shop", "events", "workers")
        members = await _members(client)
        (new,) = set(members) - seen
        if _shard(new) in by_shard:
            await client.leave_consumer_group("shop", "events", "workers")
            assert set(await _members(client)) == seen
        else:
            by_shard[_shard(new)] = client
            seen.add(new)
        if len(by_shard) == 2:
            return by_shard
    raise AssertionError("40 connections all landed on one shard")


# a member in a process of its own: joins, says so, and waits to be killed
_MEMBER = """
import asyncio, sys
from apache_iggy import IggyClient, TcpConfig

async def main():
    client = IggyClient(TcpConfig(server_address=sys.argv[1]))
    await client.connect()
    await client.login_user("iggy", "iggy")
    await client.join_consumer_group("shop", "events", "workers")
    print("joined", flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def _member_that_dies(server: PyggyServer, admin: IggyClient, other_than: int) -> None:
    """Start member processes until one lands on a shard other than `other_than`, then kill
    it; the others are killed as they come (each one's removal awaited)."""
    for _ in range(20):
        before = set(await _members(admin))
        proc = subprocess.Popen([sys.executable, "-c", _MEMBER, server.tcp_address],
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 30)
            assert line.strip() == "joined", line
            (new,) = set(await _members(admin)) - before
        finally:
            proc.kill()
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()

        async def removed(before: set[int] = before) -> bool:
            return set(await _members(admin)) == before
        await _eventually(removed)
        if _shard(new) != other_than:
            return
    raise AssertionError("20 member processes all landed on one shard")


async def _poll(client: IggyClient, partition: int) -> list[bytes]:
    msgs = await client.poll_messages(
        "shop", "events", partition_id=partition, consumer=Consumer.Group("workers"),
        polling_strategy=PollingStrategy.Next(), count=100, auto_commit=True)
    return [m.payload() for m in msgs]


async def _eventually(probe: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_members_on_different_shards_share_one_group_and_its_offsets(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")

    async def run() -> None:
        admin = await _client(server)
        await admin.create_stream("shop")
        await admin.create_topic("shop", "events", PARTITIONS)
        await admin.create_consumer_group("shop", "events", "workers")
        stream = await admin.get_stream("shop")
        topic = await admin.get_topic("shop", "events")
        assert stream is not None and topic is not None
        owners = {p: owner(stream.id, topic.id, p, 2) for p in range(PARTITIONS)}
        assert sorted(owners.values()) == [0, 0, 1, 1]
        for p in range(PARTITIONS):
            await admin.send_messages("shop", "events", p,
                                      [SendMessage(f"p{p}-{i}") for i in range(3)])

        members = await _one_member_per_shard(server)
        # one group: both members seen from every connection, the partitions split
        assignment = await _members(admin)
        for client in members.values():
            assert await _members(client) == assignment
        assert len(assignment) == 2
        assert sorted(p for parts in assignment.values() for p in parts) == list(
            range(PARTITIONS))
        by_id = {m: members[_shard(m)] for m in assignment}

        # each member polls its partitions (wherever they are): every message once, and the
        # group's offset stored by the partition's owner, seen from either shard
        got = {m: [x for p in parts for x in await _poll(by_id[m], p)]
               for m, parts in assignment.items()}
        assert sorted(x for xs in got.values() for x in xs) == sorted(
            f"p{p}-{i}".encode() for p in range(PARTITIONS) for i in range(3))
        for reader in (admin, *members.values()):
            assert [await _stored(reader, "workers", p) for p in range(PARTITIONS)] == [2] * 4
        for m, parts in assignment.items():
            for p in parts:
                assert await _poll(by_id[m], p) == []
        # a partition of the other member's is not this one's, whichever shard asks
        a, b = list(assignment)
        with pytest.raises(RuntimeError, match="(?i)not owned|partition"):
            await _poll(by_id[a], assignment[b][0])

        # b leaves; a member on the other shard than a's joins and its process dies (the
        # kernel closes its connection; its shard tells shard 0): a owns all four again
        stays = by_id[a]
        await by_id[b].leave_consumer_group("shop", "events", "workers")
        assert list(await _members(admin)) == [a]
        await _member_that_dies(server, admin, other_than=_shard(a))

        async def alone() -> bool:
            return list(await _members(admin)) == [a]
        await _eventually(alone)
        assert (await _members(stays))[a] == list(range(PARTITIONS))
        for p in range(PARTITIONS):
            await admin.send_messages("shop", "events", p, [SendMessage(f"p{p}-new")])
        assert [await _poll(stays, p) for p in range(PARTITIONS)] == [
            [f"p{p}-new".encode()] for p in range(PARTITIONS)]
        assert [await _stored(admin, "workers", p) for p in range(PARTITIONS)] == [3] * 4

    asyncio.run(run())


def test_consumer_offsets_outside_a_poll_go_to_the_partition_owner(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    """Store/Get/DeleteConsumerOffset of every partition through several connections (both
    shards): what one connection stores, every other reads; a delete is seen everywhere."""
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")

    async def run() -> None:
        admin = await _client(server)
        await admin.create_stream("shop")
        await admin.create_topic("shop", "events", PARTITIONS)
        await admin.create_consumer_group("shop", "events", "workers")
        for p in range(PARTITIONS):
            await admin.send_messages("shop", "events", p,
                                      [SendMessage(f"p{p}-{i}") for i in range(5)])
        clients = [await _client(server) for _ in range(6)]
        for client in clients:
            await client.join_consumer_group("shop", "events", "workers")
        ids = sorted(await _members(admin))
        assert {_shard(i) for i in ids} == {0, 1}, ids  # 6 connections: both shards (1/32)

        consumers = [await c.consumer_group(
            "workers", "shop", "events", create_consumer_group_if_not_exists=False,
            auto_join_consumer_group=False) for c in clients]
        for n, consumer in enumerate(consumers):
            for p in range(PARTITIONS):
                await consumer.store_offset((n + p) % 5, p)
                for reader in clients:
                    assert await _stored(reader, "workers", p) == (n + p) % 5
        for p in range(PARTITIONS):
            await consumers[p].delete_offset(p)
            for reader in clients:
                assert await _stored(reader, "workers", p) is None
        # past the partition's end: refused by the owner, whichever shard was asked
        for consumer in consumers:
            with pytest.raises(RuntimeError, match="(?i)offset"):
                await consumer.store_offset(99, 1)

    asyncio.run(run())


def test_high_level_group_consumers_on_both_shards_read_everything_once(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    """The SDK's group consumer (auto-join, polls of its assigned partitions, auto-commit)
    on connections of both shards: the two split the partitions and read each message once."""
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")

    async def run() -> None:
        admin = await _client(server)
        await admin.create_stream("shop")
        await admin.create_topic("shop", "events", PARTITIONS)
        await admin.create_consumer_group("shop", "events", "workers")
        for p in range(PARTITIONS):
            await admin.send_messages("shop", "events", p,
                                      [SendMessage(f"p{p}-{i}") for i in range(5)])
        members = await _one_member_per_shard(server)  # members, by shard, joined by hand
        consumers = {shard: await c.consumer_group(
            "workers", "shop", "events", batch_length=100,
            polling_strategy=PollingStrategy.Next(), create_consumer_group_if_not_exists=False,
            auto_commit=AutoCommit.When(AutoCommitWhen.PollingMessages()),
            poll_interval=timedelta(milliseconds=5)) for shard, c in members.items()}
        assignment = await _members(admin)
        assert len(assignment) == 2  # joining again changed nothing
        got: list[tuple[int, bytes]] = []
        for member, parts in assignment.items():
            mine = await _take(consumers[_shard(member)], 5 * len(parts))
            assert {p for p, _ in mine} == set(parts)
            got += mine
        assert sorted(got) == sorted((p, f"p{p}-{i}".encode())
                                     for p in range(PARTITIONS) for i in range(5))

    asyncio.run(run())


async def _take(consumer: IggyConsumer, n: int, timeout: float = 20.0
                ) -> list[tuple[int, bytes]]:
    """The next `n` (partition, payload) of a group consumer's `iter_messages()`."""
    out: list[tuple[int, bytes]] = []

    async def run() -> None:
        async for m in consumer.iter_messages():
            out.append((m.partition_id(), m.payload()))
            if len(out) >= n:
                return
    await asyncio.wait_for(run(), timeout)
    return out
