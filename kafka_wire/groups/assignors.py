"""Server-side assignors of KIP-848 consumer groups: ``uniform`` (Kafka's default) and ``range``.

An assignor maps the group's members to partitions, given each member's subscribed topic ids,
the partition count of every subscribed topic and the current target assignment (for
stickiness). Pure functions over plain data; `kafka_wire.groups.consumer` calls them when the
group epoch moved past the assignment epoch (KIP-848 "target assignment").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

TopicId = bytes  # 16 bytes, Kafka's topic id (KIP-516)
Partitions = dict[TopicId, set[int]]
#: member id → subscribed topic ids
Subscriptions = Mapping[str, frozenset[TopicId]]
Assignor = Callable[[Subscriptions, Mapping[TopicId, int], Mapping[str, Partitions]],
                    dict[str, Partitions]]


def uniform(subs: Subscriptions, counts: Mapping[TopicId, int],
            current: Mapping[str, Partitions]) -> dict[str, Partitions]:
    """Balanced and sticky: a partition goes to the least-loaded subscribed member, and stays
    with its current owner while that owner is subscribed and not above its fair share.

    First every member keeps up to its share (rounded down) of what it owned; then each other
    partition goes to the least-loaded subscriber, its previous owner winning ties. For
    homogeneous subscriptions (Kafka's common case) loads differ by at most one; heterogeneous
    ones are balanced greedily (Kafka's `UniformHeterogeneousAssignmentBuilder` optimises
    further).
    """
    members = sorted(subs)
    out: dict[str, Partitions] = {m: {} for m in members}
    load = dict.fromkeys(members, 0)
    share = _shares(subs, counts, members)
    owner_of = {(t, p): m for m, parts in current.items() if m in subs
                for t, ps in parts.items() for p in ps}
    unassigned: list[tuple[TopicId, int]] = []
    for t in sorted({t for s in subs.values() for t in s if t in counts}):
        for p in range(counts[t]):
            m = owner_of.get((t, p))
            if m is not None and t in subs[m] and load[m] < share[m]:
                out[m].setdefault(t, set()).add(p)
                load[m] += 1
            else:
                unassigned.append((t, p))
    for t, p in unassigned:
        prev = owner_of.get((t, p))
        m = min((m for m in members if t in subs[m]),
                key=lambda x: (load[x], x != prev, x))
        out[m].setdefault(t, set()).add(p)
        load[m] += 1
    return out


def _shares(subs: Subscriptions, counts: Mapping[TopicId, int],
            members: Sequence[str]) -> dict[str, int]:
    """Each member's fair share (rounded down) of the partitions of the topics it subscribes."""
    sharers: dict[TopicId, int] = {}
    for m in members:
        for t in subs[m]:
            sharers[t] = sharers.get(t, 0) + 1
    return {m: sum(counts.get(t, 0) for t in subs[m])
            // max((sharers[t] for t in subs[m] if t in counts), default=1)
            for m in members}


def range_(subs: Subscriptions, counts: Mapping[TopicId, int],
           current: Mapping[str, Partitions]) -> dict[str, Partitions]:
    """Per topic, contiguous ranges over its subscribers sorted by member id; the first
    ``partitions % subscribers`` members get one more (co-partitioned topics line up)."""
    del current  # range is deterministic; its stability comes from the member order
    out: dict[str, Partitions] = {m: {} for m in subs}
    for t in sorted({t for s in subs.values() for t in s if t in counts}):
        members = sorted(m for m in subs if t in subs[m])
        n, extra = divmod(counts[t], len(members))
        start = 0
        for i, m in enumerate(members):
            size = n + (1 if i < extra else 0)
            if size:
                out[m][t] = set(range(start, start + size))
            start += size
    return out


ASSIGNORS: dict[str, Assignor] = {"uniform": uniform, "range": range_}
DEFAULT_ASSIGNOR = "uniform"  # Kafka's group.consumer.assignors default order
