"""Consumer offsets with the apache-iggy 0.9.0 SDK: what a consumer group member stores (by
hand with IggyConsumer.store_offset/delete_offset, or by the auto-commit modes) is what the
next member resumes from. Server state is cross-checked with GET_CONSUMER_OFFSET (code 120,
through the SDK's send_binary_request)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from apache_iggy import (
    AutoCommit,
    AutoCommitAfter,
    AutoCommitWhen,
    Consumer,
    IggyClient,
    IggyConsumer,
    PollingStrategy,
    ReceiveMessage,
    SendMessage,
)
from sdk_support import (
    CONSUMER,
    CONSUMER_GROUP,
    connect,
    get_consumer_offset,
    payloads,
    poll,
    take,
    wait_until,
)

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.asyncio
FAST = timedelta(milliseconds=5)


async def _member(client: IggyClient, auto_commit: AutoCommit, batch_length: int = 10,
                  group: str = "g") -> IggyConsumer:
    return await client.consumer_group(group, "s", "t", batch_length=batch_length,
                                       polling_strategy=PollingStrategy.Next(),
                                       auto_commit=auto_commit, poll_interval=FAST)


async def _leave(root: IggyClient, client: IggyClient) -> None:
    """The member's client leaves the group; wait until the server shows no member."""
    await client.leave_consumer_group("s", "t", "g")

    async def empty() -> bool:
        return (await root.get_consumer_group("s", "t", "g")).members_count == 0

    await wait_until(empty, what="the group to have no member")


def _where(messages: list[ReceiveMessage]) -> list[tuple[int, int]]:
    return sorted((m.partition_id(), m.offset()) for m in messages)


async def test_a_member_stores_and_deletes_offsets_by_hand(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 2)
    await root.send_messages("s", "t", 0, [SendMessage(f"a{i}") for i in range(5)])
    await root.send_messages("s", "t", 1, [SendMessage(f"b{i}") for i in range(3)])

    first = await connect(pyggy_server)
    member = await _member(first, AutoCommit.Disabled())
    got = await take(member, 8)
    assert _where(got) == [(0, i) for i in range(5)] + [(1, i) for i in range(3)]
    assert (member.get_last_consumed_offset(0), member.get_last_consumed_offset(1)) == (4, 2)
    # with auto-commit disabled nothing is stored ("0" = seen, nothing stored yet)
    assert (member.get_last_stored_offset(0), member.get_last_stored_offset(1)) == (0, 0)
    assert await get_consumer_offset(root, CONSUMER_GROUP, "g", "s", "t", 0) is None

    await member.store_offset(3, 0)
    await member.store_offset(2, 1)
    assert (member.get_last_stored_offset(0), member.get_last_stored_offset(1)) == (3, 2)
    assert await get_consumer_offset(root, CONSUMER_GROUP, "g", "s", "t", 0) == (0, 4, 3)
    assert await get_consumer_offset(root, CONSUMER_GROUP, 0, "s", "t", 1) == (1, 2, 2)
    # an offset past the end of the partition is refused
    with pytest.raises(RuntimeError, match="^Invalid offset"):
        await member.store_offset(9, 0)
    assert await get_consumer_offset(root, CONSUMER_GROUP, "g", "s", "t", 0) == (0, 4, 3)

    # the next member of the group resumes after the stored offsets
    await _leave(root, first)
    del member, first  # dropped: it can not rejoin behind our back
    second = await connect(pyggy_server)
    successor = await _member(second, AutoCommit.Disabled())
    [resumed] = await take(successor, 1)
    assert (resumed.partition_id(), resumed.offset(), resumed.payload()) == (0, 4, b"a4")

    # deleting an offset makes the partition start over for the group
    await successor.delete_offset(0)
    assert await get_consumer_offset(root, CONSUMER_GROUP, "g", "s", "t", 0) is None
    assert await get_consumer_offset(root, CONSUMER_GROUP, "g", "s", "t", 1) == (1, 2, 2)
    with pytest.raises(RuntimeError, match="^Consumer offset for consumer .* was not found"):
        await successor.delete_offset(0)
    await _leave(root, second)
    del successor, second
    third = await connect(pyggy_server)
    restarted = await take(await _member(third, AutoCommit.Disabled()), 5)
    assert payloads(restarted) == [b"a0", b"a1", b"a2", b"a3", b"a4"]


async def test_auto_commit_on_poll_lets_the_next_member_resume(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 1)
    await root.send_messages("s", "t", 0, [SendMessage(f"m{i}") for i in range(6)])

    first = await connect(pyggy_server)
    member = await _member(first, AutoCommit.When(AutoCommitWhen.PollingMessages()),
                           batch_length=2)
    assert payloads(await take(member, 4)) == [b"m0", b"m1", b"m2", b"m3"]

    async def stored_3() -> bool:
        return await get_consumer_offset(root, CONSUMER_GROUP, "g", "s", "t", 0) == (0, 5, 3)

    await wait_until(stored_3, what="offset 3 (the last polled) stored")
    await _leave(root, first)
    del member, first

    second = await connect(pyggy_server)
    assert payloads(await take(await _member(second, AutoCommit.Disabled()), 2)) == [
        b"m4", b"m5"]


async def test_auto_commit_after_each_consumed_message(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 1)
    await root.send_messages("s", "t", 0, [SendMessage(f"m{i}") for i in range(10)])

    client = await connect(pyggy_server)
    member = await _member(client, AutoCommit.After(AutoCommitAfter.ConsumingEachMessage()),
                           batch_length=1)
    seen: list[bytes] = []
    stop = asyncio.Event()

    async def handle(message: ReceiveMessage) -> None:
        seen.append(message.payload())
        if len(seen) == 3:
            stop.set()

    await asyncio.wait_for(member.consume_messages(handle, stop), 10)
    assert seen[:3] == [b"m0", b"m1", b"m2"]

    async def committed() -> tuple[int, int, int] | None:
        found = await get_consumer_offset(root, CONSUMER_GROUP, "g", "s", "t", 0)
        return found if found and found[2] >= 1 else None

    # each consumed message's offset is stored (the last one may still be in flight)
    stored = await wait_until(committed, what="the offsets of consumed messages")
    assert stored[:2] == (0, 9) and stored[2] <= len(seen) - 1
    assert member.get_last_consumed_offset(0) == len(seen) - 1


async def test_auto_commit_on_an_interval(root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 1)
    await root.send_messages("s", "t", 0, [SendMessage(f"m{i}") for i in range(4)])
    client = await connect(pyggy_server)
    member = await _member(client, AutoCommit.Interval(timedelta(milliseconds=20)))
    assert len(await take(member, 4)) == 4

    async def stored_last() -> bool:
        return await get_consumer_offset(root, CONSUMER_GROUP, "g", "s", "t", 0) == (0, 3, 3)

    await wait_until(stored_last, what="the interval commit of offset 3")
    assert member.get_last_stored_offset(0) == 3


async def test_regular_consumer_offsets_are_per_consumer_and_cleared_by_purge(
        root: IggyClient) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 2)
    await root.send_messages("s", "t", 1, [SendMessage(f"m{i}") for i in range(4)])
    alice, numeric = Consumer.Single("alice"), Consumer.Single(5)
    await poll(root, "s", "t", PollingStrategy.Next(), count=3, partition_id=1,
               consumer=alice, auto_commit=True)
    await poll(root, "s", "t", PollingStrategy.Next(), count=1, partition_id=1,
               consumer=numeric, auto_commit=True)
    assert await get_consumer_offset(root, CONSUMER, "alice", "s", "t", 1) == (1, 3, 2)
    assert await get_consumer_offset(root, CONSUMER, 5, "s", "t", 1) == (1, 3, 0)
    assert await get_consumer_offset(root, CONSUMER, "bob", "s", "t", 1) is None
    assert await get_consumer_offset(root, CONSUMER, "alice", "s", "t", 0) is None
    # a consumer's offset on one partition does not leak to another
    await poll(root, "s", "t", PollingStrategy.Next(), partition_id=0, consumer=alice,
               auto_commit=True)
    assert await get_consumer_offset(root, CONSUMER, "alice", "s", "t", 0) is None

    await root.purge_topic("s", "t")
    assert await get_consumer_offset(root, CONSUMER, "alice", "s", "t", 1) is None
    await root.send_messages("s", "t", 1, [SendMessage("new")])
    assert payloads(await poll(root, "s", "t", PollingStrategy.Next(), partition_id=1,
                               consumer=alice, auto_commit=True)) == [b"new"]
