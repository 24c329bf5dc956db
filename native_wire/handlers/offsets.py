"""Consumer offsets: get, store, delete."""

from __future__ import annotations

from pyggy.core import permissions as perm
from pyggy.core.engine import CONSUMER_GROUP
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import Identifier, Topic
from pyggy.native_wire.codec import primitives as p
from pyggy.native_wire.codec import responses as rsp
from pyggy.native_wire.codec.reader import Reader
from pyggy.native_wire.context import Context


def _target(ctx: Context, r: Reader) -> tuple[int, Identifier, Topic, int | None]:
    kind, consumer = p.decode_consumer(r)
    t = ctx.engine.metadata.topic(p.decode_identifier(r), p.decode_identifier(r))
    perm.ensure(perm.poll_messages(ctx.user, t.stream_id, t.id))
    return kind, consumer, t, p.decode_optional_partition(r)


async def get_offset(ctx: Context, r: Reader) -> bytes:
    kind, consumer, t, partition_id = _target(ctx, r)
    r.done()
    found = await ctx.engine.consumers.get_offset_async(kind, consumer, t.stream_id, t.id,
                                                        partition_id)
    return b"" if found is None else rsp.encode_consumer_offset(*found)


def _classic_checks(ctx: Context, kind: int, consumer: Identifier, t: Topic) -> None:
    """What the 0.8 server refuses: a group offset written by a non-member (5006); an offset
    beyond the partition's newest one or on a partition that never held a message (4100) is
    refused by `store_offset(require_messages=True)`, on the partition's owner."""
    group = ctx.engine.consumers.group(t.stream_id, t.id, consumer) \
        if kind == CONSUMER_GROUP else None
    if group is not None and ctx.session.member_id not in group.members:
        raise IggyError(ErrorCode.CONSUMER_GROUP_MEMBER_NOT_FOUND, "not a member")


async def store_offset(ctx: Context, r: Reader) -> bytes:
    kind, consumer, t, partition_id = _target(ctx, r)
    offset = r.u64()
    if not ctx.classic:
        r.u8()  # ack level: every store is written before the reply
    r.done()
    if ctx.classic:
        _classic_checks(ctx, kind, consumer, t)
    await ctx.engine.consumers.store_offset(kind, consumer, t.stream_id, t.id, partition_id,
                                            offset, require_messages=ctx.classic)
    return b""


async def delete_offset(ctx: Context, r: Reader) -> bytes:
    kind, consumer, t, partition_id = _target(ctx, r)
    if not ctx.classic:
        r.u8()
    r.done()
    if ctx.classic:
        _classic_checks(ctx, kind, consumer, t)
    await ctx.engine.consumers.delete_offset(kind, consumer, t.stream_id, t.id, partition_id)
    return b""
