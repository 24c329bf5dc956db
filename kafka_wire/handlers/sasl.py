"""SASL: SaslHandshake (17) and SaslAuthenticate (36), mechanism PLAIN against pyggy's users.

The Kafka listener is SASL-optional: a client that starts a handshake must authenticate (with a
pyggy user name and password, as the Iggy door's LOGIN_USER) before any other request on that
connection, and a failed authentication closes it; a client that never starts one is served as
before, without a user. Handshake v1 carries the token in SaslAuthenticate requests; after a
handshake v0 the next frame is the raw token (no request header) and the answer an empty,
size-prefixed token (kafka.md §6).
"""

from __future__ import annotations

import struct

from pyggy.core.errors import IggyError
from pyggy.kafka_wire.context import CloseConnection, Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode

MECHANISMS = ["PLAIN"]
NONE, V0_TOKEN, V1_TOKEN, DONE = "", "v0", "v1", "done"  # Connection.sasl states
_SIZE = struct.Struct(">i")
FAILED = "Authentication failed: Invalid username or password"


def _plain(conn: Connection, token: bytes) -> str | None:
    """Check a PLAIN token (authzid NUL authcid NUL password); None if accepted, else why."""
    parts = token.split(b"\x00")
    if len(parts) != 3:
        return "Authentication failed: Invalid SASL/PLAIN response: expected 3 tokens"
    try:
        authzid, user, password = (p.decode() for p in parts)
    except UnicodeDecodeError:
        return FAILED
    if not user:
        return "Authentication failed: username not specified"
    if authzid and authzid != user:
        return ("Authentication failed: Client requested an authorization id that is "
                "different from username")
    try:
        conn.server.engine.authenticate(user, password)
    except IggyError:
        return FAILED
    conn.user = user
    return None


def handshake(conn: Connection, req: dict, version: int) -> dict:
    if conn.sasl != NONE:  # no re-authentication: the session lifetime is 0
        conn.close_after_reply = True
        return {"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": MECHANISMS}
    if req["mechanism"] not in MECHANISMS:
        conn.close_after_reply = True
        return {"error_code": ErrorCode.UNSUPPORTED_SASL_MECHANISM, "mechanisms": MECHANISMS}
    conn.sasl = V0_TOKEN if version == 0 else V1_TOKEN
    return {"error_code": ErrorCode.NONE, "mechanisms": MECHANISMS}


def authenticate(conn: Connection, req: dict, version: int) -> dict:
    out = {"error_code": ErrorCode.NONE, "error_message": None, "auth_bytes": b"",
           "session_lifetime_ms": 0}
    if conn.sasl != V1_TOKEN:
        conn.close_after_reply = True
        out["error_code"] = ErrorCode.ILLEGAL_SASL_STATE
        out["error_message"] = "Unexpected SaslAuthenticate request"
        return out
    why = _plain(conn, bytes(req["auth_bytes"]))
    if why:
        conn.close_after_reply = True
        out["error_code"], out["error_message"] = ErrorCode.SASL_AUTHENTICATION_FAILED, why
        return out
    conn.sasl = DONE
    return out


def raw_token(conn: Connection, frame: memoryview) -> list:
    """The frame after a handshake v0: a bare PLAIN token. Success: an empty token back."""
    why = _plain(conn, bytes(frame))
    if why:
        raise CloseConnection(f"SASL/PLAIN (v0) failed: {why}")
    conn.sasl = DONE
    return [_SIZE.pack(0)]
