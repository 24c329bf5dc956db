"""GroupCoordinator: membership plus committed offsets and the group admin APIs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from pyggy.core.clock import Clock
from pyggy.core.records.kafka_errors import ErrorCode
from pyggy.kafka_wire.groups.consumer import (
    ConsumerGroup,
    ConsumerGroups,
    Heartbeat,
    HeartbeatResult,
)
from pyggy.kafka_wire.groups.consumer import GroupState as ConsumerState
from pyggy.kafka_wire.groups.membership import Membership
from pyggy.kafka_wire.groups.results import (
    Eviction,
    FetchedOffset,
    GroupDescription,
    GroupListing,
    JoinResult,
    MemberDescription,
)
from pyggy.kafka_wire.groups.state import Group, GroupState
from pyggy.kafka_wire.groups.store import CommittedOffset, OffsetStore, TopicPartition
from pyggy.kafka_wire.groups.subscription import subscription_topics

log = logging.getLogger(__name__)
S = GroupState

#: (topic, partition, offset, leader_epoch (-1: none), metadata (None: none))
OffsetCommitEntry = tuple[str, int, int, int, str | None]


class GroupCoordinator(Membership):
    """Consumer groups of one broker: classic ones (see ``Membership`` for the rebalance
    protocol) and KIP-848 ones (``self.consumer``, `consumer.ConsumerGroups`). A group id is
    one type at a time: an Empty group of the other type is converted on the first join, a
    non-empty one refuses it (ConsumerGroupHeartbeat: GROUP_ID_NOT_FOUND; JoinGroup:
    INCONSISTENT_GROUP_PROTOCOL, where Kafka 4.1 would let a "consumer"-type classic member
    in: docs/kafka-consumer-groups.md).
    ``consumer_topics()`` is the topic view KIP-848 assignors and regexes see;
    ``consumer_timeouts(group)`` a group's (session timeout, heartbeat interval).

    ``offsets`` persists committed offsets; groups that have offsets in it exist (Empty) from
    the start. ``partition_exists(topic, partition)``, when given, makes OffsetCommit answer
    UNKNOWN_TOPIC_OR_PARTITION for partitions the broker does not have. A group with no
    member, pending member id or committed offset is forgotten once it has been Empty for
    ``empty_group_retention_ms`` (Kafka drops such groups at its periodic offsets cleanup).
    """

    def __init__(
        self,
        clock: Clock,
        offsets: OffsetStore,
        *,
        initial_rebalance_delay_ms: int = 0,
        min_session_timeout_ms: int = 6_000,
        max_session_timeout_ms: int = 1_800_000,
        new_member_join_timeout_ms: int = 300_000,
        max_group_size: int | None = None,
        empty_group_retention_ms: int = 600_000,
        offset_metadata_max_bytes: int = 4096,
        partition_exists: Callable[[str, int], bool] | None = None,
        new_future: Callable[[], asyncio.Future] | None = None,
        new_uuid: Callable[[], str] | None = None,
        consumer_topics: Callable[[], Mapping[str, tuple[bytes, int]]] | None = None,
        consumer_timeouts: Callable[[str], tuple[int, int]] | None = None,
    ) -> None:
        super().__init__(
            clock,
            initial_rebalance_delay_ms=initial_rebalance_delay_ms,
            min_session_timeout_ms=min_session_timeout_ms,
            max_session_timeout_ms=max_session_timeout_ms,
            new_member_join_timeout_ms=new_member_join_timeout_ms,
            max_group_size=max_group_size,
            new_future=new_future,
            new_uuid=new_uuid,
        )
        self.offsets = offsets
        self.offset_metadata_max_bytes = offset_metadata_max_bytes
        self.partition_exists = partition_exists
        self.empty_group_retention_ms = empty_group_retention_ms
        self.consumer = ConsumerGroups(clock, consumer_topics or dict,
                                       timeouts=consumer_timeouts,
                                       max_group_size=max_group_size, new_uuid=new_uuid)
        for group_id in offsets.groups():
            self.groups[group_id] = Group(group_id)

    # ---------------------------------------------------------------- KIP-848 and classic

    def consumer_heartbeat(self, hb: Heartbeat) -> HeartbeatResult:
        """ConsumerGroupHeartbeat; an Empty classic group becomes a consumer group on join."""
        classic = self.groups.get(hb.group_id)
        if classic is not None:
            if classic.state is not S.EMPTY or classic.pending:
                return HeartbeatResult(ErrorCode.GROUP_ID_NOT_FOUND,
                                       f"Group {hb.group_id} is not a consumer group.")
            if hb.member_epoch == 0:
                del self.groups[hb.group_id]
        return self.consumer.heartbeat(hb)

    def join(self, group_id: str, *args: object, **kwargs: object) -> asyncio.Future[JoinResult]:
        """JoinGroup (``Membership.join``); a non-empty consumer group refuses classic members
        (INCONSISTENT_GROUP_PROTOCOL), an Empty one becomes a classic group."""
        cg = self.consumer.groups.get(group_id)
        if cg is not None:
            if cg.members:
                future = self._new_future()
                future.set_result(JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL,
                                             member_id=str(args[0]) if args else ""))
                return future
            del self.consumer.groups[group_id]
        return super().join(group_id, *args, **kwargs)  # type: ignore[arg-type]

    def tick(self, now: float | None = None) -> list[Eviction]:
        """``Membership.tick``, then forget idle Empty groups that hold no offsets."""
        evictions = super().tick(now)
        evictions += [Eviction(g, m, reason) for g, m, reason in self.consumer.tick(now)]
        now_ms = (self.clock.monotonic() if now is None else now) * 1000.0
        for cg in list(self.consumer.groups.values()):
            if cg.members:
                cg.empty_since = None
            elif cg.empty_since is None:
                cg.empty_since = now_ms
            elif now_ms - cg.empty_since >= self.empty_group_retention_ms:
                if self.offsets.offsets(cg.group_id):
                    cg.empty_since = now_ms
                else:
                    del self.consumer.groups[cg.group_id]
        for group in list(self.groups.values()):
            if group.state is not S.EMPTY or group.pending:
                group.empty_since = None
            elif group.empty_since is None:
                group.empty_since = now_ms
            elif now_ms - group.empty_since >= self.empty_group_retention_ms:
                if self.offsets.offsets(group.group_id):
                    group.empty_since = now_ms  # look again one retention period later
                else:
                    del self.groups[group.group_id]
        return evictions

    # ---------------------------------------------------------------- offsets

    def commit_offsets(self, group_id: str, generation_id: int, member_id: str,
                       group_instance_id: str | None,
                       offsets: Sequence[OffsetCommitEntry],
                       api_version: int = 9) -> list[ErrorCode]:
        """OffsetCommit; one error per entry, in order. Generation -1 with no member is a
        simple (standalone/admin) commit, accepted while the group is Empty or unknown. For a
        KIP-848 group the generation is the member epoch (OffsetCommit v9+)."""
        codes, accepted = self.check_commit(group_id, generation_id, member_id,
                                            group_instance_id, offsets, api_version)
        if accepted:
            try:
                self.store_offsets(group_id, accepted)
            except OSError as e:  # as Kafka answers a KAFKA_STORAGE_ERROR of its offsets log
                log.error("kafka group %s: offsets could not be stored: %s", group_id, e)
                return [ErrorCode.NOT_COORDINATOR if c == ErrorCode.NONE else c
                        for c in codes]
        return codes

    def check_commit(self, group_id: str, generation_id: int, member_id: str,
                     group_instance_id: str | None, offsets: Sequence[OffsetCommitEntry],
                     api_version: int = 9
                     ) -> tuple[list[ErrorCode], dict[TopicPartition, CommittedOffset]]:
        """OffsetCommit's checks: (one error per entry, the offsets to store). The caller
        stores them (`store_offsets`, on every replica of a cluster)."""
        cg = self.consumer.groups.get(group_id)
        if cg is not None:
            code = self.consumer.validate_commit(cg, member_id, generation_id, api_version)
        else:
            code = self._validate_commit(group_id, generation_id, member_id, group_instance_id)
        if code:
            return [code] * len(offsets), {}
        codes: list[ErrorCode] = []
        accepted: dict[TopicPartition, CommittedOffset] = {}
        for topic, partition, offset, leader_epoch, metadata in offsets:
            metadata = metadata or ""
            if self.partition_exists is not None and not self.partition_exists(topic, partition):
                codes.append(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            elif len(metadata) > self.offset_metadata_max_bytes:
                codes.append(ErrorCode.OFFSET_METADATA_TOO_LARGE)
            else:
                accepted[(topic, partition)] = CommittedOffset(offset, leader_epoch, metadata)
                codes.append(ErrorCode.NONE)
        return codes, accepted

    def store_offsets(self, group_id: str,
                      offsets: dict[TopicPartition, CommittedOffset]) -> None:
        """Store committed offsets (OSError: nothing changed); a group unknown here (a
        replica that was not the coordinator) exists from now on, Empty."""
        self.offsets.put(group_id, offsets)
        if group_id not in self.groups and group_id not in self.consumer.groups:
            self.groups[group_id] = Group(group_id)

    def _validate_commit(self, group_id: str, generation_id: int, member_id: str,
                         group_instance_id: str | None) -> ErrorCode:
        # Kafka ClassicGroup.validateOffsetCommit
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        group = self.groups.get(group_id)
        if group is None:
            if generation_id >= 0:
                return ErrorCode.ILLEGAL_GENERATION
            self.groups[group_id] = group = Group(group_id)  # a "simple" group
        if generation_id < 0 and group.state is S.EMPTY:
            return ErrorCode.NONE
        if generation_id >= 0 or member_id or group_instance_id is not None:
            code = group.validate_member(member_id, group_instance_id)
            if code:
                return code
            if generation_id != group.generation:
                return ErrorCode.ILLEGAL_GENERATION
        elif group.state is not S.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.state is S.COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        if member_id in group.members:
            member = group.members[member_id]
            member.expires_at = max(member.expires_at, self._now() + member.session_timeout_ms)
        return ErrorCode.NONE

    def validate_fetch(self, group_id: str, member_id: str | None, member_epoch: int,
                       ) -> ErrorCode:
        """OffsetFetch v9+ member check; only KIP-848 groups check it (as Kafka)."""
        cg = self.consumer.groups.get(group_id)
        if cg is None:
            return ErrorCode.NONE
        return self.consumer.validate_fetch(cg, member_id, member_epoch)

    def fetch_offsets(self, group_id: str,
                      topics: Sequence[tuple[str, Sequence[int]]] | None,
                      ) -> list[FetchedOffset]:
        """OffsetFetch for (topic, partitions) pairs, or every committed partition when
        ``topics`` is None. No commit (or no group) is offset -1, not an error."""
        if topics is None:
            return [FetchedOffset(t, p, o.offset, o.leader_epoch, o.metadata, ErrorCode.NONE)
                    for (t, p), o in sorted(self.offsets.offsets(group_id).items())]
        out = []
        for topic, partitions in topics:
            for partition in partitions:
                o = self.offsets.get(group_id, topic, partition)
                if o is None:
                    out.append(FetchedOffset(topic, partition, -1, -1, "", ErrorCode.NONE))
                else:
                    out.append(FetchedOffset(topic, partition, o.offset, o.leader_epoch,
                                             o.metadata, ErrorCode.NONE))
        return out

    def delete_offsets(self, group_id: str, partitions: Sequence[TopicPartition],
                       ) -> tuple[ErrorCode, list[ErrorCode]]:
        """OffsetDelete: (group error, one error per partition). A non-empty "consumer" group
        keeps the offsets of topics it subscribes to (GROUP_SUBSCRIBED_TO_TOPIC)."""
        code, codes, doomed = self.check_delete_offsets(group_id, partitions)
        if doomed:
            self.offsets.delete(group_id, doomed)
        return code, codes

    def check_delete_offsets(self, group_id: str, partitions: Sequence[TopicPartition],
                             ) -> tuple[ErrorCode, list[ErrorCode], list[TopicPartition]]:
        """OffsetDelete's checks: (group error, one error per partition, the partitions whose
        offsets go)."""
        cg = self.consumer.groups.get(group_id)
        if cg is not None:
            codes, doomed = self._consumer_offsets_to_delete(cg, partitions)
            return ErrorCode.NONE, codes, doomed
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND, [], []
        subscribed: set[str] | None = set()
        if group.state is not S.EMPTY:
            if group.protocol_type != "consumer":
                return ErrorCode.NON_EMPTY_GROUP, [], []
            subscribed = group.subscribed_topics()  # None: unreadable, assume every topic
        codes, doomed = [], []
        for topic, partition in partitions:
            if subscribed is None or topic in subscribed:
                codes.append(ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC)
            else:
                doomed.append((topic, partition))
                codes.append(ErrorCode.NONE)
        return ErrorCode.NONE, codes, doomed

    def _consumer_offsets_to_delete(self, cg: ConsumerGroup, partitions: Sequence[TopicPartition]
                                    ) -> tuple[list[ErrorCode], list[TopicPartition]]:
        """A KIP-848 group keeps the offsets of the topics it subscribes to."""
        subscribed = self.consumer.topic_names(cg)
        codes: list[ErrorCode] = []
        doomed: list[TopicPartition] = []
        for topic, partition in partitions:
            if topic in subscribed:
                codes.append(ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC)
            else:
                doomed.append((topic, partition))
                codes.append(ErrorCode.NONE)
        return codes, doomed

    def forget_partitions(self, topic: str, partitions: Iterable[int]) -> int:
        """Drop every group's committed offsets of these partitions (the topic, or some of its
        partitions, were deleted: as Kafka, a topic created again under the name starts with
        no committed offsets). Returns how many offsets were dropped."""
        doomed = {(topic, p) for p in partitions}
        dropped = 0
        for group_id in self.offsets.groups():
            mine = [tp for tp in self.offsets.offsets(group_id) if tp in doomed]
            if mine:
                self.offsets.delete(group_id, mine)
                dropped += len(mine)
        return dropped

    def group_topics(self, group_id: str) -> set[str]:
        """The topics a group consumes: its members' subscriptions (consumer protocol; other
        protocols' metadata is opaque) and the topics it has committed offsets for."""
        topics = {topic for topic, _ in self.offsets.offsets(group_id)}
        group = self.groups.get(group_id)
        if group is not None:
            for m in group.members.values():
                for _, metadata in m.protocols:
                    topics.update(subscription_topics(metadata) or ())
        cg = self.consumer.groups.get(group_id)
        if cg is not None:
            for cm in cg.members.values():
                topics.update(cm.topic_names)
        return topics

    # ---------------------------------------------------------------- admin

    def describe(self, group_id: str) -> GroupDescription:
        """DescribeGroups entry; metadata, assignments and protocol name only when Stable."""
        group = self.groups.get(group_id)
        if group is None:
            return GroupDescription(ErrorCode.GROUP_ID_NOT_FOUND, group_id, S.DEAD.value,
                                    "", "", ())
        stable = group.state is S.STABLE
        members = tuple(
            MemberDescription(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                              m.metadata(group.protocol_name) if stable else b"",
                              m.assignment if stable else b"")
            for m in group.members.values())
        return GroupDescription(ErrorCode.NONE, group_id, group.state.value,
                                group.protocol_type or "",
                                (group.protocol_name or "") if stable else "", members)

    def list_groups(self, states_filter: Iterable[str] | None = None,
                    types_filter: Iterable[str] | None = None) -> list[GroupListing]:
        """ListGroups; empty or None filters match all; names compare case-insensitively."""
        states = {s.lower() for s in states_filter or ()}
        types = {t.lower() for t in types_filter or ()}
        out = []
        if not types or "classic" in types:
            out += [GroupListing(g.group_id, g.protocol_type or "", g.state.value)
                    for g in self.groups.values()
                    if not states or g.state.value.lower() in states]
        if not types or "consumer" in types:
            out += [GroupListing(g.group_id, "consumer", g.state.value, "consumer")
                    for g in self.consumer.groups.values()
                    if not states or g.state.value.lower() in states]
        return out

    def delete_groups(self, group_ids: Iterable[str]) -> list[tuple[str, ErrorCode]]:
        """DeleteGroups: Empty groups go with their offsets; others are NON_EMPTY_GROUP."""
        results = self.check_delete_groups(group_ids)
        self.forget_groups([g for g, code in results if code == ErrorCode.NONE])
        return results

    def check_delete_groups(self, group_ids: Iterable[str]) -> list[tuple[str, ErrorCode]]:
        """DeleteGroups' checks: the groups that may go answer NONE."""
        results = []
        for group_id in group_ids:
            cg = self.consumer.groups.get(group_id)
            if cg is not None:
                results.append((group_id, ErrorCode.NON_EMPTY_GROUP
                                if cg.state is not ConsumerState.EMPTY else ErrorCode.NONE))
                continue
            group = self.groups.get(group_id)
            if group is None:
                results.append((group_id, ErrorCode.GROUP_ID_NOT_FOUND))
            elif group.state is not S.EMPTY:
                results.append((group_id, ErrorCode.NON_EMPTY_GROUP))
            else:
                results.append((group_id, ErrorCode.NONE))
        return results

    def forget_groups(self, group_ids: Iterable[str]) -> None:
        """Delete groups with their offsets (members, if a replica has any, go too)."""
        for group_id in group_ids:
            self.groups.pop(group_id, None)
            self.consumer.groups.pop(group_id, None)
            self.offsets.delete_group(group_id)
