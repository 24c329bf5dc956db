"""Sans-I/O request handling: one complete frame in, reply buffers out.

`handle_vsr` serves the Iggy 0.11 framing (256-byte headers) of apache-iggy 0.9;
`handle_classic` serves the `[len][code]` framing of apache-iggy ≤ 0.8 on the same port.
"""

from __future__ import annotations

import logging
import time

from pyggy.core.engine.cluster import FORWARD
from pyggy.core.engine.data import Deferred
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.native_wire.codec import frames
from pyggy.native_wire.codec import responses as rsp
from pyggy.native_wire.codec.codes import (
    NOT_IN_CLASSIC,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_MIN,
    Code,
    EvictionReason,
    Operation,
    is_protocol_compatible,
)
from pyggy.native_wire.codec.reader import Reader, WireError
from pyggy.native_wire.context import ROUTE, Answer, Context, NativeServer, Session
from pyggy.native_wire.handlers.messages import ClassicDeferred
from pyggy.native_wire.table import COMMANDS, Command
from pyggy.transport.door import Reply, streamed

log = logging.getLogger(__name__)


_REFUSALS = frozenset({ErrorCode.UNAUTHENTICATED, ErrorCode.UNAUTHORIZED})


async def _run(ctx: Context, code: int, body: memoryview) -> Answer:
    cmd = COMMANDS.get(code)
    if cmd is None or (ctx.session.classic and code in NOT_IN_CLASSIC):  # no property calls
        raise IggyError(ErrorCode.INVALID_COMMAND, f"unknown command {code}")
    route = ROUTE.get()
    if route is not None:  # with shard processes: which command (pyggy/shards/handoff.py)
        route[0] = code
    # in a cluster, writes reaching a backup go to their group's primary (Iggy clients do
    # not know partition leaders): docs/cluster.md, "What a client sees"
    FORWARD.set(True)
    metrics = ctx.server.metrics
    if metrics is None:
        return await _checked(ctx, cmd, body)
    start = time.perf_counter()
    error = ""
    reply: bytes | list = b""
    try:
        reply = await _checked(ctx, cmd, body)
        return reply
    except (IggyError, WireError) as e:
        error = ErrorCode(e.code).name.lower() if e.code in ErrorCode._value2member_map_ \
            else "error"
        raise
    finally:  # pyggy/metrics.py: per-command count, latency, bytes
        sent = sum(len(p) for p in reply) if isinstance(reply, list) else len(reply)
        metrics.request("iggy", cmd.name, time.perf_counter() - start, error,
                        len(body), sent)


async def _checked(ctx: Context, cmd: Command, body: memoryview) -> bytes | list:
    try:
        telemetry = ctx.server.telemetry
        if telemetry is not None:  # a span named from the command table (pyggy/telemetry.py)
            return await telemetry.native_command(ctx, cmd, body, _call)
        return await _call(ctx, cmd, body)
    except IggyError as e:
        if e.code in _REFUSALS:  # logged once per burst (core/logins.py Audit)
            user = ctx.session.user
            ctx.server.logins.audit.refused(user.username if user else None, ctx.session.host,
                                            "iggy", cmd.name)
        raise


async def _call(ctx: Context, cmd: Command, body: memoryview) -> Answer:
    """`_run`'s body after the lookup, for the telemetry hook to wrap."""
    if not cmd.pre_auth:
        session = ctx.session
        user = session.require_user()
        if ctx.server.engine.identity.meta.users.get(user.id) is not user or user.status != 1:
            # deleted or deactivated (through another shard, node or connection): its
            # sessions end, as the Kafka door closes such a user's connections
            session.user = None
            raise IggyError(ErrorCode.UNAUTHENTICATED, "unauthenticated")
    r = Reader(body)
    if cmd.is_async:
        return await cmd.handler(ctx, r)
    return cmd.handler(ctx, r)


# -- VSR (0.11) ------------------------------------------------------------------------------
_REGISTER, _LOGOUT, _NON_REPLICATED = (  # plain ints, as `_LOGIN_USER` below
    int(Operation.REGISTER), int(Operation.LOGOUT), int(Operation.NON_REPLICATED))


async def handle_vsr(server: NativeServer, session: Session, frame: bytearray) -> Reply:
    header = frames.parse_request_header(frame)
    body = memoryview(frame)[frames.HEADER_SIZE:header.size]
    op = header.operation
    if op == _REGISTER:
        return await _register(server, session, header, body)
    try:
        if session.user is not None and header.session != session.session_id and \
                op != _NON_REPLICATED:
            raise IggyError(ErrorCode.INVALID_SESSION, "stale session")
        frames.verify_request_checksum(header, body)
        if op == _LOGOUT:
            session.require_user()
            session.user = None
            return [frames.build_reply(header, 0, b"", session.session_id)], False
        if op != _NON_REPLICATED and header.command_code == 0:
            raise IggyError(ErrorCode.INVALID_COMMAND, f"operation {op} is not for clients")
        payload = await _run(Context(server, session), header.command_code, body)
    except (IggyError, WireError) as e:
        return [frames.build_reply(header, e.code, b"", session.session_id)], False
    if isinstance(payload, list):  # a poll's stored batches may be a Deferred: streamed
        size = sum(map(len, payload))
        return streamed([frames.build_reply_header(header, 0, size, session.session_id),
                         *payload], Deferred), False
    if frames.is_result_framed(op):
        payload = frames.result_ok(payload)
    return [frames.build_reply(header, 0, payload, session.session_id)], False


def _evict(header: frames.RequestHeader, reason: int) -> Reply:
    return [frames.build_eviction(header.client, reason, PROTOCOL_VERSION,
                                  PROTOCOL_VERSION_MIN)], True


async def _register(server: NativeServer, session: Session, header: frames.RequestHeader,
                    body: memoryview) -> Reply:
    """Login (code 40 username/password or 45 token; both arrive as operation Register).

    The version prefix is read first, as Iggy's server does: a client of another protocol
    revision (which may stamp its request checksum differently) is told the accepted range
    (eviction 14) rather than that its request is malformed; then the checksum is verified."""
    try:
        r = Reader(body)
        version = r.u32()
        r.short_bytes()  # sdk name
        r.short_bytes()  # sdk version
    except WireError:
        return _evict(header, EvictionReason.MALFORMED_LOGIN)
    if not is_protocol_compatible(version):
        return _evict(header, EvictionReason.INCOMPATIBLE_PROTOCOL)
    try:
        frames.verify_request_checksum(header, body)
    except WireError:
        return _evict(header, EvictionReason.MALFORMED_LOGIN)
    credentials = _login_shape(r.rest())
    if credentials is None:
        return _evict(header, EvictionReason.MALFORMED_LOGIN)
    logins = server.logins
    try:
        if len(credentials) == 2:
            user = await logins.password(*credentials, session.attempt())
        else:
            user = await logins.token(credentials[0], session.attempt())
    except IggyError as e:  # logged by Logins (once per burst)
        reason = EvictionReason.USER_INACTIVE if e.code == ErrorCode.USER_INACTIVE \
            else EvictionReason.INVALID_CREDENTIALS if len(credentials) == 2 \
            else EvictionReason.INVALID_TOKEN
        return _evict(header, reason)
    session.user = user
    session.vsr_client = header.client
    session.session_id = server.next_session_id()
    payload = rsp.encode_login_register(user.id, session.session_id, PROTOCOL_VERSION,
                                        server.node.version)
    return [frames.build_reply(header, 0, frames.result_ok(payload), session.session_id)], False


def _login_shape(rest: memoryview) -> tuple[str, ...] | None:
    """(username, password) if the body has that shape, else (token,), else None."""
    for shape in (2, 1):
        try:
            r = Reader(rest)
            values = tuple(r.short_string() for _ in range(shape))
            r.long_bytes()  # context
            r.done()
            return values
        except WireError:
            continue
    return None


# -- classic (≤ 0.8) -------------------------------------------------------------------------
# The 0.8 server answers these reads with an empty body (the SDK's None / []) when the stream,
# topic, group or offset they name does not exist, instead of an error status.
_CLASSIC_EMPTY_IF_MISSING = frozenset({
    Code.GET_TOPICS, Code.GET_CONSUMER_GROUP, Code.GET_CONSUMER_GROUPS, Code.GET_CONSUMER_OFFSET,
})
_MISSING = frozenset({
    ErrorCode.RESOURCE_NOT_FOUND, ErrorCode.STREAM_ID_NOT_FOUND, ErrorCode.STREAM_NAME_NOT_FOUND,
    ErrorCode.TOPIC_ID_NOT_FOUND, ErrorCode.TOPIC_NAME_NOT_FOUND, ErrorCode.PARTITION_NOT_FOUND,
    ErrorCode.CONSUMER_OFFSET_NOT_FOUND, ErrorCode.CONSUMER_GROUP_ID_NOT_FOUND,
    ErrorCode.CONSUMER_GROUP_NAME_NOT_FOUND,
})

# plain ints: an enum member's lookup costs more than the comparison (every request makes them)
_LOGIN_USER, _LOGIN_WITH_TOKEN, _LOGOUT_USER = (
    int(Code.LOGIN_USER), int(Code.LOGIN_WITH_PERSONAL_ACCESS_TOKEN), int(Code.LOGOUT_USER))


async def handle_classic(server: NativeServer, session: Session, frame: bytearray) -> Reply:
    try:
        code, body = frames.parse_classic_request(frame)
    except WireError as e:
        return [frames.build_classic_response(e.code)], True
    session.classic = True
    try:
        if code == _LOGIN_USER:
            payload: bytes | list = await _classic_login(server, session, Reader(body))
        elif code == _LOGIN_WITH_TOKEN:
            r = Reader(body)
            token = r.name()
            r.done()
            try:
                session.user = await server.logins.token(token, session.attempt())
            except IggyError as e:  # 0.8 reports an unknown token as ResourceNotFound
                if e.code == ErrorCode.INVALID_PAT:
                    raise IggyError(ErrorCode.RESOURCE_NOT_FOUND, "unknown token") from None
                raise
            payload = rsp.encode_identity(session.user.id)
        elif code == _LOGOUT_USER:
            session.require_user()
            session.user = None
            payload = b""
        else:
            payload = await _run(Context(server, session), code, body)
    except (IggyError, WireError) as e:
        if code in _CLASSIC_EMPTY_IF_MISSING and e.code in _MISSING:
            return [frames.build_classic_response(0, b"")], False
        # a connection that failed to log in too often is closed after the error
        return [frames.build_classic_response(e.code)], session.logins.exhausted
    if isinstance(payload, list):  # a poll's classic frames may be a ClassicDeferred: streamed
        size = sum(map(len, payload))
        return streamed([frames.build_classic_response_header(0, size), *payload],
                        ClassicDeferred), False
    return [frames.build_classic_response(0, payload)], False


async def _classic_login(server: NativeServer, session: Session, r: Reader) -> bytes:
    username = r.name()
    password = r.short_string()
    if r.remaining():
        r.long_bytes()  # client version
        r.long_bytes()  # context
    r.done()
    session.user = await server.logins.password(username, password, session.attempt())
    return rsp.encode_identity(session.user.id)
