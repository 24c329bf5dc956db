"""Send and poll messages (the hot path: no per-message Python objects)."""

from __future__ import annotations

from collections.abc import Iterator

from pyggy.core import permissions as perm
from pyggy.core.engine import CONSUMER_GROUP
from pyggy.core.engine.data import Deferred
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import ConsumerGroup
from pyggy.core.records import iggy_batch
from pyggy.native_wire.codec import primitives as p
from pyggy.native_wire.codec import responses as rsp
from pyggy.native_wire.codec.reader import Reader, WireError
from pyggy.native_wire.context import Context


async def send_messages(ctx: Context, r: Reader) -> bytes:
    metadata_length = r.u32()
    start = r.pos
    sid, tid = p.decode_identifier(r), p.decode_identifier(r)
    partitioning = p.decode_partitioning(r)
    count = r.u32()
    if r.pos - start != metadata_length:
        raise WireError(ErrorCode.INVALID_FORMAT, "metadata_length mismatch")
    t = ctx.engine.metadata.topic(sid, tid)
    perm.ensure(perm.send_messages(ctx.user, t.stream_id, t.id))
    if ctx.classic:
        # the conversion computes every checksum of the batch it builds: verifying them again
        # would hash the whole batch a second time (BENCHMARKS.md, "iggy-bench"); it writes
        # the batch over the frame's own bytes, which nothing reads after this request
        # (BENCHMARKS.md, "Classic produce, third pass")
        batch: bytearray | memoryview = iggy_batch.classic_frames_to_batch_in_place(
            r.rest(), count, random_ids=iggy_batch.random_bytes)
    else:
        batch = r.rest()
    confirmation = await ctx.engine.data.append(t.stream_id, t.id, partitioning, batch, count,
                                                verify_checksums=not ctx.classic)
    if ctx.span is not None:  # telemetry on: attributes, links to traceparent headers
        ctx.span.on_send(ctx.engine.metadata.stream(t.stream_id).name, t.name,
                         confirmation[2], confirmation[3], count, batch)
    if ctx.classic:
        return b""  # the 0.8 server answers SendMessages with an empty body
    return rsp.encode_send_confirmations([confirmation])


async def poll_messages(ctx: Context, r: Reader) -> bytes | list:
    kind, consumer, sid, tid, partition_id, strategy, value, count, auto_commit = \
        p.decode_poll_request(r)
    session, engine = ctx.session, ctx.server.engine  # every poll: no property calls
    classic = session.classic
    t = engine.metadata.topic(sid, tid)
    perm.ensure(perm.poll_messages(session.require_user(), t.stream_id, t.id))
    member = None
    if kind == CONSUMER_GROUP:
        g = engine.consumers.group(t.stream_id, t.id, consumer)
        member = session.member_id if session.member_id in g.members else None
        if classic:
            if member is None:
                raise IggyError(ErrorCode.CONSUMER_GROUP_MEMBER_NOT_FOUND, "not a member")
            if partition_id is None:
                partition_id = _classic_group_partition(ctx, t.stream_id, t.id, g)
            elif partition_id not in g.members[member].partitions:
                partition_id = None
            if partition_id is None:  # nothing (of that) assigned: empty reply, as 0.8 does
                return [rsp.encode_poll_prefix(0, 0, 0)]
        elif member is None:  # 0.9 fences group polls by ownership: a non-member owns nothing
            raise IggyError(ErrorCode.CONSUMER_GROUP_PARTITION_NOT_OWNED, "not a member")
    if count == 0:
        raise IggyError(ErrorCode.INVALID_MESSAGES_COUNT, "count must be > 0")
    # async: a poll of archived (tiered) segments awaits their bytes instead of blocking
    # a large poll of whole stored batches holds a Deferred: streamed, verified chunk by chunk
    result = await engine.data.poll_async(t.stream_id, t.id, partition_id, strategy, value,
                                          count, kind, consumer, auto_commit, member,
                                          streamed=True)
    chunks = result.streamed if result.streamed is not None else result.chunks
    if ctx.span is not None:
        ctx.span.on_poll(engine.metadata.stream(t.stream_id).name, t.name,
                         result.partition_id, result.current_offset, result.count,
                         sum(len(c) for c in chunks))
    if classic:  # whole batches (a chunk of a streamed read may hold several) or cut ones
        parts: list[bytes | ClassicDeferred] = []
        n = 0
        for c in chunks:
            if isinstance(c, Deferred):
                rest = ClassicDeferred(c)
                parts.append(rest)
                n += rest.messages
            else:
                frames, k = iggy_batch.classic_frames_of_batches(c)
                parts.append(frames)
                n += k
        return [rsp.encode_poll_prefix(result.partition_id, result.current_offset, n), *parts]
    return [rsp.encode_poll_prefix(result.partition_id, result.current_offset, result.count),
            *chunks]


class ClassicDeferred:
    """A streamed poll's rest (core/storage/streamed.py `Deferred`) as classic (0.8) frames:
    converted chunk by chunk as each is read and verified. Its length is known from the index:
    each batch loses its 256-byte header, each message's header grows from 48 to 64 bytes."""

    __slots__ = ("deferred", "messages", "nbytes")

    def __init__(self, deferred: Deferred) -> None:
        self.deferred = deferred
        self.messages = sum(sum(r.counts) for r in deferred.runs)
        batches = sum(len(r.counts) for r in deferred.runs)
        self.nbytes = (len(deferred) - iggy_batch.BATCH_HEADER_SIZE * batches
                       + (iggy_batch.CLASSIC_HEADER_SIZE - iggy_batch.FRAME_HEADER_SIZE)
                       * self.messages)

    def __len__(self) -> int:
        return self.nbytes

    def chunks(self) -> Iterator[bytes]:
        """Each verified chunk's frames; a chunk whose messages disagree with the index (it
        cannot, once its CRCs matched) ends the stream (the connection closes)."""
        left = self.nbytes
        for chunk in self.deferred.chunks():
            frames, _ = iggy_batch.classic_frames_of_batches(chunk)
            left -= len(frames)
            if left < 0:
                raise ValueError("classic frames longer than the index promised")
            yield frames
        if left:
            raise ValueError("classic frames shorter than the index promised")


def _classic_group_partition(ctx: Context, stream_id: int, topic_id: int,
                             g: ConsumerGroup) -> int | None:
    """0.8 group polls carry no partition: the server picks the member's partitions in turn
    (one step per poll, as the 0.8 server's per-member ``partition_index``)."""
    owned = g.members[ctx.session.member_id].partitions
    if not owned:
        return None
    key = (stream_id, topic_id, g.id)
    turn = ctx.session.group_cursors.get(key, 0)
    ctx.session.group_cursors[key] = turn + 1
    return owned[turn % len(owned)]


async def flush_unsaved_buffer(ctx: Context, r: Reader) -> bytes:
    ctx.session.require_user()
    if not ctx.classic:
        raise IggyError(ErrorCode.FEATURE_UNAVAILABLE, "every append is written at once")
    # The 0.8 server flushes (and with fsync=1 syncs) one partition. Appends are written at
    # once here, so there is nothing unsaved: check the target, sync if asked, reply empty.
    t = ctx.engine.metadata.topic(p.decode_identifier(r), p.decode_identifier(r))
    partition_id = r.u32()
    fsync = r.u8() == 1
    r.done()
    perm.ensure(perm.send_messages(ctx.user, t.stream_id, t.id))
    ctx.engine.metadata.partition(t, partition_id)  # it must exist
    if fsync:
        await ctx.engine.data.flush_async(t, partition_id)
    return b""
