"""Framing: VSR 256-byte headers, result sections and evictions (https://iggy.apache.org/docs/0.9/binary-protocol/framing/),
and the classic `[len][code]` frames of server 0.8 (https://iggy.apache.org/docs/0.8/binary-protocol/)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Literal

import xxhash
from pyggy.core.errors import ErrorCode
from pyggy.native_wire.codec.codes import (
    CODE_FOR_OPERATION,
    HeaderCommand,
    Operation,
)
from pyggy.native_wire.codec.reader import WireError

HEADER_SIZE = 256
SIZE_FIELD_OFFSET = 48
MAX_MESSAGE_SIZE = 64 * 1024 * 1024
CLASSIC_MIN_LENGTH = 4  # the length field counts the u32 code

_MASK64 = (1 << 64) - 1
_U32 = struct.Struct("<I")
_RESULT_ERROR = struct.Struct("<III")
# RequestHeader: size@48, command@60, client@128, request_checksum@144, timestamp@160,
# request@168, operation@176, session@184, user_id@192, reserved[0..4]@196 (NR command code).
_REQUEST = struct.Struct("<48xI8xB67xQQQQQQB7xQII56x")
# ReplyHeader: size@48, command@60, request_checksum@128, client@160, op@176, timestamp@192,
# request@200, operation@208, status@216.
_REPLY = struct.Struct("<48xI8xB67xQQ16xQQQ8xQQB7xI36x")
# EvictionHeader: size@48, command@60, client@128, versions@144/148, reason@255.
_EVICTION = struct.Struct("<48xI8xB67xQQII103xB")
_CLASSIC_RESPONSE = struct.Struct("<II")
assert _REQUEST.size == _REPLY.size == _EVICTION.size == HEADER_SIZE


@dataclass(slots=True)
class RequestHeader:
    """The fields of a client RequestHeader a server acts on."""

    client: int
    request_checksum: int
    timestamp: int
    request: int
    operation: int
    session: int
    user_id: int
    command_code: int  # bytes 196..200 for NonReplicated; else derived from the operation
    size: int
    command: int

    @property
    def body_size(self) -> int:
        return self.size - HEADER_SIZE


def parse_request_header(buf: bytes | bytearray | memoryview) -> RequestHeader:
    """Decode and validate a request header (RequestHeader, framing page) from the first
    256 bytes of ``buf``.

    Checks: command byte 5, size ≥ 256, client ≠ 0, operation ≠ 0, Register ⇒ session = 0
    and request = 0, other non-NonReplicated ops ⇒ session > 0 and request > 0. Unknown
    operation numbers are not refused here (the dispatcher answers them).
    """
    if len(buf) < HEADER_SIZE:
        raise WireError(ErrorCode.INVALID_FORMAT, "short request header")
    (size, command, c_lo, c_hi, k_lo, k_hi, timestamp, request, operation, session, user_id,
     code) = _REQUEST.unpack_from(buf, 0)
    if command != HeaderCommand.REQUEST:
        raise WireError(ErrorCode.INVALID_COMMAND, f"header command {command} is not Request")
    if size < HEADER_SIZE:
        raise WireError(ErrorCode.INVALID_FORMAT, f"frame size {size} < {HEADER_SIZE}")
    client = c_lo | (c_hi << 64)
    if client == 0:
        raise WireError(ErrorCode.INVALID_FORMAT, "client id must be non-zero")
    if operation == Operation.RESERVED:
        raise WireError(ErrorCode.INVALID_COMMAND, "operation 0 is reserved")
    if operation == Operation.REGISTER:
        if session != 0 or request != 0:
            raise WireError(ErrorCode.INVALID_FORMAT, "register: session and request must be 0")
    elif operation != Operation.NON_REPLICATED and (session == 0 or request == 0):
        raise WireError(ErrorCode.INVALID_FORMAT, "session and request must be > 0")
    if operation != Operation.NON_REPLICATED:
        code = CODE_FOR_OPERATION.get(operation, 0)
    return RequestHeader(
        client, k_lo | (k_hi << 64), timestamp, request, operation, session, user_id, code,
        size, command,
    )


def verify_request_checksum(header: RequestHeader, body: bytes | bytearray | memoryview) -> None:
    """A non-zero ``request_checksum`` must equal xxh3_64(body); else ``WireError(4)``."""
    stamped = header.request_checksum
    if stamped and stamped != xxhash.xxh3_64_intdigest(body):
        raise WireError(ErrorCode.INVALID_FORMAT, "request checksum mismatch")


def build_reply_header(
    header: RequestHeader, status: int, body_len: int, session_op: int
) -> bytes:
    """A 256-byte ReplyHeader echoing the request's identity fields (ReplyHeader, framing page)."""
    k = header.request_checksum
    c = header.client
    return _REPLY.pack(
        HEADER_SIZE + body_len, HeaderCommand.REPLY, k & _MASK64, k >> 64, c & _MASK64,
        c >> 64, session_op, header.timestamp, header.request, header.operation, status,
    )


def build_reply(
    header: RequestHeader,
    status: int = 0,
    body: bytes | bytearray | memoryview = b"",
    session_op: int = 0,
) -> bytes:
    """Header + body in one buffer; a non-zero ``status`` always goes with an empty body."""
    if status:
        body = b""
    return build_reply_header(header, status, len(body), session_op) + body


def build_eviction(
    client: int, reason: int, server_version: int = 0, server_version_min: int = 0
) -> bytes:
    """A header-only EvictionHeader (framing page); versions only matter for reason 14."""
    return _EVICTION.pack(
        HEADER_SIZE, HeaderCommand.EVICTION, client & _MASK64, client >> 64, server_version,
        server_version_min, reason,
    )


# ---------------------------------------------------------------- result section

RESULT_OK = b"\x00\x00\x00\x00"


def result_ok(payload: bytes | bytearray | memoryview = b"") -> bytes:
    """Success: ``[count=0]`` then the typed payload."""
    return RESULT_OK + payload


def result_error(code: int) -> bytes:
    """Committed business rejection: ``[1][index 0][code]``, no payload."""
    return _RESULT_ERROR.pack(1, 0, code)


def is_result_framed(operation: int) -> bool:
    """Metadata ops (64..149) and Store/DeleteConsumerOffset (161, 162).

    A non-empty Register reply is result-framed too; the caller handles that case.
    """
    return 64 <= operation <= 149 or operation == 161 or operation == 162


# ---------------------------------------------------------------- protocol detection / splitting


def detect_protocol(first4: bytes | bytearray | memoryview) -> Literal["vsr", "classic"]:
    """VSR headers start with checksum 0, classic frames with ``length ≥ 4``."""
    if len(first4) < 4:
        raise WireError(ErrorCode.INVALID_FORMAT, "need 4 bytes to detect the protocol")
    return "vsr" if _U32.unpack_from(first4, 0)[0] == 0 else "classic"


def vsr_frame_length(buf: bytes | bytearray | memoryview, max_size: int = MAX_MESSAGE_SIZE) -> int:
    """Length of the complete VSR frame at the start of ``buf``, or 0 if more bytes are needed.

    The declared size is checked as soon as it is readable, so an oversized frame is refused
    before its body arrives.
    """
    if len(buf) < SIZE_FIELD_OFFSET + 4:
        return 0
    size = _U32.unpack_from(buf, SIZE_FIELD_OFFSET)[0]
    if size < HEADER_SIZE:
        raise WireError(ErrorCode.INVALID_FORMAT, f"frame size {size} < {HEADER_SIZE}")
    if size > max_size:
        raise WireError(ErrorCode.INVALID_FORMAT, f"frame size {size} > {max_size}")
    return size if len(buf) >= size else 0


def classic_frame_length(
    buf: bytes | bytearray | memoryview, max_size: int = MAX_MESSAGE_SIZE
) -> int:
    """Length of the complete classic request ``[len][code][payload]`` in ``buf``, or 0."""
    if len(buf) < 4:
        return 0
    length = _U32.unpack_from(buf, 0)[0]
    if length < CLASSIC_MIN_LENGTH:
        raise WireError(ErrorCode.INVALID_FORMAT, f"classic length {length} < 4")
    total = 4 + length
    if total > max_size:
        raise WireError(ErrorCode.INVALID_FORMAT, f"classic frame {total} > {max_size}")
    return total if len(buf) >= total else 0


def frame_length(
    buf: bytes | bytearray | memoryview,
    protocol: Literal["vsr", "classic"],
    max_size: int = MAX_MESSAGE_SIZE,
) -> int:
    """Dispatch to :func:`vsr_frame_length` or :func:`classic_frame_length`."""
    if protocol == "vsr":
        return vsr_frame_length(buf, max_size)
    return classic_frame_length(buf, max_size)


# ---------------------------------------------------------------- classic framing (server 0.8)


def parse_classic_request(frame: bytes | bytearray | memoryview) -> tuple[int, memoryview]:
    """``[length u32 = 4 + payload][code u32][payload]`` → (code, payload view)."""
    mv = memoryview(frame)
    if len(mv) < 8:
        raise WireError(ErrorCode.INVALID_FORMAT, "short classic frame")
    length, code = _CLASSIC_RESPONSE.unpack_from(mv, 0)
    if length < CLASSIC_MIN_LENGTH or 4 + length != len(mv):
        raise WireError(ErrorCode.INVALID_FORMAT, "classic frame length mismatch")
    return code, mv[8:]


def build_classic_request(code: int, payload: bytes | bytearray | memoryview = b"") -> bytes:
    return _CLASSIC_RESPONSE.pack(4 + len(payload), code) + payload


def build_classic_response(status: int = 0, payload: bytes | bytearray | memoryview = b"") -> bytes:
    """``[status u32][length u32][payload]``; an error status always has length 0."""
    if status:
        return _CLASSIC_RESPONSE.pack(status, 0)
    return _CLASSIC_RESPONSE.pack(0, len(payload)) + payload


def build_classic_response_header(status: int, payload_len: int) -> bytes:
    """The 8-byte classic response prefix alone (for scatter writes)."""
    return _CLASSIC_RESPONSE.pack(status, 0 if status else payload_len)


def build_request(code: int, body: bytes | bytearray | memoryview = b"", *, client: int,
                  request: int = 1, session: int = 0, operation: int | None = None,
                  checksum: bool = False) -> bytes:
    """A client RequestHeader + body, as the 0.9 SDK builds it (for tests and the bench).

    `operation` defaults to the one a 0.9 client sends for `code` (NonReplicated otherwise).
    """
    from pyggy.native_wire.codec.codes import OPERATION_FOR_CODE

    op = OPERATION_FOR_CODE.get(code, Operation.NON_REPLICATED) if operation is None \
        else operation
    k = xxhash.xxh3_64_intdigest(body) if checksum else 0
    header = _REQUEST.pack(HEADER_SIZE + len(body), HeaderCommand.REQUEST, client & _MASK64,
                           client >> 64, k, 0, 0, request, op, session, 0,
                           code if op == Operation.NON_REPLICATED else 0)
    return header + body


def parse_reply_header(buf: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(command byte, size, status) of a reply or eviction header (client side)."""
    size, command, *_rest, status = _REPLY.unpack_from(buf, 0)
    return command, size, status if command == HeaderCommand.REPLY else buf[255]
