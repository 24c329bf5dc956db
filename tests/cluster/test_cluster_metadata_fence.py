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

METADATA, CREATE, DELETE, DESCRIBE_CONFIGS, CREATE_PARTITIONS, ALTER = 3, 19, 20, 32, 37, 44


def call(address: str, key: int, version: int, body: dict) -> dict:
    """One request to one broker, on a socket of its own (librdkafka would pick the broker)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request_frame(key, version, 1, "fence-test", body))
        size = struct.unpack(">i", read_exactly(sock, 4))[0]
        frame = read_exactly(sock, size)
    _, pos = parse_response_header(frame, key, version)
    return decode_response(key, version, frame[pos:])


def metadata(address: str, *names: str) -> tuple[dict[str, int], float]:
    """({topic: its error code}, seconds the answer took) from one broker."""
    started = time.monotonic()
    body = call(address, METADATA, 4, {"topics": [{"name": n} for n in names],
                                       "allow_auto_topic_creation": False})
    took = time.monotonic() - started
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
        r = call(node.kafka_address, METADATA, 4, {"topics": [{"name": "early"}],
                                                 "allow_auto_topic_creation": False})
        (t,) = r["topics"]  # known; its partition's group has no leader here: -1 once the
        (part,) = t["partitions"]  # leader fence ran out (READ_FENCE)
        assert (t["error_code"], part["error_code"], part["leader_id"]) == (
            E.NONE, E.LEADER_NOT_AVAILABLE, -1)
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


def test_admin_requests_at_a_backup_are_forwarded_to_the_metadata_primary(
        tmp_path: Path) -> None:
    """CreateTopics, CreatePartitions, IncrementalAlterConfigs and DeleteTopics sent to a backup
    (a client whose metadata names an old controller) succeed there instead of NOT_CONTROLLER:
    the backup forwards them over the replica bus and answers once they are applied here."""
    c = PyggyCluster(tmp_path / "c").start()
    try:
        boss = controller(c)
        backup = c.servers[next(i for i in range(3) if i != boss)].kafka_address
        primary = c.servers[boss].kafka_address
        r = call(backup, CREATE, 7, {"topics": [
            {"name": "fwd", "num_partitions": 1, "replication_factor": -1, "assignments": [],
             "configs": []}], "timeout_ms": 30000, "validate_only": False})
        assert r["topics"][0]["error_code"] == E.NONE, r
        assert metadata(backup, "fwd")[0] == {"fwd": E.NONE}  # applied here when answered
        r = call(backup, CREATE_PARTITIONS, 1, {"topics": [
            {"name": "fwd", "count": 3, "assignments": None}], "timeout_ms": 30000,
            "validate_only": False})
        assert r["results"][0]["error_code"] == E.NONE, r
        r = call(backup, ALTER, 0, {"resources": [
            {"resource_type": 2, "resource_name": "fwd", "configs": [
                {"name": "retention.ms", "config_operation": 0, "value": "60000"}]}],
            "validate_only": False})
        assert r["responses"][0]["error_code"] == E.NONE, r
        r = call(primary, DESCRIBE_CONFIGS, 1, {"resources": [
            {"resource_type": 2, "resource_name": "fwd", "configuration_keys": ["retention.ms"]}],
            "include_synonyms": False})
        assert [(x["name"], x["value"]) for x in r["results"][0]["configs"]] == [
            ("retention.ms", "60000")]
        r = call(primary, METADATA, 4, {"topics": [{"name": "fwd"}],
                                        "allow_auto_topic_creation": False})
        assert len(r["topics"][0]["partitions"]) == 3
        r = call(backup, DELETE, 4, {"topic_names": ["fwd"], "timeout_ms": 30000})
        assert r["responses"][0]["error_code"] == E.NONE, r
        assert metadata(backup, "fwd")[0] == {"fwd": E.UNKNOWN_TOPIC_OR_PARTITION}
        deadline = time.monotonic() + 10  # the primary applied it first
        while metadata(primary, "fwd")[0] != {"fwd": E.UNKNOWN_TOPIC_OR_PARTITION}:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        c.close()
