"""PartitionFiles: the on-disk side of partitions — their logs and consumer-offset stores,
opened, created, purged and deleted as metadata commands say, and nothing else.

Nothing metadata cannot account for is deleted: directories under `streams/` that the state
log does not know, and leftovers of a deleted partition whose id is used again, go to
`<data>/lost+found/` (core/lost_found.py).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import NoReturn, cast

from pyggy.core.clock import Clock
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.lost_found import LostAndFound
from pyggy.core.model import MAX_PARTITIONS_PER_REQUEST, Partition, Stream, Topic
from pyggy.core.offsets import ConsumerOffsets
from pyggy.core.storage.fsync import GroupCommitter
from pyggy.core.storage.outage import WriteOutage
from pyggy.core.storage.partition_log import PartitionLog
from pyggy.core.storage.segment import Segment
from pyggy.core.storage.tiered import RemoteSegments

# (topic, partition, partition directory) -> the partition's archive tier, or None
RemoteFactory = Callable[[Topic, Partition, Path], RemoteSegments | None]
# listener(topic, partition id, segment) when a partition's active segment is sealed
SealListener = Callable[[Topic, int, Segment], None]
OffsetsKey = tuple[int, int, int]  # (stream id, topic id, partition id)
log = logging.getLogger(__name__)


class PartitionFiles:
    """Partition logs and Iggy consumer-offset stores under `<root>/streams/`."""

    def __init__(self, root: Path, clock: Clock, lost_found: LostAndFound,
                 validate_checksum: bool, remote: RemoteFactory | None,
                 metadata_writes: WriteOutage) -> None:
        self.root = root
        self.clock = clock
        self.lost_found = lost_found
        self.validate_checksum = validate_checksum
        self.remote = remote  # tiered storage: each partition log's archive tier
        self.metadata_writes = metadata_writes
        self.committer = GroupCommitter()
        self.message_writes = WriteOutage("messages", clock, log,
                                          ErrorCode.CANNOT_SAVE_MESSAGES_TO_SEGMENT)
        self.offsets: dict[OffsetsKey, ConsumerOffsets] = {}
        self.seal_listeners: list[SealListener] = []
        # Shard processes (docs/sharding.md): the partitions this process opens (None: all),
        # and whether it makes and removes directories (shard 0 only; the others open the
        # partitions they own once shard 0 made them).
        self.owns: Callable[[int, int, int], bool] | None = None
        self.manages_dirs = True

    def path(self, stream_id: int, topic_id: int, partition_id: int) -> Path:
        return (self.root / "streams" / str(stream_id) / "topics" / str(topic_id)
                / "partitions" / str(partition_id))

    def offsets_of(self, t: Topic, partition_id: int) -> ConsumerOffsets:
        try:
            return self.offsets[(t.stream_id, t.id, partition_id)]
        except KeyError:
            raise IggyError(ErrorCode.PARTITION_NOT_FOUND, f"partition {partition_id} is "
                            "served by another shard process") from None

    # -- opening and creating -------------------------------------------------------------
    def attach(self, topic: Topic, p: Partition) -> None:
        """Open (recovering) a partition's log and offsets store; a partition another shard
        owns gets an `ElsewhereLog` stand-in instead."""
        if self.owns is not None and not self.owns(topic.stream_id, topic.id, p.id):
            p.log = cast(PartitionLog, ElsewhereLog())  # typed as a log: see `elsewhere`
            return
        path = self.path(topic.stream_id, topic.id, p.id)
        remote = self.remote(topic, p, path) if self.remote is not None else None
        p.log = PartitionLog(path, p.id, topic.options, self.committer, self.clock,
                             self.validate_checksum, remote, lost_found=self.lost_found,
                             writes=self.message_writes)
        p.log.open()
        p.log.on_seal = partial(self._sealed, topic, p.id)
        self.offsets[(topic.stream_id, topic.id, p.id)] = ConsumerOffsets(path, self.lost_found)

    def _sealed(self, topic: Topic, partition_id: int, segment: Segment) -> None:
        for listener in self.seal_listeners:
            listener(topic, partition_id, segment)

    def new_dirs(self, stream_id: int, topic_id: int, first: int, count: int) -> list[Path]:
        """Create the directories of partitions a command is about to create, before it is
        logged, so a full disk fails the command and leaves nothing half made. A directory
        left over from a deleted partition with the same id goes to lost+found first."""
        made: list[Path] = []
        if not self.manages_dirs:
            return made
        try:
            for pid in range(first, first + min(max(count, 0), MAX_PARTITIONS_PER_REQUEST)):
                path = self.path(stream_id, topic_id, pid)
                if path.exists():
                    self.set_aside(path, "leftover of a deleted partition whose id is used "
                                   "again")
                path.mkdir(parents=True)
                made.append(path)
        except OSError as e:
            self.remove_dirs(made)
            raise self.metadata_writes.failed(e) from None
        return made

    def remove_dirs(self, made: list[Path]) -> None:
        """Remove the directories `new_dirs` made for a failed command, and their parents up
        to `streams/` while empty (rmdir: a directory with anything in it stays)."""
        stop = self.root / "streams"
        for path in reversed(made if self.manages_dirs else []):
            while path != stop and stop in path.parents:
                try:
                    path.rmdir()
                except OSError:
                    break
                path = path.parent

    def attach_new(self, t: Topic, parts: Sequence[Partition],
                   undo: Callable[[], object]) -> None:
        """Open the logs of partitions just created; if the disk refuses (no inode left, EIO),
        `undo` (the command's inverse) runs and the command fails with the storage error."""
        try:
            for p in parts:
                self.attach(t, p)
        except OSError as e:
            error = self.metadata_writes.failed(e)
            self.detach(t, parts)  # their directories: made by this command
            undo()
            raise error from None

    # -- removing --------------------------------------------------------------------------
    def detach(self, topic: Topic, parts: Sequence[Partition]) -> None:
        """Delete partitions' files (a user's delete command)."""
        for p in parts:
            if p.log is not None and not elsewhere(p.log):
                p.log.destroy()
            self.offsets.pop((topic.stream_id, topic.id, p.id), None)

    def remove_stream(self, stream_id: int) -> None:
        if self.manages_dirs:
            shutil.rmtree(self.root / "streams" / str(stream_id), ignore_errors=True)

    def remove_topic(self, stream_id: int, topic_id: int) -> None:
        if self.manages_dirs:
            shutil.rmtree(self.path(stream_id, topic_id, 0).parent.parent, ignore_errors=True)

    def purge(self, t: Topic) -> None:
        """Purge the partitions this process owns (the others are their owners' to purge)."""
        for p in t.partitions:
            if not elsewhere(p.log):
                self.purge_partition(t, p.id)

    def purge_partition(self, t: Topic, partition_id: int) -> None:
        t.partitions[partition_id].log.purge()
        self.offsets_of(t, partition_id).clear()

    def set_aside(self, path: Path, why: str) -> None:
        """Move a directory metadata does not account for to lost+found (an empty tree, which
        holds nothing to account for, is just removed)."""
        if not any(f.is_file() or f.is_symlink() for f in path.rglob("*")):
            for d in sorted((d for d in path.rglob("*")), key=lambda d: -len(d.parts)):
                d.rmdir()
            path.rmdir()
            return
        self.lost_found.move(path, why)

    def remove_orphans(self, streams: dict[int, Stream]) -> None:
        """Directories under `streams/` that the state log does not know go to lost+found."""
        streams_dir = self.root / "streams"
        if not streams_dir.is_dir() or not self.manages_dirs:
            return
        why = "not in the metadata (state log)"
        for sdir in sorted(streams_dir.iterdir()):
            s = streams.get(int(sdir.name)) if sdir.name.isdigit() else None
            if s is None:
                self.set_aside(sdir, f"stream directory {why}")
                continue
            for tdir in sorted((sdir / "topics").glob("*")):
                t = s.topics.get(int(tdir.name)) if tdir.name.isdigit() else None
                if t is None:
                    self.set_aside(tdir, f"topic directory {why}")
                    continue
                for pdir in sorted((tdir / "partitions").glob("*")):
                    if not pdir.name.isdigit() or int(pdir.name) >= len(t.partitions):
                        self.set_aside(pdir, f"partition directory {why}")

    # -- all of them ----------------------------------------------------------------------
    @staticmethod
    def logs(streams: dict[int, Stream]) -> Iterator[tuple[Topic, PartitionLog]]:
        for s in streams.values():
            for t in s.topics.values():
                for p in t.partitions:
                    if p.log is not None and not elsewhere(p.log):
                        yield t, p.log

    def close(self, streams: dict[int, Stream]) -> None:
        """Flush and fsync every partition and mark it clean."""
        for _, plog in self.logs(streams):
            plog.close(clean=True)
        self.committer.close()



class ElsewhereLog:
    """Stands in for the log of a partition another shard process owns (docs/sharding.md):
    the data and maintenance paths forward before reaching it (`elsewhere`); its statistics
    are the owner's as last asked for (`DataService.refresh_stats`), zeros before; a pass over
    local logs skips it; an operation not forwarded fails with PartitionNotFound (never a
    silent success: a flush here would claim a durability it did not give)."""

    def __init__(self) -> None:
        self.next_offset = self.start_offset = self.size_bytes = 0
        self.messages_count = self.segments_count = 0

    segments: tuple[()] = ()
    tiered: tuple[()] = ()

    @staticmethod
    def _elsewhere(*args: object, **kwargs: object) -> NoReturn:
        raise IggyError(ErrorCode.PARTITION_NOT_FOUND, "the partition is served by another "
                        "shard process, which this request is not forwarded to")

    sync = delete_oldest = advance_start = purge = read = read_async = _elsewhere
    batch_heads = offset_for_timestamp_async = append_iggy = append_kafka = _elsewhere

    def enforce_retention(self, *args: object) -> int:
        return 0

    def retention_due(self, *args: object) -> bool:
        return False

    def offload(self, *args: object) -> int:
        return 0

    def flush(self) -> None:
        pass


def elsewhere(plog: PartitionLog | None) -> bool:
    """Whether a partition's log is another shard process's (an `ElsewhereLog`)."""
    return isinstance(plog, ElsewhereLog)
