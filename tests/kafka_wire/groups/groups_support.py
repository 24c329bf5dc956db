"""A deterministic harness: fake clock, counted member ids, futures on an idle event loop.

Futures are created on a loop that never runs; results are read with ``Future.result()``
once the coordinator resolves them, so no test sleeps or awaits a timer.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription
from pyggy.core.records.kafka_errors import ErrorCode
from pyggy.kafka_wire.groups import (
    GroupCoordinator,
    JoinResult,
    MemoryOffsetStore,
    OffsetStore,
    SyncResult,
)

SESSION_MS = 10_000
REBALANCE_MS = 30_000


def subscription(*topics: str, version: int = 0) -> bytes:
    """ConsumerProtocolSubscription bytes as kafka-python encodes them."""
    return bytes(ConsumerProtocolSubscription(version=version, topics=list(topics),
                                              user_data=b"").encode())


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t

    def now_us(self) -> int:
        return int(self.t * 1_000_000)


class Harness:
    def __init__(self, store: OffsetStore | None = None, **kwargs: object) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.store = store if store is not None else MemoryOffsetStore()
        ids = itertools.count(1)
        self.coord = GroupCoordinator(self.clock, self.store, new_future=self.loop.create_future,
                                      new_uuid=lambda: f"u{next(ids)}", **kwargs)

    def advance(self, ms: float):
        """Move the clock and fire timers; returns the evictions."""
        self.clock.t += ms / 1000.0
        return self.coord.tick()

    def join(self, member_id: str = "", group: str = "g", *, instance: str | None = None,
             client: str = "c", protocols: Sequence[tuple[str, bytes]] | None = None,
             protocol_type: str = "consumer", session: int = SESSION_MS,
             rebalance: int = REBALANCE_MS, v4: bool = True,
             skip: bool = False) -> asyncio.Future[JoinResult]:
        if protocols is None:
            protocols = [("range", subscription("t"))]
        return self.coord.join(group, member_id, instance, client, "/127.0.0.1", session,
                               rebalance, protocol_type, protocols,
                               require_known_member_id=v4, supports_skip_assignment=skip)

    def join_new(self, group: str = "g", **kwargs: object) -> asyncio.Future[JoinResult]:
        """The v4+ dance: MEMBER_ID_REQUIRED, then the parked (or answered) real join."""
        first = done(self.join("", group, **kwargs))
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
        return self.join(first.member_id, group, **kwargs)

    def sync(self, member_id: str, generation: int, assignments=(), group: str = "g",
             **kwargs: object) -> asyncio.Future[SyncResult]:
        return self.coord.sync(group, generation, member_id, assignments=assignments, **kwargs)

    def stable_group(self, n: int, group: str = "g") -> list[str]:
        """n dynamic members, joined together and synced (assignment b"a-<member>")."""
        futures = [self.join_new(group) for _ in range(n)]
        if n > 1:  # the first completed alone (no initial delay): it rejoins for the others
            futures[0] = self.join(done(futures[0]).member_id, group)
        results = [done(f) for f in futures]
        ids = [r.member_id for r in results]
        gen = results[0].generation_id
        leader = results[0].leader
        follower_syncs = [self.sync(m, gen, group=group) for m in ids if m != leader]
        leader_sync = done(self.sync(leader, gen, [(m, b"a-" + m.encode()) for m in ids],
                                     group=group))
        assert leader_sync.error_code == ErrorCode.NONE
        assert all(done(f).error_code == ErrorCode.NONE for f in follower_syncs)
        return ids


def done(future: asyncio.Future):
    assert future.done(), "future still pending"
    return future.result()
