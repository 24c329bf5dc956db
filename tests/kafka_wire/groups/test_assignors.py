"""The KIP-848 server-side assignors: every subscribed partition goes to exactly one subscriber;
uniform balances and sticks; range hands out contiguous ranges in member-id order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.kafka_wire.groups.assignors import ASSIGNORS, Partitions, range_, uniform

T1, T2, T3 = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16


def _flat(out: dict[str, Partitions]) -> list[tuple[str, bytes, int]]:
    return [(m, t, p) for m, parts in out.items() for t, ps in parts.items() for p in ps]


_topics = st.dictionaries(st.sampled_from([T1, T2, T3]), st.integers(0, 12), min_size=1)


@st.composite
def _groups(draw: st.DrawFn) -> tuple[dict, dict]:
    counts = draw(_topics)
    members = draw(st.lists(st.text("abcdefgh", min_size=1, max_size=3), min_size=1,
                            max_size=6, unique=True))
    subs = {m: frozenset(draw(st.sets(st.sampled_from(sorted(counts)), min_size=1)))
            for m in members}
    return subs, counts


@settings(max_examples=150, deadline=None)
@given(_groups(), st.sampled_from(sorted(ASSIGNORS)), st.randoms(use_true_random=False))
def test_every_subscribed_partition_assigned_once_to_a_subscriber(group, name, rnd) -> None:
    subs, counts = group
    # a random "current" assignment (possibly stale: members gone, topics unsubscribed)
    current: dict[str, Partitions] = {}
    for t, n in counts.items():
        for p in range(n):
            current.setdefault(rnd.choice([*subs, "gone"]), {}).setdefault(t, set()).add(p)
    out = ASSIGNORS[name](subs, counts, current)
    flat = _flat(out)
    owned = [(t, p) for _, t, p in flat]
    assert len(owned) == len(set(owned))
    wanted = {(t, p) for s in subs.values() for t in s for p in range(counts[t])}
    assert set(owned) == wanted
    assert all(t in subs[m] for m, t, _ in flat)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), st.integers(1, 7), st.randoms(use_true_random=False))
def test_uniform_balances_homogeneous_groups_and_keeps_what_it_can(n, k, rnd) -> None:
    members = [f"m{i}" for i in range(k)]
    subs = {m: frozenset([T1]) for m in members}
    before = uniform(subs, {T1: n}, {})
    loads = sorted(len(out.get(T1, ())) for out in before.values())
    assert loads[-1] - loads[0] <= 1
    # one member leaves: the others keep all they had and share its partitions
    gone = rnd.choice(members)
    rest = {m: s for m, s in subs.items() if m != gone}
    if not rest:
        return
    after = uniform(rest, {T1: n}, before)
    loads = sorted(len(out.get(T1, ())) for out in after.values())
    assert loads[-1] - loads[0] <= 1
    kept = sum(len(before[m].get(T1, set()) & after[m].get(T1, set())) for m in rest)
    had = sum(len(before[m].get(T1, set())) for m in rest)
    # everything a remaining member had stays, unless it now has more than its share
    assert kept >= min(had, sum(min(len(before[m].get(T1, ())), n // len(rest)) for m in rest))


def test_range_gives_contiguous_ranges_in_member_order() -> None:
    subs = {"b": frozenset([T1, T2]), "a": frozenset([T1, T2]), "c": frozenset([T2])}
    out = range_(subs, {T1: 5, T2: 4}, {})
    assert out["a"] == {T1: {0, 1, 2}, T2: {0, 1}}
    assert out["b"] == {T1: {3, 4}, T2: {2}}
    assert out["c"] == {T2: {3}}


def test_uniform_keeps_a_stable_assignment_unchanged() -> None:
    subs = {"a": frozenset([T1]), "b": frozenset([T1])}
    first = uniform(subs, {T1: 6}, {})
    assert uniform(subs, {T1: 6}, first) == first
