"""Classic consumer groups: JoinGroup (11), SyncGroup (14), Heartbeat (12), LeaveGroup (13),
DescribeGroups (15), ListGroups (16), DeleteGroups (42).

Thin adapters around `kafka_wire.groups.GroupCoordinator` (``conn.server.coordinator``):
decode fields per version, call the coordinator, await the JoinGroup/SyncGroup futures it
resolves when the rebalance gets there, and write the answer in the version's shape. Without a
coordinator every request gets COORDINATOR_NOT_AVAILABLE (retriable). Each needs the group's
right (kafka_wire/authorizer.py: poll on every topic the group consumes), else
GROUP_AUTHORIZATION_FAILED; ListGroups lists the groups the principal may describe.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyggy.core.errors import IggyError
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire import replicated
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.groups import GroupCoordinator
from pyggy.kafka_wire.groups.subscription import subscription_topics
from pyggy.kafka_wire.protocol.errors import ErrorCode

NO_COORDINATOR = ErrorCode.COORDINATOR_NOT_AVAILABLE
NOT_REQUESTED = authz.NOT_REQUESTED  # INT32_MIN: authorized operations not asked for


def coordinator(conn: Connection) -> GroupCoordinator | None:
    """The group coordinator, if this broker is it. In a cluster only the metadata primary
    coordinates groups (FindCoordinator names it): a backup's own coordinator would run
    groups whose commits it cannot make and whose members the primary never sees."""
    cluster = conn.server.engine.cluster
    if cluster is not None and cluster.metadata_leader() != cluster.replica_id:
        return None
    return conn.server.coordinator


def not_here(conn: Connection) -> ErrorCode:
    """The answer where `coordinator` is None: NOT_COORDINATOR when another broker
    coordinates (the client looks it up again at once), else COORDINATOR_NOT_AVAILABLE
    (no coordinator yet, or a view change: the client backs off and retries)."""
    cluster = conn.server.engine.cluster
    if cluster is not None and cluster.metadata_leader() not in (None, cluster.replica_id):
        return ErrorCode.NOT_COORDINATOR
    return NO_COORDINATOR


def client_host(conn: Connection) -> str:
    """What Kafka reports as a member's client host ("/127.0.0.1")."""
    return "/" + conn.host


def _subscribed(req: dict) -> set[str]:
    """The topics a joining consumer subscribes to (other protocols' metadata is opaque)."""
    if req["protocol_type"] != "consumer":
        return set()
    return {t for p in req["protocols"] for t in subscription_topics(p["metadata"]) or ()}


async def join_group(conn: Connection, req: dict, version: int) -> dict:
    coord = coordinator(conn)
    denied = authz.group(conn, req["group_id"], _subscribed(req))
    if coord is None or denied:
        result = None
        error, member_id = denied or not_here(conn), req["member_id"]
    else:
        future = coord.join(
            req["group_id"], req["member_id"],
            req["group_instance_id"] if version >= 5 else None,
            conn.client_id or "", client_host(conn),
            req["session_timeout_ms"],
            req["rebalance_timeout_ms"] if version >= 1 else -1,
            req["protocol_type"],
            [(p["name"], p["metadata"]) for p in req["protocols"]],
            require_known_member_id=version >= 4,
            supports_skip_assignment=version >= 9,
            reason=req["reason"] if version >= 8 else None)
        result = await future
        error, member_id = result.error_code, result.member_id
    protocol_name = result.protocol_name if result else None
    if protocol_name is None and version < 7:
        protocol_name = ""  # not nullable before v7
    return {
        "throttle_time_ms": 0,
        "error_code": int(error),
        "generation_id": result.generation_id if result else -1,
        "protocol_type": result.protocol_type if result else None,
        "protocol_name": protocol_name,
        "leader": result.leader if result else "",
        "skip_assignment": result.skip_assignment if result else False,
        "member_id": member_id,
        "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                     "metadata": m.metadata} for m in result.members] if result else [],
    }


async def sync_group(conn: Connection, req: dict, version: int) -> dict:
    coord = coordinator(conn)
    denied = authz.group(conn, req["group_id"])
    if coord is None or denied:
        return {"throttle_time_ms": 0, "error_code": denied or not_here(conn),
                "protocol_type": None, "protocol_name": None, "assignment": b""}
    result = await coord.sync(
        req["group_id"], req["generation_id"], req["member_id"],
        req["group_instance_id"] if version >= 3 else None,
        req["protocol_type"] if version >= 5 else None,
        req["protocol_name"] if version >= 5 else None,
        [(a["member_id"], a["assignment"]) for a in req["assignments"]])
    return {"throttle_time_ms": 0, "error_code": int(result.error_code),
            "protocol_type": result.protocol_type, "protocol_name": result.protocol_name,
            "assignment": result.assignment}


def heartbeat(conn: Connection, req: dict, version: int) -> dict:
    coord = coordinator(conn)
    denied = authz.group(conn, req["group_id"])
    if coord is None or denied:
        return {"throttle_time_ms": 0, "error_code": denied or not_here(conn)}
    error = coord.heartbeat(req["group_id"], req["generation_id"], req["member_id"],
                            req["group_instance_id"] if version >= 3 else None)
    return {"throttle_time_ms": 0, "error_code": int(error)}


def leave_group(conn: Connection, req: dict, version: int) -> dict:
    """v0–2 name one member and carry its error at the top level; v3+ a batch of members."""
    coord = coordinator(conn)
    if version < 3:
        members = [{"member_id": req["member_id"], "group_instance_id": None, "reason": None}]
    else:
        members = req["members"]
    denied = authz.group(conn, req["group_id"])
    if coord is None or denied:
        top = denied or not_here(conn)
        codes: Sequence[int] = [top] * len(members)
    else:
        top, codes = coord.leave(req["group_id"], [
            (m["member_id"], m["group_instance_id"], m["reason"] if version >= 5 else None)
            for m in members])
    if version < 3:
        error = top or (codes[0] if codes else ErrorCode.NONE)
        return {"throttle_time_ms": 0, "error_code": int(error), "members": []}
    return {"throttle_time_ms": 0, "error_code": int(top), "members": [
        {"member_id": m["member_id"], "group_instance_id": m["group_instance_id"],
         "error_code": int(code)} for m, code in zip(members, codes, strict=True)]}


def describe_groups(conn: Connection, req: dict, version: int) -> dict:
    """An unknown group is state "Dead": error NONE up to v5, GROUP_ID_NOT_FOUND from v6."""
    coord = coordinator(conn)
    with_ops = version >= 3 and req["include_authorized_operations"]
    groups = []
    for group_id in req["groups"]:
        denied = authz.group(conn, group_id)
        if coord is None or denied:
            groups.append({"error_code": denied or not_here(conn), "group_id": group_id,
                           "group_state": "", "protocol_type": "", "protocol_data": "",
                           "members": [], "authorized_operations": NOT_REQUESTED})
            continue
        d = coord.describe(group_id)
        error = d.error_code
        message = None
        if error == ErrorCode.GROUP_ID_NOT_FOUND:
            if version < 6:
                error = ErrorCode.NONE
            else:
                message = f"Group {group_id} not found."
        groups.append({
            "error_code": int(error), "error_message": message, "group_id": d.group_id,
            "group_state": d.state,
            "protocol_type": d.protocol_type, "protocol_data": d.protocol_name,
            "members": [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                         "client_id": m.client_id, "client_host": m.client_host,
                         "member_metadata": m.metadata, "member_assignment": m.assignment}
                        for m in d.members],
            "authorized_operations": authz.group_operations(conn, group_id)
            if with_ops and error == ErrorCode.NONE else NOT_REQUESTED})
    return {"throttle_time_ms": 0, "groups": groups}


def list_groups(conn: Connection, req: dict, version: int) -> dict:
    coord = coordinator(conn)
    if coord is None:  # a cluster's backup coordinates no group: it lists none (as Kafka)
        error = ErrorCode.NONE if not_here(conn) == ErrorCode.NOT_COORDINATOR \
            else NO_COORDINATOR
        return {"throttle_time_ms": 0, "error_code": error, "groups": []}
    listed = coord.list_groups(req["states_filter"] if version >= 4 else None,
                               req["types_filter"] if version >= 5 else None)
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "groups": [
        {"group_id": g.group_id, "protocol_type": g.protocol_type, "group_state": g.state,
         "group_type": g.group_type} for g in listed if authz.group_allowed(conn, g.group_id)]}


async def delete_groups(conn: Connection, req: dict, version: int) -> dict:
    coord = coordinator(conn)
    names = req["groups_names"]
    denied = {name: code for name in names if (code := authz.group(conn, name))}
    if coord is None:
        results = [(name, denied.get(name, not_here(conn))) for name in names]
    else:
        checked = coord.check_delete_groups([n for n in names if n not in denied])
        doomed = [g for g, code in checked if code == ErrorCode.NONE]
        if doomed:  # on every replica of a cluster (kafka_wire/replicated.py)
            try:
                await replicated.delete_groups(conn.server, doomed)
            except (IggyError, OSError) as e:
                failed = replicated.error_code(e)
                checked = [(g, failed if code == ErrorCode.NONE else code)
                           for g, code in checked]
        done = iter(checked)
        results = [(name, denied[name]) if name in denied else next(done) for name in names]
    return {"throttle_time_ms": 0, "results": [
        {"group_id": group_id, "error_code": int(code)} for group_id, code in results]}
