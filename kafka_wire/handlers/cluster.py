"""FindCoordinator (10), OffsetForLeaderEpoch (23), DescribeCluster (60): one broker."""

from __future__ import annotations

from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode


def find_coordinator(conn: Connection, req: dict, version: int) -> dict:
    s = conn.server.settings
    if version >= 4:
        return {"throttle_time_ms": 0, "coordinators": [
            {"key": key, "node_id": s.node_id, "host": s.host, "port": s.port,
             "error_code": ErrorCode.NONE, "error_message": None}
            for key in req["coordinator_keys"]]}
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None,
            "node_id": s.node_id, "host": s.host, "port": s.port}


def offset_for_leader_epoch(conn: Connection, req: dict, version: int) -> dict:
    """Every partition has had one leader epoch, 0, since offset 0."""
    topics = []
    for topic in req["topics"]:
        t = conn.server.topics.resolve(topic["topic"])
        parts = []
        for p in topic["partitions"]:
            index = p["partition"]
            entry = {"error_code": ErrorCode.NONE, "partition": index, "leader_epoch": -1,
                     "end_offset": -1}
            if t is None or not 0 <= index < len(t.partitions):
                entry["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif p["leader_epoch"] >= 0:
                entry["leader_epoch"] = 0
                entry["end_offset"] = t.partitions[index].log.next_offset
            parts.append(entry)
        topics.append({"topic": topic["topic"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}


def describe_cluster(conn: Connection, req: dict, version: int) -> dict:
    s = conn.server.settings
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None,
            "endpoint_type": 1, "cluster_id": s.cluster_id, "controller_id": s.node_id,
            "brokers": [{"broker_id": s.node_id, "host": s.host, "port": s.port,
                         "rack": None}],
            "cluster_authorized_operations": -2147483648}
