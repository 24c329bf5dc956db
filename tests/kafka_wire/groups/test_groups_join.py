"""JoinGroup/SyncGroup/Heartbeat: the member-id dance, generations, leaders, protocol votes."""

from __future__ import annotations

import asyncio

import pytest
from groups_support import SESSION_MS, FakeClock, Harness, done, subscription
from pyggy.core.records.kafka_errors import ErrorCode
from pyggy.kafka_wire.groups import GroupCoordinator, JoinMember, MemoryOffsetStore

E = ErrorCode


def test_single_member_join_sync_heartbeat_commit_fetch(h: Harness) -> None:
    first = done(h.join(client="cli"))
    assert first.error_code == E.MEMBER_ID_REQUIRED and first.member_id == "cli-u1"
    assert first.generation_id == -1
    assert h.coord.describe("g").state == "Empty"  # a pending id does not start a rebalance

    meta = subscription("t")
    joined = done(h.join("cli-u1", client="cli"))
    assert joined.error_code == E.NONE
    assert (joined.generation_id, joined.leader, joined.member_id) == (1, "cli-u1", "cli-u1")
    assert (joined.protocol_type, joined.protocol_name) == ("consumer", "range")
    assert joined.members == (JoinMember("cli-u1", None, meta),)
    assert h.coord.describe("g").state == "CompletingRebalance"

    synced = done(h.sync("cli-u1", 1, [("cli-u1", memoryview(b"assign"))]))
    assert synced.error_code == E.NONE and synced.assignment == b"assign"
    assert (synced.protocol_type, synced.protocol_name) == ("consumer", "range")
    assert h.coord.heartbeat("g", 1, "cli-u1") == E.NONE

    assert h.coord.commit_offsets("g", 1, "cli-u1", None, [("t", 0, 42, 7, "meta")]) == [E.NONE]
    fetched = h.coord.fetch_offsets("g", [("t", [0, 1])])
    assert [tuple(f) for f in fetched] == [("t", 0, 42, 7, "meta", 0), ("t", 1, -1, -1, "", 0)]

    described = h.coord.describe("g")
    assert described.state == "Stable" and described.protocol_name == "range"
    (m,) = described.members
    assert (m.member_id, m.client_id, m.client_host) == ("cli-u1", "cli", "/127.0.0.1")
    assert (m.metadata, m.assignment) == (meta, b"assign")


def test_old_versions_join_without_member_id_required(h: Harness) -> None:
    r = done(h.join(v4=False))
    assert r.error_code == E.NONE and r.generation_id == 1 and r.member_id == "c-u1"


def test_unknown_member_ids_and_expired_pending_ids(h: Harness) -> None:
    assert done(h.join("nobody")).error_code == E.UNKNOWN_MEMBER_ID  # unknown group
    pending = done(h.join()).member_id
    evictions = h.advance(SESSION_MS)
    assert [(e.group_id, e.member_id) for e in evictions] == [("g", pending)]
    assert done(h.join(pending)).error_code == E.UNKNOWN_MEMBER_ID


def test_three_members_one_leaves_one_joins() -> None:
    h = Harness()
    a, b, c = h.stable_group(3)
    gen = done(h.join(b)).generation_id  # a follower rejoining unchanged: no rebalance
    assert gen == 2 and h.coord.describe("g").state == "Stable"

    assert h.coord.leave("g", [(c, None, "bye")]) == (E.NONE, [E.NONE])
    assert h.coord.heartbeat("g", gen, a) == E.REBALANCE_IN_PROGRESS
    assert h.coord.heartbeat("g", gen, b) == E.REBALANCE_IN_PROGRESS
    assert h.coord.heartbeat("g", gen, c) == E.UNKNOWN_MEMBER_ID

    new_id = done(h.join(client="d")).member_id  # pending: holds the join phase open
    ja, jb = h.join(a), h.join(b)
    assert not ja.done() and not jb.done()
    jd = h.join(new_id, client="d")
    ra, rb, rd = done(ja), done(jb), done(jd)
    assert {r.generation_id for r in (ra, rb, rd)} == {gen + 1}
    assert {r.leader for r in (ra, rb, rd)} == {a}  # the previous leader stays leader
    assert [m.member_id for m in ra.members] == [a, b, new_id]
    assert rb.members == () and rd.members == ()

    sb, sd = h.sync(b, gen + 1), h.sync(new_id, gen + 1)
    assert not sb.done() and not sd.done()  # followers wait for the leader
    assert h.coord.heartbeat("g", gen + 1, b) == E.NONE  # CompletingRebalance: fine
    sa = done(h.sync(a, gen + 1, [(a, b"A"), (b, b"B"), ("stranger", b"?")]))
    assert sa.assignment == b"A"
    assert done(sb).assignment == b"B"
    assert done(sd).assignment == b""  # omitted by the leader: empty, never garbage
    assert h.coord.describe("g").state == "Stable"
    assert done(h.sync(new_id, gen + 1)).assignment == b""  # repeat in Stable


def test_new_member_while_stable_rebalances_via_heartbeat(h: Harness) -> None:
    (a,) = h.stable_group(1)
    jb = h.join_new()
    assert not jb.done() and h.coord.describe("g").state == "PreparingRebalance"
    assert h.coord.heartbeat("g", 1, a) == E.REBALANCE_IN_PROGRESS
    assert done(h.sync(a, 1)).error_code == E.REBALANCE_IN_PROGRESS
    ra = done(h.join(a))  # the last known member rejoining completes at once
    rb = done(jb)
    assert ra.generation_id == rb.generation_id == 2 and ra.leader == rb.leader == a


def test_follower_rejoin_same_metadata_gets_current_generation(h: Harness) -> None:
    a, b = h.stable_group(2)
    r = done(h.join(b))
    assert (r.error_code, r.generation_id, r.leader, r.members) == (E.NONE, 2, a, ())
    assert h.coord.describe("g").state == "Stable"
    assert done(h.sync(b, 2)).assignment == b"a-" + b.encode()


def test_leader_rejoin_or_changed_metadata_rebalances(h: Harness) -> None:
    (a,) = h.stable_group(1)
    r = done(h.join(a))  # alone: the rebalance completes immediately
    assert r.generation_id == 2 and r.leader == a and len(r.members) == 1
    done(h.sync(a, 2, [(a, b"x")]))
    r = done(h.join(a, protocols=[("range", subscription("t", "u"))]))
    assert r.generation_id == 3 and r.members[0].metadata == subscription("t", "u")


def test_completing_rebalance_rejoin_resends_the_answer(h: Harness) -> None:
    a = done(h.join_new()).member_id
    again = done(h.join(a))  # lost its answer: same generation, no new rebalance
    assert again.generation_id == 1 and again.leader == a and len(again.members) == 1
    changed = done(h.join(a, protocols=[("roundrobin", b"x")]))
    assert changed.generation_id == 2 and changed.protocol_name == "roundrobin"


def test_protocol_vote_and_inconsistent_protocols(h: Harness) -> None:
    m1 = h.join_new(protocols=[("range", b"1"), ("roundrobin", b"1")])
    a = done(m1).member_id
    m2 = h.join_new(protocols=[("roundrobin", b"2"), ("range", b"2")])
    m3 = h.join_new(protocols=[("roundrobin", b"3"), ("range", b"3"), ("sticky", b"3")])
    ra = done(h.join(a, protocols=[("range", b"1"), ("roundrobin", b"1")]))
    assert ra.protocol_name == "roundrobin" == done(m2).protocol_name == done(m3).protocol_name
    assert [m.metadata for m in ra.members] == [b"1", b"2", b"3"]

    assert done(h.join(protocols=[("sticky", b"")])).error_code == E.INCONSISTENT_GROUP_PROTOCOL
    other_type = h.join(protocol_type="connect", protocols=[("range", b"")])
    assert done(other_type).error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert done(h.join(group="g2", protocols=[])).error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert done(h.join(group="g3", protocol_type="")).error_code == (
        E.INCONSISTENT_GROUP_PROTOCOL)
    assert "g2" not in h.coord.groups and "g3" not in h.coord.groups  # refused: not created


def test_request_validation(h: Harness) -> None:
    assert done(h.join(group="")).error_code == E.INVALID_GROUP_ID
    assert done(h.join(session=5_999)).error_code == E.INVALID_SESSION_TIMEOUT
    assert done(h.join(session=1_800_001)).error_code == E.INVALID_SESSION_TIMEOUT
    assert done(h.sync("x", 1, group="")).error_code == E.INVALID_GROUP_ID
    assert h.coord.heartbeat("", 1, "x") == E.INVALID_GROUP_ID


def test_v0_join_uses_the_session_timeout_as_rebalance_timeout(h: Harness) -> None:
    a = done(h.join(v4=False, rebalance=-1)).member_id
    b = h.join(v4=False, rebalance=-1)
    h.coord.heartbeat("g", 1, a)
    assert not b.done()
    h.advance(SESSION_MS - 1)
    assert not b.done()
    h.advance(1)
    assert done(b).generation_id == 2 and done(b).leader == done(b).member_id


def test_initial_rebalance_delay_collects_joiners() -> None:
    h = Harness(initial_rebalance_delay_ms=3_000)
    j1 = h.join(v4=False)
    h.advance(2_000)
    j2 = h.join(v4=False)  # re-arms the delay: 3 s from now
    h.advance(2_000)
    assert not j1.done() and not j2.done()
    h.advance(1_000)
    r1, r2 = done(j1), done(j2)
    assert r1.generation_id == r2.generation_id == 1 and len(r1.members) == 2


def test_a_cancelled_join_does_not_block_the_rebalance(h: Harness) -> None:
    a, b = h.stable_group(2)
    ja, jb = h.join(a), h.join(b)
    jb.cancel()  # the handler's connection closed: the member stays (Kafka semantics)
    assert done(ja).generation_id == 3
    assert h.coord.describe("g").state == "CompletingRebalance"


def test_max_group_size() -> None:
    h = Harness(max_group_size=1)
    done(h.join_new())
    assert done(h.join()).error_code == E.GROUP_MAX_SIZE_REACHED


@pytest.mark.asyncio
async def test_handlers_await_futures_on_the_running_loop() -> None:
    coord = GroupCoordinator(FakeClock(), MemoryOffsetStore())  # futures on the running loop

    def join(member_id: str) -> asyncio.Future:
        return coord.join("g", member_id, None, "c", "h", SESSION_MS, 30_000, "consumer",
                          [("range", b"")], require_known_member_id=False)

    first = await join("")
    second = join("")
    r1, r2 = await asyncio.wait_for(asyncio.gather(join(first.member_id), second), 5)
    assert r1.generation_id == r2.generation_id == 2
