"""FindCoordinator (10), OffsetForLeaderEpoch (23), DescribeCluster (60): this broker, or a
cluster's metadata primary and partition leaders (kafka_wire/routing.py);
DescribeClientQuotas (48): pyggy has no client quotas, so there are none to describe."""

from __future__ import annotations

from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire import routing
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.topics import OFFSETS_TOPIC, TRANSACTION_TOPIC, KafkaError

GROUP_KEY = 0  # key_type: 0 a consumer group, 1 a transactional id


def _coordinator(conn: Connection, key: str, key_type: int) -> dict:
    error = authz.group(conn, key) if key_type == GROUP_KEY else ErrorCode.NONE
    if error:
        return {"key": key, "node_id": -1, "host": "", "port": -1, "error_code": error,
                "error_message": f"Not authorized to access group: {key}"}
    node_id, host, port = routing.controller(conn)  # groups live on the metadata primary
    return {"key": key, "node_id": node_id, "host": host, "port": port,
            "error_code": ErrorCode.NONE, "error_message": None}


async def find_coordinator(conn: Connection, req: dict, version: int) -> dict:
    """This broker (a cluster's metadata primary), for the groups the principal may
    describe. The first lookup of a group (transactional id) creates `__consumer_offsets`
    (`__transaction_state`), as Kafka does; if that fails the answer is
    COORDINATOR_NOT_AVAILABLE (retriable)."""
    key_type = req["key_type"] if version >= 1 else GROUP_KEY
    keys = req["coordinator_keys"] if version >= 4 else [req["key"]]
    out = [_coordinator(conn, key, key_type) for key in keys]
    cluster = conn.server.engine.cluster
    # in a cluster only the metadata primary can create the topic; a broker that is not it
    # names the primary, which creates it when the client asks there
    creates = cluster is None or cluster.metadata_leader() == cluster.replica_id
    if creates and any(o["error_code"] == ErrorCode.NONE for o in out):
        try:
            await conn.server.topics.ensure_internal(
                OFFSETS_TOPIC if key_type == GROUP_KEY else TRANSACTION_TOPIC)
        except KafkaError as e:
            for o in out:
                if o["error_code"] == ErrorCode.NONE:
                    o.update(node_id=-1, host="", port=-1, error_message=e.message,
                             error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE)
    if version >= 4:
        return {"throttle_time_ms": 0, "coordinators": out}
    del out[0]["key"]
    return {"throttle_time_ms": 0, **out[0]}


async def offset_for_leader_epoch(conn: Connection, req: dict, version: int) -> dict:
    """Every partition has had one leader epoch, 0, since offset 0."""
    topics = []
    for topic in req["topics"]:
        t = conn.server.topics.resolve(topic["topic"])
        denied = authz.topic_by_name(conn, topic["topic"], t)
        parts = []
        for p in topic["partitions"]:
            index = p["partition"]
            entry = {"error_code": ErrorCode.NONE, "partition": index, "leader_epoch": -1,
                     "end_offset": -1}
            if denied:
                entry["error_code"] = denied
            elif t is None or not 0 <= index < len(t.partitions):
                entry["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif error := routing.leader_error(conn, t, index,
                                               p.get("current_leader_epoch", -1)):
                entry["error_code"] = error
            elif routing.unsettled(conn, t, index):
                # its log end is not yet the end of the epochs it took over: a consumer that
                # read further on the old leader would take it for a truncation and go back
                entry["error_code"] = ErrorCode.NOT_LEADER_OR_FOLLOWER
            elif 0 <= p["leader_epoch"] <= (epoch := routing.leader_epoch(conn, t, index)):
                # committed data is never truncated, so every epoch ends at the log's end
                entry["leader_epoch"] = epoch
                shards = conn.server.shards
                entry["end_offset"] = (await shards.end_offset(t, index)
                                       if shards is not None and shards.remote(t, index)
                                       else conn.server.engine.data.watermarks(t, index)[1])
            parts.append(entry)
        topics.append({"topic": topic["topic"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}


def describe_cluster(conn: Connection, req: dict, version: int) -> dict:
    s = conn.server.settings
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None,
            "endpoint_type": 1, "cluster_id": s.cluster_id,
            "controller_id": routing.controller(conn)[0],
            "brokers": [{"broker_id": node_id, "host": host, "port": port, "rack": None}
                        for node_id, host, port in routing.brokers(conn)],
            "cluster_authorized_operations": authz.cluster_operations(conn)
            if req["include_cluster_authorized_operations"] else authz.NOT_REQUESTED}


def describe_client_quotas(conn: Connection, req: dict, version: int) -> dict:
    """No quotas exist (kafka-configs --describe asks for them beside SCRAM credentials)."""
    if denied := authz.cluster(conn):
        return {"throttle_time_ms": 0, "error_code": denied,
                "error_message": "Cluster authorization failed.", "entries": None}
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None,
            "entries": []}
