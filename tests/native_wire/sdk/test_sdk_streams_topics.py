"""Streams, topics and partitions with the apache-iggy 0.9.0 SDK: 0-based ids recycled after
delete, names, counts, every topic option the SDK accepts, updates as patches, purges."""

from __future__ import annotations

from datetime import timedelta

import pytest
from apache_iggy import (
    Durability,
    HeaderKey,
    HeaderValue,
    IggyClient,
    IggyExpiry,
    MaxTopicSize,
    SendMessage,
)
from sdk_support import now_us, payloads, poll

pytestmark = pytest.mark.asyncio

NEVER = 2**64 - 1
SEVEN_DAYS_US = 7 * 24 * 3600 * 1_000_000


async def test_streams_are_created_listed_renamed_purged_and_deleted(root: IggyClient) -> None:
    before = now_us()
    for name in ("orders", "payments", "audit"):
        await root.create_stream(name)
    streams = await root.get_streams()
    assert [(s.id, s.name, s.topics_count, s.messages_count, s.size) for s in streams] == [
        (0, "orders", 0, 0, 0), (1, "payments", 0, 0, 0), (2, "audit", 0, 0, 0)]
    assert all(before <= s.created_at <= now_us() for s in streams)
    assert [s.created_at for s in streams] == sorted(s.created_at for s in streams)

    details = await root.get_stream("payments")
    assert (details.id, details.name, details.topics_count, details.topics) == (
        1, "payments", 0, [])
    assert (await root.get_stream(1)).name == "payments"
    assert await root.get_stream("nope") is None
    assert await root.get_stream(99) is None

    # rename (to the same name too: a no-op that succeeds)
    await root.update_stream("payments", "billing")
    await root.update_stream(1, "billing")
    assert (await root.get_stream(1)).name == "billing"
    assert await root.get_stream("payments") is None

    # a stream's topics show up in its details; counters follow the messages
    await root.create_topic("orders", "created", 2)
    await root.create_topic("orders", "shipped", 1)
    await root.send_messages("orders", "created", 0, [SendMessage(b"a" * 10), SendMessage("b")])
    await root.send_messages("orders", "shipped", 0, [SendMessage("c")])
    orders = await root.get_stream("orders")
    assert orders.topics_count == 2
    assert [(t.id, t.name, t.partitions_count, t.messages_count) for t in orders.topics] == [
        (0, "created", 2, 2), (1, "shipped", 1, 1)]
    assert orders.messages_count == 3
    assert orders.size == sum(t.size for t in orders.topics) > 0
    listed = {s.name: s for s in await root.get_streams()}
    assert (listed["orders"].messages_count, listed["orders"].topics_count) == (3, 2)
    assert listed["orders"].size == orders.size

    # purge removes every message but keeps the topics and partitions
    await root.purge_stream("orders")
    await root.purge_stream("orders")  # purging an empty stream succeeds
    orders = await root.get_stream(0)
    assert (orders.messages_count, orders.size, orders.topics_count) == (0, 0, 2)
    assert await poll(root, "orders", "created") == []
    await root.send_messages("orders", "created", 0, [SendMessage("after purge")])
    [msg] = await poll(root, "orders", "created")
    assert (msg.offset(), msg.payload()) == (0, b"after purge")

    # delete: the id is free again and the next stream takes it
    await root.delete_stream("billing")
    assert [(s.id, s.name) for s in await root.get_streams()] == [(0, "orders"), (2, "audit")]
    await root.create_stream("refunds")
    assert (await root.get_stream("refunds")).id == 1
    await root.delete_stream(0)
    assert await root.get_stream("orders") is None
    assert [(s.id, s.name) for s in await root.get_streams()] == [(1, "refunds"), (2, "audit")]


async def test_stream_errors(root: IggyClient) -> None:
    await root.create_stream("a")
    await root.create_stream("b")
    with pytest.raises(RuntimeError, match="^Stream with name: .*already exists"):
        await root.create_stream("a")
    with pytest.raises(RuntimeError, match="already exists"):
        await root.update_stream("b", "a")
    with pytest.raises(RuntimeError, match="was not found"):
        await root.update_stream("zz", "c")
    with pytest.raises(RuntimeError, match="was not found"):
        await root.delete_stream(9)
    with pytest.raises(RuntimeError, match="was not found"):
        await root.purge_stream("zz")
    with pytest.raises(RuntimeError, match="^Unsupported option key"):
        await root.update_stream("a", "a", options={"retention": "1d"})
    assert [s.name for s in await root.get_streams()] == ["a", "b"]


async def test_a_topic_created_with_every_option_reports_them(root: IggyClient) -> None:
    await root.create_stream("s")
    before = now_us()
    await root.create_topic(
        "s", "events", 3,
        compression_algorithm="gzip",
        message_expiry=IggyExpiry.ExpireDuration(timedelta(days=7)),
        max_topic_size=MaxTopicSize.Custom(1 << 30),
        segment_size=64 << 20,
        durability=Durability.PERSISTED,
        consumer_offset_durability=Durability.REPLICATED,
        messages_required_to_save=10,
        size_of_messages_required_to_save=4096,
        preallocate_segments=True,
        options={"enforce_fsync": "true", "local_retention_bytes": "512 MiB",
                 "local_retention_segments": "3"},
    )
    t = await root.get_topic("s", "events")
    assert (t.id, t.name, t.partitions_count, t.messages_count, t.size) == (
        0, "events", 3, 0, 0)
    assert before <= t.created_at <= now_us()
    assert t.compression_algorithm == "gzip"
    assert isinstance(t.message_expiry, IggyExpiry.ExpireDuration)
    assert t.message_expiry.duration == timedelta(days=7)
    assert isinstance(t.max_topic_size, MaxTopicSize.Custom)
    assert t.max_topic_size.bytes == 1 << 30
    # What the client set explicitly, with the kinds the SDK sent ...
    assert t.options.to_scalar_dict() == {
        "compression_algorithm": "gzip",
        "consumer_offset_durability": "replicated",
        "durability": "persisted",
        "enforce_fsync": True,  # sent as the text "true", stored in its canonical kind
        "local_retention_bytes": 512 << 20,
        "local_retention_segments": 3,
        "max_topic_size": 1 << 30,
        "message_expiry": SEVEN_DAYS_US,
        "messages_required_to_save": 10,
        "preallocate_segments": True,
        "segment_size": 64 << 20,
        "size_of_messages_required_to_save": 4096,
    }
    assert t.options[HeaderKey.String("enforce_fsync")] == HeaderValue.Bool(True)
    assert t.options[HeaderKey.String("segment_size")] == HeaderValue.UnsignedInt64(64 << 20)
    assert t.options[HeaderKey.String("messages_required_to_save")] == \
        HeaderValue.UnsignedInt32(10)
    # ... and nothing left for admission to derive.
    assert t.derived_options.to_scalar_dict() == {}
    assert [(p.id, p.messages_count, p.current_offset, p.size, p.segments_count)
            for p in t.partitions] == [(0, 0, 0, 0, 1), (1, 0, 0, 0, 1), (2, 0, 0, 0, 1)]
    assert all(before <= p.created_at <= now_us() for p in t.partitions)

    # the same topic as an element of get_topics and of get_stream
    [listed] = await root.get_topics("s")
    assert (listed.id, listed.name, listed.partitions_count, listed.created_at) == (
        0, "events", 3, t.created_at)
    assert listed.options == t.options and listed.derived_options == t.derived_options
    [in_stream] = (await root.get_stream("s")).topics
    assert (in_stream.name, in_stream.compression_algorithm) == ("events", "gzip")


async def test_a_topic_with_defaults_derives_the_rest(root: IggyClient) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "plain", 1)
    await root.create_topic("s", "explicit-never", 1, message_expiry=IggyExpiry.NeverExpire(),
                            max_topic_size=MaxTopicSize.Unlimited())
    await root.create_topic("s", "server-default", 1, message_expiry=IggyExpiry.ServerDefault(),
                            max_topic_size=MaxTopicSize.ServerDefault())
    for name in ("plain", "explicit-never", "server-default"):
        t = await root.get_topic("s", name)
        assert isinstance(t.message_expiry, IggyExpiry.NeverExpire), name
        assert isinstance(t.max_topic_size, MaxTopicSize.Unlimited), name
        assert t.compression_algorithm == "none"
    plain = await root.get_topic("s", "plain")
    # the 0.9.0 SDK always sends both durabilities; everything else is derived
    assert plain.options.to_scalar_dict() == {
        "consumer_offset_durability": "replicated", "durability": "replicated"}
    assert plain.derived_options.to_scalar_dict() == {
        "compression_algorithm": "none",
        "enforce_fsync": False,
        "local_retention_bytes": NEVER,
        "local_retention_segments": 0,
        "max_topic_size": NEVER,
        "message_expiry": NEVER,
        "messages_required_to_save": 1024,
        "preallocate_segments": False,
        "segment_size": 1 << 30,
        "size_of_messages_required_to_save": 1 << 20,
    }
    never = await root.get_topic("s", "explicit-never")
    assert never.options.to_scalar_dict()["message_expiry"] == NEVER
    assert "message_expiry" not in never.derived_options.to_scalar_dict()
    # option values may also be given as text
    await root.create_topic("s", "text", 1, options={"segment_size": "2 MiB",
                                                     "message_expiry": "1h"})
    text = await root.get_topic("s", "text")
    assert text.message_expiry.duration == timedelta(hours=1)
    # create admission stores its parse in the catalog's kind (OptionSpec.kind)
    assert text.options[HeaderKey.String("segment_size")] == HeaderValue.UnsignedInt64(2 << 20)
    assert text.options[HeaderKey.String("message_expiry")] == \
        HeaderValue.UnsignedInt64(3600 * 1_000_000)
    assert [(t.id, t.name) for t in await root.get_topics("s")] == [
        (0, "plain"), (1, "explicit-never"), (2, "server-default"), (3, "text")]


async def test_topic_updates_are_patches(root: IggyClient) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 1, segment_size=2 << 20)
    await root.update_topic("s", "t", "t2", compression_algorithm="gzip",
                            message_expiry=IggyExpiry.ExpireDuration(timedelta(hours=1)),
                            max_topic_size=MaxTopicSize.Custom(10_000_000))
    t = await root.get_topic("s", 0)
    assert (t.name, t.compression_algorithm) == ("t2", "gzip")
    assert t.message_expiry.duration == timedelta(hours=1)
    assert t.max_topic_size.bytes == 10_000_000
    assert t.options.to_scalar_dict()["segment_size"] == 2 << 20

    # a rename alone keeps every setting
    await root.update_topic("s", "t2", "t3")
    t = await root.get_topic("s", "t3")
    assert (t.id, t.compression_algorithm, t.max_topic_size.bytes) == (0, "gzip", 10_000_000)
    assert t.message_expiry.duration == timedelta(hours=1)
    assert await root.get_topic("s", "t2") is None

    # only compression, expiry and max size are updatable
    with pytest.raises(RuntimeError, match="^Unsupported option key"):
        await root.update_topic("s", "t3", "t3", options={"segment_size": "4 MiB"})
    await root.update_topic("s", "t3", "t3", options={"max_topic_size": "20 MB"})
    t = await root.get_topic("s", 0)
    assert t.max_topic_size.bytes == 20_000_000
    # an update keeps the value as the client sent it (the SDK's OptionSpec.kind note)
    assert t.options[HeaderKey.String("max_topic_size")] == HeaderValue.String("20 MB")


async def test_topic_errors(root: IggyClient) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 1)
    with pytest.raises(RuntimeError, match="^Topic with name: .*already exists"):
        await root.create_topic("s", "t", 2)
    with pytest.raises(RuntimeError, match="^Unsupported option key"):
        await root.create_topic("s", "u", 1, options={"bogus": "1"})
    with pytest.raises(RuntimeError, match="^Invalid option value"):
        await root.create_topic("s", "u", 1, segment_size=1000)
    with pytest.raises(RuntimeError, match="^Stream with name: .*was not found"):
        await root.create_topic("nope", "u", 1)
    with pytest.raises(RuntimeError, match="was not found"):
        await root.get_topics("nope")
    with pytest.raises(RuntimeError, match="was not found"):
        await root.update_topic("s", "nope", "x")
    with pytest.raises(RuntimeError, match="was not found"):
        await root.delete_topic("s", 5)
    with pytest.raises(RuntimeError, match="was not found"):
        await root.purge_topic("s", "nope")
    assert await root.get_topic("s", "nope") is None
    assert await root.get_topic("nope", "t") is None
    assert [t.name for t in await root.get_topics("s")] == ["t"]


async def test_topics_are_purged_deleted_and_their_ids_recycled(root: IggyClient) -> None:
    await root.create_stream("s")
    for name in ("a", "b", "c"):
        await root.create_topic("s", name, 2)
    await root.send_messages("s", "b", 1, [SendMessage(f"m{i}") for i in range(5)])
    b = await root.get_topic("s", "b")
    assert (b.messages_count, b.partitions[1].messages_count, b.partitions[1].current_offset) \
        == (5, 5, 4)
    assert b.size == b.partitions[1].size > 0

    await root.purge_topic("s", "b")
    b = await root.get_topic("s", 1)
    assert (b.messages_count, b.size, b.partitions_count) == (0, 0, 2)
    assert [(p.messages_count, p.current_offset) for p in b.partitions] == [(0, 0), (0, 0)]
    assert await poll(root, "s", "b", partition_id=1) == []
    await root.send_messages("s", "b", 1, [SendMessage("fresh")])
    assert payloads(await poll(root, "s", "b", partition_id=1)) == [b"fresh"]

    await root.delete_topic("s", "b")
    assert [(t.id, t.name) for t in await root.get_topics("s")] == [(0, "a"), (2, "c")]
    assert (await root.get_stream("s")).topics_count == 2
    await root.create_topic("s", "d", 1)
    d = await root.get_topic("s", "d")
    assert (d.id, d.messages_count) == (1, 0)  # the recycled id starts empty
    assert await poll(root, "s", 1) == []


async def test_partitions_are_added_at_the_end_and_removed_from_the_end(
        root: IggyClient) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 2)
    await root.create_partitions("s", "t", 3)
    t = await root.get_topic("s", "t")
    assert t.partitions_count == 5
    assert [p.id for p in t.partitions] == [0, 1, 2, 3, 4]

    await root.send_messages("s", "t", 4, [SendMessage("on 4")])
    await root.send_messages("s", "t", 1, [SendMessage("on 1")])
    await root.delete_partitions("s", "t", 2)  # drops partitions 3 and 4, with their messages
    t = await root.get_topic("s", "t")
    assert [p.id for p in t.partitions] == [0, 1, 2]
    assert t.messages_count == 1
    with pytest.raises(RuntimeError, match="^Partition with ID: .*was not found"):
        await root.send_messages("s", "t", 4, [SendMessage("x")])

    # re-created partitions continue the numbering, empty
    await root.create_partitions("s", 0, 2)
    t = await root.get_topic("s", 0)
    assert [(p.id, p.messages_count) for p in t.partitions] == [
        (0, 0), (1, 1), (2, 0), (3, 0), (4, 0)]
    assert await poll(root, "s", "t", partition_id=4) == []

    with pytest.raises(RuntimeError, match="^Invalid partitions count$"):
        await root.delete_partitions("s", "t", 6)
    with pytest.raises(RuntimeError, match="was not found"):
        await root.create_partitions("s", "nope", 1)
    assert (await root.get_topic("s", "t")).partitions_count == 5
