"""Shared encodings (https://iggy.apache.org/docs/0.9/binary-protocol/encodings/):
identifiers, names, consumers, TLV blocks, permissions."""

from __future__ import annotations

import struct

from pyggy.core.errors import ErrorCode
from pyggy.core.model import (
    GlobalPermissions,
    Permissions,
    StreamPermissions,
    TopicPermissions,
)
from pyggy.native_wire.codec.codes import (
    CONSUMER,
    CONSUMER_GROUP,
    PARTITIONING_BALANCED,
    PARTITIONING_MESSAGES_KEY,
    PARTITIONING_PARTITION_ID,
    HeaderKind,
)
from pyggy.native_wire.codec.reader import Reader, WireError, decode_utf8

_U32 = struct.Struct("<I")
_ID_NUMERIC = struct.Struct("<BBI")
_OPT_PARTITION = struct.Struct("<BI")
_STRATEGY = struct.Struct("<BQ")
# what follows a PollMessages body's identifiers: partition flag + id, strategy kind + value,
# count, auto_commit (decode_poll_request)
_POLL_TAIL = struct.Struct("<BIBQIB")
_POLL_TAIL_SIZE = _POLL_TAIL.size
_TLV_HEAD = struct.Struct("<BI")
_BOOLS10 = struct.Struct("<10B")
_STREAM_PERMS = struct.Struct("<I6B")
_TOPIC_PERMS = struct.Struct("<I4B")

MAX_NAME = 255
MAX_TLV_FIELD = 255
MAX_KNOWN_KIND = 15
MAX_OPTIONS = 1024
# stream + topic entries one permissions block may hold: it is kept in memory and in the state
# log, so a 64 MiB body must not become millions of objects
MAX_PERMISSION_ENTRIES = 100_000
MAX_OPTIONS_BYTES = 100_000
MAX_USER_HEADERS_SIZE = 100_000

# ---------------------------------------------------------------- names and identifiers


def encode_name(name: str) -> bytes:
    """``u8 len (1..255)`` + UTF-8."""
    raw = name.encode()
    if not 0 < len(raw) <= MAX_NAME:
        raise WireError(ErrorCode.INVALID_FORMAT, f"name must be 1..255 bytes, got {len(raw)}")
    return bytes((len(raw),)) + raw


def decode_name(r: Reader) -> str:
    return r.name()


def decode_identifier(r: Reader) -> int | str:
    """Kind 1 numeric (len 4, u32) → int; kind 2 string (len 1..255) → str."""
    try:
        kind = r.u8()
        length = r.u8()
    except WireError:
        raise WireError(ErrorCode.INVALID_IDENTIFIER, "truncated identifier") from None
    if kind == 1:
        if length != 4:
            raise WireError(ErrorCode.INVALID_IDENTIFIER, "numeric identifier must be 4 bytes")
        if r.remaining() < 4:
            raise WireError(ErrorCode.INVALID_IDENTIFIER, "truncated identifier")
        return r.u32()
    if kind == 2:
        if length == 0 or r.remaining() < length:
            raise WireError(ErrorCode.INVALID_IDENTIFIER, "bad string identifier")
        return decode_utf8(r.bytes(length))
    raise WireError(ErrorCode.INVALID_IDENTIFIER, f"unknown identifier kind {kind}")


def encode_identifier(value: int | str) -> bytes:
    if isinstance(value, int):
        if not 0 <= value <= 0xFFFFFFFF:
            raise WireError(ErrorCode.INVALID_IDENTIFIER, "numeric identifier out of u32 range")
        return _ID_NUMERIC.pack(1, 4, value)
    raw = value.encode()
    if not 0 < len(raw) <= MAX_NAME:
        raise WireError(ErrorCode.INVALID_IDENTIFIER, "string identifier must be 1..255 bytes")
    return bytes((2, len(raw))) + raw


# ---------------------------------------------------------------- consumer, partition, strategy


def decode_consumer(r: Reader) -> tuple[int, int | str]:
    """``u8 kind`` (1 consumer, 2 consumer group) + Identifier."""
    kind = r.u8()
    if kind != CONSUMER and kind != CONSUMER_GROUP:
        raise WireError(ErrorCode.INVALID_FORMAT, f"unknown consumer kind {kind}")
    return kind, decode_identifier(r)


def encode_consumer(kind: int, ident: int | str) -> bytes:
    return bytes((kind,)) + encode_identifier(ident)


def decode_optional_partition(r: Reader) -> int | None:
    """``u8 flag + u32`` (always 5 bytes); the value counts only when flag == 1."""
    flag = r.u8()
    value = r.u32()
    return value if flag == 1 else None


def encode_optional_partition(partition_id: int | None) -> bytes:
    if partition_id is None:
        return _OPT_PARTITION.pack(0, 0)
    return _OPT_PARTITION.pack(1, partition_id)


def decode_partitioning(r: Reader) -> tuple[int, int | bytes | None]:
    """→ (1, None) balanced, (2, partition_id), (3, key bytes)."""
    kind = r.u8()
    length = r.u8()
    if kind == PARTITIONING_BALANCED:
        if length != 0:
            raise WireError(ErrorCode.INVALID_FORMAT, "balanced partitioning must have length 0")
        return kind, None
    if kind == PARTITIONING_PARTITION_ID:
        if length != 4:
            raise WireError(ErrorCode.INVALID_FORMAT, "partition id partitioning must be 4 bytes")
        return kind, r.u32()
    if kind == PARTITIONING_MESSAGES_KEY:
        if length == 0:
            raise WireError(ErrorCode.INVALID_FORMAT, "empty messages key")
        return kind, bytes(r.bytes(length))
    raise WireError(ErrorCode.INVALID_FORMAT, f"unknown partitioning kind {kind}")


def encode_partitioning(kind: int, value: int | bytes | None = None) -> bytes:
    if kind == PARTITIONING_BALANCED:
        return b"\x01\x00"
    if kind == PARTITIONING_PARTITION_ID:
        assert isinstance(value, int)
        return _ID_NUMERIC.pack(2, 4, value)
    if kind == PARTITIONING_MESSAGES_KEY:
        assert isinstance(value, bytes | bytearray | memoryview)
        key = bytes(value)
        if not 0 < len(key) <= 255:
            raise WireError(ErrorCode.INVALID_FORMAT, "messages key must be 1..255 bytes")
        return bytes((3, len(key))) + key
    raise WireError(ErrorCode.INVALID_FORMAT, f"unknown partitioning kind {kind}")


def decode_polling_strategy(r: Reader) -> tuple[int, int]:
    """9 bytes: ``u8 kind (1..5), u64 value``."""
    kind = r.u8()
    if not 1 <= kind <= 5:
        raise WireError(ErrorCode.INVALID_FORMAT, f"unknown polling strategy {kind}")
    return kind, r.u64()


PollRequest = tuple[int, int | str, int | str, int | str, int | None, int, int, int, bool]


# the consumer and the three identifiers of a body, by their bytes: a consumer polls with the
# same ones every time (`decode_poll_request`); a pure function of the bytes, so never stale
_POLL_HEADS: dict[bytes, tuple[int, int | str, int | str, int | str]] = {}
_POLL_HEADS_MAX = 256  # heads remembered at most (≤ 772 B each; then it starts over)


def decode_poll_request(r: Reader) -> PollRequest:
    """A whole PollMessages body: (consumer kind, consumer, stream, topic, partition or None,
    strategy kind, strategy value, count, auto_commit). A well-formed body is read in one
    pass of indexing and two unpacks, its head (consumer and identifiers) looked up by its
    bytes when seen before (every poll pays for this); any other goes field by field from
    the start, which names its error."""
    buf, pos, end = r.buf, r.pos, r.end
    tail = end - _POLL_TAIL_SIZE
    if tail > pos:
        key = bytes(buf[pos:tail])
        head = _POLL_HEADS.get(key)
        if head is None:
            head = _poll_head(buf, pos, tail)
            if head is not None:
                if len(_POLL_HEADS) >= _POLL_HEADS_MAX:
                    _POLL_HEADS.clear()
                _POLL_HEADS[key] = head
        if head is not None:
            flag, partition, strategy, value, count, auto_commit = \
                _POLL_TAIL.unpack_from(buf, tail)
            if 1 <= strategy <= 5:
                r.pos = end
                return (head[0], head[1], head[2], head[3],
                        partition if flag == 1 else None, strategy, value, count,
                        auto_commit == 1)
    return decode_poll_fields(r)


def _poll_head(buf: memoryview, pos: int, end: int
               ) -> tuple[int, int | str, int | str, int | str] | None:
    """A consumer kind and three well-formed identifiers filling buf[pos:end] exactly, else
    None (the caller decodes field by field)."""
    consumer_kind = buf[pos]
    if consumer_kind != CONSUMER and consumer_kind != CONSUMER_GROUP:
        return None
    ids: list[int | str] = []
    pos += 1
    while len(ids) < 3 and end - pos >= 2:
        kind, length = buf[pos], buf[pos + 1]
        if kind == 1 and length == 4 and end - pos >= 6:
            ids.append(_U32.unpack_from(buf, pos + 2)[0])
        elif kind == 2 and length and end - pos - 2 >= length:
            try:
                ids.append(str(buf[pos + 2 : pos + 2 + length], "utf-8"))
            except UnicodeDecodeError:
                return None
        else:
            return None
        pos += 2 + length
    if len(ids) != 3 or pos != end:
        return None
    return consumer_kind, ids[0], ids[1], ids[2]


def decode_poll_fields(r: Reader) -> PollRequest:
    """A PollMessages body field by field, as :func:`decode_poll_request` reads any body its
    one pass does not take (and the reference its tests compare that pass with)."""
    kind, ident = decode_consumer(r)
    sid, tid = decode_identifier(r), decode_identifier(r)
    partition_id = decode_optional_partition(r)
    strategy, value = decode_polling_strategy(r)
    count = r.u32()
    auto_commit = r.u8() == 1
    r.done()
    return kind, ident, sid, tid, partition_id, strategy, value, count, auto_commit


def encode_polling_strategy(kind: int, value: int = 0) -> bytes:
    return _STRATEGY.pack(kind, value)


# ---------------------------------------------------------------- TLV blocks

Tlv = tuple[int, bytes, int, bytes]  # (key_kind, key, value_kind, value)


def _check_kind(kind: int, strict: bool) -> None:
    if kind == 0 or (strict and kind > MAX_KNOWN_KIND):
        raise WireError(ErrorCode.INVALID_HEADER_KIND, f"invalid header kind {kind}")


def validate_tlv(buf: bytes | bytearray | memoryview, strict_kinds: bool = True) -> int:
    """Check a TLV block structurally and return its number of key/value pairs.

    Entries: ``u8 kind (1..15; any non-zero if not strict), u32 len (1..255), data``; the
    block must be consumed exactly and hold an even count. Allocates nothing.
    """
    end = len(buf)
    pos = 0
    count = 0
    unpack = _TLV_HEAD.unpack_from
    while pos < end:
        if end - pos < 5:
            raise WireError(ErrorCode.INVALID_FORMAT, "truncated TLV entry")
        kind, length = unpack(buf, pos)
        _check_kind(kind, strict_kinds)
        if length == 0 or length > MAX_TLV_FIELD:
            raise WireError(ErrorCode.INVALID_FORMAT, f"TLV field length {length} not in 1..255")
        pos += 5 + length
        if pos > end:
            raise WireError(ErrorCode.INVALID_FORMAT, "truncated TLV data")
        count += 1
    if count & 1:
        raise WireError(ErrorCode.INVALID_FORMAT, "odd number of TLV entries")
    return count >> 1


def decode_tlv(buf: bytes | bytearray | memoryview, strict_kinds: bool = True) -> list[Tlv]:
    """Validate and split a TLV block into (key_kind, key, value_kind, value) tuples."""
    validate_tlv(buf, strict_kinds)
    mv = memoryview(buf)
    out: list[Tlv] = []
    pos = 0
    end = len(mv)
    unpack = _TLV_HEAD.unpack_from
    while pos < end:
        kk, kl = unpack(mv, pos)
        key = bytes(mv[pos + 5 : pos + 5 + kl])
        pos += 5 + kl
        vk, vl = unpack(mv, pos)
        value = bytes(mv[pos + 5 : pos + 5 + vl])
        pos += 5 + vl
        out.append((kk, key, vk, value))
    return out


def encode_tlv(entries: list[Tlv] | tuple[Tlv, ...]) -> bytes:
    """Encode (key_kind, key, value_kind, value) pairs; lengths must be 1..255."""
    out = bytearray()
    pack = _TLV_HEAD.pack
    for kk, key, vk, value in entries:
        for kind, field in ((kk, key), (vk, value)):
            if not 0 < len(field) <= MAX_TLV_FIELD or kind == 0:
                raise WireError(ErrorCode.INVALID_FORMAT, "TLV field must be 1..255 bytes")
            out += pack(kind, len(field))
            out += field
    return bytes(out)


def validate_user_headers(buf: bytes | bytearray | memoryview) -> int:
    """A message's user headers: TLV, ≤ 100 000 bytes. Returns the pair count."""
    if len(buf) > MAX_USER_HEADERS_SIZE:
        raise WireError(ErrorCode.TOO_BIG_USER_HEADERS, "user headers too big")
    return validate_tlv(buf)


Option = tuple[str, int, bytes]  # (key, value_kind, value)


def decode_options(buf: bytes | bytearray | memoryview) -> list[Option]:
    """Options block (request form: to end of payload, no prefix).

    Keys must be String kind, valid UTF-8, unique; ≤ 1024 entries and ≤ 100 000 bytes.
    Returns (key, value_kind, value) in received order.
    """
    if len(buf) > MAX_OPTIONS_BYTES:
        raise WireError(ErrorCode.OPTIONS_BLOCK_TOO_LARGE, "options block too large")
    if not len(buf):
        return []
    if validate_tlv(buf) > MAX_OPTIONS:
        raise WireError(ErrorCode.OPTIONS_BLOCK_TOO_LARGE, "too many options")
    out: list[Option] = []
    seen: set[str] = set()
    for kk, key, vk, value in decode_tlv(buf):
        if kk != HeaderKind.STRING:
            raise WireError(ErrorCode.INVALID_FORMAT, "option key must be a String")
        name = decode_utf8(key)
        if name in seen:
            raise WireError(ErrorCode.INVALID_FORMAT, f"duplicate option key {name!r}")
        seen.add(name)
        out.append((name, vk, value))
    return out


def encode_options(options: list[Option] | tuple[Option, ...]) -> bytes:
    """Options TLV without the length prefix (request form)."""
    return encode_tlv([(HeaderKind.STRING, k.encode(), vk, v) for k, vk, v in options])


def encode_options_block(options: list[Option] | tuple[Option, ...] = ()) -> bytes:
    """Response form: ``u32 len`` + options TLV."""
    if not options:
        return b"\x00\x00\x00\x00"
    body = encode_options(options)
    return _U32.pack(len(body)) + body


def decode_options_block(r: Reader) -> list[Option]:
    """Response form: ``u32 len`` + options TLV."""
    return decode_options(r.long_bytes())


# ---------------------------------------------------------------- permissions

_GLOBAL_FIELDS = (
    "manage_servers", "read_servers", "manage_users", "read_users", "manage_streams",
    "read_streams", "manage_topics", "read_topics", "poll_messages", "send_messages",
)


def decode_permissions(r: Reader) -> Permissions:
    """Permissions layout of the encodings page (linked lists with ``has_next`` bytes)."""
    flags = _BOOLS10.unpack(r.bytes(10))
    glob = GlobalPermissions(*(b != 0 for b in flags))
    perms = Permissions(global_=glob)
    entries = 0
    if r.u8():
        while True:
            sid, *sf = _STREAM_PERMS.unpack(r.bytes(_STREAM_PERMS.size))
            stream = StreamPermissions(*(b != 0 for b in sf))
            entries += 1
            if r.u8():
                while True:
                    tid, *tf = _TOPIC_PERMS.unpack(r.bytes(_TOPIC_PERMS.size))
                    stream.topics[tid] = TopicPermissions(*(b != 0 for b in tf))
                    entries += 1
                    if entries > MAX_PERMISSION_ENTRIES:
                        break
                    if not r.u8():
                        break
            if entries > MAX_PERMISSION_ENTRIES:
                raise WireError(ErrorCode.INVALID_FORMAT,
                                f"more than {MAX_PERMISSION_ENTRIES} permission entries")
            perms.streams[sid] = stream
            if not r.u8():
                break
    return perms


def encode_permissions(perms: Permissions) -> bytes:
    g = perms.global_
    out = bytearray(_BOOLS10.pack(*(bool(getattr(g, f)) for f in _GLOBAL_FIELDS)))
    streams = list(perms.streams.items())
    out.append(1 if streams else 0)
    for i, (sid, s) in enumerate(streams):
        out += _STREAM_PERMS.pack(
            sid, s.manage_stream, s.read_stream, s.manage_topics, s.read_topics,
            s.poll_messages, s.send_messages,
        )
        topics = list(s.topics.items())
        out.append(1 if topics else 0)
        for j, (tid, t) in enumerate(topics):
            out += _TOPIC_PERMS.pack(
                tid, t.manage_topic, t.read_topic, t.poll_messages, t.send_messages
            )
            out.append(1 if j < len(topics) - 1 else 0)
        out.append(1 if i < len(streams) - 1 else 0)
    return bytes(out)


def decode_request_permissions(r: Reader) -> Permissions | None:
    """Request form (CREATE_USER, UPDATE_PERMISSIONS): ``u8 has, [u32 len + Permissions]``."""
    if r.u8() != 1:
        return None
    sub = Reader(r.long_bytes())
    perms = decode_permissions(sub)
    sub.done()
    return perms


def encode_request_permissions(perms: Permissions | None) -> bytes:
    if perms is None:
        return b"\x00"
    raw = encode_permissions(perms)
    return b"\x01" + _U32.pack(len(raw)) + raw


def encode_response_permissions(perms: Permissions | None) -> bytes:
    """Response form (UserDetails): ``u32 0`` if none, else ``u8 1, u32 len, Permissions``."""
    if perms is None:
        return b"\x00\x00\x00\x00"
    raw = encode_permissions(perms)
    return b"\x01" + _U32.pack(len(raw)) + raw


def decode_response_permissions(r: Reader) -> Permissions | None:
    if r.u8() == 0:
        r.skip(3)
        return None
    sub = Reader(r.long_bytes())
    return decode_permissions(sub)


# ---------------------------------------------------------------- SendMessages metadata


def decode_send_metadata(r: Reader) -> tuple[int | str, int | str, int, int | bytes | None, int]:
    """SendMessages prefix (both protocols): ``u32 metadata_length``, stream, topic,
    partitioning, ``u32 messages_count`` → (stream, topic, kind, value, count).

    ``metadata_length`` must equal the bytes of stream..messages_count; the batch (VSR) or
    the index array + frames (classic) follow in ``r``.
    """
    declared = r.u32()
    start = r.pos
    stream = decode_identifier(r)
    topic = decode_identifier(r)
    kind, value = decode_partitioning(r)
    count = r.u32()
    if r.pos - start != declared:
        raise WireError(ErrorCode.INVALID_FORMAT, "metadata_length mismatch")
    return stream, topic, kind, value, count
