"""Consumer offsets: get, store, delete."""

from __future__ import annotations

from core import permissions as perm
from native_wire.codec import primitives as p
from native_wire.codec import responses as rsp
from native_wire.codec.reader import Reader
from native_wire.context import Context


def _target(ctx: Context, r: Reader):
    kind, consumer = p.decode_consumer(r)
    t = ctx.engine.topic(p.decode_identifier(r), p.decode_identifier(r))
    perm.ensure(perm.poll_messages(ctx.user, t.stream_id, t.id))
    return kind, consumer, t, p.decode_optional_partition(r)


def get_offset(ctx: Context, r: Reader) -> bytes:
    kind, consumer, t, partition_id = _target(ctx, r)
    r.done()
    found = ctx.engine.get_offset(kind, consumer, t.stream_id, t.id, partition_id)
    return b"" if found is None else rsp.encode_consumer_offset(*found)


def store_offset(ctx: Context, r: Reader) -> bytes:
    kind, consumer, t, partition_id = _target(ctx, r)
    offset = r.u64()
    if not ctx.classic:
        r.u8()  # ack level: every store is written before the reply
    r.done()
    ctx.engine.store_offset(kind, consumer, t.stream_id, t.id, partition_id, offset)
    return b""


def delete_offset(ctx: Context, r: Reader) -> bytes:
    kind, consumer, t, partition_id = _target(ctx, r)
    if not ctx.classic:
        r.u8()
    r.done()
    ctx.engine.delete_offset(kind, consumer, t.stream_id, t.id, partition_id)
    return b""
