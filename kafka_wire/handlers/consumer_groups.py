"""KIP-848 consumer groups: ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69).

Thin adapters around `kafka_wire.groups.consumer` (``conn.server.coordinator.consumer``): the
protocol rules live there. Rights as for classic groups (kafka_wire/authorizer.py): the group's
READ (poll on every topic it consumes) and READ on each topic the member names, else
GROUP_/TOPIC_AUTHORIZATION_FAILED; topics a regex matches count only if the principal may read
them. Docs: docs/kafka-consumer-groups.md.
"""

from __future__ import annotations

from collections.abc import Callable

from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.groups.assignors import Partitions
from pyggy.kafka_wire.groups.consumer import ConsumerGroup, Heartbeat, HeartbeatResult, Member
from pyggy.kafka_wire.handlers.groups import NOT_REQUESTED, client_host, coordinator, not_here
from pyggy.kafka_wire.protocol.errors import ErrorCode


def _response(r: HeartbeatResult) -> dict:
    return {"throttle_time_ms": 0, "error_code": int(r.error_code),
            "error_message": r.error_message, "member_id": r.member_id,
            "member_epoch": r.member_epoch, "heartbeat_interval_ms": r.heartbeat_interval_ms,
            "assignment": None if r.assignment is None else {"topic_partitions": [
                {"topic_id": t, "partitions": ps} for t, ps in r.assignment]}}


def _reader(conn: Connection) -> Callable[[str], bool] | None:
    """The regex filter: topics this principal may read (None: everything)."""
    user = conn.user
    if user is None or user.is_root:
        return None
    topics = conn.server.topics

    def may_read(name: str) -> bool:
        t = topics.resolve(name)
        return t is not None and authz.topic_allowed(user, authz.READ, t.stream_id, t.id)
    return may_read


def consumer_group_heartbeat(conn: Connection, req: dict, version: int) -> dict:
    coord = coordinator(conn)
    group_id = req["group_id"]
    if coord is None:
        return _response(HeartbeatResult(not_here(conn)))
    if denied := authz.group(conn, group_id):
        return _response(HeartbeatResult(denied))
    names = req["subscribed_topic_names"]
    topics = conn.server.topics
    for name in names or ():
        if denied := authz.topic_by_name(conn, name, topics.resolve(name)):
            return _response(HeartbeatResult(denied, f"Topic {name} is not authorized."))
    owned = req["topic_partitions"]
    hb = Heartbeat(
        group_id, req["member_id"], req["member_epoch"], req["instance_id"], req["rack_id"],
        req["rebalance_timeout_ms"], names, req["subscribed_topic_regex"] if version >= 1 else None,
        req["server_assignor"],
        None if owned is None else [(bytes(t["topic_id"].bytes), t["partitions"]) for t in owned],
        conn.client_id or "", client_host(conn), version, _reader(conn))
    return _response(coord.consumer_heartbeat(hb))


def _assignment(parts: Partitions, names: dict[bytes, str]) -> dict:
    return {"topic_partitions": [
        {"topic_id": t, "topic_name": names.get(t, ""), "partitions": sorted(ps)}
        for t, ps in sorted(parts.items()) if ps]}


def _member(m: Member, target: Partitions, names: dict[bytes, str], version: int) -> dict:
    return {"member_id": m.member_id, "instance_id": m.instance_id, "rack_id": m.rack_id,
            "member_epoch": m.epoch, "client_id": m.client_id, "client_host": m.client_host,
            "subscribed_topic_names": list(m.topic_names),
            "subscribed_topic_regex": m.regex,
            "assignment": _assignment(m.assigned, names),
            "target_assignment": _assignment(target, names),
            "member_type": 1 if version >= 1 else -1}  # 1: consumer protocol (KIP-1099)


def _described(conn: Connection, g: ConsumerGroup, with_ops: bool, version: int) -> dict:
    names = {tid: name for name, (tid, _) in g.metadata.items()}
    return {"error_code": ErrorCode.NONE, "error_message": None, "group_id": g.group_id,
            "group_state": g.state.value, "group_epoch": g.epoch,
            "assignment_epoch": g.assignment_epoch, "assignor_name": g.preferred_assignor(),
            "members": [_member(m, g.target.get(m.member_id, {}), names, version)
                        for m in g.members.values()],
            "authorized_operations": authz.group_operations(conn, g.group_id)
            if with_ops else NOT_REQUESTED}


def consumer_group_describe(conn: Connection, req: dict, version: int) -> dict:
    coord = coordinator(conn)
    out = []
    for group_id in req["group_ids"]:
        error: int = ErrorCode.NONE
        message = None
        g = coord.consumer.groups.get(group_id) if coord is not None else None
        if coord is None:
            error = not_here(conn)
        elif not group_id:
            error, message = ErrorCode.INVALID_GROUP_ID, "Group ID can't be empty."
        elif denied := authz.group(conn, group_id):
            error = denied
        elif g is None:
            error = ErrorCode.GROUP_ID_NOT_FOUND
            message = (f"Group {group_id} is not a consumer group."
                       if group_id in coord.groups else f"Group {group_id} not found.")
        if error or g is None:
            out.append({"error_code": int(error), "error_message": message,
                        "group_id": group_id, "group_state": "", "group_epoch": 0,
                        "assignment_epoch": 0, "assignor_name": "", "members": [],
                        "authorized_operations": NOT_REQUESTED})
        else:
            out.append(_described(conn, g, req["include_authorized_operations"], version))
    return {"throttle_time_ms": 0, "groups": out}
