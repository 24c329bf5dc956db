"""The Kafka door in a cluster, driven in process against a scripted `ClusterView` (the
fault-injecting side of core/engine/cluster.py: leaders, views and links set by the test):
Metadata, Produce, Fetch, ListOffsets, OffsetForLeaderEpoch, FindCoordinator and
CreateTopics route and fence as Kafka clients expect (kafka_wire/routing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_door import Door
from pyggy.core.engine import LogEngine
from pyggy.core.engine.cluster import ClusterNode, Leadership, NotLeader
from pyggy.core.records import kafka_batch
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.context import KafkaServer
from pyggy.kafka_wire.settings import KafkaSettings

PRODUCE, FETCH, LIST_OFFSETS, METADATA, FIND_COORDINATOR, EPOCHS, CREATE = 0, 1, 2, 3, 10, 23, 19
ME = 1
pytestmark = pytest.mark.asyncio


class ScriptedCluster:
    """A three-node cluster as node 1 sees it; the test sets leaders and views."""

    replica_id = ME

    def __init__(self) -> None:
        self.leader: int | None = ME
        self.meta_leader: int | None = 2
        self.view = 7
        self.settled = True
        self.appended: list[bytes] = []

    def nodes(self) -> list[ClusterNode]:
        return [ClusterNode(i, f"n{i}", f"10.0.0.{i}", 8090, 9092 + i, 0) for i in range(3)]

    def metadata_leader(self) -> int | None:
        return self.meta_leader

    def partition(self, stream_id: int, topic_id: int, partition_id: int) -> Leadership:
        return Leadership(self.leader, self.view, (0, 1) if self.leader is not None else (ME,),
                          self.settled)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Door, ScriptedCluster, LogEngine]]:
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    asyncio.run(engine.metadata.create_stream("kafka"))
    t = asyncio.run(engine.metadata.create_topic("kafka", "orders", 1))
    batch = kafka_batch.build_batch([(1_700_000_000_000, b"k", b"v", [])])
    asyncio.run(engine.data.append_kafka(t, 0, batch, kafka_batch.validate_batch(batch)))
    scripted = ScriptedCluster()
    engine.cluster = scripted
    door = Door(KafkaServer(engine, KafkaSettings(host="me.example", port=19092, node_id=ME)))
    yield door, scripted, engine
    engine.close()


async def fetch(door: Door, epoch: int = -1) -> dict:
    r = await door.call(FETCH, 12, {"max_wait_ms": 0, "min_bytes": 1, "topics": [
        {"topic": "orders", "partitions": [{"partition": 0, "fetch_offset": 0,
                                            "current_leader_epoch": epoch,
                                            "partition_max_bytes": 1 << 20}]}]})
    return r["responses"][0]["partitions"][0]


async def list_offsets(door: Door, epoch: int = -1) -> dict:
    r = await door.call(LIST_OFFSETS, 7, {"replica_id": -1, "topics": [
        {"name": "orders", "partitions": [{"partition_index": 0, "current_leader_epoch": epoch,
                                           "timestamp": -1}]}]})
    return r["topics"][0]["partitions"][0]


async def test_metadata_lists_the_roster_leader_epoch_and_controller(cluster) -> None:
    door, c, _ = cluster
    r = await door.call(METADATA, 12, {"topics": [{"name": "orders", "topic_id": bytes(16)}],
                                      "allow_auto_topic_creation": False,
                                      "include_topic_authorized_operations": False})
    assert [(b["node_id"], b["host"], b["port"]) for b in r["brokers"]] == [
        (0, "10.0.0.0", 9092), (1, "me.example", 19092), (2, "10.0.0.2", 9094)]
    assert r["controller_id"] == 2
    (p,) = r["topics"][0]["partitions"]
    assert (p["error_code"], p["leader_id"], p["leader_epoch"]) == (E.NONE, ME, 7)
    assert p["replica_nodes"] == [0, 1, 2] and p["isr_nodes"] == [0, 1]
    assert p["offline_replicas"] == [2]
    c.leader = None  # a view change
    r = await door.call(METADATA, 12, {"topics": None, "allow_auto_topic_creation": False,
                                      "include_topic_authorized_operations": False})
    (p,) = r["topics"][0]["partitions"]
    assert (p["error_code"], p["leader_id"]) == (E.LEADER_NOT_AVAILABLE, -1)


async def test_a_broker_that_does_not_lead_refuses_produce_and_reads(cluster) -> None:
    door, c, engine = cluster
    c.leader = 0
    batch = kafka_batch.build_batch([(1_700_000_000_000, b"k", b"nope", [])])
    r = await door.call(PRODUCE, 9, {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
    assert r["responses"][0]["partition_responses"][0]["error_code"] == \
        E.NOT_LEADER_OR_FOLLOWER
    assert engine.metadata.topic("kafka", "orders").partitions[0].log.next_offset == 1
    assert (await fetch(door))["error_code"] == E.NOT_LEADER_OR_FOLLOWER
    assert (await list_offsets(door))["error_code"] == E.NOT_LEADER_OR_FOLLOWER
    c.leader = None
    assert (await fetch(door))["error_code"] == E.NOT_LEADER_OR_FOLLOWER


async def test_a_new_leader_admits_no_produce_before_it_executed_what_it_took_over(
        cluster) -> None:
    """Until the batches adopted from the previous leader are executed, an idempotent retry of
    one of them could not be recognised (its sequence is not in the log yet): refused as not
    leading, retriable, nothing stored; then accepted."""
    door, c, engine = cluster
    c.settled = False
    batch = kafka_batch.build_batch([(1_700_000_000_000, b"k", b"later", [])])
    call = {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 0, "records": bytes(batch)}]}]}
    r = await door.call(PRODUCE, 9, call)
    assert r["responses"][0]["partition_responses"][0]["error_code"] == \
        E.NOT_LEADER_OR_FOLLOWER
    log = engine.metadata.topic("kafka", "orders").partitions[0].log
    assert log.next_offset == 1
    assert (await fetch(door))["error_code"] == E.NONE  # committed reads are not held
    c.settled = True
    r = await door.call(PRODUCE, 9, call)
    assert r["responses"][0]["partition_responses"][0]["error_code"] == E.NONE
    assert log.next_offset == 2


async def test_leader_epochs_are_fenced(cluster) -> None:
    door, _, _ = cluster
    assert (await fetch(door, 6))["error_code"] == E.FENCED_LEADER_EPOCH
    assert (await fetch(door, 8))["error_code"] == E.UNKNOWN_LEADER_EPOCH
    ok = await fetch(door, 7)
    assert ok["error_code"] == E.NONE and ok["high_watermark"] == 1 and ok["records"]
    assert (await list_offsets(door, 6))["error_code"] == E.FENCED_LEADER_EPOCH
    lo = await list_offsets(door, 7)
    assert (lo["error_code"], lo["offset"], lo["leader_epoch"]) == (E.NONE, 1, 7)
    r = await door.call(EPOCHS, 4, {"replica_id": -1, "topics": [{"topic": "orders",
                                    "partitions": [{"partition": 0, "current_leader_epoch": 7,
                                                    "leader_epoch": 3}]}]})
    (p,) = r["topics"][0]["partitions"]
    assert (p["error_code"], p["leader_epoch"], p["end_offset"]) == (E.NONE, 7, 1)


async def test_the_coordinator_is_the_metadata_primary_and_admin_needs_it(cluster) -> None:
    door, _, engine = cluster
    r = await door.call(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": ["g"]})
    (co,) = r["coordinators"]
    assert (co["node_id"], co["host"], co["port"]) == (2, "10.0.0.2", 9094)

    async def not_here(cmd: dict):
        raise NotLeader(2)

    engine.commands.propose = not_here  # this node is a backup of the metadata group
    r = await door.call(CREATE, 7, {"topics": [
        {"name": "new", "num_partitions": 1, "replication_factor": -1, "assignments": [],
         "configs": []}], "timeout_ms": 1000, "validate_only": False})
    assert r["topics"][0]["error_code"] == E.NOT_CONTROLLER


async def test_a_backup_names_the_coordinator_without_creating_the_internal_topic(
        cluster) -> None:
    """Only the metadata primary can create `__transaction_state`; a backup asked first
    still names the primary (librdkafka keeps asking the broker it chose)."""
    door, _, engine = cluster

    async def not_here(cmd: dict):
        raise NotLeader(2)

    engine.commands.propose = not_here  # this node is a backup of the metadata group
    r = await door.call(FIND_COORDINATOR, 4, {"key_type": 1, "coordinator_keys": ["tx"]})
    (co,) = r["coordinators"]
    assert (co["error_code"], co["node_id"], co["port"]) == (E.NONE, 2, 9094)
    assert engine.metadata.get_topic("kafka", "__transaction_state") is None
