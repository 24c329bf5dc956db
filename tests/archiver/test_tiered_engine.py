"""Archiving and tiered reads in process: an engine, a disk archive wrapped in FaultyArchiver,
and the archiver service's passes driven by hand (no timers; see archive_node.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from archive_node import SEGMENT, Node, expected, payloads, poll_all
from pyggy.archiver import layout
from pyggy.archiver.base import ArchiverError
from pyggy.archiver.tiered import MANIFEST
from pyggy.core.engine import FIRST, OFFSET, TIMESTAMP
from pyggy.core.errors import RemoteReadError
from pyggy.core.model import NEVER_EXPIRE
from pyggy.core.records import kafka_batch
from pyggy.core.small_file import SmallFile


def test_sealed_segments_are_archived_offloaded_and_read_back(tmp_path: Path) -> None:
    async def main() -> None:
        node = Node(tmp_path)
        t = await node.topic(local_segments=2)
        await node.produce(500)
        plog = t.partitions[0].log
        sealed = len(plog.segments) - 1
        assert sealed >= 5
        assert await node.service._pass()
        assert node.service.counters.segments_archived == sealed
        # only the newest 2 segments stay local; the rest is read from the archive
        assert len(plog.segments) == 2 and len(plog.tiered) == sealed - 1
        assert plog.start_offset == 0 and plog.next_offset == 500
        assert plog.segments_count == sealed + 1
        # the archive is a browsable tree with the same bytes as the local files were
        keys = [k for k, _ in node.faulty.list("streams/")]
        assert keys[0] == "streams/s/topics/t/partitions/0/00000000000000000000.index"
        assert len(keys) == 2 * sealed
        assert await poll_all(node.engine) == expected(500)
        assert await poll_all(node.engine, block=True) == expected(500)
        # FIRST and TIMESTAMP strategies reach into the archive too
        first = await node.engine.data.poll_async("s", "t", 0, FIRST, 0, 5)
        assert payloads(first) == expected(5)
        ts = plog.tiered[1].first_timestamp
        by_time = await node.engine.data.poll_async("s", "t", 0, TIMESTAMP, ts, 1)
        assert payloads(by_time)[0][0] == plog.tiered[1].start_offset
        # the Kafka door: the same offsets, transcoded, from offset 0
        offsets = []
        offset = 0
        while offset < 500:
            chunks = await node.engine.data.read_kafka_async(t, 0, offset, 3000)
            for data in chunks:
                offsets += [rec[0] for rec in kafka_batch.iter_records(data)]
            offset = offsets[-1] + 1
        assert offsets == list(range(500))
        assert node.store.cache.size <= node.store.cache.capacity + SEGMENT
        node.close()

        # a restart keeps the tiers: manifest + local files
        again = Node(tmp_path)
        plog = again.engine.metadata.topic("s", "t").partitions[0].log
        assert len(plog.tiered) == sealed - 1 and plog.start_offset == 0
        assert await poll_all(again.engine) == expected(500)
        again.close()

    asyncio.run(main())


def test_archive_outage_keeps_local_segments_and_catches_up(tmp_path: Path, caplog) -> None:
    async def main() -> None:
        node = Node(tmp_path)
        t = await node.topic(local_segments=1)
        plog = t.partitions[0].log
        await node.produce(200)
        assert await node.service._pass()
        archived = node.service.counters.segments_archived
        node.faulty.down = True  # injected: a real moto cannot be made unreachable mid-request
        await node.produce(300, start=200)
        local_before = [s.start_offset for s in plog.segments]
        for _ in range(3):
            assert not await node.service._pass()
        # nothing new archived, nothing deleted locally, appends and local reads go on
        assert node.service.counters.segments_archived == archived
        assert [s.start_offset for s in plog.segments] == local_before
        assert len(plog.segments) > 3
        last = await node.engine.data.poll_async("s", "t", 0, OFFSET, 450, 50)
        assert payloads(last) == expected(500)[450:]
        # old archived offsets fail cleanly while the archive is down
        node.store.cache.entries.clear()
        node.store.cache.size = 0
        with pytest.raises(RemoteReadError):
            await node.engine.data.poll_async("s", "t", 0, OFFSET, 0, 10)
        node.faulty.down = False
        node.store.read_down_until = 0
        assert await node.service._pass()
        assert len(plog.segments) == 1
        assert await poll_all(node.engine) == expected(500)
        node.close()

    with caplog.at_level(logging.INFO, logger="pyggy.archiver"):
        asyncio.run(main())
    text = caplog.text
    assert "segments stay on local disk" in text
    assert "reachable again" in text


def test_a_corrupted_upload_is_caught_and_redone(tmp_path: Path) -> None:
    async def main() -> None:
        node = Node(tmp_path)
        t = await node.topic(local_segments=1)
        plog = t.partitions[0].log
        await node.produce(100)
        node.faulty.corrupt_uploads = 1  # injected: a byte flipped in transit
        assert not await node.service._pass()
        assert node.service.counters.segments_archived == 0
        assert not plog.tiered and len(plog.segments) > 2
        assert await node.service._pass()
        assert len(plog.segments) == 1 and plog.tiered
        assert await poll_all(node.engine) == expected(100)
        node.close()

    asyncio.run(main())


def test_wrong_credentials_are_logged_not_fatal(tmp_path: Path, caplog) -> None:
    async def main() -> None:
        node = Node(tmp_path)
        # injected: moto does not check signatures, so a refused key is simulated here
        node.faulty.init_error = ArchiverError("S3 refused init on bucket 'iggy': "
                                               "InvalidAccessKeyId", permanent=True)
        t = await node.topic(local_segments=1)
        await node.produce(100)
        assert not await node.service._pass()
        assert not await node.service._pass()
        assert len(t.partitions[0].log.segments) > 2
        node.faulty.init_error = None
        assert await node.service._pass()
        assert len(t.partitions[0].log.segments) == 1
        node.close()

    with caplog.at_level(logging.INFO, logger="pyggy.archiver"):
        asyncio.run(main())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "InvalidAccessKeyId" in errors[0].getMessage()
    assert "no local segment is deleted" in errors[0].getMessage()


def test_retention_purge_and_delete_reach_the_archive(tmp_path: Path) -> None:
    async def main() -> None:
        node = Node(tmp_path)
        t = await node.topic(local_segments=1)
        plog = t.partitions[0].log
        await node.produce(300)
        assert await node.service._pass()
        tiered = len(plog.tiered)
        # max size: the oldest archived segments go first, from the archive too
        total = plog.size_bytes
        t.options.max_topic_size = total - 2 * SEGMENT
        node.engine.clean()
        assert len(plog.tiered) < tiered and plog.start_offset > 0
        assert plog.size_bytes <= t.options.max_topic_size
        assert node.store.pending_deletes
        assert await node.service._pass()
        assert not node.store.pending_deletes
        left = {k for k, _ in node.faulty.list("streams/")}
        assert len(left) == 2 * len(plog.tiered)
        first = await node.engine.data.poll_async("s", "t", 0, FIRST, 0, 1)
        assert payloads(first)[0][0] == plog.start_offset
        # expiry: everything sealed is older than 1 µs by now
        t.options.max_topic_size = 2**64 - 1
        t.options.message_expiry = 1
        node.engine.clean()
        assert not plog.tiered
        assert await node.service._pass()
        assert node.faulty.list("streams/") == []
        t.options.message_expiry = NEVER_EXPIRE
        # purge: archive emptied, offsets restart at 0 and the new segment 0 archives anew
        await node.produce(200, start=0)
        assert await node.service._pass() and node.faulty.list("streams/")
        await node.engine.metadata.purge_topic("s", "t")
        assert plog.next_offset == 0 and not plog.tiered
        await node.produce(150)
        assert await node.service._pass()
        assert await poll_all(node.engine) == expected(150)
        manifest = SmallFile(plog.path / MANIFEST).read().decode()  # two checksummed copies
        assert "00000000000000000000.log" in manifest
        # delete: the archive of the topic goes with it
        await node.engine.metadata.delete_topic("s", "t")
        assert await node.service._pass()
        assert node.faulty.list("streams/") == []
        node.close()

    asyncio.run(main())


def test_state_log_snapshots(tmp_path: Path) -> None:
    async def main() -> None:
        node = Node(tmp_path)
        await node.topic()
        assert await node.service._pass()
        assert node.faulty.list("state/") == [
            (layout.STATE_KEY, node.engine.state.size)]
        snapshots = node.service.counters.state_snapshots
        assert await node.service._pass()  # unchanged: not uploaded again
        assert node.service.counters.state_snapshots == snapshots
        await node.engine.metadata.create_stream("other")
        assert await node.service._pass()
        assert node.service.counters.state_snapshots == snapshots + 1
        data = node.faulty.read_all(layout.STATE_KEY)
        assert data == node.engine.state.path.read_bytes()
        node.close()

    asyncio.run(main())


def test_layout_names_are_one_component() -> None:
    log_key, index_key = layout.segment_keys("a/b", "..", 3, 42)
    assert log_key == ("streams/a%2Fb/topics/%2E%2E/partitions/3/"
                       "00000000000000000042.log")
    assert layout.parse_segment_key(index_key) == ("a/b", "..", 3, 42, "index")


def test_kafka_local_retention_bytes_maps_to_the_topic_option() -> None:
    from pyggy.core.options import topic_options
    from pyggy.kafka_wire.topics import configs_to_options, options_configs

    opts = topic_options(configs_to_options({"local.retention.bytes": "1048576"}))
    assert opts.local_retention_bytes == 1 << 20
    assert options_configs(opts)["local.retention.bytes"] == ("1048576", False)
    assert options_configs(topic_options([]))["local.retention.bytes"] == ("-2", True)
    for no_limit in ("-1", "-2"):
        opts = topic_options(configs_to_options({"local.retention.bytes": no_limit}))
        assert opts.local_retention_bytes == 2**64 - 1


def test_a_slow_archive_blocks_no_one(tmp_path: Path) -> None:
    """Injected latency (FaultyArchiver.delay): uploads and archived reads take their time in
    worker threads while appends and local polls go on at full speed."""

    async def main() -> None:
        node = Node(tmp_path)
        t = await node.topic(local_segments=1)
        await node.produce(200)
        assert await node.service._pass()  # archive and offload at full speed first
        await node.produce(100, start=200)
        node.store.cache.entries.clear()
        node.store.cache.size = 0
        node.faulty.delay = 0.5
        loop = asyncio.get_running_loop()
        upload = asyncio.create_task(node.service._pass())
        archived = asyncio.create_task(node.engine.data.poll_async("s", "t", 0, OFFSET, 0, 10))
        await asyncio.sleep(0.05)
        started = loop.time()
        await node.produce(50, start=300)
        local = await node.engine.data.poll_async("s", "t", 0, OFFSET, 340, 10)
        assert loop.time() - started < 0.3  # neither waited for the archive
        assert payloads(local) == expected(350)[340:]
        assert not upload.done() and not archived.done()
        assert payloads(await archived) == expected(10)
        assert await upload
        node.faulty.delay = 0
        assert await node.service._pass()  # segments that sealed during the slow pass
        assert len(t.partitions[0].log.segments) == 1
        assert await poll_all(node.engine) == expected(350)
        node.close()

    asyncio.run(main())
