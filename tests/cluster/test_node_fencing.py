"""A replica whose disk fails while it executes a committed op fences itself (cluster/node.py):
it stops acknowledging and voting instead of diverging, and the others go on (the metadata
group's case is in test_node_e2e.py, on the real bus).

The disk errors are real ones from the kernel: the file descriptor the replica writes through is
swapped for a read-only one of the same file, so the write fails with EBADF where a failing
disk would fail it with EIO.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cluster_support import Member, MemoryBus, primary_of, quiesce, segment_files
from test_partition_group import GROUP, produce


def test_a_disk_error_applying_an_append_fences_the_partition_replica(tmp_path: Path) -> None:
    async def main() -> None:
        bus = MemoryBus()
        members = [await Member(tmp_path / f"n{i}", i, bus).start() for i in range(3)]
        primary = await primary_of(members, GROUP)
        await produce(primary, 0, 4)
        await quiesce(members, GROUP)
        sick = next(m for m in members if m is not primary)
        seg = sick.log().segments[-1]
        writable, seg.fd = seg.fd, os.open(seg.log_path, os.O_RDONLY)
        stopped_at = sick.log().next_offset
        await produce(primary, 4, 10)  # still committed: the third replica acknowledges
        healthy = [m for m in members if m is not sick]
        await quiesce(healthy, GROUP)
        rt = sick.node.groups[GROUP]
        assert rt.fenced is not None and "Bad file descriptor" in rt.fenced
        assert sick.node.primary(GROUP) is None
        assert sick.log().next_offset == stopped_at  # nothing half-applied
        commit = rt.replica.commit_min
        await produce(primary, 14, 4)
        await quiesce(healthy, GROUP)
        assert rt.replica.commit_min == commit  # it takes no further part
        assert segment_files(healthy[0]) == segment_files(healthy[1])
        os.close(seg.fd)
        seg.fd = writable
        for m in members:
            await m.stop()
        # restarted on a working disk it recovers and catches up, byte-identical
        members = [await Member(m.root, m.index, bus).start() for m in members]
        await quiesce(members, GROUP, timeout=30)
        files = [segment_files(m) for m in members]
        assert files[0] == files[1] == files[2]
        for m in members:
            await m.stop()

    asyncio.run(main())
