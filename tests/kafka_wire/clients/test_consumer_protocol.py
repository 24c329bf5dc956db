"""The KIP-848 consumer protocol (`group.protocol=consumer`) with confluent-kafka 2.16.1
(librdkafka 2.16) against pyggy: ConsumerGroupHeartbeat, the server-side assignors, regex
subscriptions, member-epoch offset commits, and the admin views (ListGroups group type,
ConsumerGroupDescribe). The Java client and franz-go are in interop_tests/."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupType, Producer
from confluent_kafka.admin import AdminClient
from support import PARTITIONS, api_versions_used

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.timeout(120)


def _produce(server: PyggyServer, topic: str, n: int, start: int = 0) -> None:
    p = Producer({"bootstrap.servers": server.kafka_address, "linger.ms": 5})
    for i in range(start, start + n):
        p.produce(topic, key=str(i).encode(), value=f"v{i}".encode(), partition=i % PARTITIONS)
    assert p.flush(30) == 0


def _consumer(server: PyggyServer, group: str, **conf: object) -> Consumer:
    return Consumer({"bootstrap.servers": server.kafka_address, "group.id": group,
                     "group.protocol": "consumer", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False, **conf})


def _keys(start: int, n: int) -> set[bytes]:
    return {str(i).encode() for i in range(start, start + n)}


def _drain(consumers: list[Consumer], want: set[bytes], timeout: float = 60,
           ) -> dict[bytes, set[int]]:
    """Poll every consumer until the records keyed `want` all arrived; key → consumers (more
    keys may arrive: records a member reads again from the earliest offset of a partition it
    took over before any commit)."""
    seen: dict[bytes, set[int]] = {}
    deadline = time.monotonic() + timeout
    while not want <= seen.keys() and time.monotonic() < deadline:
        for i, c in enumerate(consumers):
            for m in c.consume(num_messages=500, timeout=0.2):
                assert m.error() is None, m.error()
                seen.setdefault(m.key(), set()).add(i)
    missing = want - seen.keys()
    assert not missing, f"{len(missing)} of {len(want)} records missing"
    return seen


def _wait_for(what: str, check, timeout: float = 40, *consumers: Consumer) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        for c in consumers:
            c.poll(0.1)


def test_two_members_split_the_partitions_and_one_takes_over(kafka_server, topic) -> None:
    _produce(kafka_server, topic, 60)
    group = f"g-{topic}"
    a, b = _consumer(kafka_server, group), _consumer(kafka_server, group)
    open_b = True
    a.subscribe([topic])
    b.subscribe([topic])
    try:
        _drain([a, b], _keys(0, 60))

        def split() -> bool:
            pa, pb = {p.partition for p in a.assignment()}, {p.partition for p in b.assignment()}
            return bool(pa) and bool(pb) and not pa & pb and pa | pb == set(range(PARTITIONS))
        _wait_for("the members should split the partitions", split, 40, a, b)
        # records on every partition now reach both members; commits carry the member epoch
        # (OffsetCommit v9)
        _produce(kafka_server, topic, 30, start=60)
        got = _drain([a, b], _keys(60, 30))
        assert {i for k in _keys(60, 30) for i in got[k]} == {0, 1}
        a.commit(asynchronous=False)
        b.commit(asynchronous=False)

        admin = AdminClient({"bootstrap.servers": kafka_server.kafka_address})
        listed = admin.list_consumer_groups().result(30)
        mine = [g for g in listed.valid if g.group_id == group]
        assert len(mine) == 1 and mine[0].type == ConsumerGroupType.CONSUMER
        described = admin.describe_consumer_groups([group])[group].result(30)
        assert len(described.members) == 2
        assert {tp.partition for m in described.members
                for tp in m.assignment.topic_partitions} == set(range(PARTITIONS))
        # a member leaves: the other one takes over every partition
        b.close()
        open_b = False
        _wait_for("the remaining member should own every partition",
                  lambda: len(a.assignment()) == PARTITIONS, 40, a)
        _produce(kafka_server, topic, 30, start=90)
        # exactly the new records: a starts b's partitions at b's committed offsets
        assert set(_drain([a], _keys(90, 30))) == _keys(90, 30)
    finally:
        a.close()
        if open_b:
            b.close()
    used = api_versions_used(kafka_server)
    assert any("ConsumerGroupHeartbeat" in apis for apis in used.values()), used


def test_regex_subscription_is_resolved_by_the_broker(kafka_server, topic) -> None:
    names = [f"{topic}-rx{i}" for i in range(2)]
    for i, name in enumerate(names):
        _produce(kafka_server, name, 9, start=9 * i)
    c = _consumer(kafka_server, f"g-{topic}")
    c.subscribe([f"^{topic}-rx.*"])
    try:
        assert set(_drain([c], _keys(0, 18))) == _keys(0, 18)
        _wait_for("both topics should be assigned",
                  lambda: {p.topic for p in c.assignment()} == set(names), 30, c)
    finally:
        c.close()


def test_a_member_rejoins_after_a_server_crash_and_resumes_at_its_commits(tmp_path: Path) -> None:
    """Membership is in memory: after kill -9 and restart the member's heartbeat is answered
    UNKNOWN_MEMBER_ID, it rejoins, and it resumes exactly at its (durable) commits."""
    server = PyggyServer(tmp_path, env={"IGGY_KAFKA_NUM_PARTITIONS": str(PARTITIONS)}).start()
    server.wait_for_log("kafka listening on")
    try:
        topic = "restart848"
        _produce(server, topic, 30)
        c = _consumer(server, f"g-{topic}")
        c.subscribe([topic])
        try:
            assert set(_drain([c], _keys(0, 30))) == _keys(0, 30)
            c.commit(asynchronous=False)
            server.restart(signal.SIGKILL)
            server.wait_for_log("kafka listening on")
            _produce(server, topic, 30, start=30)
            assert set(_drain([c], _keys(30, 30), timeout=90)) == _keys(30, 30)
        finally:
            c.close()
    finally:
        server.close()
