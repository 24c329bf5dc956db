"""Three pyggy processes: a node that knows it is behind on metadata (restarted while its peers
are down, so it stays recovering) answers metadata reads as not ready instead of from its
older state, and real clients that met it go on once it has caught up (docs/cluster.md, "A
node behind on metadata").

The case CI met (P4, 2026-12-07): librdkafka keeps a topic-level UNKNOWN_TOPIC_OR_PARTITION in
its metadata cache as a permanent error and answers "Unknown partition" from the cache until
its next periodic refresh (5 minutes by default). With the read fence the lagging node answers
LEADER_NOT_AVAILABLE, which librdkafka asks again about, so the same client reads the topic
once the node is current."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path

from apache_iggy import IggyClient
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pyggy.core.engine.cluster import READ_FENCE
from pyggy.kafka_wire.protocol import decode_response, parse_response_header, request_frame
from pyggy.kafka_wire.protocol.errors import ErrorCode as E
from test_cluster_consumer_state import controller
from test_cluster_metadata_transfer import read_exactly, wait_applied

from pyggy.testing import PyggyCluster


def metadata(address: str, *names: str) -> tuple[dict[str, int], float]:
    """({topic: its error code}, seconds the answer took) from one broker, on a socket of its
    own (librdkafka would ask any broker it knows)."""
    host, port = address.rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request_frame(3, 4, 1, "fence-test", {
            "topics": [{"name": n} for n in names], "allow_auto_topic_creation": False}))
        size = struct.unpack(">i", read_exactly(sock, 4))[0]
        frame = read_exactly(sock, size)
    took = time.monotonic() - started
    _, pos = parse_response_header(frame, 3, 4)
    body = decode_response(3, 4, frame[pos:])
    return {t["name"]: t["error_code"] for t in body["topics"]}, took


async def iggy_lookups(address: str, stream: str, topic: str
                       ) -> tuple[object | None, object | None, float, float]:
    """GET_STREAM and GET_TOPIC with the SDK: (stream, topic, seconds each took)."""
    client = IggyClient(address)
    await client.connect()
    await client.login_user("iggy", "iggy")
    started = time.monotonic()
    s = await client.get_stream(stream)
    middle = time.monotonic()
    t = await client.get_topic(stream, topic)
    return s, t, middle - started, time.monotonic() - middle


def high_watermark(consumer: Consumer, topic: str, timeout: float) -> int:
    """As a Kafka client retries while a cluster settles; a permanent error (librdkafka's
    cached "Unknown partition") fails at once."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int(consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5)[1])
        except KafkaException as e:
            code = e.args[0].code()
            assert code != KafkaError._UNKNOWN_PARTITION, f"permanent error cached: {e}"
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_node_that_knows_it_is_behind_answers_not_ready_then_catches_up(
        tmp_path: Path) -> None:
    c = PyggyCluster(tmp_path / "c").start()
    try:
        boss = controller(c)
        lagging = next(i for i in range(3) if i != boss)
        other = 3 - boss - lagging
        admin = AdminClient({"bootstrap.servers": c.servers[boss].kafka_address})
        admin.create_topics([NewTopic("early", 1, -1)])["early"].result(60)
        wait_applied(c.servers[lagging], b'"early"')
        c.servers[lagging].kill()

        async def create_stream() -> None:
            client = IggyClient(c.servers[boss].tcp_address)
            await client.connect()
            await client.login_user("iggy", "iggy")
            await client.create_stream("later-stream")
            await client.create_topic("later-stream", "t", partitions_count=1)

        admin.create_topics([NewTopic("later", 1, -1)])["later"].result(60)
        asyncio.run(create_stream())
        wait_applied(c.servers[other], b'"later-stream"')
        c.servers[boss].kill()
        c.servers[other].kill()

        # alone, the restarted node recovers and hears no peer: it knows it is behind
        node = c.servers[lagging].start(60)
        node.wait_for_log("kafka listening on", 30)
        errors, took = metadata(node.kafka_address, "early", "later")
        assert errors == {"early": E.NONE, "later": E.LEADER_NOT_AVAILABLE}
        assert took >= READ_FENCE * 0.9  # it waited for the fence, in vain
        errors, took = metadata(node.kafka_address, "early")
        assert errors == {"early": E.NONE} and took < READ_FENCE  # known: no wait
        stream, topic, took, took2 = asyncio.run(iggy_lookups(node.tcp_address,
                                                              "later-stream", "t"))
        assert stream is None and topic is None
        assert took >= READ_FENCE * 0.9 and took2 >= READ_FENCE * 0.9

        # a librdkafka client that meets the lagging node first
        consumer = Consumer({"bootstrap.servers": node.kafka_address, "group.id": "fence",
                             "enable.auto.commit": False})
        try:
            try:
                consumer.get_watermark_offsets(TopicPartition("later", 0), timeout=3)
            except KafkaException as e:  # retriable, not cached as the topic's fate
                assert e.args[0].code() in (KafkaError.LEADER_NOT_AVAILABLE,
                                            KafkaError._TIMED_OUT), e
            c.servers[boss].start(60)
            c.servers[other].start(60)
            node.wait_for_log("cluster: metadata current at op", 60)
            assert high_watermark(consumer, "later", 60) == 0
        finally:
            consumer.close()
        errors, _ = metadata(node.kafka_address, "later", "never")
        assert errors == {"later": E.NONE, "never": E.UNKNOWN_TOPIC_OR_PARTITION}
        stream, topic, _, _ = asyncio.run(iggy_lookups(node.tcp_address, "later-stream", "t"))
        assert stream is not None and topic is not None
    finally:
        c.close()
