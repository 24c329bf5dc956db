"""Streams: get, list, create, update, delete, purge."""

from __future__ import annotations

from pyggy.core import permissions as perm
from pyggy.core.engine.cluster import read_fence
from pyggy.core.model import Stream
from pyggy.native_wire.codec import primitives as p
from pyggy.native_wire.codec import responses as rsp
from pyggy.native_wire.codec.reader import Reader
from pyggy.native_wire.context import Context


def _details(ctx: Context, stream: Stream) -> bytes:
    if ctx.classic:
        return rsp.encode_stream_details_classic(stream)
    return rsp.encode_stream_details(stream)


async def get_stream(ctx: Context, r: Reader) -> bytes:
    ident = p.decode_identifier(r)
    r.done()
    await read_fence(ctx.engine.cluster)  # a cluster node behind on metadata catches up first
    s = ctx.engine.metadata.get_stream(ident)
    if s is None:
        return b""
    perm.ensure(perm.read_stream(ctx.user, s.id))
    await ctx.engine.data.refresh_stats()  # sizes of other shards' partitions (pyggy/shards)
    return _details(ctx, s)


async def get_streams(ctx: Context, r: Reader) -> bytes:
    r.done()
    await read_fence(ctx.engine.cluster)
    perm.ensure(perm.read_streams(ctx.user))  # as Iggy: per-stream rights do not list all
    await ctx.engine.data.refresh_stats()
    streams = ctx.engine.metadata.streams()
    if ctx.classic:
        return rsp.encode_streams_classic(streams)
    return rsp.encode_streams(streams)


async def create_stream(ctx: Context, r: Reader) -> bytes:
    perm.ensure(perm.create_stream(ctx.user))
    if ctx.classic:
        name = r.name()
        r.done()
        return _details(ctx, await ctx.engine.metadata.create_stream(name))
    name = r.name()
    options = p.decode_options(r.rest())
    return _details(ctx, await ctx.engine.metadata.create_stream(name, options))


async def update_stream(ctx: Context, r: Reader) -> bytes:
    s = ctx.engine.metadata.stream(p.decode_identifier(r))
    perm.ensure(perm.manage_stream(ctx.user, s.id))
    name = r.name()
    options = [] if ctx.classic else p.decode_options(r.rest())
    r.done()
    await ctx.engine.metadata.update_stream(s.id, name, options)
    return b""


async def delete_stream(ctx: Context, r: Reader) -> bytes:
    s = ctx.engine.metadata.stream(p.decode_identifier(r))
    r.done()
    perm.ensure(perm.manage_stream(ctx.user, s.id))
    await ctx.engine.metadata.delete_stream(s.id)
    return b""


async def purge_stream(ctx: Context, r: Reader) -> bytes:
    s = ctx.engine.metadata.stream(p.decode_identifier(r))
    r.done()
    perm.ensure(perm.manage_stream(ctx.user, s.id))
    await ctx.engine.metadata.purge_stream(s.id)
    return b""
