"""SASL: SaslHandshake (17) and SaslAuthenticate (36) with PLAIN, SCRAM-SHA-256 and
SCRAM-SHA-512 against pyggy's users (the ones the Iggy door logs in).

Handshake v1 carries the tokens in SaslAuthenticate requests; after a handshake v0 the next
frames are raw tokens (no request header), answered by size-prefixed raw tokens (KIP-43;
SaslAuthenticate: KIP-152).
A failed authentication is answered (SASL_AUTHENTICATION_FAILED with a message) and the
connection closed. PLAIN accepts a user's password or one of its personal access tokens; SCRAM
uses the credentials stored when the password was set (or by AlterUserScramCredentials).
With `[kafka] connections_max_reauth` the session lasts that long (KIP-368): the response
says so (`session_lifetime_ms`, v1+) and the client re-authenticates on the same connection
(same mechanism and user) before it ends; a request after the end closes the connection.
Whether a request may be served without a session is `check_session`'s (from dispatch).
"""

from __future__ import annotations

import logging
import struct
import time

from pyggy.core.errors import IggyError
from pyggy.core.model import User
from pyggy.kafka_wire.context import CloseConnection, Connection, Message
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.scram import ScramError, ScramExchange

log = logging.getLogger(__name__)
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
NONE, V0_TOKEN, V1_TOKEN, DONE = "", "v0", "v1", "done"  # Connection.sasl states
_SIZE = struct.Struct(">i")
FAILED = "Authentication failed: Invalid username or password"
SCRAM_FAILED = ("Authentication failed during authentication due to invalid credentials with "
                "SASL mechanism {}")


class AuthFailed(Exception):
    """The exchange failed: answer with this message, then close the connection."""


def _plain_fields(token: bytes) -> tuple[str, str]:
    """(user, password) of a PLAIN token (authzid NUL authcid NUL password)."""
    parts = token.split(b"\x00")
    if len(parts) != 3:
        raise AuthFailed("Authentication failed: Invalid SASL/PLAIN response: expected 3 "
                         "tokens")
    try:
        authzid, user, password = (p.decode() for p in parts)
    except UnicodeDecodeError:
        raise AuthFailed(FAILED) from None
    if not user:
        raise AuthFailed("Authentication failed: username not specified")
    if authzid and authzid != user:
        raise AuthFailed("Authentication failed: Client requested an authorization id that "
                         "is different from username")
    return user, password


async def _step(conn: Connection, token: bytes) -> tuple[bytes, bool]:
    """One client token in: (the server's token, whether the exchange is complete)."""
    logins = conn.server.logins
    if conn.mechanism == "PLAIN":
        user, password = _plain_fields(token)
        try:
            u, expiry_us = await logins.plain(user, password, conn.attempt())
        except IggyError:
            raise AuthFailed(FAILED) from None
        _authenticated(conn, u, expiry_us)
        return b"", True
    failed = SCRAM_FAILED.format(conn.mechanism)
    ex = conn.exchange
    try:
        if ex is None:  # client-first: answer with the user's salt and iterations
            ex = ScramExchange.start(conn.mechanism, token)
            _, credential = logins.scram_credential(ex.username, conn.mechanism)
            conn.exchange = ex
            return ex.server_first(credential), False
        conn.exchange = None
        ok, server_final = ex.final(token)
    except ScramError as e:
        raise AuthFailed(f"{failed}: {e}") from None

    def verify() -> User | None:  # the user as it is now, if the proof held
        user, credential = logins.scram_credential(ex.username, conn.mechanism)
        return user if ok and credential == ex.credential else None

    try:
        u = await logins.scram(ex.username, conn.mechanism, conn.attempt(), verify)
    except IggyError:
        raise AuthFailed(failed) from None
    _authenticated(conn, u, 0)
    return server_final, True


def _authenticated(conn: Connection, user: User, expiry_us: int) -> None:
    if conn.reauth and conn.user is not None:
        if conn.user.id != user.id:
            raise AuthFailed("Authentication failed: re-authentication must keep the same "
                             "user")
        log.debug("kafka connection from %s re-authenticated as %r", conn.host, user.username)
    conn.user = user
    conn.sasl = DONE
    conn.reauth = False
    lifetime = conn.server.settings.reauth_ms
    if lifetime and expiry_us:  # a token that expires earlier ends the session earlier
        remaining = (expiry_us - conn.server.engine.clock.now_us()) // 1000
        lifetime = max(min(lifetime, remaining), 1)
    conn.expires = time.monotonic() + lifetime / 1000 if lifetime else None


def _lifetime_ms(conn: Connection) -> int:
    if conn.expires is None:
        return 0
    return max(int((conn.expires - time.monotonic()) * 1000), 1)


def handshake(conn: Connection, req: dict, version: int) -> dict:
    mechanism = req["mechanism"]
    if conn.sasl == DONE and conn.expires is not None and version >= 1 \
            and mechanism == conn.mechanism:
        conn.sasl, conn.reauth = V1_TOKEN, True  # KIP-368 re-authentication
        return {"error_code": ErrorCode.NONE, "mechanisms": MECHANISMS}
    if conn.sasl != NONE:
        conn.close_after_reply = True
        return {"error_code": ErrorCode.ILLEGAL_SASL_STATE, "mechanisms": MECHANISMS}
    if mechanism not in MECHANISMS:
        conn.close_after_reply = True
        return {"error_code": ErrorCode.UNSUPPORTED_SASL_MECHANISM, "mechanisms": MECHANISMS}
    conn.mechanism = mechanism
    conn.sasl = V0_TOKEN if version == 0 else V1_TOKEN
    return {"error_code": ErrorCode.NONE, "mechanisms": MECHANISMS}


async def authenticate(conn: Connection, req: dict, version: int) -> dict:
    out: Message = {"error_code": ErrorCode.NONE, "error_message": None, "auth_bytes": b"",
           "session_lifetime_ms": 0}
    if conn.sasl != V1_TOKEN:
        conn.close_after_reply = True
        out["error_code"] = ErrorCode.ILLEGAL_SASL_STATE
        out["error_message"] = "Unexpected SaslAuthenticate request"
        return out
    try:
        out["auth_bytes"], done = await _step(conn, bytes(req["auth_bytes"]))
    except AuthFailed as e:
        conn.close_after_reply = True
        out["error_code"], out["error_message"] = ErrorCode.SASL_AUTHENTICATION_FAILED, str(e)
        return out
    if done:
        out["session_lifetime_ms"] = _lifetime_ms(conn)
    return out


async def raw_token(conn: Connection, frame: memoryview) -> list:
    """A frame after a handshake v0: a bare token, answered by a size-prefixed token."""
    try:
        token, _ = await _step(conn, bytes(frame))
    except AuthFailed as e:
        raise CloseConnection(f"SASL/{conn.mechanism} (v0) failed: {e}") from None
    return [_SIZE.pack(len(token)), token] if token else [_SIZE.pack(0)]


def check_session(conn: Connection, api_name: str) -> None:
    """Close the connection unless it may send `api_name` (anything but ApiVersions and the
    SASL APIs) now: not in the middle of a SASL exchange, authenticated if the listener
    requires it, with a session that has not ended and a user that still exists and is
    active."""
    if conn.sasl in (V0_TOKEN, V1_TOKEN):
        raise CloseConnection(f"{api_name} before SASL authentication completed")
    user = conn.user
    if user is None:
        if conn.server.settings.requires_auth:
            raise CloseConnection(f"{api_name} before SASL authentication (this listener "
                                  f"requires it)")
        return
    if conn.server.engine.identity.get_user(user.id) is not user or user.status != 1:
        raise CloseConnection(f"user {user.username!r} was deleted or deactivated")
    if conn.expires is not None and time.monotonic() > conn.expires:
        raise CloseConnection(f"{api_name} after the SASL session expired (no "
                              f"re-authentication, KIP-368)")
