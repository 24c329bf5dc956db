"""The partition state machine: what a partition group replicates, applied to the engine's
`PartitionLog` (core/storage/partition_log.py).

The primary stamps each append (`stamp`): the base offset is the applied log's end plus the
records of the appends ahead of it in the pipeline (a purge ahead resets it to 0), and for a
Kafka batch `partitionLeaderEpoch` = the view. The append time comes from the prepare's
timestamp at `apply`, so every replica writes byte-identical batches, indexes and segments.
Every change of the log is an op of its group: appends of both doors, DeleteRecords, purge,
retention and segment deletion (so repair can never resurrect what one of them removed), and
the archive manifest entry of a segment the leader uploaded (ARCHIVED: one upload per segment,
and a new leader knows what is archived).

The log holds applied (= committed) batches only, so whatever reads it serves committed data
by construction; uncommitted prepares live in the consensus journal only.

Restart: ops above the checkpoint are executed again from the journal; appends already in the
segments are recognised by their base offset (below the log's end), and the other ops by the
`applied_op` marker written after each of them. A checkpoint (`snapshot`) fsyncs the
segments first when the topic asks for fsync (without it, what the journal forgets after a
checkpoint is in the page cache: it survives process crashes, not a power loss) and records
the manifest of `segment_transfer.py` (offsets, marker, floor, and per segment its entries,
size and first and last CRC): that is the partition's snapshot. A replica whose log lacks
what a peer's checkpoint names (`missing`) fetches the segments before the snapshot is
installed (cluster/segment_transfer.py, docs/cluster.md).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pyggy.consensus.status import Divergence
from pyggy.core.records import iggy_batch, kafka_batch
from pyggy.core.records.encoding import ENCODING_IGGY, ENCODING_KAFKA
from pyggy.core.storage.partition_log import PartitionLog

from .segment_transfer import Manifest, describe, extra_segments, install, lacks

if TYPE_CHECKING:
    from pyggy.consensus.replica import Replica

APPEND_IGGY, APPEND_KAFKA = 160, 161  # 160 = Iggy's SendMessages operation
DELETE_RECORDS, PURGE, RETENTION, DELETE_SEGMENTS, ARCHIVED = 164, 165, 166, 167, 168
OPERATIONS = frozenset({APPEND_IGGY, APPEND_KAFKA, DELETE_RECORDS, PURGE, RETENTION,
                        DELETE_SEGMENTS, ARCHIVED})
ARCHIVED_MAX = 4096  # an ARCHIVED body: the archive manifest entry the leader uploaded
LOG_APPEND_TIME = 1
# flags u8, count u32, epoch i32, base offset u64, max timestamp (ms, Kafka) i64
APPEND_HEAD = struct.Struct("<BxxxIiQq")
_Q = struct.Struct("<Q")
_QQ = struct.Struct("<QQ")
_REPLY = struct.Struct("<BQ")
MARKER_FILE = "applied_op"
_BODY_SIZES = {DELETE_RECORDS: 8, PURGE: 0, RETENTION: 16, DELETE_SEGMENTS: 8}
OK, INVALID_OFFSET = 0, 1


def append_body(kind: int, batch: bytes | bytearray | memoryview, count: int,
                max_timestamp_ms: int = 0, log_append_time: bool = False) -> bytes:
    """A request body for APPEND_IGGY / APPEND_KAFKA: the validated batch as the door got it."""
    flags = LOG_APPEND_TIME if log_append_time else 0
    return APPEND_HEAD.pack(flags, count, 0, 0, max_timestamp_ms) + bytes(batch)


def parse_reply(body: bytes) -> tuple[int, int]:
    """(status, value): value = the base offset of an append, the start offset after
    DeleteRecords."""
    return _REPLY.unpack(body)


class PartitionMachine:
    """`StateMachine` of one partition group. `appended(base, count)` is called after every
    applied append (wakes long polls)."""

    def __init__(self, log: PartitionLog, fsync: bool,
                 appended: Callable[[int, int], None] | None = None) -> None:
        self.log = log
        self.fsync = fsync
        self.appended = appended
        self.replica: Replica | None = None  # attached by the node: the primary stamps its view
        self.marker_path = log.path / MARKER_FILE
        self.marker = self._load_marker()
        # the log's end as of the last executed op: the segments may hold more after a restart
        # (ops executed before the crash replay from the checkpoint), and a replica restarted
        # into the primary role may find those ops back in its pipeline: it stamps from here
        # (the simulator's seed 505 found stamping from the segments' end)
        self.applied_next = 0

    def attach(self, replica: Replica) -> None:
        self.replica = replica

    def _load_marker(self) -> int:
        try:
            marker: int = _Q.unpack(self.marker_path.read_bytes())[0]
            return marker
        except (OSError, struct.error):
            return 0

    def _store_marker(self, op: int) -> None:
        tmp = self.marker_path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(_Q.pack(op))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.marker_path)
        self.marker = op

    # -- primary ---------------------------------------------------------------------------
    def stamp(self, operation: int, body: bytes,
              pending: Sequence[tuple[int, bytes]]) -> bytes | None:
        size = _BODY_SIZES.get(operation)
        if size is not None:  # refused here, a malformed body could never reach `apply`
            return body if len(body) == size else None
        if operation == ARCHIVED:
            return body if 0 < len(body) <= ARCHIVED_MAX else None
        if operation not in (APPEND_IGGY, APPEND_KAFKA) or len(body) <= APPEND_HEAD.size:
            return None
        base = self.applied_next
        for op, b in pending:
            if op in (APPEND_IGGY, APPEND_KAFKA):
                base += APPEND_HEAD.unpack_from(b)[1]
            elif op == PURGE:
                base = 0
        flags, count, _, _, max_ts = APPEND_HEAD.unpack_from(body)
        view = self.replica.view if self.replica is not None else 0
        return APPEND_HEAD.pack(flags, count, view, base, max_ts) + body[APPEND_HEAD.size:]

    # -- every replica -----------------------------------------------------------------------
    def apply(self, op: int, operation: int, body: bytes, timestamp: int) -> bytes:
        if operation in (APPEND_IGGY, APPEND_KAFKA):
            return self._append(op, operation, body, timestamp // 1000)
        if op <= self.marker:  # executed before a restart
            if operation == PURGE:
                self.applied_next = 0
            return _REPLY.pack(OK, self.log.start_offset)
        value = 0
        status = OK
        if operation == DELETE_RECORDS:
            offset = _Q.unpack(body)[0]
            if offset <= self.log.next_offset:
                value = self.log.advance_start(offset)
            else:
                status = INVALID_OFFSET
        elif operation == PURGE:
            self.log.purge()
            self.applied_next = 0
        elif operation == RETENTION:
            expiry_us, max_bytes = _QQ.unpack(body)
            value = self.log.enforce_retention(timestamp // 1000, expiry_us, max_bytes or None)
        elif operation == DELETE_SEGMENTS:
            value = self.log.delete_oldest(_Q.unpack(body)[0])
        elif operation == ARCHIVED:  # the same manifest entry on every replica
            remote = self.log.remote
            value = int(remote is not None and remote.confirm(body))
        self._store_marker(op)
        return _REPLY.pack(status, value)

    def _append(self, op: int, operation: int, body: bytes, now_us: int) -> bytes:
        flags, count, epoch, base, max_ts = APPEND_HEAD.unpack_from(body)
        log = self.log
        if op <= self.marker or base < log.next_offset:  # already in the segments
            self.applied_next = base + count
            return _REPLY.pack(OK, base)
        if base != log.next_offset:
            raise Divergence(f"partition {log.path}: op {op} stamped at offset {base} but the "
                             f"log ends at {log.next_offset}")
        batch = bytearray(memoryview(body)[APPEND_HEAD.size:])
        if operation == APPEND_IGGY:
            iggy_batch.stamp_batch(batch, log.partition_id, base, now_us)
            log.append_stamped(batch, base, count, now_us, now_us, ENCODING_IGGY)
        else:
            append_time = bool(flags & LOG_APPEND_TIME)
            kafka_batch.stamp_batch(batch, base, now_us // 1000 if append_time else None, epoch)
            max_us = now_us if append_time else min(max(max_ts, 0),
                                                    ((1 << 64) - 1) // 1000) * 1000
            log.append_stamped(batch, base, count, now_us, max_us, ENCODING_KAFKA)
        self.applied_next = base + count
        if self.appended is not None:
            self.appended(base, count)
        return _REPLY.pack(OK, base)

    def read(self, query: bytes) -> bytes:
        return b""  # the doors read the (committed-only) PartitionLog directly

    def snapshot(self) -> bytes:
        if self.fsync:  # the journal may forget these ops after the checkpoint: sync them first
            self.log.sync()
        return describe(self.log, self.marker).encode()

    def missing(self, data: bytes) -> bool:
        m = Manifest.decode(data)
        return lacks(self.log, m) or extra_segments(self.log, m)

    def restore(self, data: bytes) -> None:
        m = Manifest.decode(data)
        # the log may be ahead of its own checkpoint (ops after it ran before a restart; a
        # purge or retention among them removes what the manifest names): only a log behind
        # it, with no later non-append op executed, lacks data
        if m.marker >= self.marker and lacks(self.log, m):
            raise Divergence(f"partition {self.log.path}: the checkpoint ends at offset "
                             f"{m.next_offset} but the local log does not hold it (at "
                             f"{self.log.next_offset})")
        self.marker = max(self.marker, m.marker)
        self.applied_next = m.next_offset

    def install(self, m: Manifest, staged: list[int], why: str) -> None:
        """Install fetched segments (state transfer) and the manifest's marker."""
        before = self.log.next_offset
        install(self.log, m, staged, why)
        if m.marker > self.marker:
            self._store_marker(m.marker)
        if self.appended is not None and self.log.next_offset > before:
            self.appended(before, self.log.next_offset - before)  # wake long polls
