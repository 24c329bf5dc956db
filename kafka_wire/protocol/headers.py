"""Kafka framing and request/response headers (the Kafka protocol guide,
https://kafka.apache.org/protocol#protocol_messages; header v2 and tag buffers: KIP-482).

A frame is ``INT32 size`` + ``size`` bytes of message; a request message is a header then the
body. Request header v1 = api_key, api_version, correlation_id, client_id (INT16-length nullable
string, never compact); v2 adds a tag buffer and is used iff the API version is flexible.
Response header v0 = correlation_id; v1 adds a tag buffer iff flexible — except ApiVersions,
whose response header is always v0.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from .errors import FrameError, KafkaDecodeError
from .primitives import Buffer, Input, Output, skip_tags

API_VERSIONS = 18
_SIZE = struct.Struct(">i")
_HEAD = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length
_CORR = struct.Struct(">i")


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    header_version: int


def frame_length(buf: Buffer, max_size: int, offset: int = 0) -> int:
    """Length of the complete frame at ``offset`` (4 + size), or 0 while it is incomplete.

    Raises `FrameError` for a negative size or one above ``max_size`` as soon as the 4 size
    bytes are there, before any of the body is waited for.
    """
    if len(buf) - offset < 4:
        return 0
    size = _SIZE.unpack_from(buf, offset)[0]
    if size < 0 or size > max_size:
        raise FrameError(f"frame size {size} outside 0..{max_size}")
    return size + 4 if len(buf) - offset >= size + 4 else 0


# `.codec` (construct, the schemas) is imported where a header's version or a body needs it,
# at the first request, not with the frame reader a listener starts with (protocol/__init__.py)


def request_header_version(api_key: int, api_version: int) -> int:
    from .codec import is_flexible

    return 2 if is_flexible(api_key, api_version) else 1


def response_header_version(api_key: int, api_version: int) -> int:
    if api_key == API_VERSIONS:
        return 0
    from .codec import is_flexible

    return 1 if is_flexible(api_key, api_version) else 0


def parse_request_header(frame: Buffer) -> tuple[RequestHeader, int]:
    """Parse the header of a request message (the frame without its size prefix).

    Returns the header and the offset of the body in ``frame``. An unknown API key is read as
    header v1 (its body is never parsed: the connection is closed or, for ApiVersions, a v0
    body answers).
    """
    if len(frame) < _HEAD.size:
        raise KafkaDecodeError(f"request header truncated ({len(frame)} bytes)")
    api_key, api_version, correlation_id, n = _HEAD.unpack_from(frame, 0)
    pos = _HEAD.size
    client_id = None
    if n >= 0:
        if pos + n > len(frame):
            raise KafkaDecodeError("request header: client_id truncated")
        try:
            client_id = str(memoryview(frame)[pos : pos + n], "utf-8")
        except UnicodeDecodeError:
            raise KafkaDecodeError("request header: client_id is not UTF-8") from None
        pos += n
    version = request_header_version(api_key, api_version)
    if version == 2:
        if pos < len(frame) and frame[pos] == 0:  # the usual empty tag buffer
            pos += 1
        else:
            io = Input(frame, pos)
            skip_tags(io)
            pos = io.pos
    return RequestHeader(api_key, api_version, correlation_id, client_id, version), pos


def encode_request_header(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None
) -> bytes:
    head = _HEAD.pack(api_key, api_version, correlation_id, -1)
    if client_id is not None:
        raw = client_id.encode()
        head = head[:-2] + struct.pack(">h", len(raw)) + raw
    return head + b"\x00" if request_header_version(api_key, api_version) == 2 else head


def encode_response_header(api_key: int, api_version: int, correlation_id: int) -> bytes:
    head = _CORR.pack(correlation_id)
    return head + b"\x00" if response_header_version(api_key, api_version) == 1 else head


def parse_response_header(frame: Buffer, api_key: int, api_version: int) -> tuple[int, int]:
    """``(correlation_id, body offset)`` of a response message (frame without size prefix)."""
    if len(frame) < 4:
        raise KafkaDecodeError("response header truncated")
    correlation_id = _CORR.unpack_from(frame, 0)[0]
    if response_header_version(api_key, api_version) == 0:
        return correlation_id, 4
    io = Input(frame, 4)
    skip_tags(io)
    return correlation_id, io.pos


def response_frame(
    api_key: int, api_version: int, correlation_id: int, value: Any
) -> list[bytes | memoryview]:
    """A whole response frame as chunks for ``transport.writelines`` (RECORDS not copied)."""
    from .codec import codec

    body = codec(api_key, api_version, "response").encode_parts(value)
    head = encode_response_header(api_key, api_version, correlation_id)
    size = len(head) + body.size()
    return [_SIZE.pack(size) + head, *body.coalesce()]


def request_frame(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None, value: Any
) -> bytes:
    """A whole request frame (size prefix, header v1/v2, body) — for clients and tests."""
    from .codec import codec

    body: Output = codec(api_key, api_version, "request").encode_parts(value)
    head = encode_request_header(api_key, api_version, correlation_id, client_id)
    return b"".join([_SIZE.pack(len(head) + body.size()), head, *body])
