"""ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69) at every registered version, in
process: requests built with the codec go through `dispatch.handle_frame` to the handlers and a
real `GroupCoordinator`; responses are decoded strictly at the same version. The state machine
itself is tested in groups/test_consumer.py; real clients in clients/test_consumer_protocol.py
and interop_tests/."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_door import Door
from pyggy.core.engine import LogEngine
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.context import KafkaServer
from pyggy.kafka_wire.groups import GroupCoordinator, MemoryOffsetStore
from pyggy.kafka_wire.registry import REGISTRY
from pyggy.kafka_wire.topics import topic_id

pytestmark = pytest.mark.asyncio
HEARTBEAT, DESCRIBE, LIST_GROUPS, DESCRIBE_GROUPS, JOIN = 68, 69, 16, 15, 11


def versions(key: int) -> list[int]:
    return list(range(REGISTRY[key].min_version, REGISTRY[key].max_version + 1))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KafkaServer]:
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    asyncio.run(engine.metadata.create_stream("kafka"))
    asyncio.run(engine.metadata.create_topic("kafka", "t", 3))
    kafka = KafkaServer(engine)
    kafka.coordinator = GroupCoordinator(
        engine.clock, MemoryOffsetStore(),
        consumer_topics=lambda: {n: (topic_id(t), len(t.partitions))
                                 for n, t in kafka.topics.all()})
    yield kafka
    engine.close()


def heartbeat(group: str, member: str, epoch: int, **fields) -> dict:
    body = {"group_id": group, "member_id": member, "member_epoch": epoch,
            "instance_id": None, "rack_id": None, "rebalance_timeout_ms": -1,
            "subscribed_topic_names": None, "subscribed_topic_regex": None,
            "server_assignor": None, "topic_partitions": None}
    if epoch == 0:
        body.update(rebalance_timeout_ms=30_000, subscribed_topic_names=["t"],
                    topic_partitions=[])
    body.update(fields)
    return body


@pytest.mark.parametrize("v", versions(HEARTBEAT))
async def test_heartbeat_join_steady_leave(server: KafkaServer, v: int) -> None:
    door = Door(server, "c848")
    member = "" if v == 0 else "member-1"  # v0: the coordinator names the member
    r = await door.call(HEARTBEAT, v, heartbeat("g", member, 0))
    assert (r["error_code"], r["error_message"], r["member_epoch"],
            r["heartbeat_interval_ms"]) == (E.NONE, None, 1, 5000)
    member = r["member_id"]
    assert member and (v == 0 or member == "member-1")
    t = topic_id(server.topics.resolve("t"))
    assert [(x["topic_id"].bytes, x["partitions"]) for x in
            r["assignment"]["topic_partitions"]] == [(t, [0, 1, 2])]
    r = await door.call(HEARTBEAT, v, heartbeat("g", member, 1))
    assert (r["error_code"], r["member_epoch"], r["assignment"]) == (E.NONE, 1, None)
    r = await door.call(HEARTBEAT, v, heartbeat("g", member, 7))
    assert r["error_code"] == E.FENCED_MEMBER_EPOCH and "greater member epoch" in \
        r["error_message"]
    if v >= 1:
        r = await door.call(HEARTBEAT, v, heartbeat("g", "", 0))
        assert (r["error_code"], r["error_message"]) == \
            (E.INVALID_REQUEST, "MemberId can't be empty.")
        r = await door.call(HEARTBEAT, v, heartbeat("rx", "m", 0, subscribed_topic_names=None,
                                                    subscribed_topic_regex="(["))
        assert r["error_code"] == E.INVALID_REGULAR_EXPRESSION
    r = await door.call(HEARTBEAT, v, heartbeat("g", member, -1))
    assert (r["error_code"], r["member_id"], r["member_epoch"]) == (E.NONE, member, -1)


@pytest.mark.parametrize("v", versions(DESCRIBE))
async def test_describe(server: KafkaServer, v: int) -> None:
    door = Door(server, "c848")
    await door.call(HEARTBEAT, 1, heartbeat("g", "m1", 0, instance_id="i1", rack_id="r1"))
    classic = {"group_id": "cl", "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000,
               "member_id": "", "group_instance_id": "x", "protocol_type": "consumer",
               "reason": None, "protocols": [{"name": "range", "metadata": b""}]}
    assert (await door.call(JOIN, 9, classic))["error_code"] == E.NONE
    r = await door.call(DESCRIBE, v, {"group_ids": ["g", "nope", "cl", ""],
                                      "include_authorized_operations": False})
    g, nope, cl, empty = r["groups"]
    t = topic_id(server.topics.resolve("t"))
    assert (g["error_code"], g["group_state"], g["group_epoch"], g["assignment_epoch"],
            g["assignor_name"]) == (E.NONE, "Stable", 1, 1, "uniform")
    [m] = g["members"]
    assigned = {"topic_partitions": [{"topic_id": m["assignment"]["topic_partitions"][0][
        "topic_id"], "topic_name": "t", "partitions": [0, 1, 2]}]}
    assert m["assignment"]["topic_partitions"][0]["topic_id"].bytes == t
    assert (m["member_id"], m["instance_id"], m["rack_id"], m["member_epoch"], m["client_id"],
            m["client_host"], m["subscribed_topic_names"], m["subscribed_topic_regex"],
            m["assignment"], m["target_assignment"], m["member_type"]) == \
        ("m1", "i1", "r1", 1, "c848", "/127.0.0.1", ["t"], None, assigned, assigned,
         1 if v >= 1 else -1)
    assert (nope["error_code"], nope["error_message"]) == \
        (E.GROUP_ID_NOT_FOUND, "Group nope not found.")
    assert (cl["error_code"], cl["error_message"]) == \
        (E.GROUP_ID_NOT_FOUND, "Group cl is not a consumer group.")
    assert empty["error_code"] == E.INVALID_GROUP_ID
    # the classic views: ListGroups v5 says which type; DescribeGroups does not know it
    r = await door.call(LIST_GROUPS, 5, {"states_filter": [], "types_filter": []})
    assert sorted((x["group_id"], x["protocol_type"], x["group_state"], x["group_type"])
                  for x in r["groups"]) == [("cl", "consumer", "CompletingRebalance", "classic"),
                                            ("g", "consumer", "Stable", "consumer")]
    r = await door.call(DESCRIBE_GROUPS, 5, {"groups": ["g"], "include_authorized_operations":
                                             False})
    assert (r["groups"][0]["error_code"], r["groups"][0]["group_state"]) == (E.NONE, "Dead")
