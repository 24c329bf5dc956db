"""Seeded random walks over the coordinator API, checking invariants after every step."""

from __future__ import annotations

import random

import pytest
from groups_support import Harness, subscription
from pyggy.kafka_wire.groups import GroupState

S = GroupState
PROTOCOLS = [[("range", subscription("t"))], [("range", subscription("t", "u"))],
             [("roundrobin", b"r"), ("range", subscription("t"))]]


def check_invariants(h: Harness, generations: dict[str, int]) -> None:
    for gid, g in h.coord.groups.items():
        assert g.generation >= generations.get(gid, 0)
        generations[gid] = g.generation
        assert (g.leader in g.members) if g.members else g.leader is None
        if g.state is S.EMPTY:
            assert not g.members
        assert g.pending_sync <= set(g.members)
        for instance, mid in g.static.items():
            assert g.members[mid].group_instance_id == instance
        for m in g.members.values():
            if m.group_instance_id is not None:
                assert g.static[m.group_instance_id] == m.member_id
            if g.state in (S.COMPLETING_REBALANCE, S.STABLE):
                assert m.join_future is None
            if g.state is not S.COMPLETING_REBALANCE:
                assert m.sync_future is None
            assert set(g.members).isdisjoint(g.pending)


@pytest.mark.parametrize("seed", range(6))
def test_random_walk(seed: int) -> None:
    rnd = random.Random(seed)
    h = Harness(initial_rebalance_delay_ms=rnd.choice([0, 0, 3_000]))
    futures = []
    known: list[tuple[str, str | None]] = []  # (member id, instance id) seen in answers
    generations: dict[str, int] = {}
    for _ in range(1_500):
        group = rnd.choice(["g1", "g2"])
        g = h.coord.groups.get(group)
        gen = g.generation if g else 0
        current = [(m.member_id, m.group_instance_id) for m in g.members.values()] if g else []
        roll = rnd.random()
        if current and roll < 0.75:
            mid, inst = rnd.choice(current)  # a live member
        elif known and roll < 0.85:
            mid, inst = rnd.choice(known)  # possibly stale or fenced
        else:
            mid, inst = "", rnd.choice([None, None, "i1", "i2", "i3"])
        op = rnd.random()
        if op < 0.25:
            f = h.join(mid, group, instance=inst, protocols=rnd.choice(PROTOCOLS),
                       v4=rnd.random() < 0.8, skip=rnd.random() < 0.5)
            futures.append(f)
        elif op < 0.45:
            assignments = [(m, b"x") for m, _ in current if rnd.random() < 0.9]
            futures.append(h.sync(mid, gen - (rnd.random() < 0.1), assignments, group=group,
                                  group_instance_id=inst))
        elif op < 0.7:
            h.coord.heartbeat(group, gen, mid, inst)
        elif op < 0.73:
            h.coord.leave(group, [(mid, inst, None)])
        elif op < 0.8:
            h.coord.commit_offsets(group, rnd.choice([-1, gen]), mid, inst,
                                   [("t", 0, rnd.randrange(100), -1, None)])
        elif op < 0.82 and futures:
            rnd.choice(futures).cancel()
        else:
            h.advance(rnd.choices([50, 200, 500, 11_000, 31_000],
                                  weights=[40, 30, 20, 3, 1])[0])
        for f in futures:
            if f.done() and not f.cancelled():
                r = f.result()
                if getattr(r, "member_id", ""):
                    instance = r.member_id.rsplit("-", 1)[0] if r.member_id[0] == "i" else None
                    if (r.member_id, instance) not in known:
                        known.append((r.member_id, instance))
        futures = [f for f in futures if not f.done()]
        check_invariants(h, generations)
    # everyone leaves or times out: nothing may stay parked forever
    for gid in list(h.coord.groups):
        h.coord.leave(gid, [(m, None, None) for m in list(h.coord.groups[gid].members)])
    h.advance(400_000)
    assert all(f.done() for f in futures)
    assert all(g.state is S.EMPTY for g in h.coord.groups.values())
    h.loop.close()
