"""ACLs: DescribeAcls (29), CreateAcls (30), DeleteAcls (31) over Iggy's permissions
(kafka_wire/acls.py has the mapping). Describing needs read_users, changing manage_users."""

from __future__ import annotations

from pyggy.kafka_wire import acls
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire.context import Connection, Message
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.topics import KafkaError

DENIED = "Cluster authorization failed."


def describe_acls(conn: Connection, req: dict, version: int) -> dict:
    if denied := authz.users(conn):
        return {"throttle_time_ms": 0, "error_code": denied, "error_message": DENIED,
                "resources": []}
    resources: dict[tuple, list[dict]] = {}
    for b, _ in acls.bindings(conn.server):
        if acls.matches(b, req):
            entry = {"principal": b.principal, "host": b.host, "operation": b.operation,
                     "permission_type": b.permission_type}
            acl_list = resources.setdefault((b.resource_type, b.resource_name, b.pattern_type),
                                            [])
            if entry not in acl_list:
                acl_list.append(entry)
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None,
            "resources": [{"resource_type": t, "resource_name": n, "pattern_type": p,
                           "acls": found} for (t, n, p), found in resources.items()]}


async def create_acls(conn: Connection, req: dict, version: int) -> dict:
    denied = authz.users(conn)
    results = []
    for c in req["creations"]:
        out: Message = {"error_code": ErrorCode.NONE, "error_message": None}
        try:
            if denied:
                raise KafkaError(denied, DENIED)
            await acls.change(conn.server, [acls.grant_for(conn.server, c)], True)
        except KafkaError as e:
            out["error_code"], out["error_message"] = e.code, e.message or None
        results.append(out)
    return {"throttle_time_ms": 0, "results": results}


async def delete_acls(conn: Connection, req: dict, version: int) -> dict:
    denied = authz.users(conn)
    results = []
    for f in req["filters"]:
        if denied:
            results.append({"error_code": denied, "error_message": DENIED,
                            "matching_acls": []})
            continue
        found = [(b, g) for b, g in acls.bindings(conn.server) if acls.matches(b, f)]
        grants = list(dict.fromkeys(g for _, g in found if g is not None))
        error: int = ErrorCode.NONE
        message: str | None = None
        try:
            await acls.change(conn.server, grants, False)
        except KafkaError as e:
            error, message = e.code, e.message
        matching, seen = [], set()
        for b, g in found:
            if b in seen:
                continue
            seen.add(b)
            fixed = g is None
            matching.append({**b.as_dict(),
                             "error_code": ErrorCode.INVALID_REQUEST if fixed else error,
                             "error_message": "root's and anonymous access cannot change"
                             if fixed else message})
        results.append({"error_code": ErrorCode.NONE, "error_message": None,
                        "matching_acls": matching})
    return {"throttle_time_ms": 0, "filter_results": results}
