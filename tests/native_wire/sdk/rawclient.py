"""A tiny blocking client for the Iggy 0.11 (VSR) framing, written from Iggy's public protocol
docs (https://iggy.apache.org/docs/0.9/binary-protocol/framing/ and
https://iggy.apache.org/docs/0.9/binary-protocol/connection-lifecycle/),
independent of pyggy's codec.

For what the official SDK will not put on the wire: it refuses metadata and partition
operations client-side before login, so only a raw client can show that the *server* refuses
them too.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

import xxhash

HEADER = 256
REQUEST, REPLY, EVICTION = 5, 8, 13
REGISTER, NON_REPLICATED = 1, 2

# The operation byte a 0.9 client sends for each replicated command code (Iggy's commands page).
OPERATION = {
    202: 128, 204: 129, 203: 130, 205: 131,  # streams: create, update, delete, purge
    302: 132, 304: 133, 303: 134, 305: 135,  # topics
    402: 136, 403: 137, 503: 138,  # partitions, segments
    602: 139, 603: 140,  # consumer groups: create, delete
    33: 141, 35: 142, 34: 143, 37: 144, 36: 145,  # users
    42: 146, 43: 147,  # personal access tokens
    604: 148, 605: 149,  # consumer groups: join, leave
    101: 160, 121: 161, 122: 162,  # send, store offset, delete offset
}


@dataclass
class Reply:
    command: int  # 8 reply, 13 eviction
    status: int
    operation: int
    body: bytes
    reason: int = 0  # eviction reason
    protocol_versions: tuple[int, int] = (0, 0)  # eviction 14: the server's version, its minimum


class RawClient:
    def __init__(self, address: str, timeout: float = 5.0) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.client = int.from_bytes(os.urandom(16), "little") | 1
        self.session = 0
        self.request = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, code: int, body: bytes = b"", *, session: int | None = None,
             request: int | None = None) -> Reply | None:
        """One request; the reply, or None when the server closed the connection."""
        operation = OPERATION.get(code, NON_REPLICATED)
        if request is None:
            self.request += 1
            request = self.request
        header = bytearray(HEADER)
        struct.pack_into("<I", header, 48, HEADER + len(body))
        header[60] = REQUEST
        header[128:144] = self.client.to_bytes(16, "little")
        if operation != NON_REPLICATED:
            header[144:152] = xxhash.xxh3_64_intdigest(body).to_bytes(8, "little")
        struct.pack_into("<Q", header, 168, request)
        header[176] = operation
        struct.pack_into("<Q", header, 184, self.session if session is None else session)
        if operation == NON_REPLICATED:
            struct.pack_into("<I", header, 196, code)
        self.sock.sendall(bytes(header) + body)
        return self._read()

    def _read(self) -> Reply | None:
        head = self._exactly(HEADER)
        if head is None:
            return None
        size = struct.unpack_from("<I", head, 48)[0]
        body = self._exactly(size - HEADER) if size > HEADER else b""
        if head[60] == EVICTION:
            versions = struct.unpack_from("<II", head, 144)
            return Reply(EVICTION, 0, 0, b"", reason=head[255], protocol_versions=versions)
        return Reply(head[60], struct.unpack_from("<I", head, 216)[0], head[208], body or b"")

    def _exactly(self, n: int) -> bytes | None:
        out = bytearray()
        while len(out) < n:
            try:
                chunk = self.sock.recv(n - len(out))
            except (ConnectionResetError, TimeoutError):
                return None
            if not chunk:
                return None
            out += chunk
        return bytes(out)

    def login(self, username: str, password: str, *, version: int = 11264,
              checksum: int | None = None) -> Reply | None:
        """LOGIN_REGISTER (code 40, operation Register) as protocol `version` (packed
        major<<20 | minor<<10 | patch; 11264 = 0.11.0), "rust-sdk"; `checksum` stamps that
        request_checksum instead of xxh3_64(body)."""

        def short(s: str) -> bytes:
            raw = s.encode()
            return bytes((len(raw),)) + raw

        body = (struct.pack("<I", version) + short("rust-sdk") + short("0.11.0") + short(username)
                + short(password) + struct.pack("<I", 0))
        reply = self.register(body, checksum)
        if reply and reply.command == REPLY and reply.status == 0:
            self.session = struct.unpack_from("<Q", reply.body, 8)[0]
        return reply

    def register(self, body: bytes, checksum: int | None = None) -> Reply | None:
        """One operation-Register request carrying `body` (a login of any shape)."""
        header = bytearray(HEADER)
        struct.pack_into("<I", header, 48, HEADER + len(body))
        header[60] = REQUEST
        header[128:144] = self.client.to_bytes(16, "little")
        stamp = xxhash.xxh3_64_intdigest(body) if checksum is None else checksum
        header[144:160] = stamp.to_bytes(16, "little")
        header[176] = REGISTER
        self.sock.sendall(bytes(header) + body)
        return self._read()
