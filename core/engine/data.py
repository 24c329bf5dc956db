"""DataService: the data path of both doors — appends (Iggy batches and Kafka record batches,
validated and stamped in place), reads (verbatim for a reader of the batch's own encoding,
transcoded for the other door), polls by strategy, and what the doors ask of a partition's log.

Reads that may reach the archive are written once as `Steps` (core/storage/tiered.py): the
`*_async` methods await archived data on the archive's reader pool, the others read it on the
calling thread (offline tools and tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypedDict, cast

import xxhash
from pyggy.core import groups
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.lean import lean
from pyggy.core.model import (
    NEVER_EXPIRE,
    UNLIMITED_SIZE,
    ConsumerGroup,
    Identifier,
    Partition,
    Topic,
)
from pyggy.core.offsets import CONSUMER, CONSUMER_GROUP
from pyggy.core.records import iggy_batch, kafka_batch, transcode
from pyggy.core.records.encoding import ENCODING_IGGY, ENCODING_KAFKA
from pyggy.core.storage import streamed
from pyggy.core.storage.partition_log import PartitionLog
from pyggy.core.storage.reads import BatchRef, offset_for_timestamp_steps, read_steps
from pyggy.core.storage.streamed import Deferred as Deferred  # the doors stream it (kafka_wire)
from pyggy.core.storage.tiered import Steps, run_async, run_blocking
from pyggy.core.transactions import AbortedRanges

from .cluster import ClusterView
from .consumers import ConsumerService
from .metadata import MetadataService
from .partitions import elsewhere

# Polling strategies (Iggy wire values)
OFFSET, TIMESTAMP, FIRST, LAST, NEXT = 1, 2, 3, 4, 5
# Partitioning kinds
BALANCED, PARTITION_ID, MESSAGES_KEY = 1, 2, 3
# Stored bytes one poll reads at most (at least one batch): a poll may return fewer messages
# than asked, and clients poll again; without it `count` = 2**32 - 1 read a whole partition.
POLL_MAX_BYTES = 64 << 20
# how a send picks its partition: (kind, None | partition id | messages key)
Partitioning = tuple[int, int | bytes | None]
# batches in the form a door writes them out (stored bytes, views of them, or transcoded)
Buffer = bytes | bytearray | memoryview
# listener(topic, partition id) after every append, through either door
AppendListener = Callable[[Topic, int], None]


class ShardRoute(Protocol):
    """Forwards the Iggy door's data requests for a partition another shard process owns
    (pyggy/shards, docs/sharding.md): the batch travels as received, the owner validates,
    stamps and stores it, or reads and answers the poll (consumer offsets included)."""

    async def append_iggy(self, t: Topic, partition_id: int, batch: Buffer,
                          messages_count: int | None) -> int: ...

    async def poll(self, t: Topic, partition_id: int, strategy: int, value: int, count: int,
                   consumer_kind: int, consumer_id: Identifier, auto_commit: bool
                   ) -> PollResult: ...

    async def refresh_stats(self, t: Topic | None) -> None: ...

    async def append_kafka(self, t: Topic, partition_id: int, batch: Buffer,
                           log_append_time: bool) -> int:
        """A Kafka batch made here (a transaction marker), validated and stored by the
        partition's owner."""
        ...


class SegmentInfo(TypedDict):
    """A segment as `DataService.segments` describes it."""

    start_offset: int
    next_offset: int
    size: int
    sealed: bool
    tier: Literal["archived", "local", "both"]


@dataclass(slots=True)
class PollResult:
    """The messages a poll of one partition returned."""

    partition_id: int
    current_offset: int
    count: int
    chunks: list[Buffer] = field(default_factory=list)  # Iggy batch records, in order
    # a streamed poll's batches instead (`poll_async`'s `streamed`): a Deferred among them
    streamed: list[Buffer | Deferred] | None = None


@lean
class DataStats:
    """Bytes read and written since the start (here and, as last asked, in other shards)."""

    start_time: int
    read_bytes: int = 0
    written_bytes: int = 0
    # the other shard processes' (read, written) bytes, as last asked (refresh_stats)
    elsewhere_read: int = 0
    elsewhere_written: int = 0
    # ... and their clients, resident memory and threads, as the last whole-server ask got
    elsewhere_clients: int = 0
    elsewhere_memory: int = 0
    elsewhere_threads: int = 0


class DataService:
    def __init__(self, metadata: MetadataService, consumers: ConsumerService) -> None:
        self.metadata = metadata
        self.meta = metadata.meta
        self.consumers = consumers
        self.clock = metadata.clock
        self.stats = DataStats(start_time=self.clock.now_us())
        self.poll_max_bytes = POLL_MAX_BYTES
        self.append_listeners: list[AppendListener] = []
        self.cluster: ClusterView | None = None  # set by a cluster node (core/engine/cluster.py)
        self.shards: ShardRoute | None = None  # set by a shard process (pyggy/shards)

    # -- appends ---------------------------------------------------------------------------
    def resolve_partition(self, t: Topic, kind: int, value: int | bytes | None) -> int:
        n = len(t.partitions)
        if n == 0:
            raise IggyError(ErrorCode.NO_PARTITIONS, "topic has no partitions")
        if kind == PARTITION_ID:
            return int(cast(int, value))  # the codecs give a partition id as an int
        if kind == MESSAGES_KEY:
            return xxhash.xxh32_intdigest(bytes(cast(bytes, value))) % n  # and a key as bytes
        pid = t.next_partition % n
        t.next_partition = pid + 1
        return pid

    async def append(self, stream: Identifier, topic: Identifier, partitioning: Partitioning,
                     batch: bytearray | memoryview, messages_count: int | None = None,
                     verify_checksums: bool = True) -> tuple[int, int, int, int]:
        """Validate, stamp and store one Iggy batch; return (stream, topic, partition, base).

        ``verify_checksums=False`` only for a batch this server has just built and summed
        itself (the classic conversion): its layout and limits are still checked."""
        t = self.meta.topic(stream, topic)
        p = self.metadata.partition(t, self.resolve_partition(t, *partitioning))
        if elsewhere(p.log) and self.shards is not None:  # its owner validates and stores
            return t.stream_id, t.id, p.id, await self.shards.append_iggy(t, p.id, batch,
                                                                          messages_count)
        try:
            info = iggy_batch.validate_batch(memoryview(batch), expected_count=messages_count,
                                             verify_checksums=verify_checksums)
        except iggy_batch.BatchError as e:
            raise IggyError(e.code, str(e)) from None
        self._check_topic_full(t)
        cluster = self.cluster
        if cluster is not None:  # the partition group stamps and stores it on every replica
            operation, body = cluster.append_body(ENCODING_IGGY, batch, info.message_count)
            base = await cluster.append(t.stream_id, t.id, p.id, operation, body)
        else:
            base = await p.log.append_iggy(batch, info.message_count, info.frame_sums)
            self._appended(t, p.id, len(batch))
        return t.stream_id, t.id, p.id, base

    async def append_kafka(self, t: Topic, partition_id: int, batch: bytearray | memoryview,
                           info: kafka_batch.KafkaBatchInfo, log_append_time: bool = False
                           ) -> int:
        """Store one validated Kafka batch (stamped in place); return its base offset."""
        p = self.metadata.partition(t, partition_id)
        if elsewhere(p.log) and self.shards is not None:  # a marker of another shard's
            return await self.shards.append_kafka(t, partition_id, batch, log_append_time)
        self._check_topic_full(t)
        cluster = self.cluster
        if cluster is not None:
            operation, body = cluster.append_body(ENCODING_KAFKA, batch, info.record_count,
                                                  info.max_timestamp, log_append_time)
            return await cluster.append(t.stream_id, t.id, partition_id, operation, body)
        base = await p.log.append_kafka(batch, info.record_count, info.max_timestamp,
                                        log_append_time)
        self._appended(t, partition_id, len(batch))
        return base

    def _appended(self, t: Topic, partition_id: int, size: int) -> None:
        self.stats.written_bytes += size
        for listener in self.append_listeners:
            listener(t, partition_id)

    def _check_topic_full(self, t: Topic) -> None:
        limit = t.options.max_topic_size
        if limit != UNLIMITED_SIZE and limit and t.size_bytes >= limit and len(t.partitions) \
                and self.cluster is not None:
            # in a cluster, deleting segments is an op of each partition's group, never a
            # local decision: refuse until retention (part II) has made room
            raise IggyError(ErrorCode.TOPIC_FULL, "topic is full")
        if limit != UNLIMITED_SIZE and limit and t.size_bytes >= limit and len(t.partitions):
            # Like Iggy: a full topic first drops its oldest sealed segments, else refuses.
            share = limit // len(t.partitions)
            for p in t.partitions:
                p.log.enforce_retention(self.clock.now_us(), NEVER_EXPIRE, share)
            if t.size_bytes >= limit and all(len(p.log.segments) == 1 and not p.log.tiered
                                             for p in t.partitions):
                return  # only active segments left: keep accepting, the cleaner trims later
            if t.size_bytes >= limit:
                raise IggyError(ErrorCode.TOPIC_FULL, "topic is full")

    def flush(self, t: Topic, partition_id: int) -> None:
        """fsync a partition's files now (the classic protocol's FLUSH_UNSAVED_BUFFER)."""
        self.metadata.partition(t, partition_id).log.sync()

    async def flush_async(self, t: Topic, partition_id: int) -> None:
        """`flush`, done by the partition's owner when that is another shard process."""
        route = self.metadata.shards
        if route is not None and elsewhere(self.metadata.partition(t, partition_id).log):
            await route.maintain(t, partition_id, "flush")
        else:
            self.flush(t, partition_id)

    async def refresh_stats(self, t: Topic | None = None) -> None:
        """Before statistics are read in a sharded server: the other shards' figures of
        their partitions (of topic `t`, or all) into their stand-ins here."""
        if self.shards is not None:
            await self.shards.refresh_stats(t)

    # -- what the doors ask of a partition -------------------------------------------------
    def watermarks(self, t: Topic, partition_id: int) -> tuple[int, int]:
        """(log start offset, next offset) of a partition: the first offset still readable,
        and the offset the next record gets (Kafka's high watermark on one node)."""
        plog = self.metadata.partition(t, partition_id).log
        return plog.start_offset, plog.next_offset

    def segments(self, t: Topic, partition_id: int) -> list[SegmentInfo]:
        """A partition's segments, oldest first: offsets, bytes and tier ("archived" = only
        in the archive, "local" = only on disk, "both" = on disk with a verified archive copy).
        """
        plog = self.metadata.partition(t, partition_id).log
        out: list[SegmentInfo] = [
            {"start_offset": r.start_offset, "next_offset": r.next_offset, "size": r.size,
             "sealed": True, "tier": "archived"} for r in plog.tiered]
        for seg in plog.segments:
            both = seg.sealed and plog.remote is not None and plog.remote.is_archived(
                seg.start_offset, seg.next_offset, seg.size)
            out.append({"start_offset": seg.start_offset, "next_offset": seg.next_offset,
                        "size": seg.size, "sealed": seg.sealed,
                        "tier": "both" if both else "local"})
        return out

    def producer_batch_heads(self, t: Topic, partition_id: int) -> Iterator[tuple[int, bytes]]:
        """(base offset, header bytes) of the Kafka batches of the partition's newest
        segments: where idempotent producers' sequences are rebuilt from after a restart."""
        plog = self.metadata.partition(t, partition_id).log
        return plog.batch_heads(ENCODING_KAFKA, kafka_batch.HEADER_SIZE)

    async def offset_for_timestamp(self, t: Topic, partition_id: int, timestamp_us: int,
                                   use_max: bool = False) -> int | None:
        """First offset of the first batch whose (max) timestamp is ≥ `timestamp_us`."""
        plog = self.metadata.partition(t, partition_id).log
        return await plog.offset_for_timestamp_async(timestamp_us, use_max)

    # -- Kafka reads -----------------------------------------------------------------------
    def _kafka_view(self, refs: list[BatchRef]) -> list[Buffer]:
        out: list[Buffer] = []
        for ref in refs:
            self.stats.read_bytes += len(ref.data)
            if ref.encoding == ENCODING_KAFKA:
                out.append(ref.data)
            else:
                out.append(transcode.iggy_to_kafka(memoryview(ref.data)))
        return out

    def read_kafka(self, t: Topic, partition_id: int, offset: int,
                   max_bytes: int) -> list[Buffer]:
        """Kafka RecordBatch bytes from the batch holding `offset`, up to about `max_bytes`
        (at least one batch). Kafka batches are served verbatim; Iggy batches transcoded."""
        plog = self.metadata.partition(t, partition_id).log
        return self._kafka_view(plog.read(offset, 1 << 62, max_bytes))

    async def read_kafka_async(self, t: Topic, partition_id: int, offset: int,
                               max_bytes: int, max_count: int = 1 << 62) -> list[Buffer]:
        """`read_kafka` that awaits archived data instead of blocking the event loop;
        `max_count` records at most (from `offset`: a read ending at a batch boundary, such as
        the last stable offset, stops there)."""
        plog = self.metadata.partition(t, partition_id).log
        return self._kafka_view(await plog.read_async(offset, max_count, max_bytes))

    async def read_kafka_streamed(self, t: Topic, partition_id: int, offset: int,
                                  max_bytes: int, max_count: int = 1 << 62
                                  ) -> list[Buffer | Deferred]:
        """`read_kafka_async`, except that beyond its first verified chunk a large read of
        stored Kafka batches ends in a `Deferred` (core/storage/streamed.py): the door writes
        it while reading and verifying it. Reads that cannot be streamed are made whole."""
        plog = self.metadata.partition(t, partition_id).log
        planned = streamed.plan(plog, offset, max_count, max_bytes, ENCODING_KAFKA)
        if planned is None:
            return list(await self.read_kafka_async(t, partition_id, offset, max_bytes,
                                                    max_count))
        head, rest = planned
        out: list[Buffer | Deferred] = list(head)
        self.stats.read_bytes += sum(map(len, head))
        if rest is not None:
            self.stats.read_bytes += len(rest)
            out.append(rest)
        return out

    # -- Iggy polls ------------------------------------------------------------------------
    def poll(self, stream: Identifier, topic: Identifier, partition_id: int | None,
             strategy: int, value: int, count: int, consumer_kind: int = CONSUMER,
             consumer_id: Identifier = 0, auto_commit: bool = False,
             member_id: int | None = None) -> PollResult:
        """Poll `count` messages by strategy (archived data read on this thread)."""
        return run_blocking(self._poll(stream, topic, partition_id, strategy, value, count,
                                       consumer_kind, consumer_id, auto_commit, member_id))

    async def poll_async(self, stream: Identifier, topic: Identifier, partition_id: int | None,
                         strategy: int, value: int, count: int, consumer_kind: int = CONSUMER,
                         consumer_id: Identifier = 0, auto_commit: bool = False,
                         member_id: int | None = None, streamed: bool = False) -> PollResult:
        """`poll`, awaiting archived data instead of blocking the event loop. In a cluster an
        auto-commit is replicated (the metadata group) before the result is returned. With
        `streamed`, a poll of whole stored Iggy batches without auto-commit may end in a
        `Deferred` (core/storage/streamed.py): the door writes it while reading and verifying
        it. (An auto-commit stores the offset before the bytes leave: a batch found bad
        mid-stream would then be skipped by the consumer, so those polls are read whole.)"""
        if self.shards is not None:
            t = self.meta.topic(stream, topic)
            if consumer_kind == CONSUMER_GROUP and member_id is not None:
                g = self.meta.group(t.stream_id, t.id, consumer_id)
                partition_id = self._group_partition(g, member_id, partition_id)
                if partition_id is None:
                    return PollResult(0, 0, 0)
                member_id = None
            pid = 0 if partition_id is None else partition_id
            if elsewhere(self.metadata.partition(t, pid).log):
                return await self.shards.poll(t, pid, strategy, value, count, consumer_kind,
                                              consumer_id, auto_commit)
        commits: list[tuple[Topic, int, int, Identifier, int]] | None = \
            [] if auto_commit and self.cluster is not None else None
        result = await run_async(self._poll(stream, topic, partition_id, strategy, value,
                                            count, consumer_kind, consumer_id, auto_commit,
                                            member_id, commits, streamed and not auto_commit))
        for t, pid, kind, key, offset in commits or ():
            await self.consumers.replicate_store(t, pid, kind, key, offset)
        return result

    def _poll(self, stream: Identifier, topic: Identifier, partition_id: int | None,
              strategy: int, value: int, count: int, consumer_kind: int,
              consumer_id: Identifier, auto_commit: bool, member_id: int | None,
              commits: list[tuple[Topic, int, int, Identifier, int]] | None = None,
              streamed_ok: bool = False) -> Steps[PollResult]:
        t = self.meta.topic(stream, topic)
        key: Identifier = consumer_id
        if consumer_kind == CONSUMER_GROUP:
            g = self.meta.group(t.stream_id, t.id, consumer_id)
            key = g.id
            if member_id is not None:
                partition_id = self._group_partition(g, member_id, partition_id)
                if partition_id is None:
                    return PollResult(0, 0, 0)
        pid = 0 if partition_id is None else partition_id
        p = self.metadata.partition(t, pid)
        offsets = self.consumers.files.offsets_of(t, pid)
        if strategy == OFFSET:  # the common case without `_start`'s generator and closure
            start: int | None = value
        else:
            start = yield from self._start(p, strategy, value, count,
                                           lambda: offsets.get(consumer_kind, key))
        plog = p.log
        result = PollResult(pid, p.current_offset, 0)
        # the cross-door rule (docs/two-doors.md): never beyond the last stable offset, and
        # records of aborted Kafka transactions skipped
        part = (t.stream_id, t.id, pid)
        end = self.meta.txns.last_stable(part, plog.next_offset)
        if strategy == LAST and end < plog.next_offset:  # the last stable ones
            start = max(end - count, plog.start_offset)
        if start is None or count <= 0 or start >= end:
            return result
        start = max(start, plog.start_offset)
        aborted = self.meta.txns.aborted.get(part)
        last = start - 1
        if streamed_ok and aborted is None:
            last = yield from self._poll_streamed(plog, pid, start, count, end, result)
        while result.count < count and last + 1 < end and result.streamed is None:
            refs = yield from read_steps(plog, last + 1, min(count - result.count,
                                                             end - last - 1),
                                         self.poll_max_bytes)
            if not refs:
                break
            polled = result.count
            covered = self._slice(refs, pid, last + 1, count - result.count, result, aborted)
            progressed = covered > last
            last = max(last, covered)
            # one read is what a partition needs unless what it read was all gaps (aborted
            # transactions, records compaction removed): then the poll reads on past them
            if not progressed or (aborted is None and result.count > polled):
                break
        if auto_commit and last >= start:
            if commits is not None:  # a cluster: the caller replicates it
                commits.append((t, pid, consumer_kind, key, last))
            else:
                self.consumers.store(offsets, consumer_kind, key, last)
        return result

    def _poll_streamed(self, plog: PartitionLog, pid: int, start: int, count: int, end: int,
                       result: PollResult) -> Steps[int]:
        """The one read of a poll (no aborted transactions in the partition) as
        `streamed.plan_polled` plans it, the rest of that read the ordinary way; the last
        offset polled (start - 1 when nothing could be planned: the caller reads whole)."""
        most = min(count, end - start)
        planned = streamed.plan_polled(plog, start, most, self.poll_max_bytes, ENCODING_IGGY)
        if planned is None:
            return start - 1
        parts: list[Buffer | Deferred] = list(planned.head)
        if planned.rest is not None:
            parts.append(planned.rest)
        result.streamed = parts
        result.count = planned.messages
        self.stats.read_bytes += planned.nbytes
        last = planned.next_offset - 1
        if planned.short or result.count >= most:
            return last
        # what a whole read takes after these batches: one cut by the count, a batch not to
        # stream (another encoding, damaged), up to the same byte budget
        refs = yield from read_steps(plog, last + 1, min(count - result.count, end - last - 1),
                                     self.poll_max_bytes - planned.nbytes, begun=True)
        last = max(last, self._slice(refs, pid, last + 1, count - result.count, result))
        parts.extend(result.chunks)
        result.chunks = []
        return last

    @staticmethod
    def _group_partition(g: ConsumerGroup, member_id: int,
                         partition_id: int | None) -> int | None:
        """The partition a group member polls: the one asked for (it must own it), else the
        next of its own in turn."""
        if member_id not in g.members:
            raise IggyError(ErrorCode.CONSUMER_GROUP_MEMBER_NOT_FOUND, "not a member")
        if partition_id is None:
            owned = g.members[member_id].partitions
            return owned[g.generation % len(owned)] if owned else None
        if not groups.owns(g, member_id, partition_id):
            raise IggyError(ErrorCode.CONSUMER_GROUP_PARTITION_NOT_OWNED, "partition not owned")
        return partition_id

    @staticmethod
    def _start(p: Partition, strategy: int, value: int, count: int,
               stored: Callable[[], int | None]) -> Steps[int | None]:
        """The offset a poll starts at (None: nothing to read)."""
        plog = p.log
        if strategy == OFFSET:
            return value
        if strategy == TIMESTAMP:
            return (yield from offset_for_timestamp_steps(plog, value))
        if strategy == FIRST:
            return plog.start_offset
        if strategy == LAST:
            return max(plog.next_offset - count, plog.start_offset)
        if strategy == NEXT:
            last = stored()
            return plog.start_offset if last is None else last + 1
        raise IggyError(ErrorCode.INVALID_FORMAT, "unknown polling strategy")

    def _slice(self, refs: list[BatchRef], pid: int, start: int, count: int,
               result: PollResult, aborted: AbortedRanges | None = None) -> int:
        """Cut the read batches to [start, start + count) into `result` (Kafka batches
        transcoded, offsets kept, batches of aborted transactions left out); return the last
        offset polled or skipped."""
        remaining = count
        last = start - 1
        for ref in refs:
            self.stats.read_bytes += len(ref.data)
            batches: Sequence[bytes | memoryview]
            if ref.encoding == ENCODING_IGGY:
                batches = [ref.data]
            elif aborted is not None and _skipped(ref, aborted):
                last = max(last, ref.base_offset + ref.record_count - 1)
                continue
            else:  # a Kafka batch seen through the Iggy door: transcoded, offsets kept
                batches = transcode.split_iggy(transcode.kafka_to_iggy(
                    memoryview(ref.data), partition_id=pid, timestamp_us=ref.timestamp))
                if not batches:  # every record compacted away: its offsets are a gap
                    last = max(last, ref.base_offset + ref.record_count - 1)
            for data in batches:
                chunk = iggy_batch.slice_batch(data, start, remaining)
                if not chunk:
                    continue
                n = iggy_batch.batch_fields(chunk)[5]
                result.chunks.append(chunk)
                result.count += n
                remaining -= n
                last = iggy_batch.batch_offsets(chunk)[1]
                if remaining <= 0:
                    return last
        return last


def _skipped(ref: BatchRef, aborted: AbortedRanges) -> bool:
    """Whether a stored Kafka batch is a transaction marker or belongs to an aborted
    transaction (neither is polled through the Iggy door)."""
    fields = kafka_batch.batch_fields(ref.data)
    if fields[5] & kafka_batch.CONTROL_MASK:
        return True
    if not fields[5] & kafka_batch.TRANSACTIONAL_MASK:
        return False
    producer_id = fields[9]
    return any(pid == producer_id for pid, _ in
               aborted.overlapping(ref.base_offset, ref.base_offset + 1))
