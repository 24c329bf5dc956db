"""Metadata (3): the one broker, and the topics asked for (auto-created when allowed)."""

from __future__ import annotations

from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.topics import KafkaError, topic_id

NO_OPERATIONS = -2147483648


def partitions(t, node_id: int) -> list[dict]:
    return [{"error_code": 0, "partition_index": p.id, "leader_id": node_id, "leader_epoch": 0,
             "replica_nodes": [node_id], "isr_nodes": [node_id], "offline_replicas": []}
            for p in t.partitions]


def topic_entry(name: str, t, node_id: int) -> dict:
    return {"error_code": ErrorCode.NONE, "name": name, "topic_id": topic_id(t),
            "is_internal": False, "partitions": partitions(t, node_id),
            "topic_authorized_operations": NO_OPERATIONS}


def handle(conn: Connection, req: dict, version: int) -> dict:
    server = conn.server
    s = server.settings
    requested = req.get("topics")
    topics = []
    if requested is None or (version == 0 and not requested):
        topics = [topic_entry(name, t, s.node_id) for name, t in server.topics.all()]
    else:
        allow = req.get("allow_auto_topic_creation", True) if version >= 4 else True
        for item in requested:
            name = item.get("name")
            if name is None:
                # by id only (v10+); the response name is nullable from v12 on
                topics.append({"error_code": ErrorCode.UNKNOWN_TOPIC_ID,
                               "name": None if version >= 12 else "",
                               "topic_id": item.get("topic_id", bytes(16)), "partitions": []})
                continue
            t = server.topics.resolve(name)
            if t is None and allow and s.auto_create_topics:
                try:
                    t = server.topics.create(name, s.num_partitions, {})
                except KafkaError as e:
                    topics.append({"error_code": e.code, "name": name, "partitions": []})
                    continue
            if t is None:
                topics.append({"error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "name": name,
                               "topic_id": bytes(16), "partitions": []})
            else:
                topics.append(topic_entry(name, t, s.node_id))
    return {
        "throttle_time_ms": 0,
        "brokers": [{"node_id": s.node_id, "host": s.host, "port": s.port, "rack": None}],
        "cluster_id": s.cluster_id,
        "controller_id": s.node_id,
        "topics": topics,
        "cluster_authorized_operations": NO_OPERATIONS,
    }
