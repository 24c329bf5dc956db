"""KIP-848 consumer groups (`kafka_wire.groups.consumer`) through `GroupCoordinator`, sans-I/O:
epochs, reconciliation (revoke before assign), fencing, sessions, regexes, static members,
the one-type-per-group rules and member-epoch offset commits. A hypothesis random walk checks
that no partition is ever owned by two members and that a group always converges."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from groups_support import FakeClock
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.groups import GroupCoordinator, MemoryOffsetStore
from pyggy.kafka_wire.groups.consumer import GroupState, Heartbeat, HeartbeatResult

T1, T2 = b"\x01" * 16, b"\x02" * 16


class H:
    """A coordinator over a mutable topic view and a fake clock."""

    def __init__(self, **topics: tuple[bytes, int]) -> None:
        self.clock = FakeClock()
        self.topics: dict[str, tuple[bytes, int]] = dict(topics) or {"t": (T1, 4)}
        self.loop = asyncio.new_event_loop()
        self.coord = GroupCoordinator(self.clock, MemoryOffsetStore(),
                                      new_future=self.loop.create_future,
                                      consumer_topics=lambda: self.topics)
        self.owned: dict[str, list[tuple[bytes, list[int]]]] = {}
        self.epochs: dict[str, int] = {}

    def hb(self, member: str, epoch: int | None = None, *, group: str = "g",
           owned: Any = "mine", **fields: Any) -> HeartbeatResult:
        """A heartbeat of `member`; by default at its last epoch, owning what it was given."""
        epoch = self.epochs.get(member, 0) if epoch is None else epoch
        if owned == "mine":
            owned = [] if epoch == 0 else self.owned.get(member, [])
        if epoch == 0:
            fields.setdefault("rebalance_timeout_ms", 30_000)
            if "regex" not in fields:
                fields.setdefault("topic_names", ["t"])
        r = self.coord.consumer_heartbeat(Heartbeat(group, member, epoch, owned=owned, **fields))
        if r.error_code == E.NONE:
            self.epochs[member] = r.member_epoch
            if r.assignment is not None:
                self.owned[member] = r.assignment
        return r

    def parts(self, member: str) -> set[tuple[bytes, int]]:
        return {(t, p) for t, ps in self.owned.get(member, []) for p in ps}

    def group(self, group: str = "g"):  # noqa: ANN201
        return self.coord.consumer.groups[group]


def test_first_member_gets_everything_at_epoch_one() -> None:
    h = H()
    r = h.hb("a")
    assert (r.error_code, r.member_id, r.member_epoch, r.heartbeat_interval_ms) == \
        (E.NONE, "a", 1, 5000)
    assert r.assignment == [(T1, [0, 1, 2, 3])]
    assert h.group().state is GroupState.STABLE
    # an unchanged heartbeat carries no assignment
    assert h.hb("a").assignment is None


def test_second_member_waits_until_the_first_revokes() -> None:
    h = H()
    h.hb("a")
    r = h.hb("b")
    assert (r.member_epoch, r.assignment) == (2, [])  # its partitions are still a's
    assert h.group().state is GroupState.RECONCILING
    r = h.hb("a")  # a is told to keep half: the rest is pending revocation, epoch unchanged
    assert r.member_epoch == 1 and len(h.parts("a")) == 2
    assert h.hb("b").assignment is None  # a still owns them (it has not acknowledged)
    r = h.hb("a")  # now a's heartbeat no longer owns the revoked partitions
    assert r.member_epoch == 2
    r = h.hb("b")
    assert r.member_epoch == 2 and len(h.parts("b")) == 2
    assert h.parts("a").isdisjoint(h.parts("b"))
    assert h.group().state is GroupState.STABLE


def test_fencing_by_epoch() -> None:
    h = H()
    h.hb("a")
    assert h.hb("a", 5).error_code == E.FENCED_MEMBER_EPOCH
    h.hb("b")
    h.hb("a")
    h.hb("a")  # a moves to epoch 2, previous epoch 1
    assert h.epochs["a"] == 2
    # the previous epoch with a subset of the assignment is accepted (lost response) ...
    assert h.hb("a", 1).error_code == E.NONE
    # ... but not while owning something else, nor an older epoch
    assert h.hb("a", 1, owned=[(T1, [0, 1, 2, 3])]).error_code == E.FENCED_MEMBER_EPOCH
    h.topics["t"] = (T1, 8)
    h.hb("a")
    h.hb("a")
    assert h.hb("a", 1).error_code == E.FENCED_MEMBER_EPOCH


def test_unknown_member_and_group() -> None:
    h = H()
    # Kafka answers GROUP_ID_NOT_FOUND; pyggy's groups do not outlive a restart, so a member
    # still at its old epoch is told to rejoin (UNKNOWN_MEMBER_ID) rather than to give up
    assert h.hb("a", 3).error_code == E.UNKNOWN_MEMBER_ID
    h.hb("a")
    assert h.hb("x", 1).error_code == E.UNKNOWN_MEMBER_ID
    assert h.hb("x", -1).error_code == E.UNKNOWN_MEMBER_ID


@pytest.mark.parametrize(("fields", "code"), [
    ({"rebalance_timeout_ms": -1}, E.INVALID_REQUEST),
    ({"topic_names": []}, E.INVALID_REQUEST),
    ({"owned": None}, E.INVALID_REQUEST),
    ({"owned": [(T1, [0])]}, E.INVALID_REQUEST),
    ({"instance_id": ""}, E.INVALID_REQUEST),
    ({"rack_id": ""}, E.INVALID_REQUEST),
    ({"assignor": "sticky"}, E.UNSUPPORTED_ASSIGNOR),
    ({"regex": "t(", "topic_names": None}, E.INVALID_REGULAR_EXPRESSION),
    ({"regex": "(?=t)t", "topic_names": None}, E.INVALID_REGULAR_EXPRESSION),
    ({"regex": r"(t)\1", "topic_names": None}, E.INVALID_REGULAR_EXPRESSION),
    # nested repetition: exponential for a backtracking engine, refused (RE2 would accept it)
    ({"regex": "(t+)+$", "topic_names": None}, E.INVALID_REGULAR_EXPRESSION),
    ({"regex": "(?:t*-)*x", "topic_names": None}, E.INVALID_REGULAR_EXPRESSION),
])
def test_invalid_first_heartbeats(fields: dict, code: int) -> None:
    h = H()
    r = h.hb("a", **fields)
    assert r.error_code == code and r.error_message


def test_member_ids_v0_named_by_the_coordinator_v1_by_the_member() -> None:
    h = H()
    assert h.hb("", version=1).error_code == E.INVALID_REQUEST
    r = h.hb("", version=0)
    assert r.error_code == E.NONE and len(r.member_id or "") == 36
    assert h.hb("", -3).error_code == E.INVALID_REQUEST  # MemberEpoch is invalid


def test_session_timeout_fences_and_the_rest_take_over() -> None:
    h = H()
    h.hb("a")
    h.hb("b")
    for _ in range(3):
        h.hb("a")
        h.hb("b")
    h.clock.t += 30
    h.hb("a")
    h.clock.t += 20  # b silent for 50 s > 45 s; a heard from 20 s ago
    fenced = h.coord.tick()
    assert [(e.group_id, e.member_id) for e in fenced] == [("g", "b")]
    h.hb("a")
    assert h.parts("a") == {(T1, p) for p in range(4)}
    assert h.hb("b").error_code == E.UNKNOWN_MEMBER_ID


def test_a_member_that_does_not_revoke_is_fenced_after_its_rebalance_timeout() -> None:
    h = H()
    h.hb("a")
    h.hb("b")
    h.hb("a")  # a must revoke two partitions; it never acknowledges
    h.clock.t += 31
    h.hb("b")
    assert [e.member_id for e in h.coord.tick()] == ["a"]
    h.hb("b")
    assert h.parts("b") == {(T1, p) for p in range(4)}


def test_leave_frees_the_partitions() -> None:
    h = H()
    h.hb("a")
    h.hb("b")
    r = h.hb("a", -1)
    assert (r.error_code, r.member_id, r.member_epoch) == (E.NONE, "a", -1)
    h.hb("b")
    assert h.parts("b") == {(T1, p) for p in range(4)}


def test_static_member_leaves_temporarily_and_its_instance_takes_over() -> None:
    h = H()
    h.hb("a", instance_id="i1")
    h.hb("b")
    h.hb("a", instance_id="i1")
    h.hb("a")
    h.hb("b")
    kept = h.parts("a")
    # another member cannot take the instance id while a holds it
    assert h.hb("c", instance_id="i1").error_code == E.UNRELEASED_INSTANCE_ID
    r = h.hb("a", -2, instance_id="i1")
    assert (r.error_code, r.member_epoch) == (E.NONE, -2)
    # the partitions stay with the instance: b does not get them
    h.hb("b")
    assert h.parts("b").isdisjoint(kept)
    r = h.hb("c", instance_id="i1")
    assert r.error_code == E.NONE and h.parts("c") == kept
    assert r.member_epoch == h.group().assignment_epoch  # no rebalance for the takeover
    assert h.hb("a", 3, instance_id="i1").error_code == E.FENCED_INSTANCE_ID


def test_regex_subscription_follows_new_topics() -> None:
    h = H(**{"orders-1": (T1, 2), "other": (T2, 2)})
    r = h.hb("a", regex="orders-.*", topic_names=None)
    assert r.assignment == [(T1, [0, 1])]
    h.topics["orders-2"] = (T2 [:15] + b"\x09", 1)
    r = h.hb("a")
    assert r.member_epoch == 2 and len(h.parts("a")) == 3
    # matched topics the principal may not read are left out
    r = h.hb("b", regex="orders-.*", topic_names=None, may_read=lambda n: n == "orders-1")
    assert {t for t, _ in h.parts("b")} <= {T1}


def test_server_assignor_range() -> None:
    h = H(t=(T1, 3), u=(T2, 3))
    h.hb("a", topic_names=["t", "u"], assignor="range")
    h.hb("b", topic_names=["t", "u"], assignor="range")
    for _ in range(3):
        h.hb("a")
        h.hb("b")
    assert h.parts("a") == {(T1, 0), (T1, 1), (T2, 0), (T2, 1)}
    assert h.parts("b") == {(T1, 2), (T2, 2)}


def test_a_group_is_one_type_at_a_time() -> None:
    h = H()
    join = h.coord.join("classic", "", None, "c", "/h", 10_000, 30_000, "consumer",
                        [("range", b"")], require_known_member_id=False)
    assert join.result().error_code == E.NONE
    assert h.hb("a", group="classic").error_code == E.GROUP_ID_NOT_FOUND
    # an Empty classic group (e.g. only offsets, after a restart): rejoin, then it converts
    h.coord.commit_offsets("idle", -1, "", None, [("t", 0, 1, -1, None)])
    assert h.hb("z", 4, group="idle").error_code == E.UNKNOWN_MEMBER_ID
    assert h.hb("z", 0, group="idle").error_code == E.NONE and "idle" not in h.coord.groups
    h.hb("a")
    join = h.coord.join("g", "", None, "c", "/h", 10_000, 30_000, "consumer",
                        [("range", b"")], require_known_member_id=False)
    assert join.result().error_code == E.INCONSISTENT_GROUP_PROTOCOL
    # an Empty group of the other type is converted on the first join
    h.hb("a", -1)
    join = h.coord.join("g", "", None, "c", "/h", 10_000, 30_000, "consumer",
                        [("range", b"")], require_known_member_id=False)
    assert join.result().error_code == E.NONE and "g" not in h.coord.consumer.groups


def test_offsets_commit_with_member_epochs() -> None:
    h = H()
    h.hb("a")
    commit = [("t", 0, 5, -1, None)]
    assert h.coord.commit_offsets("g", 1, "a", None, commit, 9) == [E.NONE]
    assert h.coord.commit_offsets("g", 2, "a", None, commit, 9) == [E.STALE_MEMBER_EPOCH]
    assert h.coord.commit_offsets("g", 1, "x", None, commit, 9) == [E.UNKNOWN_MEMBER_ID]
    assert h.coord.commit_offsets("g", 1, "a", None, commit, 8) == [E.UNSUPPORTED_VERSION]
    assert h.coord.commit_offsets("g", -1, "", None, commit, 9) == [E.UNKNOWN_MEMBER_ID]
    assert h.coord.validate_fetch("g", "a", 1) == E.NONE
    assert h.coord.validate_fetch("g", "a", 0) == E.STALE_MEMBER_EPOCH
    assert h.coord.validate_fetch("g", None, -1) == E.NONE
    h.hb("a", -1)  # an empty group accepts admin commits
    assert h.coord.commit_offsets("g", -1, "", None, commit, 9) == [E.NONE]


def test_admin_views() -> None:
    h = H()
    h.hb("a")
    listed = {g.group_id: g for g in h.coord.list_groups()}
    assert (listed["g"].group_type, listed["g"].protocol_type, listed["g"].state) == \
        ("consumer", "consumer", "Stable")
    assert [g.group_id for g in h.coord.list_groups(types_filter=["classic"])] == []
    assert [g.group_id for g in h.coord.list_groups(["empty"], ["consumer"])] == []
    assert h.coord.describe("g").error_code == E.GROUP_ID_NOT_FOUND  # not a classic group
    assert h.coord.delete_groups(["g"]) == [("g", E.NON_EMPTY_GROUP)]
    h.coord.commit_offsets("g", 1, "a", None, [("t", 0, 5, -1, None)], 9)
    assert h.coord.delete_offsets("g", [("t", 0)]) == (E.NONE, [E.GROUP_SUBSCRIBED_TO_TOPIC])
    h.hb("a", -1)
    assert h.coord.delete_groups(["g"]) == [("g", E.NONE)]
    assert h.coord.offsets.offsets("g") == {}


# -- random walk ------------------------------------------------------------------------------
_steps = st.lists(st.tuples(
    st.sampled_from(["join", "hb", "hb", "hb", "leave", "time", "grow", "lost"]),
    st.integers(0, 3)), max_size=40)


def _subs(i: int) -> list[str]:
    return ["t", "u"] if i % 2 else ["t"]


@settings(max_examples=120, deadline=None)
@given(_steps, st.sampled_from(["uniform", "range"]))
def test_random_walk_never_double_owns_and_converges(steps: list, assignor: str) -> None:
    """Clients as KIP-848 specifies them: after a lost answer the next heartbeat is full;
    FENCED_MEMBER_EPOCH makes the member drop its partitions and rejoin at epoch 0 (same id);
    a member timed out (UNKNOWN_MEMBER_ID) rejoins later on a "join" step."""
    h = H(t=(T1, 5), u=(T2, 3))
    live: set[str] = set()
    full: set[str] = set()

    def forget(m: str) -> None:
        h.owned.pop(m, None)
        h.epochs.pop(m, None)
        full.discard(m)

    def heartbeat(m: str) -> HeartbeatResult:
        i = int(m[1:])
        extra = {"rebalance_timeout_ms": 30_000, "topic_names": _subs(i)} if m in full else {}
        full.discard(m)
        r = h.hb(m, **extra)
        if r.error_code == E.FENCED_MEMBER_EPOCH:
            forget(m)
            r = h.hb(m, 0, topic_names=_subs(i), assignor=assignor)
        return r

    for op, i in steps:
        m = f"m{i}"
        if op == "join" and m not in live:
            r = h.hb(m, 0, topic_names=_subs(i), assignor=assignor)
            assert r.error_code == E.NONE
            live.add(m)
        elif op in ("hb", "lost") and m in live:
            before, epochs_before = dict(h.owned), dict(h.epochs)
            r = heartbeat(m)
            if r.error_code == E.UNKNOWN_MEMBER_ID:  # timed out meanwhile
                live.discard(m)
                forget(m)
                continue
            assert r.error_code == E.NONE, r
            if op == "lost":  # the answer never arrived: the member keeps what it had
                h.owned, h.epochs = before, epochs_before
                full.add(m)
        elif op == "leave" and m in live:
            assert h.hb(m, -1).error_code == E.NONE
            live.discard(m)
            forget(m)
        elif op == "time":
            h.clock.t += 20
            for e in h.coord.tick():
                live.discard(e.member_id)
                forget(e.member_id)
        elif op == "grow":
            tid, n = h.topics["t"]
            h.topics["t"] = (tid, n + 1)
        # the coordinator never lets two members own one partition (assigned or revoking)
        if "g" in h.coord.consumer.groups:
            seen: set = set()
            for member in h.group().members.values():
                mine = set(member.owned())
                assert seen.isdisjoint(mine)
                seen |= mine
    # everybody heartbeating converges to the target assignment
    for _ in range(5):
        for m in sorted(live):
            assert heartbeat(m).error_code == E.NONE
    if live:
        g = h.group()
        assert g.state is GroupState.STABLE
        for m in live:
            assert h.parts(m) == {(t, p) for t, ps in g.target[m].items() for p in ps}
        total = sum(n for name, (_, n) in h.topics.items()
                    if any(name in g.members[m].topic_names for m in live))
        assert sum(len(h.parts(m)) for m in live) == total


@pytest.mark.parametrize("regex", ["orders-.*", "^(orders|payments)-[0-9]{1,3}$", ".*-v2",
                                   "[a-z]+\\.events", "t"])
def test_common_regexes_are_accepted(regex: str) -> None:
    h = H()
    assert h.hb("a", regex=regex, topic_names=None).error_code == E.NONE
