"""A partition replicated by three in-process nodes (real engines and files, an in-memory bus):
both doors' batches are stamped once by the primary and stored byte-identically everywhere;
a backup refuses writes and names the primary; a primary's crash elects a new one that goes on
from the committed log, and the crashed node catches up when it comes back."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from cluster_support import FAST, Member, MemoryBus, primary_of, quiesce, segment_files
from pyggy.cluster.node import NotPrimary, OutcomeUnknown
from pyggy.cluster.partition_sm import (
    APPEND_IGGY,
    APPEND_KAFKA,
    BARRIER,
    DELETE_RECORDS,
    append_body,
    parse_reply,
)
from pyggy.cluster.roster import partition_group
from pyggy.core.records import iggy_batch, kafka_batch
from pyggy.core.records.encoding import ENCODING_KAFKA

GROUP = partition_group(0, 0, 0)  # the first stream and topic have id 0


def iggy_body(i: int) -> bytes:
    batch = iggy_batch.build_batch([(i + 1, b"iggy-%d-%d" % (i, k), b"", 1_000 + k)
                                    for k in range(3)])
    return append_body(APPEND_IGGY, batch, 3)


def kafka_body(i: int) -> bytes:
    batch = kafka_batch.build_batch([(1_700_000_000_000 + k, b"k", b"kafka-%d-%d" % (i, k), [])
                                     for k in range(2)])
    info = kafka_batch.validate_batch(batch)
    return append_body(APPEND_KAFKA, batch, info.record_count, info.max_timestamp)


async def produce(primary: Member, start: int, count: int) -> list[int]:
    async def one(i: int) -> int:
        body = iggy_body(i) if i % 2 else kafka_body(i)
        operation = APPEND_IGGY if i % 2 else APPEND_KAFKA
        status, base = parse_reply(await primary.node.submit(GROUP, operation, body))
        assert status == 0
        return base

    return list(await asyncio.gather(*(one(i) for i in range(start, start + count))))


def records(i: int) -> int:
    return 3 if i % 2 else 2


def test_three_nodes_store_both_doors_batches_byte_identically(tmp_path: Path) -> None:
    async def main() -> None:
        bus = MemoryBus()
        members = [await Member(tmp_path / f"n{i}", i, bus).start() for i in range(3)]
        primary = await primary_of(members, GROUP)
        bases = await produce(primary, 0, 40)  # 40 concurrent requests, 8 sessions
        assert sorted(bases) == sorted(set(bases))
        assert primary.log().next_offset == sum(records(i) for i in range(40))
        await quiesce(members, GROUP)
        files = [segment_files(m) for m in members]
        assert files[0] and files[0] == files[1] == files[2]
        # Kafka batches carry the view as partitionLeaderEpoch, stamped by the primary
        view = primary.replica(GROUP).view
        refs = primary.log().read(0, 1 << 30)
        kafka = [bytes(r.data) for r in refs if r.encoding == ENCODING_KAFKA]
        assert len(kafka) == 20 and len(refs) == 40
        assert {int.from_bytes(k[12:16], "big", signed=True) for k in kafka} == {view}
        # offsets are contiguous across both encodings
        assert [r.base_offset for r in refs] == sorted(bases)
        # a backup refuses and names the primary
        backup = next(m for m in members if m is not primary)
        with pytest.raises(NotPrimary) as refused:
            await backup.node.submit(GROUP, APPEND_KAFKA, kafka_body(0))
        assert refused.value.primary == primary.index
        # DeleteRecords is an op of the group: every replica moves its log start
        status, start = parse_reply(await primary.node.submit(
            GROUP, DELETE_RECORDS, (5).to_bytes(8, "little")))
        assert status == 0 and start == 5
        await quiesce(members, GROUP)
        assert {m.log().start_offset for m in members} == {5}
        for m in members:
            assert m.node.lateness_ms()["ticks"] > 10
            await m.stop()

    asyncio.run(main())


def test_a_new_primary_continues_the_log_and_the_old_one_catches_up(tmp_path: Path) -> None:
    async def main() -> None:
        bus = MemoryBus()
        members = [await Member(tmp_path / f"n{i}", i, bus).start() for i in range(3)]
        first = await primary_of(members, GROUP)
        acked = await produce(first, 0, 10)
        bus.down.add(first.index)  # the primary is cut off (as if killed)
        await first.stop()
        second = await primary_of(members, GROUP, exclude=first.index)
        assert second.index != first.index
        assert second.log().next_offset >= max(acked) + 2  # nothing acknowledged is lost
        more = await produce(second, 10, 10)
        assert min(more) >= second.log().next_offset - sum(records(i) for i in range(10, 20))
        # the old primary restarts from its files and catches up
        bus.down.discard(first.index)
        back = await Member(first.root, first.index, bus).start()
        members[first.index] = back
        with pytest.raises(NotPrimary) as recovering:  # it does not know the view yet
            await back.node.submit(GROUP, APPEND_KAFKA, kafka_body(98))
        assert recovering.value.primary is None
        await quiesce(members, GROUP, timeout=30)
        files = [segment_files(m) for m in members]
        assert files[0] == files[1] == files[2]
        assert back.replica(GROUP).view == second.replica(GROUP).view > 0
        assert back.log().next_offset == second.log().next_offset == sum(
            records(i) for i in range(20))
        for m in members:
            await m.stop()

    asyncio.run(main())


def test_a_request_cut_off_by_a_view_change_has_an_unknown_outcome(tmp_path: Path) -> None:
    async def main() -> None:
        bus = MemoryBus()
        members = [await Member(tmp_path / f"n{i}", i, bus).start() for i in range(3)]
        first = await primary_of(members, GROUP)
        await produce(first, 0, 2)
        bus.down.add(first.index)  # isolated: it still believes it is the primary
        pending = asyncio.ensure_future(first.node.submit(GROUP, APPEND_KAFKA, kafka_body(99)))
        second = await primary_of(members, GROUP, exclude=first.index)  # the backups moved on
        bus.down.discard(first.index)  # it hears of the new view: its request is in doubt
        with pytest.raises(OutcomeUnknown):
            await asyncio.wait_for(pending, 30)
        rt = first.node.groups[GROUP]  # the session in doubt is dropped, the others kept
        assert rt.sessions == len(rt.free) and not rt.pending
        await produce(second, 2, 2)
        await quiesce(members, GROUP)
        files = [segment_files(m) for m in members]
        assert files[0] == files[1] == files[2]
        # the isolated primary's prepare never reached a quorum: it is in nobody's log
        values = [bytes(r.data) for r in first.log().read(0, 1 << 30)]
        assert not any(b"kafka-99" in v for v in values)
        for m in members:
            await m.stop()

    asyncio.run(main())


def test_a_barrier_commits_on_the_primary_only_and_changes_nothing(tmp_path: Path) -> None:
    """`ClusterView.confirm`'s op: the primary commits it (nothing changes in any log); a
    primary cut off from the others, still believing it leads, never commits it: once it
    hears of the new view its barrier is in doubt, so it cannot pass for the leader (finding
    N-d of docs/cluster.md: such a node answered OUT_OF_ORDER from its stale state)."""

    async def main() -> None:
        bus = MemoryBus()
        members = [await Member(tmp_path / f"n{i}", i, bus).start() for i in range(3)]
        first = await primary_of(members, GROUP)
        await produce(first, 0, 2)
        assert parse_reply(await first.node.submit(GROUP, BARRIER, b"")) == (0, 0)
        await quiesce(members, GROUP)
        assert {m.log().next_offset for m in members} == {records(0) + records(1)}
        bus.down.add(first.index)
        pending = asyncio.ensure_future(first.node.submit(GROUP, BARRIER, b""))
        second = await primary_of(members, GROUP, exclude=first.index)
        await produce(second, 2, 1)  # the new leader takes a batch the old one never sees
        assert not pending.done()
        bus.down.discard(first.index)
        with pytest.raises(OutcomeUnknown):
            await asyncio.wait_for(pending, 30)
        assert parse_reply(await second.node.submit(GROUP, BARRIER, b"")) == (0, 0)
        await quiesce(members, GROUP)
        files = [segment_files(m) for m in members]
        assert files[0] == files[1] == files[2]
        for m in members:
            await m.stop()

    asyncio.run(main())


def test_a_forwarded_request_of_an_evicted_session_ends_at_once(tmp_path: Path) -> None:
    """A backup forwards appends to the primary (`forward=True`) and answers once it applied
    them itself; when the primary's registrations evict the backup's session (a client table
    of 4), the backup's next forwarded request is not prepared and the primary's Eviction goes
    to no one: the backup sees the eviction in its own (replicated) client table and ends the
    request as an unknown outcome at once, not at the 30 s timeout; the retry registers anew."""

    async def main() -> None:
        bus = MemoryBus()
        small = dataclasses.replace(FAST, clients_max=4)
        members = [await Member(tmp_path / f"n{i}", i, bus, options=small).start()
                   for i in range(3)]
        primary = await primary_of(members, GROUP)
        backup = next(m for m in members if m is not primary)
        status, base = parse_reply(await backup.node.submit(GROUP, APPEND_KAFKA, kafka_body(0),
                                                            forward=True))
        assert (status, base) == (0, 0)
        assert backup.log().next_offset == 2  # applied on the backup when it answered
        with pytest.raises(NotPrimary):
            await backup.node.submit(GROUP, APPEND_KAFKA, kafka_body(1))
        await produce(primary, 1, 4)  # four sessions of the primary's: the backup's evicted
        await quiesce(members, GROUP)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(OutcomeUnknown, match="evicted"):
            await asyncio.wait_for(backup.node.submit(GROUP, APPEND_KAFKA, kafka_body(9),
                                                      forward=True), 10)
        assert loop.time() - started < 5
        status, _ = parse_reply(await backup.node.submit(GROUP, APPEND_KAFKA, kafka_body(10),
                                                         forward=True))
        assert status == 0
        await quiesce(members, GROUP)
        assert len({tuple(segment_files(m).items()) for m in members}) == 1
        for m in members:
            await m.stop()

    asyncio.run(main())
