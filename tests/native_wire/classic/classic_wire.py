"""A small blocking client for the classic protocol (Iggy server ≤ 0.8, apache-iggy ≤ 0.8.0).

Independent of pyggy's codec: written from the request/response layouts of iggy tag
`server-0.8.0` (core/binary_protocol/src/requests/**, responses/**, message_layout.rs) for the
commands apache-iggy 0.8.0's Python API cannot send (get_streams, get_topics, users, logout,
Balanced and MessagesKey partitioning, consumer offsets, groups, user headers).

Request `[u32 length = 4 + payload][u32 code][payload]`; reply `[u32 status][u32 length][payload]`.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

CONSUMER, CONSUMER_GROUP = 1, 2
BALANCED, PARTITION_ID, MESSAGES_KEY = 1, 2, 3
OFFSET, TIMESTAMP, FIRST, LAST, NEXT = 1, 2, 3, 4, 5
MESSAGE_HEADER = struct.Struct("<Q16sQQQIIQ")  # 64 B: checksum, id, offset, ts, origin, uh, pl, 0


class ClassicError(Exception):
    def __init__(self, code: int, command: int) -> None:
        super().__init__(f"command {command} failed with status {code}")
        self.code = code


def identifier(value: int | str) -> bytes:
    if isinstance(value, int):
        return struct.pack("<BBI", 1, 4, value)
    raw = value.encode()
    return bytes((2, len(raw))) + raw


def name(value: str) -> bytes:
    raw = value.encode()
    return bytes((len(raw),)) + raw


def optional_partition(partition_id: int | None) -> bytes:
    return struct.pack("<BI", 0, 0) if partition_id is None else struct.pack("<BI", 1, partition_id)


def tlv(pairs: list[tuple[int, bytes, int, bytes]]) -> bytes:
    """User headers: `(key_kind, key, value_kind, value)` → `[u8 kind][u32 len][data]` × 2."""
    out = b""
    for kk, k, vk, v in pairs:
        out += struct.pack("<BI", kk, len(k)) + k + struct.pack("<BI", vk, len(v)) + v
    return out


def parse_tlv(buf: bytes) -> list[tuple[int, bytes, int, bytes]]:
    entries, pos = [], 0
    while pos < len(buf):
        kind, length = struct.unpack_from("<BI", buf, pos)
        entries.append((kind, buf[pos + 5:pos + 5 + length]))
        pos += 5 + length
    return [(*entries[i], *entries[i + 1]) for i in range(0, len(entries), 2)]


class _Buf:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def name(self) -> str:
        n = self.data[self.pos]
        self.pos += 1 + n
        return self.data[self.pos - n:self.pos].decode()

    def more(self) -> bool:
        return self.pos < len(self.data)


def _stream(b: _Buf) -> dict:
    sid, created, topics, size, msgs = b.take("IQIQQ")
    return {"id": sid, "created_at": created, "topics_count": topics, "size_bytes": size,
            "messages_count": msgs, "name": b.name()}


def _topic(b: _Buf) -> dict:
    tid, created, parts, expiry, compression, max_size, rf, size, msgs = b.take("IQIQBQBQQ")
    return {"id": tid, "created_at": created, "partitions_count": parts,
            "message_expiry": expiry, "compression_algorithm": compression,
            "max_topic_size": max_size, "replication_factor": rf, "size_bytes": size,
            "messages_count": msgs, "name": b.name()}


def _user(b: _Buf) -> dict:
    uid, created, status = b.take("IQB")
    return {"id": uid, "created_at": created, "status": status, "username": b.name()}


def _group(b: _Buf) -> dict:
    gid, parts, members = b.take("III")
    return {"id": gid, "partitions_count": parts, "members_count": members, "name": b.name()}


class ClassicClient:
    def __init__(self, address: str, timeout: float = 5.0) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ClassicClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("server closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def request(self, code: int, payload: bytes = b"") -> bytes:
        self.sock.sendall(struct.pack("<II", 4 + len(payload), code) + payload)
        status, length = struct.unpack("<II", self._read(8))
        body = self._read(length)
        if status:
            raise ClassicError(status, code)
        return body

    # -- system and users
    def ping(self) -> None:
        self.request(1)

    def login(self, username: str = "iggy", password: str = "iggy") -> int:
        version, context = b"0.10.0", b""
        body = self.request(38, name(username) + name(password)
                            + struct.pack("<I", len(version)) + version
                            + struct.pack("<I", len(context)) + context)
        return struct.unpack("<I", body)[0]

    def logout(self) -> None:
        self.request(39)

    def get_users(self) -> list[dict]:
        b = _Buf(self.request(32))
        out = []
        while b.more():
            out.append(_user(b))
        return out

    def _user_details(self, body: bytes) -> dict | None:
        if not body:
            return None
        b = _Buf(body)
        user = _user(b)
        (flag,) = b.take("B")
        if flag:
            (length,) = b.take("I")
            user["permissions"] = b.data[b.pos:b.pos + length]
            b.pos += length
        else:
            b.take("3x")
            user["permissions"] = None
        user["trailing"] = len(b.data) - b.pos
        return user

    def get_user(self, ident: int | str) -> dict | None:
        return self._user_details(self.request(31, identifier(ident)))

    def create_user(self, username: str, password: str, status: int = 1,
                    permissions: bytes | None = None) -> dict | None:
        perms = b"\x00" if permissions is None else (
            b"\x01" + struct.pack("<I", len(permissions)) + permissions)
        return self._user_details(self.request(
            33, name(username) + name(password) + bytes((status,)) + perms))

    # -- streams and topics
    def create_stream(self, stream: str) -> dict:
        return self._stream_details(self.request(202, name(stream)))

    def _stream_details(self, body: bytes) -> dict | None:
        if not body:
            return None
        b = _Buf(body)
        s = _stream(b)
        s["topics"] = []
        while b.more():
            s["topics"].append(_topic(b))
        return s

    def get_stream(self, stream: int | str) -> dict | None:
        return self._stream_details(self.request(200, identifier(stream)))

    def get_streams(self) -> list[dict]:
        b = _Buf(self.request(201))
        out = []
        while b.more():
            out.append(_stream(b))
        return out

    def create_topic(self, stream: int | str, topic: str, partitions: int, compression: int = 1,
                     expiry: int = 0, max_size: int = 0, replication_factor: int = 0) -> dict:
        return self._topic_details(self.request(302, identifier(stream) + struct.pack(
            "<IBQQB", partitions, compression, expiry, max_size, replication_factor)
            + name(topic)))

    def _topic_details(self, body: bytes) -> dict | None:
        if not body:
            return None
        b = _Buf(body)
        t = _topic(b)
        t["partitions"] = []
        while b.more():
            pid, created, segments, current, size, msgs = b.take("IQIQQQ")
            t["partitions"].append({"id": pid, "segments_count": segments,
                                    "current_offset": current, "size_bytes": size,
                                    "messages_count": msgs})
        return t

    def get_topic(self, stream: int | str, topic: int | str) -> dict | None:
        return self._topic_details(self.request(300, identifier(stream) + identifier(topic)))

    def get_topics(self, stream: int | str) -> list[dict]:
        b = _Buf(self.request(301, identifier(stream)))
        out = []
        while b.more():
            out.append(_topic(b))
        return out

    # -- messages
    def send(self, stream: int | str, topic: int | str, partitioning: tuple[int, Any],
             messages: list[tuple[int, bytes, bytes]], origin_timestamp: int = 0) -> bytes:
        """`messages`: (id, payload, user_headers); reply body returned as is."""
        kind, value = partitioning
        if kind == BALANCED:
            part = b"\x01\x00"
        elif kind == PARTITION_ID:
            part = struct.pack("<BBI", 2, 4, value)
        else:
            part = bytes((3, len(value))) + value
        metadata = identifier(stream) + identifier(topic) + part + struct.pack("<I", len(messages))
        index, frames, total = b"", b"", 0
        for msg_id, payload, headers in messages:
            frame = MESSAGE_HEADER.pack(0, msg_id.to_bytes(16, "little"), 0, 0, origin_timestamp,
                                        len(headers), len(payload), 0) + payload + headers
            total += len(frame)
            index += struct.pack("<IIQ", 0, total, 0)
            frames += frame
        return self.request(101, struct.pack("<I", len(metadata)) + metadata + index + frames)

    def poll(self, consumer: tuple[int, int | str], stream: int | str, topic: int | str,
             partition_id: int | None, strategy: int, value: int = 0, count: int = 100,
             auto_commit: bool = False) -> dict:
        body = self.request(100, bytes((consumer[0],)) + identifier(consumer[1])
                            + identifier(stream) + identifier(topic)
                            + optional_partition(partition_id)
                            + struct.pack("<BQIB", strategy, value, count, auto_commit))
        b = _Buf(body)
        pid, current, n = b.take("IQI")
        msgs = []
        while b.more():
            start = b.pos
            checksum, raw_id, offset, ts, origin, uh_len, pl_len, reserved = b.take(
                MESSAGE_HEADER.format[1:])
            payload = b.data[b.pos:b.pos + pl_len]
            headers = b.data[b.pos + pl_len:b.pos + pl_len + uh_len]
            b.pos += pl_len + uh_len
            msgs.append({"offset": offset, "id": int.from_bytes(raw_id, "little"),
                         "timestamp": ts, "origin_timestamp": origin, "checksum": checksum,
                         "reserved": reserved, "payload": payload, "user_headers": headers,
                         "frame": b.data[start:b.pos]})
        return {"partition_id": pid, "current_offset": current, "count": n, "messages": msgs}

    # -- consumer offsets (no trailing ack byte in the classic protocol)
    def _offset_target(self, consumer, stream, topic, partition_id) -> bytes:
        return (bytes((consumer[0],)) + identifier(consumer[1]) + identifier(stream)
                + identifier(topic) + optional_partition(partition_id))

    def store_offset(self, consumer, stream, topic, partition_id, offset: int) -> bytes:
        return self.request(121, self._offset_target(consumer, stream, topic, partition_id)
                            + struct.pack("<Q", offset))

    def get_offset(self, consumer, stream, topic, partition_id) -> dict | None:
        body = self.request(120, self._offset_target(consumer, stream, topic, partition_id))
        if not body:
            return None
        pid, current, stored = struct.unpack_from("<IQQ", body)
        return {"partition_id": pid, "current_offset": current, "stored_offset": stored,
                "length": len(body)}

    def delete_offset(self, consumer, stream, topic, partition_id) -> bytes:
        return self.request(122, self._offset_target(consumer, stream, topic, partition_id))

    # -- consumer groups
    def _group_details(self, body: bytes) -> dict | None:
        if not body:
            return None
        b = _Buf(body)
        g = _group(b)
        g["members"] = []
        for _ in range(g["members_count"]):
            mid, n = b.take("II")
            g["members"].append({"id": mid, "partitions": list(b.take(f"{n}I"))})
        return g

    def create_group(self, stream, topic, group: str) -> dict | None:
        return self._group_details(self.request(
            602, identifier(stream) + identifier(topic) + name(group)))

    def get_group(self, stream, topic, group) -> dict | None:
        return self._group_details(self.request(
            600, identifier(stream) + identifier(topic) + identifier(group)))

    def get_groups(self, stream, topic) -> list[dict]:
        b = _Buf(self.request(601, identifier(stream) + identifier(topic)))
        out = []
        while b.more():
            out.append(_group(b))
        return out

    def join_group(self, stream, topic, group) -> bytes:
        return self.request(604, identifier(stream) + identifier(topic) + identifier(group))

    def leave_group(self, stream, topic, group) -> bytes:
        return self.request(605, identifier(stream) + identifier(topic) + identifier(group))
