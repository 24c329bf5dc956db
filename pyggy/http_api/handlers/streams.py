"""Streams, topics, partitions and segments."""

from __future__ import annotations

import struct

from pyggy.core import permissions as perm
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import Topic
from pyggy.core.options import UINT8, UINT64
from pyggy.core.records import user_headers as uh
from pyggy.http_api import views
from pyggy.http_api.body import Fields
from pyggy.http_api.context import Call
from pyggy.http_api.errors import FieldError
from pyggy.http_api.handlers import Answer, Created

_U64 = struct.Struct("<Q")
MAX_OPTIONS = 64
MAX_PARTITIONS_PER_REQUEST = 1000  # Iggy's MAX_PARTITIONS_PER_REQUEST


def _options(b: Fields) -> list[tuple[str, int, bytes]]:
    """Iggy's fixed topic fields and its `options` object (key → string, integer or bool) as
    the engine's option entries."""
    out: list[tuple[str, int, bytes]] = []
    algorithm = b.choice("compression_algorithm", {"none": 1, "gzip": 2}, None)
    if algorithm == 2:
        out.append(("compression_algorithm", UINT8, bytes((2,))))
    for key in ("message_expiry", "max_topic_size"):
        value = b.integer(key, 0)
        if value:
            out.append((key, UINT64, _U64.pack(value)))
    extra = b.obj("options", None)
    if extra is not None:
        if len(extra.data) > MAX_OPTIONS:
            raise FieldError("options", f"at most {MAX_OPTIONS} options")
        for key, value in extra.data.items():
            if isinstance(value, bool):
                out.append((key, uh.BOOL, bytes((value,))))
            elif isinstance(value, int) and 0 <= value < 1 << 64:
                out.append((key, UINT64, _U64.pack(value)))
            elif isinstance(value, str) and 0 < len(value.encode()) <= 255:
                out.append((key, uh.STRING, value.encode()))
            else:
                raise FieldError("options", f"{key}: expected a string, u64 or bool")
    return out


# -- streams -----------------------------------------------------------------------------------
async def get_streams(c: Call) -> Answer:
    perm.ensure(perm.read_streams(c.user))
    await c.engine.data.refresh_stats()  # sizes of other shards' partitions (pyggy/shards)
    return [views.stream(s) for s in c.engine.metadata.streams()]


async def get_stream(c: Call) -> Answer:
    s = c.engine.metadata.stream(c.ident("stream_id"))
    perm.ensure(perm.read_stream(c.user, s.id))
    await c.engine.data.refresh_stats()
    return views.stream(s, details=True)


async def create_stream(c: Call) -> Answer:
    perm.ensure(perm.create_stream(c.user))
    b = await c.body()
    return Created(views.stream(await c.engine.metadata.create_stream(b.name()), details=True))


async def update_stream(c: Call) -> Answer:
    s = c.engine.metadata.stream(c.ident("stream_id"))
    perm.ensure(perm.manage_stream(c.user, s.id))
    b = await c.body()
    await c.engine.metadata.update_stream(s.id, b.name())
    return None


async def delete_stream(c: Call) -> Answer:
    s = c.engine.metadata.stream(c.ident("stream_id"))
    perm.ensure(perm.manage_stream(c.user, s.id))
    await c.engine.metadata.delete_stream(s.id)
    return None


async def purge_stream(c: Call) -> Answer:
    s = c.engine.metadata.stream(c.ident("stream_id"))
    perm.ensure(perm.manage_stream(c.user, s.id))
    await c.engine.metadata.purge_stream(s.id)
    return None


# -- topics ------------------------------------------------------------------------------------
def topic_of(c: Call) -> Topic:
    return c.engine.metadata.topic(c.ident("stream_id"), c.ident("topic_id"))


def managed_topic(c: Call) -> Topic:
    t = topic_of(c)
    perm.ensure(perm.manage_topic(c.user, t.stream_id, t.id))
    return t


async def get_topics(c: Call) -> Answer:
    s = c.engine.metadata.stream(c.ident("stream_id"))
    perm.ensure(perm.read_stream(c.user, s.id))
    await c.engine.data.refresh_stats()
    return [views.topic(t) for t in c.engine.metadata.topics(s.id)]


async def get_topic(c: Call) -> Answer:
    t = topic_of(c)
    perm.ensure(perm.read_topic(c.user, t.stream_id, t.id))
    await c.engine.data.refresh_stats(t)
    return views.topic(t, details=True)


async def create_topic(c: Call) -> Answer:
    s = c.engine.metadata.stream(c.ident("stream_id"))
    perm.ensure(perm.create_topic(c.user, s.id))
    b = await c.body()
    count = b.integer("partitions_count", 1, hi=MAX_PARTITIONS_PER_REQUEST)
    t = await c.engine.metadata.create_topic(s.id, b.name(), count, _options(b))
    return Created(views.topic(t, details=True))


async def update_topic(c: Call) -> Answer:
    t = managed_topic(c)
    b = await c.body()
    await c.engine.metadata.update_topic(t.stream_id, t.id, b.name(), _options(b))
    return None


async def delete_topic(c: Call) -> Answer:
    t = managed_topic(c)
    await c.engine.metadata.delete_topic(t.stream_id, t.id)
    return None


async def purge_topic(c: Call) -> Answer:
    t = managed_topic(c)
    await c.engine.metadata.purge_topic(t.stream_id, t.id)
    return None


# -- partitions and segments -------------------------------------------------------------------
async def create_partitions(c: Call) -> Answer:
    t = managed_topic(c)
    b = await c.body()
    count = b.integer("partitions_count", lo=1, hi=MAX_PARTITIONS_PER_REQUEST)
    await c.engine.metadata.create_partitions(t.stream_id, t.id, count)
    return Created(None)


async def delete_partitions(c: Call) -> Answer:
    t = managed_topic(c)
    count = c.query.integer("partitions_count", lo=1, hi=MAX_PARTITIONS_PER_REQUEST)
    await c.engine.metadata.delete_partitions(t.stream_id, t.id, count)
    return None


async def delete_segments(c: Call) -> Answer:
    t = managed_topic(c)
    partition_id = c.number("partition_id")
    count = c.query.integer("segments_count", lo=1, hi=0xFFFF_FFFF)
    await c.engine.metadata.delete_segments(t.stream_id, t.id, partition_id, count)
    return None


async def get_segments(c: Call) -> Answer:
    """pyggy's own (the console's): a partition's segments with their tier."""
    t = topic_of(c)
    perm.ensure(perm.read_topic(c.user, t.stream_id, t.id))
    p = c.engine.metadata.partition(t, c.number("partition_id"))
    segments = c.engine.data.segments(t, p.id)
    if segments is None:
        raise IggyError(ErrorCode.PARTITION_NOT_FOUND, "partition not found")
    return segments
