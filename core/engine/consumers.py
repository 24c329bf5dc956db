"""ConsumerService: Iggy consumer offsets (per consumer or consumer group and partition) and
Iggy consumer groups (created and deleted through the state log; membership, assignment and
generations in memory, as Iggy keeps them).

Offset stores and deletes are `replicated.py` changes (kinds `iggy_offset`,
`iggy_offset_delete`): at once on one node, through the metadata group in a cluster. The
proposer resolves the consumer group to its id and checks the offset against the partition;
the body carries (stream id, topic id, partition id, kind, key, offset)."""

from __future__ import annotations

from pyggy.core import groups
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import ConsumerGroup, Identifier, Partition, Topic
from pyggy.core.offsets import CONSUMER, CONSUMER_GROUP, ConsumerOffsets
from pyggy.core.storage.outage import WriteOutage

from .commands import CommandLog
from .metadata import MetadataService
from .partitions import PartitionFiles
from .replicated import Body, ReplicatedState


class ConsumerService:
    def __init__(self, commands: CommandLog, metadata: MetadataService,
                 files: PartitionFiles, replicated: ReplicatedState | None = None) -> None:
        self.commands = commands
        self.meta = commands.meta
        self.metadata = metadata
        self.files = files
        self.offset_writes = WriteOutage("consumer offsets", commands.clock,
                                         commands.writes.log)
        self.replicated = replicated or ReplicatedState()
        self.replicated.register("iggy_offset", self._apply_store)
        self.replicated.register("iggy_offset_delete", self._apply_delete)

    # -- offsets ---------------------------------------------------------------------------
    def key(self, t: Topic, kind: int, consumer: Identifier) -> Identifier:
        """The key a consumer's offsets are stored under: its id or name, or its group's id."""
        if kind == CONSUMER_GROUP:
            return self.meta.group(t.stream_id, t.id, consumer).id
        if kind != CONSUMER:
            raise IggyError(ErrorCode.INVALID_FORMAT, "invalid consumer kind")
        return consumer

    def _offsets_for(self, kind: int, consumer: Identifier, stream: Identifier,
                     topic: Identifier, partition_id: int | None
                     ) -> tuple[ConsumerOffsets, Identifier, Partition]:
        t = self.meta.topic(stream, topic)
        key = self.key(t, kind, consumer)
        p = self.metadata.partition(t, partition_id or 0)
        return self.files.offsets_of(t, p.id), key, p

    async def store_offset(self, kind: int, consumer: Identifier, stream: Identifier,
                           topic: Identifier, partition_id: int | None, offset: int) -> None:
        offsets, key, p = self._offsets_for(kind, consumer, stream, topic, partition_id)
        if offset > p.current_offset:  # as Iggy: an offset past the partition's end is refused
            raise IggyError(ErrorCode.INVALID_OFFSET, f"offset {offset} > {p.current_offset}")
        t = self.meta.topic(stream, topic)
        await self.replicate_store(t, p.id, kind, key, offset)

    async def replicate_store(self, t: Topic, partition_id: int, kind: int, key: Identifier,
                              offset: int) -> None:
        """Store an offset everywhere (a cluster's metadata group) or here (one node)."""
        try:
            await self.replicated.run("iggy_offset", {
                "stream_id": t.stream_id, "topic_id": t.id, "partition_id": partition_id,
                "consumer_kind": kind, "key": key, "offset": offset})
        except OSError as e:
            raise self.offset_writes.failed(e) from None
        self.offset_writes.ok()

    def _target(self, body: Body) -> ConsumerOffsets | None:
        """The offsets of the body's partition; None once it is gone (an op replayed after
        its topic was deleted)."""
        t = self.metadata.get_topic(body["stream_id"], body["topic_id"])
        if t is None or not 0 <= body["partition_id"] < len(t.partitions):
            return None
        return self.files.offsets_of(t, body["partition_id"])

    def _apply_store(self, body: Body) -> None:
        offsets = self._target(body)
        if offsets is not None:
            offsets.store(body["consumer_kind"], body["key"], body["offset"])

    def _apply_delete(self, body: Body) -> None:
        offsets = self._target(body)
        if offsets is None or not offsets.delete(body["consumer_kind"], body["key"]):
            raise IggyError(ErrorCode.CONSUMER_OFFSET_NOT_FOUND, "consumer offset not found")

    def store(self, offsets: ConsumerOffsets, kind: int, key: Identifier, offset: int) -> None:
        try:
            offsets.store(kind, key, offset)
        except OSError as e:
            raise self.offset_writes.failed(e) from None
        self.offset_writes.ok()

    def get_offset(self, kind: int, consumer: Identifier, stream: Identifier,
                   topic: Identifier, partition_id: int | None) -> tuple[int, int, int] | None:
        """(partition id, current offset, stored offset) or None when nothing is stored."""
        offsets, key, p = self._offsets_for(kind, consumer, stream, topic, partition_id)
        stored = offsets.get(kind, key)
        return None if stored is None else (p.id, p.current_offset, stored)

    async def delete_offset(self, kind: int, consumer: Identifier, stream: Identifier,
                            topic: Identifier, partition_id: int | None) -> None:
        offsets, key, p = self._offsets_for(kind, consumer, stream, topic, partition_id)
        if offsets.get(kind, key) is None:
            raise IggyError(ErrorCode.CONSUMER_OFFSET_NOT_FOUND, "consumer offset not found")
        t = self.meta.topic(stream, topic)
        await self.replicated.run("iggy_offset_delete", {
            "stream_id": t.stream_id, "topic_id": t.id, "partition_id": p.id,
            "consumer_kind": kind, "key": key})

    # -- groups ----------------------------------------------------------------------------
    async def create_group(self, stream: Identifier, topic: Identifier, name: str) -> ConsumerGroup:
        t = self.meta.topic(stream, topic)
        return await self.commands.propose({"type": "create_group", "stream_id": t.stream_id,
                                            "topic_id": t.id, "name": name})

    def get_group(self, stream: Identifier, topic: Identifier,
                  group: Identifier) -> ConsumerGroup | None:
        try:
            return self.meta.group(stream, topic, group)
        except IggyError:
            return None

    def group(self, stream: Identifier, topic: Identifier, group: Identifier) -> ConsumerGroup:
        return self.meta.group(stream, topic, group)

    def groups(self, stream: Identifier, topic: Identifier) -> list[ConsumerGroup]:
        return sorted(self.meta.topic(stream, topic).groups.values(), key=lambda g: g.id)

    def all_groups(self) -> list[tuple[Topic, ConsumerGroup]]:
        return [(t, g) for t in self.metadata.all_topics() for g in t.groups.values()]

    async def delete_group(self, stream: Identifier, topic: Identifier, group: Identifier) -> None:
        t = self.meta.topic(stream, topic)
        # the group's offsets go where the command is applied (MetadataService.apply)
        await self.commands.propose({"type": "delete_group", "stream_id": t.stream_id,
                                     "topic_id": t.id,
                                     "group_id": self.meta.group(t.stream_id, t.id, group).id})

    def join_group(self, stream: Identifier, topic: Identifier, group: Identifier,
                   member_id: int) -> None:
        t = self.meta.topic(stream, topic)
        groups.join(self.meta.group(t.stream_id, t.id, group), member_id, len(t.partitions))

    def leave_group(self, stream: Identifier, topic: Identifier, group: Identifier,
                    member_id: int) -> None:
        t = self.meta.topic(stream, topic)
        g = self.meta.group(t.stream_id, t.id, group)
        if not groups.leave(g, member_id, len(t.partitions)):
            raise IggyError(ErrorCode.CONSUMER_GROUP_MEMBER_NOT_FOUND, "not a member")

    def sync_group(self, stream: Identifier, topic: Identifier, group: Identifier,
                   member_id: int) -> tuple[int, list[int]] | None:
        g = self.meta.group(stream, topic, group)
        m = g.members.get(member_id)
        return None if m is None else (g.generation, list(m.partitions))

    def member_gone(self, member_id: int) -> None:
        """A client session ended: remove it from every group it joined."""
        for t, g in self.all_groups():
            groups.leave(g, member_id, len(t.partitions))

    def members(self) -> set[int]:
        """Client ids that are members of some Iggy consumer group."""
        return {m for _, g in self.all_groups() for m in g.members}

    # -- Kafka group configs ---------------------------------------------------------------
    def group_configs(self, group: str) -> dict[str, str]:
        """The dynamic configs set on a Kafka consumer group (KIP-848 group configs)."""
        return dict(self.meta.group_configs.get(group, {}))

    async def set_group_configs(self, group: str, configs: dict[str, str]) -> None:
        await self.commands.propose({"type": "set_group_configs", "group": group,
                                     "configs": dict(configs)})

    # -- Kafka dynamic broker configs --------------------------------------------------------
    def broker_configs(self) -> dict[str, str]:
        """Dynamic broker configs set through the Kafka door (kept, without effect)."""
        return dict(self.meta.broker_configs)

    async def set_broker_configs(self, configs: dict[str, str]) -> None:
        await self.commands.propose({"type": "set_broker_configs", "configs": dict(configs)})
