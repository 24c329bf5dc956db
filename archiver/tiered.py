"""Tiered storage: each partition's manifest of archived segments and reads served from the
archive through a bounded cache. `TieredPartition` is core's `RemoteSegments`.

The manifest, `<partition dir>/archive.json`, lists the segments confirmed in the archive
(uploaded and verified): bounds, timestamps, object keys, sizes and SHA-256s. It is the only
source of "this segment is safely archived": a local segment is deleted only once it is listed
there (`PartitionLog.offload`). It is kept as two checksummed copies, each fsynced
(core/small_file.py), and lives and dies with the partition directory. If both copies
are damaged it is rebuilt by re-listing the partition's prefix in the archive (each segment's
index is read back for its bounds; objects queued for deletion are left out), with an error
log and the damaged copies in lost+found; if the archive cannot be listed then, the server
refuses to start rather than hide the archived segments (`CorruptFile`).

The queue of archived objects to delete, `<state dir>/pending_deletes.json`, is kept the same
way; if both its copies are damaged the queue starts empty: those objects stay in the archive
(space, never data, is lost), and an error says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pyggy.archiver import layout
from pyggy.archiver.base import Archiver, ArchiverError
from pyggy.archiver.cache import RangeCache
from pyggy.archiver.threads import DaemonExecutor
from pyggy.core.errors import RemoteReadError
from pyggy.core.model import Partition, Topic
from pyggy.core.small_file import CorruptFile, SmallFile, sync_dir
from pyggy.core.storage.index import ENTRY_SIZE, SegmentIndex
from pyggy.core.storage.tiered import RemoteSegment

log = logging.getLogger(__name__)

MANIFEST = "archive.json"
PENDING_DELETES = "pending_deletes.json"
READ_BACKOFF = 5.0  # seconds reads fail fast after the archive failed a read


@dataclass(slots=True)
class Entry:
    """One archived segment, as recorded in the manifest."""

    start: int
    next: int
    size: int
    first_ts: int
    last_ts: int
    max_ts: int
    log_key: str
    log_sha256: str
    index_key: str
    index_size: int
    index_sha256: str

    def remote(self) -> RemoteSegment:
        return RemoteSegment(self.start, self.next, self.size, self.first_ts, self.last_ts,
                             self.max_ts)

    def record(self) -> bytes:
        """The entry as a cluster's ARCHIVED op carries it (`Entry.parse` reads it back)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @staticmethod
    def parse(data: bytes) -> Entry | None:
        """An entry from `record`, or None when the bytes are not one."""
        try:
            doc = json.loads(data)
        except ValueError:
            return None
        if not isinstance(doc, dict) or set(doc) != _ENTRY_FIELDS or not all(
                type(doc[k]) is (str if k.endswith(("_key", "_sha256")) else int)
                for k in doc):
            return None
        return Entry(**doc)


_ENTRY_FIELDS = {f.name for f in fields(Entry)}


def _json(data: bytes) -> bytes:
    """`Legacy` decoder of the one-copy JSON files these were before."""
    json.loads(data)
    return data


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    sync_dir(path.parent)


class TieredStore:
    """Everything partitions share: the archiver, the read cache, the thread pools, the queue
    of objects to delete. `remote_for` is the factory `LogEngine(remote=...)` takes."""

    def __init__(self, archiver: Archiver, state_dir: Path, cache_size: int,
                 names: Callable[[int, int], tuple[str, str]] | None = None) -> None:
        self.archiver = archiver
        self.cache = RangeCache(cache_size)
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # names(stream_id, topic_id) -> (stream name, topic name), set by the server.
        self.names = names
        self.readers = DaemonExecutor(4, "pyggy-archive-read")
        self.pending_deletes: list[str] = self._load_pending()
        self.live_keys: set[str] = set()
        self.read_down_until = 0.0
        self.read_error = ""
        self.wake: Callable[[], None] = lambda: None  # the archiver service's wake-up

    # -- factory -----------------------------------------------------------------------------
    def remote_for(self, topic: Topic, partition: Partition, path: Path) -> TieredPartition:
        return TieredPartition(self, topic.stream_id, topic.id, partition.id, Path(path))

    # -- deletion queue ----------------------------------------------------------------------
    def _load_pending(self) -> list[str]:
        self._pending = SmallFile(self.state_dir / PENDING_DELETES, legacy=_json)
        try:
            payload = self._pending.read()
            keys = [] if payload is None else json.loads(payload)
            if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
                raise ValueError("not a list of keys")
            return keys
        except (CorruptFile, ValueError) as e:
            log.error("archive deletion queue lost (%s): the objects it held stay in the "
                      "archive (space, not data, is lost)", e)
            self._pending.set_aside("damaged archive deletion queue")
            return []

    def save_pending(self) -> None:
        self._pending.write(json.dumps(self.pending_deletes).encode())

    def queue_delete(self, keys: list[str]) -> None:
        for key in keys:
            self.cache.forget(key)
            if key not in self.pending_deletes:
                self.pending_deletes.append(key)
        self.save_pending()
        self.wake()

    def unqueue(self, keys: list[str]) -> None:
        """An upload is about to (re)write these keys: a queued delete of them must not run."""
        if any(k in self.pending_deletes for k in keys):
            self.pending_deletes = [k for k in self.pending_deletes if k not in keys]
            self.save_pending()

    # -- reads -------------------------------------------------------------------------------
    def _check_reads(self) -> None:
        if time.monotonic() < self.read_down_until:
            raise RemoteReadError(f"archive unavailable ({self.read_error}); retrying shortly")

    def _read_failed(self, e: Exception) -> RemoteReadError:
        self.read_error = str(e)
        self.read_down_until = time.monotonic() + READ_BACKOFF
        log.warning("tiered read from %s failed: %s", self.archiver.describe(), e)
        return RemoteReadError(f"archived segment unavailable: {e}")

    def read_sync(self, key: str, start: int, length: int) -> bytes:
        self._check_reads()
        try:
            return self.archiver.read_range(key, start, length)
        except ArchiverError as e:
            raise self._read_failed(e) from None

    async def read_async(self, key: str, start: int, length: int) -> bytes:
        self._check_reads()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.readers, self.archiver.read_range, key,
                                              start, length)
        except ArchiverError as e:
            raise self._read_failed(e) from None

    def close(self) -> None:
        self.readers.shutdown(wait=False)


class TieredPartition:
    """One partition's archive tier (core's `RemoteSegments`)."""

    def __init__(self, store: TieredStore, stream_id: int, topic_id: int, partition_id: int,
                 path: Path) -> None:
        self.store = store
        self.stream_id, self.topic_id, self.partition_id = stream_id, topic_id, partition_id
        self.path = path
        self.generation = 0  # bumped by drop_all: uploads begun before it are stale
        self.entries: dict[int, Entry] = {}
        self._load()

    # -- manifest ----------------------------------------------------------------------------
    def _load(self) -> None:
        self.manifest = SmallFile(self.path / MANIFEST, legacy=_json)
        try:
            payload = self.manifest.read()
            if payload is None:
                return
            entries = [Entry(**item) for item in json.loads(payload).get("segments", [])]
        except (CorruptFile, ValueError, TypeError, AttributeError) as e:
            log.error("partition %s: archive manifest lost (%s); re-listing the archive",
                      self.path, e)
            entries = self._relist()  # CorruptFile if it cannot be: the files stay as they are
            self.manifest.set_aside("damaged archive manifest")
            self._remember(entries)
            self._save()
            return
        self._remember(entries)

    def _remember(self, entries: list[Entry]) -> None:
        for e in entries:
            self.entries[e.start] = e
            self.store.live_keys.update((e.log_key, e.index_key))

    def _relist(self) -> list[Entry]:
        """The segments under this partition's prefix in the archive, from their indexes
        (their logs are not read: `log_sha256` stays empty). CorruptFile if that fails."""
        try:
            if self.store.names is None:
                raise ArchiverError("the stream and topic names are unknown")
            prefix = layout.partition_prefix(*self.store.names(self.stream_id, self.topic_id),
                                             self.partition_id)
            objects = dict(self.store.archiver.list(prefix))
            entries = []
            for key, size in sorted(objects.items()):
                parsed = layout.parse_segment_key(key)
                log_key = key.removesuffix(".index") + ".log"
                if (parsed is None or parsed[4] != "index" or log_key not in objects
                        or key in self.store.pending_deletes):
                    continue
                data = self.store.archiver.read_all(key)
                idx = SegmentIndex.load(data)
                if not len(idx) or idx.positions[-1] + idx.lengths[-1] != objects[log_key]:
                    log.error("archive: %s does not describe %s; left out", key, log_key)
                    continue
                entries.append(Entry(parsed[3], idx.base_offsets[-1] + idx.counts[-1],
                                     objects[log_key], idx.timestamps[0], idx.timestamps[-1],
                                     idx.max_timestamps[-1], log_key, "", key, size,
                                     hashlib.sha256(data).hexdigest()))
        except ArchiverError as e:
            raise CorruptFile(self.path / MANIFEST, (
                f"{self.path / MANIFEST}: archive manifest lost and the archive cannot be "
                f"listed to rebuild it ({e}); refusing to start rather than hide the archived "
                f"segments. Start again once {self.store.archiver.describe()} is reachable"
            )) from None
        log.warning("partition %s: archive manifest rebuilt from the archive: %d segment(s)",
                    self.path, len(entries))
        return entries

    def _save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        doc = {"version": 1, "segments": [asdict(self.entries[s]) for s in sorted(self.entries)]}
        self.manifest.write(json.dumps(doc, indent=1).encode())

    def add(self, entry: Entry) -> None:
        """Record a segment as confirmed in the archive (after a verified upload)."""
        old = self.entries.get(entry.start)
        if old is not None:  # a new copy replaced it (compaction): cached bytes are stale
            self.store.cache.forget(old.log_key)
            self.store.cache.forget(old.index_key)
        self.entries[entry.start] = entry
        self.store.live_keys.update((entry.log_key, entry.index_key))
        self._save()

    def confirm(self, record: bytes) -> bool:
        entry = Entry.parse(record)
        if entry is None:
            return False
        self.add(entry)
        return True

    def keys(self, start: int) -> tuple[str, str] | None:
        e = self.entries.get(start)
        return None if e is None else (e.log_key, e.index_key)

    # -- RemoteSegments ----------------------------------------------------------------------
    def segments(self) -> list[RemoteSegment]:
        return [self.entries[s].remote() for s in sorted(self.entries)]

    def is_archived(self, start_offset: int, next_offset: int, size: int) -> bool:
        e = self.entries.get(start_offset)
        return e is not None and e.next == next_offset and e.size == size

    def _entry(self, start_offset: int) -> Entry:
        e = self.entries.get(start_offset)
        if e is None:
            raise RemoteReadError(f"segment {start_offset} of partition {self.partition_id} "
                                  "is not in the archive")
        return e

    def _parse_index(self, e: Entry, data: bytes) -> SegmentIndex:
        if len(data) != e.index_size or hashlib.sha256(data).hexdigest() != e.index_sha256:
            raise RemoteReadError(f"archived index {e.index_key} does not match its checksum")
        index = SegmentIndex.load(data)
        self.store.cache.put_object(e.index_key, index, len(data) + len(index) * ENTRY_SIZE)
        return index

    def index(self, start_offset: int) -> SegmentIndex:
        e = self._entry(start_offset)
        index = self.store.cache.get_object(e.index_key)
        if index is not None:
            return index
        return self._parse_index(e, self.store.read_sync(e.index_key, 0, e.index_size))

    async def index_async(self, start_offset: int) -> SegmentIndex:
        e = self._entry(start_offset)
        index = self.store.cache.get_object(e.index_key)
        if index is not None:
            return index
        return self._parse_index(e, await self.store.read_async(e.index_key, 0, e.index_size))

    def read(self, start_offset: int, position: int, length: int) -> bytes:
        e = self._entry(start_offset)
        data = self.store.cache.get(e.log_key, position, length)
        if data is not None:
            return data
        start, end = self._cover(e, position, length)
        return self._keep(e, start, position, length,
                          self.store.read_sync(e.log_key, start, end - start))

    async def read_async(self, start_offset: int, position: int, length: int) -> bytes:
        e = self._entry(start_offset)
        data = self.store.cache.get(e.log_key, position, length)
        if data is not None:
            return data
        start, end = self._cover(e, position, length)
        return self._keep(e, start, position, length,
                          await self.store.read_async(e.log_key, start, end - start))

    def _cover(self, e: Entry, position: int, length: int) -> tuple[int, int]:
        """The chunk-aligned range of the object holding [position, position + length)."""
        chunk = self.store.cache.chunk
        return (position - position % chunk,
                min(-(-(position + length) // chunk) * chunk, e.size))

    def _keep(self, e: Entry, start: int, position: int, length: int, blob: bytes) -> bytes:
        """Cache a fetched range and answer from it (whatever the cache keeps)."""
        self.store.cache.put(e.log_key, start, blob)
        return blob[position - start:position - start + length]

    def drop(self, start_offset: int) -> None:
        e = self.entries.pop(start_offset, None)
        if e is None:
            return
        self.store.live_keys.difference_update((e.log_key, e.index_key))
        self._save()
        self.store.queue_delete([e.log_key, e.index_key])

    def drop_all(self) -> None:
        self.generation += 1
        if not self.entries:
            return
        keys = [k for e in self.entries.values() for k in (e.log_key, e.index_key)]
        self.entries.clear()
        self.store.live_keys.difference_update(keys)
        if self.path.exists():
            self._save()
        self.store.queue_delete(keys)
