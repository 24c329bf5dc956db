"""Client sessions of one group: registered through the log, updated only when ops commit.

A client registers (operation REGISTER); its session number is the op that committed the
registration. Each later request carries (client, session, request number); the table keeps the
highest committed request number and its reply, so a retry is answered from the table instead of
being executed twice. The table is bounded: registering a client into a full table evicts the
session whose latest commit is oldest (the same choice on every replica, since it runs at
commit); the evicted client learns it when it next sends and must register again.
"""

from __future__ import annotations

import struct

_ENTRY = struct.Struct("<16sQQQBI")


class Session:
    __slots__ = ("session", "request", "op", "operation", "reply")

    def __init__(self, session: int, request: int, op: int, operation: int, reply: bytes) -> None:
        self.session, self.request, self.op = session, request, op
        self.operation, self.reply = operation, reply


class ClientTable:
    def __init__(self, clients_max: int) -> None:
        if clients_max < 1:
            raise ValueError("clients_max must be at least 1")
        self.clients_max = clients_max
        self.entries: dict[bytes, Session] = {}

    def get(self, client: bytes) -> Session | None:
        return self.entries.get(client)

    def register(self, client: bytes, op: int, operation: int, reply: bytes) -> bytes | None:
        """Open a session numbered `op`; returns the evicted client, if any."""
        evicted = None
        if client not in self.entries and len(self.entries) >= self.clients_max:
            evicted = min(self.entries, key=lambda c: (self.entries[c].op, c))
            del self.entries[evicted]
        self.entries[client] = Session(op, 0, op, operation, reply)
        return evicted

    def record(self, client: bytes, request: int, op: int, operation: int, reply: bytes) -> None:
        entry = self.entries[client]
        entry.request, entry.op, entry.operation, entry.reply = request, op, operation, reply

    def encode(self) -> bytes:
        parts = [struct.pack("<I", len(self.entries))]
        for client in sorted(self.entries):
            e = self.entries[client]
            parts.append(_ENTRY.pack(client, e.session, e.request, e.op, e.operation,
                                     len(e.reply)))
            parts.append(e.reply)
        return b"".join(parts)

    def restore(self, data: bytes) -> None:
        (count,) = struct.unpack_from("<I", data)
        if count > self.clients_max:
            raise ValueError("client table snapshot larger than clients_max")
        pos, entries = 4, {}
        for _ in range(count):
            client, session, request, op, operation, size = _ENTRY.unpack_from(data, pos)
            pos += _ENTRY.size
            entries[client] = Session(session, request, op, operation, data[pos:pos + size])
            pos += size
        if pos != len(data):
            raise ValueError("trailing bytes after the client table")
        self.entries = entries
