"""Iggy consumer groups: get, list, create, delete, join, leave, sync."""

from __future__ import annotations

from pyggy.core import permissions as perm
from pyggy.core.model import Identifier, Topic
from pyggy.native_wire.codec import primitives as p
from pyggy.native_wire.codec import responses as rsp
from pyggy.native_wire.codec.reader import Reader
from pyggy.native_wire.context import Context


def _topic(ctx: Context, r: Reader, sync: bool = False) -> Topic:
    """The topic, if the user may manage its consumer groups: read_topic, as in Iggy (the
    SDK's permission docs: reading a topic includes managing its groups; polling does not).
    SYNC only reports the caller's own assignment, so poll_messages is enough for it."""
    t = ctx.engine.metadata.topic(p.decode_identifier(r), p.decode_identifier(r))
    allowed = perm.read_topic(ctx.user, t.stream_id, t.id) or (
        sync and perm.poll_messages(ctx.user, t.stream_id, t.id))
    perm.ensure(allowed)
    return t


def _group(ctx: Context, r: Reader, sync: bool = False) -> tuple[Topic, Identifier]:
    """(topic, group identifier) of a request that names stream, topic and group."""
    t = _topic(ctx, r, sync)
    ident = p.decode_identifier(r)
    r.done()
    return t, ident


def get_group(ctx: Context, r: Reader) -> bytes:
    t = _topic(ctx, r)
    g = ctx.engine.consumers.get_group(t.stream_id, t.id, p.decode_identifier(r))
    r.done()
    return b"" if g is None else rsp.encode_consumer_group_details(g, len(t.partitions))


def get_groups(ctx: Context, r: Reader) -> bytes:
    t = _topic(ctx, r)
    r.done()
    return rsp.encode_consumer_groups(ctx.engine.consumers.groups(t.stream_id, t.id),
                                      len(t.partitions))


async def create_group(ctx: Context, r: Reader) -> bytes:
    t = _topic(ctx, r)
    name = r.name()
    r.done()
    g = await ctx.engine.consumers.create_group(t.stream_id, t.id, name)
    return rsp.encode_consumer_group_details(g, len(t.partitions))


async def delete_group(ctx: Context, r: Reader) -> bytes:
    t, ident = _group(ctx, r)
    await ctx.engine.consumers.delete_group(t.stream_id, t.id, ident)
    return b""


async def join_group(ctx: Context, r: Reader) -> bytes:
    t, ident = _group(ctx, r)
    await ctx.engine.consumers.join(t.stream_id, t.id, ident, ctx.session.client_id)
    return b""


async def leave_group(ctx: Context, r: Reader) -> bytes:
    t, ident = _group(ctx, r)
    await ctx.engine.consumers.leave(t.stream_id, t.id, ident, ctx.session.client_id)
    return b""


def sync_group(ctx: Context, r: Reader) -> bytes:
    t, ident = _group(ctx, r, sync=True)
    found = ctx.engine.consumers.sync_group(t.stream_id, t.id, ident, ctx.session.client_id)
    return b"" if found is None else rsp.encode_sync(*found)
