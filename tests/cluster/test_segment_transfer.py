"""State transfer of a partition's segments (cluster/segment_transfer.py).

Three in-process nodes (real engines and files, an in-memory bus): a node stopped while the
others move past their journal and checkpoint comes back by fetching the segments it lacks
and ends byte-identical; a chunk corrupted on the way is refused and fetched again. Below
them, on real partition logs: the manifest codec, serving, and every single-bit flip of a
chunk refused before anything is kept.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from cluster_support import Member, MemoryBus, Sender, primary_of, quiesce, segment_files
from hypothesis import given
from hypothesis import strategies as st
from pyggy.cluster.partition_sm import (
    APPEND_IGGY,
    DELETE_RECORDS,
    DELETE_SEGMENTS,
    PURGE,
    PartitionMachine,
    append_body,
    parse_reply,
)
from pyggy.cluster.segment_transfer import (
    GONE,
    Manifest,
    Refused,
    SegmentFetch,
    SegmentInfo,
    describe,
    lacks,
    serve,
)
from pyggy.consensus.message import Command, Message
from pyggy.core.clock import SystemClock
from pyggy.core.model import TopicOptions
from pyggy.core.records import iggy_batch
from pyggy.core.records.encoding import ENCODING_IGGY
from pyggy.core.storage.fsync import GroupCommitter
from pyggy.core.storage.partition_log import PartitionLog
from test_partition_group import GROUP

SEGMENT = 1 << 20  # the smallest segment size: about 17 batches of `big_body` a segment
PAYLOAD = 20_000


def big_body(i: int) -> bytes:
    batch = iggy_batch.build_batch([(i * 3 + k + 1, bytes([i % 251]) * PAYLOAD, b"", 1_000 + k)
                                    for k in range(3)])
    return append_body(APPEND_IGGY, batch, 3)


async def produce(primary: Member, start: int, count: int) -> None:
    async def one(i: int) -> None:
        status, _ = parse_reply(await primary.node.submit(GROUP, APPEND_IGGY, big_body(i)))
        assert status == 0

    await asyncio.gather(*(one(i) for i in range(start, start + count)))


class CorruptingBus(MemoryBus):
    """Flips one bit in the batch bytes of the first `count` segment chunks that carry data,
    re-sealing the message (so only the chunk's own verification can catch it)."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def for_replica(self, me: int) -> Sender:
        return CorruptingSender(self, me)


class CorruptingSender(Sender):
    def send(self, replica: int, m: Message) -> None:
        bus = self.bus
        assert isinstance(bus, CorruptingBus)
        if m.command == Command.SEGMENT_CHUNK and m.entries and bus.count > 0:
            bus.count -= 1
            body = bytearray(m.body)
            body[-1] ^= 0x10
            m = Message(Command.SEGMENT_CHUNK, cluster=m.cluster, view=m.view,
                        replica=m.replica, group=m.group, checkpoint_op=m.checkpoint_op,
                        segment=m.segment, entry=m.entry, entries=m.entries, flags=m.flags,
                        body=bytes(body))
        super().send(replica, m)


async def lag_and_return(tmp_path: Path, bus: MemoryBus, after_restart=None,
                         ) -> tuple[list[Member], Member]:
    """Stop a backup, move the others past their journal (64 slots) and checkpoint, delete
    the oldest segment, restart the backup; return the members once all converged.
    `after_restart(lagging, members)` runs, awaited, right after the restart."""
    members = [await Member(tmp_path / f"n{i}", i, bus).start(segment_size=SEGMENT)
               for i in range(3)]
    primary = await primary_of(members, GROUP)
    await produce(primary, 0, 10)
    await quiesce(members, GROUP)
    lagging = next(m for m in members if m is not primary)
    left_at = lagging.replica(GROUP).commit_min
    bus.down.add(lagging.index)
    await lagging.stop()
    live = [m for m in members if m is not lagging]
    await produce(primary, 10, 150)
    assert (await primary.node.submit(GROUP, DELETE_SEGMENTS, (1).to_bytes(8, "little")))
    await produce(primary, 160, 20)
    await quiesce(live, GROUP)
    checkpoint = primary.replica(GROUP).checkpoint[0]
    assert checkpoint > left_at + 64  # the ops it misses are gone from every journal
    bus.down.discard(lagging.index)
    back = await Member(lagging.root, lagging.index, bus).start(segment_size=SEGMENT)
    members[lagging.index] = back
    if after_restart is not None:
        await after_restart(back, members)
    await quiesce(members, GROUP, timeout=60)
    return members, back


def lost_found_names(member: Member) -> set[str]:
    folder = member.root / "lost+found"
    return {p.name for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def test_a_backup_behind_every_journal_catches_up_by_segment_transfer(tmp_path: Path) -> None:
    async def main() -> None:
        bus = MemoryBus()
        members, back = await lag_and_return(tmp_path, bus)
        files = [segment_files(m) for m in members]
        assert len(files[0]) > 10 and files[0] == files[1] == files[2]
        assert back.node.transfers_installed >= 1 and back.node.transfer_refused == 0
        stats = back.replica(GROUP).stats
        assert stats["transfers"] >= 1 and stats["transfer_fetches"] >= 1
        # the segment the others deleted while it was away was moved aside, not deleted
        assert "00000000000000000000.log" in lost_found_names(back)
        assert not (back.log().path / "xfer").exists()
        # it takes part again: new writes reach it, byte-identical
        primary = await primary_of(members, GROUP)
        await produce(primary, 180, 6)
        await quiesce(members, GROUP)
        files = [segment_files(m) for m in members]
        assert files[0] == files[1] == files[2]
        assert back.log().next_offset == primary.log().next_offset
        for m in members:
            await m.stop()

    asyncio.run(main())


def test_a_corrupted_chunk_is_refused_and_fetched_again(tmp_path: Path) -> None:
    async def main() -> None:
        bus = CorruptingBus(count=2)
        members, back = await lag_and_return(tmp_path, bus)
        assert bus.count == 0 and back.node.transfer_refused == 2
        assert back.node.transfers_installed >= 1
        files = [segment_files(m) for m in members]
        assert files[0] == files[1] == files[2]
        for m in members:
            await m.stop()

    asyncio.run(main())


def test_a_disk_error_while_staging_drops_the_attempt_and_a_later_one_succeeds(
        tmp_path: Path) -> None:
    async def blocked(back: Member, members: list[Member]) -> None:
        # a real error from the file system: the staging directory's name is taken by a file
        staging = back.log().path / "xfer"
        staging.write_bytes(b"in the way")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while back.node.transfers_dropped == 0 and loop.time() < deadline:
            await asyncio.sleep(0.02)
        assert back.node.transfers_dropped >= 1 and back.node.transfers_installed == 0
        r = back.replica(GROUP)
        assert r.commit_min < (await primary_of(members, GROUP)).replica(GROUP).commit_min
        staging.unlink()  # the disk is fine again: the next RangeEvicted starts over

    async def main() -> None:
        members, back = await lag_and_return(tmp_path, MemoryBus(), blocked)
        assert back.node.transfers_installed >= 1
        files = [segment_files(m) for m in members]
        assert files[0] == files[1] == files[2]
        for m in members:
            await m.stop()

    asyncio.run(main())


# -- on real logs, no cluster --------------------------------------------------------------------

def small_log(path: Path, batches: int, segment_size: int = 1200) -> PartitionLog:
    plog = PartitionLog(path, 0, TopicOptions(segment_size=segment_size), GroupCommitter(),
                        SystemClock())
    plog.open()
    for k in range(batches):
        batch = bytearray(iggy_batch.build_batch([(k * 2 + j + 1, b"m-%d-%d" % (k, j), b"",
                                                   1_000 + j) for j in range(2)]))
        base = plog.next_offset
        iggy_batch.stamp_batch(batch, 0, base, 5_000 + k)
        plog.append_stamped(batch, base, 2, 5_000 + k, 5_000 + k, ENCODING_IGGY)
    return plog


def request(info: SegmentInfo, entry: int = 0) -> Message:
    return Message(Command.REQUEST_SEGMENT, group=7, checkpoint_op=9, segment=info.start,
                   entry=entry, entries=info.entries - entry)


def chunk_for(src: PartitionLog, info: SegmentInfo, entry: int, budget: int) -> Message:
    flags, entries, body = serve(src, request(info, entry), budget)
    return Message(Command.SEGMENT_CHUNK, replica=1, group=7, checkpoint_op=9,
                   segment=info.start, entry=entry, entries=entries, flags=flags, body=body)


def fetch_all(src: PartitionLog, dst: PartitionLog, budget: int = 700) -> SegmentFetch:
    m = describe(src, 0)
    fetch = SegmentFetch(dst, 7, 9, m, [1])
    while not fetch.done:
        fetch.on_chunk(chunk_for(src, fetch.todo[0], fetch.entry, budget))
    return fetch


def files_of(plog: PartitionLog) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(plog.path.iterdir())
            if f.suffix in (".log", ".index")}


def test_fetch_and_install_make_the_log_byte_identical(tmp_path: Path) -> None:
    src = small_log(tmp_path / "src", 40)
    dst = small_log(tmp_path / "dst", 7)  # a prefix of the same history
    manifest = describe(src, 0)
    assert manifest.segments is not None and len(manifest.segments) > 3
    assert lacks(dst, manifest) and not lacks(src, manifest)
    fetch = fetch_all(src, dst)
    machine = PartitionMachine(dst, False)
    machine.install(manifest, fetch.staged, "a test")
    assert files_of(dst) == files_of(src)
    assert dst.next_offset == src.next_offset and not lacks(dst, manifest)
    assert [r.data for r in dst.read(0, 1000)] == [r.data for r in src.read(0, 1000)]
    machine.restore(manifest.encode())  # what the replica then does: accepted


def test_a_prefix_of_another_history_is_fetched_again(tmp_path: Path) -> None:
    src = small_log(tmp_path / "src", 12)
    other = small_log(tmp_path / "dst", 3)
    other.purge()  # another history at the same offsets (a purge, then other appends)
    batch = bytearray(iggy_batch.build_batch([(99, b"other", b"", 1)]))
    iggy_batch.stamp_batch(batch, 0, 0, 1)
    other.append_stamped(batch, 0, 1, 1, 1, ENCODING_IGGY)
    manifest = describe(src, 0)
    assert lacks(other, manifest)
    fetch = fetch_all(src, other)
    PartitionMachine(other, False).install(manifest, fetch.staged, "a test")
    assert files_of(other) == files_of(src)


def test_every_bit_flip_of_a_chunk_is_refused(tmp_path: Path) -> None:
    src = small_log(tmp_path / "src", 4, segment_size=1 << 20)
    dst = small_log(tmp_path / "dst", 0)
    info = describe(src, 0).segments[0]  # type: ignore[index]
    good = chunk_for(src, info, 0, 1 << 20)
    assert good.entries == 4
    fetch = SegmentFetch(dst, 7, 9, describe(src, 0), [1])
    for pos in range(len(good.body)):  # every byte, a different bit each time
        body = bytearray(good.body)
        body[pos] ^= 1 << (pos % 8)
        bad = Message(Command.SEGMENT_CHUNK, replica=1, group=7, checkpoint_op=9,
                      segment=good.segment, entry=0, entries=4, body=bytes(body))
        with pytest.raises(Refused):
            fetch.on_chunk(bad)
        assert fetch.entry == 0 and os.path.getsize(fetch.dir / f"{0:020}.log") == 0
    fetch.on_chunk(good)  # the intact chunk is then taken
    assert fetch.done
    fetch.abandon()
    for cut in (1, 47, 48, len(good.body) - 1):  # truncated, or with bytes after the last
        fetch = SegmentFetch(dst, 7, 9, describe(src, 0), [1])
        for body in (good.body[:cut], good.body + b"\0" * cut):
            m = Message(Command.SEGMENT_CHUNK, replica=1, group=7, checkpoint_op=9,
                        segment=good.segment, entry=0, entries=4, body=body)
            with pytest.raises(Refused):
                fetch.on_chunk(m)
        fetch.abandon()


def test_serve_answers_gone_for_what_it_does_not_hold(tmp_path: Path) -> None:
    src = small_log(tmp_path / "src", 6, segment_size=1 << 20)
    info = describe(src, 0).segments[0]  # type: ignore[index]
    assert serve(src, request(SegmentInfo(12345, 1, 0, 0, 0)), 1 << 20)[0] == GONE
    assert serve(src, request(SegmentInfo(info.start, info.entries + 1, 0, 0, 0)),
                 1 << 20)[0] == GONE
    flags, entries, body = serve(src, request(info), 1)  # a tiny budget: still one batch
    assert flags == 0 and entries == 1 and body


segment_infos = st.builds(SegmentInfo, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
                          st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1),
                          st.integers(0, 2**32 - 1))


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1),
       st.integers(0, 2**64 - 1), st.lists(segment_infos, max_size=5))
def test_manifest_round_trips(next_offset: int, start: int, marker: int, floor: int,
                              segs: list[SegmentInfo]) -> None:
    m = Manifest(next_offset, start, marker, floor, tuple(segs))
    assert Manifest.decode(m.encode()) == m


@given(st.binary(max_size=200))
def test_manifest_decode_refuses_malformed_bytes(data: bytes) -> None:
    try:
        m = Manifest.decode(data)
    except ValueError:
        return
    assert m.encode() == data or len(data) == 24  # the legacy manifest has no segment list


def machine_after(path: Path, kinds: list[str]) -> PartitionMachine:
    """A partition machine whose ops 1..n were `kinds` (`a` an append, `dN` DeleteRecords to
    offset N, `p` a purge), on a log of small segments."""
    plog = small_log(path, 0)
    m = PartitionMachine(plog, False)
    for op, kind in enumerate(kinds, start=1):
        if kind == "a":
            batch = iggy_batch.build_batch([(op, b"m-%d" % op, b"", 1_000)] * 2)
            body = m.stamp(APPEND_IGGY, append_body(APPEND_IGGY, batch, 2), [])
            assert body is not None
            m.apply(op, APPEND_IGGY, body, 1_000_000 * op)
        elif kind == "p":
            m.apply(op, PURGE, b"", 1_000_000 * op)
        else:
            m.apply(op, DELETE_RECORDS, int(kind[1:]).to_bytes(8, "little"), 1_000_000 * op)
    return m


def transfer(peer: PartitionMachine, behind: PartitionMachine) -> Manifest:
    """What a replica behind does with the peer's checkpoint: fetch what it needs, install
    it, restore the snapshot."""
    data = peer.snapshot()
    assert data is not None
    manifest = Manifest.decode(data)
    assert behind.missing(data)
    fetch = fetch_all(peer.log, behind.log)
    behind.install(manifest, fetch.staged, "a test")
    behind.restore(data)
    assert not behind.missing(data)
    return manifest


@pytest.mark.parametrize("last", ["d5", "d12"])
def test_a_log_holding_every_batch_but_not_the_last_delete_records_installs_its_floor(
        tmp_path: Path, last: str) -> None:
    """Seeds 5023673 and 5029082: a replica behind the peers' checkpoint held every batch it
    names but had not executed the DeleteRecords before it, took the snapshot as it was and
    kept its old log start (and later ops answered from it). Such a log now counts as
    missing the checkpoint, and the install moves its floor and marker."""
    kinds = ["a"] * 6 + [last]
    peer = machine_after(tmp_path / "peer", kinds)
    behind = machine_after(tmp_path / "behind", kinds[:-1])
    manifest = Manifest.decode(peer.snapshot() or b"")
    assert not lacks(behind.log, manifest)  # every batch is here: the old rule fetched nothing
    transfer(peer, behind)
    assert behind.log.start_offset == peer.log.start_offset == int(last[1:])
    assert behind.marker == peer.marker == len(kinds)
    assert behind.snapshot() == peer.snapshot()
    assert files_of(behind.log) == files_of(peer.log)
    # the next DeleteRecords answers the same on both
    for m in (peer, behind):
        assert parse_reply(m.apply(8, DELETE_RECORDS, (2).to_bytes(8, "little"), 8_000_000)) \
            == (0, int(last[1:]))


def test_a_checkpoint_after_a_purge_replaces_an_unpurged_log(tmp_path: Path) -> None:
    """The peers purged and appended again: the same offsets hold other batches. A replica
    that never executed the purge, holding more batches in segment 0 than the manifest
    names, gets exactly the checkpoint's log (its own batches go to lost+found)."""
    peer = machine_after(tmp_path / "peer", ["a"] * 5 + ["p", "a"])
    behind = machine_after(tmp_path / "behind", ["a"] * 5)
    transfer(peer, behind)
    assert files_of(behind.log) == files_of(peer.log)
    assert behind.log.next_offset == 2 and behind.applied_next == 2
    assert lost_found_files(behind.log)
    empty = machine_after(tmp_path / "empty", ["a"] * 3 + ["p"])  # purged, nothing since
    behind = machine_after(tmp_path / "behind2", ["a"] * 3)
    transfer(empty, behind)
    assert behind.log.next_offset == 0 and files_of(behind.log) == files_of(empty.log)


def lost_found_files(plog: PartitionLog) -> list[Path]:
    root = plog.lost_found.root
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
