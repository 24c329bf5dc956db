"""Consumer offsets and consumer groups (Iggy's; no join/leave over HTTP, as in Iggy)."""

from __future__ import annotations

from pyggy.core import permissions as perm
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import Topic
from pyggy.core.offsets import CONSUMER
from pyggy.http_api import views
from pyggy.http_api.context import Call
from pyggy.http_api.handlers import Answer, Created
from pyggy.http_api.handlers.messages import consumer_id
from pyggy.http_api.handlers.streams import topic_of
from pyggy.lag import iggy_lags, kafka_lags, kafka_members


def _polled_topic(c: Call) -> Topic:
    t = topic_of(c)
    perm.ensure(perm.poll_messages(c.user, t.stream_id, t.id))
    return t


async def get_offset(c: Call) -> Answer:
    t = _polled_topic(c)
    q = c.query
    partition_id = q.integer("partition_id", 0, hi=0xFFFF_FFFF)
    found = await c.engine.consumers.get_offset_async(CONSUMER, consumer_id(q), t.stream_id,
                                                      t.id, partition_id)
    if found is None:
        raise IggyError(ErrorCode.CONSUMER_OFFSET_NOT_FOUND, "no stored offset")
    pid, current, stored = found
    return {"partition_id": pid, "current_offset": current, "stored_offset": stored}


async def store_offset(c: Call) -> Answer:
    t = _polled_topic(c)
    b = await c.body()
    partition_id = b.integer("partition_id", 0, hi=0xFFFF_FFFF)
    offset = b.integer("offset")
    await c.engine.consumers.store_offset(CONSUMER, consumer_id(b), t.stream_id, t.id,
                                          partition_id, offset)
    return None


async def delete_offset(c: Call) -> Answer:
    t = _polled_topic(c)
    consumer = c.ident("consumer_id")
    partition_id = c.query.integer("partition_id", 0, hi=0xFFFF_FFFF)
    await c.engine.consumers.delete_offset(CONSUMER, consumer, t.stream_id, t.id, partition_id)
    return None


def _group_topic(c: Call) -> Topic:
    """read_topic, as the TCP door (native_wire/handlers/groups.py)."""
    t = topic_of(c)
    perm.ensure(perm.read_topic(c.user, t.stream_id, t.id))
    return t


async def get_groups(c: Call) -> Answer:
    t = _group_topic(c)
    return [views.group(g, len(t.partitions))
            for g in c.engine.consumers.groups(t.stream_id, t.id)]


async def get_group(c: Call) -> Answer:
    t = _group_topic(c)
    g = c.engine.consumers.group(t.stream_id, t.id, c.ident("group_id"))
    return views.group(g, len(t.partitions), details=True)


async def create_group(c: Call) -> Answer:
    t = _group_topic(c)
    b = await c.body()
    g = await c.engine.consumers.create_group(t.stream_id, t.id, b.name())
    return Created(views.group(g, len(t.partitions), details=True))


async def delete_group(c: Call) -> Answer:
    t = _group_topic(c)
    await c.engine.consumers.delete_group(t.stream_id, t.id, c.ident("group_id"))
    return None


async def get_lag(c: Call) -> Answer:
    """pyggy's own (the console's): every consumer of the topic on both doors, per partition,
    with its next offset, the log end and the lag; group members where there are any."""
    t = _group_topic(c)
    kafka = c.server.kafka
    rows = [*iggy_lags(c.engine, t), *kafka_lags(c.engine, kafka, t)]
    members: dict[tuple[str, str], list] = {}
    for g in t.groups.values():
        members[("iggy", g.name)] = [{"member_id": str(m.id), "partitions": list(m.partitions)}
                                     for m in g.members.values()]
    for x in rows:
        if x.door == "kafka" and ("kafka", x.group) not in members:
            members[("kafka", x.group)] = kafka_members(kafka, x.group)
    return [{"door": x.door, "group": x.group, "kind": x.kind, "partition": x.partition,
             "next_offset": x.next_offset, "end_offset": x.end_offset, "lag": x.lag,
             "members": members.get((x.door, x.group), [])} for x in rows]
