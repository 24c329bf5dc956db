"""Produce to a compacted topic: a record without a key is refused with INVALID_RECORD and one
record error per keyless record (KIP-467), compressed batches included, and nothing of the
request's batch is stored, as Kafka's broker does; keyed records and tombstones are stored.
Real clients see the same (interop_tests/test_compaction.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_door import Door, opened_engine
from pyggy.core.records import kafka_batch
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.context import KafkaServer

pytestmark = pytest.mark.asyncio
PRODUCE, CREATE_TOPICS = 0, 19
TS = 1_700_000_000_000


@pytest.fixture
def door(tmp_path: Path) -> Iterator[Door]:
    with opened_engine(tmp_path / "data") as engine:
        yield Door(KafkaServer(engine))


async def create(door: Door, name: str, policy: str) -> None:
    r = await door.call(CREATE_TOPICS, 7, {"topics": [
        {"name": name, "num_partitions": 1, "replication_factor": -1, "assignments": [],
         "configs": [{"name": "cleanup.policy", "value": policy}]}],
        "timeout_ms": 1000, "validate_only": False})
    assert r["topics"][0]["error_code"] == E.NONE


async def produce(door: Door, topic: str, batch: bytes, version: int = 9) -> dict:
    r = await door.call(PRODUCE, version, {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": batch}]}]})
    return r["responses"][0]["partition_responses"][0]


def next_offset(door: Door, topic: str) -> int:
    return door.server.engine.metadata.topic("kafka", topic).partitions[0].log.next_offset


@pytest.mark.parametrize("compression", [0, 1, 4])
@pytest.mark.parametrize("policy", ["compact", "compact,delete"])
async def test_keyless_records_are_refused_on_a_compacted_topic(
        door: Door, policy: str, compression: int) -> None:
    await create(door, "c", policy)
    mixed = bytes(kafka_batch.build_batch(
        [(TS, b"k", b"v", []), (TS, None, b"no key", []), (TS, b"k2", None, []),
         (TS, None, None, [])], compression=compression))
    p = await produce(door, "c", mixed)
    assert p["error_code"] == E.INVALID_RECORD
    assert [e["batch_index"] for e in p["record_errors"]] == [1, 3]
    assert "without key in topic partition c-0" in p["record_errors"][0][
        "batch_index_error_message"]
    assert "2 record errors" in p["error_message"]
    assert next_offset(door, "c") == 0  # nothing of it stored
    keyed = bytes(kafka_batch.build_batch([(TS, b"k", b"v", []), (TS, b"k", None, [])],
                                          compression=compression))
    p = await produce(door, "c", keyed)
    assert (p["error_code"], p["base_offset"]) == (E.NONE, 0)
    assert next_offset(door, "c") == 2


async def test_old_produce_versions_get_the_error_alone(door: Door) -> None:
    """Before v8 the response has no record errors: the code alone tells the client."""
    await create(door, "c", "compact")
    p = await produce(door, "c", bytes(kafka_batch.build_batch([(TS, None, b"v", [])])), 7)
    assert p["error_code"] == E.INVALID_RECORD


async def test_a_delete_policy_topic_takes_keyless_records(door: Door) -> None:
    await create(door, "d", "delete")
    p = await produce(door, "d", bytes(kafka_batch.build_batch([(TS, None, b"v", [])])))
    assert p["error_code"] == E.NONE and next_offset(door, "d") == 1
