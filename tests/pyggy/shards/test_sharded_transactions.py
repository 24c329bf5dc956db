"""Kafka transactions on a server of 2 shard processes, with librdkafka (confluent-kafka)'s
transactional producer and read_committed / read_uncommitted consumers.

A transaction spans partitions of both shards: its coordinator (shard 0 with a broker per
shard; the shard that took the connection with one broker) records it as metadata, which
every shard applies; each partition's owner checks the transactional batches against it and
stores the COMMIT/ABORT marker the coordinator writes there."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pyggy.testing import PyggyServer

SHARDS = {"IGGY_SYSTEM_SHARDING_SHARDS": "2", "IGGY_HTTP_ENABLED": "false"}
ONE_BROKER = {**SHARDS, "IGGY_SYSTEM_SHARDING_KAFKA_BROKER_PER_SHARD": "false"}
PARTITIONS = 4


def _read(bootstrap: str, isolation: str, want: int) -> list[tuple[int, bytes]]:
    """(partition, value) of every record a fresh consumer reads, control records skipped."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{isolation}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": isolation})
    try:
        c.assign([TopicPartition("ledger", p, 0) for p in range(PARTITIONS)])
        got: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 20
        while len(got) < want and time.monotonic() < deadline:
            for m in c.consume(100, 0.5):
                assert m.error() is None, m.error()
                got.append((m.partition(), m.value()))
        # nothing more arrives (an aborted record would show up here)
        got += [(m.partition(), m.value()) for m in c.consume(100, 2.0) if m.error() is None]
        return sorted(got)
    finally:
        c.close()


@pytest.mark.parametrize("env", [SHARDS, ONE_BROKER], ids=["broker-per-shard", "one-broker"])
def test_a_transaction_across_both_shards_commits_and_aborts_on_every_partition(
        pyggy_server_factory: Callable[..., PyggyServer], env: dict[str, str]) -> None:
    server = pyggy_server_factory(env=env)
    server.wait_for_log("shards: 2 processes serving")
    admin = AdminClient({"bootstrap.servers": server.kafka_address})
    admin.create_topics([NewTopic("ledger", PARTITIONS, 1)])["ledger"].result(15)

    producer = Producer({"bootstrap.servers": server.kafka_address, "linger.ms": 0,
                         "transactional.id": "ledger-writer"})
    producer.init_transactions(15)
    for round_, commit in enumerate((True, False, True)):
        producer.begin_transaction()
        for p in range(PARTITIONS):  # two partitions on each shard
            for i in range(2):
                producer.produce("ledger", value=f"r{round_}-p{p}-{i}".encode(), partition=p)
        assert producer.flush(15) == 0
        if commit:
            producer.commit_transaction(15)
        else:
            producer.abort_transaction(15)

    committed = sorted((p, f"r{r}-p{p}-{i}".encode())
                       for r in (0, 2) for p in range(PARTITIONS) for i in range(2))
    everything = sorted((p, f"r{r}-p{p}-{i}".encode())
                        for r in range(3) for p in range(PARTITIONS) for i in range(2))
    assert _read(server.kafka_address, "read_committed", len(committed)) == committed
    assert _read(server.kafka_address, "read_uncommitted", len(everything)) == everything

    # an open transaction holds back read_committed readers on both shards' partitions
    producer.begin_transaction()
    for p in range(PARTITIONS):
        producer.produce("ledger", value=f"open-p{p}".encode(), partition=p)
    assert producer.flush(15) == 0
    assert _read(server.kafka_address, "read_committed", len(committed)) == committed
    producer.commit_transaction(15)
    assert _read(server.kafka_address, "read_committed", len(committed) + PARTITIONS) == sorted(
        committed + [(p, f"open-p{p}".encode()) for p in range(PARTITIONS)])
