"""Flexible quorums: the table TigerBeetle and Iggy use (replication capped at 3)."""

from __future__ import annotations

import pytest
from pyggy.consensus.quorums import quorums


@pytest.mark.parametrize("n, replication, view_change, nack", [
    (1, 1, 1, 1), (2, 2, 2, 1), (3, 2, 2, 2), (4, 2, 3, 3), (5, 3, 3, 3), (6, 3, 4, 4),
])
def test_quorum_table(n, replication, view_change, nack):
    q = quorums(n)
    assert (q.replication, q.view_change, q.nack) == (replication, view_change, nack)


@pytest.mark.parametrize("n", range(1, 33))
def test_every_replication_quorum_meets_every_view_change_quorum(n):
    q = quorums(n)
    assert q.replication + q.view_change > n  # so a view change always sees committed ops
    assert q.nack + q.replication > n  # a nack quorum proves an op missed every quorum


def test_replica_count_is_bounded():
    with pytest.raises(ValueError):
        quorums(0)
    with pytest.raises(ValueError):
        quorums(33)
