"""Kafka's internal topics: `__consumer_offsets` and `__transaction_state` appear after the
first FindCoordinator for a group / a transactional id, listed as Kafka lists them
(is_internal=true), survive a restart, and refuse client writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_door import Door
from pyggy.core.engine import LogEngine
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.context import KafkaServer

pytestmark = pytest.mark.asyncio
METADATA, PRODUCE, FIND_COORDINATOR, LIST_OFFSETS = 3, 0, 10, 2


async def listed(door: Door) -> dict[str, bool]:
    r = await door.call(METADATA, 12, {"topics": None, "allow_auto_topic_creation": False,
                                       "include_topic_authorized_operations": False})
    return {t["name"]: t["is_internal"] for t in r["topics"]}


async def test_offsets_topic_appears_after_the_first_coordinator_lookup(tmp_path: Path) -> None:
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    door = Door(KafkaServer(engine))
    assert await listed(door) == {}
    r = await door.call(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": ["g1"]})
    assert r["coordinators"][0]["error_code"] == E.NONE
    assert await listed(door) == {"__consumer_offsets": True}
    r = await door.call(FIND_COORDINATOR, 1, {"key": "tx", "key_type": 1})
    assert r["error_code"] == E.NONE
    assert await listed(door) == {"__consumer_offsets": True, "__transaction_state": True}

    r = await door.call(LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": "__consumer_offsets", "partitions": [
            {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
    part = r["topics"][0]["partitions"][0]
    assert (part["error_code"], part["offset"]) == (E.NONE, 0)
    r = await door.call(PRODUCE, 9, {"transactional_id": None, "acks": -1, "timeout_ms": 1000,
                                     "topic_data": [{"name": "__consumer_offsets",
                                                     "partition_data": [
                                                         {"index": 0, "records": b"x" * 61}]}]})
    assert r["responses"][0]["partition_responses"][0]["error_code"] == \
        E.INVALID_TOPIC_EXCEPTION
    engine.close()

    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open()
    try:
        assert await listed(Door(KafkaServer(engine))) == {"__consumer_offsets": True,
                                                           "__transaction_state": True}
    finally:
        engine.close()
