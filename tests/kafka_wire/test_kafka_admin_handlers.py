"""The admin handlers at every version they are registered for, in process.

Requests are built with the codec at each version, go through `dispatch.handle_frame` to the
handlers and a real engine, and the responses are decoded strictly at the same version.
Real clients (kafka-python, confluent-kafka, the Iggy SDK) are in test_admin_e2e.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from kafka_door import Door as BaseDoor
from kafka_door import opened_engine
from pyggy.core.engine import FIRST, LogEngine
from pyggy.core.model import NEVER_EXPIRE
from pyggy.core.records.iggy_batch import build_batch
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.context import KafkaServer
from pyggy.kafka_wire.registry import REGISTRY
from pyggy.kafka_wire.topics import CONFIGS, DEFAULTS, topic_id

from pyggy.testing import fill_disk

pytestmark = pytest.mark.asyncio

CREATE, DELETE, DELETE_RECORDS, DESCRIBE, ALTER, CREATE_PARTS, INCREMENTAL = \
    19, 20, 21, 32, 33, 37, 44
NONE, OUT_OF_RANGE, UNKNOWN_TOPIC, INVALID_TOPIC = \
    E.NONE, E.OFFSET_OUT_OF_RANGE, E.UNKNOWN_TOPIC_OR_PARTITION, E.INVALID_TOPIC_EXCEPTION
ALREADY_EXISTS, INVALID_PARTITIONS, INVALID_RF, INVALID_ASSIGNMENT, INVALID_CONFIG = \
    E.TOPIC_ALREADY_EXISTS, E.INVALID_PARTITIONS, E.INVALID_REPLICATION_FACTOR, \
    E.INVALID_REPLICA_ASSIGNMENT, E.INVALID_CONFIG
INVALID_REQUEST, UNKNOWN_TOPIC_ID = E.INVALID_REQUEST, E.UNKNOWN_TOPIC_ID
ZERO = UUID(int=0)


def versions(key: int) -> list[int]:
    api = REGISTRY[key]
    return list(range(api.min_version, api.max_version + 1))


class Door(BaseDoor):
    async def create(self, version: int, *topics: dict, validate_only: bool = False) -> list:
        items = [{"num_partitions": 1, "replication_factor": -1, "assignments": [],
                  "configs": []} | t for t in topics]
        r = await self.call(CREATE, version, {"topics": items, "timeout_ms": 1000,
                                              "validate_only": validate_only})
        return r["topics"]

    def topic(self, name: str):
        return self.server.topics.resolve(name)


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    with opened_engine(tmp_path / "data") as engine:
        yield Door(KafkaServer(engine))


def configs(*pairs: tuple[str, str | None]) -> list[dict]:
    return [{"name": n, "value": v} for n, v in pairs]


# -- CreateTopics ---------------------------------------------------------------------------
@pytest.mark.parametrize("version", versions(CREATE))
async def test_create_topics(door: Door, version: int) -> None:
    (r,) = await door.create(version, {"name": "t", "num_partitions": 2,
                                       "configs": configs(("retention.ms", "60000"))})
    assert (r["name"], r["error_code"], r["error_message"]) == ("t", NONE, None)
    t = door.topic("t")
    assert len(t.partitions) == 2 and t.options.message_expiry == 60_000_000
    if version >= 5:
        assert (r["num_partitions"], r["replication_factor"]) == (2, 1)
        got = {c["name"]: c for c in r["configs"]}
        assert set(got) == set(CONFIGS)
        assert (got["retention.ms"]["value"], got["retention.ms"]["config_source"]) == (
            "60000", 1)
        assert got["segment.bytes"]["config_source"] == 5
        assert not any(c["read_only"] or c["is_sensitive"] for c in got.values())
    else:
        assert (r["num_partitions"], r["replication_factor"], r["configs"]) == (-1, -1, None)
    assert r["topic_id"] == (UUID(bytes=topic_id(t)) if version >= 7 else ZERO)

    (r,) = await door.create(version, {"name": "t"})
    assert (r["error_code"], r["error_message"]) == (ALREADY_EXISTS, "Topic 't' already exists.")


@pytest.mark.parametrize("version", [2, 5, 7])
async def test_create_topics_errors(door: Door, version: int) -> None:
    rs = await door.create(
        version,
        {"name": "dup"}, {"name": "dup"},
        {"name": "a b"},
        {"name": "x" * 250},
        {"name": "."},
        {"name": "rf3", "replication_factor": 3},
        {"name": "rf0", "replication_factor": 0},
        {"name": "p0", "num_partitions": 0},
        {"name": "pneg", "num_partitions": -2},
        {"name": "cfg", "configs": configs(("retention.ms", "x"))},
        {"name": "cfgnull", "configs": configs(("retention.ms", None))},
        {"name": "cfgunknown", "configs": configs(("foo", "1"))},
        {"name": "seg", "configs": configs(("segment.bytes", "1048577"))},
        {"name": "assign", "num_partitions": 2,
         "assignments": [{"partition_index": 0, "broker_ids": [0]}]},
        {"name": "assign2", "num_partitions": -1,
         "assignments": [{"partition_index": 0, "broker_ids": [0, 1]}]},
        {"name": "assign3", "num_partitions": -1,
         "assignments": [{"partition_index": 1, "broker_ids": [0]}]},
        {"name": "assign4", "num_partitions": -1,
         "assignments": [{"partition_index": 0, "broker_ids": [0, 0]}]},
    )
    codes = {r["name"]: r["error_code"] for r in rs}
    assert codes == {"dup": INVALID_REQUEST, "a b": INVALID_TOPIC, "x" * 250: INVALID_TOPIC,
                     ".": INVALID_TOPIC, "rf3": INVALID_RF, "rf0": INVALID_RF,
                     "p0": INVALID_PARTITIONS, "pneg": INVALID_PARTITIONS,
                     "cfg": INVALID_CONFIG, "cfgnull": INVALID_CONFIG,
                     "cfgunknown": INVALID_CONFIG, "seg": INVALID_CONFIG,
                     "assign": INVALID_REQUEST, "assign2": INVALID_ASSIGNMENT,
                     "assign3": INVALID_ASSIGNMENT, "assign4": INVALID_ASSIGNMENT}
    messages = {r["name"]: r["error_message"] for r in rs}
    assert messages["a b"] == ("Topic name is invalid: 'a b' contains one or more characters "
                               "other than ASCII alphanumerics, '.', '_' and '-'")
    assert messages["assign2"] == ("The manual partition assignment includes broker 1, but no "
                                   "such broker is registered.")
    assert messages["assign4"] == ("The manual partition assignment includes the broker 0 more "
                                   "than once.")
    assert all(r["error_message"] for r in rs)
    assert [r["name"] for r in rs].count("dup") == 1  # one result per name, as Kafka
    assert rs[0]["error_message"] == "Duplicate topic name."
    assert list(door.server.topics.all()) == []


async def test_create_topics_defaults_assignments_and_validate_only(door: Door) -> None:
    door.server.settings.num_partitions = 3
    rs = await door.create(
        7,
        {"name": "dflt", "num_partitions": -1, "replication_factor": -1},
        {"name": "assigned", "num_partitions": -1, "assignments": [
            {"partition_index": 1, "broker_ids": [0]}, {"partition_index": 0, "broker_ids": [0]}]},
    )
    assert [(r["num_partitions"], r["replication_factor"]) for r in rs] == [(3, 1), (2, 1)]
    assert len(door.topic("dflt").partitions) == 3
    assert len(door.topic("assigned").partitions) == 2
    (r,) = await door.create(7, {"name": "vo", "num_partitions": 4,
                                 "configs": configs(("max.message.bytes", "100"))},
                             validate_only=True)
    assert (r["error_code"], r["num_partitions"], r["topic_id"]) == (NONE, 4, ZERO)
    assert {c["name"]: c["value"] for c in r["configs"]}["max.message.bytes"] == "100"
    assert door.topic("vo") is None
    (r,) = await door.create(7, {"name": "vo", "replication_factor": 2}, validate_only=True)
    assert r["error_code"] == INVALID_RF


# -- DeleteTopics ---------------------------------------------------------------------------
@pytest.mark.parametrize("version", versions(DELETE))
async def test_delete_topics(door: Door, version: int) -> None:
    await door.create(7, {"name": "a"}, {"name": "b"})
    tid = topic_id(door.topic("b"))
    if version >= 6:
        body = {"topics": [{"name": "a", "topic_id": ZERO},
                           {"name": None, "topic_id": UUID(bytes=tid)},
                           {"name": "nope", "topic_id": ZERO},
                           {"name": None, "topic_id": UUID(int=5)},
                           {"name": "a", "topic_id": UUID(int=5)},
                           {"name": None, "topic_id": ZERO}], "timeout_ms": 1000}
    else:
        body = {"topic_names": ["a", "b", "nope"], "timeout_ms": 1000}
    r = await door.call(DELETE, version, body)
    got = [(x["name"], x["error_code"]) for x in r["responses"]]
    if version >= 6:
        assert got == [("a", NONE), ("b", NONE), ("nope", UNKNOWN_TOPIC),
                       (None, UNKNOWN_TOPIC_ID), ("a", INVALID_REQUEST), (None, INVALID_REQUEST)]
        assert r["responses"][1]["topic_id"] == UUID(bytes=tid)
    else:
        assert got == [("a", NONE), ("b", NONE), ("nope", UNKNOWN_TOPIC)]
    messages = [x["error_message"] for x in r["responses"]]
    assert messages[0] is None
    assert (messages[2] is not None) == (version >= 5)
    assert door.topic("a") is None and door.topic("b") is None


# -- CreatePartitions -----------------------------------------------------------------------
@pytest.mark.parametrize("version", versions(CREATE_PARTS))
async def test_create_partitions(door: Door, version: int) -> None:
    await door.create(7, {"name": "g", "num_partitions": 2}, {"name": "h", "num_partitions": 2})

    async def grow(*topics: dict, validate_only: bool = False) -> dict:
        items = [{"assignments": None} | t for t in topics]
        r = await door.call(CREATE_PARTS, version, {"topics": items, "timeout_ms": 1000,
                                                    "validate_only": validate_only})
        return {x["name"]: (x["error_code"], x["error_message"]) for x in r["results"]}

    assert await grow({"name": "g", "count": 4}) == {"g": (NONE, None)}
    assert len(door.topic("g").partitions) == 4
    r = await grow({"name": "g", "count": 4}, {"name": "h", "count": 1},
                   {"name": "nope", "count": 3})
    assert r["g"] == (INVALID_PARTITIONS, "Topic already has 4 partition(s).")
    assert r["h"][0] == INVALID_PARTITIONS and "would not be an increase" in r["h"][1]
    assert r["nope"] == (UNKNOWN_TOPIC, None)
    assert await grow({"name": "h", "count": 9}, validate_only=True) == {"h": (NONE, None)}
    assert len(door.topic("h").partitions) == 2
    r = await grow({"name": "h", "count": 3, "assignments": [{"broker_ids": [1]}]},
                   {"name": "g", "count": 6, "assignments": [{"broker_ids": [0]}]})
    assert r["h"][0] == INVALID_ASSIGNMENT and r["g"][0] == INVALID_ASSIGNMENT
    r = await grow({"name": "h", "count": 3, "assignments": [{"broker_ids": [0]}]})
    assert r == {"h": (NONE, None)} and len(door.topic("h").partitions) == 3
    r = await grow({"name": "g", "count": 5}, {"name": "g", "count": 6})
    assert r["g"][0] == INVALID_REQUEST and len(door.topic("g").partitions) == 4


# -- DeleteRecords --------------------------------------------------------------------------
@pytest.mark.parametrize("version", versions(DELETE_RECORDS))
async def test_delete_records(door: Door, version: int) -> None:
    await door.create(7, {"name": "d", "num_partitions": 2})
    engine = door.server.engine
    for k in range(3):
        batch = build_batch([(i + 1, b"m%d" % (k * 10 + i), b"", 0) for i in range(10)])
        await engine.data.append("kafka", "d", (2, 0), batch)

    async def trim(*parts: tuple[int, int], topic: str = "d") -> list:
        r = await door.call(DELETE_RECORDS, version, {"topics": [{"name": topic, "partitions": [
            {"partition_index": p, "offset": o} for p, o in parts]}], "timeout_ms": 1000})
        return [(x["partition_index"], x["low_watermark"], x["error_code"])
                for x in r["topics"][0]["partitions"]]

    assert await trim((0, 15)) == [(0, 15, NONE)]
    assert await trim((0, 3)) == [(0, 15, NONE)]
    assert await trim((0, 31), (1, 1), (5, 0)) == [
        (0, -1, OUT_OF_RANGE), (1, -1, OUT_OF_RANGE), (5, -1, UNKNOWN_TOPIC)]
    assert await trim((0, 20), (0, -2)) == [(0, -1, OUT_OF_RANGE)]  # the last one counts
    assert await trim((0, 0), topic="nope") == [(0, -1, UNKNOWN_TOPIC)]
    polled = engine.data.poll("kafka", "d", 0, FIRST, 0, 2)
    assert polled.count == 2
    assert await trim((0, -1), (1, -1)) == [(0, 30, NONE), (1, 0, NONE)]
    assert engine.data.poll("kafka", "d", 0, FIRST, 0, 10).count == 0


# -- DescribeConfigs ------------------------------------------------------------------------
@pytest.mark.parametrize("version", versions(DESCRIBE))
async def test_describe_configs(door: Door, version: int) -> None:
    await door.create(7, {"name": "c", "configs": configs(("retention.ms", "5000"),
                                                          ("cleanup.policy", "delete"))})
    body = {"resources": [
        {"resource_type": 2, "resource_name": "c", "configuration_keys": None},
        {"resource_type": 2, "resource_name": "c",
         "configuration_keys": ["retention.ms", "segment.bytes", "no.such"]},
        {"resource_type": 2, "resource_name": "nope", "configuration_keys": None},
        {"resource_type": 4, "resource_name": "0", "configuration_keys": None},
        {"resource_type": 4, "resource_name": "7", "configuration_keys": None},
        {"resource_type": 8, "resource_name": "0", "configuration_keys": None},
        {"resource_type": 32, "resource_name": "g", "configuration_keys": None},
        {"resource_type": 2, "resource_name": "c", "configuration_keys": []},
    ], "include_synonyms": True, "include_documentation": True}
    r = await door.call(DESCRIBE, version, body)
    full, picked, unknown, broker, other_broker, logger, group, empty_keys = r["results"]
    assert [x["error_code"] for x in r["results"]] == [
        NONE, NONE, UNKNOWN_TOPIC, NONE, INVALID_REQUEST, NONE, NONE, NONE]
    assert logger["configs"] == [] and empty_keys["configs"] == full["configs"]
    assert {c["name"]: (c["value"], c["config_source"]) for c in group["configs"]}[
        "consumer.session.timeout.ms"] == ("45000", 5)
    got = {c["name"]: c for c in full["configs"]}
    assert set(got) == set(CONFIGS)
    ret = got["retention.ms"]
    assert (ret["value"], ret["config_source"], ret["read_only"]) == ("5000", 1, False)
    assert [(s["name"], s["source"]) for s in ret["synonyms"]] == [
        ("retention.ms", 1), ("log.retention.ms", 5)]
    assert got["cleanup.policy"]["config_source"] == 1
    assert got["max.message.bytes"]["value"] == DEFAULTS["max.message.bytes"]
    assert got["max.message.bytes"]["synonyms"] == [
        {"name": "message.max.bytes", "value": "1048588", "source": 5}]
    if version >= 3:
        assert (ret["config_type"], got["cleanup.policy"]["config_type"]) == (5, 7)
        assert got["min.cleanable.dirty.ratio"]["config_type"] == 6
        assert ret["documentation"] is None
    else:
        assert ret["config_type"] == 0
    assert [c["name"] for c in picked["configs"]] == ["retention.ms", "segment.bytes"]
    assert unknown["configs"] == [] and "does not exist" in unknown["error_message"]
    b = {c["name"]: c for c in broker["configs"]}
    assert b["broker.id"]["value"] == "0" and b["broker.id"]["config_source"] == 4
    assert b["log.retention.ms"]["value"] == "-1" and b["log.retention.ms"]["config_source"] == 5
    assert all(c["read_only"] for c in b.values())

    r = await door.call(DESCRIBE, version, {"resources": [
        {"resource_type": 2, "resource_name": "c", "configuration_keys": None},
        {"resource_type": 4, "resource_name": "", "configuration_keys": ["num.partitions"]},
    ], "include_synonyms": False, "include_documentation": False})
    assert all(c["synonyms"] == [] for res in r["results"] for c in res["configs"])
    assert [c["name"] for c in r["results"][1]["configs"]] == ["num.partitions"]


# -- AlterConfigs / IncrementalAlterConfigs -------------------------------------------------
def dynamic(door: Door, name: str) -> dict:
    from pyggy.kafka_wire.topics import dynamic_configs

    return dynamic_configs(door.topic(name))


@pytest.mark.parametrize("version", versions(ALTER))
async def test_alter_configs(door: Door, version: int) -> None:
    await door.create(7, {"name": "a", "configs": configs(("retention.ms", "5000"),
                                                          ("flush.ms", "10"))})

    async def alter(name: str, pairs, rtype: int = 2, validate_only: bool = False) -> tuple:
        r = await door.call(ALTER, version, {"resources": [
            {"resource_type": rtype, "resource_name": name, "configs": configs(*pairs)}],
            "validate_only": validate_only})
        (x,) = r["responses"]
        assert (x["resource_type"], x["resource_name"]) == (rtype, name)
        return x["error_code"], x["error_message"]

    assert await alter("a", [("retention.bytes", "1000000"), ("flush.ms", "20")]) == (NONE, None)
    assert dynamic(door, "a") == {"retention.bytes": "1000000", "flush.ms": "20"}
    t = door.topic("a")
    assert t.options.message_expiry == NEVER_EXPIRE and t.options.max_topic_size == 1_000_000
    assert await alter("a", [("retention.ms", "1")], validate_only=True) == (NONE, None)
    assert dynamic(door, "a") == {"retention.bytes": "1000000", "flush.ms": "20"}
    assert (await alter("a", [("retention.ms", "x")]))[0] == INVALID_CONFIG
    assert (await alter("a", [("retention.ms", None)]))[0] == INVALID_REQUEST
    assert (await alter("a", [("flush.ms", "1"), ("flush.ms", "2")]))[0] == INVALID_REQUEST
    assert (await alter("a", [("segment.bytes", "2097152")]))[0] == INVALID_CONFIG
    assert await alter("a", [("segment.bytes", "1073741824")]) == (NONE, None)
    assert (await alter("nope", [("flush.ms", "1")]))[0] == UNKNOWN_TOPIC
    assert await alter("a", []) == (NONE, None)
    assert dynamic(door, "a") == {}
    assert await alter("0", [("num.partitions", "2")], rtype=4) == (
        INVALID_REQUEST, "Cannot update these configs dynamically: Set(num.partitions)")
    assert await alter("0", [], rtype=4) == (NONE, None)
    assert (await alter("3", [], rtype=4))[0] == INVALID_REQUEST
    assert (await alter("x", [], rtype=16))[0] == INVALID_REQUEST


@pytest.mark.parametrize("version", versions(INCREMENTAL))
async def test_incremental_alter_configs(door: Door, version: int) -> None:
    await door.create(7, {"name": "i", "configs": configs(("retention.ms", "5000"))})

    async def alter(*ops: tuple[str, int, str | None], validate_only: bool = False,
                    name: str = "i") -> int:
        r = await door.call(INCREMENTAL, version, {"resources": [
            {"resource_type": 2, "resource_name": name, "configs": [
                {"name": n, "config_operation": op, "value": v} for n, op, v in ops]}],
            "validate_only": validate_only})
        return r["responses"][0]["error_code"]

    assert await alter(("flush.ms", 0, "7"), ("retention.ms", 1, None),
                       ("leader.replication.throttled.replicas", 2, "1:0, 0:0")) == NONE
    assert dynamic(door, "i") == {"flush.ms": "7",
                                  "leader.replication.throttled.replicas": "1:0,0:0"}
    assert door.topic("i").options.message_expiry == NEVER_EXPIRE
    assert await alter(("leader.replication.throttled.replicas", 3, "1:0,5:5")) == NONE
    assert dynamic(door, "i")["leader.replication.throttled.replicas"] == "0:0"
    assert await alter(("cleanup.policy", 2, "delete")) == NONE  # already there
    assert await alter(("cleanup.policy", 2, "shred")) == INVALID_CONFIG
    assert await alter(("cleanup.policy", 2, "compact")) == NONE  # now compact,delete
    assert dynamic(door, "i")["cleanup.policy"] == "delete,compact"
    assert await alter(("cleanup.policy", 3, "delete")) == NONE
    assert await alter(("cleanup.policy", 3, "compact")) == INVALID_CONFIG  # would be empty
    assert await alter(("cleanup.policy", 0, "delete")) == NONE
    assert await alter(("retention.ms", 2, "1")) == INVALID_CONFIG
    assert await alter(("retention.ms", 3, "1")) == INVALID_CONFIG
    assert await alter(("retention.ms", 0, None)) == INVALID_REQUEST
    assert await alter(("retention.ms", 2, None)) == INVALID_REQUEST
    assert await alter(("no.such", 0, "1")) == INVALID_CONFIG
    assert await alter(("no.such", 1, None)) == NONE  # deleting what is not there: fine
    assert await alter(("flush.ms", 9, "1")) == INVALID_REQUEST
    assert await alter(("flush.ms", 0, "1"), ("flush.ms", 1, None)) == INVALID_REQUEST
    assert await alter(("flush.ms", 1, None), validate_only=True) == NONE
    assert "flush.ms" in dynamic(door, "i")
    assert await alter(("flush.ms", 1, None), ("retention.bytes", 0, "0")) == NONE
    assert dynamic(door, "i") == {"leader.replication.throttled.replicas": "0:0",
                                  "cleanup.policy": "delete", "retention.bytes": "1"}
    assert await alter(("flush.ms", 0, "1"), name="nope") == UNKNOWN_TOPIC


async def test_alter_configs_survive_restart(tmp_path: Path) -> None:
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    door = Door(KafkaServer(engine))
    await door.create(7, {"name": "r", "configs": configs(("retention.ms", "5000"),
                                                          ("flush.ms", "3"))})
    r = await door.call(INCREMENTAL, 1, {"resources": [{"resource_type": 2, "resource_name": "r",
                                                        "configs": [
        {"name": "retention.ms", "config_operation": 1, "value": None},
        {"name": "segment.ms", "config_operation": 0, "value": "100"}]}], "validate_only": False})
    assert r["responses"][0]["error_code"] == NONE
    engine.close()
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open()
    try:
        assert dynamic(Door(KafkaServer(engine)), "r") == {"flush.ms": "3", "segment.ms": "100"}
    finally:
        engine.close()


async def test_group_configs(tmp_path: Path) -> None:
    """GROUP resources (32, KIP-848 group configs): defaults described until set; SET and
    DELETE through IncrementalAlterConfigs with Kafka's bounds; kept across a restart."""
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    door = Door(KafkaServer(engine))

    async def alter(*ops: tuple[str, int, str | None], name: str = "g",
                    validate_only: bool = False) -> int:
        r = await door.call(INCREMENTAL, 1, {"resources": [
            {"resource_type": 32, "resource_name": name, "configs": [
                {"name": n, "config_operation": op, "value": v} for n, op, v in ops]}],
            "validate_only": validate_only})
        return r["responses"][0]["error_code"]

    async def describe(d: Door, name: str = "g") -> dict:
        r = await d.call(DESCRIBE, 4, {"resources": [
            {"resource_type": 32, "resource_name": name, "configuration_keys": None}],
            "include_synonyms": False, "include_documentation": False})
        (res,) = r["results"]
        assert res["error_code"] == NONE
        return {c["name"]: (c["value"], c["config_source"]) for c in res["configs"]}

    assert (await describe(door))["consumer.heartbeat.interval.ms"] == ("5000", 5)
    assert await alter(("consumer.session.timeout.ms", 0, "50000"),
                       ("share.auto.offset.reset", 0, "earliest")) == NONE
    assert await alter(("consumer.session.timeout.ms", 0, "1000")) == INVALID_CONFIG
    assert await alter(("consumer.heartbeat.interval.ms", 0, "x")) == INVALID_CONFIG
    assert await alter(("share.isolation.level", 0, "dirty")) == INVALID_CONFIG
    assert await alter(("no.such", 0, "1")) == INVALID_CONFIG
    assert await alter(("consumer.session.timeout.ms", 2, "1")) == INVALID_CONFIG
    assert await alter(("consumer.session.timeout.ms", 0, "1")) == INVALID_CONFIG
    assert await alter(("streams.num.standby.replicas", 0, "1"), validate_only=True) == NONE
    assert await alter(("streams.num.standby.replicas", 0, "1"), name="") == INVALID_REQUEST
    got = await describe(door)
    assert got["consumer.session.timeout.ms"] == ("50000", 8)
    assert got["share.auto.offset.reset"] == ("earliest", 8)
    assert got["streams.num.standby.replicas"] == ("0", 5)
    assert await alter(("share.auto.offset.reset", 1, None)) == NONE
    engine.close()
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open()
    try:
        got = await describe(Door(KafkaServer(engine)))
        assert got["consumer.session.timeout.ms"] == ("50000", 8)
        assert got["share.auto.offset.reset"] == ("latest", 5)
    finally:
        engine.close()


async def test_dynamic_broker_configs_kept_across_a_restart(tmp_path: Path) -> None:
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    door = Door(KafkaServer(engine))

    async def alter(version: int, *pairs, key: int = ALTER, validate_only: bool = False):
        configs_ = [{"name": n, "value": v} | ({"config_operation": 0} if key == INCREMENTAL
                                                else {}) for n, v in pairs]
        r = await door.call(key, version, {"resources": [
            {"resource_type": 4, "resource_name": "0", "configs": configs_}],
            "validate_only": validate_only})
        return r["responses"][0]["error_code"]

    assert await alter(2, ("max.connections", "100"), ("num.io.threads", "4")) == NONE
    assert await alter(1, ("log.cleaner.threads", "2"), key=INCREMENTAL) == NONE
    assert await alter(1, ("max.connections", "many"), key=INCREMENTAL) == INVALID_CONFIG
    assert await alter(1, ("ssl.keystore.password", "x"), key=INCREMENTAL) == INVALID_REQUEST
    assert await alter(1, ("log.retention.ms", "1"), key=INCREMENTAL) == INVALID_REQUEST
    assert await alter(1, ("num.io.threads", "8"), key=INCREMENTAL,
                       validate_only=True) == NONE
    assert engine.consumers.broker_configs() == {
        "max.connections": "100", "num.io.threads": "4", "log.cleaner.threads": "2"}
    engine.close()
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open()
    try:
        door = Door(KafkaServer(engine))
        r = await door.call(DESCRIBE, 4, {"resources": [
            {"resource_type": 4, "resource_name": "0",
             "configuration_keys": ["max.connections", "broker.id"]}],
            "include_synonyms": False, "include_documentation": False})
        got = {c["name"]: (c["value"], c["config_source"], c["read_only"])
               for c in r["results"][0]["configs"]}
        assert got == {"max.connections": ("100", 2, False), "broker.id": ("0", 4, True)}
        assert await alter(2) == NONE  # AlterConfigs replaces them all
        assert engine.consumers.broker_configs() == {}
    finally:
        engine.close()


async def test_registry_rows() -> None:
    """The admin API keys these tests use are the registry's admin APIs (whose versions the
    registry takes from the schema lines; the README's API table is checked against them)."""
    names = {k: REGISTRY[k].name for k in
             (CREATE, DELETE, DELETE_RECORDS, DESCRIBE, ALTER, CREATE_PARTS, INCREMENTAL)}
    assert names == {19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords",
                     32: "DescribeConfigs", 33: "AlterConfigs", 37: "CreatePartitions",
                     44: "IncrementalAlterConfigs"}


async def test_delete_topics_forgets_group_offsets_and_producer_state(door: Door) -> None:
    from pyggy.kafka_wire.groups import GroupCoordinator, MemoryOffsetStore
    from pyggy.kafka_wire.groups.store import CommittedOffset

    server = door.server
    store = MemoryOffsetStore()
    server.coordinator = GroupCoordinator(server.engine.clock, store)
    await door.create(7, {"name": "gone", "num_partitions": 2}, {"name": "kept"})
    t = door.topic("gone")
    store.put("g", {("gone", 0): CommittedOffset(5, -1, ""),
                    ("gone", 1): CommittedOffset(7, -1, ""),
                    ("kept", 0): CommittedOffset(3, -1, "")})
    store.put("h", {("gone", 1): CommittedOffset(1, -1, "")})
    server.producers.record(1000, 0, 0, 5, (t.stream_id, t.id, 0), 0)
    r = await door.call(DELETE, 6, {"topics": [{"name": None, "topic_id": UUID(bytes=topic_id(t))}],
                                    "timeout_ms": 1000})
    assert r["responses"][0]["error_code"] == NONE
    assert store.offsets("g") == {("kept", 0): CommittedOffset(3, -1, "")}
    assert store.offsets("h") == {}
    assert not server.producers.partitions


async def test_flush_messages_1_is_fsync_on_every_append(door: Door) -> None:
    """Kafka's flush.messages=1 is Iggy's enforce_fsync (one option, both doors); intervals
    pyggy cannot honour are refused, never silently ignored."""
    r = await door.create(7, {"name": "f", "configs": configs(("flush.messages", "1"))},
                          {"name": "g", "configs": configs(("flush.messages", "500"))})
    assert [t["error_code"] for t in r] == [NONE, INVALID_CONFIG]
    assert door.topic("f").options.enforce_fsync is True
    assert dynamic(door, "f") == {"flush.messages": "1"}

    async def alter(value: str | None) -> int:
        op = 0 if value is not None else 1
        r = await door.call(INCREMENTAL, 1, {"resources": [
            {"resource_type": 2, "resource_name": "f", "configs": [
                {"name": "flush.messages", "config_operation": op, "value": value}]}],
            "validate_only": False})
        return r["responses"][0]["error_code"]

    assert await alter("2") == INVALID_CONFIG
    assert await alter(None) == NONE
    assert door.topic("f").options.enforce_fsync is False and dynamic(door, "f") == {}


async def test_a_full_disk_answers_kafka_storage_error(small_tmpfs) -> None:
    """ENOSPC on a real (tmpfs) disk: admin requests get KAFKA_STORAGE_ERROR (56), the
    connection lives on, and they succeed again once space is back."""
    root = small_tmpfs(1 << 20)
    engine = LogEngine(root / "data", state_fsync=True)
    engine.open(("iggy", "iggy"))
    door = Door(KafkaServer(engine))
    (r,) = await door.create(7, {"name": "t", "num_partitions": 1})
    assert r["error_code"] == NONE
    await engine.data.append("kafka", "t", (2, 0), build_batch([(1, b"m", b"", 1)] * 3), 3)
    filler = fill_disk(root)
    codes = []
    for i in range(300):  # a command may still fit in the state log's last page
        (r,) = await door.create(7, {"name": f"full-{i}-" + "x" * 200})
        codes.append(r["error_code"])
        if r["error_code"]:
            break
    assert codes[-1] == 56 and "No space left on device" in r["error_message"]
    assert door.topic(f"full-{len(codes) - 1}-" + "x" * 200) is None
    delete = {"topics": [{"name": "t", "partitions": [{"partition_index": 0, "offset": 2}]}],
              "timeout_ms": 1000}
    (p,) = (await door.call(DELETE_RECORDS, 2, delete))["topics"][0]["partitions"]
    assert p["error_code"] == E.KAFKA_STORAGE_ERROR
    assert door.topic("t").partitions[0].log.start_offset == 0
    filler.unlink()
    (r,) = await door.create(7, {"name": "after"})
    assert r["error_code"] == NONE and door.topic("after") is not None
    engine.close()
