"""A small blocking client of the native 0.11 protocol, for the bench tool and tests.

It speaks just enough (login, create stream/topic, send a prebuilt batch, poll) to drive the
server at full speed without the SDK's per-message objects.
"""

from __future__ import annotations

import socket
import struct
import uuid
from typing import NamedTuple

from pyggy.native_wire.codec import frames
from pyggy.native_wire.codec.codes import Code, Operation
from pyggy.native_wire.codec.primitives import (
    encode_consumer,
    encode_identifier,
    encode_name,
    encode_optional_partition,
    encode_partitioning,
    encode_polling_strategy,
)

_U32 = struct.Struct("<I")


class NativeError(Exception):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"status {status}")


class NativeClient:
    """One connection; one request in flight (lockstep, as the SDK)."""

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = uuid.uuid4().int or 1
        self.session = 0
        self.request = 1
        self.recv_buf = bytearray(1 << 20)

    def close(self) -> None:
        self.sock.close()

    def _recv_exact(self, n: int) -> memoryview:
        if len(self.recv_buf) < n:
            self.recv_buf = bytearray(n)
        view = memoryview(self.recv_buf)[:n]
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if not k:
                raise ConnectionError("server closed the connection")
            got += k
        return view

    def call(self, code: int, body: bytes | bytearray | memoryview = b"", *,
             operation: int | None = None, parts: list | None = None) -> memoryview:
        """Send one request; return the reply body (a view valid until the next call)."""
        self.write(code, body, operation=operation, parts=parts)
        return self.read_reply()

    def write(self, code: int, body: bytes | bytearray | memoryview = b"", *,
              operation: int | None = None, parts: list | None = None) -> None:
        """Send one request without waiting for its reply (:meth:`read_reply` reads the replies
        in request order: the server answers a connection's requests one at a time)."""
        op = operation
        total = body if parts is None else b""
        size = len(body) if parts is None else sum(len(p) for p in parts)
        header = bytearray(frames.build_request(code, b"", client=self.client,
                                                request=self.request, session=self.session,
                                                operation=op))
        _U32.pack_into(header, frames.SIZE_FIELD_OFFSET, frames.HEADER_SIZE + size)
        if code == Code.LOGIN_REGISTER or op == Operation.REGISTER:
            header = bytearray(frames.build_request(code, total, client=self.client, request=0,
                                                    operation=Operation.REGISTER,
                                                    checksum=True))[:frames.HEADER_SIZE]
        self._send_all([header, *(parts if parts is not None else [body])])
        if operation not in (Operation.REGISTER,):
            self.request += 1

    def _send_all(self, buffers: list) -> None:
        """sendmsg until every byte is out: with a timeout set the socket is non-blocking
        underneath, and one sendmsg of a big batch may take only part of it."""
        views = [memoryview(b).cast("B") for b in buffers]
        while views:
            sent = self.sock.sendmsg(views)
            while views and sent >= len(views[0]):
                sent -= len(views[0])
                views.pop(0)
            if views and sent:
                views[0] = views[0][sent:]

    def read_reply(self) -> memoryview:
        """The next reply's body (a view valid until the next read); raises NativeError for
        an error status."""
        head = bytes(self._recv_exact(frames.HEADER_SIZE))
        command, size, status = frames.parse_reply_header(head)
        body_view = self._recv_exact(size - frames.HEADER_SIZE)
        if command != 8 or status:
            raise NativeError(status)
        return body_view

    def login(self, username: str, password: str) -> None:
        body = (_U32.pack(11264) + encode_name("pyggy-bench") + encode_name("0.1.0")
                + encode_name(username) + encode_name(password) + _U32.pack(0))
        reply = self.call(Code.LOGIN_REGISTER, body, operation=Operation.REGISTER)
        self.session = struct.unpack_from("<Q", reply, 8)[0]

    def create_stream(self, name: str) -> None:
        self.call(Code.CREATE_STREAM, encode_name(name))

    def create_topic(self, stream: str, name: str, partitions: int,
                     options: bytes = b"") -> None:
        self.call(Code.CREATE_TOPIC, encode_identifier(stream) + _U32.pack(partitions)
                  + encode_name(name) + options)

    def send(self, stream: str, topic: str, partition: int, batch: bytes | bytearray,
             count: int) -> int:
        """Send one prebuilt batch; return the base offset."""
        self.write_send(stream, topic, partition, batch, count)
        return self.read_send_reply()

    def write_send(self, stream: str, topic: str, partition: int, batch: bytes | bytearray,
                   count: int) -> None:
        """:meth:`send` without waiting: the reply comes with :meth:`read_send_reply`."""
        meta = (encode_identifier(stream) + encode_identifier(topic)
                + encode_partitioning(2, partition) + _U32.pack(count))
        self.write(Code.SEND_MESSAGES, parts=[_U32.pack(len(meta)) + meta, batch])

    def read_send_reply(self) -> int:
        reply = self.read_reply()
        return struct.unpack_from("<Q", reply, 16)[0] if len(reply) >= 24 else -1

    def poll(self, stream: str, topic: str, partition: int, offset: int, count: int,
             view: bool = False) -> tuple[int, int | memoryview]:
        """Poll from an offset; return (message count, reply bytes or, with `view`, the reply
        view, valid until the next call)."""
        self.write_poll(stream, topic, partition, offset, count)
        return self.read_poll_reply(view)

    def write_poll(self, stream: str, topic: str, partition: int, offset: int,
                   count: int) -> None:
        """:meth:`poll` without waiting: the reply comes with :meth:`read_poll_reply`."""
        body = (encode_consumer(1, 1) + encode_identifier(stream) + encode_identifier(topic)
                + encode_optional_partition(partition) + encode_polling_strategy(1, offset)
                + _U32.pack(count) + b"\x00")
        self.write(Code.POLL_MESSAGES, body)

    def read_poll_reply(self, view: bool = False) -> tuple[int, int | memoryview]:
        reply = self.read_reply()
        return _U32.unpack_from(reply, 12)[0], reply if view else len(reply)

    def create_group(self, stream: str, topic: str, name: str) -> None:
        self.call(Code.CREATE_CONSUMER_GROUP, encode_identifier(stream)
                  + encode_identifier(topic) + encode_name(name))

    def join_group(self, stream: str, topic: str, group: str) -> None:
        self.call(Code.JOIN_CONSUMER_GROUP, encode_identifier(stream)
                  + encode_identifier(topic) + encode_identifier(group))

    def poll_group(self, stream: str, topic: str, group: str, count: int
                   ) -> tuple[int, memoryview]:
        """Poll the next messages of this member's partitions, committing as it goes.

        A reply whose partition id asks for a re-sync counts as an empty poll."""
        body = (encode_consumer(2, group) + encode_identifier(stream)
                + encode_identifier(topic) + encode_optional_partition(None)
                + encode_polling_strategy(5, 0) + _U32.pack(count) + b"\x01")
        reply = self.call(Code.POLL_MESSAGES, body)
        if _U32.unpack_from(reply, 0)[0] == 0xFFFFFFFF:
            self.call(Code.SYNC_CONSUMER_GROUP, encode_identifier(stream)
                      + encode_identifier(topic) + encode_identifier(group))
            return 0, reply
        return _U32.unpack_from(reply, 12)[0], reply

    def cluster_nodes(self) -> list[ClusterNode]:
        """GET_CLUSTER_METADATA: every node of the roster (one on a single node)."""
        return parse_cluster_nodes(bytes(self.call(Code.GET_CLUSTER_METADATA)))


_NODE_TAIL = struct.Struct("<HHHHBB")  # tcp, quic, http, websocket ports; role, status
LEADER = 0  # role of the metadata primary (1: follower)


class ClusterNode(NamedTuple):
    name: str
    ip: str
    tcp: int
    role: int

    @property
    def address(self) -> str:
        return f"[{self.ip}]:{self.tcp}" if ":" in self.ip else f"{self.ip}:{self.tcp}"


def parse_cluster_nodes(body: bytes) -> list[ClusterNode]:
    """Decode a GET_CLUSTER_METADATA reply (cluster name, ``u32 count``, per node name, ip,
    ports, role, status; native_wire/codec/responses.py); ValueError when it is malformed."""
    pos = 0

    def text() -> str:
        nonlocal pos
        (n,) = _U32.unpack_from(body, pos)
        if pos + 4 + n > len(body):
            raise ValueError("truncated string")
        pos += 4 + n
        return body[pos - n:pos].decode()

    try:
        text()  # the cluster's name
        (count,) = _U32.unpack_from(body, pos)
        pos += 4
        if count * (8 + _NODE_TAIL.size) > len(body) - pos:
            raise ValueError(f"{count} nodes cannot fit in {len(body) - pos} bytes")
        nodes = []
        for _ in range(count):
            name, ip = text(), text()
            tcp, _quic, _http, _ws, role, _status = _NODE_TAIL.unpack_from(body, pos)
            pos += _NODE_TAIL.size
            nodes.append(ClusterNode(name, ip, tcp, role))
    except (struct.error, UnicodeDecodeError) as e:
        raise ValueError(f"malformed cluster metadata: {e}") from None
    if pos != len(body):
        raise ValueError("trailing bytes after the cluster metadata")
    return nodes
