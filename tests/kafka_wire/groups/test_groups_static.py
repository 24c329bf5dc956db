"""Static membership (group.instance.id): replacement, fencing, skip-assignment, leaving."""

from __future__ import annotations

from groups_support import REBALANCE_MS, SESSION_MS, Harness, done, subscription
from pyggy.core.records.kafka_errors import ErrorCode

E = ErrorCode


def static_pair(h: Harness) -> tuple[str, str]:
    """Stable group: static leader i-a, static follower i-b, generation 2."""
    ja = h.join(instance="i-a")
    a = done(ja).member_id
    assert a == "i-a-u1"  # static members skip MEMBER_ID_REQUIRED
    jb = h.join(instance="i-b")
    ra, rb = done(h.join(a, instance="i-a")), done(jb)
    b = rb.member_id
    assert ra.generation_id == 2 and ra.leader == a
    assert [(m.member_id, m.group_instance_id) for m in ra.members] == [(a, "i-a"), (b, "i-b")]
    sb = h.sync(b, 2, group_instance_id="i-b")
    done(h.sync(a, 2, [(a, b"A"), (b, b"B")], group_instance_id="i-a"))
    assert done(sb).assignment == b"B"
    return a, b


def test_follower_replacement_keeps_generation_and_assignment(h: Harness) -> None:
    a, b = static_pair(h)
    r = done(h.join(instance="i-b"))
    new_b = r.member_id
    assert new_b != b and (r.error_code, r.generation_id, r.leader) == (E.NONE, 2, a)
    assert h.coord.describe("g").state == "Stable"
    assert h.coord.heartbeat("g", 2, b, "i-b") == E.FENCED_INSTANCE_ID
    assert h.coord.heartbeat("g", 2, b) == E.UNKNOWN_MEMBER_ID
    assert done(h.sync(new_b, 2, group_instance_id="i-b")).assignment == b"B"
    assert h.coord.heartbeat("g", 2, new_b, "i-b") == E.NONE
    assert done(h.join(b, instance="i-b")).error_code == E.FENCED_INSTANCE_ID


def test_leader_replacement_with_and_without_skip_assignment(h: Harness) -> None:
    a, b = static_pair(h)
    r = done(h.join(instance="i-a", skip=True))  # JoinGroup v9
    assert r.skip_assignment and r.leader == r.member_id and len(r.members) == 2
    assert r.generation_id == 2
    old_leader = r.member_id
    r = done(h.join(instance="i-a"))  # before v9: told the leader is the id it replaced
    assert not r.skip_assignment and r.leader == old_leader and r.members == ()
    assert done(h.sync(r.member_id, 2, group_instance_id="i-a")).assignment == b"A"
    assert h.coord.describe("g").state == "Stable"


def test_replacement_with_new_metadata_rebalances(h: Harness) -> None:
    a, b = static_pair(h)
    jb = h.join(instance="i-b", protocols=[("range", subscription("t", "u"))])
    assert not jb.done() and h.coord.heartbeat("g", 2, a, "i-a") == E.REBALANCE_IN_PROGRESS
    ra = done(h.join(a, instance="i-a"))
    assert ra.generation_id == 3 == done(jb).generation_id


def test_static_member_fenced_while_parked(h: Harness) -> None:
    a, b = static_pair(h)
    ja = h.join(a, instance="i-a")  # leader rejoin parks
    ja2 = h.join(instance="i-a")  # a restarted copy takes over, and waits in its place
    assert done(ja).error_code == E.FENCED_INSTANCE_ID and not ja2.done()
    rb = done(h.join(b, instance="i-b"))
    r = done(ja2)
    assert rb.generation_id == r.generation_id == 3 and r.leader == r.member_id != a


def test_static_members_leave_by_instance_id(h: Harness) -> None:
    a, b = static_pair(h)
    assert h.coord.leave("g", [("", "i-b", None), ("wrong", "i-a", None),
                               ("", "i-zz", None)]) == (
        E.NONE, [E.NONE, E.FENCED_INSTANCE_ID, E.UNKNOWN_MEMBER_ID])
    assert h.coord.describe("g").state == "PreparingRebalance"
    assert done(h.join(a, instance="i-a")).generation_id == 3


def test_static_member_that_does_not_rejoin_stays_in_the_generation(h: Harness) -> None:
    a, b = static_pair(h)
    ja = h.join(a, instance="i-a")
    for _ in range(3):  # b is alive (heartbeats) but does not rejoin
        h.advance(9_999)
        assert h.coord.heartbeat("g", 2, b, "i-b") == E.REBALANCE_IN_PROGRESS
    assert h.advance(REBALANCE_MS - 3 * 9_999) == []  # the join phase ends; static b is kept
    r = done(ja)
    assert r.generation_id == 3 and [m.member_id for m in r.members] == [a, b]
    assert h.coord.heartbeat("g", 3, b, "i-b") == E.NONE
    h.advance(SESSION_MS / 2)
    assert h.coord.heartbeat("g", 3, a, "i-a") == E.NONE
    evictions = h.advance(SESSION_MS / 2)  # b stopped: its session ends, a rebalance follows
    assert [e.member_id for e in evictions] == [b]
    assert h.coord.describe("g").state == "PreparingRebalance"
