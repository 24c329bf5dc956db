"""End to end: a pyggy server subprocess archiving to a real S3 server (moto) or a directory,
produced to and consumed from through both doors (apache-iggy 0.9.0 and kafka-python)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from s3support import MotoS3, disk_env, s3_env

from pyggy.testing import PyggyServer

STREAM, TOPIC = "kafka", "tiered"  # the Kafka door's default stream: Kafka topic "tiered"
BUCKET = "pyggy-archive"
PAYLOAD = 1000
PREFIX = f"streams/{STREAM}/topics/{TOPIC}/partitions/0/"


def payload(door: str, i: int) -> bytes:
    head = f"{door}-{i:06d}-".encode()
    return head + bytes((i * 7 + k) % 251 for k in range(PAYLOAD - len(head)))


def run(coro):
    return asyncio.run(coro)


async def iggy_client(server: PyggyServer, user: str = "iggy", password: str = "iggy"):
    from apache_iggy import IggyClient

    client = IggyClient(server.tcp_address)
    await client.connect()
    await client.login_user(user, password)
    return client


def create_topic(server: PyggyServer, local_segments: int) -> None:
    async def go() -> None:
        client = await iggy_client(server)
        await client.create_stream(STREAM)
        await client.create_topic(STREAM, TOPIC, 1, options={
            "segment_size": "1 MiB", "local_retention_segments": str(local_segments)})
        await client.create_user("alice", "secret-alice")

    run(go())


def iggy_produce(server: PyggyServer, start: int, n: int) -> list[bytes]:
    from apache_iggy import Partitioning, SendMessage

    sent = [payload("iggy", i) for i in range(start, start + n)]

    async def go() -> None:
        client = await iggy_client(server)
        for k in range(0, n, 100):
            await client.send_messages(STREAM, TOPIC, Partitioning.partition_id(0),
                                       [SendMessage(p) for p in sent[k:k + 100]])

    run(go())
    return sent


def kafka_produce(server: PyggyServer, start: int, n: int) -> list[bytes]:
    from kafka import KafkaProducer

    sent = [payload("kafka", i) for i in range(start, start + n)]
    producer = KafkaProducer(bootstrap_servers=server.kafka_address, acks="all",
                             linger_ms=5, batch_size=64 * 1024)
    futures = [producer.send(TOPIC, value=v, partition=0) for v in sent]
    producer.flush(30)
    assert all(f.get(10) is not None for f in futures)
    producer.close()
    return sent


def iggy_read_all(server: PyggyServer) -> list[tuple[int, bytes]]:
    from apache_iggy import Consumer, PollingStrategy

    async def go() -> list[tuple[int, bytes]]:
        client = await iggy_client(server)
        out: list[tuple[int, bytes]] = []
        while True:
            batch = await client.poll_messages(
                STREAM, TOPIC, partition_id=0, consumer=Consumer.Single(1),
                polling_strategy=PollingStrategy.Offset(len(out)), count=500,
                auto_commit=False)
            if not batch:
                return out
            out += [(m.offset(), m.payload()) for m in batch]

    return run(go())


def kafka_read_all(server: PyggyServer, expected: int) -> list[tuple[int, bytes]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=server.kafka_address, group_id=None,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             consumer_timeout_ms=10_000)
    tp = TopicPartition(TOPIC, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 30
    while len(out) < expected and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500, max_records=2000).values():
            out += [(r.offset, r.value) for r in records]
    consumer.close()
    return out


def wait_for(what: str, check: Callable[[], object], timeout: float = 30.0,
             server: PyggyServer | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = server.format_logs(60) if server else ""
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.1)


def partition_dir(server: PyggyServer) -> Path:
    return server.data_path / "streams" / "0" / "topics" / "0" / "partitions" / "0"


def local_logs(server: PyggyServer) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(partition_dir(server).glob("*.log"))}


def produce_both(server: PyggyServer) -> list[bytes]:
    """Iggy, Kafka, Iggy again: ~3.9 MB, so at least three 1 MiB segments seal (a segment
    rotates on the first append past 1 MiB, so it holds up to 1 MiB plus one batch: ~1.15 MB
    with these batches, however the Kafka client's batching falls)."""
    sent = iggy_produce(server, 0, 1100)
    sent += kafka_produce(server, 1100, 1100)
    sent += iggy_produce(server, 2200, 1500)
    return sent


class Archive:
    """The archive as a person would browse it: the bucket, or the directory."""

    def __init__(self, kind: str, s3: MotoS3 | None, path: Path) -> None:
        self.kind, self.s3, self.path = kind, s3, path

    def objects(self, prefix: str) -> dict[str, int]:
        if self.kind == "s3":
            return self.s3.objects(BUCKET, prefix)
        root = self.path
        return {p.relative_to(root).as_posix(): p.stat().st_size
                for p in (root / prefix).rglob("*") if p.is_file()} \
            if (root / prefix).exists() else {}

    def read(self, key: str) -> bytes:
        if self.kind == "s3":
            return self.s3.read(BUCKET, key)
        return (self.path / key).read_bytes()


@pytest.mark.parametrize("kind", ["s3", "disk"])
def test_segments_archived_tiered_and_read_back_by_both_doors(
        kind: str, request: pytest.FixtureRequest, tmp_path: Path,
        pyggy_server_factory) -> None:
    s3 = None
    if kind == "s3":
        s3 = request.getfixturevalue("shared_s3")
        s3.create_bucket(BUCKET)
        env = s3_env(s3, BUCKET, tmp_path)
    else:
        env = disk_env(tmp_path / "archive")
    archive = Archive(kind, s3, tmp_path / "archive")
    server = pyggy_server_factory("node", env=env)
    server.wait_for_log("archiver: ", 10)
    create_topic(server, local_segments=0)  # everything stays local at first
    sent = produce_both(server)
    local = local_logs(server)
    sealed = sorted(local)[:-1]
    assert len(sealed) >= 3

    # every sealed segment appears in the archive, byte for byte, with its index (uploaded
    # after the log: wait for both)
    def archived() -> dict[str, int]:
        found = archive.objects(PREFIX)
        keys = [PREFIX + n for n in sealed] + [PREFIX + n[:-4] + ".index" for n in sealed]
        return found if all(k in found for k in keys) else {}

    found = wait_for("sealed segments in the archive", archived, server=server)
    for name in sealed:
        assert archive.read(PREFIX + name) == local[name]
        index = (partition_dir(server) / name).with_suffix(".index").read_bytes()
        assert archive.read(PREFIX + name.replace(".log", ".index")) == index
    assert PREFIX + sorted(local)[-1] not in found  # the active segment is not archived

    # tiering on: keep the newest 2 segments locally, drop the rest once archived
    async def tier() -> None:
        client = await iggy_client(server)
        await client.update_topic(STREAM, TOPIC, TOPIC,
                                  options={"local_retention_segments": "2"})

    run(tier())
    wait_for("local copies dropped", lambda: len(local_logs(server)) == 2, server=server)
    assert sorted(local_logs(server)) == sorted(local)[-2:]

    # both doors read every message from offset 0, the same bytes at the same offsets
    expected = list(enumerate(sent))
    assert iggy_read_all(server) == expected
    assert kafka_read_all(server, len(sent)) == expected

    # the state log is archived too; it restores a fresh server's metadata
    wait_for("state log archived", lambda: archive.objects("state/"), server=server)
    server.stop()
    fresh = tmp_path / "fresh" / "data"
    env_restore = {k: v for k, v in os.environ.items() if not k.startswith("IGGY_")} | env
    out = subprocess.run([sys.executable, "-m", "pyggy.restore", "--data-path", str(fresh)],
                         env=env_restore, capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "restored" in out.stdout and "1 topics" in out.stdout
    restored = pyggy_server_factory("fresh", data_path=fresh)

    async def check() -> None:
        await iggy_client(restored, "alice", "secret-alice")  # users come back, with passwords
        root = await iggy_client(restored)
        t = await root.get_topic(STREAM, TOPIC)
        assert t.partitions_count == 1
        # updated through the SDK as text, kept as sent (as every update is)
        assert str(t.options.to_scalar_dict()["local_retention_segments"]) == "2"
        assert t.options.to_scalar_dict()["segment_size"] == 1 << 20

    run(check())


def test_s3_outage_during_production_loses_nothing_and_catches_up(
        moto_s3: MotoS3, tmp_path: Path, pyggy_server_factory) -> None:
    moto_s3.create_bucket(BUCKET)
    server = pyggy_server_factory("node", env=s3_env(moto_s3, BUCKET, tmp_path))
    server.wait_for_log("is ready", 10)
    create_topic(server, local_segments=1)
    moto_s3.stop()  # the S3 server goes away for real
    sent = produce_both(server)
    server.wait_for_log("segments stay on local disk", 15)
    during = local_logs(server)
    assert len(during) >= 4
    # nothing was deleted locally, and everything is served (from local disk)
    assert iggy_read_all(server) == list(enumerate(sent))
    assert local_logs(server) == during
    sent += iggy_produce(server, len(sent), 200)  # still accepting

    moto_s3.start()  # back (empty, as moto keeps objects in memory)
    moto_s3.create_bucket(BUCKET)
    wait_for("local copies dropped after catch-up", lambda: len(local_logs(server)) == 1,
             timeout=40, server=server)
    server.wait_for_log("reachable again", 5)
    # every segment that left local disk is in the bucket, byte for byte
    found = moto_s3.objects(BUCKET, PREFIX)
    for name, data in during.items():
        if name not in local_logs(server):
            assert found.get(PREFIX + name) == len(data)
            assert hashlib.sha256(moto_s3.read(BUCKET, PREFIX + name)).digest() == \
                hashlib.sha256(data).digest()
    expected = list(enumerate(sent))
    assert iggy_read_all(server) == expected
    assert kafka_read_all(server, len(sent)) == expected


def test_missing_bucket_is_a_clear_error_not_a_crash(shared_s3: MotoS3, tmp_path: Path,
                                                      pyggy_server_factory) -> None:
    server = pyggy_server_factory("node", env=s3_env(shared_s3, "no-such-bucket", tmp_path))
    line = server.wait_for_log("does not exist", 10)
    assert "ERROR" in line and "no-such-bucket" in line
    create_topic(server, local_segments=1)
    sent = iggy_produce(server, 0, 1200)  # a sealed segment, which stays local
    assert iggy_read_all(server) == list(enumerate(sent))
    assert server.running and len(local_logs(server)) == 2
    shared_s3.create_bucket("no-such-bucket")  # fixed: archiving starts by itself
    wait_for("archived after the fix", lambda: len(local_logs(server)) == 1, server=server)
    assert iggy_read_all(server) == list(enumerate(sent))
