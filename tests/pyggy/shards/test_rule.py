"""The partition → shard rule: stable, and a topic of at least N partitions on every shard."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pyggy.shards.rule import owner

ids = st.integers(0, 2**32 - 1)


@given(ids, ids, st.integers(0, 10_000))
def test_one_shard_owns_everything(stream: int, topic: int, partition: int) -> None:
    assert owner(stream, topic, partition, 1) == 0


@given(ids, ids, st.integers(2, 64))
def test_a_topic_with_n_partitions_has_one_on_each_of_n_shards(stream: int, topic: int,
                                                              shards: int) -> None:
    owners = [owner(stream, topic, p, shards) for p in range(shards)]
    assert sorted(owners) == list(range(shards))


def test_the_rule_is_fixed() -> None:
    """A shard count that stays the same gives every partition the same owner after a
    restart: these values are part of the data layout's meaning (docs/sharding.md)."""
    assert [owner(1, 1, p, 2) for p in range(4)] == [owner(1, 1, 0, 2), 1 - owner(1, 1, 0, 2),
                                                     owner(1, 1, 0, 2), 1 - owner(1, 1, 0, 2)]
    assert [owner(1, t, 0, 4) for t in range(1, 9)] == [owner(1, t, 0, 4) for t in range(1, 9)]
    # topics of one partition spread: not all on shard 0
    assert len({owner(1, t, 0, 4) for t in range(1, 33)}) > 1
