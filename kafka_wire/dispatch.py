"""Sans-I/O Kafka request handling: one frame (without its size prefix) in, reply buffers out."""

from __future__ import annotations

import logging
import struct
import time

from pyggy.kafka_wire.context import CloseConnection, Connection, Message
from pyggy.kafka_wire.handlers import sasl
from pyggy.kafka_wire.handlers.api_versions import unsupported_version_body
from pyggy.kafka_wire.protocol.codec import decode_request, encode_response, encode_response_parts
from pyggy.kafka_wire.protocol.headers import (
    API_VERSIONS,
    encode_response_header,
    parse_request_header,
)
from pyggy.kafka_wire.registry import REGISTRY, Api

log = logging.getLogger(__name__)
_SIZE = struct.Struct(">i")
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
PRE_AUTH = frozenset({API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE})
__all__ = ["CloseConnection", "handle_frame"]


def _frame(head: bytes, parts: list) -> list:
    size = len(head) + sum(len(p) for p in parts)
    return [_SIZE.pack(size) + head, *parts]


async def handle_frame(conn: Connection, frame: memoryview) -> list | None:
    """Reply buffers for one request, or None when the request gets no reply (acks=0)."""
    if conn.sasl == sasl.V0_TOKEN:  # after SaslHandshake v0: a bare token, no header
        return await sasl.raw_token(conn, frame)
    header, pos = parse_request_header(frame)
    key, version, corr = header.api_key, header.api_version, header.correlation_id
    if header.client_id is not None:
        conn.client_id = header.client_id
    api = REGISTRY.get(key)
    if api is None or not api.min_version <= version <= api.max_version:
        if key == API_VERSIONS:  # answered with a v0 body and the supported ranges
            head = encode_response_header(API_VERSIONS, 0, corr)
            return _frame(head, [encode_response(API_VERSIONS, 0, unsupported_version_body())])
        raise CloseConnection(f"unsupported api {key} v{version}")
    if key not in PRE_AUTH:  # authenticated if required, session alive (KIP-368)
        sasl.check_session(conn, api.name)
    elif conn.sasl == sasl.V1_TOKEN and key == SASL_HANDSHAKE:
        raise CloseConnection("SaslHandshake during a SASL exchange")
    conn.api_key = key  # for kafka_wire.authorizer
    if (key, version) not in conn.apis_used:  # debug log: the versions each client picks
        conn.apis_used.add((key, version))
        log.debug("kafka client %r from %s uses %s v%d", conn.client_id, conn.host, api.name,
                  version)
    metrics = conn.server.metrics
    if metrics is None:
        return await _handle(conn, api, key, version, corr, frame, pos)
    start = time.perf_counter()
    error = ""
    reply = None
    try:
        reply = await _handle(conn, api, key, version, corr, frame, pos)
        return reply
    except BaseException as e:
        error = type(e).__name__
        raise
    finally:  # pyggy/metrics.py: per-API count, latency, bytes
        metrics.request("kafka", api.name, time.perf_counter() - start, error,
                        len(frame), sum(len(p) for p in reply) if reply else 0)


async def _handle(conn: Connection, api: Api, key: int, version: int, corr: int, frame: memoryview,
                  pos: int) -> list | None:
    request = decode_request(key, version, frame[pos:])
    telemetry = conn.server.telemetry
    if telemetry is not None:  # a span named kafka.<Api> (pyggy/telemetry.py)
        response = await telemetry.kafka_request(
            conn, api, version, request, lambda: _call(api, conn, request, version))
    elif api.is_async:
        response = await api.handler(conn, request, version)
    else:
        response = api.handler(conn, request, version)
    if response is None:
        return None
    return _frame(encode_response_header(key, version, corr),
                  encode_response_parts(key, version, response))


async def _call(api: Api, conn: Connection, request: Message, version: int) -> Message | None:
    if api.is_async:
        return await api.handler(conn, request, version)
    return api.handler(conn, request, version)
