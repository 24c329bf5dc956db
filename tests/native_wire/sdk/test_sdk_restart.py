"""What the apache-iggy 0.9.0 SDK created survives a server restart: streams, topics with
their options, messages with headers, users with permissions and passwords, personal access
tokens, consumer groups and stored offsets (group members are sessions: they do not)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from apache_iggy import (
    GlobalPermissions,
    IggyClient,
    IggyExpiry,
    Permissions,
    PollingStrategy,
    SendMessage,
    StreamPermissions,
    UserStatus,
)
from sdk_support import (
    CONSUMER,
    CONSUMER_GROUP,
    connect,
    connect_with_token,
    create_pat,
    get_consumer_offset,
    list_pats,
    payloads,
    poll,
    take,
)

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.asyncio

PERMS = Permissions(GlobalPermissions(read_streams=True),
                    {0: StreamPermissions(send_messages=True)})


async def test_everything_created_through_the_sdk_survives_a_restart(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("keep")
    await root.create_stream("gone")
    await root.create_topic("keep", "events", 2, compression_algorithm="gzip",
                            message_expiry=IggyExpiry.ExpireDuration(timedelta(days=1)),
                            segment_size=2 << 20, options={"enforce_fsync": "true"})
    await root.delete_stream("gone")
    await root.send_messages("keep", "events", 1, [SendMessage("one", {"n": 1}, id=11),
                                                   SendMessage("two", {"n": 2}, id=12)])
    await root.create_user("ann", "ann-pw", UserStatus.Active, PERMS)
    ann = await connect(pyggy_server, "ann", "ann-pw")
    token = await create_pat(ann, "ann-token")
    await poll(root, "keep", "events", PollingStrategy.Next(), partition_id=1, count=1,
               auto_commit=True)
    member = await root.consumer_group("g", "keep", "events", batch_length=10,
                                       polling_strategy=PollingStrategy.Next())
    await take(member, 2)
    await member.store_offset(1, 1)
    before = {
        "topic": await root.get_topic("keep", "events"),
        "messages": await poll(root, "keep", "events", partition_id=1),
        "user": await root.get_user("ann"),
    }
    del member, ann

    pyggy_server.restart()

    client = await connect(pyggy_server)
    assert [(s.id, s.name) for s in await client.get_streams()] == [(0, "keep")]
    t = await client.get_topic("keep", "events")
    b = before["topic"]
    assert (t.id, t.name, t.created_at, t.partitions_count, t.messages_count, t.size) == (
        b.id, b.name, b.created_at, 2, 2, b.size)
    assert t.compression_algorithm == "gzip"
    assert t.message_expiry.duration == timedelta(days=1)
    assert t.options == b.options and t.derived_options == b.derived_options
    messages = await poll(client, "keep", "events", partition_id=1)
    assert payloads(messages) == [b"one", b"two"]
    assert [(m.id(), m.offset(), m.timestamp(), m.origin_timestamp(), m.checksum())
            for m in messages] == [
        (m.id(), m.offset(), m.timestamp(), m.origin_timestamp(), m.checksum())
        for m in before["messages"]]
    assert [m.user_headers().to_scalar_dict() for m in messages] == [{"n": 1}, {"n": 2}]
    # appends continue after the recovered offsets
    sent = await client.send_messages("keep", "events", 1, [SendMessage("three")])
    assert sent.confirmations[0].base_offset == 2

    ann_after = await client.get_user("ann")
    assert (ann_after.id, ann_after.created_at, ann_after.permissions) == (
        before["user"].id, before["user"].created_at, PERMS)
    ann = await connect(pyggy_server, "ann", "ann-pw")
    assert [name for name, _ in await list_pats(ann)] == ["ann-token"]
    await (await connect_with_token(pyggy_server, token)).ping()

    [group] = await client.get_consumer_groups("keep", "events")
    assert (group.id, group.name, group.members_count) == (0, "g", 0)
    assert await get_consumer_offset(client, CONSUMER_GROUP, "g", "keep", "events", 1) == (
        1, 2, 1)
    assert await get_consumer_offset(client, CONSUMER, "reader", "keep", "events", 1) == (
        1, 2, 0)
