"""tick(): session expiry, rebalance timeout, SyncGroup timeout — all on the fake clock."""

from __future__ import annotations

from groups_support import REBALANCE_MS, SESSION_MS, Harness, done
from pyggy.core.records.kafka_errors import ErrorCode

E = ErrorCode


def test_session_timeout_evicts_and_rebalances(h: Harness) -> None:
    a, b = h.stable_group(2)
    assert h.advance(SESSION_MS / 2) == []
    h.coord.heartbeat("g", 2, a)
    evictions = h.advance(SESSION_MS / 2)
    assert [(e.member_id, e.reason) for e in evictions] == [(b, "session timeout")]
    assert h.coord.describe("g").state == "PreparingRebalance"
    assert h.coord.heartbeat("g", 2, b) == E.UNKNOWN_MEMBER_ID
    assert h.coord.heartbeat("g", 2, a) == E.REBALANCE_IN_PROGRESS
    r = done(h.join(a))
    assert (r.generation_id, [m.member_id for m in r.members]) == (3, [a])


def test_last_member_expiring_empties_the_group(h: Harness) -> None:
    (a,) = h.stable_group(1)
    h.advance(SESSION_MS)
    d = h.coord.describe("g")
    assert (d.state, d.members, d.protocol_type) == ("Empty", (), "consumer")
    assert h.coord.heartbeat("g", 1, a) == E.UNKNOWN_MEMBER_ID
    assert done(h.join_new()).generation_id == 3  # Empty bumped the generation to 2


def test_rebalance_timeout_removes_members_that_do_not_rejoin(h: Harness) -> None:
    a, b = h.stable_group(2)
    ja = h.join(a)  # leader rejoins: rebalance; b keeps heartbeating but never rejoins
    for _ in range(3):  # a, awaiting its join, does not expire by session meanwhile
        assert h.advance(9_999) == []
        assert h.coord.heartbeat("g", 2, b) == E.REBALANCE_IN_PROGRESS
    assert not ja.done()
    evictions = h.advance(REBALANCE_MS - 3 * 9_999)
    assert [(e.member_id, e.reason) for e in evictions] == [
        (b, "did not rejoin within the rebalance timeout")]
    r = done(ja)
    assert r.generation_id == 3 and [m.member_id for m in r.members] == [a]
    assert h.coord.heartbeat("g", 2, b) == E.UNKNOWN_MEMBER_ID


def test_rebalance_timeout_elects_a_rejoined_leader(h: Harness) -> None:
    a, b = h.stable_group(2)
    jb = h.join(b, protocols=[("range", b"changed")])  # b forces a rebalance; a is gone
    h.advance(REBALANCE_MS)
    r = done(jb)
    assert r.leader == b and [m.member_id for m in r.members] == [b]


def test_a_leader_that_never_syncs_is_removed(h: Harness) -> None:
    a = done(h.join_new()).member_id
    jb = h.join_new()
    assert done(h.join(a)).generation_id == 2
    b = done(jb).member_id
    sb = h.sync(b, 2)
    for _ in range(3):  # a heartbeats (its assignor is "busy") but never sends SyncGroup
        assert h.advance(9_999) == []
        assert h.coord.heartbeat("g", 2, a) == E.NONE
    evictions = h.advance(REBALANCE_MS - 3 * 9_999)
    assert [(e.member_id, e.reason) for e in evictions] == [
        (a, "no SyncGroup within the rebalance timeout")]
    assert done(sb).error_code == E.REBALANCE_IN_PROGRESS
    r = done(h.join(b))
    assert (r.generation_id, r.leader) == (3, b)


def test_a_new_member_whose_join_stalls_is_dropped() -> None:
    h = Harness(new_member_join_timeout_ms=25_000)
    a, b = h.stable_group(2)
    jc = h.join_new()
    c = h.coord.describe("g").members[-1].member_id
    evictions = []
    for _ in range(3):  # a and b stay alive but never rejoin: the join phase stalls
        evictions += h.advance(9_000)
        assert h.coord.heartbeat("g", 2, a) == h.coord.heartbeat("g", 2, b) == (
            E.REBALANCE_IN_PROGRESS)
    assert [(e.member_id, e.reason) for e in evictions] == [(c, "new member join timeout")]
    assert done(jc).error_code == E.UNKNOWN_MEMBER_ID
