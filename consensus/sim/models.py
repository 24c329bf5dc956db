"""The simulator's state machines: a metadata plane and a partition, small but shaped like pyggy's.

Metadata: streams, topics, partitions, users, permissions, tokens, consumer groups and their
offsets, and Kafka producer ids; ids are assigned at apply, so every replica assigns the same
ones. Replies are
`status u8 + value u64` (status 0 ok, 1 exists, 2 not found).

Partition: an append-only record log whose prepares carry batches *already stamped by the
primary* (`stamp` writes the base offset from the executed state plus the appends ahead of it in
the pipeline), so every replica stores the same bytes; each replica re-checks the stamp at apply.
Every state change is an op in the partition's own group: appends, DeleteRecords (log start
moves), purge, retention. Reads answer from executed state only.

`ExternalPartitionModel` is the same partition shaped like pyggy's on disk: its records live in
a `SegmentStore` that survives a crash (as segment files do), its snapshot is a manifest (log
start, count, marker, digest), and a replica lacking what a peer's manifest names gets it
through the driver (`missing` → FETCH_STATE → the simulator copies the peer's records).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import TypedDict

import xxhash

from ..status import Divergence

# metadata operations
CREATE_STREAM, DELETE_STREAM, CREATE_TOPIC, DELETE_TOPIC = 16, 17, 18, 19
CREATE_USER, DELETE_USER, UPDATE_PERMISSIONS, CREATE_TOKEN = 20, 21, 22, 23
STORE_GROUP_OFFSET, INIT_PRODUCER_ID, CREATE_CONSUMER_GROUP, CREATE_PARTITIONS = 24, 25, 26, 27
METADATA_OPERATIONS = tuple(range(16, 28))
# partition operations
APPEND, DELETE_RECORDS, PURGE, RETENTION = 32, 33, 34, 35
OK, EXISTS, NOT_FOUND = 0, 1, 2
_REPLY = struct.Struct("<BQ")
_APPEND_HEAD = struct.Struct("<QH")
_U64 = struct.Struct("<Q")
_U16 = struct.Struct("<H")


def pack_names(*names: str) -> bytes:
    out = bytearray()
    for name in names:
        raw = name.encode()
        out += bytes([len(raw)]) + raw
    return bytes(out)


def unpack_names(body: bytes) -> list[str]:
    names, pos = [], 0
    while pos < len(body):
        n = body[pos]
        names.append(body[pos + 1:pos + 1 + n].decode())
        pos += 1 + n
    return names


class MetadataState(TypedDict):
    """The metadata model's state (its snapshot is this as JSON): names joined by "/"."""

    streams: dict[str, int]  # name -> id
    topics: dict[str, int]
    users: dict[str, int]  # name -> id, or the op of its last permissions update
    tokens: list[str]  # sorted
    offsets: dict[str, int]  # group/partition -> offset (the op that stored it)
    groups: dict[str, int]
    partitions: dict[str, int]  # topic -> partition count
    next_id: int
    next_pid: int


class MetadataModel:
    def __init__(self) -> None:
        self.state: MetadataState = {
            "streams": {}, "topics": {}, "users": {}, "tokens": [], "offsets": {}, "groups": {},
            "partitions": {}, "next_id": 1, "next_pid": 1000}

    def stamp(self, operation: int, body: bytes,
              pending: Sequence[tuple[int, bytes]]) -> bytes | None:
        return body if operation in METADATA_OPERATIONS else None

    def apply(self, op: int, operation: int, body: bytes, timestamp: int) -> bytes:
        s = self.state
        names = unpack_names(body)
        if operation == INIT_PRODUCER_ID:
            s["next_pid"] += 1
            return _REPLY.pack(OK, s["next_pid"] - 1)
        if operation == CREATE_PARTITIONS:  # topic -> partition count
            count = s["partitions"][names[0]] = s["partitions"].get(names[0], 0) + 1
            return _REPLY.pack(OK, count)
        key = "/".join(names)
        if operation == CREATE_TOKEN:
            if key in s["tokens"]:
                return _REPLY.pack(EXISTS, 0)
            s["tokens"].append(key)
            s["tokens"].sort()
            return _REPLY.pack(OK, len(s["tokens"]))
        items = {CREATE_STREAM: s["streams"], DELETE_STREAM: s["streams"],
                 CREATE_TOPIC: s["topics"], DELETE_TOPIC: s["topics"], CREATE_USER: s["users"],
                 DELETE_USER: s["users"], UPDATE_PERMISSIONS: s["users"],
                 STORE_GROUP_OFFSET: s["offsets"], CREATE_CONSUMER_GROUP: s["groups"]}[operation]
        if operation in (CREATE_STREAM, CREATE_TOPIC, CREATE_USER, CREATE_CONSUMER_GROUP):
            if key in items:
                return _REPLY.pack(EXISTS, items[key])
            items[key] = s["next_id"]
            s["next_id"] += 1
            return _REPLY.pack(OK, items[key])
        if operation in (DELETE_STREAM, DELETE_TOPIC, DELETE_USER):
            return _REPLY.pack(OK if items.pop(key, None) is not None else NOT_FOUND, 0)
        if operation == UPDATE_PERMISSIONS:
            if names[0] not in items:
                return _REPLY.pack(NOT_FOUND, 0)
            items[names[0]] = op
            return _REPLY.pack(OK, op)
        items[names[0]] = op  # STORE_GROUP_OFFSET: group/partition -> offset (the op number)
        return _REPLY.pack(OK, op)

    def read(self, query: bytes) -> bytes:
        return json.dumps(sorted(self.state["streams"])).encode()

    def snapshot(self) -> bytes:
        return json.dumps(self.state, sort_keys=True, separators=(",", ":")).encode()

    def missing(self, data: bytes) -> bool:
        return False  # the snapshot is the whole state

    def restore(self, data: bytes) -> None:
        self.state = json.loads(data)


def append_body(records: Sequence[bytes]) -> bytes:
    """An unstamped batch (base offset 0) as a client sends it."""
    return _APPEND_HEAD.pack(0, len(records)) + b"".join(
        _U16.pack(len(r)) + r for r in records)


def batch_records(body: bytes) -> tuple[int, list[bytes]]:
    base, count = _APPEND_HEAD.unpack_from(body)
    pos, records = _APPEND_HEAD.size, []
    for _ in range(count):
        (n,) = _U16.unpack_from(body, pos)
        records.append(body[pos + 2:pos + 2 + n])
        pos += 2 + n
    return base, records


def read_query(offset: int, count: int) -> bytes:
    return struct.pack("<QH", offset, count)


def parse_read(answer: bytes) -> tuple[int, int, list[tuple[int, bytes]]]:
    """(log_start, high_watermark, [(offset, record)]) of a partition read answer."""
    log_start, hw, first, count = struct.unpack_from("<QQQH", answer)
    pos, out = 26, []
    for i in range(count):
        (n,) = _U16.unpack_from(answer, pos)
        out.append((first + i, answer[pos + 2:pos + 2 + n]))
        pos += 2 + n
    return log_start, hw, out


class PartitionModel:
    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.log_start = 0

    def stamp(self, operation: int, body: bytes,
              pending: Sequence[tuple[int, bytes]]) -> bytes | None:
        if operation != APPEND:
            return body if operation in (DELETE_RECORDS, PURGE, RETENTION) else None
        if len(body) < _APPEND_HEAD.size:
            return None
        base = self.executed_end() + sum(_APPEND_HEAD.unpack_from(b)[1] for o, b in pending
                                         if o == APPEND)
        stamped = bytearray(body)
        _U64.pack_into(stamped, 0, base)
        return bytes(stamped)

    def executed_end(self) -> int:
        """The end of the log the executed ops made: where `stamp` counts the pipeline from."""
        return len(self.records)

    def apply(self, op: int, operation: int, body: bytes, timestamp: int) -> bytes:
        if operation == APPEND:
            base, records = batch_records(body)
            if base != len(self.records):
                raise Divergence(f"batch stamped at {base} but the log ends at "
                                 f"{len(self.records)}")
            self.records.extend(records)
            return _U64.pack(base)
        end = len(self.records)
        if operation == DELETE_RECORDS:
            self.log_start = max(self.log_start, min(_U64.unpack_from(body)[0], end))
        elif operation == PURGE:
            self.log_start = end
        elif operation == RETENTION:
            self.log_start = max(self.log_start, end - _U64.unpack_from(body)[0])
        return _U64.pack(self.log_start)

    def _answer(self, records: Sequence[bytes], query: bytes) -> bytes:
        offset, count = struct.unpack_from("<QH", query)
        first = max(offset, self.log_start)
        chosen = records[first:first + count] if first < len(records) else []
        return struct.pack("<QQQH", self.log_start, len(records), first, len(chosen)) + b"".join(
            _U16.pack(len(r)) + r for r in chosen)

    def read(self, query: bytes) -> bytes:
        return self._answer(self.records, query)

    def read_uncommitted(self, query: bytes, pending: Sequence[tuple[int, bytes]]) -> bytes:
        """Test-only (the `serve_uncommitted_reads` mutant): reads that include prepared ops."""
        extra = [r for operation, body in pending if operation == APPEND
                 for r in batch_records(body)[1]]
        return self._answer(self.records + extra, query)

    def snapshot(self) -> bytes | None:
        return _U64.pack(self.log_start) + _U64.pack(len(self.records)) + b"".join(
            _U16.pack(len(r)) + r for r in self.records)

    def missing(self, data: bytes) -> bool:
        return False  # the snapshot is the whole state

    def restore(self, data: bytes) -> None:
        self.log_start, count = struct.unpack_from("<QQ", data)
        pos, records = 16, []
        for _ in range(count):
            (n,) = _U16.unpack_from(data, pos)
            records.append(data[pos + 2:pos + 2 + n])
            pos += 2 + n
        self.records = records


class SegmentStore:
    """What a partition's segment files hold: applied records, the log start and the op of the
    last non-append op applied (pyggy's `applied_op` marker). Survives crashes."""

    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.log_start = 0
        self.marker = 0
        # the reply of each non-append op, for its replay after a restart: answering from
        # the current state instead (what pyggy's PartitionMachine does) caches a reply in
        # the client table that differs from the other replicas' (seed 72 found it)
        self.replies: dict[int, bytes] = {}


_MANIFEST = struct.Struct("<QQQQ")  # log start, record count, marker, digest


def records_digest(records: Sequence[bytes]) -> int:
    h = xxhash.xxh3_64()
    for r in records:
        h.update(_U16.pack(len(r)))
        h.update(r)
    return h.intdigest()


def parse_manifest(data: bytes) -> tuple[int, int, int, int]:
    log_start, count, marker, digest = _MANIFEST.unpack(data)
    return log_start, count, marker, digest


class ExternalPartitionModel(PartitionModel):
    """A partition whose records outlive the process and whose snapshot only names them.

    After a restart the store may be ahead of the ops being replayed; a checkpoint taken then
    still describes the state after its own op (`applied_*`), so every replica's checkpoint
    at an op is the same bytes (the checker's S4)."""

    def __init__(self, store: SegmentStore) -> None:  # no super().__init__: the store holds it
        self.store = store
        # the executed state: empty until the checkpoint is restored or ops replay (as pyggy's
        # `applied_next` starts at 0), whatever the store already holds
        self.applied_end = self.applied_log_start = self.applied_marker = 0

    @property
    def records(self) -> list[bytes]:
        return self.store.records

    @records.setter
    def records(self, value: list[bytes]) -> None:
        self.store.records = value

    @property
    def log_start(self) -> int:
        return self.store.log_start

    @log_start.setter
    def log_start(self, value: int) -> None:
        self.store.log_start = value

    def executed_end(self) -> int:
        """The executed end, not the store's: a restarted replica may become primary with ops
        it executed before the crash back in its pipeline (seed 505 found it)."""
        return self.applied_end

    def apply(self, op: int, operation: int, body: bytes, timestamp: int) -> bytes:
        if operation == APPEND:
            base, records = batch_records(body)
            if base < len(self.records):  # stored before a restart: the same records
                if self.records[base:base + len(records)] != records:
                    raise Divergence(f"op {op} replays other records at {base}")
                reply = _U64.pack(base)
            else:
                reply = super().apply(op, operation, body, timestamp)
            self.applied_end = base + len(records)
            return reply
        if op <= self.store.marker:  # executed before a restart
            reply = self.store.replies.get(op, _U64.pack(self.log_start))
        else:
            reply = super().apply(op, operation, body, timestamp)
            self.store.marker = op
            self.store.replies[op] = reply
        self.applied_marker, self.applied_log_start = op, _U64.unpack(reply)[0]
        return reply

    def snapshot(self) -> bytes | None:
        """None while the store holds a later non-append op than the executed state (replays
        after a restart): pyggy's segments cannot be described as they were before a removal,
        so neither is this (the replica skips that checkpoint)."""
        if self.store.marker > self.applied_marker:
            return None
        end = self.applied_end
        return _MANIFEST.pack(self.applied_log_start, end, self.applied_marker,
                              records_digest(self.records[:end]))

    def missing(self, data: bytes) -> bool:
        """The store lacks the checkpoint's records, or has not executed its last non-append
        op (the log start it moved): as pyggy's `PartitionMachine.missing` (seeds 5023673 and
        5029082 installed a manifest over a store that held its records, not its log start)."""
        _, count, marker, digest = parse_manifest(data)
        return (marker > self.store.marker or count > len(self.records)
                or records_digest(self.records[:count]) != digest)

    def restore(self, data: bytes) -> None:
        if self.missing(data):
            raise Divergence("the store does not hold the records the checkpoint names")
        self.applied_log_start, self.applied_end, self.applied_marker, _ = parse_manifest(data)
