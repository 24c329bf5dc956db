"""Kafka Connect runs unchanged on pyggy: a distributed-mode worker (connect-runtime 4.1.1, which
creates its compacted config/offset/status topics and checks their cleanup policy; exactly-once
source support on, so the source task writes in transactions after fencing its predecessors)
copies a file into a topic with FileStreamSource and back out to a file with FileStreamSink, on
each broker.
The worker is then stopped, lines are appended to the source file and a new worker starts on the
same topics: the connectors come back from the config topic, the source resumes from its offset
in the offset topic and the sink from its group's committed offsets, so the topic and the copy
each hold every line exactly once. Then the worker is SIGKILLed while copying more lines and
started again: the topic still holds every line exactly once (transactional source)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from interop_tests import kafka_apps

FIRST, MORE, KILLED = 200, 100, 3000


def _lines(start: int, count: int) -> str:
    return "".join(f"line {i:05d} of the source file\n" for i in range(start, start + count))


def _wait_lines(path: Path, count: int, worker: kafka_apps.ConnectWorker,
                timeout: float = 120.0) -> list[str]:
    """Until the sink file has `count` distinct lines (polling a file the worker appends to)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(set(lines)) >= count:
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} has {len(set(lines))} of {count} lines after "
                                 f"{timeout} s:\n{worker.tail()}")
        time.sleep(0.3)


def _end_offset(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[1]
    finally:
        consumer.close()


def _records(bootstrap: str, topic: str) -> int:
    """The records of the topic, read (read_committed) from offset 0 to the end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                         "enable.partition.eof": True, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    count, deadline = 0, time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=1.0):
                if msg.error() is not None:
                    assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                    return count
                count += 1
        raise AssertionError(f"no end of {topic} in 60 s ({count} records)")
    finally:
        consumer.close()


def _topic_config(bootstrap: str, topic: str, name: str) -> str:
    from confluent_kafka.admin import ConfigResource

    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([res])[res].result(30)[name].value


def copy_and_resume(bootstrap: str, target: Path, workdir: Path) -> dict[str, object]:
    name = f"connect-{uuid.uuid4().hex[:8]}"
    topic = f"{name}-lines"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)  # one partition: in order
    source, sink = workdir / "source.txt", workdir / "sink.txt"
    workdir.mkdir(parents=True, exist_ok=True)
    source.write_text(_lines(0, FIRST))
    worker = kafka_apps.ConnectWorker(target, bootstrap, name, workdir)
    t0 = time.monotonic()

    def log(event: str) -> None:  # the timeline, for the test's output
        print(f"{bootstrap} {time.monotonic() - t0:6.1f} s: {event}")

    try:
        worker.start().wait_ready()
        log("worker ready")
        worker.put_connector("file-source", {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1", "file": str(source), "topic": topic, "batch.size": "100",
            # a transaction the SIGKILL leaves open (its offset record too) blocks the next
            # worker's read_committed read of the offsets topic until it times out (60 s)
            "producer.override.transaction.timeout.ms": "5000"})
        worker.put_connector("file-sink", {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1", "file": str(sink), "topics": topic})
        _wait_lines(sink, FIRST, worker)
        log("copied")
        assert worker.stop() in (0, 143), worker.tail()  # a clean stop: offsets flushed
        log("stopped")
        with source.open("a") as f:
            f.write(_lines(FIRST, MORE))
        worker.start().wait_ready()  # the connectors come back from the config topic
        log("ready again")
        copied = _wait_lines(sink, FIRST + MORE, worker)
        log("copied the appended lines")
        copy_is_source = copied == source.read_text().splitlines()
        connectors = sorted(worker.request("GET", "/connectors"))  # type: ignore[arg-type]
        # SIGKILL while copying (100 lines a batch): the source task wrote each batch and its
        # offset in one transaction, so the restarted task neither skips nor repeats a line in
        # the topic (the sink is at-least-once: its copy may repeat lines, as on Kafka)
        with source.open("a") as f:
            f.write(_lines(FIRST + MORE, KILLED))
        _wait_lines(sink, FIRST + MORE + 100, worker)
        worker.kill()
        log("killed while copying")
        worker.start().wait_ready()
        log("ready again")
        after_kill = _wait_lines(sink, FIRST + MORE + KILLED, worker)
        log("copied every line")
    finally:
        worker.stop()
    records = _records(bootstrap, topic)
    return {
        "connectors": connectors,
        "copy_is_source": copy_is_source,
        "copied_lines": len(copied),
        "after_kill_every_line_copied": set(after_kill) == set(source.read_text().splitlines()),
        "topic_records": records,
        # transaction markers take offsets too: the source task wrote in transactions
        "transactional": _end_offset(bootstrap, topic) > records,
        "offsets_topic_policy": _topic_config(bootstrap, f"{name}-offsets", "cleanup.policy"),
    }


@pytest.mark.timeout(420)
def test_connect_file_copy_resumes_same_on_both(brokers: dict[str, str],
                                                kafka_apps_target: Path, tmp_path: Path) -> None:
    results = {name: copy_and_resume(bootstrap, kafka_apps_target, tmp_path / name)
               for name, bootstrap in brokers.items()}
    assert results["kafka"] == {
        "connectors": ["file-sink", "file-source"],
        "copy_is_source": True,
        "copied_lines": FIRST + MORE,
        "after_kill_every_line_copied": True,
        # the restarted source did not copy the file again, nor after SIGKILL
        "topic_records": FIRST + MORE + KILLED,
        "transactional": True,
        "offsets_topic_policy": "compact",
    }
    assert results["pyggy"] == results["kafka"]
