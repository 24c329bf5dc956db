"""Classic-group bookkeeping: members, the group record and its pure helpers (no timers)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from pyggy.core.records.kafka_errors import ErrorCode
from pyggy.kafka_wire.groups.results import JoinMember
from pyggy.kafka_wire.groups.subscription import subscription_topics

Protocols = tuple[tuple[str, bytes], ...]


class GroupState(StrEnum):
    """Kafka's classic-group states, valued by the names DescribeGroups/ListGroups report."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


def random_uuid() -> str:
    """A new member id's random part (a UUID4, as Kafka's coordinator names members).
    `uuid` is imported here, at the first join: it imports `platform`, whose regexes would
    otherwise be compiled at every server start (BENCHMARKS.md, start-up)."""
    import uuid

    return str(uuid.uuid4())


def normalize_protocols(protocols: Sequence[tuple[str, bytes]]) -> Protocols:
    """Copy (name, metadata) pairs out of any receive buffer; keep the first of a repeated name."""
    seen: dict[str, bytes] = {}
    for name, metadata in protocols:
        seen.setdefault(name, bytes(metadata))
    return tuple(seen.items())


@dataclass(eq=False)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: Protocols
    assignment: bytes = b""
    join_future: asyncio.Future | None = None  # set while the member awaits a JoinGroup answer
    sync_future: asyncio.Future | None = None  # set while it awaits the leader's SyncGroup
    is_new: bool = True  # not yet through a completed join: expires even while awaiting it
    expires_at: float = 0.0  # ms on the coordinator clock

    @property
    def awaiting_join(self) -> bool:
        return self.join_future is not None

    def metadata(self, protocol: str | None) -> bytes:
        return next((md for name, md in self.protocols if name == protocol), b"")

    def names(self) -> list[str]:
        return [name for name, _ in self.protocols]


@dataclass(eq=False)
class Group:
    group_id: str
    state: GroupState = GroupState.EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)  # in join order
    pending: dict[str, float] = field(default_factory=dict)  # MEMBER_ID_REQUIRED ids → expiry ms
    static: dict[str, str] = field(default_factory=dict)  # group.instance.id → member id
    join_deadline: float | None = None  # PreparingRebalance: rebalance timeout expiry
    delay_until: float | None = None  # initial rebalance delay (group was Empty)
    delay_cap: float = 0.0
    pending_sync: set[str] = field(default_factory=set)  # joined but have not synced yet
    sync_deadline: float | None = None
    empty_since: float | None = None  # for dropping idle Empty groups

    def add(self, member: Member) -> None:
        if not self.members:
            self.leader = None
        self.members[member.member_id] = member
        if self.leader is None:
            self.leader = member.member_id
        if member.group_instance_id is not None:
            self.static[member.group_instance_id] = member.member_id

    def remove(self, member_id: str) -> Member:
        member = self.members.pop(member_id)
        if member.group_instance_id is not None and self.static.get(
                member.group_instance_id) == member_id:
            del self.static[member.group_instance_id]
        self.pending_sync.discard(member_id)
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)
        return member

    def replace(self, old_id: str, member: Member) -> Member:
        """Put ``member`` in ``old_id``'s place (order, leadership, assignment, pending sync)."""
        old = self.members[old_id]
        member.assignment = old.assignment
        self.members = {(member.member_id if mid == old_id else mid): (member if mid == old_id
                        else m) for mid, m in self.members.items()}
        if member.group_instance_id is not None:
            self.static[member.group_instance_id] = member.member_id
        if self.leader == old_id:
            self.leader = member.member_id
        if old_id in self.pending_sync:
            self.pending_sync.discard(old_id)
            self.pending_sync.add(member.member_id)
        return old

    def validate_member(self, member_id: str, group_instance_id: str | None) -> ErrorCode:
        """Kafka's ``validateMember``: the static mapping wins when an instance id is given."""
        if group_instance_id is not None:
            known = self.static.get(group_instance_id)
            if known is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            return ErrorCode.NONE if known == member_id else ErrorCode.FENCED_INSTANCE_ID
        return ErrorCode.NONE if member_id in self.members else ErrorCode.UNKNOWN_MEMBER_ID

    def supports(self, protocol_type: str, names: Sequence[str],
                 exclude: str | None = None) -> bool:
        """Whether a joiner fits: same protocol type and a protocol every other member has."""
        if not protocol_type or not names:
            return False
        others = [m for mid, m in self.members.items() if mid != exclude]
        if not others:
            return True
        if protocol_type != self.protocol_type:
            return False
        common = set(others[0].names()).intersection(*(m.names() for m in others[1:]))
        return any(name in common for name in names)

    def all_joined(self) -> bool:
        return not self.pending and all(m.awaiting_join for m in self.members.values())

    def select_protocol(self) -> str | None:
        """Kafka's vote: each member picks its first protocol that every member supports."""
        members = list(self.members.values())
        if not members:
            return None
        common = set(members[0].names()).intersection(*(m.names() for m in members[1:]))
        if not common:
            return members[0].protocols[0][0] if members[0].protocols else None
        votes = Counter(next(n for n in m.names() if n in common) for m in members)
        best = max(votes.values())
        # ties go to the first member's preference order, so the choice is deterministic
        return next(n for n in members[0].names() if votes.get(n) == best)

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def leader_members(self) -> tuple[JoinMember, ...]:
        return tuple(JoinMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
                     for m in self.members.values())

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to; None when some subscription cannot be read."""
        topics: set[str] = set()
        for m in self.members.values():
            for _, metadata in m.protocols:
                parsed = subscription_topics(metadata)
                if parsed is None:
                    return None
                topics.update(parsed)
        return topics
