"""ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID / REBALANCE_IN_PROGRESS paths and LeaveGroup."""

from __future__ import annotations

from groups_support import Harness, done
from pyggy.core.records.kafka_errors import ErrorCode

E = ErrorCode


def test_sync_errors(h: Harness) -> None:
    a, b = h.stable_group(2)
    assert done(h.sync(a, 1)).error_code == E.ILLEGAL_GENERATION
    assert done(h.sync("ghost", 2)).error_code == E.UNKNOWN_MEMBER_ID
    assert done(h.sync(a, 2, group="nope")).error_code == E.UNKNOWN_MEMBER_ID
    assert done(h.sync(a, 2, protocol_name="roundrobin")).error_code == (
        E.INCONSISTENT_GROUP_PROTOCOL)
    assert done(h.sync(a, 2, protocol_type="connect")).error_code == (
        E.INCONSISTENT_GROUP_PROTOCOL)
    ok = done(h.sync(a, 2, protocol_type="consumer", protocol_name="range"))
    assert ok.error_code == E.NONE
    h.join_new()  # a newcomer starts a rebalance
    assert done(h.sync(b, 2)).error_code == E.REBALANCE_IN_PROGRESS


def test_heartbeat_errors(h: Harness) -> None:
    a, _ = h.stable_group(2)
    assert h.coord.heartbeat("g", 1, a) == E.ILLEGAL_GENERATION
    assert h.coord.heartbeat("g", 2, "ghost") == E.UNKNOWN_MEMBER_ID
    assert h.coord.heartbeat("nope", 2, a) == E.UNKNOWN_MEMBER_ID
    assert h.coord.heartbeat("g", 2, a, "some-instance") == E.UNKNOWN_MEMBER_ID


def test_a_parked_sync_fails_when_a_rebalance_starts(h: Harness) -> None:
    a = done(h.join_new()).member_id
    jb = h.join_new()
    done(h.join(a))
    b = done(jb).member_id
    sb = h.sync(b, 2)
    h.join_new()  # CompletingRebalance → PreparingRebalance
    assert done(sb).error_code == E.REBALANCE_IN_PROGRESS
    assert h.coord.heartbeat("g", 2, a) == E.REBALANCE_IN_PROGRESS


def test_commit_validation(h: Harness) -> None:
    entry = [("t", 0, 5, -1, None)]
    assert h.coord.commit_offsets("nope", 3, "m", None, entry) == [E.ILLEGAL_GENERATION]
    assert h.coord.commit_offsets("", -1, "", None, entry) == [E.INVALID_GROUP_ID]
    a = done(h.join_new()).member_id
    assert h.coord.commit_offsets("g", 1, a, None, entry) == [E.REBALANCE_IN_PROGRESS]
    done(h.sync(a, 1, [(a, b"")]))
    assert h.coord.commit_offsets("g", 0, a, None, entry) == [E.ILLEGAL_GENERATION]
    assert h.coord.commit_offsets("g", 1, "ghost", None, entry) == [E.UNKNOWN_MEMBER_ID]
    assert h.coord.commit_offsets("g", -1, "", None, entry) == [E.UNKNOWN_MEMBER_ID]
    assert h.coord.commit_offsets("g", 1, a, "i-x", entry) == [E.UNKNOWN_MEMBER_ID]
    assert h.coord.commit_offsets("g", 1, a, None, entry) == [E.NONE]
    h.join_new()  # PreparingRebalance: members may still commit (onPartitionsRevoked)
    assert h.coord.commit_offsets("g", 1, a, None, entry) == [E.NONE]


def test_leave_paths(h: Harness) -> None:
    assert h.coord.leave("nope", [("x", None, None)]) == (E.NONE, [E.UNKNOWN_MEMBER_ID])
    assert h.coord.leave("", [("x", None, None)])[0] == E.INVALID_GROUP_ID
    a, b, c = h.stable_group(3)
    pending = done(h.join()).member_id
    assert h.coord.leave("g", [(b, None, "shutdown"), ("ghost", None, None),
                               (pending, None, None)]) == (
        E.NONE, [E.NONE, E.UNKNOWN_MEMBER_ID, E.NONE])
    assert pending not in h.coord.groups["g"].pending
    ja, jc = h.join(a), h.join(c)
    assert done(ja).generation_id == done(jc).generation_id == 3


def test_leaving_during_the_join_phase_completes_it(h: Harness) -> None:
    a, b = h.stable_group(2)
    ja = h.join(a)
    assert not ja.done()
    h.coord.leave("g", [(b, None, None)])
    assert [m.member_id for m in done(ja).members] == [a]


def test_a_parked_member_that_leaves_gets_unknown_member(h: Harness) -> None:
    a, b = h.stable_group(2)
    jb = h.join(b, protocols=[("range", b"new")])
    h.coord.leave("g", [(b, None, None)])
    assert done(jb).error_code == E.UNKNOWN_MEMBER_ID


def test_everyone_leaving_empties_the_group(h: Harness) -> None:
    a, b = h.stable_group(2)
    h.coord.leave("g", [(a, None, None), (b, None, None)])
    d = h.coord.describe("g")
    assert (d.state, d.members) == ("Empty", ())
    assert done(h.join(a)).error_code == E.UNKNOWN_MEMBER_ID
