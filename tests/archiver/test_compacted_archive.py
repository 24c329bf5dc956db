"""What the archive holds for a compacted topic (docs/compaction.md): each segment as sealed,
then, once compaction rewrote it, the compacted copy in its place; the local copy is only
offloaded once the archive holds exactly it, and archived reads give the compacted view."""

from __future__ import annotations

import asyncio
from pathlib import Path

from archive_node import Node
from pyggy.core.records import kafka_batch
from pyggy.core.storage import compaction
from pyggy.core.storage.compaction import Policy
from pyggy.core.storage.partition_log import PartitionLog

POLICY = Policy(False, 2**62, 0.0, 0, 2**62)


async def _fill(plog: PartitionLog, updates: int, keys: int) -> dict[bytes, bytes]:
    latest = {}
    for n in range(0, updates, 4):
        recs = [(1_700_000_000_000, f"k{(n + i) % keys}".encode(),
                 f"value-{n + i:05d}".encode().ljust(60, b"."), []) for i in range(4)]
        for _ts, k, v, _h in recs:
            latest[k] = v
        b = kafka_batch.build_batch(recs)
        await plog.append_kafka(b, 4, 1_700_000_000_000)
    return latest


async def _records(plog: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    out: list[tuple[int, bytes | None, bytes | None]] = []
    offset = 0
    while offset < plog.next_offset:
        refs = await plog.read_async(offset, 1 << 20)
        for ref in refs:
            out += [(o, k, v) for o, _t, k, v, _h in kafka_batch.iter_records(ref.data)]
        offset = refs[-1].base_offset + refs[-1].record_count
    return out


def test_the_archive_follows_compaction(tmp_path: Path) -> None:
    async def main() -> None:
        node = Node(tmp_path)
        t = await node.topic(local_segments=0)  # nothing offloaded yet
        plog = t.partitions[0].log
        latest = await _fill(plog, 400, 10)
        sealed = plog.segments[:-1]
        assert len(sealed) >= 4
        assert await node.service._pass()
        remote = plog.remote
        assert remote is not None
        first = sealed[0]
        as_sealed = first.read_at(0, first.size)
        assert all(remote.is_archived(s.start_offset, s.next_offset, s.size) for s in sealed)

        assert await compaction.compact(plog, POLICY, 2**62, plog.next_offset,
                                        lambda _p, _o: False) == len(sealed)
        compacted = plog.segments[0]
        assert compacted.size < len(as_sealed)
        # until the archiver's next pass the archive holds the segment as sealed: it is not
        # "archived" for the compacted copy, so it is neither offloaded nor used for repairs
        assert remote.read(0, 0, len(as_sealed)) == as_sealed
        assert not remote.is_archived(0, compacted.next_offset, compacted.size)
        t.options.local_retention_segments = 1
        assert node.engine.offload() == 0
        view = await _records(plog)

        local = compacted.read_at(0, compacted.size)
        assert await node.service._pass()  # uploads the compacted copies, then offloads
        assert remote.is_archived(0, compacted.next_offset, compacted.size)
        assert remote.read(0, 0, len(local)) == local
        assert len(plog.segments) == 1 and len(plog.tiered) == len(sealed)
        assert await _records(plog) == view  # read from the archive: the compacted view
        assert {k: v for _, k, v in view} == latest
        active = plog.segments[0].start_offset
        cleaned = [k for o, k, _ in view if o < active]
        assert len(cleaned) == len(set(cleaned))
        node.close()

    asyncio.run(main())
