"""Replica messages: a fixed 256-byte header (+ body), sealed by checksums, and a bounded decoder.

The layout follows Iggy's replica frame (a 128-byte common part, then a 128-byte per-command
area); 128-bit fields (checksums, cluster, client ids, nonces) travel as 16 raw bytes.

| offset | size | field |
|---:|---:|---|
| 0 | 16 | checksum: xxh3-128 of header bytes 16..256 (so it covers `checksum_body`) |
| 16 | 16 | checksum_body: xxh3-128 of the body |
| 32 | 16 | cluster id |
| 48 | 4 | size: header + body |
| 52 | 4 | view (for a Prepare: the view it was prepared in; else the sender's view) |
| 56 | 4 | release |
| 60 | 1 | command |
| 61 | 1 | replica (sender; 0 for client messages) |
| 62 | 66 | reserved, zero |
| 128 | 128 | per-command fields (`FIELDS` below), zero padded |

A Prepare's checksum is its identity: DoViewChange/StartView bodies carry the 256-byte headers
of prepares, and `parent` chains each prepare to the one before it.
"""

from __future__ import annotations

import struct
from enum import IntEnum

import xxhash

HEADER_SIZE = 256
ZERO16 = bytes(16)
_digest = xxhash.xxh3_128_digest
_COMMON = struct.Struct("<16s16s16sIIIBB")
_RESERVED = bytes(66)


class Command(IntEnum):
    PING = 1  # the replica bus's keepalive (cluster/bus.py); never reaches a replica
    REQUEST = 5
    PREPARE = 6
    PREPARE_OK = 7
    REPLY = 8
    COMMIT = 9
    START_VIEW_CHANGE = 10
    DO_VIEW_CHANGE = 11
    START_VIEW = 12
    EVICTION = 13
    REQUEST_START_VIEW = 17
    REQUEST_PREPARES = 18
    REPAIR_PREPARE = 19
    RANGE_EVICTED = 21
    REQUEST_SNAPSHOT = 24
    SNAPSHOT_CHUNK = 25
    REQUEST_SEGMENT = 26
    SEGMENT_CHUNK = 27


C = Command
# Per-command fields: (name, struct code) in order from offset 128; "16s" = 128-bit value.
FIELDS: dict[int, tuple[tuple[str, str], ...]] = {
    C.PING: (),
    C.REQUEST: (("client", "16s"), ("session", "Q"), ("request", "Q"), ("operation", "B"),
                ("_p", "7x"), ("group", "Q")),
    C.PREPARE: (("client", "16s"), ("parent", "16s"), ("session", "Q"), ("op", "Q"),
                ("commit", "Q"), ("timestamp", "Q"), ("request", "Q"), ("operation", "B"),
                ("_p", "7x"), ("group", "Q")),
    C.PREPARE_OK: (("parent", "16s"), ("prepare_checksum", "16s"), ("op", "Q"), ("commit", "Q"),
                   ("group", "Q")),
    C.REPLY: (("client", "16s"), ("session", "Q"), ("request", "Q"), ("op", "Q"),
              ("commit", "Q"), ("operation", "B"), ("_p", "7x"), ("group", "Q")),
    C.COMMIT: (("commit_checksum", "16s"), ("commit", "Q"), ("group", "Q")),
    C.START_VIEW_CHANGE: (("group", "Q"), ("flags", "B")),
    C.DO_VIEW_CHANGE: (("op", "Q"), ("commit", "Q"), ("group", "Q"), ("log_view", "I"),
                       ("_p", "4x"), ("present", "16s"), ("nack", "16s")),
    C.START_VIEW: (("op", "Q"), ("commit", "Q"), ("group", "Q"), ("nonce", "16s")),
    C.EVICTION: (("client", "16s"), ("session", "Q"), ("group", "Q")),
    C.REQUEST_START_VIEW: (("group", "Q"), ("nonce", "16s")),
    C.REQUEST_PREPARES: (("from_op", "Q"), ("to_op", "Q"), ("group", "Q"),
                         ("prepare_checksum", "16s")),
    C.REPAIR_PREPARE: (("group", "Q"), ("flags", "B")),
    C.RANGE_EVICTED: (("group", "Q"), ("op", "Q"), ("checkpoint_op", "Q")),
    C.REQUEST_SNAPSHOT: (("group", "Q"), ("offset", "Q"), ("checkpoint_op", "Q")),
    C.SNAPSHOT_CHUNK: (("group", "Q"), ("offset", "Q"), ("checkpoint_op", "Q"),
                       ("total_size", "Q"), ("snapshot_checksum", "16s")),
    # Partition state transfer (carried by the cluster's driver, not the replica): index entries
    # [entry, entry + entries) of the segment starting at offset `segment`, as of a checkpoint.
    C.REQUEST_SEGMENT: (("group", "Q"), ("checkpoint_op", "Q"), ("segment", "Q"),
                        ("entry", "Q"), ("entries", "Q")),
    # flags: 0 = the body holds `entries` index entries then their batches; 1 = gone here.
    # The metadata group's bundle uses the same pair (cluster/metadata_transfer.py): segment 0
    # asks for the manifest (flags 2 in the answer), else segment = its op, entry = the chunk.
    C.SEGMENT_CHUNK: (("group", "Q"), ("checkpoint_op", "Q"), ("segment", "Q"),
                      ("entry", "Q"), ("entries", "Q"), ("flags", "B")),
}
_STRUCTS: dict[int, tuple[struct.Struct, tuple[str, ...]]] = {}
for _cmd, _fields in FIELDS.items():
    _st = struct.Struct("<" + "".join(code for _, code in _fields))
    assert _st.size <= 128, _cmd
    _STRUCTS[_cmd] = (_st, tuple(n for n, code in _fields if not code.endswith("x")))
_PAD = {cmd: bytes(128 - st.size) for cmd, (st, _) in _STRUCTS.items()}

# RepairPrepare flags: why the sender vouches for the prepare.
COMMITTED = 1  # the sender has executed this op: it is committed
FROM_PRIMARY = 2  # the sender is the primary of the (outer) view: it is in that view's log
# StartViewChange flags: 0 = the sender is in view change status for the message's view;
# EXIT = a vote, from normal status, to leave the message's view (its primary went silent).
EXIT = 1
# DoViewChange / StartView bodies: at most this many 256-byte headers.
HEADERS_MAX = 128


class DecodeError(ValueError):
    """Bytes that are not a well-formed, intact message (the connection should be dropped)."""


class Message:
    """One message: header fields as attributes (absent fields read as 0/zero bytes) + body."""

    checksum = checksum_body = cluster = ZERO16
    client = parent = prepare_checksum = commit_checksum = nonce = present = nack = ZERO16
    snapshot_checksum = ZERO16
    size = view = release = command = replica = 0
    session = request = op = commit = timestamp = operation = group = log_view = 0
    from_op = to_op = flags = checkpoint_op = offset = total_size = 0
    segment = entry = entries = 0
    body = b""
    raw: bytes | None = None
    # set by decoding only: the prepare a RepairPrepare carries, and the bytes of a standalone
    # prepare header (as in DoViewChange / StartView bodies)
    inner: Message
    _header: bytes

    def __init__(self, command: int, **fields: object) -> None:
        self.command = command
        for name, value in fields.items():
            setattr(self, name, value)

    def __repr__(self) -> str:
        names = ("view", "replica") + _STRUCTS[self.command][1]
        text = ", ".join(f"{n}={getattr(self, n)!r}" for n in names if n != "body")
        return f"{Command(self.command).name}({text}, body={len(self.body)}B)"

    @property
    def header_bytes(self) -> bytes:
        return encode(self)[:HEADER_SIZE]


def encode(m: Message) -> bytes:
    """Seal `m` (size, checksums) and return its bytes; cached in `m.raw` (do not mutate after)."""
    if m.raw is not None:
        return m.raw
    body = m.body
    m.size = HEADER_SIZE + len(body)
    m.checksum_body = _digest(body)
    st, names = _STRUCTS[m.command]
    tail = _COMMON.pack(ZERO16, m.checksum_body, m.cluster, m.size, m.view, m.release, m.command,
                        m.replica)[16:] + _RESERVED
    tail += st.pack(*[getattr(m, n) for n in names]) + _PAD[m.command]
    m.checksum = _digest(tail)
    m.raw = raw = m.checksum + tail + body
    return raw


def decode(data: bytes | bytearray | memoryview, size_max: int) -> Message:
    """Parse and verify one message; raise DecodeError on anything malformed or corrupt."""
    n = len(data)
    if n < HEADER_SIZE:
        raise DecodeError(f"{n} bytes is shorter than a header")
    data = bytes(data)
    return _decode_header(data, data[HEADER_SIZE:], size_max)


def decode_header(raw_header: bytes) -> Message:
    """Parse a standalone 256-byte Prepare header (as in DoViewChange/StartView bodies)."""
    if len(raw_header) != HEADER_SIZE:
        raise DecodeError("a header is 256 bytes")
    m = _decode_header(raw_header, None, HEADER_SIZE + (1 << 31))
    if m.command != C.PREPARE:
        raise DecodeError("header of a non-prepare in a header list")
    return m


def _decode_header(data: bytes, body: bytes | None, size_max: int) -> Message:
    if _digest(memoryview(data)[16:HEADER_SIZE]) != data[:16]:
        raise DecodeError("header checksum mismatch")
    checksum, checksum_body, cluster, size, view, release, command, replica = _COMMON.unpack_from(
        data)
    if data[62:128] != _RESERVED:
        raise DecodeError("reserved header bytes are not zero")
    entry = _STRUCTS.get(command)
    if entry is None:
        raise DecodeError(f"unknown command {command}")
    if size > size_max or size < HEADER_SIZE:
        raise DecodeError(f"size {size} out of range")
    if body is not None:
        if size != len(data):
            raise DecodeError(f"size field {size} but {len(data)} bytes")
        if _digest(body) != checksum_body:
            raise DecodeError("body checksum mismatch")
    st, names = entry
    if data[128 + st.size:HEADER_SIZE] != _PAD[command]:
        raise DecodeError("per-command padding is not zero")
    m = Message.__new__(Message)
    m.checksum, m.checksum_body, m.cluster, m.size = checksum, checksum_body, cluster, size
    m.view, m.release, m.command, m.replica = view, release, command, replica
    for name, value in zip(names, st.unpack_from(data, 128), strict=True):
        setattr(m, name, value)
    if body is not None:
        m.body = body
        m.raw = data
    else:
        m.raw = None
        m._header = data
    _validate(m, body)
    return m


def _validate(m: Message, body: bytes | None) -> None:
    cmd = m.command
    if cmd in (C.DO_VIEW_CHANGE, C.START_VIEW) and body is not None:
        if len(body) % HEADER_SIZE or len(body) // HEADER_SIZE > HEADERS_MAX:
            raise DecodeError("header list is not a whole number of headers (max 128)")
    elif cmd == C.REPAIR_PREPARE and body is not None:
        inner = decode(body, len(body))
        if inner.command != C.PREPARE:
            raise DecodeError("repair carries a non-prepare")
        m.inner = inner
    elif cmd == C.REQUEST_PREPARES and (m.from_op == 0 or m.from_op > m.to_op):
        raise DecodeError("empty or zero repair range")
    elif cmd == C.PREPARE and m.op == 0 and body is not None:
        raise DecodeError("op 0 is the root, never prepared")
    elif cmd == C.START_VIEW_CHANGE and m.flags > EXIT:
        raise DecodeError(f"unknown StartViewChange flags {m.flags}")


def header_list(m: Message) -> list[Message]:
    """The Prepare headers of a DoViewChange / StartView body (validated on decode)."""
    body = m.body
    return [decode_header(body[i:i + HEADER_SIZE]) for i in range(0, len(body), HEADER_SIZE)]


def prepare_header(p: Message) -> bytes:
    """The 256 header bytes of a decoded or encoded prepare."""
    header = getattr(p, "_header", None)
    return header if header is not None and p.raw is None else encode(p)[:HEADER_SIZE]


def root_prepare(cluster: bytes, group: int) -> Message:
    """Op 0: the fixed, never-sent prepare every group's hash chain starts from."""
    m = Message(C.PREPARE, cluster=cluster, group=group, op=0)
    encode(m)
    return m
