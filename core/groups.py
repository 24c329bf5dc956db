"""Iggy consumer groups: each partition owned by exactly one live member.

Members are runtime state tied to client sessions; joins, leaves and disconnects rebalance the
group and bump its generation, which fences stale polls (ConsumerGroupPartitionNotOwned).
"""

from __future__ import annotations

from pyggy.core.model import ConsumerGroup, GroupMember


def rebalance(group: ConsumerGroup, partitions_count: int) -> None:
    """Spread partitions round-robin over members in join order; bump the generation."""
    members = list(group.members.values())
    for m in members:
        m.partitions = []
    if members:
        for pid in range(partitions_count):
            members[pid % len(members)].partitions.append(pid)
    group.generation += 1


def join(group: ConsumerGroup, member_id: int, partitions_count: int) -> bool:
    """Add a member (rebalancing); False if it was one already."""
    if member_id in group.members:
        return False
    group.members[member_id] = GroupMember(member_id)
    rebalance(group, partitions_count)
    return True


def leave(group: ConsumerGroup, member_id: int, partitions_count: int) -> bool:
    if group.members.pop(member_id, None) is None:
        return False
    rebalance(group, partitions_count)
    return True


def owns(group: ConsumerGroup, member_id: int, partition_id: int) -> bool:
    m = group.members.get(member_id)
    return m is not None and partition_id in m.partitions
