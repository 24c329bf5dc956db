"""The Kafka door in a cluster (`engine.cluster` set; on a single node every answer here is
"this broker"): brokers = the roster's Kafka ports, a partition's leader = its group's primary
while the group is in normal status (this node: while it holds its lease, `Leadership.leased`),
`leader_epoch` = the group's view, the controller and the group coordinator = the metadata
primary.

A request for a partition this broker does not lead is answered NOT_LEADER_OR_FOLLOWER (the
client refreshes its metadata and goes to the leader); a request carrying a
`current_leader_epoch` older than the view is FENCED_LEADER_EPOCH, a newer one (this broker
missed a view change) UNKNOWN_LEADER_EPOCH (KIP-320).
"""

from __future__ import annotations

from pyggy.core.engine.cluster import ClusterView, Leadership
from pyggy.core.errors import IggyError
from pyggy.core.model import Topic
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode

NO_EPOCH = -1


def _cluster(conn: Connection) -> ClusterView | None:
    return conn.server.engine.cluster


def _named(cluster: ClusterView, lead: Leadership) -> int | None:
    """The leader this broker names: none while it leads without its lease (it heard from no
    quorum within the heartbeat timeout: probably cut off, and deposed without knowing it)."""
    return None if lead.leader == cluster.replica_id and not lead.leased else lead.leader


def leader_error(conn: Connection, t: Topic, index: int, current_epoch: int = NO_EPOCH) -> int:
    """NONE when this broker leads the partition (always on a single node)."""
    cluster = _cluster(conn)
    if cluster is None:
        return ErrorCode.NONE
    lead = cluster.partition(t.stream_id, t.id, index)
    leader = _named(cluster, lead)
    if leader is not None and current_epoch != NO_EPOCH:
        if current_epoch < lead.epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        if current_epoch > lead.epoch:
            return ErrorCode.UNKNOWN_LEADER_EPOCH
    if leader != cluster.replica_id:
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    return ErrorCode.NONE


def unsettled(conn: Connection, t: Topic, index: int) -> bool:
    """This broker leads the partition but has not executed the batches it took over from the
    previous leader yet: idempotent producers' sequences rebuilt now would miss them, and a
    retry of one would be stored twice (KIP-98: a duplicate is answered with its offset)."""
    cluster = _cluster(conn)
    return cluster is not None and not cluster.partition(t.stream_id, t.id, index).settled


async def still_leads(conn: Connection, t: Topic, index: int) -> bool:
    """Whether this broker still leads the partition, proved by a commit through its
    group (always on a single node): a leader cut off from the others keeps its view until it
    hears of a newer one, and a client whose metadata came from it (kafka-python takes a
    Metadata answer whatever its leader epoch) sends it batches that the new leader already
    took, so its producer state cannot answer OUT_OF_ORDER alone (docs/cluster.md, N-d)."""
    cluster = _cluster(conn)
    if cluster is None:
        return True
    try:
        await cluster.confirm(t.stream_id, t.id, index)
    except IggyError:  # NotLeader, or OutcomeUnknown: a view change
        return False
    return True


def leader_epoch(conn: Connection, t: Topic, index: int) -> int:
    cluster = _cluster(conn)
    return 0 if cluster is None else cluster.partition(t.stream_id, t.id, index).epoch


def brokers(conn: Connection) -> list[tuple[int, str, int]]:
    """(node id, host, port) of every broker: a sharded server's shards each have a port of
    their own and are brokers (docs/sharding.md)."""
    s = conn.server.settings
    cluster = _cluster(conn)
    if cluster is None:
        shards = conn.server.shards
        if shards is not None and shards.brokers:
            return list(shards.brokers)
        return [(s.node_id, s.host, s.port)]
    return [(n.replica_id, s.host if n.replica_id == cluster.replica_id else n.host,
             s.port if n.replica_id == cluster.replica_id else n.kafka)
            for n in cluster.nodes()]


def controller(conn: Connection) -> tuple[int, str, int]:
    """The controller and group coordinator: the metadata primary (this broker while there is
    none, so that admin clients always name a live broker)."""
    s = conn.server.settings
    cluster = _cluster(conn)
    leader = None if cluster is None else cluster.metadata_leader()
    shards = conn.server.shards
    if cluster is None and shards is not None and shards.brokers:
        leader = 0  # shard 0: the metadata and every group's coordinator
    for node_id, host, port in brokers(conn):
        if node_id == leader:
            return node_id, host, port
    return s.node_id, s.host, s.port


def partitions(conn: Connection, t: Topic) -> list[dict[str, object]]:
    """Metadata's partition entries of topic `t`."""
    cluster = _cluster(conn)
    if cluster is None:
        me = conn.server.settings.node_id
        shards = conn.server.shards
        leaders = [shards.owner(t, p.id) if shards is not None and shards.brokers else me
                   for p in t.partitions]
        return [{"error_code": 0, "partition_index": p.id, "leader_id": lead,
                 "leader_epoch": 0, "replica_nodes": [lead], "isr_nodes": [lead],
                 "offline_replicas": []} for p, lead in zip(t.partitions, leaders, strict=True)]
    return partitions_of(cluster, t)


def partitions_of(cluster: ClusterView, t: Topic) -> list[dict[str, object]]:
    """Metadata's partition entries of topic `t` in a cluster, as this node sees them now."""
    everyone = [n.replica_id for n in cluster.nodes()]
    out = []
    for p in t.partitions:
        lead = cluster.partition(t.stream_id, t.id, p.id)
        leader = _named(cluster, lead)
        out.append({"error_code": ErrorCode.NONE if leader is not None
                    else ErrorCode.LEADER_NOT_AVAILABLE, "partition_index": p.id,
                    "leader_id": -1 if leader is None else leader,
                    "leader_epoch": lead.epoch, "replica_nodes": everyone,
                    "isr_nodes": list(lead.in_sync),
                    "offline_replicas": [r for r in everyone if r not in lead.in_sync]})
    return out
