"""Idempotent producers: producer ids, epochs and per-partition sequence checks (KIP-98).

A batch with producerId ≥ 0 must carry the next expected sequence for its partition. A retried
batch (one of the last five of that producer on that partition) is answered with its original
offset and not stored again; a gap, or a new epoch not starting at 0, is
OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is INVALID_PRODUCER_EPOCH; a producer new on the
partition may start anywhere (Kafka's ProducerAppendInfo rules).

Across restarts (producers outlive a broker restart and retry into the new one): producer ids
are handed out in blocks whose end is made durable (``reserve``) before the first id of the block
is used, so no id is given twice; and a partition's sequences are rebuilt from the producer
fields of its stored batches (``restore``) before its first idempotent batch is checked, as
Kafka rebuilds its producer state from the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pyggy.kafka_wire.protocol.errors import ErrorCode

RECENT = 5
BLOCK_LOW = 16  # a cluster node asks for the next block when fewer ids are left
OWN_RANGES = 1 << 50  # a cluster replica's own ids: OWN_RANGES + (replica id << 40) onwards
INT32_MAX = 2**31 - 1
ID_BLOCK = 1000
PRODUCER_ID_EXPIRATION_MS = 86_400_000  # Kafka's producer.id.expiration.ms default (1 day)
PRODUCER_ID_EXPIRATION_CHECK_S = 600.0  # producer.id.expiration.check.interval.ms (10 min)


class IdsExhausted(OSError):
    """A cluster node's block of producer ids is used up (retriable: the next request asks
    the metadata group for a new one)."""


@dataclass(slots=True)
class PartitionSequence:
    """An idempotent producer's epoch and next sequence on one partition."""

    epoch: int
    next_sequence: int
    # (first sequence, last sequence, base offset) of the last few batches, for retries
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT))
    last_ms: int = 0  # when the producer last appended here (or its state was restored)


class ProducerStates:
    """Producer ids, epochs and sequences. ``reserve(end)`` is called before ids up to ``end``
    (exclusive) are handed out; a server persists it and passes it back as ``first_id``."""

    def __init__(self, first_id: int = 1000,
                 reserve: Callable[[int], None] | None = None, blocks: bool = False,
                 fallback: Callable[[], int] | None = None) -> None:
        self._next = first_id
        self._reserved = first_id
        self._reserve = reserve
        # a cluster: ids from blocks the metadata group granted (`take_block`), else (a node
        # that is not the metadata primary) from `fallback`, this replica's own range
        self.blocks = blocks
        self.fallback = fallback
        self.epochs: dict[int, int] = {}
        self.partitions: dict[tuple[int, tuple[int, int, int]], PartitionSequence] = {}
        self.restored: set[tuple[int, int, int]] = set()
        # (producer id, partition) -> (first, last sequence, future of its base offset) of a
        # batch being appended now: a retry meanwhile waits for it (kafka_wire/handlers/produce)
        self.pending: dict[tuple[int, tuple[int, int, int]], tuple[int, int, Any]] = {}

    def new_id(self) -> int:
        """A producer id never handed out before (also across restarts)."""
        pid = self._next
        if pid >= self._reserved:
            if self.blocks:
                if self.fallback is not None:
                    return self.fallback()
                raise IdsExhausted("no producer id block granted yet")
            if self._reserve is not None:  # OSError: nothing reserved, the id never used
                self._reserve(pid + ID_BLOCK)
            self._reserved = pid + ID_BLOCK
        self._next = pid + 1
        return pid

    def remaining(self) -> int:
        """Ids left in the current block."""
        return self._reserved - self._next

    def take_block(self, start: int, size: int = ID_BLOCK) -> None:
        """Hand out ids [start, start + size) from now on (a block the cluster granted)."""
        self._next, self._reserved = start, start + size

    def restore(self, key: tuple[int, int, int],
                batches: Iterable[tuple[int, int, int, int, int]], now_ms: int = 0) -> None:
        """Rebuild partition ``key``'s sequences from its stored batches, oldest first:
        (base offset, producer id, epoch, base sequence, record count) each."""
        self.restored.add(key)
        for base_offset, pid, epoch, base_seq, count in batches:
            if pid < 0 or base_seq < 0:
                continue
            if epoch > self.epochs.get(pid, -1):
                self.epochs[pid] = epoch
            self.record(pid, epoch, base_seq, count, key, base_offset, now_ms)

    def expire(self, now_ms: int, after_ms: int, keep: Callable[[int], bool]) -> int:
        """Forget the sequences of producers idle on a partition for longer than `after_ms`
        (Kafka's producer.id.expiration.ms), and the epoch of a producer left with none
        unless `keep(producer id)` (a live transactional id: its coordinator fences by
        epoch). A producer coming back starts on those partitions as a new one (any
        sequence), as on Kafka. How many partition states went."""
        stale = [k for k, state in self.partitions.items() if state.last_ms < now_ms - after_ms]
        for k in stale:
            del self.partitions[k]
        if stale:
            active = {pid for pid, _ in self.partitions}
            for pid in {pid for pid, _ in stale} - active:
                if not keep(pid):
                    self.epochs.pop(pid, None)
        return len(stale)

    def init(self) -> tuple[int, int, int]:
        """InitProducerId without a transactional id: (error, producer id, epoch), always a
        new id at epoch 0, also when the request names the producer's current id and epoch
        (KIP-360's bump after a timeout or a sequence error): Kafka's coordinator answers an
        idempotent producer so too, so every partition sees it as a new producer (any first
        sequence) whichever broker answered. Transactional producers get theirs from the
        transaction coordinator (kafka_wire/transactions.py)."""
        pid = self.new_id()
        self.epochs[pid] = 0
        return ErrorCode.NONE, pid, 0

    def check(self, pid: int, epoch: int, base_seq: int, count: int,
              key: tuple[int, int, int]) -> tuple[int, int | None]:
        """Before appending: (error, duplicate's original base offset or None)."""
        if pid < 0:
            return ErrorCode.NONE, None
        known = self.epochs.get(pid)
        if known is None:
            self.epochs[pid] = epoch  # a producer id from a previous server life
        elif epoch < known:
            return ErrorCode.INVALID_PRODUCER_EPOCH, None
        state = self.partitions.get((pid, key))
        if state is None:
            return ErrorCode.NONE, None  # a producer new on this partition: any start
        if epoch > state.epoch:  # a new epoch starts at 0 (KIP-360), as Kafka checks it
            return (ErrorCode.NONE if base_seq == 0
                    else ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER), None
        if epoch < state.epoch:  # a batch of an epoch the producer has bumped past (KIP-360)
            return ErrorCode.INVALID_PRODUCER_EPOCH, None
        last = base_seq + count - 1
        for first_seq, last_seq, base_offset in state.recent:
            if first_seq == base_seq and last_seq == last:
                return ErrorCode.NONE, base_offset
        if base_seq != state.next_sequence:
            return ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, None
        return ErrorCode.NONE, None

    def explain(self, pid: int, epoch: int, base_seq: int, key: tuple[int, int, int]) -> str:
        """Why `check` refused a batch, as Kafka's error messages say it (clients print them)."""
        state = self.partitions.get((pid, key))
        last = -1 if state is None else state.epoch
        if epoch < max(last, self.epochs.get(pid, -1)):
            return (f"Epoch of producer {pid} is {epoch}, which is smaller than the last seen "
                    f"epoch {max(last, self.epochs.get(pid, -1))}")
        if state is None:
            return f"producer {pid} has no state here"
        if epoch > state.epoch:
            return (f"Invalid sequence number for new epoch of producer {pid}: {epoch} (request "
                    f"epoch), {base_seq} (seq. number), {state.epoch} (current producer epoch)")
        return (f"Out of order sequence number for producer {pid}: {base_seq} (incoming seq. "
                f"number), {state.next_sequence - 1} (current end sequence number)")

    def forget_partitions(self, stream_id: int, topic_id: int, partitions: set[int]) -> None:
        """Partitions (or a whole topic) were deleted: drop their sequences (Iggy recycles
        topic ids, so a topic created again must not inherit them)."""
        for k in [k for k in self.partitions
                  if k[1][:2] == (stream_id, topic_id) and k[1][2] in partitions]:
            del self.partitions[k]
        self.restored -= {k for k in self.restored
                          if k[:2] == (stream_id, topic_id) and k[2] in partitions}

    def record(self, pid: int, epoch: int, base_seq: int, count: int,
               key: tuple[int, int, int], base_offset: int, now_ms: int = 0) -> None:
        """After appending: remember the batch for retries and the next sequence."""
        if pid < 0:
            return
        state = self.partitions.get((pid, key))
        if state is None or epoch > state.epoch:
            state = self.partitions[(pid, key)] = PartitionSequence(epoch, 0)
        if epoch > self.epochs.get(pid, -1):  # bumped where this node did not see it (a cluster)
            self.epochs[pid] = epoch
        state.last_ms = now_ms
        last = base_seq + count - 1
        state.recent.append((base_seq, last, base_offset))
        state.next_sequence = 0 if last == INT32_MAX else last + 1
