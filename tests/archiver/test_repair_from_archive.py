"""A damaged local segment is repaired from its verified archived copy, in place, and the read
goes on; with no good copy the batch is refused — never served wrong."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from archive_node import Node, expected, poll_all
from pyggy.core.engine import OFFSET
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.storage.index import DAMAGED, ENTRY_SIZE, HAS_CRC


def flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x40
    path.write_bytes(bytes(data))


async def archived_node(tmp_path: Path) -> Node:
    node = Node(tmp_path)
    await node.topic(local_segments=100)  # archived, and still on local disk
    await node.produce(300)
    assert await node.service._pass()
    return node


def test_a_flipped_byte_is_repaired_from_the_archive_through_both_read_paths(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        node = await archived_node(tmp_path)
        plog = node.engine.metadata.topic("s", "t").partitions[0].log
        seg = plog.segments[1]
        assert plog.remote.is_archived(seg.start_offset, seg.next_offset, seg.size)
        good = seg.log_path.read_bytes()
        flip(seg.log_path, seg.index.positions[2] + 300)
        assert await poll_all(node.engine) == expected(300)  # Iggy door's read path
        assert seg.log_path.read_bytes() == good  # repaired in place
        flip(seg.log_path, seg.index.positions[0] + 300)
        t = node.engine.metadata.topic("s", "t")
        chunks = await node.engine.data.read_kafka_async(t, 0, seg.start_offset, 1 << 20)
        assert chunks and seg.log_path.read_bytes() == good  # Kafka door's read path
        node.close()

    with caplog.at_level(logging.WARNING, logger="pyggy.core.storage"):
        asyncio.run(main())
    assert caplog.text.count("from the archive") == 2


def test_a_damaged_range_found_at_open_is_repaired_batch_by_batch(tmp_path: Path) -> None:
    async def main() -> None:
        node = await archived_node(tmp_path)
        seg = node.engine.metadata.topic("s", "t").partitions[0].log.segments[1]
        good_log, good_index = seg.log_path.read_bytes(), seg.index_path.read_bytes()
        entries = len(seg.index)
        flip(seg.log_path, seg.index.positions[1] + 300)
        flip(seg.index_path, 1 * ENTRY_SIZE + 3)  # and the index entries of batches 1 and 2
        flip(seg.index_path, 2 * ENTRY_SIZE + 3)
        node.close()
        node = Node(tmp_path)
        plog = node.engine.metadata.topic("s", "t").partitions[0].log
        seg = plog.segments[1]
        assert len(seg.index) == entries - 1 and seg.index.flags[1] == HAS_CRC | DAMAGED
        assert await poll_all(node.engine) == expected(300)
        assert len(seg.index) == entries
        assert seg.log_path.read_bytes() == good_log
        assert seg.index_path.read_bytes() == good_index
        node.close()

    asyncio.run(main())


def test_with_the_archived_copy_bad_too_the_batch_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        node = await archived_node(tmp_path)
        plog = node.engine.metadata.topic("s", "t").partitions[0].log
        seg = plog.segments[1]
        archived = next((tmp_path / "archive").rglob(f"{seg.start_offset:020}.log"))
        flip(archived, seg.index.positions[2] + 300)
        flip(seg.log_path, seg.index.positions[2] + 300)
        base = seg.index.base_offsets[2]
        before = await node.engine.data.poll_async("s", "t", 0, OFFSET, 0, 1000)
        assert before.count == base  # everything before the damage, then a short read
        with pytest.raises(IggyError) as err:
            await node.engine.data.poll_async("s", "t", 0, OFFSET, base, 10)
        assert err.value.code == ErrorCode.CANNOT_READ_MESSAGE
        after = await node.engine.data.poll_async("s", "t", 0, OFFSET, base + 10, 10)
        assert after.count == 10  # what follows the damage is still served
        node.close()

    asyncio.run(main())


def test_an_offloaded_segment_whose_archived_copy_is_bad_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        node = Node(tmp_path)
        await node.topic(local_segments=1)
        await node.produce(300)
        assert await node.service._pass()
        plog = node.engine.metadata.topic("s", "t").partitions[0].log
        assert plog.tiered
        archived = next((tmp_path / "archive").rglob("00000000000000000000.log"))
        flip(archived, 256 + 48 + 5)  # a payload byte of the first batch
        with pytest.raises(IggyError) as err:
            await node.engine.data.poll_async("s", "t", 0, OFFSET, 0, 10)
        assert err.value.code == ErrorCode.CANNOT_READ_MESSAGE
        assert (await node.engine.data.poll_async("s", "t", 0, OFFSET, 10, 10)).count == 10
        node.close()

    asyncio.run(main())


def test_a_damaged_segment_is_never_archived(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        node = Node(tmp_path)
        await node.topic(local_segments=100)
        await node.produce(100)  # sealed segments, none archived yet
        plog = node.engine.metadata.topic("s", "t").partitions[0].log
        seg = plog.segments[0]
        flip(seg.log_path, seg.index.positions[1] + 200)
        for _ in range(3):
            await node.service._pass()
        assert not plog.remote.is_archived(seg.start_offset, seg.next_offset, seg.size)
        assert plog.remote.is_archived(plog.segments[1].start_offset,
                                       plog.segments[1].next_offset, plog.segments[1].size)
        assert not list((tmp_path / "archive").rglob(f"{seg.start_offset:020}.log"))
        node.close()

    with caplog.at_level(logging.ERROR, logger="pyggy.archiver"):
        asyncio.run(main())
    assert caplog.text.count("is not archived") == 1


def test_a_rotten_index_file_is_archived_as_the_reads_trust_it(tmp_path: Path) -> None:
    async def main() -> None:
        node = Node(tmp_path)
        await node.topic(local_segments=1)
        await node.produce(100)
        plog = node.engine.metadata.topic("s", "t").partitions[0].log
        seg = plog.segments[0]
        flip(seg.index_path, ENTRY_SIZE + 7)  # the file rots while the server runs
        assert await node.service._pass()
        assert plog.tiered  # offloaded: reads now come from the archived index
        assert await poll_all(node.engine) == expected(100)
        node.close()

    asyncio.run(main())
