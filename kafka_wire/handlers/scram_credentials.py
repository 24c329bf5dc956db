"""DescribeUserScramCredentials (50) and AlterUserScramCredentials (51), KIP-554: the SCRAM
credentials of pyggy's users (the ones both doors log in). Describing needs read_users,
altering manage_users. An upsertion brings the client's salt and salted password; the server
keeps StoredKey and ServerKey (RFC 5802) — the user's password (for PLAIN and the Iggy door)
does not change. Users are created through the Iggy door, never here.
"""

from __future__ import annotations

from pyggy.core import auth
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode

MECHANISMS = {1: "SCRAM-SHA-256", 2: "SCRAM-SHA-512"}
CODES = {name: code for code, name in MECHANISMS.items()}
DENIED = "Cluster authorization failed."


def describe(conn: Connection, req: dict, version: int) -> dict:
    if denied := authz.users(conn):
        return {"throttle_time_ms": 0, "error_code": denied, "error_message": DENIED,
                "results": []}
    engine = conn.server.engine
    wanted = [u["name"] for u in req["users"] or ()]
    results = []
    if not wanted:  # every user that has credentials
        for user in engine.identity.users():
            if user.scram:
                results.append(_result(user.username, user.scram))
    for name in dict.fromkeys(wanted):
        u = engine.identity.get_user(name)
        if wanted.count(name) > 1:
            results.append(_error(name, ErrorCode.DUPLICATE_RESOURCE, "Cannot describe SCRAM "
                                  "credentials for the same user twice in a single request"))
        elif u is None or not u.scram:
            results.append(_error(name, ErrorCode.RESOURCE_NOT_FOUND, "Attempt to describe a "
                                  "user credential that does not exist"))
        else:
            results.append(_result(name, u.scram))
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "error_message": None,
            "results": results}


def _result(name: str, scram: dict) -> dict:
    return {"user": name, "error_code": ErrorCode.NONE, "error_message": None,
            "credential_infos": [{"mechanism": CODES[m], "iterations": c.iterations}
                                 for m, c in sorted(scram.items()) if m in CODES]}


def _error(name: str, code: int, message: str) -> dict:
    return {"user": name, "error_code": code, "error_message": message, "credential_infos": []}


def _check(conn: Connection, name: str, mechanism: int, upsert: dict | None) -> str | None:
    """Why this change cannot be made (a message), or None; its code is set by the caller."""
    if not name:
        return "Username must not be empty"
    if mechanism not in MECHANISMS:
        return "Unknown SCRAM mechanism"
    if conn.server.engine.identity.get_user(name) is None:
        return f"There is no pyggy user '{name}' (users are created through the Iggy door)"
    if upsert is not None:
        if not auth.MIN_ITERATIONS <= upsert["iterations"] <= auth.MAX_ITERATIONS:
            return (f"Iterations must be between {auth.MIN_ITERATIONS} and "
                    f"{auth.MAX_ITERATIONS}")
        if not upsert["salt"] or not upsert["salted_password"]:
            return "Salt and salted password must not be empty"
    return None


def _code(message: str) -> int:
    if message.startswith("Unknown SCRAM"):
        return ErrorCode.UNSUPPORTED_SASL_MECHANISM
    if message.startswith("There is no"):
        return ErrorCode.RESOURCE_NOT_FOUND
    return ErrorCode.UNACCEPTABLE_CREDENTIAL


async def alter(conn: Connection, req: dict, version: int) -> dict:
    engine = conn.server.engine
    denied = authz.users(conn)
    changes = [(d["name"], d["mechanism"], None) for d in req["deletions"]] + \
        [(u["name"], u["mechanism"], u) for u in req["upsertions"]]
    errors: dict[str, tuple[int, str]] = {}
    seen: set[tuple[str, int]] = set()
    for name, mechanism, upsert in changes:
        if denied:
            errors.setdefault(name, (denied, DENIED))
        elif (name, mechanism) in seen:
            errors.setdefault(name, (ErrorCode.DUPLICATE_RESOURCE, "A user credential cannot "
                                     "be altered twice in the same request"))
        elif message := _check(conn, name, mechanism, upsert):
            errors.setdefault(name, (_code(message), message))
        seen.add((name, mechanism))
    for name, mechanism, upsert in changes:
        if name in errors:
            continue
        mech = MECHANISMS[mechanism]
        user = engine.identity.user(name)
        if upsert is None:
            if mech not in user.scram:
                errors[name] = (ErrorCode.RESOURCE_NOT_FOUND, "Attempt to delete a user "
                                "credential that does not exist")
                continue
            await engine.identity.delete_scram(user.id, mech)
        else:
            await engine.identity.set_scram(user.id, mech, auth.scram_from_salted(
                mech, bytes(upsert["salted_password"]), bytes(upsert["salt"]),
                upsert["iterations"]))
    return {"throttle_time_ms": 0, "results": [
        {"user": name, "error_code": errors.get(name, (ErrorCode.NONE, None))[0],
         "error_message": errors.get(name, (ErrorCode.NONE, None))[1]}
        for name in dict.fromkeys(n for n, _, _ in changes)]}
