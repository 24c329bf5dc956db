"""An in-process node for archive tests: an engine with a tiered store over a (faulty) disk
archive, and the archiver service's passes driven by hand (no timers)."""

from __future__ import annotations

from pathlib import Path

from pyggy.archiver.disk import DiskArchiver
from pyggy.archiver.faulty import FaultyArchiver
from pyggy.archiver.service import ArchiverService, ServiceSettings
from pyggy.archiver.tiered import TieredStore
from pyggy.core.engine import OFFSET, LogEngine
from pyggy.core.records.iggy_batch import build_batch, iter_messages

SEGMENT = 4000  # bytes; in-process tests set it below Iggy's 1 MiB minimum directly


class Node:
    """An engine with a tiered store over a (faulty) disk archive, and its service."""

    def __init__(self, root: Path, cache_size: int = 1 << 20) -> None:
        self.root = root
        self.faulty = FaultyArchiver(DiskArchiver(root / "archive"))
        self.store = TieredStore(self.faulty, root / "data" / "archiver", cache_size)
        self.engine = LogEngine(root / "data", state_fsync=False, remote=self.store.remote_for)
        self.engine.open(("iggy", "iggy"))
        self.service = ArchiverService(self.engine, self.store, ServiceSettings(
            messages=True, state=True, interval=3600, staging_dir=root / "staging",
            state_interval=0))

    async def topic(self, local_segments: int = 2):
        if self.engine.metadata.get_stream("s") is None:
            await self.engine.metadata.create_stream("s")
        metadata = self.engine.metadata
        t = metadata.get_topic("s", "t") or await metadata.create_topic("s", "t", 1)
        t.options.segment_size = SEGMENT
        t.options.local_retention_segments = local_segments
        return t

    async def produce(self, n: int, per_batch: int = 10, start: int = 0) -> None:
        for k in range(start, start + n, per_batch):
            msgs = [(i + 1, f"message-{i:06d}".encode().ljust(100, b"."), b"", 1000 + i)
                    for i in range(k, k + per_batch)]
            await self.engine.data.append("s", "t", (2, 0), build_batch(msgs), per_batch)

    def close(self) -> None:
        self.service.close()
        self.engine.close()


def payloads(result) -> list[tuple[int, bytes]]:
    return [(m[0], bytes(m[4])) for c in result.chunks for m in iter_messages(c)]


async def poll_all(engine: LogEngine, block: bool = False) -> list[tuple[int, bytes]]:
    out, offset = [], 0
    while True:
        if block:
            r = engine.data.poll("s", "t", 0, OFFSET, offset, 37)
        else:
            r = await engine.data.poll_async("s", "t", 0, OFFSET, offset, 37)
        if not r.count:
            return out
        got = payloads(r)
        out += got
        offset = got[-1][0] + 1


def expected(n: int) -> list[tuple[int, bytes]]:
    return [(i, f"message-{i:06d}".encode().ljust(100, b".")) for i in range(n)]
