"""KIP-848 consumer groups (ConsumerGroupHeartbeat 68, ConsumerGroupDescribe 69), sans-I/O.

The broker owns the assignment: every heartbeat may change the member's subscription, which
bumps the *group epoch*; when the group epoch is past the *assignment epoch* the server-side
assignor (`assignors.py`) computes a new target assignment; each member then reconciles
towards its target one heartbeat at a time (KIP-848 "Member reconciliation"):

- partitions it owns but no longer targets are *pending revocation*: the member keeps its
  epoch and is told only the partitions it keeps (state ``unrevoked_partitions``) until a
  heartbeat's owned partitions no longer hold any of them, or its rebalance timeout fences it;
- target partitions still owned (or pending revocation) by another member are withheld
  (``unreleased_partitions``) and handed over on a later heartbeat once released;
- otherwise it moves to the assignment epoch with its whole target (``stable``).

Fencing: an epoch above the member's is FENCED_MEMBER_EPOCH; below it too, unless it is the
member's previous epoch and the owned partitions are a subset of its assignment (the answer
with the bumped epoch was lost). An unknown member id is UNKNOWN_MEMBER_ID. Epoch -1 leaves,
-2 is a static member's temporary leave (it keeps its partitions until its session expires or
a member with its instance id joins again and takes them over). Sessions expire after the
group's ``consumer.session.timeout.ms``. Topics are named by id (KIP-516). Regular expressions
are Kafka's RE2/J, matched with Python's ``re`` (``fullmatch``) — the common subset agrees;
docs/kafka-consumer-groups.md lists the differences.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # to refuse nested repeats
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from pyggy.core.clock import Clock
from pyggy.core.records.kafka_errors import ErrorCode
from pyggy.kafka_wire.groups.assignors import ASSIGNORS, DEFAULT_ASSIGNOR, Partitions, TopicId
from pyggy.kafka_wire.groups.state import random_uuid

LEAVE_EPOCH = -1
LEAVE_STATIC_EPOCH = -2
#: topic name → (topic id, partition count): what the broker has now
TopicsView = Mapping[str, tuple[TopicId, int]]
#: owned/assigned partitions as the wire carries them: (topic id, partitions)
WirePartitions = list[tuple[TopicId, list[int]]]


class MemberState(StrEnum):
    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


class GroupState(StrEnum):
    """Kafka's ConsumerGroupState names, as ListGroups/ConsumerGroupDescribe report them."""

    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


class HeartbeatError(Exception):
    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(eq=False)
class Member:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    rebalance_timeout_ms: int = 300_000
    topic_names: tuple[str, ...] = ()
    regex: str | None = None
    assignor: str | None = None
    epoch: int = 0
    previous_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: Partitions = field(default_factory=dict)
    revoking: Partitions = field(default_factory=dict)
    session_deadline: float = 0.0  # ms on the coordinator clock
    revocation_deadline: float | None = None
    may_read: Callable[[str], bool] | None = None  # the principal's topic filter for regexes

    def owned(self) -> Iterable[tuple[TopicId, int]]:
        for parts in (self.assigned, self.revoking):
            for t, ps in parts.items():
                for p in ps:
                    yield t, p


@dataclass(eq=False)
class ConsumerGroup:
    group_id: str
    epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, Member] = field(default_factory=dict)
    static: dict[str, str] = field(default_factory=dict)  # instance id → member id
    target: dict[str, Partitions] = field(default_factory=dict)
    metadata: dict[str, tuple[TopicId, int]] = field(default_factory=dict)  # subscribed topics
    empty_since: float | None = None  # ms; for dropping idle Empty groups

    @property
    def state(self) -> GroupState:
        if not self.members:
            return GroupState.EMPTY
        if self.epoch > self.assignment_epoch:
            return GroupState.ASSIGNING
        if any(m.epoch != self.assignment_epoch or m.state is not MemberState.STABLE
               for m in self.members.values()):
            return GroupState.RECONCILING
        return GroupState.STABLE

    def preferred_assignor(self) -> str:
        """The server assignor most members asked for (Kafka's rule), else the default."""
        asked: dict[str, int] = {}
        for m in self.members.values():
            if m.assignor:
                asked[m.assignor] = asked.get(m.assignor, 0) + 1
        return max(sorted(asked), key=lambda a: asked[a]) if asked else DEFAULT_ASSIGNOR


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A decoded ConsumerGroupHeartbeat request (None = unchanged since the last one)."""

    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    topic_names: list[str] | None = None
    regex: str | None = None
    assignor: str | None = None
    owned: WirePartitions | None = None
    client_id: str = ""
    client_host: str = ""
    version: int = 1
    may_read: Callable[[str], bool] | None = None  # regex matches are limited to these topics


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    error_code: int
    error_message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: WirePartitions | None = None


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Kafka's SubscribedTopicRegex (RE2/J) as a Python pattern; INVALID_REGULAR_EXPRESSION if
    it does not compile. RE2 has no backreferences or lookaround: refuse them as RE2/J does.
    A repetition inside a repetition (``(a+)+``) is refused too: RE2 matches in linear time,
    Python's backtracking engine could take exponential time on it (a member could stall the
    server), so pyggy accepts only what it can match quickly (docs/kafka-consumer-groups.md)."""
    def invalid(why: str) -> HeartbeatError:
        return HeartbeatError(ErrorCode.INVALID_REGULAR_EXPRESSION,
                              f"SubscribedTopicRegex `{pattern}` is not a valid regular "
                              f"expression: {why}.")

    if re.search(r"\(\?[=!<]|\\[1-9]", pattern):
        raise invalid("lookaround and backreferences are not supported (RE2)")
    try:
        compiled = re.compile(pattern)
    except re.error as e:
        raise invalid(str(e)) from None
    if _nested_repeat(sre_parse.parse(pattern).data, False):
        raise invalid("a repetition inside a repetition could match in exponential time")
    return compiled


_REPEATS = (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT)


def _nested_repeat(items: list, inside: bool) -> bool:
    """Whether a parsed pattern has an unbounded-ish repetition within another repetition."""
    for op, arg in items:
        if op in _REPEATS:
            lo, hi, sub = arg
            repeats = hi is sre_parse.MAXREPEAT or hi > 1
            if repeats and inside:
                return True
            if _nested_repeat(sub.data if hasattr(sub, "data") else sub, inside or repeats):
                return True
        elif op is sre_parse.SUBPATTERN:
            if _nested_repeat(arg[3].data if hasattr(arg[3], "data") else arg[3], inside):
                return True
        elif op is sre_parse.BRANCH:
            if any(_nested_repeat(b.data if hasattr(b, "data") else b, inside) for b in arg[1]):
                return True
    return False


def _wire(parts: Partitions) -> WirePartitions:
    return [(t, sorted(ps)) for t, ps in sorted(parts.items()) if ps]


def _subset(owned: WirePartitions | None, of: Partitions) -> bool:
    if owned is None:
        return False
    return all(p in of.get(bytes(t), ()) for t, ps in owned for p in ps)


def _owns_any(owned: WirePartitions | None, parts: Partitions) -> bool:
    """Kafka's ``ownsRevokedPartitions``: None (not sent) counts as still owning."""
    if owned is None:
        return True
    return any(p in parts.get(bytes(t), ()) for t, ps in owned for p in ps)


class ConsumerGroups:
    """The KIP-848 groups of one broker. ``topics()`` is the broker's topic view (name → id,
    partition count). ``timeouts(group_id)`` gives the group's
    (session timeout, heartbeat interval) in ms (its group configs)."""

    def __init__(self, clock: Clock, topics: Callable[[], TopicsView], *,
                 timeouts: Callable[[str], tuple[int, int]] | None = None,
                 max_group_size: int | None = None,
                 new_uuid: Callable[[], str] | None = None) -> None:
        self.clock = clock
        self.topics = topics
        self.timeouts = timeouts or (lambda _g: (45_000, 5_000))
        self.max_group_size = max_group_size
        self.new_uuid = new_uuid or random_uuid
        self.groups: dict[str, ConsumerGroup] = {}
        self._regex: dict[str, re.Pattern[str]] = {}

    def _now(self) -> float:
        return self.clock.monotonic() * 1000.0

    # ------------------------------------------------------------- heartbeat

    def heartbeat(self, hb: Heartbeat) -> HeartbeatResult:
        try:
            _validate(hb)
            if hb.regex is not None:
                self._pattern(hb.regex)
            if hb.member_epoch in (LEAVE_EPOCH, LEAVE_STATIC_EPOCH):
                return self._leave(hb)
            return self._heartbeat(hb)
        except HeartbeatError as e:
            return HeartbeatResult(int(e.code), e.message, None, 0, 0, None)

    def _pattern(self, regex: str) -> re.Pattern[str]:
        pattern = self._regex.get(regex)
        if pattern is None:
            pattern = self._regex[regex] = compile_regex(regex)
        return pattern

    def _group(self, group_id: str, create: bool) -> ConsumerGroup:
        group = self.groups.get(group_id)
        if group is None:
            if not create:  # Kafka: GROUP_ID_NOT_FOUND. Membership does not outlive a restart
                # here, so a member still at its old epoch must be told to rejoin instead
                raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID,
                                     f"Consumer group {group_id} has no members; rejoin.")
            group = self.groups[group_id] = ConsumerGroup(group_id)
        return group

    def _heartbeat(self, hb: Heartbeat) -> HeartbeatResult:
        now = self._now()
        joining = hb.member_epoch == 0
        group = self._group(hb.group_id, joining)
        member_id = hb.member_id or self.new_uuid()  # v0: the coordinator names the member
        if (self.max_group_size is not None and member_id not in group.members
                and len(group.members) >= self.max_group_size):
            raise HeartbeatError(ErrorCode.GROUP_MAX_SIZE_REACHED,
                                 f"The consumer group has reached its maximum capacity of "
                                 f"{self.max_group_size} members.")
        member = self._member(group, member_id, hb)
        old_assigned = {t: set(ps) for t, ps in member.assigned.items()}
        new = member_id not in group.members
        bump = self._update(member, hb) or new
        if new:
            group.members[member_id] = member
            if member.instance_id is not None:
                group.static[member.instance_id] = member_id
        metadata = self._metadata(group)
        if metadata != group.metadata:
            group.metadata = metadata
            bump = True
        if bump:
            group.epoch += 1
        if group.epoch > group.assignment_epoch:
            self._assign(group)
        self._reconcile(group, member, hb.owned, now)
        session_ms, interval_ms = self.timeouts(group.group_id)
        member.session_deadline = now + session_ms
        full = joining or (hb.rebalance_timeout_ms != -1 and hb.topic_names is not None
                           and hb.owned is not None)
        changed = member.assigned != old_assigned
        return HeartbeatResult(ErrorCode.NONE, None, member_id, member.epoch, interval_ms,
                               _wire(member.assigned) if full or changed else None)

    def _member(self, group: ConsumerGroup, member_id: str, hb: Heartbeat) -> Member:
        """Kafka's getOrMaybeSubscribe{Dynamic,Static}ConsumerGroupMember."""
        joining = hb.member_epoch == 0
        if hb.instance_id is None:
            member = group.members.get(member_id)
            if member is None:
                if not joining:
                    raise _unknown(member_id, group.group_id)
                return Member(member_id)
            _check_epoch(member, hb)
            return member
        existing_id = group.static.get(hb.instance_id)
        existing = group.members.get(existing_id) if existing_id is not None else None
        if joining:
            if existing is None:
                return group.members.get(member_id) or Member(member_id)
            if existing.epoch != LEAVE_STATIC_EPOCH:
                raise HeartbeatError(
                    ErrorCode.UNRELEASED_INSTANCE_ID,
                    f"Static member {member_id} with instance id {hb.instance_id} cannot join "
                    f"the group because the instance id is owned by {existing.member_id} member.")
            # the returning instance takes over the old member's assignment (KIP-848 static)
            del group.members[existing.member_id]
            existing.member_id, existing.epoch, existing.previous_epoch = member_id, 0, 0
            group.members[member_id] = existing
            group.static[hb.instance_id] = member_id
            if existing_id in group.target:
                group.target[member_id] = group.target.pop(existing_id)
            return existing
        if existing is None:
            raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID,
                                 f"Instance id {hb.instance_id} is unknown.")
        if existing.member_id != member_id:
            raise HeartbeatError(
                ErrorCode.FENCED_INSTANCE_ID,
                f"Static member {member_id} with instance id {hb.instance_id} was fenced by "
                f"member {existing.member_id}.")
        _check_epoch(existing, hb)
        return existing

    @staticmethod
    def _update(m: Member, hb: Heartbeat) -> bool:
        """Apply the request's non-null fields; True if the subscription changed."""
        before = (m.topic_names, m.regex, m.assignor, m.rack_id)
        if hb.instance_id is not None:
            m.instance_id = hb.instance_id
        if hb.rack_id is not None:
            m.rack_id = hb.rack_id
        if hb.rebalance_timeout_ms != -1:
            m.rebalance_timeout_ms = hb.rebalance_timeout_ms
        if hb.assignor is not None:
            m.assignor = hb.assignor
        if hb.topic_names is not None:
            m.topic_names = tuple(sorted(set(hb.topic_names)))
        if hb.regex is not None:
            m.regex = hb.regex or None  # "" clears the regex
        m.client_id, m.client_host, m.may_read = hb.client_id, hb.client_host, hb.may_read
        return (m.topic_names, m.regex, m.assignor, m.rack_id) != before

    def subscribed(self, m: Member, view: TopicsView | None = None) -> set[str]:
        """The member's topic names plus the existing topics its regex matches."""
        names = set(m.topic_names)
        if m.regex:
            pattern, may_read = self._pattern(m.regex), m.may_read
            names.update(n for n in (self.topics() if view is None else view)
                         if pattern.fullmatch(n) and (may_read is None or may_read(n)))
        return names

    def _metadata(self, group: ConsumerGroup) -> dict[str, tuple[TopicId, int]]:
        view = self.topics()
        wanted: set[str] = set()
        for m in group.members.values():
            wanted |= self.subscribed(m, view)
        return {n: view[n] for n in sorted(wanted) if n in view}

    def _assign(self, group: ConsumerGroup) -> None:
        view = group.metadata
        subs = {mid: frozenset(view[n][0] for n in self.subscribed(m, view) if n in view)
                for mid, m in group.members.items()}
        counts = {tid: n for tid, n in view.values()}
        assignor = ASSIGNORS[group.preferred_assignor()]
        group.target = assignor(subs, counts, group.target)
        group.assignment_epoch = group.epoch

    def _reconcile(self, group: ConsumerGroup, m: Member, owned: WirePartitions | None,
                   now: float) -> None:
        """Kafka's CurrentAssignmentBuilder: one step of the member towards its target."""
        target_epoch = group.assignment_epoch
        if m.state is MemberState.STABLE:
            if m.epoch == target_epoch:
                return
            self._next(group, m, m.epoch, owned, now)
        elif m.state is MemberState.UNREVOKED_PARTITIONS:
            if _owns_any(owned, m.revoking):
                return
            self._next(group, m, m.epoch + 1, owned, now)
        else:
            self._next(group, m, m.epoch, owned, now)

    def _next(self, group: ConsumerGroup, m: Member, epoch: int,
              owned: WirePartitions | None, now: float) -> None:
        target = group.target.get(m.member_id, {})
        taken = {tp for other in group.members.values() if other is not m for tp in other.owned()}
        assigned: Partitions = {}
        revoking: Partitions = {}
        pending: Partitions = {}
        unreleased = False
        for t in set(target) | set(m.assigned):
            want, have = target.get(t, set()), m.assigned.get(t, set())
            keep, drop = have & want, have - want
            add = {p for p in want - keep if (t, p) not in taken}
            unreleased = unreleased or len(add) < len(want - keep)
            if keep:
                assigned[t] = keep
            if drop:
                revoking[t] = drop
            if add:
                pending[t] = add
        if revoking and _owns_any(owned, revoking):
            m.state = MemberState.UNREVOKED_PARTITIONS
            m.previous_epoch, m.epoch = m.epoch, epoch
            m.assigned, m.revoking = assigned, revoking
            m.revocation_deadline = now + m.rebalance_timeout_ms
            return
        for t, ps in pending.items():
            assigned.setdefault(t, set()).update(ps)
        m.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
        m.previous_epoch, m.epoch = m.epoch, group.assignment_epoch
        m.assigned, m.revoking = assigned, {}
        m.revocation_deadline = None

    # ------------------------------------------------------------- leaving and timers

    def _leave(self, hb: Heartbeat) -> HeartbeatResult:
        group = self._group(hb.group_id, False)
        if hb.instance_id is None:
            member = group.members.get(hb.member_id)
            if member is None:
                raise _unknown(hb.member_id, group.group_id)
        else:
            member_id = group.static.get(hb.instance_id)
            member = group.members.get(member_id) if member_id is not None else None
            if member is None:
                raise HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID,
                                     f"Instance id {hb.instance_id} is unknown.")
            if member.member_id != hb.member_id:
                raise HeartbeatError(ErrorCode.FENCED_INSTANCE_ID,
                                     f"Static member {hb.member_id} with instance id "
                                     f"{hb.instance_id} was fenced by member {member.member_id}.")
            if hb.member_epoch == LEAVE_STATIC_EPOCH:
                member.epoch, member.revoking = LEAVE_STATIC_EPOCH, {}
                member.state = MemberState.STABLE
                return HeartbeatResult(ErrorCode.NONE, None, member.member_id,
                                       LEAVE_STATIC_EPOCH)
        self.remove(group, member)
        return HeartbeatResult(ErrorCode.NONE, None, hb.member_id, hb.member_epoch)

    def remove(self, group: ConsumerGroup, member: Member) -> None:
        """Fence a member out: its partitions are free and the group epoch moves on."""
        group.members.pop(member.member_id, None)
        group.target.pop(member.member_id, None)
        if member.instance_id is not None and group.static.get(member.instance_id) == \
                member.member_id:
            del group.static[member.instance_id]
        group.epoch += 1

    def tick(self, now: float | None = None) -> list[tuple[str, str, str]]:
        """Expire sessions and overdue revocations: (group, member, reason) per fenced member."""
        now_ms = self._now() if now is None else now * 1000.0
        fenced = []
        for group in list(self.groups.values()):
            for m in list(group.members.values()):
                if now_ms >= m.session_deadline:
                    reason = "session timeout"
                elif m.revocation_deadline is not None and now_ms >= m.revocation_deadline \
                        and m.state is MemberState.UNREVOKED_PARTITIONS:
                    reason = "rebalance timeout (partitions not revoked)"
                else:
                    continue
                self.remove(group, m)
                fenced.append((group.group_id, m.member_id, reason))
        return fenced

    # ------------------------------------------------------------- offsets and admin

    def validate_commit(self, group: ConsumerGroup, member_id: str, epoch: int,
                        api_version: int) -> ErrorCode:
        """Kafka's ConsumerGroup.validateOffsetCommit (OffsetCommit v9+ carries the epoch)."""
        if epoch < 0 and not group.members:
            return ErrorCode.NONE
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if api_version < 9:
            return ErrorCode.UNSUPPORTED_VERSION
        return ErrorCode.NONE if epoch == member.epoch else ErrorCode.STALE_MEMBER_EPOCH

    def validate_fetch(self, group: ConsumerGroup, member_id: str | None,
                       epoch: int) -> ErrorCode:
        """Kafka's ConsumerGroup.validateOffsetFetch (OffsetFetch v9+)."""
        if member_id is None and epoch < 0:
            return ErrorCode.NONE
        member = group.members.get(member_id or "")
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return ErrorCode.NONE if epoch == member.epoch else ErrorCode.STALE_MEMBER_EPOCH

    def topic_names(self, group: ConsumerGroup) -> set[str]:
        """The topics the group's members subscribe to (names and regex matches)."""
        out: set[str] = set()
        for m in group.members.values():
            out |= self.subscribed(m)
        return out


def _validate(hb: Heartbeat) -> None:
    """Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid (INVALID_REQUEST /
    UNSUPPORTED_ASSIGNOR); v1+ members name themselves (KIP-1082)."""
    def invalid(why: str) -> HeartbeatError:
        return HeartbeatError(ErrorCode.INVALID_REQUEST, why)

    if hb.version >= 1 and not hb.member_id:
        raise invalid("MemberId can't be empty.")
    if not hb.group_id:
        raise invalid("GroupId can't be empty.")
    if hb.instance_id == "":
        raise invalid("InstanceId can't be empty.")
    if hb.rack_id == "":
        raise invalid("RackId can't be empty.")
    if hb.member_epoch > 0 or hb.member_epoch == LEAVE_EPOCH:
        if not hb.member_id:
            raise invalid("MemberId can't be empty.")
    elif hb.member_epoch == 0:
        if hb.rebalance_timeout_ms == -1:
            raise invalid("RebalanceTimeoutMs must be provided in first request.")
        if hb.owned is None or any(ps for _, ps in hb.owned):
            raise invalid("TopicPartitions must be empty when (re-)joining.")
        if not hb.topic_names and not hb.regex:
            raise invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first "
                          "request.")
    elif hb.member_epoch == LEAVE_STATIC_EPOCH:
        if not hb.member_id:
            raise invalid("MemberId can't be empty.")
        if hb.instance_id is None:
            raise invalid("InstanceId can't be null.")
    else:
        raise invalid("MemberEpoch is invalid.")
    if hb.assignor is not None and hb.assignor not in ASSIGNORS:
        raise HeartbeatError(ErrorCode.UNSUPPORTED_ASSIGNOR,
                             f"ServerAssignor {hb.assignor} is not supported. Supported "
                             f"assignors: {', '.join(ASSIGNORS)}.")


def _check_epoch(m: Member, hb: Heartbeat) -> None:
    """Kafka's throwIfConsumerGroupMemberEpochIsInvalid."""
    got = hb.member_epoch
    if got == 0:
        return  # a known member rejoining from scratch (it owns nothing: validated above)
    if got > m.epoch or (got < m.epoch and (got != m.previous_epoch
                                            or not _subset(hb.owned, m.assigned))):
        raise HeartbeatError(
            ErrorCode.FENCED_MEMBER_EPOCH,
            f"The consumer group member has a {'greater' if got > m.epoch else 'smaller'} "
            f"member epoch ({got}) than the one known by the group coordinator ({m.epoch}). "
            "The member must abandon all its partitions and rejoin.")


def _unknown(member_id: str, group_id: str) -> HeartbeatError:
    return HeartbeatError(ErrorCode.UNKNOWN_MEMBER_ID,
                          f"Member {member_id} is not a member of group {group_id}.")

