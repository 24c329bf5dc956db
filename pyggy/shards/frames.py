"""The inter-shard frame codec (sans-I/O): what shards send one another over their channel.

    length u32 | kind u8 | request id u32 | meta length u32 | meta (JSON object) | payload

`length` counts everything after itself. The meta is a small JSON object (an operation's
arguments or result: ids, offsets, error codes — one per request, never per message); the
payload is a batch or read result carried as it is stored, never re-encoded. `parse` refuses a
frame that is short, oversized or whose meta is not a JSON object with FrameError: the channel
then closes, and a shard whose channel to another closes exits (docs/sharding.md).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

HEAD = struct.Struct(">IBII")  # length, kind, request id, meta length
LENGTH = struct.Struct(">I")
# a frame carries at most one fetch/poll result or one produced batch, and those are bounded
# far below this by the doors' own frame limits (tcp/kafka max_frame_size, POLL_MAX_BYTES)
MAX_FRAME = 1 << 30
MAX_META = 1 << 20

REQUEST, REPLY, APPLY = 1, 2, 3
KINDS = frozenset({REQUEST, REPLY, APPLY})

Buffer = bytes | bytearray | memoryview


class FrameError(ValueError):
    """A malformed inter-shard frame."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: int
    request_id: int
    meta: dict[str, Any]
    payload: memoryview


def encode(kind: int, request_id: int, meta: dict[str, Any], payload: Buffer = b""
           ) -> tuple[bytes, Buffer]:
    """(header with meta, payload): written one after the other, the payload uncopied."""
    return head(kind, request_id, meta, len(payload)), payload


def head(kind: int, request_id: int, meta: dict[str, Any], payload_size: int) -> bytes:
    """The header and meta of a frame whose payload (written after it, in as many pieces as
    it comes in) is `payload_size` bytes."""
    body = json.dumps(meta, separators=(",", ":")).encode()
    length = HEAD.size - LENGTH.size + len(body) + payload_size
    if len(body) > MAX_META or length > MAX_FRAME:
        raise FrameError(f"frame of {length} bytes (meta {len(body)}) is too large")
    return HEAD.pack(length, kind, request_id, len(body)) + body


def frame_length(prefix: bytes) -> int:
    """The length of the frame whose first 4 bytes are `prefix`; FrameError if too large."""
    (length,) = LENGTH.unpack(prefix)
    if not HEAD.size - LENGTH.size <= length <= MAX_FRAME:
        raise FrameError(f"frame length {length} out of range")
    return length


def parse(body: Buffer) -> Frame:
    """One frame from the `frame_length` bytes after its length prefix."""
    view = memoryview(body)
    if len(view) < HEAD.size - LENGTH.size:
        raise FrameError("short frame")
    kind, request_id, meta_len = struct.unpack_from(">BII", view)
    if kind not in KINDS:
        raise FrameError(f"unknown frame kind {kind}")
    start = HEAD.size - LENGTH.size
    if meta_len > MAX_META or start + meta_len > len(view):
        raise FrameError(f"meta length {meta_len} out of range")
    try:
        meta = json.loads(bytes(view[start:start + meta_len]))
    except (UnicodeDecodeError, ValueError) as e:
        raise FrameError(f"bad meta: {e}") from None
    if not isinstance(meta, dict):
        raise FrameError("meta is not an object")
    return Frame(kind, request_id, meta, view[start + meta_len:])
