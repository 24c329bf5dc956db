"""Transaction state (Kafka's KIP-98 transactions) as a deterministic part of the metadata.

Applied from `txn_*` commands of the metadata state log, so it is durable, replayed on start
and can later be replicated with the rest of the metadata. It knows, per transactional id, the
producer id and epoch, the state and what the open transaction touched; per partition, the
first offset of every open transaction (the last stable offset is the smallest of them) and
the aborted ranges ``(producer id, first offset, marker offset)``, in marker order.

States are Kafka's (`TransactionState` in Kafka's transaction coordinator): Empty, Ongoing,
PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort. A transaction is prepared before its
markers are written and completed after, so a restart finds a prepared one and finishes it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.metadata.commands import (
    TxnAdd,
    TxnComplete,
    TxnExpire,
    TxnFirstOffset,
    TxnInit,
    TxnOffsets,
    TxnPrepare,
)

PartKey = tuple[int, int, int]  # (stream id, topic id, partition id)
EMPTY, ONGOING = "Empty", "Ongoing"
PREPARE_COMMIT, PREPARE_ABORT = "PrepareCommit", "PrepareAbort"
COMPLETE_COMMIT, COMPLETE_ABORT = "CompleteCommit", "CompleteAbort"
STATES = (EMPTY, ONGOING, PREPARE_COMMIT, PREPARE_ABORT, COMPLETE_COMMIT, COMPLETE_ABORT)
IDLE = (EMPTY, COMPLETE_COMMIT, COMPLETE_ABORT)  # no transaction open: the id may expire
# staged group offsets: group -> [(topic name, partition, offset, leader epoch, metadata)]
StagedOffsets = dict[str, list[tuple[str, int, int, int, str]]]


@dataclass(slots=True)
class Txn:
    """A Kafka transaction's state, by transactional id."""

    transactional_id: str
    producer_id: int
    epoch: int
    timeout_ms: int
    state: str = EMPTY
    started_ms: int = -1
    # when the id was last initialised, added to or completed (-1: unknown, never expires);
    # Kafka's transactional.id.expiration.ms counts from here
    updated_ms: int = -1
    partitions: set[PartKey] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    offsets: StagedOffsets = field(default_factory=dict)

    @property
    def prepared(self) -> bool:
        return self.state in (PREPARE_COMMIT, PREPARE_ABORT)


@dataclass(slots=True)
class AbortedRanges:
    """One partition's aborted transactions, in marker order (so by last offset)."""

    last: list[int] = field(default_factory=list)
    entries: list[tuple[int, int]] = field(default_factory=list)  # (producer id, first offset)

    def add(self, producer_id: int, first: int, last: int) -> None:
        self.last.append(last)
        self.entries.append((producer_id, first))

    def prune(self, below: int) -> int:
        """Forget the ranges ending before `below` (the log start: no fetch reaches them);
        how many went."""
        i = bisect.bisect_left(self.last, below)
        del self.last[:i], self.entries[:i]
        return i

    def overlapping(self, start: int, end: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the ranges ending at or after `start` that begin
        before `end` (Kafka's rule for a Fetch's aborted_transactions)."""
        i = bisect.bisect_left(self.last, start)
        return [e for e in self.entries[i:] if e[1] < end]


class TransactionState:
    def __init__(self) -> None:
        self.txns: dict[str, Txn] = {}
        self.open: dict[PartKey, dict[int, int]] = {}  # partition -> producer id -> first
        self.aborted: dict[PartKey, AbortedRanges] = {}
        self.by_producer: dict[int, Txn] = {}

    # -- queries ---------------------------------------------------------------------------
    def last_stable(self, key: PartKey, high_watermark: int) -> int:
        firsts = self.open.get(key)
        return min(firsts.values()) if firsts else high_watermark

    def aborted_between(self, key: PartKey, start: int, end: int) -> list[tuple[int, int]]:
        ranges = self.aborted.get(key)
        return ranges.overlapping(start, end) if ranges else []

    def pending_offsets(self, group: str) -> set[tuple[str, int]]:
        """(topic, partition) of `group` with offsets staged by an unfinished transaction."""
        return {(o[0], o[1]) for t in self.txns.values() for o in t.offsets.get(group, ())}

    def open_first(self, key: PartKey, producer_id: int) -> int | None:
        return self.open.get(key, {}).get(producer_id)

    def prune_aborted(self, log_start: dict[PartKey, int]) -> int:
        """Drop aborted ranges below each partition's log start (retention, DeleteRecords):
        they only cost memory. A restart rebuilds them from the state log and the next
        cleaner pass drops them again. How many went."""
        gone = 0
        for key, ranges in list(self.aborted.items()):
            start = log_start.get(key)
            if start is not None:
                gone += ranges.prune(start)
                if not ranges.last:
                    del self.aborted[key]
        return gone

    # -- commands (applied by the metadata state machine's txn_* methods) -------------------
    def _txn(self, transactional_id: str) -> Txn:
        t = self.txns.get(transactional_id)
        if t is None:  # validated before proposing: only a damaged log gets here
            raise IggyError(ErrorCode.INVALID_COMMAND,
                            f"transaction command for unknown {transactional_id!r}")
        return t

    def init(self, c: TxnInit) -> Txn:
        """A producer (re)initialised: its id and (bumped) epoch; nothing open."""
        old = self.txns.get(c["transactional_id"])
        if old is not None:
            self.by_producer.pop(old.producer_id, None)
        t = Txn(c["transactional_id"], c["producer_id"], c["epoch"], c["timeout_ms"],
                updated_ms=c.get("now_ms", -1))
        self.txns[t.transactional_id] = self.by_producer[t.producer_id] = t
        return t

    def add(self, c: TxnAdd) -> Txn:
        """Partitions and groups join the transaction; the first addition starts it."""
        t = self._txn(c["transactional_id"])
        if t.state != ONGOING:
            t.state, t.started_ms = ONGOING, c["now_ms"]
            t.partitions, t.groups, t.offsets = set(), set(), {}
        t.updated_ms = c["now_ms"]
        t.partitions.update(_key(k) for k in c.get("partitions", ()))
        t.groups.update(c.get("groups", ()))
        return t

    def stage(self, c: TxnOffsets) -> None:
        """Stage a TxnOffsetCommit's offsets until the transaction ends."""
        t = self._txn(c["transactional_id"])
        staged = t.offsets.setdefault(c["group"], [])
        new = {(o[0], o[1]) for o in c["offsets"]}
        staged[:] = [o for o in staged if (o[0], o[1]) not in new]
        staged.extend((o[0], o[1], o[2], o[3], o[4]) for o in c["offsets"])

    def first_offset(self, c: TxnFirstOffset) -> None:
        """The first transactional batch of a producer on a partition: the LSO holds here."""
        self.open.setdefault(_key(c["partition"]), {}).setdefault(c["producer_id"],
                                                                  c["offset"])

    def prepare(self, c: TxnPrepare) -> Txn:
        t = self._txn(c["transactional_id"])
        t.state = PREPARE_COMMIT if c["commit"] else PREPARE_ABORT
        return t

    def complete(self, c: TxnComplete) -> Txn:
        """Markers are written (at `markers`: partition -> offset): close the partitions'
        open ranges (recording aborted ones), drop staged offsets; `epoch` bumps it (a
        coordinator-side abort fences the producer)."""
        t = self._txn(c["transactional_id"])
        commit = t.state == PREPARE_COMMIT
        for key_list, marker in c["markers"]:
            key = _key(key_list)
            firsts = self.open.get(key)
            first = firsts.pop(t.producer_id, None) if firsts else None
            if firsts is not None and not firsts:
                del self.open[key]
            if not commit and first is not None:
                self.aborted.setdefault(key, AbortedRanges()).add(t.producer_id, first, marker)
        t.state = COMPLETE_COMMIT if commit else COMPLETE_ABORT
        t.partitions, t.groups, t.offsets = set(), set(), {}
        t.epoch = c.get("epoch", t.epoch)
        t.updated_ms = c.get("now_ms", t.updated_ms)
        return t

    def expired(self, now_ms: int, after_ms: int) -> list[str]:
        """Transactional ids idle (no transaction open or being finished) for longer than
        `after_ms`: what the coordinator proposes to forget (Kafka's
        transactional.id.expiration.ms)."""
        return [t.transactional_id for t in self.txns.values()
                if t.state in IDLE and 0 <= t.updated_ms < now_ms - after_ms]

    def expire(self, c: TxnExpire) -> list[str]:
        """Forget idle transactional ids (their producer id with them); an id that is busy
        again by the time the command applies stays. The ids that went."""
        gone = []
        for tid in c["transactional_ids"]:
            t = self.txns.get(tid)
            if t is None or t.state not in IDLE or t.updated_ms > c["before_ms"]:
                continue
            del self.txns[tid]
            if self.by_producer.get(t.producer_id) is t:
                del self.by_producer[t.producer_id]
            gone.append(tid)
        return gone

    def forget(self, stream_id: int, topic_id: int, partitions: set[int] | None) -> None:
        """Partitions (None: all of the topic) were deleted; Iggy reuses their ids."""
        def gone(k: PartKey) -> bool:
            return k[:2] == (stream_id, topic_id) and (partitions is None or k[2] in partitions)

        for table in (self.open, self.aborted):
            for k in [k for k in table if gone(k)]:
                del table[k]
        for t in self.txns.values():
            t.partitions = {k for k in t.partitions if not gone(k)}


def _key(k: list[int] | tuple[int, ...]) -> PartKey:
    """A partition as the log keeps it ([stream, topic, partition]) as a dict key."""
    return (k[0], k[1], k[2])
