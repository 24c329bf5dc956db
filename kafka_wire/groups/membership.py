"""The classic consumer-group state machine: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, timers.

Sans-I/O: JoinGroup and SyncGroup answers are ``asyncio.Future`` objects resolved when the
rebalance gets there; every timer is a deadline checked by ``tick``, against the injected clock.
Semantics follow Apache Kafka's classic group coordinator (GroupMetadataManager/ClassicGroup),
with no initial rebalance delay by default: a join completes as soon as every known member
has rejoined.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyggy.core.clock import Clock
from pyggy.core.records.kafka_errors import ErrorCode
from pyggy.kafka_wire.groups.results import Eviction, JoinResult, SyncResult
from pyggy.kafka_wire.groups.state import (
    Group,
    GroupState,
    Member,
    Protocols,
    normalize_protocols,
    random_uuid,
)

log = logging.getLogger(__name__)

S = GroupState


def _running_loop_future() -> asyncio.Future:
    return asyncio.get_running_loop().create_future()


def _resolve(future: asyncio.Future | None, value: object) -> None:
    # a handler cancelled with its connection cancels the future it awaited: skip those
    if future is not None and not future.done():
        future.set_result(value)


@dataclass(frozen=True, slots=True)
class _Join:
    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    require_known_member_id: bool
    supports_skip_assignment: bool
    reason: str | None


class Membership:
    """Group membership for one broker; ``GroupCoordinator`` adds offsets and admin on top."""

    def __init__(
        self,
        clock: Clock,
        *,
        initial_rebalance_delay_ms: int = 0,
        min_session_timeout_ms: int = 6_000,
        max_session_timeout_ms: int = 1_800_000,
        new_member_join_timeout_ms: int = 300_000,
        max_group_size: int | None = None,
        new_future: Callable[[], asyncio.Future] | None = None,
        new_uuid: Callable[[], str] | None = None,
    ) -> None:
        self.clock = clock
        self.initial_rebalance_delay_ms = initial_rebalance_delay_ms
        self.min_session_timeout_ms = min_session_timeout_ms
        self.max_session_timeout_ms = max_session_timeout_ms
        self.new_member_join_timeout_ms = new_member_join_timeout_ms
        self.max_group_size = max_group_size
        self._new_future = new_future or _running_loop_future
        self._new_uuid = new_uuid or random_uuid
        self.groups: dict[str, Group] = {}
        self._evictions: list[Eviction] = []

    def _now(self) -> float:
        return self.clock.monotonic() * 1000.0

    # ---------------------------------------------------------------- JoinGroup

    def join(
        self,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: Sequence[tuple[str, bytes]],
        *,
        require_known_member_id: bool = True,
        supports_skip_assignment: bool = False,
        reason: str | None = None,
    ) -> asyncio.Future[JoinResult]:
        """JoinGroup. The future resolves at once on errors, MEMBER_ID_REQUIRED and answers for
        the current generation, else when the join phase completes.

        ``require_known_member_id`` = request version ≥ 4; ``supports_skip_assignment`` =
        version ≥ 9; ``rebalance_timeout_ms`` < 0 (v0 has none) means the session timeout.
        """
        future = self._new_future()
        r = _Join(group_id, member_id, group_instance_id, client_id, client_host,
                  session_timeout_ms,
                  session_timeout_ms if rebalance_timeout_ms < 0 else rebalance_timeout_ms,
                  protocol_type, normalize_protocols(protocols), require_known_member_id,
                  supports_skip_assignment, reason)
        result = self._join(r, future)
        if result is not None:
            _resolve(future, result)
        return future

    def _join(self, r: _Join, future: asyncio.Future) -> JoinResult | None:
        def error(code: ErrorCode, member_id: str = r.member_id) -> JoinResult:
            return JoinResult(code, member_id=member_id)

        if not r.group_id:
            return error(ErrorCode.INVALID_GROUP_ID)
        if not self.min_session_timeout_ms <= r.session_timeout_ms <= self.max_session_timeout_ms:
            return error(ErrorCode.INVALID_SESSION_TIMEOUT)
        now = self._now()
        group = self.groups.get(r.group_id)
        if group is None:
            if r.member_id:
                return error(ErrorCode.UNKNOWN_MEMBER_ID)
            group = Group(r.group_id)  # registered once the join is accepted
        known = r.member_id if r.member_id in group.members else None
        if r.group_instance_id is not None and not r.member_id:
            known = group.static.get(r.group_instance_id)
        if not group.supports(r.protocol_type, [n for n, _ in r.protocols], exclude=known):
            return error(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)

        if not r.member_id:
            if known is None and self.max_group_size is not None and (
                    len(group.members) + len(group.pending) >= self.max_group_size):
                return error(ErrorCode.GROUP_MAX_SIZE_REACHED)
            self.groups.setdefault(group.group_id, group)
            if r.group_instance_id is not None:
                new_id = f"{r.group_instance_id}-{self._new_uuid()}"
                if known is not None:
                    return self._replace_static(group, known, new_id, r, future, now)
                self._add_member(group, new_id, r, future, now)
                return None
            new_id = f"{r.client_id}-{self._new_uuid()}"
            if r.require_known_member_id:
                group.pending[new_id] = now + r.session_timeout_ms
                return error(ErrorCode.MEMBER_ID_REQUIRED, new_id)
            self._add_member(group, new_id, r, future, now)
            return None

        if r.group_instance_id is None and r.member_id in group.pending:
            del group.pending[r.member_id]
            self._add_member(group, r.member_id, r, future, now)
            return None
        code = group.validate_member(r.member_id, r.group_instance_id)
        if code:
            return error(code)
        member = group.members[r.member_id]
        member.expires_at = max(member.expires_at, now + r.session_timeout_ms)
        if group.state is S.PREPARING_REBALANCE:
            self._update_member(member, r, future)
            self._maybe_complete_join(group, now)
            return None
        same = member.protocols == r.protocols
        if group.state is S.COMPLETING_REBALANCE and same:
            return self._current_join(group, member)  # lost its JoinGroup answer: resend it
        if group.state is S.STABLE and same and member.member_id != group.leader:
            return self._current_join(group, member)
        if group.state in (S.COMPLETING_REBALANCE, S.STABLE):
            # changed metadata, or the leader rejoining (it may have seen new partitions)
            self._update_member(member, r, future)
            if len(group.members) == 1:
                group.protocol_type = r.protocol_type
            self._prepare_rebalance(group, now, f"member {member.member_id} rejoined"
                                    f" (client reason: {r.reason})")
            return None
        return error(ErrorCode.UNKNOWN_MEMBER_ID)

    def _add_member(self, group: Group, member_id: str, r: _Join, future: asyncio.Future,
                    now: float) -> None:
        member = Member(member_id, r.group_instance_id, r.client_id, r.client_host,
                        r.session_timeout_ms, r.rebalance_timeout_ms, r.protocols,
                        join_future=future, expires_at=now + self.new_member_join_timeout_ms)
        if not group.members:
            group.protocol_type = r.protocol_type
        group.add(member)
        if group.state is S.PREPARING_REBALANCE and group.delay_until is not None:
            group.delay_until = min(now + self.initial_rebalance_delay_ms, group.delay_cap)
        self._rebalance_or_complete(group, now, f"new member {member_id} joined"
                                    f" (client reason: {r.reason})")

    def _update_member(self, member: Member, r: _Join, future: asyncio.Future) -> None:
        member.protocols = r.protocols
        member.session_timeout_ms = r.session_timeout_ms
        member.rebalance_timeout_ms = r.rebalance_timeout_ms
        if member.join_future is not future:
            # a second JoinGroup while one is parked: the first asker gave up (reconnected)
            _resolve(member.join_future, JoinResult(ErrorCode.REBALANCE_IN_PROGRESS,
                                                    member_id=member.member_id))
        member.join_future = future

    def _replace_static(self, group: Group, old_id: str, new_id: str, r: _Join,
                        future: asyncio.Future, now: float) -> JoinResult | None:
        """A known group.instance.id rejoining with no member id takes over from its old id:
        the old id is fenced, the assignment kept; no rebalance when nothing changed."""
        member = Member(new_id, r.group_instance_id, r.client_id, r.client_host,
                        r.session_timeout_ms, r.rebalance_timeout_ms, r.protocols,
                        is_new=False, expires_at=now + r.session_timeout_ms)
        old = group.replace(old_id, member)
        fenced = ErrorCode.FENCED_INSTANCE_ID
        _resolve(old.join_future, JoinResult(fenced, member_id=old_id))
        _resolve(old.sync_future, SyncResult(fenced))
        log.info("group %s: static member %s replaced %s", group.group_id, new_id, old_id)
        if group.state is S.STABLE and old.protocols == r.protocols:
            if group.leader != new_id or r.supports_skip_assignment:
                return self._current_join(group, member, skip_assignment=group.leader == new_id)
            # before v9 a leader cannot skip the assignment: answer it as a follower (leader =
            # the id it replaced), so it syncs and gets the assignment it kept
            return JoinResult(ErrorCode.NONE, member_id=new_id, generation_id=group.generation,
                              protocol_type=group.protocol_type,
                              protocol_name=group.protocol_name, leader=old_id)
        member.join_future = future
        self._rebalance_or_complete(group, now, f"static member {new_id} replaced {old_id}")
        return None

    def _current_join(self, group: Group, member: Member,
                      skip_assignment: bool = False) -> JoinResult:
        is_leader = member.member_id == group.leader
        return JoinResult(ErrorCode.NONE, member_id=member.member_id,
                          generation_id=group.generation, protocol_type=group.protocol_type,
                          protocol_name=group.protocol_name, leader=group.leader or "",
                          members=group.leader_members() if is_leader else (),
                          skip_assignment=skip_assignment)

    # ---------------------------------------------------------------- rebalancing

    def _rebalance_or_complete(self, group: Group, now: float, reason: str) -> None:
        if group.state is S.PREPARING_REBALANCE:
            self._maybe_complete_join(group, now)
        else:
            self._prepare_rebalance(group, now, reason)

    def _prepare_rebalance(self, group: Group, now: float, reason: str) -> None:
        if group.state is S.COMPLETING_REBALANCE:
            for m in group.members.values():
                m.assignment = b""
                _resolve(m.sync_future, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
                m.sync_future = None
        was_empty = group.state is S.EMPTY
        group.state = S.PREPARING_REBALANCE
        group.pending_sync.clear()
        group.sync_deadline = None
        timeout = group.rebalance_timeout_ms()
        if was_empty and self.initial_rebalance_delay_ms > 0:
            group.delay_cap = now + timeout
            group.delay_until = now + min(self.initial_rebalance_delay_ms, timeout)
            group.join_deadline = None
        else:
            group.delay_until = None
            group.join_deadline = now + timeout
        log.info("group %s: rebalance (generation %d): %s", group.group_id, group.generation,
                 reason)
        self._maybe_complete_join(group, now)

    def _maybe_complete_join(self, group: Group, now: float) -> None:
        if (group.state is S.PREPARING_REBALANCE and group.delay_until is None
                and group.all_joined()):
            self._complete_join(group, now)

    def _complete_join(self, group: Group, now: float) -> None:
        """End the join phase: drop dynamic members that did not rejoin, start a generation."""
        for m in list(group.members.values()):
            if not m.awaiting_join and m.group_instance_id is None:
                self._evict(group, m, "did not rejoin within the rebalance timeout")
        group.delay_until = None
        if group.members and not any(m.awaiting_join for m in group.members.values()):
            # only static members that have not rejoined: wait for their session timeouts
            group.join_deadline = now + group.rebalance_timeout_ms()
            return
        group.join_deadline = None
        group.generation += 1
        if not group.members:
            group.state = S.EMPTY
            group.protocol_name = None
            group.leader = None
            log.info("group %s: empty at generation %d", group.group_id, group.generation)
            return
        leader = group.members.get(group.leader or "")
        if leader is None or not leader.awaiting_join:
            group.leader = next(m.member_id for m in group.members.values() if m.awaiting_join)
        group.protocol_name = group.select_protocol()
        group.state = S.COMPLETING_REBALANCE
        for m in group.members.values():
            future, m.join_future = m.join_future, None
            m.is_new = False
            m.expires_at = now + m.session_timeout_ms
            _resolve(future, self._current_join(group, m))
        group.pending_sync = set(group.members)
        group.sync_deadline = now + group.rebalance_timeout_ms()
        log.info("group %s: generation %d with %d members, protocol %s, leader %s",
                 group.group_id, group.generation, len(group.members), group.protocol_name,
                 group.leader)

    def _remove_member(self, group: Group, member: Member, code: ErrorCode) -> None:
        group.remove(member.member_id)
        _resolve(member.join_future, JoinResult(code, member_id=member.member_id))
        _resolve(member.sync_future, SyncResult(code))
        member.join_future = member.sync_future = None

    def _evict(self, group: Group, member: Member, reason: str) -> None:
        self._remove_member(group, member, ErrorCode.UNKNOWN_MEMBER_ID)
        self._evictions.append(Eviction(group.group_id, member.member_id, reason))
        log.info("group %s: removed member %s: %s", group.group_id, member.member_id, reason)

    def _after_removal(self, group: Group, now: float, reason: str) -> None:
        if group.state in (S.STABLE, S.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now, reason)
        else:
            self._maybe_complete_join(group, now)

    # ---------------------------------------------------------------- SyncGroup

    def sync(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None = None,
        protocol_type: str | None = None,
        protocol_name: str | None = None,
        assignments: Sequence[tuple[str, bytes]] = (),
    ) -> asyncio.Future[SyncResult]:
        """SyncGroup. The leader's call (in CompletingRebalance) stores every assignment and
        answers all parked followers; a follower's call waits for it. ``protocol_type`` and
        ``protocol_name`` are checked when given (v5+)."""
        future = self._new_future()
        result = self._sync(future, group_id, generation_id, member_id, group_instance_id,
                            protocol_type, protocol_name, assignments)
        if result is not None:
            _resolve(future, result)
        return future

    def _sync(self, future: asyncio.Future, group_id: str, generation_id: int, member_id: str,
              group_instance_id: str | None, protocol_type: str | None,
              protocol_name: str | None,
              assignments: Sequence[tuple[str, bytes]]) -> SyncResult | None:
        if not group_id:
            return SyncResult(ErrorCode.INVALID_GROUP_ID)
        group = self.groups.get(group_id)
        if group is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        code = group.validate_member(member_id, group_instance_id)
        if code:
            return SyncResult(code)
        if generation_id != group.generation:
            return SyncResult(ErrorCode.ILLEGAL_GENERATION)
        if (protocol_type is not None and protocol_type != group.protocol_type
                or protocol_name is not None and protocol_name != group.protocol_name):
            return SyncResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
        member = group.members[member_id]
        now = self._now()
        if group.state is S.PREPARING_REBALANCE:
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
        member.expires_at = now + member.session_timeout_ms
        self._synced(group, member_id)
        if group.state is S.STABLE:
            return SyncResult(ErrorCode.NONE, group.protocol_type, group.protocol_name,
                              member.assignment)
        if group.state is not S.COMPLETING_REBALANCE:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        _resolve(member.sync_future, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        member.sync_future = future
        if member_id == group.leader:
            given = {mid: bytes(a) for mid, a in assignments}
            group.state = S.STABLE
            for m in group.members.values():
                m.assignment = given.get(m.member_id, b"")  # an omitted member gets b""
                if m.sync_future is not None:
                    m.expires_at = now + m.session_timeout_ms
                    _resolve(m.sync_future, SyncResult(ErrorCode.NONE, group.protocol_type,
                                                       group.protocol_name, m.assignment))
                    m.sync_future = None
            log.info("group %s: stable at generation %d", group.group_id, group.generation)
        return None

    @staticmethod
    def _synced(group: Group, member_id: str) -> None:
        group.pending_sync.discard(member_id)
        if not group.pending_sync:
            group.sync_deadline = None

    # ---------------------------------------------------------------- Heartbeat, LeaveGroup

    def heartbeat(self, group_id: str, generation_id: int, member_id: str,
                  group_instance_id: str | None = None) -> ErrorCode:
        """Heartbeat: refreshes the session; REBALANCE_IN_PROGRESS tells a member to rejoin."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        code = group.validate_member(member_id, group_instance_id)
        if code:
            return code
        if generation_id != group.generation:
            return ErrorCode.ILLEGAL_GENERATION
        if group.state is S.EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        member = group.members[member_id]
        member.expires_at = self._now() + member.session_timeout_ms
        if group.state is S.PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def leave(self, group_id: str, members: Sequence[tuple[str, str | None, str | None]],
              ) -> tuple[ErrorCode, list[ErrorCode]]:
        """LeaveGroup for (member_id, group_instance_id, reason) entries; returns the top-level
        error and one error per entry (v0–2: send the single entry's error as the top level)."""
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID, [ErrorCode.INVALID_GROUP_ID] * len(members)
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.NONE, [ErrorCode.UNKNOWN_MEMBER_ID] * len(members)
        now, codes, removed = self._now(), [], []
        for member_id, instance_id, reason in members:
            if instance_id is not None:
                known = group.static.get(instance_id)
                if known is None:
                    codes.append(ErrorCode.UNKNOWN_MEMBER_ID)
                    continue
                if member_id and member_id != known:
                    codes.append(ErrorCode.FENCED_INSTANCE_ID)
                    continue
                member_id = known
            if member_id in group.pending:
                del group.pending[member_id]
            elif member_id in group.members:
                member = group.members[member_id]
                self._remove_member(group, member, ErrorCode.UNKNOWN_MEMBER_ID)
                removed.append(f"{member_id} ({reason or 'no reason'})")
            else:
                codes.append(ErrorCode.UNKNOWN_MEMBER_ID)
                continue
            codes.append(ErrorCode.NONE)
        if removed:
            self._after_removal(group, now, "left: " + ", ".join(removed))
        else:
            self._maybe_complete_join(group, now)
        return ErrorCode.NONE, codes

    # ---------------------------------------------------------------- timers

    def tick(self, now: float | None = None) -> list[Eviction]:
        """Fire due timers (``now`` in the clock's ``monotonic()`` seconds; default: read it).

        Expires sessions and pending member ids, ends join phases at the (initial delay or)
        rebalance timeout, and removes members that did not SyncGroup in time. Returns the
        members removed, for logging.
        """
        now_ms = (self.clock.monotonic() if now is None else now) * 1000.0
        for group in list(self.groups.values()):
            self._tick_group(group, now_ms)
        evictions, self._evictions = self._evictions, []
        return evictions

    def _tick_group(self, group: Group, now: float) -> None:
        expired_pending = [mid for mid, at in group.pending.items() if now >= at]
        for mid in expired_pending:
            del group.pending[mid]
            self._evictions.append(Eviction(group.group_id, mid, "pending member id expired"))
        expired = [m for m in group.members.values() if now >= m.expires_at and (
            m.is_new or (not m.awaiting_join and m.sync_future is None))]
        for m in expired:
            self._evict(group, m, "new member join timeout" if m.is_new else "session timeout")
        if expired:
            self._after_removal(group, now, "session timeout")
        elif expired_pending:
            self._maybe_complete_join(group, now)
        if group.state is S.PREPARING_REBALANCE and (
                group.delay_until is not None and now >= group.delay_until
                or group.join_deadline is not None and now >= group.join_deadline):
            self._complete_join(group, now)
        if group.sync_deadline is not None and now >= group.sync_deadline and group.state in (
                S.COMPLETING_REBALANCE, S.STABLE):
            group.sync_deadline = None
            laggards = [group.members[mid] for mid in group.pending_sync]
            for m in laggards:
                self._evict(group, m, "no SyncGroup within the rebalance timeout")
            if laggards:
                self._prepare_rebalance(group, now, "members did not sync")
