"""`pyggy.lag.kafka_members`: the console's member list of a Kafka group, classic or KIP-848."""

from __future__ import annotations

from types import SimpleNamespace

from pyggy.core.clock import SystemClock
from pyggy.kafka_wire.groups import GroupCoordinator, MemoryOffsetStore
from pyggy.kafka_wire.groups.consumer import Heartbeat

from pyggy.lag import kafka_members


def test_members_of_a_kip848_group() -> None:
    coord = GroupCoordinator(SystemClock(), MemoryOffsetStore(),
                             consumer_topics=lambda: {"t": (b"\x01" * 16, 2)})
    r = coord.consumer_heartbeat(Heartbeat("g", "m1", 0, rebalance_timeout_ms=30_000,
                                           topic_names=["t"], owned=[], client_id="cid",
                                           client_host="/10.0.0.1"))
    assert r.error_code == 0
    kafka = SimpleNamespace(coordinator=coord)
    assert kafka_members(kafka, "g") == [  # type: ignore[arg-type]
        {"member_id": "m1", "client_id": "cid", "host": "/10.0.0.1"}]
    assert kafka_members(kafka, "other") == []  # type: ignore[arg-type]


