"""Flexible quorums as TigerBeetle and Iggy compute them.

replication = 2 if n == 2 else min(ceil(n / 2), 3); view change = 2 if n == 2 else
n - replication + 1; nack = n - replication + 1. Any replication quorum intersects any view-change
quorum, and a nack quorum proves an op never reached a replication quorum.
"""

from __future__ import annotations

from dataclasses import dataclass

REPLICAS_MAX = 32


@dataclass(frozen=True, slots=True)
class Quorums:
    replication: int
    view_change: int
    nack: int


def quorums(n: int) -> Quorums:
    if not 1 <= n <= REPLICAS_MAX:
        raise ValueError(f"replica count {n} outside 1..{REPLICAS_MAX}")
    replication = 2 if n == 2 else min((n + 1) // 2, 3)
    view_change = 2 if n == 2 else n - replication + 1
    return Quorums(replication, view_change, n - replication + 1)
