"""ConsumerService: Iggy consumer offsets (per consumer or consumer group and partition) and
Iggy consumer groups (created and deleted through the state log; membership, assignment and
generations in memory, as Iggy keeps them).

Offset stores and deletes are `replicated.py` changes (kinds `iggy_offset`,
`iggy_offset_delete`): at once on one node, through the metadata group in a cluster. The
proposer resolves the consumer group to its id and checks the offset against the partition;
the body carries (stream id, topic id, partition id, kind, key, offset).

In a server of several shard processes (pyggy/shards, docs/sharding.md) a `GroupRoute` is set
on shards > 0: group membership changes go to shard 0, which owns them as it owns metadata and
sends every shard the result; offsets of a partition another shard owns are kept by that one
(`OffsetRoute`, on every shard)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pyggy.core import groups
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.model import ConsumerGroup, GroupMember, Identifier, Partition, Topic
from pyggy.core.offsets import CONSUMER, CONSUMER_GROUP, ConsumerOffsets
from pyggy.core.storage.outage import WriteOutage

from .commands import CommandLog
from .metadata import MetadataService
from .partitions import PartitionFiles, elsewhere
from .replicated import Body, ReplicatedState

# what a forwarded offset request answers: GET's (partition, current, stored) or None
OffsetAnswer = tuple[int, int, int] | None


class GroupRoute(Protocol):
    """Where a shard process > 0 sends what it does not own (pyggy/shards/runtime.py)."""

    async def members(self, op: str, t: Topic, group_id: int, member_id: int) -> None:
        """`op` ("join", "leave") done by shard 0; returns once applied here too."""
        ...

    def gone(self, member_id: int) -> None:
        """A session with group memberships ended: shard 0 removes it (in the background)."""
        ...


class OffsetRoute(Protocol):
    """Where a shard process sends offset requests of partitions another shard owns."""

    async def offset(self, t: Topic, partition_id: int, op: str, kind: int,
                     consumer: Identifier, args: dict[str, Any]) -> OffsetAnswer:
        """A consumer-offset `op` ("get", "store", "delete") done by the partition's owner."""
        ...


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
        self.route: GroupRoute | None = None  # shards > 0 of a sharded server
        self.owners: OffsetRoute | None = None  # every shard of a sharded server
        # shard 0 of a sharded server: told of every membership change it made, to send it on
        self.changed: Callable[[Topic, ConsumerGroup], None] | None = None

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

    def _remote(self, stream: Identifier, topic: Identifier,
                partition_id: int | None) -> tuple[Topic, int] | None:
        """(topic, partition id) when another shard process owns the partition."""
        if self.owners is None:
            return None
        t = self.meta.topic(stream, topic)
        p = self.metadata.partition(t, partition_id or 0)
        return (t, p.id) if elsewhere(p.log) else None

    async def store_offset(self, kind: int, consumer: Identifier, stream: Identifier,
                           topic: Identifier, partition_id: int | None, offset: int,
                           require_messages: bool = False) -> None:
        """Store a consumer's offset; `require_messages`: refuse it on a partition that never
        held a message, as the 0.8 server does."""
        if self.owners is not None and (there := self._remote(stream, topic, partition_id)):
            await self.owners.offset(*there, "store", kind, consumer, {
                "offset": offset, "require_messages": require_messages})
            return
        offsets, key, p = self._offsets_for(kind, consumer, stream, topic, partition_id)
        if offset > p.current_offset or (require_messages and p.log.next_offset == 0):
            # as Iggy: an offset past the partition's end is refused
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

    async def get_offset_async(self, kind: int, consumer: Identifier, stream: Identifier,
                               topic: Identifier, partition_id: int | None) -> OffsetAnswer:
        """`get_offset`, asked of the partition's owner when that is another shard."""
        if self.owners is not None and (there := self._remote(stream, topic, partition_id)):
            return await self.owners.offset(*there, "get", kind, consumer, {})
        return self.get_offset(kind, consumer, stream, topic, partition_id)

    def get_offset(self, kind: int, consumer: Identifier, stream: Identifier,
                   topic: Identifier, partition_id: int | None) -> OffsetAnswer:
        """(partition id, current offset, stored offset) or None when nothing is stored."""
        offsets, key, p = self._offsets_for(kind, consumer, stream, topic, partition_id)
        stored = offsets.get(kind, key)
        return None if stored is None else (p.id, p.current_offset, stored)

    async def delete_offset(self, kind: int, consumer: Identifier, stream: Identifier,
                            topic: Identifier, partition_id: int | None) -> None:
        if self.owners is not None and (there := self._remote(stream, topic, partition_id)):
            await self.owners.offset(*there, "delete", kind, consumer, {})
            return
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

    async def join(self, stream: Identifier, topic: Identifier, group: Identifier,
                   member_id: int) -> None:
        """`join_group`, done by shard 0 in a sharded server."""
        if self.route is not None:
            t = self.meta.topic(stream, topic)
            await self.route.members("join", t, self.meta.group(t.stream_id, t.id, group).id,
                                     member_id)
        else:
            self.join_group(stream, topic, group, member_id)

    async def leave(self, stream: Identifier, topic: Identifier, group: Identifier,
                    member_id: int) -> None:
        """`leave_group`, done by shard 0 in a sharded server."""
        if self.route is not None:
            t = self.meta.topic(stream, topic)
            await self.route.members("leave", t, self.meta.group(t.stream_id, t.id, group).id,
                                     member_id)
        else:
            self.leave_group(stream, topic, group, member_id)

    def join_group(self, stream: Identifier, topic: Identifier, group: Identifier,
                   member_id: int) -> None:
        t = self.meta.topic(stream, topic)
        g = self.meta.group(t.stream_id, t.id, group)
        if groups.join(g, member_id, len(t.partitions)) and self.changed is not None:
            self.changed(t, g)

    def leave_group(self, stream: Identifier, topic: Identifier, group: Identifier,
                    member_id: int) -> None:
        t = self.meta.topic(stream, topic)
        g = self.meta.group(t.stream_id, t.id, group)
        if not groups.leave(g, member_id, len(t.partitions)):
            raise IggyError(ErrorCode.CONSUMER_GROUP_MEMBER_NOT_FOUND, "not a member")
        if self.changed is not None:
            self.changed(t, g)

    def sync_group(self, stream: Identifier, topic: Identifier, group: Identifier,
                   member_id: int) -> tuple[int, list[int]] | None:
        g = self.meta.group(stream, topic, group)
        m = g.members.get(member_id)
        return None if m is None else (g.generation, list(m.partitions))

    def member_gone(self, member_id: int) -> None:
        """A client session ended: remove it from every group it joined."""
        if self.route is not None:
            if member_id in self.members():
                self.route.gone(member_id)
            return
        for t, g in self.all_groups():
            if groups.leave(g, member_id, len(t.partitions)) and self.changed is not None:
                self.changed(t, g)

    def set_members(self, stream_id: int, topic_id: int, group_id: int, generation: int,
                    members: list[tuple[int, list[int]]]) -> None:
        """Take a group's membership as shard 0 made it (a shard process > 0); nothing if the
        group is gone (shard 0 sent it before the command that deleted it)."""
        t = self.metadata.get_topic(stream_id, topic_id)
        g = None if t is None else t.groups.get(group_id)
        if g is not None:
            g.members = {m: GroupMember(m, list(parts)) for m, parts in members}
            g.generation = generation

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
