"""The transaction APIs in process, at the versions the registry offers: each request's errors
in each transaction state (Kafka's codes, PRODUCER_FENCED downgraded for old versions), the
coordinator's timeout abort, epochs that never overflow INT16, Describe/ListTransactions.
Real clients: tests/kafka_wire/clients/test_kafka_transactions.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_door import Door
from pyggy.core.engine import LogEngine
from pyggy.core.records import kafka_batch
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.context import KafkaServer

pytestmark = pytest.mark.asyncio
PRODUCE, FETCH, LIST_OFFSETS, INIT, ADD_PARTS, ADD_OFFSETS, END, TXN_COMMIT = \
    0, 1, 2, 22, 24, 25, 26, 28
DESCRIBE_TXNS, LIST_TXNS, CREATE_TOPICS = 65, 66, 19


class Clock:
    def __init__(self) -> None:
        self.us = 1_000_000_000_000

    def now_us(self) -> int:
        return self.us

    def monotonic(self) -> float:
        return self.us / 1e6


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def door(tmp_path: Path, clock: Clock) -> Iterator[Door]:
    engine = LogEngine(tmp_path / "data", clock=clock, state_fsync=False)
    engine.open(("iggy", "iggy"))
    yield Door(KafkaServer(engine))
    engine.close()


async def create(door: Door, name: str, partitions: int = 2) -> None:
    r = await door.call(CREATE_TOPICS, 7, {"topics": [
        {"name": name, "num_partitions": partitions, "replication_factor": -1,
         "assignments": [], "configs": []}], "timeout_ms": 1000, "validate_only": False})
    assert r["topics"][0]["error_code"] == E.NONE


async def init(door: Door, tid: str, version: int = 5, timeout_ms: int = 60_000,
               pid: int = -1, epoch: int = -1) -> tuple[int, int, int]:
    r = await door.call(INIT, version, {"transactional_id": tid,
                                        "transaction_timeout_ms": timeout_ms,
                                        "producer_id": pid, "producer_epoch": epoch})
    return r["error_code"], r["producer_id"], r["producer_epoch"]


async def add(door: Door, tid: str, pid: int, epoch: int, topics: dict[str, list[int]],
              version: int = 3) -> dict[tuple[str, int], int]:
    r = await door.call(ADD_PARTS, version, {
        "v3_and_below_transactional_id": tid, "v3_and_below_producer_id": pid,
        "v3_and_below_producer_epoch": epoch,
        "v3_and_below_topics": [{"name": n, "partitions": ps} for n, ps in topics.items()]})
    return {(t["name"], p["partition_index"]): p["partition_error_code"]
            for t in r["results_by_topic_v3_and_below"] for p in t["results_by_partition"]}


async def end(door: Door, tid: str, pid: int, epoch: int, commit: bool,
              version: int = 4) -> int:
    r = await door.call(END, version, {"transactional_id": tid, "producer_id": pid,
                                       "producer_epoch": epoch, "committed": commit})
    return r["error_code"]


async def produce(door: Door, topic: str, partition: int, pid: int, epoch: int, seq: int,
                  value: bytes, transactional: bool = True) -> int:
    batch = kafka_batch.build_batch([(1, None, value, ())], producer_id=pid,
                                    producer_epoch=epoch, base_sequence=seq,
                                    transactional=transactional)
    r = await door.call(PRODUCE, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 1000,
                                     "topic_data": [{"name": topic, "partition_data": [
                                         {"index": partition, "records": bytes(batch)}]}]})
    return r["responses"][0]["partition_responses"][0]["error_code"]


async def fetch(door: Door, topic: str, isolation: int) -> dict:
    r = await door.call(FETCH, 12, {"max_wait_ms": 0, "min_bytes": 1, "max_bytes": 1 << 20,
                                    "isolation_level": isolation, "session_id": 0,
                                    "session_epoch": -1, "topics": [{"topic": topic,
                                    "partitions": [{"partition": 0, "fetch_offset": 0,
                                                    "partition_max_bytes": 1 << 20}]}],
                                    "forgotten_topics_data": [], "rack_id": ""})
    return r["responses"][0]["partitions"][0]


async def test_init_bumps_the_epoch_and_fences_the_previous_instance(door: Door) -> None:
    assert (await init(door, "t", timeout_ms=0))[0] == E.INVALID_TRANSACTION_TIMEOUT
    assert (await init(door, "t", timeout_ms=900_001))[0] == E.INVALID_TRANSACTION_TIMEOUT
    code, pid, epoch = await init(door, "t")
    assert (code, epoch) == (E.NONE, 0) and pid >= 0
    assert await init(door, "t") == (E.NONE, pid, 1)
    # KIP-360: only the current instance may ask for a bump with its id and epoch
    assert await init(door, "t", pid=pid, epoch=1) == (E.NONE, pid, 2)
    assert (await init(door, "t", pid=pid, epoch=1))[0] == E.PRODUCER_FENCED
    assert (await init(door, "t", version=3, pid=pid, epoch=1))[0] == \
        E.INVALID_PRODUCER_EPOCH
    other = await init(door, "u")
    assert other[1] != pid


async def test_a_transaction_through_its_states(door: Door) -> None:
    await create(door, "out")
    _, pid, epoch = await init(door, "t")
    assert await end(door, "t", pid, epoch, True) == E.INVALID_TXN_STATE  # nothing begun
    assert await produce(door, "out", 0, pid, epoch, 0, b"early") == E.INVALID_TXN_STATE
    assert await add(door, "t", pid, epoch, {"out": [0, 9], "nope": [0]}) == {
        ("out", 0): E.OPERATION_NOT_ATTEMPTED, ("out", 9): E.UNKNOWN_TOPIC_OR_PARTITION,
        ("nope", 0): E.UNKNOWN_TOPIC_OR_PARTITION}
    assert await add(door, "t", pid + 1, epoch, {"out": [0]}) == {
        ("out", 0): E.INVALID_PRODUCER_ID_MAPPING}
    assert await add(door, "t", pid, epoch + 1, {"out": [0]}) == {
        ("out", 0): E.PRODUCER_FENCED}
    assert await add(door, "t", pid, epoch + 1, {"out": [0]}, version=1) == {
        ("out", 0): E.INVALID_PRODUCER_EPOCH}
    assert await add(door, "t", pid, epoch, {"out": [0]}) == {("out", 0): E.NONE}
    assert await produce(door, "out", 1, pid, epoch, 0, b"not added") == E.INVALID_TXN_STATE
    assert await produce(door, "out", 0, pid, epoch, 0, b"v0") == E.NONE
    assert await produce(door, "out", 0, -1, -1, -1, b"plain", transactional=False) == E.NONE
    uncommitted, committed = await fetch(door, "out", 0), await fetch(door, "out", 1)
    assert (uncommitted["high_watermark"], uncommitted["last_stable_offset"]) == (2, 0)
    assert len(uncommitted["records"]) > 0 and len(committed["records"]) == 0
    r = await door.call(LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 1, "topics": [
        {"name": "out", "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                        "timestamp": -1}]}]})
    assert r["topics"][0]["partitions"][0]["offset"] == 0  # the LSO, not the HW (2)
    r = await door.call(DESCRIBE_TXNS, 0, {"transactional_ids": ["t", "none"]})
    t, none = r["transaction_states"]
    assert (t["transaction_state"], t["producer_id"], t["topics"]) == (
        "Ongoing", pid, [{"topic": "out", "partitions": [0]}])
    assert none["error_code"] == E.TRANSACTIONAL_ID_NOT_FOUND
    r = await door.call(LIST_TXNS, 2, {"state_filters": ["Ongoing", "Bogus"],
                                       "producer_id_filters": [], "duration_filter": -1,
                                       "transactional_id_pattern": "t.*"})
    assert [x["transactional_id"] for x in r["transaction_states"]] == ["t"]
    assert r["unknown_state_filters"] == ["Bogus"]

    assert await end(door, "t", pid, epoch, False) == E.NONE
    assert await end(door, "t", pid, epoch, False) == E.NONE  # a retry
    assert await end(door, "t", pid, epoch, True) == E.INVALID_TXN_STATE
    committed = await fetch(door, "out", 1)
    assert committed["last_stable_offset"] == 3  # record, plain record, ABORT marker
    assert committed["aborted_transactions"] == [{"producer_id": pid, "first_offset": 0}]
    assert len(committed["records"]) > 0


async def test_offsets_staged_in_a_transaction(door: Door) -> None:
    from pyggy.kafka_wire.groups import GroupCoordinator, MemoryOffsetStore

    door.server.coordinator = GroupCoordinator(door.server.engine.clock, MemoryOffsetStore())
    await create(door, "in", 1)
    _, pid, epoch = await init(door, "t")
    body = {"transactional_id": "t", "group_id": "g", "producer_id": pid,
            "producer_epoch": epoch, "generation_id": -1, "member_id": "",
            "group_instance_id": None, "topics": [{"name": "in", "partitions": [
                {"partition_index": 0, "committed_offset": 5, "committed_leader_epoch": -1,
                 "committed_metadata": None}]}]}
    r = await door.call(TXN_COMMIT, 3, body)
    assert r["topics"][0]["partitions"][0]["error_code"] == E.INVALID_TXN_STATE
    r = await door.call(ADD_OFFSETS, 3, {"transactional_id": "t", "producer_id": pid,
                                         "producer_epoch": epoch, "group_id": "g"})
    assert r["error_code"] == E.NONE
    r = await door.call(TXN_COMMIT, 3, body)
    assert r["topics"][0]["partitions"][0]["error_code"] == E.NONE
    assert door.server.engine.txns.get("t").offsets == {"g": [("in", 0, 5, -1, "")]}
    r = await door.call(TXN_COMMIT, 3, {**body, "producer_epoch": epoch + 1})
    assert r["topics"][0]["partitions"][0]["error_code"] == E.INVALID_PRODUCER_EPOCH

    async def offset_fetch(stable: bool) -> tuple[int, int]:
        r = await door.call(9, 7, {"group_id": "g", "require_stable": stable,
                                   "topics": [{"name": "in", "partition_indexes": [0]}]})
        p = r["topics"][0]["partitions"][0]
        return p["error_code"], p["committed_offset"]

    assert await offset_fetch(True) == (E.UNSTABLE_OFFSET_COMMIT, -1)  # KIP-447
    assert await offset_fetch(False) == (E.NONE, -1)
    assert await end(door, "t", pid, epoch, True) == E.NONE
    assert await offset_fetch(True) == (E.NONE, 5)


async def test_a_stale_transaction_is_aborted_and_its_producer_fenced(
        door: Door, clock: Clock) -> None:
    await create(door, "out")
    _, pid, epoch = await init(door, "t", timeout_ms=1000)
    await add(door, "t", pid, epoch, {"out": [0]})
    assert await produce(door, "out", 0, pid, epoch, 0, b"v") == E.NONE
    assert await door.server.txn.tick() == 0
    clock.us += 1_001_000
    assert await door.server.txn.tick() == 1
    t = door.server.engine.txns.get("t")
    assert (t.state, t.epoch) == ("CompleteAbort", epoch + 1)
    assert await end(door, "t", pid, epoch, True) == E.PRODUCER_FENCED
    assert await produce(door, "out", 0, pid, epoch, 1, b"zombie") == E.INVALID_PRODUCER_EPOCH
    assert (await fetch(door, "out", 1))["aborted_transactions"] == [
        {"producer_id": pid, "first_offset": 0}]


async def test_epochs_never_overflow_int16(door: Door) -> None:
    """Past epoch 32767 the transactional id gets a new producer id at epoch 0."""
    _, pid, _ = await init(door, "t")
    await door.server.engine.txns.init("t", pid, 32766, 60_000)
    assert await init(door, "t") == (E.NONE, pid, 32767)
    code, new_pid, epoch = await init(door, "t")
    assert (code, epoch) == (E.NONE, 0) and new_pid != pid


@pytest.mark.parametrize("version", [4, 5])
async def test_batched_add_partitions(door: Door, version: int) -> None:
    """v4+ (KIP-890 part 1): several transactions in one request, some only verified."""
    await create(door, "out")
    _, pid, epoch = await init(door, "t")
    _, pid2, epoch2 = await init(door, "u")

    async def call(*txns: tuple[str, int, int, bool]) -> dict:
        r = await door.call(ADD_PARTS, version, {"transactions": [
            {"transactional_id": tid, "producer_id": p, "producer_epoch": e,
             "verify_only": verify, "topics": [{"name": "out", "partitions": [0, 1]}]}
            for tid, p, e, verify in txns]})
        assert r["error_code"] == E.NONE
        return {x["transactional_id"]: {(t["name"], p["partition_index"]):
                                        p["partition_error_code"]
                                        for t in x["topic_results"]
                                        for p in t["results_by_partition"]}
                for x in r["results_by_transaction"]}

    got = await call(("t", pid, epoch, True), ("u", pid2, epoch2, False))
    assert got == {"t": {("out", 0): E.INVALID_TXN_STATE, ("out", 1): E.INVALID_TXN_STATE},
                   "u": {("out", 0): E.NONE, ("out", 1): E.NONE}}
    got = await call(("u", pid2, epoch2, True), ("t", pid, epoch + 1, False))
    assert got == {"u": {("out", 0): E.NONE, ("out", 1): E.NONE},
                   "t": {("out", 0): E.PRODUCER_FENCED, ("out", 1): E.PRODUCER_FENCED}}


async def test_an_idle_transactional_id_expires(door: Door, clock: Clock) -> None:
    """transactional.id.expiration.ms: an id idle past it is forgotten (with its producer
    id); one with a transaction open is kept however old; a producer coming back later is
    a new producer (new id, epoch 0), and its old epoch no longer matches anything."""
    await create(door, "out")
    door.server.settings.transactional_id_expiration_ms = 10_000
    _, pid, epoch = await init(door, "idle")
    _, busy_pid, busy_epoch = await init(door, "busy")
    await add(door, "busy", busy_pid, busy_epoch, {"out": [0]})
    _, done_pid, done_epoch = await init(door, "done")
    await add(door, "done", done_pid, done_epoch, {"out": [1]})
    assert await end(door, "done", done_pid, done_epoch, True) == E.NONE

    clock.us += 9_000_000
    await door.server.txn.tick()
    assert door.server.engine.txns.get("idle") is not None

    _, again_pid, again_epoch = await init(door, "done", pid=done_pid, epoch=done_epoch)
    clock.us += 2_000_000  # "idle" 11 s idle, "done" re-initialised 2 s ago
    await door.server.txn.tick()
    txns = door.server.engine.txns
    assert txns.get("idle") is None and txns.by_producer(pid) is None
    assert txns.get("done") is not None and txns.get("busy") is not None

    clock.us += 10_000_000_000  # far past it: the open transaction times out, then expires
    await door.server.txn.tick()
    assert txns.get("busy") is not None  # aborted now, idle from this moment
    assert txns.get("done") is None
    assert await end(door, "idle", pid, epoch, True) == E.INVALID_PRODUCER_ID_MAPPING
    code, new_pid, new_epoch = await init(door, "idle")
    assert code == E.NONE and new_epoch == 0 and new_pid != pid


async def test_expiry_survives_a_restart(tmp_path: Path, clock: Clock) -> None:
    """The expiry is a command of the state log: a restart does not bring the id back."""
    engine = LogEngine(tmp_path / "data", clock=clock, state_fsync=False)
    engine.open(("iggy", "iggy"))
    door = Door(KafkaServer(engine))
    door.server.settings.transactional_id_expiration_ms = 1_000
    await init(door, "gone")
    await init(door, "kept")
    clock.us += 500_000
    await init(door, "kept")
    clock.us += 600_000
    await door.server.txn.tick()
    engine.close()
    engine = LogEngine(tmp_path / "data", clock=clock, state_fsync=False)
    engine.open(("iggy", "iggy"))
    try:
        assert engine.txns.get("gone") is None and engine.txns.get("kept") is not None
    finally:
        engine.close()


async def test_producer_id_expiration_ms_takes_effect(door: Door, clock: Clock) -> None:
    """The dynamic broker config producer.id.expiration.ms (IncrementalAlterConfigs) bounds how
    long an idle idempotent producer's sequences are kept: a retry within it is answered with
    its original offset, after it the same batch is a new one (Kafka's behaviour)."""
    await create(door, "out")
    r = await door.call(44, 1, {"resources": [{"resource_type": 4, "resource_name": "0",
                                               "configs": [{"name": "producer.id.expiration.ms",
                                                            "value": "60000",
                                                            "config_operation": 0}]}],
                                "validate_only": False})
    assert r["responses"][0]["error_code"] == E.NONE
    init_pid = await door.call(INIT, 4, {"transactional_id": None,
                                         "transaction_timeout_ms": 60_000,
                                         "producer_id": -1, "producer_epoch": -1})
    pid, epoch = init_pid["producer_id"], init_pid["producer_epoch"]
    assert await produce(door, "out", 0, pid, epoch, 0, b"a", transactional=False) == E.NONE
    clock.us += 59_000_000
    door.server.expire_producers()
    assert await produce(door, "out", 0, pid, epoch, 0, b"a", transactional=False) == E.NONE
    log = door.server.engine.metadata.topic("kafka", "out").partitions[0].log
    assert log.next_offset == 1  # the retry was recognised
    clock.us += 61_000_000
    assert door.server.expire_producers() == 1
    assert await produce(door, "out", 0, pid, epoch, 0, b"a", transactional=False) == E.NONE
    assert log.next_offset == 2  # forgotten: stored as a new batch, as on Kafka
