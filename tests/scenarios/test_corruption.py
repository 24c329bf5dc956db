"""A bit rots in a stored segment: pyggy never serves it. Without a copy, both doors refuse that
batch (Iggy: its storage error; Kafka: KAFKA_STORAGE_ERROR) and serve everything before and
after it, with one log line naming the file and offset; with the segment archived, the local
copy is repaired from the archive and both doors read everything, byte for byte."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
from apache_iggy import Consumer, IggyClient, PollingStrategy, SendMessage
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition

from pyggy.testing import PyggyServer

STREAM, TOPIC = "kafka", "rot"  # the Kafka door's default stream: Kafka topic "rot"
BATCH = 100
MESSAGE = 1024


def payload(i: int) -> bytes:
    return f"m{i:06d}-".encode().ljust(MESSAGE, b"x")


async def client_for(server: PyggyServer) -> IggyClient:
    client = IggyClient(server.tcp_address)
    await client.connect()
    await client.login_user("iggy", "iggy")
    return client


def produce(server: PyggyServer) -> None:
    async def go() -> None:
        client = await client_for(server)
        await client.create_stream(STREAM)
        await client.create_topic(STREAM, TOPIC, 1, options={"segment_size": "1 MiB"})
        for k in range(30):  # 30 batches of 100 × 1 KiB → three sealed segments
            await client.send_messages(STREAM, TOPIC, 0, [
                SendMessage(payload(k * BATCH + i)) for i in range(BATCH)])

    asyncio.run(go())


def rot(server: PyggyServer) -> tuple[Path, int, bytes]:
    """Flip one payload byte of the 3rd batch of the first segment (a stopped server)."""
    pdir = server.data_path / "streams/0/topics/0/partitions/0"
    first = sorted(pdir.glob("*.log"))[0]
    good = first.read_bytes()
    data = bytearray(good)
    batch_len = 256 + BATCH * (48 + MESSAGE)
    data[2 * batch_len + 256 + 48 + 500] ^= 0x10
    first.write_bytes(bytes(data))
    return first, 2 * BATCH, good


async def iggy_read(server: PyggyServer, offset: int, count: int = BATCH) -> list[bytes]:
    """Payloads from `offset` on, polled as a consumer does until `count` or an empty poll (a
    poll may return fewer messages than asked, e.g. up to a damaged batch)."""
    client = await client_for(server)
    out: list[bytes] = []
    while len(out) < count:
        got = await client.poll_messages(
            STREAM, TOPIC, partition_id=0, consumer=Consumer.Single(1),
            polling_strategy=PollingStrategy.Offset(offset + len(out)),
            count=count - len(out), auto_commit=False)
        if not got:
            break
        out += [m.payload() for m in got]
    return out


def kafka_read(server: PyggyServer, offset: int, want: int, seconds: float = 8) -> list[bytes]:
    """Records from `offset` with a real librdkafka consumer (CRCs checked), until `want`
    arrived or `seconds` passed."""
    consumer = KafkaConsumer({"bootstrap.servers": server.kafka_address, "group.id": "rot",
                              "enable.auto.commit": False, "check.crcs": True})
    consumer.assign([TopicPartition(TOPIC, 0, offset)])
    out: list[bytes] = []
    deadline = time.monotonic() + seconds
    while len(out) < want and time.monotonic() < deadline:
        out += [m.value() for m in consumer.consume(500, timeout=0.5) if m.error() is None]
    consumer.close()
    return out[:want]


def test_rotten_batch_without_a_copy_is_refused_by_both_doors(pyggy_server: PyggyServer):
    produce(pyggy_server)
    pyggy_server.stop(signal.SIGTERM)
    path, bad, _ = rot(pyggy_server)
    pyggy_server.start()
    with pytest.raises(RuntimeError):  # the poll that reaches the damaged batch
        asyncio.run(iggy_read(pyggy_server, 0, 1000))
    first = asyncio.run(iggy_read(pyggy_server, 0, bad))
    assert first == [payload(i) for i in range(bad)]
    with pytest.raises(RuntimeError):
        asyncio.run(iggy_read(pyggy_server, bad))
    after = asyncio.run(iggy_read(pyggy_server, bad + BATCH))
    assert after == [payload(i) for i in range(bad + BATCH, bad + 2 * BATCH)]
    # librdkafka gets every record before the damage and none of the damaged batch
    assert kafka_read(pyggy_server, 0, bad + 1, seconds=6) == [payload(i) for i in range(bad)]
    assert kafka_read(pyggy_server, bad + BATCH, BATCH) == after
    logs = pyggy_server.format_logs()
    assert f"stored batch at offset {bad}" in logs and str(path) in logs
    assert logs.count(f"stored batch at offset {bad}") == 1  # once, not once per read
    assert "Traceback" not in logs


def test_rotten_batch_is_repaired_from_the_archive(pyggy_server_factory, tmp_path: Path):
    server = pyggy_server_factory(env={
        "IGGY_DATA_MAINTENANCE_ARCHIVER_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_KIND": "disk",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_DISK_PATH": str(tmp_path / "archive"),
        "IGGY_DATA_MAINTENANCE_MESSAGES_ARCHIVER_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_MESSAGES_INTERVAL": "1 s"})
    produce(server)
    server.wait_for_log("archiver: archived segment streams/kafka/topics/rot/partitions/0/"
                        "00000000000000000000.log", 20)
    server.stop(signal.SIGTERM)
    path, bad, good = rot(server)
    server.start()
    everything = [payload(i) for i in range(30 * BATCH)]
    assert asyncio.run(iggy_read(server, 0, 1000)) == everything[:1000]
    assert path.read_bytes()[:len(good)] == good
    # the Kafka door repairs the same way: the byte rots again while the server runs
    data = bytearray(path.read_bytes())
    data[2 * (256 + BATCH * (48 + MESSAGE)) + 256 + 48 + 500] ^= 0x10
    path.write_bytes(bytes(data))
    assert kafka_read(server, 0, 1000) == everything[:1000]
    assert path.read_bytes()[:len(good)] == good
    assert server.format_logs().count("from the archive") == 2
