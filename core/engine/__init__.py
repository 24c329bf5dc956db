"""The log engine: the one object both doors (and the archiver, and the tools) open, and the
narrow services it hands out — the doors reach the log only through these:

- `engine.metadata` — streams, topics, partitions (MetadataService, metadata.py);
- `engine.identity` — users, passwords, SCRAM credentials, tokens (IdentityService);
- `engine.consumers` — Iggy consumer offsets and consumer groups (ConsumerService);
- `engine.data` — appends, reads, polls and partition queries (DataService, data.py);
- `engine.txns` — Kafka transactions: their state, markers, last stable offsets and aborted
  ranges (TransactionService, transactions.py).

Every metadata change is a command appended to the (mirrored) state log, then applied by the
state machine, before it returns (commands.py); partitions' files follow the commands
(partitions.py). Methods raise `IggyError` with an Iggy code on a business error (not found,
already exists, invalid value), and a storage code when the disk refuses a write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pyggy.core import auth
from pyggy.core.clock import Clock, SystemClock
from pyggy.core.errors import IggyError
from pyggy.core.lost_found import LostAndFound
from pyggy.core.metadata.machine import MetadataStateMachine
from pyggy.core.metadata.state_log import StateLog
from pyggy.core.model import UNLIMITED_SIZE, Topic
from pyggy.core.offsets import CONSUMER, CONSUMER_GROUP
from pyggy.core.storage import compaction_policy
from pyggy.core.storage.partition_log import PartitionLog
from pyggy.core.storage.tiered import run_blocking
from pyggy.core.transactions import AbortedRanges

from .cluster import ClusterView

if TYPE_CHECKING:
    from pyggy.core.storage.scrub import ScrubReport
from .commands import CommandLog
from .consumers import ConsumerService
from .data import (
    BALANCED,
    FIRST,
    LAST,
    MESSAGES_KEY,
    NEXT,
    OFFSET,
    PARTITION_ID,
    POLL_MAX_BYTES,
    TIMESTAMP,
    DataService,
    PollResult,
)
from .identity import IdentityService
from .metadata import MetadataService
from .partitions import PartitionFiles, RemoteFactory, elsewhere
from .replicated import ReplicatedState
from .transactions import TransactionService

__all__ = ["BALANCED", "CONSUMER", "CONSUMER_GROUP", "FIRST", "LAST", "MESSAGES_KEY", "NEXT",
           "OFFSET", "PARTITION_ID", "POLL_MAX_BYTES", "TIMESTAMP", "LogEngine", "PollResult",
           "RemoteFactory"]

log = logging.getLogger(__name__)


class LogEngine:
    """Streams, topics, partitions, users, offsets and groups of one node."""

    def __init__(self, root: Path, clock: Clock | None = None, validate_checksum: bool = True,
                 state_fsync: bool = True, remote: RemoteFactory | None = None,
                 hasher: auth.HashPool | None = None) -> None:
        self.root = Path(root)
        self.clock: Clock = clock or SystemClock()
        self.lost_found = LostAndFound(self.root)
        self.commands = CommandLog(MetadataStateMachine(),
                                   StateLog(self.root / "state" / "state.log", fsync=state_fsync),
                                   self.clock)
        self.files = PartitionFiles(self.root, self.clock, self.lost_found, validate_checksum,
                                    remote, self.commands.writes)
        self.metadata = MetadataService(self.commands, self.files)
        self.commands.applier = self.metadata.apply
        self.cluster: ClusterView | None = None  # a cluster node's query service
        # password hashing runs there, off the event loop (the async user methods use it)
        self.identity = IdentityService(self.commands, hasher or auth.ThreadHashPool())
        # consumer state a cluster replicates through its metadata group (replicated.py)
        self.replicated = ReplicatedState()
        self.consumers = ConsumerService(self.commands, self.metadata, self.files,
                                         self.replicated)
        self.data = DataService(self.metadata, self.consumers)
        self.txns = TransactionService(self.commands, self.metadata, self.data)
        self.generated_root_password: str | None = None
        # Listeners: (topic, partition id) after every append; (stream name, topic,
        # partitions) after partitions are deleted; (topic, partition id, segment) when a
        # partition's active segment is sealed. Through either door.
        self.append_listeners = self.data.append_listeners
        self.delete_listeners = self.metadata.delete_listeners
        self.seal_listeners = self.files.seal_listeners

    @property
    def state(self) -> StateLog:
        return self.commands.state

    # -- lifecycle -------------------------------------------------------------------------
    def open(self, root_credentials: tuple[str, str] | auth.RootUser | None = None,
             repair_state: bool = False) -> None:
        """Replay the state log, open every partition (recovering tails), ensure a root user.

        Raises `CorruptState` when the state log is damaged beyond repair; `repair_state` then
        keeps its provable prefix instead (see core/metadata/state_log.py)."""
        started = time.monotonic()
        meta = self.commands.meta
        replayed = 0
        for cmd in self.state.replay(repair=repair_state, lost_found=self.lost_found):
            self.commands.last_op = max(self.commands.last_op, cmd.get("op", 0))
            try:
                meta.apply(cmd)
            except IggyError as e:  # a command that failed live is never logged; be loud
                log.error("state log command %s failed on replay: %s", cmd.get("type"), e)
            replayed += 1
        for t in self.metadata.all_topics():
            for p in t.partitions:
                self.files.attach(t, p)
        self.files.remove_orphans(meta.streams)
        if self.commands.logged:  # a shard other than 0 finds the root user shard 0 made
            self.generated_root_password = self.identity.ensure_root(root_credentials)
        log.info("engine opened %s: %d state entries, %d streams in %.0f ms", self.root,
                 replayed, len(meta.streams), (time.monotonic() - started) * 1000)

    def close(self) -> None:
        """Flush and fsync every partition, mark them clean, close the state log."""
        self.files.close(self.commands.meta.streams)
        self.identity.hasher.close()
        self.state.close()

    # -- maintenance -----------------------------------------------------------------------
    def partition_logs(self) -> list[PartitionLog]:
        return [plog for _, plog in self.files.logs(self.commands.meta.streams)]

    def clean(self) -> int:
        """Enforce message expiry and max topic size on sealed segments; return segments gone."""
        now = self.clock.now_us()
        removed = 0
        for t, share in self._retained():
            for p in t.partitions:
                removed += p.log.enforce_retention(now, t.options.message_expiry, share)
        self._prune_aborted()
        return removed

    def _retained(self) -> Iterator[tuple[Topic, int | None]]:
        """The topics retention applies to, each with its partitions' share of the maximum
        topic size (None: unlimited); compact-only topics keep everything, as Kafka's do."""
        for t in self.metadata.all_topics():
            o = t.options
            policy = compaction_policy.policy_of(o)
            if policy is not None and not policy.delete:
                continue
            share = None
            if o.max_topic_size not in (0, UNLIMITED_SIZE) and t.partitions:
                share = o.max_topic_size // len(t.partitions)
            yield t, share

    def _prune_aborted(self) -> None:
        """After retention: aborted transaction ranges below every log start are dropped."""
        self.txns.state.prune_aborted({(t.stream_id, t.id, p.id): p.log.start_offset
                                       for t in self.metadata.all_topics()
                                       for p in t.partitions})

    async def clean_replicated(self) -> int:
        """`clean` in a cluster: retention of each partition this node leads, proposed as an
        op of its group so every replica removes the same segments (a local deletion would
        let repair or a new leader disagree); segments removed here."""
        cluster = self.cluster
        assert cluster is not None
        now = self.clock.now_us()
        removed = 0
        for t, share in self._retained():
            o = t.options
            for p in t.partitions:
                if (not p.log.retention_due(now, o.message_expiry, share)
                        or cluster.partition(t.stream_id, t.id, p.id).leader
                        != cluster.replica_id):
                    continue
                try:
                    removed += await cluster.retention(t.stream_id, t.id, p.id,
                                                       o.message_expiry, share)
                except IggyError:  # leadership moved or the outcome is unknown: next pass
                    continue
        self._prune_aborted()
        return removed

    async def compact(self) -> int:
        """A compaction pass over every partition of a compacted topic that is due one
        (core/storage/compaction.py); returns segments rewritten."""
        from pyggy.core.storage import compaction  # loaded at the first pass, not at start

        rewritten = 0
        for t in self.metadata.all_topics():
            policy = compaction_policy.policy_of(t.options)
            if policy is None:
                continue
            for p in t.partitions:
                plog = p.log
                if elsewhere(plog):  # another shard process compacts it
                    continue
                key = (t.stream_id, t.id, p.id)
                stable = self.txns.state.last_stable(key, plog.next_offset)
                ranges = self.txns.state.aborted.get(key)
                rewritten += await compaction.compact(
                    plog, policy, self.clock.now_us(), stable, _aborted_in(ranges))
        return rewritten

    def offload(self) -> int:
        """Tiering: drop local copies of archived sealed segments beyond each topic's
        `local_retention_bytes` / `local_retention_segments`; return how many went."""
        gone = 0
        for t in self.metadata.all_topics():
            o = t.options
            max_bytes = None if o.local_retention_bytes in (0, UNLIMITED_SIZE) \
                else o.local_retention_bytes
            max_segments = o.local_retention_segments or None
            if max_bytes is None and max_segments is None:
                continue
            for p in t.partitions:
                gone += p.log.offload(max_bytes, max_segments)
        return gone

    def scrub(self) -> ScrubReport:
        """Verify every stored batch of every local segment now (reading the archive on this
        thread for repairs): what `pyggy-scrub` runs after `open`."""
        from pyggy.core.storage.scrub import ScrubReport, scrub_partition

        report = ScrubReport()
        for plog in self.partition_logs():
            run_blocking(scrub_partition(plog, report))
        return report

    def counts(self) -> dict[str, int]:
        topics = self.metadata.all_topics()
        parts = [p for t in topics for p in t.partitions]
        return {
            "streams": len(self.commands.meta.streams), "topics": len(topics),
            "partitions": len(parts), "segments": sum(p.log.segments_count for p in parts),
            "messages": sum(p.log.messages_count for p in parts),
            "size": sum(p.log.size_bytes for p in parts),
            "groups": sum(len(t.groups) for t in topics),
        }


def _aborted_in(ranges: AbortedRanges | None) -> compaction_policy.Aborted:
    """Whether a transactional batch (producer id, base offset) was aborted."""
    def aborted(producer_id: int, offset: int) -> bool:
        return ranges is not None and any(
            pid == producer_id for pid, _ in ranges.overlapping(offset, offset + 1))
    return aborted
