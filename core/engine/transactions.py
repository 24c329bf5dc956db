"""TransactionService: Kafka transactions' durable state (core/transactions.py) changed through
the command log, one proposed command per state change, and the transaction markers written
to the partitions. The Kafka door's coordinator decides what is allowed; this service records
it. Queries: a partition's last stable offset and its aborted ranges (both doors read them).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from pyggy.core.errors import IggyError
from pyggy.core.model import Topic
from pyggy.core.records import kafka_batch
from pyggy.core.transactions import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    PREPARE_COMMIT,
    PartKey,
    StagedOffsets,
    TransactionState,
    Txn,
)

from .commands import CommandLog
from .data import DataService
from .metadata import MetadataService

log = logging.getLogger(__name__)
OnCommit = Callable[[StagedOffsets], Awaitable[None] | None]


class TransactionService:
    def __init__(self, commands: CommandLog, metadata: MetadataService,
                 data: DataService) -> None:
        self.commands = commands
        self.metadata = metadata
        self.data = data

    @property
    def state(self) -> TransactionState:
        return self.commands.meta.txns

    def _now_ms(self) -> int:
        return self.commands.clock.now_us() // 1000

    # -- queries ---------------------------------------------------------------------------
    def get(self, transactional_id: str) -> Txn | None:
        return self.state.txns.get(transactional_id)

    def by_producer(self, producer_id: int) -> Txn | None:
        return self.state.by_producer.get(producer_id)

    def last_stable(self, t: Topic, partition_id: int, high_watermark: int) -> int:
        """The last stable offset: the first offset of the oldest open transaction on the
        partition, or the high watermark when none is open."""
        return self.state.last_stable((t.stream_id, t.id, partition_id), high_watermark)

    def aborted(self, t: Topic, partition_id: int, start: int, end: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of aborted transactions that overlap [start, end)."""
        return self.state.aborted_between((t.stream_id, t.id, partition_id), start, end)

    def needs_first_offset(self, t: Topic, partition_id: int, producer_id: int) -> bool:
        return self.state.open_first((t.stream_id, t.id, partition_id), producer_id) is None

    # -- state changes ---------------------------------------------------------------------
    async def init(self, transactional_id: str, producer_id: int, epoch: int,
                   timeout_ms: int) -> Txn:
        return await self.commands.propose({
            "type": "txn_init", "transactional_id": transactional_id,
            "producer_id": producer_id, "epoch": epoch, "timeout_ms": timeout_ms,
            "now_ms": self._now_ms()})

    async def add(self, transactional_id: str, partitions: Iterable[PartKey] = (),
                  groups: Iterable[str] = ()) -> Txn:
        return await self.commands.propose({
            "type": "txn_add", "transactional_id": transactional_id,
            "partitions": [list(k) for k in partitions], "groups": list(groups),
            "now_ms": self._now_ms()})

    async def stage_offsets(self, transactional_id: str, group: str,
                            offsets: list[tuple[str, int, int, int, str]]) -> None:
        await self.commands.propose({"type": "txn_offsets", "transactional_id": transactional_id,
                                     "group": group, "offsets": list(offsets)})

    async def first_offset(self, t: Topic, partition_id: int, producer_id: int,
                           offset: int) -> None:
        """Before a producer's first transactional batch on a partition is appended at or
        after `offset`: from now on the partition's LSO stays at or below it."""
        await self.commands.propose({"type": "txn_first_offset", "producer_id": producer_id,
                                     "partition": [t.stream_id, t.id, partition_id],
                                     "offset": offset})

    async def end(self, transactional_id: str, commit: bool, on_commit: OnCommit | None = None,
                  bump_epoch: bool = False) -> Txn:
        """Prepare, write a COMMIT/ABORT marker to every partition of the transaction, let
        `on_commit` make staged group offsets visible, complete. `bump_epoch` (a timeout or
        a new producer instance aborting it) fences the producer that owned it."""
        t = self.get(transactional_id)
        assert t is not None
        if not t.prepared:
            await self.commands.propose({"type": "txn_prepare",
                                         "transactional_id": transactional_id,
                                         "commit": commit})
        return await self.finish(t, on_commit, bump_epoch)

    async def finish(self, t: Txn, on_commit: OnCommit | None = None,
                     bump_epoch: bool = False) -> Txn:
        """Write the markers of a prepared transaction and complete it (also after a restart
        found it prepared: markers written twice are harmless to readers)."""
        commit = t.state == PREPARE_COMMIT
        epoch = t.epoch + 1 if bump_epoch else t.epoch
        markers = []
        for key in sorted(t.partitions):
            offset = await self._marker(key, commit, t.producer_id, epoch)
            if offset is not None:
                markers.append((list(key), offset))
        if commit and on_commit is not None and t.offsets:
            result = on_commit(t.offsets)
            if result is not None:
                await result
        done = await self.commands.propose({
            "type": "txn_complete", "transactional_id": t.transactional_id,
            "markers": markers, "epoch": epoch, "now_ms": self._now_ms()})
        log.debug("transaction %r: %s on %d partitions", t.transactional_id,
                  COMPLETE_COMMIT if commit else COMPLETE_ABORT, len(markers))
        return done

    async def expire(self, after_ms: int, limit: int = 1000) -> list[str]:
        """Forget up to `limit` transactional ids idle for longer than `after_ms` (one
        command; an id busy again when it applies stays). The ids forgotten."""
        before_ms = self._now_ms() - after_ms
        ids = self.state.expired(self._now_ms(), after_ms)[:limit]
        if not ids:
            return []
        return await self.commands.propose({
            "type": "txn_expire", "transactional_ids": ids, "before_ms": before_ms})

    async def _marker(self, key: PartKey, commit: bool, producer_id: int,
                      epoch: int) -> int | None:
        stream_id, topic_id, partition_id = key
        topic = self.metadata.get_topic(stream_id, topic_id)
        if topic is None or not 0 <= partition_id < len(topic.partitions):
            return None  # deleted meanwhile: nothing there to close
        batch = kafka_batch.build_control_batch(commit, producer_id, epoch, 0, self._now_ms())
        info = kafka_batch.validate_batch(memoryview(batch))
        try:
            return await self.data.append_kafka(topic, partition_id, batch, info)
        except IggyError:
            log.error("transaction marker for producer %d could not be written to %s",
                      producer_id, key)
            raise
