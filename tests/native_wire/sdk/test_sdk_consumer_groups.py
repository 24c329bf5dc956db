"""Consumer groups with the apache-iggy 0.9.0 SDK: create/get/list/delete, join/leave, and
the high-level group consumer: members split the partitions (disjoint, covering all), a
member that leaves or disconnects hands its partitions over, new partitions are spread."""

from __future__ import annotations

import gc
from datetime import timedelta

import pytest
from apache_iggy import (
    AutoCommit,
    AutoCommitWhen,
    Consumer,
    ConsumerGroupDetails,
    IggyClient,
    IggyConsumer,
    PollingStrategy,
    SendMessage,
)
from sdk_support import connect, take, wait_until

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.asyncio


def _assignment(group: ConsumerGroupDetails) -> dict[int, list[int]]:
    return {m.id: sorted(m.partitions) for m in group.members}


def _assert_split(group: ConsumerGroupDetails, partitions: int, members: int) -> None:
    """Every partition owned by exactly one member; every member owns some."""
    assert group.members_count == len(group.members) == members
    owned = [p for m in group.members for p in m.partitions]
    assert sorted(owned) == list(range(partitions))
    assert all(m.partitions_count == len(m.partitions) > 0 for m in group.members)


async def _member(client: IggyClient, name: str = "g") -> IggyConsumer:
    return await client.consumer_group(
        name, "s", "t", batch_length=100, polling_strategy=PollingStrategy.Next(),
        auto_commit=AutoCommit.When(AutoCommitWhen.PollingMessages()),
        poll_interval=timedelta(milliseconds=5))


async def test_groups_are_created_listed_fetched_and_deleted(root: IggyClient) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 3)
    await root.create_topic("s", "other", 1)
    for name in ("billing", "audit", "search"):
        await root.create_consumer_group("s", "t", name)
    await root.create_consumer_group("s", "other", "billing")

    groups = await root.get_consumer_groups("s", "t")
    assert [(g.id, g.name, g.partitions_count, g.members_count) for g in groups] == [
        (0, "billing", 3, 0), (1, "audit", 3, 0), (2, "search", 3, 0)]
    for ident in ("audit", 1):
        audit = await root.get_consumer_group("s", "t", ident)
        assert (audit.id, audit.name, audit.partitions_count, audit.members_count,
                audit.members) == (1, "audit", 3, 0, [])
    # group ids are per topic
    [other] = await root.get_consumer_groups("s", "other")
    assert (other.id, other.name, other.partitions_count) == (0, "billing", 1)
    assert (await root.get_stats()).consumer_groups_count == 4

    assert await root.get_consumer_group("s", "t", "nope") is None
    assert await root.get_consumer_group("s", "t", 9) is None
    with pytest.raises(RuntimeError, match="^Consumer group with name: .*already exists"):
        await root.create_consumer_group("s", "t", "audit")
    with pytest.raises(RuntimeError, match="was not found"):
        await root.create_consumer_group("s", "nope", "g")

    await root.delete_consumer_group("s", "t", "audit")
    with pytest.raises(RuntimeError, match="^Consumer group with name: .*was not found"):
        await root.delete_consumer_group("s", "t", "audit")
    assert [g.name for g in await root.get_consumer_groups("s", "t")] == ["billing", "search"]
    await root.create_consumer_group("s", "t", "metrics")  # takes the free id
    assert (await root.get_consumer_group("s", "t", "metrics")).id == 1
    await root.delete_consumer_group("s", "t", 0)
    assert [(g.id, g.name) for g in await root.get_consumer_groups("s", "t")] == [
        (1, "metrics"), (2, "search")]

    # groups go with their topic
    await root.delete_topic("s", "other")
    await root.create_topic("s", "other", 2)
    assert await root.get_consumer_groups("s", "other") == []


async def test_members_join_and_leave_by_hand(root: IggyClient,
                                              pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 5)
    await root.create_consumer_group("s", "t", "g")
    a, b = await connect(pyggy_server), await connect(pyggy_server)

    await a.join_consumer_group("s", "t", "g")
    await a.join_consumer_group("s", "t", 0)  # joining again changes nothing
    group = await root.get_consumer_group("s", "t", "g")
    _assert_split(group, 5, 1)
    [a_id] = _assignment(group)

    await b.join_consumer_group("s", "t", "g")
    group = await root.get_consumer_group("s", "t", "g")
    _assert_split(group, 5, 2)
    assignment = _assignment(group)
    assert a_id in assignment
    assert sorted(len(p) for p in assignment.values()) == [2, 3]
    assert [g.members_count for g in await root.get_consumer_groups("s", "t")] == [2]

    await b.leave_consumer_group("s", "t", "g")
    group = await root.get_consumer_group("s", "t", "g")
    assert _assignment(group) == {a_id: [0, 1, 2, 3, 4]}
    with pytest.raises(RuntimeError, match="^Consumer group member .* was not found"):
        await b.leave_consumer_group("s", "t", "g")
    with pytest.raises(RuntimeError, match="^Consumer group with name: .*was not found"):
        await b.join_consumer_group("s", "t", "nope")

    await a.leave_consumer_group("s", "t", 0)
    group = await root.get_consumer_group("s", "t", "g")
    assert (group.members_count, group.members) == (0, [])


async def test_two_members_split_the_partitions_and_a_leaver_hands_them_over(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 4)
    for p in range(4):
        await root.send_messages("s", "t", p, [SendMessage(f"p{p}-m{i}") for i in range(3)])
    client_a, client_b = await connect(pyggy_server), await connect(pyggy_server)
    a = await _member(client_a)
    b = await _member(client_b)
    assert (a.name(), a.stream(), a.topic()) == ("g", "s", "t")

    group = await root.get_consumer_group("s", "t", "g")
    _assert_split(group, 4, 2)
    got_a, got_b = await take(a, 6), await take(b, 6)
    parts_a = {m.partition_id() for m in got_a}
    parts_b = {m.partition_id() for m in got_b}
    assert parts_a.isdisjoint(parts_b) and parts_a | parts_b == {0, 1, 2, 3}
    assert sorted(parts_a) in [sorted(p) for p in _assignment(group).values()]
    everything = sorted(m.payload() for m in got_a + got_b)
    assert everything == sorted(f"p{p}-m{i}".encode() for p in range(4) for i in range(3))
    for m in got_a + got_b:
        assert m.payload() == f"p{m.partition_id()}-m{m.offset()}".encode()

    # b leaves: a owns everything and continues where b's commits left off
    await client_b.leave_consumer_group("s", "t", "g")
    del b, client_b  # gone for good: an idle consumer with auto-join could rejoin later
    gc.collect()
    group = await root.get_consumer_group("s", "t", "g")
    _assert_split(group, 4, 1)
    for p in range(4):
        await root.send_messages("s", "t", p, [SendMessage(f"p{p}-m3")])
    more = await take(a, 4)
    assert sorted((m.partition_id(), m.offset()) for m in more) == [(p, 3) for p in range(4)]


async def test_a_disconnected_member_is_removed_from_its_groups(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 2)
    stays = await connect(pyggy_server)
    await stays.join_consumer_group("s", "t", await _created(root, "g"))
    goes = await connect(pyggy_server)
    member = await _member(goes)
    _assert_split(await root.get_consumer_group("s", "t", "g"), 2, 2)

    del member, goes  # the SDK closes the connection when the client is dropped
    gc.collect()

    async def alone() -> ConsumerGroupDetails | None:
        group = await root.get_consumer_group("s", "t", "g")
        return group if group.members_count == 1 else None

    group = await wait_until(alone, what="the disconnected member to be removed")
    assert [sorted(m.partitions) for m in group.members] == [[0, 1]]


async def _created(root: IggyClient, name: str) -> int:
    await root.create_consumer_group("s", "t", name)
    return (await root.get_consumer_group("s", "t", name)).id


async def test_partition_changes_rebalance_the_members(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 2)
    await root.create_consumer_group("s", "t", "g")
    a, b = await connect(pyggy_server), await connect(pyggy_server)
    await a.join_consumer_group("s", "t", "g")
    await b.join_consumer_group("s", "t", "g")
    _assert_split(await root.get_consumer_group("s", "t", "g"), 2, 2)

    await root.create_partitions("s", "t", 4)
    group = await root.get_consumer_group("s", "t", "g")
    assert group.partitions_count == 6
    _assert_split(group, 6, 2)
    assert sorted(len(p) for p in _assignment(group).values()) == [3, 3]

    await root.delete_partitions("s", "t", 5)
    group = await root.get_consumer_group("s", "t", "g")
    assert group.partitions_count == 1
    assert sorted(p for m in group.members for p in m.partitions) == [0]
    assert group.members_count == 2  # one member is idle until partitions come back


async def test_the_high_level_consumer_creates_or_requires_its_group(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 1)
    with pytest.raises(RuntimeError, match="not found"):
        await root.consumer_group("missing", "s", "t", create_consumer_group_if_not_exists=False)
    assert await root.get_consumer_groups("s", "t") == []

    client = await connect(pyggy_server)
    member = await _member(client, "created-on-demand")
    group = await root.get_consumer_group("s", "t", "created-on-demand")
    assert (group.id, group.members_count) == (0, 1)
    await root.send_messages("s", "t", 0, [SendMessage("hello")])
    [message] = await take(member, 1)
    assert (message.payload(), message.partition_id(), member.partition_id()) == (
        b"hello", 0, 0)

    # without auto-join, the consumer is not a member until it joins by hand
    idle = await root.consumer_group("created-on-demand", "s", "t",
                                     auto_join_consumer_group=False)
    assert idle.name() == "created-on-demand"
    assert (await root.get_consumer_group("s", "t", 0)).members_count == 1


async def test_group_polls_are_fenced_by_partition_ownership(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 2)
    for p in range(2):
        await root.send_messages("s", "t", p, [SendMessage(f"p{p}")])
    await root.create_consumer_group("s", "t", "g")
    a, b = await connect(pyggy_server), await connect(pyggy_server)
    await a.join_consumer_group("s", "t", "g")
    await b.join_consumer_group("s", "t", "g")
    group = await root.get_consumer_group("s", "t", "g")
    _assert_split(group, 2, 2)
    [(_, first_parts), (_, second_parts)] = sorted(_assignment(group).items())
    mine, theirs = first_parts[0], second_parts[0]  # a connected (and joined) first: lower id

    async def group_poll(client: IggyClient, partition_id: int | None) -> list[bytes]:
        got = await client.poll_messages("s", "t", consumer=Consumer.Group("g"),
                                         polling_strategy=PollingStrategy.First(), count=10,
                                         auto_commit=False, partition_id=partition_id)
        return [m.payload() for m in got]

    assert await group_poll(a, mine) == [f"p{mine}".encode()]
    assert await group_poll(a, None) == [f"p{mine}".encode()]  # the SDK picks an owned one
    fenced = "^Consumer group member .* does not own partition"
    with pytest.raises(RuntimeError, match=fenced):
        await group_poll(a, theirs)
    with pytest.raises(RuntimeError, match=fenced):  # a non-member owns nothing
        await group_poll(root, mine)
    with pytest.raises(RuntimeError, match="^Consumer group member .* was not found"):
        await group_poll(root, None)
    assert await group_poll(b, theirs) == [f"p{theirs}".encode()]
