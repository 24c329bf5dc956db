"""The Kafka door in a cluster, driven in process against a scripted `ClusterView` (the
fault-injecting side of core/engine/cluster.py: leaders, views and links set by the test):
Metadata, Produce, Fetch, ListOffsets, OffsetForLeaderEpoch, FindCoordinator and
CreateTopics route and fence as Kafka clients expect (kafka_wire/routing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from kafka_door import Door
from pyggy.core.engine import LogEngine
from pyggy.core.engine.cluster import FORWARD, ClusterNode, Leadership, NotLeader
from pyggy.core.records import kafka_batch
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.context import KafkaServer
from pyggy.kafka_wire.settings import KafkaSettings

METADATA_CALL = {"allow_auto_topic_creation": False, "include_topic_authorized_operations": False}
PRODUCE, FETCH, LIST_OFFSETS, METADATA, FIND_COORDINATOR, EPOCHS, CREATE = 0, 1, 2, 3, 10, 23, 19
DELETE, CREATE_PARTITIONS, INCREMENTAL_ALTER = 20, 37, 44
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
        self.leased = True  # this node heard from a quorum within the heartbeat timeout
        self.appended: list[bytes] = []
        self.current = True  # the metadata replica knows of nothing it has not executed
        self.fences = 0  # read fences waited for
        self.catch_up: Callable[[], Awaitable[None]] | None = None  # what the wait brings
        self.leader_fences: list[list[tuple[int, int, int]]] = []
        self.leader_arrives: int | None = None  # the leader a leader fence's wait brings
        self.deposed = False  # the others moved to a newer view this node has not heard of
        self.confirms = 0

    def metadata_current(self) -> bool:
        return self.current

    async def leaders_fence(self, partitions: list[tuple[int, int, int]],
                            timeout: float = 2.0) -> bool:
        self.leader_fences.append(list(partitions))
        if self.leader is None:
            self.leader = self.leader_arrives
        return self.leader is not None

    async def metadata_fence(self, timeout: float = 2.0) -> bool:
        self.fences += 1
        if self.catch_up is not None:
            await self.catch_up()
            self.current = True
        return self.current

    def nodes(self) -> list[ClusterNode]:
        return [ClusterNode(i, f"n{i}", f"10.0.0.{i}", 8090, 9092 + i, 0) for i in range(3)]

    def metadata_leader(self) -> int | None:
        return self.meta_leader

    def partition(self, stream_id: int, topic_id: int, partition_id: int) -> Leadership:
        return Leadership(self.leader, self.view, (0, 1) if self.leader is not None else (ME,),
                          self.settled, self.leased)

    async def confirm(self, stream_id: int, topic_id: int, partition_id: int) -> None:
        """A barrier through the group (cluster/partition_sm.py BARRIER; its real behaviour:
        tests/cluster/test_partition_group.py): a deposed node's never commits."""
        self.confirms += 1
        if self.deposed:
            self.leader = 0  # it hears of the new view: its barrier ends NotLeader
            raise NotLeader(0)


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


async def test_a_new_leader_refuses_idempotent_produce_until_it_has_settled(cluster) -> None:
    """Found by N1 (docs/cluster.md): a new leader that rebuilt a producer's sequences from its
    log before executing the ops it took over answered OUT_OF_ORDER_SEQUENCE_NUMBER to the
    producer's next batch; until it has settled it answers NOT_LEADER (retriable, not stored)
    and rebuilds nothing."""
    door, c, engine = cluster
    c.settled = False
    batch = kafka_batch.build_batch([(1_700_000_000_000, b"k", b"v2", [])], producer_id=4000,
                                    producer_epoch=0, base_sequence=817)
    r = await door.call(PRODUCE, 9, {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
    assert r["responses"][0]["partition_responses"][0]["error_code"] == \
        E.NOT_LEADER_OR_FOLLOWER
    assert engine.metadata.topic("kafka", "orders").partitions[0].log.next_offset == 1
    assert not door.server.producers.restored
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


def idempotent(seq: int, epoch: int = 0) -> dict:
    batch = kafka_batch.build_batch([(1_700_000_000_000, b"k", b"s%d" % seq, [])],
                                    producer_id=4000, producer_epoch=epoch, base_sequence=seq)
    return {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 0, "records": bytes(batch)}]}]}


async def test_a_deposed_leader_does_not_refuse_from_its_stale_producer_state(cluster) -> None:
    """Finding N-d of docs/cluster.md, kafka-python's requests replayed: the leader (this node)
    acknowledged sequences 0-1 and was cut off; the others elected a new leader, which took 2
    (the producer's retry after its request timeout); healed but not yet told of the new view,
    this node still believes it leads, and kafka-python, which takes any Metadata answer
    whatever its leader epoch, sends it sequence 3. Its producer state ends at 1: refusing
    OUT_OF_ORDER_SEQUENCE_NUMBER (not retriable: the producer bumps its epoch and fails the
    batch) was the bug; it first proves it still leads (a barrier through the group), and,
    deposed, answers NOT_LEADER_OR_FOLLOWER (retriable) without storing anything. A leader
    that does still lead refuses a real gap as Kafka does, with Kafka's explanation."""
    door, c, engine = cluster
    log = engine.metadata.topic("kafka", "orders").partitions[0].log

    async def produce(seq: int, epoch: int = 0) -> dict:
        r = await door.call(PRODUCE, 9, idempotent(seq, epoch))
        return r["responses"][0]["partition_responses"][0]

    assert [(await produce(s))["error_code"] for s in (0, 1)] == [E.NONE, E.NONE]
    assert c.confirms == 0  # in-order batches cost no barrier
    c.deposed = True
    answer = await produce(3)
    assert answer["error_code"] == E.NOT_LEADER_OR_FOLLOWER and c.confirms == 1
    assert log.next_offset == 3
    assert (await produce(2, epoch=1))["error_code"] == E.NOT_LEADER_OR_FOLLOWER
    c.deposed, c.leader = False, ME  # a node that does lead, and a real gap
    answer = await produce(3)
    assert answer["error_code"] == E.OUT_OF_ORDER_SEQUENCE_NUMBER and c.confirms == 2
    assert "3 (incoming seq. number), 1 (current end sequence number)" in \
        answer["error_message"]
    assert (await produce(2))["error_code"] == E.NONE and log.next_offset == 4


async def test_a_new_leader_does_not_make_a_consumer_go_back(cluster) -> None:
    """Found by N5 (docs/cluster.md): a new leader still executing what it took over had a
    shorter log than the committed end a consumer had read on the old leader, so its
    OffsetForLeaderEpoch answer looked like a truncation and librdkafka went back 25
    records (and a fetch past its end would be OFFSET_OUT_OF_RANGE: back to the start).
    Until it has settled both answer NOT_LEADER (retriable); reads below its end go on."""
    door, c, _ = cluster
    c.settled = False

    async def fetch_at(offset: int) -> int:
        r = await door.call(FETCH, 12, {"max_wait_ms": 0, "min_bytes": 1, "topics": [
            {"topic": "orders", "partitions": [{"partition": 0, "fetch_offset": offset,
                                                "current_leader_epoch": 7,
                                                "partition_max_bytes": 1 << 20}]}]})
        return r["responses"][0]["partitions"][0]["error_code"]

    async def epoch_end() -> int:
        r = await door.call(EPOCHS, 4, {"replica_id": -1, "topics": [{"topic": "orders",
                            "partitions": [{"partition": 0, "current_leader_epoch": 7,
                                            "leader_epoch": 6}]}]})
        return r["topics"][0]["partitions"][0]["error_code"]

    assert await fetch_at(5) == E.NOT_LEADER_OR_FOLLOWER
    assert await fetch_at(0) == E.NONE
    assert await epoch_end() == E.NOT_LEADER_OR_FOLLOWER
    c.settled = True
    assert await fetch_at(5) == E.OFFSET_OUT_OF_RANGE
    assert await epoch_end() == E.NONE


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


async def test_group_requests_reach_only_the_metadata_primary(cluster) -> None:
    """Groups are coordinated by the metadata primary alone: a backup answers every group
    request NOT_COORDINATOR (the client looks the coordinator up again), lists no group,
    and says COORDINATOR_NOT_AVAILABLE (back off) while a view change leaves none."""
    from pyggy.kafka_wire.groups import GroupCoordinator, MemoryOffsetStore

    door, c, engine = cluster
    door.server.coordinator = GroupCoordinator(engine.clock, MemoryOffsetStore())
    join = {"group_id": "g", "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000,
            "member_id": "", "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b""}], "reason": None}
    heartbeat = {"group_id": "g", "generation_id": 1, "member_id": "m",
                 "group_instance_id": None}
    commit = {"group_id": "g", "generation_id_or_member_epoch": -1, "member_id": "",
              "group_instance_id": None, "retention_time_ms": -1, "topics": [
                  {"name": "orders", "partitions": [{"partition_index": 0, "committed_offset": 1,
                                                     "committed_leader_epoch": -1,
                                                     "committed_metadata": ""}]}]}
    fetch_offsets = {"groups": [{"group_id": "g", "member_id": None, "member_epoch": -1,
                                 "topics": None}], "require_stable": False}
    cg_heartbeat = {"group_id": "n", "member_id": "", "member_epoch": 0, "instance_id": None,
                    "rack_id": None, "rebalance_timeout_ms": 10_000,
                    "subscribed_topic_names": ["orders"], "subscribed_topic_regex": None,
                    "server_assignor": None, "topic_partitions": []}

    async def answers() -> list[int]:
        j = await door.call(11, 9, join)
        h = await door.call(12, 4, heartbeat)
        o = await door.call(8, 9, commit)
        f = await door.call(9, 9, fetch_offsets)
        d = await door.call(15, 5, {"groups": ["g"], "include_authorized_operations": False})
        cg = await door.call(68, 0, cg_heartbeat)
        return [j["error_code"], h["error_code"],
                o["topics"][0]["partitions"][0]["error_code"], f["groups"][0]["error_code"],
                d["groups"][0]["error_code"], cg["error_code"]]

    assert await answers() == [E.NOT_COORDINATOR] * 6  # the metadata primary is node 2
    listed = await door.call(16, 4, {"states_filter": []})
    assert (listed["error_code"], listed["groups"]) == (E.NONE, [])
    c.meta_leader = None
    assert await answers() == [E.COORDINATOR_NOT_AVAILABLE] * 6
    c.meta_leader = ME  # now this broker coordinates: the join is served
    j = await door.call(11, 9, join)
    assert j["error_code"] == E.MEMBER_ID_REQUIRED
async def test_create_topics_accepts_a_replication_factor_up_to_the_roster(cluster) -> None:
    """Every partition of a cluster is replicated on the whole roster: replication factor 3
    is what three nodes give (scripts/cluster_bench.py asks for it); 4 cannot be reached."""
    door, _, engine = cluster

    async def create(name: str, rf: int) -> dict:
        r = await door.call(CREATE, 7, {"topics": [
            {"name": name, "num_partitions": 1, "replication_factor": rf, "assignments": [],
             "configs": []}], "timeout_ms": 1000, "validate_only": True})
        return r["topics"][0]

    assert (await create("rf3", 3))["error_code"] == E.NONE
    refused = await create("rf4", 4)
    assert refused["error_code"] == E.INVALID_REPLICATION_FACTOR
    assert "only 3 broker(s)" in refused["error_message"]


def named(*names: str) -> dict:
    return {"topics": [{"name": n, "topic_id": bytes(16)} for n in names], **METADATA_CALL}


async def test_a_node_behind_on_metadata_answers_an_unknown_topic_as_not_ready(cluster) -> None:
    """CI (P4, docs/cluster.md): librdkafka keeps UNKNOWN_TOPIC_OR_PARTITION as a permanent
    error of the topic ("Unknown partition") until its next periodic refresh. A node that
    knows it is behind waits for the read fence, then answers LEADER_NOT_AVAILABLE
    (retriable); a current node still says the topic is unknown."""
    door, c, _ = cluster
    c.current = False
    r = await door.call(METADATA, 12, named("later", "orders"))
    assert c.fences == 1
    assert [(t["name"], t["error_code"]) for t in r["topics"]] == [
        ("later", E.LEADER_NOT_AVAILABLE), ("orders", E.NONE)]
    c.current = True
    r = await door.call(METADATA, 12, named("later"))
    assert r["topics"][0]["error_code"] == E.UNKNOWN_TOPIC_OR_PARTITION
    assert c.fences == 1


async def test_the_read_fence_answers_from_the_state_it_waited_for(cluster) -> None:
    """The commit the node heard of creates the topic while the request waits: the answer made
    after the fence lists it, by name and among all topics; a request naming only topics the
    node knows does not wait."""
    door, c, engine = cluster

    async def commit(name: str) -> None:
        await engine.metadata.create_topic("kafka", name, 1)

    c.current, c.catch_up = False, lambda: commit("later")
    r = await door.call(METADATA, 12, named("later"))
    assert (r["topics"][0]["error_code"], len(r["topics"][0]["partitions"])) == (E.NONE, 1)
    c.current, c.catch_up = False, lambda: commit("later2")
    r = await door.call(METADATA, 12, {"topics": None, **METADATA_CALL})
    assert {t["name"] for t in r["topics"]} == {"orders", "later", "later2"}
    assert c.fences == 2
    c.current, c.catch_up = False, None
    r = await door.call(METADATA, 12, named("orders", "later"))
    assert [t["error_code"] for t in r["topics"]] == [E.NONE, E.NONE] and c.fences == 2


async def test_admin_requests_that_change_metadata_are_forwarded(cluster) -> None:
    """CreateTopics, DeleteTopics, CreatePartitions and (Incremental)AlterConfigs propose with
    FORWARD set (a backup sends them to the metadata primary: cluster/node.py); a Produce on
    the same connection afterwards does not."""
    door, c, engine = cluster
    seen: list[tuple[str, bool]] = []
    real = engine.commands.propose

    async def propose(cmd: dict):
        seen.append((cmd["type"], FORWARD.get()))
        return await real(cmd)

    engine.commands.propose = propose
    await door.call(CREATE, 7, {"topics": [
        {"name": "new", "num_partitions": 1, "replication_factor": -1, "assignments": [],
         "configs": []}], "timeout_ms": 1000, "validate_only": False})
    await door.call(CREATE_PARTITIONS, 1, {"topics": [
        {"name": "new", "count": 2, "assignments": None}], "timeout_ms": 1000,
        "validate_only": False})
    await door.call(INCREMENTAL_ALTER, 0, {"resources": [
        {"resource_type": 2, "resource_name": "new", "configs": [
            {"name": "retention.ms", "config_operation": 0, "value": "60000"}]}],
        "validate_only": False})
    await door.call(DELETE, 4, {"topic_names": ["new"], "timeout_ms": 1000})
    assert seen and all(forward for _, forward in seen), seen
    assert engine.metadata.get_topic("kafka", "new") is None
    seen.clear()
    batch = kafka_batch.build_batch([(1_700_000_000_000, b"k", b"v", [])])
    c.leader = 0  # not the leader: refused before any proposal, and nothing forwarded
    r = await door.call(PRODUCE, 9, {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
    assert r["responses"][0]["partition_responses"][0]["error_code"] == \
        E.NOT_LEADER_OR_FOLLOWER
    assert not FORWARD.get() and seen == []


async def test_metadata_waits_for_a_partition_leader_before_listing_none(cluster) -> None:
    """librdkafka 2.x takes a cached partition with leader -1 as a permanent error of its
    leader queries (get_watermark_offsets: "Unknown partition"): a partition without a leader
    here (a group recovering after a restart, or created a moment ago) is listed once the
    wait for the leader fence ends, with the leader it brought, else still -1."""
    door, c, engine = cluster
    t = engine.metadata.get_topic("kafka", "orders")
    c.leader, c.leader_arrives = None, 0
    r = await door.call(METADATA, 12, named("orders"))
    (p,) = r["topics"][0]["partitions"]
    assert (p["error_code"], p["leader_id"]) == (E.NONE, 0)
    assert c.leader_fences == [[(t.stream_id, t.id, 0)]]
    c.leader, c.leader_arrives = None, None  # a view change that outlasts the fence
    r = await door.call(METADATA, 12, named("orders"))
    (p,) = r["topics"][0]["partitions"]
    assert (p["error_code"], p["leader_id"]) == (E.LEADER_NOT_AVAILABLE, -1)
    c.leader = ME  # led: no wait
    await door.call(METADATA, 12, named("orders"))
    assert len(c.leader_fences) == 2


async def test_a_leader_without_its_lease_is_not_named_and_refuses_produce(cluster) -> None:
    """A leader that heard from no quorum within the heartbeat timeout (cut off: once healed
    it may still believe it leads for seconds, and kafka-python takes its Metadata whatever
    the leader epoch, N-d) lists its partition LEADER_NOT_AVAILABLE with leader -1 (after the
    leader fence, which waits for the lease too) and refuses produce and reads
    NOT_LEADER_OR_FOLLOWER, storing nothing; with the lease back it is named again."""
    door, c, engine = cluster
    t = engine.metadata.get_topic("kafka", "orders")
    log = t.partitions[0].log
    c.leased = False
    r = await door.call(METADATA, 12, named("orders"))
    (p,) = r["topics"][0]["partitions"]
    assert (p["error_code"], p["leader_id"], p["leader_epoch"]) == \
        (E.LEADER_NOT_AVAILABLE, -1, 7)
    assert c.leader_fences == [[(t.stream_id, t.id, 0)]]
    batch = kafka_batch.build_batch([(1_700_000_000_000, b"k", b"cut off", [])])
    r = await door.call(PRODUCE, 9, {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
    assert r["responses"][0]["partition_responses"][0]["error_code"] == \
        E.NOT_LEADER_OR_FOLLOWER
    assert log.next_offset == 1 and c.confirms == 0
    assert (await fetch(door, epoch=7))["error_code"] == E.NOT_LEADER_OR_FOLLOWER
    assert (await list_offsets(door))["error_code"] == E.NOT_LEADER_OR_FOLLOWER
    c.leased = True
    r = await door.call(METADATA, 12, named("orders"))
    (p,) = r["topics"][0]["partitions"]
    assert (p["error_code"], p["leader_id"]) == (E.NONE, ME)
    r = await door.call(PRODUCE, 9, {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 0, "records": bytes(batch)}]}]})
    assert r["responses"][0]["partition_responses"][0]["error_code"] == E.NONE
    assert log.next_offset == 2
