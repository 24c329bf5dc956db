"""The partition state machine: what a partition group replicates, applied to the engine's
`PartitionLog` (core/storage/partition_log.py).

The primary stamps each append (`stamp`): the base offset is the applied log's end plus the
records of the appends ahead of it in the pipeline (a purge ahead resets it to 0), and for a
Kafka batch `partitionLeaderEpoch` = the view. The append time comes from the prepare's
timestamp at `apply`, so every replica writes byte-identical batches, indexes and segments.
Every change of the log is an op of its group: appends of both doors, DeleteRecords, purge,
retention and segment deletion (so repair can never resurrect what one of them removed), and
the archive manifest entry of a segment the leader uploaded (ARCHIVED: one upload per segment,
and a new leader knows what is archived). BARRIER changes nothing: a leader commits one to
prove it still leads before answering from its own state (`ClusterView.confirm`).

The log holds applied (= committed) batches only, so whatever reads it serves committed data
by construction; uncommitted prepares live in the consensus journal only.

Restart: ops above the checkpoint are executed again from the journal; appends already in the
segments are recognised by their base offset (below the log's end), and the other ops by the
`applied_op` marker written after each of them, which also keeps each such op's reply (for the
ops a journal can replay), so a replay answers what the op answered then, not what the log
says now (the client table caches replies: every replica's must be the same). A checkpoint
(`snapshot`) fsyncs the segments first when the topic asks for fsync (without it, what the
journal forgets after a checkpoint is in the page cache: it survives process crashes, not a
power loss) and records the manifest of `segment_transfer.py` (offsets, marker, floor, and
per segment its entries, size and first and last CRC) of the log as it was at the checkpoint's
op: batches appended by later ops (replays after a restart) are left out, and while the files
already hold a later op's removal the state at the op cannot be described, so that
checkpoint is skipped (`None`). A replica whose log lacks what a peer's checkpoint names, or
has not executed its last non-append op (`missing`), fetches the segments and installs
exactly the checkpoint's log before the snapshot is installed (cluster/segment_transfer.py,
docs/cluster.md).
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pyggy.consensus.status import Divergence
from pyggy.core.crc import crc32c
from pyggy.core.records import iggy_batch, kafka_batch
from pyggy.core.records.encoding import ENCODING_IGGY, ENCODING_KAFKA
from pyggy.core.storage.partition_log import PartitionLog

from .segment_transfer import Manifest, describe, extra_segments, install, lacks

if TYPE_CHECKING:
    from pyggy.consensus.replica import Replica

log = logging.getLogger(__name__)

APPEND_IGGY, APPEND_KAFKA = 160, 161  # 160 = Iggy's SendMessages operation
DELETE_RECORDS, PURGE, RETENTION, DELETE_SEGMENTS, ARCHIVED = 164, 165, 166, 167, 168
BARRIER = 169  # changes nothing: its commit proves the proposer still led (ClusterView.confirm)
OPERATIONS = frozenset({APPEND_IGGY, APPEND_KAFKA, DELETE_RECORDS, PURGE, RETENTION,
                        DELETE_SEGMENTS, ARCHIVED, BARRIER})
ARCHIVED_MAX = 4096  # an ARCHIVED body: the archive manifest entry the leader uploaded
LOG_APPEND_TIME = 1
# flags u8, count u32, epoch i32, base offset u64, max timestamp (ms, Kafka) i64
APPEND_HEAD = struct.Struct("<BxxxIiQq")
_Q = struct.Struct("<Q")
_QQ = struct.Struct("<QQ")
_REPLY = struct.Struct("<BQ")
MARKER_FILE = "applied_op"
# the marker file: marker u64, replies u32, then (op u64, reply) per kept reply, then the
# CRC-32C of all that; a file of 8 bytes is the marker alone (written before replies were kept)
_MARKER_HEAD = struct.Struct("<QI")
_KEPT = struct.Struct("<QBQ")
_CRC = struct.Struct("<I")
# replies are kept for the non-append ops of this many ops back from the last one: only ops
# above the checkpoint replay, and those are in the journal (128 slots for a partition group)
REPLIES_KEPT_OPS = 1024
_BODY_SIZES = {DELETE_RECORDS: 8, PURGE: 0, RETENTION: 16, DELETE_SEGMENTS: 8, BARRIER: 0}
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
        self.replies: dict[int, bytes] = {}  # op -> reply of the non-append ops kept
        self.marker = self._load_marker()
        # the log's end as of the last executed op: the segments may hold more after a restart
        # (ops executed before the crash replay from the checkpoint), and a replica restarted
        # into the primary role may find those ops back in its pipeline: it stamps from here
        # (the simulator's seed 505 found stamping from the segments' end)
        self.applied_next = 0
        # the last non-append op of the executed state (the marker may be ahead after a
        # restart until the replay reaches it)
        self.applied_marker = 0

    def attach(self, replica: Replica) -> None:
        self.replica = replica

    def _load_marker(self) -> int:
        try:
            raw = self.marker_path.read_bytes()
        except OSError:
            return 0
        if len(raw) == _Q.size:  # the marker alone
            marker: int = _Q.unpack(raw)[0]
            return marker
        try:
            marker, count = _MARKER_HEAD.unpack_from(raw)
            body = _MARKER_HEAD.size + count * _KEPT.size
            if len(raw) != body + _CRC.size or _CRC.unpack_from(raw, body)[0] != crc32c(
                    raw[:body]):
                raise ValueError("size or CRC does not match")
        except (struct.error, ValueError) as e:
            log.error("partition %s: the applied-op marker is damaged (%s); ops above the "
                      "checkpoint run again", self.log.path, e)
            return 0
        for i in range(count):
            op, status, value = _KEPT.unpack_from(raw, _MARKER_HEAD.size + i * _KEPT.size)
            self.replies[op] = _REPLY.pack(status, value)
        return marker

    def _store_marker(self, op: int, reply: bytes | None = None) -> None:
        """Persist `op` as the marker and its reply among the kept ones (fsynced, renamed)."""
        if reply is not None:
            self.replies[op] = reply
        self.replies = {k: v for k, v in self.replies.items()
                        if op - REPLIES_KEPT_OPS < k <= op}
        out = bytearray(_MARKER_HEAD.pack(op, len(self.replies)))
        for k in sorted(self.replies):
            out += _KEPT.pack(k, *_REPLY.unpack(self.replies[k]))
        out += _CRC.pack(crc32c(out))
        tmp = self.marker_path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(out)
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
        if operation == BARRIER:  # nothing changes, so nothing to mark or replay differently
            return _REPLY.pack(OK, 0)
        if op <= self.marker:  # executed before a restart: answer what it answered then
            if operation == PURGE:
                self.applied_next = 0
            self.applied_marker = op
            kept = self.replies.get(op)
            if kept is None:  # a marker written before replies were kept
                log.warning("partition %s: no reply kept for op %d; answering from the log",
                            self.log.path, op)
                return _REPLY.pack(OK, self.log.start_offset)
            return kept
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
        reply = _REPLY.pack(status, value)
        self._store_marker(op, reply)
        self.applied_marker = op
        return reply

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

    def snapshot(self) -> bytes | None:
        """The manifest of the log at the last executed op; None (no checkpoint now) while the
        files hold a later non-append op's effect (a replay after a restart): segments it
        removed or a floor it raised cannot be described as they were."""
        if self.marker > self.applied_marker:
            return None
        if self.fsync:  # the journal may forget these ops after the checkpoint: sync them first
            self.log.sync()
        return describe(self.log, self.marker, self.applied_next).encode()

    def missing(self, data: bytes) -> bool:
        """The log lacks the checkpoint's data, holds segments it removed, or has not
        executed its last non-append op: whatever that op moved (a DeleteRecords floor, a
        purge) is not here even when every batch is (seeds 5023673 and 5029082)."""
        m = Manifest.decode(data)
        return m.marker > self.marker or lacks(self.log, m) or extra_segments(self.log, m)

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
        self.applied_marker = m.marker

    def install(self, m: Manifest, staged: list[int], why: str) -> None:
        """Install fetched segments (state transfer): the log becomes exactly the manifest's,
        and so does the marker (ops above the checkpoint then run, not replay)."""
        before = self.log.next_offset
        install(self.log, m, staged, why)
        self.replies = {k: v for k, v in self.replies.items() if k <= m.marker}
        self._store_marker(m.marker)
        if self.appended is not None and self.log.next_offset > before:
            self.appended(before, self.log.next_offset - before)  # wake long polls
