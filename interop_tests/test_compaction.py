"""Compacted topics, differentially: the same updates (keys overwritten again and again, some
deleted by tombstones) go to real Kafka and to pyggy; once both have compacted, a consumer
reading from offset 0 sees exactly the latest value of every live key on both, and so does an
Iggy consumer polling pyggy's Iggy door (docs/compaction.md).

CI size: 20 000 updates over 200 keys. The issue's full size (100 000 over 1 000):

    COMPACTION_UPDATES=100000 COMPACTION_KEYS=1000 .venv/bin/python -m pytest \
        interop_tests/test_compaction.py -q
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from apache_iggy import Consumer as IggyConsumer
from apache_iggy import IggyClient, PollingStrategy, TcpConfig
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from interop_tests.kafka_broker.broker import RealKafka
from interop_tests.scenarios import unique
from pyggy.testing import PyggyServer

UPDATES = int(os.environ.get("COMPACTION_UPDATES", "20000"))
KEYS = int(os.environ.get("COMPACTION_KEYS", "200"))
TOMBSTONE_EVERY = 13
CONFIGS = {"cleanup.policy": "compact", "segment.bytes": "1048576",
           "min.cleanable.dirty.ratio": "0.01", "min.compaction.lag.ms": "0"}
WAIT_S = 180  # Kafka's cleaner wakes every log.cleaner.backoff.ms (1 s in the template)


@pytest.fixture(scope="module")
def pyggy_compacting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyggyServer]:
    """A pyggy server whose cleaner (retention, then compaction) runs every second."""
    server = PyggyServer(tmp_path_factory.mktemp("pyggy-compaction"),
                         env={"IGGY_DATA_MAINTENANCE_MESSAGES_INTERVAL": "1 s"}).start()
    server.wait_for_log("kafka listening on")
    yield server
    errors = [line for line in server.logs if "Traceback" in line or " ERROR " in line]
    code = server.close()
    assert code in (None, 0), f"pyggy exited with {code}\n{server.format_logs()}"
    assert not errors, "pyggy logged errors:\n" + "\n".join(errors)


def updates() -> Iterator[tuple[bytes, bytes | None]]:
    for n in range(UPDATES):
        key = f"key-{(n * 7919) % KEYS:05d}".encode()
        yield key, None if n % TOMBSTONE_EVERY == 0 else f"v{n:07d}-".encode().ljust(200, b"x")


def expected() -> dict[bytes, bytes]:
    latest: dict[bytes, bytes | None] = {}
    for key, value in updates():
        latest[key] = value
    return {k: v for k, v in latest.items() if v is not None}


def produce(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config=CONFIGS)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for n, (key, value) in enumerate(updates()):
        producer.produce(topic, key=key, value=value)
        if n % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0, "the producer did not flush"


def consume(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """Every record from offset 0 to the high watermark: (offset, key, value)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("cmp"),
                         "enable.auto.commit": False})
    try:
        tp = TopicPartition(topic, 0, 0)
        _low, high = consumer.get_watermark_offsets(tp, timeout=10)
        consumer.assign([tp])
        got: list[tuple[int, bytes, bytes | None]] = []
        deadline = time.monotonic() + 60
        while (not got or got[-1][0] < high - 1) and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                if m.error():
                    raise AssertionError(f"consume error {m.error()}")
                got.append((m.offset(), m.key(), m.value()))
        assert got and got[-1][0] == high - 1, "the consumer did not reach the end"
        return got
    finally:
        consumer.close()


def live(records: list[tuple[int, bytes, bytes | None]]) -> dict[bytes, bytes]:
    """What a consumer applying the records in order ends with."""
    state: dict[bytes, bytes | None] = {}
    for _offset, key, value in records:
        state[key] = value
    return {k: v for k, v in state.items() if v is not None}


def compacted(bootstrap: str, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    """The records once compaction has removed at least half of the updates."""
    deadline = time.monotonic() + WAIT_S
    while True:
        records = consume(bootstrap, topic)
        if len(records) <= UPDATES // 2 or time.monotonic() > deadline:
            return records
        time.sleep(1)  # compaction has no event a client can await: poll the log again


async def iggy_poll(server: PyggyServer, topic: str) -> list[tuple[int, bytes, bytes | None]]:
    client = IggyClient(TcpConfig(server_address=server.tcp_address))
    await client.connect()
    await client.login_user("iggy", "iggy")
    out: list[tuple[int, bytes, bytes | None]] = []
    offset = 0
    while True:
        msgs = await client.poll_messages(
            "kafka", topic, consumer=IggyConsumer.Single(1), partition_id=0,
            polling_strategy=PollingStrategy.Offset(offset), count=1000, auto_commit=False)
        if not msgs:
            return out
        for m in msgs:
            headers = m.user_headers().to_scalar_dict() if m.user_headers() else {}
            key = _bytes(headers["kafka.key"])
            tombstone = _bytes(headers.get("kafka.value", b"")) == b"null"
            out.append((m.offset(), key, None if tombstone else bytes(m.payload())))
        offset = out[-1][0] + 1


def _bytes(v: object) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)  # type: ignore[call-overload]


def test_a_compacted_topic_reads_as_on_kafka(real_kafka: RealKafka,
                                             pyggy_compacting: PyggyServer,
                                             tmp_path: Path) -> None:
    topic = unique("compacted")
    want = expected()
    assert 0 < len(want) < KEYS  # some keys end deleted
    results = {}
    for name, bootstrap in (("kafka", real_kafka.bootstrap),
                            ("pyggy", pyggy_compacting.kafka_address)):
        produce(bootstrap, topic)
        records = compacted(bootstrap, topic)
        assert len(records) <= UPDATES // 2, f"{name} did not compact ({len(records)} records)"
        assert [o for o, _, _ in records] == sorted({o for o, _, _ in records})
        results[name] = live(records)
    assert results["kafka"] == want
    assert results["pyggy"] == want
    via_iggy = asyncio.run(iggy_poll(pyggy_compacting, topic))
    assert len(via_iggy) <= UPDATES // 2
    assert live(via_iggy) == want
    assert via_iggy == compacted(pyggy_compacting.kafka_address, topic)  # the same view


def _report(into: list, error: object, _message: object) -> None:
    into.append(error)


def test_a_keyless_record_is_refused_as_on_kafka(real_kafka: RealKafka,
                                                  pyggy_compacting: PyggyServer) -> None:
    """Both brokers refuse a record without a key on a compacted topic (INVALID_RECORD, not
    retried by the client) and store the keyed one sent after it."""
    from confluent_kafka import KafkaError

    topic = unique("keyless")
    for name, bootstrap in (("kafka", real_kafka.bootstrap),
                            ("pyggy", pyggy_compacting.kafka_address)):
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1, config=CONFIGS)])[topic].result(30)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        reports: list[KafkaError | None] = []
        producer.produce(topic, value=b"no key", on_delivery=partial(_report, reports))
        assert producer.flush(30) == 0
        producer.produce(topic, key=b"k", value=b"v", on_delivery=partial(_report, reports))
        assert producer.flush(30) == 0
        assert reports[0] is not None and reports[0].code() == KafkaError.INVALID_RECORD, \
            f"{name}: {reports[0]}"
        assert reports[1] is None, f"{name}: {reports[1]}"
        assert [(k, v) for _, k, v in consume(bootstrap, topic)] == [(b"k", b"v")], name
