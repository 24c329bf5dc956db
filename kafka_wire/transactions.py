"""The transaction coordinator (KIP-98, transaction.version 1): what each transactional request
may do in each state, with Kafka's error codes. The state itself is the engine's
(`engine.txns`, recorded through the command log); this module decides and asks for changes.

One lock serialises the changes (requests of different connections, and the timeout sweep),
so a transaction is never ended twice at once. Markers are written before EndTxn answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pyggy.core.errors import ErrorCode as IggyCode
from pyggy.core.errors import IggyError
from pyggy.core.transactions import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    ONGOING,
    PartKey,
    StagedOffsets,
    Txn,
)
from pyggy.kafka_wire import replicated
from pyggy.kafka_wire.groups.store import CommittedOffset
from pyggy.kafka_wire.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from pyggy.core.engine import LogEngine
    from pyggy.core.model import Topic
    from pyggy.kafka_wire.context import KafkaServer

log = logging.getLogger(__name__)
MAX_TIMEOUT_MS = 900_000  # Kafka's transaction.max.timeout.ms default
MAX_EPOCH = 32767


class TxnError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextlib.contextmanager
def _routed(engine: LogEngine) -> Iterator[None]:
    """In a cluster, a change this node cannot make (not the metadata primary, or a view
    change cut it off) is NOT_COORDINATOR: the client finds the coordinator again and
    retries there (each step is safe to repeat). A backup says so before any check: its
    transaction state may lag the coordinator's."""
    cluster = engine.cluster
    if cluster is not None and cluster.metadata_leader() != cluster.replica_id:
        raise TxnError(ErrorCode.NOT_COORDINATOR)
    try:
        yield
    except IggyError as e:
        if e.code in (IggyCode.TRANSIENT_NOT_ACCEPTED, IggyCode.TRANSIENT_NOT_COMMITTED):
            raise TxnError(ErrorCode.NOT_COORDINATOR) from None
        raise


class TransactionCoordinator:
    def __init__(self, server: KafkaServer) -> None:
        self.server = server
        self.engine = server.engine
        self.lock = asyncio.Lock()

    @property
    def service(self):
        return self.engine.txns

    # -- checks ----------------------------------------------------------------------------
    def current(self, transactional_id: str, producer_id: int, epoch: int,
                fenced: int = ErrorCode.PRODUCER_FENCED) -> Txn:
        """The transaction, if this producer instance owns it (Kafka's order of checks)."""
        t = self.service.get(transactional_id)
        if t is None or t.producer_id != producer_id:
            raise TxnError(ErrorCode.INVALID_PRODUCER_ID_MAPPING)
        if t.epoch != epoch:
            raise TxnError(fenced)
        if t.prepared:
            raise TxnError(ErrorCode.CONCURRENT_TRANSACTIONS)
        return t

    # -- InitProducerId --------------------------------------------------------------------
    async def init(self, transactional_id: str, timeout_ms: int, producer_id: int,
                   epoch: int, fenced: int) -> tuple[int, int]:
        """(producer id, epoch) for a transactional producer: a new id, or the same id with
        the epoch bumped (fencing the previous instance); an open transaction is aborted."""
        if not 0 < timeout_ms <= MAX_TIMEOUT_MS:
            raise TxnError(ErrorCode.INVALID_TRANSACTION_TIMEOUT)
        with _routed(self.engine):
            async with self.lock:
                t = self.service.get(transactional_id)
                if t is not None and producer_id >= 0 and (producer_id, epoch) != (
                        t.producer_id, t.epoch):
                    raise TxnError(fenced)  # KIP-360: only the current instance may bump
                if t is not None and (t.state == ONGOING or t.prepared):
                    t = await self.service.end(transactional_id, False, bump_epoch=True)
                producers = self.server.producers
                if t is None or t.epoch >= MAX_EPOCH:  # INT16 epochs used up: a new id
                    pid, new_epoch = producers.new_id(), 0
                else:
                    pid, new_epoch = t.producer_id, t.epoch + 1
                await self.service.init(transactional_id, pid, new_epoch, timeout_ms)
                producers.epochs[pid] = new_epoch
                return pid, new_epoch

    # -- AddPartitionsToTxn / AddOffsetsToTxn / TxnOffsetCommit ----------------------------
    async def add_partitions(self, transactional_id: str, producer_id: int, epoch: int,
                             partitions: list[PartKey], fenced: int) -> None:
        with _routed(self.engine):
            async with self.lock:
                t = self.current(transactional_id, producer_id, epoch, fenced)
                if t.state == ONGOING and set(partitions) <= t.partitions:
                    return
                await self.service.add(transactional_id, partitions=partitions)

    def verify(self, transactional_id: str, producer_id: int, epoch: int,
               partitions: list[PartKey]) -> list[PartKey]:
        """The partitions not in the ongoing transaction (AddPartitionsToTxn verify-only)."""
        t = self.current(transactional_id, producer_id, epoch)
        return [k for k in partitions if t.state != ONGOING or k not in t.partitions]

    async def add_offsets(self, transactional_id: str, producer_id: int, epoch: int,
                          group: str, fenced: int) -> None:
        with _routed(self.engine):
            async with self.lock:
                t = self.current(transactional_id, producer_id, epoch, fenced)
                if t.state == ONGOING and group in t.groups:
                    return
                await self.service.add(transactional_id, groups=[group])

    async def stage_offsets(self, transactional_id: str, producer_id: int, epoch: int,
                            group: str, offsets: list[tuple[str, int, int, int, str]]) -> None:
        with _routed(self.engine):
            async with self.lock:
                t = self.current(transactional_id, producer_id, epoch,
                                 ErrorCode.INVALID_PRODUCER_EPOCH)
                if t.state != ONGOING or group not in t.groups:
                    raise TxnError(ErrorCode.INVALID_TXN_STATE)
                await self.service.stage_offsets(transactional_id, group, offsets)

    # -- EndTxn ----------------------------------------------------------------------------
    async def end(self, transactional_id: str, producer_id: int, epoch: int, commit: bool,
                  fenced: int) -> None:
        with _routed(self.engine):
            async with self.lock:
                t = self.service.get(transactional_id)
                if t is not None and t.prepared and t.producer_id == producer_id \
                        and t.epoch == epoch:  # a retry after markers failed to be written
                    await self.service.finish(t, self._commit_offsets)
                    return
                t = self.current(transactional_id, producer_id, epoch, fenced)
                if t.state == ONGOING:
                    await self.service.end(transactional_id, commit, self._commit_offsets)
                elif t.state != (COMPLETE_COMMIT if commit else COMPLETE_ABORT):
                    raise TxnError(ErrorCode.INVALID_TXN_STATE)

    async def _commit_offsets(self, staged: StagedOffsets) -> None:
        """The committed transaction's group offsets become visible (replicated first in a
        cluster; again harmlessly if a new coordinator finishes the transaction)."""
        if self.server.coordinator is None:
            return
        for group, offsets in staged.items():
            await replicated.store_offsets(self.server, group, {
                (topic, part): CommittedOffset(off, epoch, meta)
                for topic, part, off, epoch, meta in offsets})

    # -- produce ---------------------------------------------------------------------------
    async def before_append(self, topic: Topic, partition_id: int, producer_id: int,
                            epoch: int) -> int:
        """A transactional batch may go to a partition its ongoing transaction added; the
        producer's first one there holds the partition's last stable offset (recorded before
        the batch is appended, so no reader ever sees it as stable)."""
        shards = self.server.shards
        if shards is not None and not self._allowed(topic, partition_id, producer_id, epoch):
            # another shard coordinates transactions: it may have answered AddPartitionsToTxn
            # before its command reached this one (docs/sharding.md)
            await shards.caught_up()
        t = self.service.by_producer(producer_id)
        if t is None:
            return ErrorCode.INVALID_PRODUCER_ID_MAPPING
        if epoch < t.epoch:
            return ErrorCode.INVALID_PRODUCER_EPOCH
        key = (topic.stream_id, topic.id, partition_id)
        if t.state != ONGOING or key not in t.partitions or epoch != t.epoch:
            return ErrorCode.INVALID_TXN_STATE
        if self.service.needs_first_offset(topic, partition_id, producer_id):
            next_offset = self.engine.data.watermarks(topic, partition_id)[1]
            await self.service.first_offset(topic, partition_id, producer_id, next_offset)
        return ErrorCode.NONE

    def _allowed(self, topic: Topic, partition_id: int, producer_id: int, epoch: int) -> bool:
        t = self.service.by_producer(producer_id)
        return t is not None and t.state == ONGOING and t.epoch == epoch and (
            topic.stream_id, topic.id, partition_id) in t.partitions

    # -- timeouts and restarts -------------------------------------------------------------
    async def tick(self) -> int:
        """Abort (and fence) transactions open longer than their timeout; finish those a
        restart found prepared. Returns how many were ended. In a cluster only the metadata
        primary does it: the coordinator after a failover finishes what the old one left;
        in a sharded server only shard 0."""
        cluster = self.engine.cluster
        if cluster is not None and cluster.metadata_leader() != cluster.replica_id:
            return 0
        if self.server.shards is not None and not self.server.shards.first:
            return 0  # shard 0 keeps them: transaction state is metadata, on every shard
        now_ms = self.engine.clock.now_us() // 1000
        ended = 0
        for t in list(self.service.state.txns.values()):
            stale = t.state == ONGOING and now_ms - t.started_ms > t.timeout_ms
            if not (stale or t.prepared):
                continue
            async with self.lock:
                current = self.service.get(t.transactional_id)
                if current is not t:
                    continue
                if t.prepared:
                    await self.service.finish(t, self._commit_offsets)
                elif t.state == ONGOING and now_ms - t.started_ms > t.timeout_ms:
                    log.info("transaction %r of producer %d timed out after %d ms: aborted",
                             t.transactional_id, t.producer_id, t.timeout_ms)
                    done = await self.service.end(t.transactional_id, False, bump_epoch=True)
                    self.server.producers.epochs[done.producer_id] = done.epoch
                else:
                    continue
                ended += 1
        await self._expire()
        return ended

    async def _expire(self) -> None:
        """Forget transactional ids idle past transactional.id.expiration.ms, as Kafka does
        (a producer coming back after that starts afresh with a new producer id)."""
        after_ms = self.server.settings.transactional_id_expiration_ms
        if not self.service.state.expired(self.engine.clock.now_us() // 1000, after_ms):
            return
        async with self.lock:
            with contextlib.suppress(IggyError):  # a view change: the next tick tries again
                gone = await self.service.expire(after_ms)
                if gone:
                    log.info("%d idle transactional ids expired (%s%s)", len(gone),
                             ", ".join(map(repr, gone[:3])), ", ..." if len(gone) > 3 else "")
