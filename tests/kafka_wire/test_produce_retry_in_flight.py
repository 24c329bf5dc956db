"""An idempotent producer's retry that arrives on another connection while its first attempt
is still being appended (found by the N5 scenario, docs/cluster.md: a kafka-python record
stored four times while a cluster's commits stalled past the producer's request timeout and it
retried on new connections). The retry must get the first attempt's offset, not a second
append."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from kafka_door import Door
from pyggy.core.engine import LogEngine
from pyggy.core.records import kafka_batch
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.context import KafkaServer
from pyggy.kafka_wire.settings import KafkaSettings

PRODUCE = 0
pytestmark = pytest.mark.asyncio


def produce_body(batch: bytes) -> dict:
    return {"acks": -1, "timeout_ms": 1000, "topic_data": [
        {"name": "orders", "partition_data": [{"index": 0, "records": batch}]}]}


async def test_a_retry_during_the_first_append_gets_its_offset(tmp_path: Path) -> None:
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    await engine.metadata.create_stream("kafka")
    await engine.metadata.create_topic("kafka", "orders", 1)
    server = KafkaServer(engine, KafkaSettings(host="127.0.0.1", port=19092, node_id=0))
    first, retry = Door(server), Door(server)
    # The slow commit is held by an event: a stall in replication cannot be provoked in one
    # process (the N5 scenario provokes it with real processes and cut links).
    release = asyncio.Event()
    append = engine.data.append_kafka
    calls = 0

    async def slow_append(*args, **kwargs):
        nonlocal calls
        calls += 1
        await release.wait()
        return await append(*args, **kwargs)

    engine.data.append_kafka = slow_append  # type: ignore[method-assign]
    batch = bytes(kafka_batch.build_batch([(1_700_000_000_000, b"k", b"once", [])],
                                          producer_id=4000, producer_epoch=0, base_sequence=0))
    try:
        a = asyncio.create_task(first.call(PRODUCE, 9, produce_body(batch)))
        await asyncio.sleep(0.05)  # the first attempt is inside its append
        b = asyncio.create_task(retry.call(PRODUCE, 9, produce_body(batch)))
        await asyncio.sleep(0.05)
        release.set()
        ra, rb = await asyncio.wait_for(asyncio.gather(a, b), 10)
        pa = ra["responses"][0]["partition_responses"][0]
        pb = rb["responses"][0]["partition_responses"][0]
        assert (pa["error_code"], pb["error_code"]) == (E.NONE, E.NONE)
        assert pa["base_offset"] == pb["base_offset"] == 0
        assert calls == 1
        assert engine.metadata.topic("kafka", "orders").partitions[0].log.next_offset == 1
    finally:
        engine.close()
