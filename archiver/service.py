"""The archiver's background task: uploads sealed segments and state-log snapshots, drops local
copies per each topic's tiering options, deletes archived objects that retention let go.

Runs on the server's event loop; every archive call runs on one worker thread, in order (so a
delete and a re-upload of the same key cannot overtake each other). The loop wakes when a
segment seals, when something is queued for deletion, after a backoff following a failure, and
every `interval` in any case.

Failure policy: an upload or delete that fails leaves everything as it was (a local segment is
deleted only once its upload is verified and recorded in the partition's manifest) and is
retried with exponential backoff; the server keeps accepting and serving. The first failure of
an outage is logged as a warning, then one line a minute while it lasts, and the recovery once.
An archive that refuses us for good (wrong credentials, missing bucket) is logged as an error
with what to fix, and retried every `max_backoff` seconds: never a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pyggy.archiver import layout
from pyggy.archiver.base import Archiver, ArchiverError, Source, sha256_fd
from pyggy.archiver.threads import DaemonExecutor
from pyggy.archiver.tiered import Entry, TieredPartition, TieredStore, write_atomic
from pyggy.core.engine import LogEngine
from pyggy.core.errors import IggyError
from pyggy.core.metadata.state_log import CorruptState, StateLog
from pyggy.core.model import Partition, Topic
from pyggy.core.storage.index import ENTRY_SIZE
from pyggy.core.storage.scrub import verify_segment_file
from pyggy.core.storage.segment import Segment

log = logging.getLogger(__name__)

STATE_RECORD = "state.json"
LOUD_EVERY = 60.0  # seconds between repeated warnings during an outage


class BackgroundTelemetry(Protocol):
    """What the archiver asks of telemetry (pyggy/telemetry.py `Telemetry`, when on)."""

    def background(self, name: str, **attributes: Any) -> AbstractContextManager[object]:
        """A span around one round of background work."""
        ...


@dataclass(slots=True)
class ServiceSettings:
    messages: bool = True  # archive sealed segments ([data_maintenance.messages] archiver_enabled)
    state: bool = False  # archive the state log ([data_maintenance.state] archiver_enabled)
    state_overwrite: bool = True
    state_interval: float = 60.0
    interval: float = 60.0  # a full pass at least this often
    staging_dir: Path = field(default_factory=lambda: Path("local_data/s3_tmp"))
    min_backoff: float = 0.5
    max_backoff: float = 30.0


@dataclass(slots=True)
class Counters:
    segments_archived: int = 0
    bytes_archived: int = 0
    segments_offloaded: int = 0
    objects_deleted: int = 0
    state_snapshots: int = 0
    failures: int = 0


class DamagedSegment(Exception):
    """A sealed segment failed verification: it is not uploaded."""


class ArchiverService:
    def __init__(self, engine: LogEngine, store: TieredStore, settings: ServiceSettings) -> None:
        self.engine = engine
        self.store = store
        self.archiver: Archiver = store.archiver
        self.settings = settings
        self.io = DaemonExecutor(1, "pyggy-archive-io")
        self.counters = Counters()
        self.damaged: set[str] = set()  # log keys of segments not archived: they failed checks
        self.ready = False
        self._wake = asyncio.Event()
        self._seen: dict[tuple[int, int, int], int] = {}
        self._failing_since: float | None = None
        self._attempts = 0
        self._last_loud = 0.0
        self._state_due = 0.0
        self._state_sha = self._load_state_record()
        self.telemetry: BackgroundTelemetry | None = None  # set by the server when it is on
        store.wake = self.wake
        engine.append_listeners.append(self._appended)

    # -- wake-ups ----------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def _appended(self, t: Topic, partition_id: int) -> None:
        """After every append: wake up when the partition rolled to a new segment."""
        n = len(t.partitions[partition_id].log.segments)
        key = (t.stream_id, t.id, partition_id)
        if n != self._seen.get(key, 1):
            self._seen[key] = n
            if n > 1:
                self._wake.set()

    # -- main loop ---------------------------------------------------------------------------
    async def run(self) -> None:
        log.info("archiver: %s; segments %s, state log %s", self.archiver.describe(),
                 "on" if self.settings.messages else "off",
                 "on" if self.settings.state else "off")
        while True:
            self._wake.clear()
            if self.telemetry is None:
                ok = await self._pass()
            else:
                with self.telemetry.background("archiver.pass",
                                               **{"archiver.kind": self.archiver.describe()}):
                    ok = await self._pass()
            if ok:
                delay = self.settings.interval
                if self.settings.state:
                    delay = min(delay, max(self._state_due - time.monotonic(), 0.05))
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(min(self.settings.max_backoff, self.settings.min_backoff
                                        * 2 ** min(self._attempts - 1, 16)))

    async def _pass(self) -> bool:
        """One round of work; False if the archive failed (then back off)."""
        try:
            if not self.ready:
                await self._call(self.archiver.init)
                self.ready = True
                log.info("archiver: %s is ready", self.archiver.describe())
            await self._delete_pending()
            if self.settings.messages:
                await self._archive_segments()
            # tiering drops local copies: in a cluster every replica's segments must stay
            # the same files (repair, state transfer), so it is not run there
            offloaded = self.engine.offload() if self.engine.cluster is None else 0
            if offloaded:
                self.counters.segments_offloaded += offloaded
                log.info("archiver: %d archived segment(s) left local disk (tiering)", offloaded)
            if (self.settings.state and time.monotonic() >= self._state_due
                    and self._leads_metadata()):
                await self._archive_state()
                self._state_due = time.monotonic() + self.settings.state_interval
        except ArchiverError as e:
            self._failed(e)
            return False
        except Exception:
            log.exception("archiver: unexpected error; retrying")
            self._failed(ArchiverError("unexpected error"))
            return False
        if self._failing_since is not None:
            log.info("archiver: %s is reachable again after %d failed attempt(s) in %.0f s; "
                     "caught up", self.archiver.describe(), self._attempts,
                     time.monotonic() - self._failing_since)
        self._failing_since = None
        self._attempts = 0
        return True

    def _failed(self, e: ArchiverError) -> None:
        now = time.monotonic()
        self.counters.failures += 1
        self._attempts += 1
        if getattr(e, "permanent", False):
            if self._failing_since is None or now - self._last_loud >= LOUD_EVERY:
                log.error("archiver: %s; nothing is archived and no local segment is deleted "
                          "until this is fixed (retrying every %.0f s)", e,
                          self.settings.max_backoff)
                self._last_loud = now
            self._failing_since = self._failing_since or now
            self.ready = False
            return
        if self._failing_since is None:
            self._failing_since = now
            self._last_loud = now
            log.warning("archiver: %s; segments stay on local disk, retrying with backoff", e)
        elif now - self._last_loud >= LOUD_EVERY:
            self._last_loud = now
            log.warning("archiver: still failing after %d attempts in %.0f s: %s",
                        self._attempts, now - self._failing_since, e)
        else:
            log.debug("archiver: attempt %d failed: %s", self._attempts, e)

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    # -- deletions ---------------------------------------------------------------------------
    async def _delete_pending(self) -> None:
        keys = [k for k in self.store.pending_deletes if k not in self.store.live_keys]
        if not keys:
            if self.store.pending_deletes:  # all re-uploaded meanwhile
                self.store.pending_deletes = []
                self.store.save_pending()
            return
        await self._call(self.archiver.delete, keys)
        self.store.pending_deletes = [k for k in self.store.pending_deletes if k not in keys]
        self.store.save_pending()
        self.counters.objects_deleted += len(keys)
        log.info("archiver: deleted %d archived object(s) (retention, purge or delete)",
                 len(keys))

    # -- segments ----------------------------------------------------------------------------
    async def _archive_segments(self) -> None:
        for topic in self.engine.metadata.all_topics():
            stream_name = self.engine.metadata.stream_name(topic.stream_id)
            for p in list(topic.partitions):
                plog = p.log
                tp = plog.remote if plog is not None else None
                if not isinstance(tp, TieredPartition) or not self._leads(topic, p.id):
                    continue
                for seg in list(plog.segments[:-1]):  # every segment but the active one
                    if not len(seg.index) or tp.is_archived(seg.start_offset,
                                                             seg.next_offset, seg.size):
                        continue
                    await self._upload_segment(stream_name, topic, p, seg, tp)

    def _leads_metadata(self) -> bool:
        """The state log is archived by the metadata group's primary only."""
        cluster = self.engine.cluster
        return cluster is None or cluster.metadata_leader() == cluster.replica_id

    def _leads(self, topic: Topic, partition_id: int) -> bool:
        """In a cluster only a partition's leader uploads its segments (once, not from every
        replica); a single node leads everything."""
        cluster = self.engine.cluster
        return cluster is None or cluster.partition(
            topic.stream_id, topic.id, partition_id).leader == cluster.replica_id

    async def _upload_segment(self, stream_name: str, topic: Topic, p: Partition, seg: Segment,
                              tp: TieredPartition) -> None:
        log_key, index_key = layout.segment_keys(stream_name, topic.name, p.id,
                                                 seg.start_offset)
        idx = seg.index
        size, index_size = seg.size, len(idx) * ENTRY_SIZE
        index_bytes = idx.to_bytes()  # what the segment's reads trust, checked against the log
        bounds = (seg.start_offset, seg.next_offset, size, idx.timestamps[0],
                  idx.timestamps[-1], idx.max_timestamps[-1])
        generation = tp.generation
        try:
            log_fd = os.open(seg.log_path, os.O_RDONLY)
        except FileNotFoundError:
            return  # deleted meanwhile (retention)
        try:
            index_fd = os.open(seg.index_path, os.O_RDONLY)
        except FileNotFoundError:
            os.close(log_fd)
            return
        self.store.unqueue([log_key, index_key])
        started = time.monotonic()
        try:
            log_sha, index_sha = await self._call(self._upload_files, log_fd, size, log_key,
                                                  index_fd, index_bytes, index_key)
        except DamagedSegment as e:
            if p.log is None or not any(s is seg for s in p.log.segments):
                return  # replaced by its compacted copy while uploading: the next pass
            if log_key not in self.damaged:  # once per segment, not once per pass
                self.damaged.add(log_key)
                log.error("archiver: segment %s is not archived: %s (pyggy-scrub reports it; "
                          "the damaged batches are refused to readers)", seg.log_path, e)
            return
        still_there = (p.log is not None and p.log.remote is tp and tp.generation == generation
                       and any(s is seg for s in p.log.segments) and seg.size == size)
        if not still_there:  # deleted, purged or retained away during the upload
            log.info("archiver: segment %s went away during its upload; deleting the copy",
                     log_key)
            self.store.queue_delete([log_key, index_key])
            return
        entry = Entry(*bounds, log_key=log_key, log_sha256=log_sha, index_key=index_key,
                      index_size=index_size, index_sha256=index_sha)
        cluster = self.engine.cluster
        if cluster is None:
            tp.add(entry)
        else:  # every replica records it (partition_sm ARCHIVED), this one when it applies
            try:
                await cluster.archived(topic.stream_id, topic.id, p.id, entry.record())
            except IggyError as e:
                log.info("archiver: segment %s uploaded but not recorded (%s); the "
                         "partition's leader uploads it again", log_key, e)
                return
        self.counters.segments_archived += 1
        self.counters.bytes_archived += size + index_size
        log.info("archiver: archived segment %s (offsets %d..%d, %d bytes) in %.2f s", log_key,
                 bounds[0], bounds[1] - 1, size, time.monotonic() - started)

    def _upload_files(self, log_fd: int, size: int, log_key: str, index_fd: int,
                      index_bytes: bytes, index_key: str) -> tuple[str, str]:
        """Worker thread: verify the segment (the archive must only ever hold sound copies),
        then hash and upload the log, then the index; verified by the archiver."""
        log_src = index_src = None
        index_size = len(index_bytes)
        try:
            problems = verify_segment_file(log_fd, index_bytes)
            if problems:
                raise DamagedSegment("; ".join(problems[:3]))
            if os.pread(index_fd, index_size + 1, 0) != index_bytes:
                # the file rotted (or holds more): upload the entries the reads trust instead
                os.close(index_fd)
                index_fd = os.memfd_create("pyggy-index")
                os.pwrite(index_fd, index_bytes, 0)
            log_src = Source(log_fd, size, sha256_fd(log_fd, size))
            index_src = Source(index_fd, index_size, sha256_fd(index_fd, index_size))
            self.archiver.archive(log_key, log_src)
            self.archiver.archive(index_key, index_src)
            return log_src.sha256, index_src.sha256
        finally:
            for fd in (log_fd, index_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)

    # -- state log ---------------------------------------------------------------------------
    def _load_state_record(self) -> str | None:
        try:
            return json.loads((self.store.state_dir / STATE_RECORD).read_text()).get("sha256")
        except (OSError, ValueError):
            return None

    async def _archive_state(self) -> None:
        state = self.engine.state
        size = state.size
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        key = layout.state_key(self.settings.state_overwrite, stamp)
        try:
            sha = await self._call(self._upload_state, state, size, key)
        except CorruptState as e:  # never archive what does not verify
            log.error("archiver: state log not archived: %s", e)
            return
        if sha is None:
            return
        self._state_sha = sha
        write_atomic(self.store.state_dir / STATE_RECORD,
                     json.dumps({"sha256": sha, "key": key, "size": size}).encode())
        self.counters.state_snapshots += 1
        log.info("archiver: archived the state log as %s (%d bytes)", key, size)

    def _upload_state(self, state: StateLog, size: int, key: str) -> str | None:
        """Worker thread: snapshot the first `size` bytes of the state log, every entry
        verified in either copy, into the staging directory (appends may go on meanwhile),
        upload it unless unchanged."""
        staging = self.settings.staging_dir
        staging.mkdir(parents=True, exist_ok=True)
        snapshot = staging / f"state-{os.getpid()}.log"
        snapshot.write_bytes(state.read_verified(size))
        try:
            source = Source.open(snapshot)
            try:
                if source.sha256 == self._state_sha:
                    return None
                self.archiver.archive(key, source)
                return source.sha256
            finally:
                source.close()
        finally:
            snapshot.unlink(missing_ok=True)

    def close(self) -> None:
        self.io.shutdown(wait=False)
        self.store.close()
