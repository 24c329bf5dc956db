"""Partition logs holding batches of both encodings, and a reader that classifies each batch
as served intact, refused, or (never acceptable) served wrong."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyggy.core.clock import SystemClock
from pyggy.core.errors import CorruptBatch
from pyggy.core.model import TopicOptions
from pyggy.core.records import kafka_batch
from pyggy.core.records.iggy_batch import build_batch
from pyggy.core.storage.fsync import GroupCommitter
from pyggy.core.storage.partition_log import PartitionLog

Stored = list[tuple[int, bytes]]  # (base offset, stamped batch bytes) in log order


def open_log(path: Path, segment_size: int = 4000, **kwargs) -> PartitionLog:
    log = PartitionLog(path, 0, TopicOptions(segment_size=segment_size), GroupCommitter(),
                       SystemClock(), **kwargs)
    log.open()
    return log


def iggy(n: int, start: int) -> bytearray:
    return build_batch([(start + i + 1, f"iggy-{start + i:06d}".encode().ljust(90, b"."), b"",
                         1000 + i) for i in range(n)])


def kafka(n: int, start: int) -> bytearray:
    return kafka_batch.build_batch(
        [(1_700_000_000_000 + i, f"k{start + i}".encode(),
          f"kafka-{start + i:06d}".encode().ljust(90, b"."), [(b"h", b"v")]) for i in range(n)])


def fill(log: PartitionLog, batches: int, per_batch: int = 5) -> Stored:
    """Append `batches` batches, every third one a Kafka batch; return what was stored."""
    stored: Stored = []

    async def go() -> None:
        for k in range(batches):
            start = log.next_offset
            if k % 3 == 2:
                b = kafka(per_batch, start)
                info = kafka_batch.validate_batch(b)
                await log.append_kafka(b, info.record_count, info.max_timestamp)
            else:
                b = iggy(per_batch, start)
                await log.append_iggy(b, per_batch)
            stored.append((start, bytes(b)))

    asyncio.run(go())
    return stored


def outcome(log: PartitionLog, stored: Stored) -> list[str]:
    """Per stored batch: "ok" (its exact bytes served), "refused" (CorruptBatch), "gone" (no
    longer in the log), or "WRONG" (other bytes served: a defect)."""
    out = []
    for base, data in stored:
        try:
            refs = log.read(base, 1)
        except CorruptBatch:
            out.append("refused")
            continue
        if not refs or refs[0].base_offset != base:
            out.append("gone")
        else:
            out.append("ok" if bytes(refs[0].data) == data else "WRONG")
    return out


def kept_aside(path: Path, pattern: str = "*") -> list[Path]:
    """Files of the partition at `path` that recovery moved or copied to lost+found (outside a
    data directory, the lost+found of the partition's parent directory)."""
    return [p for p in (path.parent / "lost+found").rglob(pattern)
            if p.is_file() and path.name in p.relative_to(path.parent).parts]
