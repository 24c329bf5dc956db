"""Kafka Streams runs unchanged on pyggy: the word count of interop_tests/kafka_apps (a
repartition topic, a RocksDB store with a compacted changelog, `exactly_once_v2`, no record
cache so every count update is emitted) on the same input against each broker. The process is
SIGKILLed while it works through the second half of the input and started again; the
read_committed output must then hold, for every word, exactly the updates 1, 2, ..., n in order:
a record processed twice (or lost) after the crash would show as a repeated (or missing) count.
Both brokers give the same per-word sequences. Along the way Streams purges its repartition
topic (DeleteRecords) every second."""

from __future__ import annotations

import collections
import random
import struct
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from interop_tests import kafka_apps

LINES = 600
WORDS = [f"w{i:02d}" for i in range(40)]
PARTITIONS = 3


def _lines() -> list[str]:
    rnd = random.Random(14)
    return [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 9))) for _ in range(LINES)]


def _expected(lines: list[str]) -> dict[str, list[int]]:
    counts = collections.Counter(w for line in lines for w in line.split())
    return {w: list(range(1, n + 1)) for w, n in counts.items()}


def _create(bootstrap: str, *topics: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics]).values():
        future.result(30)


def _produce(bootstrap: str, topic: str, lines: list[str]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, line in enumerate(lines):
        producer.produce(topic, line.encode(), key=str(i).encode())
    assert producer.flush(30) == 0


def _low_watermarks(bootstrap: str, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[0]
                for p in range(PARTITIONS)]
    finally:
        consumer.close()


class OutputReader:
    """A consumer (read_committed unless told) of the whole output topic; `updates[word]`
    lists the counts seen for the word, in offset order (a word lives in one partition)."""

    def __init__(self, bootstrap: str, topic: str, isolation: str = "read_committed") -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                                  "isolation.level": isolation,
                                  "enable.auto.commit": False})
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.updates: dict[str, list[int]] = collections.defaultdict(list)
        self.records = 0

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(500, timeout=0.2):
                assert msg.error() is None, msg.error()
                self.updates[msg.key().decode()].append(struct.unpack(">q", msg.value())[0])
                self.records += 1

    def wait_until(self, done, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not seen in {timeout} s; "
                                     f"{self.records} output records")
            self.poll(0.05)

    def close(self) -> None:
        self.consumer.close()


def run_word_count(bootstrap: str, target: Path, workdir: Path) -> dict[str, list[int]]:
    suffix = uuid.uuid4().hex[:8]
    app_id, source, sink = f"wc-{suffix}", f"wc-in-{suffix}", f"wc-out-{suffix}"
    _create(bootstrap, source, sink)
    lines = _lines()
    half = len(lines) // 2
    expected = _expected(lines)
    first = sum(len(line.split()) for line in lines[:half])
    _produce(bootstrap, source, lines[:half])
    reader = OutputReader(bootstrap, sink)
    app = kafka_apps.word_count(target, bootstrap, app_id, source, sink, workdir)
    t0 = time.monotonic()

    def log(event: str) -> None:  # the timeline, for the test's output
        print(f"{bootstrap} {time.monotonic() - t0:6.1f} s: {event}")

    try:
        app.start().wait_for("STATE RUNNING", 120)
        log("running")
        reader.wait_until(lambda: reader.records >= first, 120, "the first half's counts")
        log("first half counted")
        assert reader.records == first, reader.records  # nothing doubled so far
        _produce(bootstrap, source, lines[half:])
        dirty = OutputReader(bootstrap, sink, "read_uncommitted")
        try:  # SIGKILL once it sends counts of the second half, in a transaction still open
            dirty.wait_until(lambda: dirty.records > first, 60, "second-half output")
        finally:
            dirty.close()
        reader.poll(0.1)
        in_txn = reader.records == first  # not committed yet (commits come every 2 s)
        app.kill()
        log(f"killed (in a transaction: {in_txn})")
        app.start().wait_for("STATE RUNNING", 120)
        log("running again")
        reader.wait_until(lambda: all(len(reader.updates[w]) >= len(counts)
                                      for w, counts in expected.items()), 120, "every count")
        log("every count")
        reader.poll(1.0)  # anything doubled after the last expected update shows now
        assert app.proc is not None and app.proc.poll() is None, app.tail()
        dirty = OutputReader(bootstrap, sink, "read_uncommitted")
        try:  # the output of the transaction the SIGKILL cut short is there, but aborted
            dirty.wait_until(lambda: dirty.records > reader.records, 30, "aborted records")
        except AssertionError:
            if in_txn:
                raise
        finally:
            dirty.close()
        log(f"{dirty.records - reader.records} aborted output records")
        purged = _low_watermarks(bootstrap, f"{app_id}-counts-repartition")
        log(f"repartition topic purged to {purged}")
        assert any(purged), "Streams never purged its repartition topic (DeleteRecords)"
        return dict(reader.updates)
    finally:
        reader.close()
        app.stop()


@pytest.mark.timeout(420)
def test_word_count_exactly_once_same_on_both(brokers: dict[str, str],
                                              kafka_apps_target: Path, tmp_path: Path) -> None:
    expected = _expected(_lines())
    results = {}
    for name, bootstrap in brokers.items():
        updates = run_word_count(bootstrap, kafka_apps_target, tmp_path / name)
        bad = {w: seq for w, seq in updates.items() if seq != expected.get(w)}
        assert not bad, f"{name}: count updates other than 1..n (duplicates or gaps): {bad}"
        results[name] = updates
    assert results["pyggy"] == results["kafka"]
