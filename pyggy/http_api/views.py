"""JSON renderings of the model, in the shapes of Iggy's HTTP API (the serde forms of
`Stream`, `TopicDetails`, `UserInfoDetails`, `PolledMessages`, ... of the Iggy SDKs): ids are
numbers, sizes bytes, timestamps µs since the epoch, payloads base64."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from pyggy.core.model import (
    ConsumerGroup,
    GlobalPermissions,
    Partition,
    Permissions,
    Stream,
    StreamPermissions,
    Topic,
    TopicPermissions,
    User,
)
from pyggy.core.records import user_headers as uh
from pyggy.http_api.body import Fields
from pyggy.http_api.errors import FieldError

COMPRESSION = {1: "none", 2: "gzip"}
STATUS = {1: "active", 2: "inactive"}
HEADER_KINDS = {
    uh.RAW: "raw", uh.STRING: "string", uh.BOOL: "bool", uh.INT8: "int8", uh.INT16: "int16",
    uh.INT32: "int32", uh.INT64: "int64", uh.INT128: "int128", uh.UINT8: "uint8",
    uh.UINT16: "uint16", uh.UINT32: "uint32", uh.UINT64: "uint64", uh.UINT128: "uint128",
    uh.FLOAT32: "float32", uh.FLOAT64: "float64",
}
HEADER_KIND_CODES = {v: k for k, v in HEADER_KINDS.items()}
MAX_PERMISSION_ENTRIES = 10_000


def b64(data: bytes | memoryview) -> str:
    return base64.b64encode(data).decode()


def partition(p: Partition) -> dict:
    return {"id": p.id, "created_at": p.created_at, "segments_count": p.segments_count,
            "current_offset": p.current_offset, "size": p.size_bytes,
            "messages_count": p.messages_count}


def topic(t: Topic, details: bool = False) -> dict:
    o = t.options
    out = {"id": t.id, "created_at": t.created_at, "name": t.name, "size": t.size_bytes,
           "message_expiry": o.message_expiry,
           "compression_algorithm": COMPRESSION.get(o.compression_algorithm, "none"),
           "max_topic_size": o.max_topic_size, "messages_count": t.messages_count,
           "partitions_count": len(t.partitions)}
    if details:
        out["partitions"] = [partition(p) for p in t.partitions]
    return out


def stream(s: Stream, details: bool = False) -> dict:
    topics = [s.topics[k] for k in sorted(s.topics)]
    out = {"id": s.id, "created_at": s.created_at, "name": s.name, "size": s.size_bytes,
           "messages_count": s.messages_count, "topics_count": len(topics)}
    if details:
        out["topics"] = [topic(t) for t in topics]
    return out


def permissions(p: Permissions | None) -> dict | None:
    if p is None:
        return None
    streams = {}
    for sid, sp in p.streams.items():
        entry = {k: v for k, v in dataclasses.asdict(sp).items() if k != "topics"}
        entry["topics"] = {str(tid): dataclasses.asdict(tp) for tid, tp in sp.topics.items()} \
            or None
        streams[str(sid)] = entry
    return {"global": dataclasses.asdict(p.global_), "streams": streams or None}


def _flags(f: Fields, cls: type, exclude: tuple[str, ...] = ()) -> Any:
    return cls(**{k.name: f.flag(k.name) for k in dataclasses.fields(cls)
                  if k.name not in exclude})


def _id_map(f: Fields, name: str) -> dict[int, Fields]:
    raw = f.obj(name, None)
    if raw is None:
        return {}
    if len(raw.data) > MAX_PERMISSION_ENTRIES:
        raise FieldError(name, "too many entries")
    out = {}
    for key in raw.data:
        if not (isinstance(key, str) and key.isdigit() and int(key) <= 0xFFFF_FFFF):
            raise FieldError(name, f"key {key!r} is not a u32 id")
        out[int(key)] = raw.obj(key)
    return out


def parse_permissions(f: Fields, name: str = "permissions") -> Permissions | None:
    """Iggy's `Permissions` JSON → the model (None when absent)."""
    p = f.obj(name, None)
    if p is None:
        return None
    glob = _flags(p.obj("global"), GlobalPermissions)
    streams = {}
    for sid, sf in _id_map(p, "streams").items():
        sp = _flags(sf, StreamPermissions, exclude=("topics",))
        sp.topics = {tid: _flags(tf, TopicPermissions) for tid, tf in _id_map(sf, "topics").items()}
        streams[sid] = sp
    return Permissions(global_=glob, streams=streams)


def user(u: User, details: bool = False) -> dict:
    out = {"id": u.id, "created_at": u.created_at, "status": STATUS.get(u.status, "active"),
           "username": u.username}
    if details:
        out["permissions"] = permissions(u.permissions)
    return out


def group(g: ConsumerGroup, partitions_count: int, details: bool = False) -> dict:
    out = {"id": g.id, "name": g.name, "partitions_count": partitions_count,
           "members_count": len(g.members)}
    if details:
        out["members"] = [{"id": m.id, "partitions_count": len(m.partitions),
                           "partitions": list(m.partitions)} for m in g.members.values()]
    return out


def headers(raw: bytes | memoryview) -> list | str:
    """A user-header block as Iggy's `[{key: {kind, value}, value: {kind, value}}]`; a block
    that does not parse is given as base64 text, as Iggy does."""
    try:
        entries = uh.decode(raw)
    except uh.HeaderError:
        return b64(raw)
    return [{"key": {"kind": HEADER_KINDS.get(kk, "raw"), "value": b64(k)},
             "value": {"kind": HEADER_KINDS.get(vk, "raw"), "value": b64(v)}}
            for kk, k, vk, v in entries]


def parse_headers(f: Fields, name: str = "user_headers") -> bytes:
    """Iggy's header JSON (entries, or base64 of the TLV block) → the TLV block."""
    value = f.data.get(name)
    if value is None:
        return b""
    if isinstance(value, str):
        raw = f.b64(name, max_len=uh.MAX_SIZE)
        try:
            uh.decode(raw)
        except uh.HeaderError as e:
            raise FieldError(name, str(e)) from None
        return raw
    entries = []
    for item in f.array(name, max_items=uh.MAX_SIZE // 10):
        if not isinstance(item, dict):
            raise FieldError(name, "expected {key, value} objects")
        fields = Fields(item)
        key, val = fields.obj("key"), fields.obj("value")
        entries.append((key.choice("kind", HEADER_KIND_CODES), key.b64("value", max_len=255),
                        val.choice("kind", HEADER_KIND_CODES), val.b64("value", max_len=255)))
    try:
        block = uh.encode(entries)
    except uh.HeaderError as e:
        raise FieldError(name, str(e)) from None
    if len(block) > uh.MAX_SIZE:
        raise FieldError(name, f"over {uh.MAX_SIZE} bytes")
    return block


def message(offset: int, timestamp: int, origin: int, msg_id: int, payload: memoryview,
            user_headers: memoryview) -> dict:
    return {"header": {"checksum": 0, "id": msg_id, "offset": offset, "timestamp": timestamp,
                       "origin_timestamp": origin, "user_headers_length": len(user_headers),
                       "payload_length": len(payload), "reserved": 0},
            "payload": b64(payload), "user_headers": headers(user_headers)}
