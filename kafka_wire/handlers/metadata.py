"""Metadata (3): the brokers (one, or a cluster's roster: kafka_wire/routing.py), and the topics
asked for (auto-created when allowed).

Only topics the principal may describe are listed; one it names without that right is
TOPIC_AUTHORIZATION_FAILED whether it exists or not, and auto-creation also needs the right
to create it where it would go (kafka_wire/authorizer.py). The authorized-operations bitsets
are filled in when asked for (v8+).

In a cluster a node may know it is behind on metadata (restarted and recovering, in a view
change, repairing or fetching the metadata group's state: `ClusterView.metadata_current`).
Before answering for a topic it does not know (or listing all topics) it waits for the
commit it has heard of, at most `READ_FENCE` s; still behind, it answers a named topic it
does not know LEADER_NOT_AVAILABLE (retriable: librdkafka caches UNKNOWN_TOPIC_OR_PARTITION as
a permanent error of the topic, "Unknown partition" to the caller, until its next periodic
refresh) instead of UNKNOWN_TOPIC_OR_PARTITION (docs/cluster.md, "A node behind on metadata").
Likewise, before listing a partition whose group has no leader here (a node restarted or a
group just created and still recovering, a view change) it waits, at most `READ_FENCE` s, for
one: librdkafka 2.x takes a partition with leader -1 in its cache as a permanent error in its
leader queries (`get_watermark_offsets`, `offsets_for_times`: "Unknown partition").
"""

from __future__ import annotations

from pyggy.core.engine.cluster import ClusterView
from pyggy.core.model import Topic
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire import routing
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.topics import INTERNAL_TOPICS, KafkaError, TopicMap, topic_id

NO_OPERATIONS = authz.NOT_REQUESTED


def topic_entry(conn: Connection, name: str, t: Topic, operations: int = NO_OPERATIONS) -> dict:
    return {"error_code": ErrorCode.NONE, "name": name, "topic_id": topic_id(t),
            "is_internal": name in INTERNAL_TOPICS, "partitions": routing.partitions(conn, t),
            "topic_authorized_operations": operations}


def _error(code: int, name: str) -> dict:
    return {"error_code": code, "name": name, "topic_id": bytes(16), "partitions": []}


async def _named(conn: Connection, name: str, allow_create: bool) -> tuple[Topic | None, int]:
    """(topic, NONE) or (None, its error) for a topic named in the request."""
    server = conn.server
    s = server.settings
    t = server.topics.resolve(name)
    if t is not None:
        return (None, denied) if (denied := authz.topic(conn, t, name)) else (t, ErrorCode.NONE)
    denied = authz.missing_topic(conn, name)
    if denied or not (allow_create and s.auto_create_topics):
        return None, denied or ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    denied = authz.missing_topic(conn, name, authz.CREATE)
    if denied:
        return None, denied
    try:
        return await server.topics.create(name, s.num_partitions, {}), ErrorCode.NONE
    except KafkaError as e:
        # a cluster's backup cannot create it: retriable, as while Kafka creates a topic
        return None, ErrorCode.LEADER_NOT_AVAILABLE if e.code == ErrorCode.NOT_CONTROLLER \
            else e.code


async def _behind(cluster: ClusterView | None, conn: Connection,
                  requested: list[dict] | None) -> bool:
    """Whether this node is still behind on metadata after the read fence, waited for only
    when the answer depends on what it may not know yet (all topics, or an unknown one)."""
    if cluster is None or cluster.metadata_current():
        return False
    topics = conn.server.topics
    if requested and all((n := item.get("name")) is not None and topics.resolve(n) is not None
                         for item in requested):
        return False
    return not await cluster.metadata_fence()


async def _leaders(cluster: ClusterView | None, topics: list[dict], names: TopicMap) -> None:
    """Wait (bounded) for a leader of each listed partition that has none here, then list
    them again as they are."""
    if cluster is None:
        return
    waiting = [(t, e) for e in topics if e["error_code"] == ErrorCode.NONE
               and any(p["leader_id"] < 0 for p in e["partitions"])
               and (t := names.resolve(e["name"]) if e.get("name") else None) is not None]
    if not waiting:
        return
    await cluster.leaders_fence([(t.stream_id, t.id, p.id) for t, _ in waiting
                                 for p in t.partitions])
    for t, e in waiting:
        e["partitions"] = routing.partitions_of(cluster, t)


async def handle(conn: Connection, req: dict, version: int) -> dict:
    server = conn.server
    s = server.settings
    requested = req.get("topics")
    behind = await _behind(server.engine.cluster, conn, requested)
    with_ops = version >= 8 and req.get("include_topic_authorized_operations", False)

    def entry(name: str, t: Topic) -> dict:
        ops = authz.topic_operations(conn, t) if with_ops else NO_OPERATIONS
        return topic_entry(conn, name, t, ops)

    topics = []
    if requested is None or (version == 0 and not requested):
        topics = [entry(name, t) for name, t in server.topics.all() if authz.describable(conn, t)]
    else:
        allow = req.get("allow_auto_topic_creation", True) if version >= 4 else True
        for item in requested:
            name = item.get("name")
            if name is None:
                # by id only (v10+; KIP-848 consumers look up the topic ids of their
                # assignment); the response name is nullable from v12 on
                raw = item.get("topic_id")
                found = server.topics.by_id(raw.bytes) if raw is not None else None
                if found is not None and authz.describable(conn, found[1]):
                    topics.append(entry(*found))
                    continue
                topics.append({"error_code": ErrorCode.UNKNOWN_TOPIC_ID if found is None
                               else ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                               "name": None if version >= 12 else "",
                               "topic_id": raw or bytes(16), "partitions": []})
                continue
            t, error = await _named(conn, name, allow)
            if behind and error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                error = ErrorCode.LEADER_NOT_AVAILABLE  # it may exist: not known here yet
            topics.append(entry(name, t) if t is not None else _error(error, name))
    await _leaders(server.engine.cluster, topics, server.topics)
    cluster_ops = NO_OPERATIONS
    if 8 <= version <= 10 and req.get("include_cluster_authorized_operations", False):
        cluster_ops = authz.cluster_operations(conn)
    return {
        "throttle_time_ms": 0,
        "brokers": [{"node_id": node_id, "host": host, "port": port, "rack": None}
                    for node_id, host, port in routing.brokers(conn)],
        "cluster_id": s.cluster_id,
        "controller_id": routing.controller(conn)[0],
        "topics": topics,
        "cluster_authorized_operations": cluster_ops,
    }
