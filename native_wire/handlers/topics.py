"""Topics, partitions and segments."""

from __future__ import annotations

import struct

from pyggy.core import permissions as perm
from pyggy.core.engine.cluster import read_fence
from pyggy.core.model import NEVER_EXPIRE, UNLIMITED_SIZE, Topic
from pyggy.core.options import UINT8, UINT64
from pyggy.native_wire.codec import primitives as p
from pyggy.native_wire.codec import responses as rsp
from pyggy.native_wire.codec.reader import Reader
from pyggy.native_wire.context import Context

_U64 = struct.Struct("<Q")


def _details(ctx: Context, topic: Topic) -> bytes:
    if ctx.classic:
        return rsp.encode_topic_details_classic(topic)
    return rsp.encode_topic_details(topic)


def _classic_options(r: Reader) -> list[tuple[str, int, bytes]]:
    """Classic fixed fields (compression, expiry, max size, replication factor) as options."""
    compression = r.u8()
    expiry = r.u64()
    max_size = r.u64()
    r.u8()  # replication factor: single node
    opts: list[tuple[str, int, bytes]] = []
    if compression:
        opts.append(("compression_algorithm", UINT8, bytes((compression,))))
    if expiry:
        opts.append(("message_expiry", UINT64, _U64.pack(expiry if expiry else NEVER_EXPIRE)))
    if max_size:
        opts.append(("max_topic_size", UINT64, _U64.pack(max_size or UNLIMITED_SIZE)))
    return opts


async def get_topic(ctx: Context, r: Reader) -> bytes:
    sid, tid = p.decode_identifier(r), p.decode_identifier(r)
    r.done()
    await read_fence(ctx.engine.cluster)  # a cluster node behind on metadata catches up first
    t = ctx.engine.metadata.get_topic(sid, tid) if ctx.engine.metadata.get_stream(sid) else None
    if t is None:
        return b""
    perm.ensure(perm.read_topic(ctx.user, t.stream_id, t.id))
    await ctx.engine.data.refresh_stats(t)  # sizes of other shards' partitions (pyggy/shards)
    return _details(ctx, t)


async def get_topics(ctx: Context, r: Reader) -> bytes:
    ident = p.decode_identifier(r)
    r.done()
    await read_fence(ctx.engine.cluster)
    s = ctx.engine.metadata.stream(ident)
    perm.ensure(perm.read_stream(ctx.user, s.id))
    await ctx.engine.data.refresh_stats()
    topics = ctx.engine.metadata.topics(s.id)
    return rsp.encode_topics_classic(topics) if ctx.classic else rsp.encode_topics(topics)


async def create_topic(ctx: Context, r: Reader) -> bytes:
    s = ctx.engine.metadata.stream(p.decode_identifier(r))
    perm.ensure(perm.create_topic(ctx.user, s.id))
    count = r.u32()
    if ctx.classic:
        options = _classic_options(r)
        name = r.name()
        r.done()
    else:
        name = r.name()
        options = p.decode_options(r.rest())
    return _details(ctx, await ctx.engine.metadata.create_topic(s.id, name, count, options))


def _managed_topic(ctx: Context, r: Reader) -> Topic:
    """The topic named by the request's stream and topic identifiers, if the user manages it."""
    t = ctx.engine.metadata.topic(p.decode_identifier(r), p.decode_identifier(r))
    perm.ensure(perm.manage_topic(ctx.user, t.stream_id, t.id))
    return t


async def update_topic(ctx: Context, r: Reader) -> bytes:
    t = _managed_topic(ctx, r)
    if ctx.classic:
        options = _classic_options(r)
        name = r.name()
        r.done()
    else:
        name = r.name()
        options = p.decode_options(r.rest())
    await ctx.engine.metadata.update_topic(t.stream_id, t.id, name, options)
    return b""


async def delete_topic(ctx: Context, r: Reader) -> bytes:
    t = _managed_topic(ctx, r)
    r.done()
    await ctx.engine.metadata.delete_topic(t.stream_id, t.id)
    return b""


async def purge_topic(ctx: Context, r: Reader) -> bytes:
    t = _managed_topic(ctx, r)
    r.done()
    await ctx.engine.metadata.purge_topic(t.stream_id, t.id)
    return b""


async def create_partitions(ctx: Context, r: Reader) -> bytes:
    t = _managed_topic(ctx, r)
    count = r.u32()
    r.done()
    await ctx.engine.metadata.create_partitions(t.stream_id, t.id, count)
    return b""


async def delete_partitions(ctx: Context, r: Reader) -> bytes:
    t = _managed_topic(ctx, r)
    count = r.u32()
    r.done()
    await ctx.engine.metadata.delete_partitions(t.stream_id, t.id, count)
    return b""


async def delete_segments(ctx: Context, r: Reader) -> bytes:
    t = _managed_topic(ctx, r)
    partition_id = r.u32()
    count = r.u32()
    r.done()
    await ctx.engine.metadata.delete_segments(t.stream_id, t.id, partition_id, count)
    return b""
