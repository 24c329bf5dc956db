"""MetadataService: streams, topics and partitions — the metadata commands of both doors.

Every change is a command in the state log (`CommandLog.commit`) applied before the call
returns; the partitions' files follow the command (created before it is logged, deleted after
it). Lookups raise `IggyError` (not found) or, for `get_*`, answer None.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from pyggy.core import groups
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.metadata.commands import (
    CreatePartitions,
    CreateTopic,
    DeleteGroup,
    DeletePartitions,
    DeleteStream,
    DeleteTopic,
    MetadataCommand,
    UpdateTopic,
)
from pyggy.core.metadata.machine import encode_options, free_id
from pyggy.core.model import ConsumerGroup, Identifier, Partition, Stream, Topic
from pyggy.core.offsets import CONSUMER_GROUP
from pyggy.core.options import OptionEntries, reject_options

from .cluster import ClusterView
from .commands import CommandLog
from .partitions import PartitionFiles, elsewhere

# listener(stream name, topic, partitions) after partitions are deleted (with their stream or
# topic, or by delete_partitions), through either door
DeleteListener = Callable[[str, Topic, Sequence[Partition]], None]


class MaintenanceRoute(Protocol):
    """Where a shard process sends maintenance of a partition another shard owns
    (pyggy/shards/runtime.py): "purge", "delete_segments" (`count`), "delete_records"
    (`offset`; answers the new start offset), "flush" (fsync)."""

    async def maintain(self, t: Topic, partition_id: int, op: str, arg: int = 0) -> int: ...


class MetadataService:
    def __init__(self, commands: CommandLog, files: PartitionFiles) -> None:
        self.commands = commands
        self.meta = commands.meta
        self.files = files
        self.clock = commands.clock
        self.delete_listeners: list[DeleteListener] = []
        # listener(topic, partitions) after partitions are created (with their topic or by
        # create_partitions), on every node that applies the command
        self.create_listeners: list[Callable[[Topic, Sequence[Partition]], None]] = []
        self.cluster: ClusterView | None = None  # a cluster node's (core/engine/cluster.py)
        self.shards: MaintenanceRoute | None = None  # a shard process's (pyggy/shards)

    def _deleted(self, stream_name: str, topic: Topic, parts: Sequence[Partition]) -> None:
        for listener in self.delete_listeners:
            listener(stream_name, topic, parts)

    # -- applying a command with its files ---------------------------------------------------
    def apply(self, cmd: MetadataCommand) -> object:
        """Apply a metadata command and make the partitions' files follow it: what
        `CommandLog.propose` runs where the command commits (at once on one node; on every
        replica, as the metadata group commits it, in a cluster). Partition directories are
        made before the command is logged and deleted after it."""
        if cmd["type"] == "create_topic":
            return self._apply_create_topic(cmd)
        if cmd["type"] == "create_partitions":
            return self._apply_create_partitions(cmd)
        if cmd["type"] == "delete_stream":
            return self._apply_delete_stream(cmd)
        if cmd["type"] == "delete_topic":
            return self._apply_delete_topic(cmd)
        if cmd["type"] == "delete_partitions":
            return self._apply_delete_partitions(cmd)
        if cmd["type"] == "delete_group":
            return self._apply_delete_group(cmd)
        return self.commands.commit(cmd)

    def _apply_create_topic(self, cmd: CreateTopic) -> Topic:
        s = self.meta.stream(cmd["stream_id"])
        # the id the command will get (the state machine takes the smallest free one)
        made = self.files.new_dirs(s.id, free_id(s.topics), 0, cmd["partitions_count"])
        try:
            t = self.commands.commit(cmd, self.meta.create_topic)
        except IggyError:
            self.files.remove_dirs(made)
            raise
        self.files.attach_new(t, t.partitions, lambda: self.commands.commit(
            {"type": "delete_topic", "stream_id": s.id, "topic_id": t.id}))
        self._created(t, t.partitions)
        return t

    def _apply_create_partitions(self, cmd: CreatePartitions) -> list[Partition]:
        t = self.meta.topic(cmd["stream_id"], cmd["topic_id"])
        made = self.files.new_dirs(t.stream_id, t.id, len(t.partitions), cmd["count"])
        try:
            new = self.commands.commit(cmd, self.meta.create_partitions)
        except IggyError:
            self.files.remove_dirs(made)
            raise
        self.files.attach_new(t, new, lambda: self.commands.commit(
            {"type": "delete_partitions", "stream_id": t.stream_id, "topic_id": t.id,
             "count": len(new)}))
        _rebalance_all(t)
        self._created(t, new)
        return new

    def _apply_delete_stream(self, cmd: DeleteStream) -> Stream:
        s = self.commands.commit(cmd, self.meta.delete_stream)
        for t in s.topics.values():
            self.files.detach(t, t.partitions)
            self._deleted(s.name, t, t.partitions)
        self.files.remove_stream(s.id)
        return s

    def _apply_delete_topic(self, cmd: DeleteTopic) -> Topic:
        t = self.meta.topic(cmd["stream_id"], cmd["topic_id"])
        result = self.commands.commit(cmd, self.meta.delete_topic)
        self.files.detach(t, t.partitions)
        self._deleted(self.stream_name(t.stream_id), t, t.partitions)
        self.files.remove_topic(t.stream_id, t.id)
        return result

    def _apply_delete_partitions(self, cmd: DeletePartitions) -> list[Partition]:
        t = self.meta.topic(cmd["stream_id"], cmd["topic_id"])
        gone = self.commands.commit(cmd, self.meta.delete_partitions)
        self.files.detach(t, gone)
        self._deleted(self.stream_name(t.stream_id), t, gone)
        _rebalance_all(t)
        return gone

    def _apply_delete_group(self, cmd: DeleteGroup) -> ConsumerGroup:
        g = self.commands.commit(cmd, self.meta.delete_group)
        t = self.meta.topic(cmd["stream_id"], cmd["topic_id"])
        for p in t.partitions:  # its offsets go with it, on every replica (and every
            if not elsewhere(p.log):  # shard, for the partitions it owns)
                self.files.offsets_of(t, p.id).delete(CONSUMER_GROUP, g.id)
        return g

    def _created(self, topic: Topic, parts: Sequence[Partition]) -> None:
        for listener in self.create_listeners:
            listener(topic, parts)

    # -- streams ---------------------------------------------------------------------------
    async def create_stream(self, name: str, options: OptionEntries = ()) -> Stream:
        reject_options(options)
        return await self.commands.propose({"type": "create_stream", "name": name,
                                            "created_at": self.clock.now_us()})

    def get_stream(self, stream: Identifier) -> Stream | None:
        try:
            return self.meta.stream(stream)
        except IggyError:
            return None

    def stream(self, stream: Identifier) -> Stream:
        return self.meta.stream(stream)

    def streams(self) -> list[Stream]:
        return sorted(self.meta.streams.values(), key=lambda s: s.id)

    def stream_name(self, stream_id: int) -> str:
        return self.meta.streams[stream_id].name

    async def update_stream(self, stream: Identifier, name: str,
                            options: OptionEntries = ()) -> None:
        reject_options(options)
        stream_id = self.meta.stream(stream).id
        await self.commands.propose({"type": "update_stream", "stream_id": stream_id,
                                     "name": name})

    async def delete_stream(self, stream: Identifier) -> None:
        await self.commands.propose({"type": "delete_stream",
                                     "stream_id": self.meta.stream(stream).id})

    async def purge_stream(self, stream: Identifier) -> None:
        for t in self.meta.stream(stream).topics.values():
            await self._purge(t)

    async def _purge(self, t: Topic) -> None:
        if self.cluster is not None:  # a purge is an op of each partition's group
            for p in t.partitions:
                await self.cluster.purge(t.stream_id, t.id, p.id)
            for p in t.partitions:
                self.files.offsets_of(t, p.id).clear()
            return
        self.files.purge(t)
        if self.shards is not None:  # the other partitions' owners purge theirs
            for p in t.partitions:
                if elsewhere(p.log):
                    await self.shards.maintain(t, p.id, "purge")

    # -- topics ----------------------------------------------------------------------------
    async def create_topic(self, stream: Identifier, name: str, partitions_count: int,
                           options: OptionEntries = ()) -> Topic:
        s = self.meta.stream(stream)
        return await self.commands.propose({
            "type": "create_topic", "stream_id": s.id, "name": name,
            "partitions_count": partitions_count,
            "options": encode_options(list(options)), "created_at": self.clock.now_us()})

    def get_topic(self, stream: Identifier, topic: Identifier) -> Topic | None:
        try:
            return self.meta.topic(stream, topic)
        except IggyError:
            return None

    def topic(self, stream: Identifier, topic: Identifier) -> Topic:
        return self.meta.topic(stream, topic)

    def topics(self, stream: Identifier) -> list[Topic]:
        return sorted(self.meta.stream(stream).topics.values(), key=lambda t: t.id)

    def all_topics(self) -> list[Topic]:
        return [t for s in self.streams() for t in sorted(s.topics.values(), key=lambda t: t.id)]

    async def update_topic(self, stream: Identifier, topic: Identifier, name: str,
                           options: OptionEntries = (), reset: Sequence[str] = ()) -> None:
        """Rename and patch options; keys in `reset` return to their defaults first."""
        t = self.meta.topic(stream, topic)
        cmd: UpdateTopic = {"type": "update_topic", "stream_id": t.stream_id, "topic_id": t.id,
                            "name": name, "options": encode_options(list(options))}
        if reset:
            cmd["reset"] = list(reset)
        await self.commands.propose(cmd)

    async def delete_topic(self, stream: Identifier, topic: Identifier) -> None:
        t = self.meta.topic(stream, topic)
        await self.commands.propose({"type": "delete_topic", "stream_id": t.stream_id,
                                     "topic_id": t.id})

    async def purge_topic(self, stream: Identifier, topic: Identifier) -> None:
        await self._purge(self.meta.topic(stream, topic))

    # -- partitions ------------------------------------------------------------------------
    def partition(self, t: Topic, partition_id: int) -> Partition:
        if not 0 <= partition_id < len(t.partitions):
            raise IggyError(ErrorCode.PARTITION_NOT_FOUND, f"partition {partition_id} not found")
        return t.partitions[partition_id]

    async def create_partitions(self, stream: Identifier, topic: Identifier, count: int) -> None:
        t = self.meta.topic(stream, topic)
        await self.commands.propose({
            "type": "create_partitions", "stream_id": t.stream_id, "topic_id": t.id,
            "count": count, "created_at": self.clock.now_us()})

    async def delete_partitions(self, stream: Identifier, topic: Identifier, count: int) -> None:
        t = self.meta.topic(stream, topic)
        await self.commands.propose({"type": "delete_partitions", "stream_id": t.stream_id,
                                     "topic_id": t.id, "count": count})

    async def delete_segments(self, stream: Identifier, topic: Identifier, partition_id: int,
                              count: int) -> None:
        t = self.meta.topic(stream, topic)
        p = self.partition(t, partition_id)
        if self.cluster is not None:
            await self.cluster.delete_segments(t.stream_id, t.id, p.id, count)
            return
        if self.shards is not None and elsewhere(p.log):
            await self.shards.maintain(t, p.id, "delete_segments", count)
            return
        p.log.delete_oldest(count)

    async def delete_records(self, t: Topic, partition_id: int, offset: int) -> int:
        """Raise a partition's log start offset to `offset` (Kafka DeleteRecords): records
        below it are no longer readable through either door. Returns the new start offset."""
        p = self.partition(t, partition_id)
        if self.shards is not None and elsewhere(p.log):
            return await self.shards.maintain(t, p.id, "delete_records", offset)
        if not 0 <= offset <= p.log.next_offset:
            raise IggyError(ErrorCode.INVALID_OFFSET,
                            f"offset {offset} is outside 0..{p.log.next_offset}")
        if self.cluster is not None:  # an op of the partition's group: every replica moves
            start = await self.cluster.delete_records(t.stream_id, t.id, partition_id, offset)
            if start is None:
                raise IggyError(ErrorCode.INVALID_OFFSET, f"offset {offset} is past the end")
            return start
        try:
            return p.log.advance_start(offset)
        except OSError as e:  # the new start offset could not be stored: nothing changed
            raise self.commands.writes.failed(e) from None


def _rebalance_all(t: Topic) -> None:
    for g in t.groups.values():
        groups.rebalance(g, len(t.partitions))
