"""The partition state machine's request bodies: the primary refuses anything malformed at
`stamp` (so no replica's `apply` ever meets it), and stamps appends from the applied log end
plus the pipeline ahead of them (hypothesis)."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.cluster import partition_sm as psm
from pyggy.cluster.segment_transfer import Manifest, describe
from pyggy.core.clock import SystemClock
from pyggy.core.engine import LogEngine
from pyggy.core.model import TopicOptions
from pyggy.core.records import iggy_batch
from pyggy.core.storage.fsync import GroupCommitter
from pyggy.core.storage.partition_log import PartitionLog


@pytest.fixture(scope="module")
def machine(tmp_path_factory) -> psm.PartitionMachine:
    engine = LogEngine(Path(tmp_path_factory.mktemp("p")) / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    asyncio.run(engine.metadata.create_stream("s"))
    t = asyncio.run(engine.metadata.create_topic("s", "t", 1))
    yield psm.PartitionMachine(t.partitions[0].log, False)
    engine.close()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=64))
def test_stamp_never_passes_a_malformed_body(machine, operation: int, body: bytes) -> None:
    out = machine.stamp(operation, body, [])
    if operation not in psm.OPERATIONS:
        assert out is None
    elif operation in (psm.APPEND_IGGY, psm.APPEND_KAFKA):
        if len(body) <= psm.APPEND_HEAD.size:
            assert out is None
        else:  # same length; only the epoch and base offset fields are stamped
            assert out is not None and len(out) == len(body)
            assert out[psm.APPEND_HEAD.size:] == body[psm.APPEND_HEAD.size:]
    elif operation == psm.ARCHIVED:  # a manifest entry: bounded, parsed at apply
        assert (out is not None) == (0 < len(body) <= psm.ARCHIVED_MAX)
        assert out is None or out == body
    else:
        assert out is None or out == body
        want = {psm.DELETE_RECORDS: 8, psm.PURGE: 0, psm.RETENTION: 16,
                psm.DELETE_SEGMENTS: 8, psm.BARRIER: 0}[operation]
        assert (out is not None) == (len(body) == want)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([psm.APPEND_KAFKA, psm.APPEND_IGGY, psm.PURGE,
                                           psm.DELETE_RECORDS]), st.integers(1, 500)),
                max_size=8), st.integers(1, 50))
def test_an_append_is_stamped_after_the_pipeline_ahead(machine, ahead, count: int) -> None:
    pending, expected = [], machine.log.next_offset
    for operation, n in ahead:
        if operation == psm.PURGE:
            pending.append((operation, b""))
            expected = 0
        elif operation == psm.DELETE_RECORDS:
            pending.append((operation, struct.pack("<Q", 0)))
        else:
            pending.append((operation, psm.append_body(operation, b"x" * 8, n)))
            expected += n
    stamped = machine.stamp(psm.APPEND_KAFKA, psm.append_body(psm.APPEND_KAFKA, b"y" * 8,
                                                              count), pending)
    flags, got_count, epoch, base, _ = psm.APPEND_HEAD.unpack_from(stamped)
    assert (got_count, base, epoch) == (count, expected, 0)


def test_a_restarted_primary_stamps_from_the_executed_end_not_the_segments(
        tmp_path: Path) -> None:
    """After a restart the segments may hold ops that replay from the checkpoint; a replica
    that becomes primary with those ops back in its pipeline must stamp after them once, not
    after the segments' end plus them again (found by the simulator, seed 505)."""
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    asyncio.run(engine.metadata.create_stream("s"))
    log = asyncio.run(engine.metadata.create_topic("s", "t", 1)).partitions[0].log
    first = psm.PartitionMachine(log, False)
    bodies, checkpoint = [], b""
    for op in range(1, 6):
        batch = iggy_batch.build_batch([(op * 10 + k, b"m", b"", 1) for k in range(2)])
        body = first.stamp(psm.APPEND_IGGY, psm.append_body(psm.APPEND_IGGY, batch, 2), [])
        assert body is not None
        first.apply(op, psm.APPEND_IGGY, body, 1_000_000 * op)
        bodies.append(body)
        if op == 2:
            checkpoint = first.snapshot()
    assert log.next_offset == 10
    restarted = psm.PartitionMachine(log, False)  # the same files, a new process
    restarted.restore(checkpoint)
    pending = [(psm.APPEND_IGGY, b) for b in bodies[2:]]  # ops 3..5: in the pipeline again
    batch = iggy_batch.build_batch([(99, b"new", b"", 1)])
    stamped = restarted.stamp(psm.APPEND_IGGY, psm.append_body(psm.APPEND_IGGY, batch, 1),
                              pending)
    assert stamped is not None and psm.APPEND_HEAD.unpack_from(stamped)[3] == 10
    for op, body in enumerate(bodies[2:], start=3):  # replayed: already in the segments
        restarted.apply(op, psm.APPEND_IGGY, body, 1_000_000 * op)
    restarted.apply(6, psm.APPEND_IGGY, stamped, 6_000_000)
    assert log.next_offset == 11
    engine.close()


# -- replays after a restart, checkpoints at their op (real files) ---------------------------

def small_log(path: Path, segment_size: int = 1200) -> PartitionLog:
    """A fresh log whose segments roll every few batches."""
    plog = PartitionLog(path, 0, TopicOptions(segment_size=segment_size), GroupCommitter(),
                        SystemClock())
    plog.open()
    return plog


def body_of(m: psm.PartitionMachine, op: int, kind: str) -> tuple[int, bytes]:
    """(operation, body) of op `op` as the primary stamps it: `a` an append, `dN` DeleteRecords
    to offset N, `p` a purge, `s` delete the oldest segment."""
    if kind == "a":
        batch = iggy_batch.build_batch([(op * 2 + j + 1, b"m-%d-%d" % (op, j), b"", 1_000 + j)
                                        for j in range(2)])
        body = m.stamp(psm.APPEND_IGGY, psm.append_body(psm.APPEND_IGGY, batch, 2), [])
        assert body is not None
        return psm.APPEND_IGGY, body
    if kind == "p":
        return psm.PURGE, b""
    if kind == "s":
        return psm.DELETE_SEGMENTS, struct.pack("<Q", 1)
    return psm.DELETE_RECORDS, struct.pack("<Q", int(kind[1:]))


def run(m: psm.PartitionMachine, kinds: list[str], first: int = 1
        ) -> tuple[list[tuple[int, bytes]], list[bytes], list[bytes | None]]:
    """Execute `kinds` as ops first, first+1, ...: their (operation, body) as the journal holds
    them, their replies, and the checkpoint the machine gives after each."""
    journal, replies, snapshots = [], [], []
    for op, kind in enumerate(kinds, start=first):
        operation, body = body_of(m, op, kind)
        replies.append(m.apply(op, operation, body, 1_000_000 * op))
        journal.append((operation, body))
        snapshots.append(m.snapshot())
    return journal, replies, snapshots


HISTORY = ["a", "a", "a", "a", "d3", "a", "d99", "a", "a", "d8", "a", "a", "s", "a"]


def test_a_replayed_op_answers_its_original_reply_not_the_log_as_it_is(tmp_path: Path) -> None:
    """Ops above the checkpoint run again after a restart; the non-append ones the files
    already hold answer what they answered then (the client table caches those replies, and
    every replica's must be the same), not the log start the later ops left."""
    plog = small_log(tmp_path / "p")
    m = psm.PartitionMachine(plog, False)
    journal, replies, snapshots = run(m, HISTORY)
    assert psm.parse_reply(replies[4]) == (psm.OK, 3)  # DeleteRecords to 3
    assert psm.parse_reply(replies[6]) == (psm.INVALID_OFFSET, 0)  # past the end: refused
    assert psm.parse_reply(replies[9]) == (psm.OK, 8)
    assert psm.parse_reply(replies[12]) == (psm.OK, 1)  # one segment deleted
    assert plog.start_offset > 8  # the segment deletion moved it past every earlier reply
    restarted = psm.PartitionMachine(plog, False)  # the same files, a new process
    cp = 3
    checkpoint = snapshots[cp - 1]
    assert checkpoint is not None
    restarted.restore(checkpoint)
    for op, (operation, body) in enumerate(journal[cp:], start=cp + 1):
        assert restarted.apply(op, operation, body, 1_000_000 * op) == replies[op - 1], op
    assert plog.next_offset == 2 * HISTORY.count("a")  # nothing appended twice


def test_a_marker_written_before_replies_were_kept_still_loads(tmp_path: Path) -> None:
    plog = small_log(tmp_path / "p")
    (plog.path / psm.MARKER_FILE).write_bytes(struct.pack("<Q", 41))
    m = psm.PartitionMachine(plog, False)
    assert m.marker == 41 and m.replies == {}
    (plog.path / psm.MARKER_FILE).write_bytes(b"\x01" * 21)  # damaged: ops run again
    assert psm.PartitionMachine(plog, False).marker == 0


def test_a_checkpoint_taken_while_replaying_describes_the_log_at_its_op(tmp_path: Path) -> None:
    """A restarted replica's files may hold ops above the one it checkpoints: batches appended
    later are left out of the manifest, so it is the same bytes as a replica that took it
    live; while the files hold a later DeleteRecords or segment deletion (which cannot be
    described as before), no checkpoint is taken until the replay passes it."""
    live = psm.PartitionMachine(small_log(tmp_path / "live"), False)
    journal, _, snapshots = run(live, HISTORY)
    assert all(s is not None for s in snapshots)
    plog = small_log(tmp_path / "replayed")
    m = psm.PartitionMachine(plog, False)
    run(m, HISTORY)  # executed up to the last op, then the process stops
    restarted = psm.PartitionMachine(plog, False)
    checkpoint = snapshots[0]
    assert checkpoint is not None
    restarted.restore(checkpoint)
    last_removal = max(op for op, k in enumerate(HISTORY, start=1) if k[0] in "ds")
    for op, (operation, body) in enumerate(journal[1:], start=2):
        restarted.apply(op, operation, body, 1_000_000 * op)
        got = restarted.snapshot()
        if op < last_removal:
            assert got is None, op  # the files already hold op 13's segment deletion
        else:
            assert got == snapshots[op - 1], op
    # appends only above the op: every op's checkpoint, the later batches left out
    ahead = psm.PartitionMachine(small_log(tmp_path / "ahead"), False)
    journal, _, _ = run(ahead, ["a"] * 7)
    for op in range(1, 8):
        at_op = psm.PartitionMachine(small_log(tmp_path / f"at{op}"), False)
        run(at_op, ["a"] * op)
        assert describe(ahead.log, 0, 2 * op) == Manifest.decode(at_op.snapshot() or b"")
    assert len(ahead.log.segments) > 1


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80), st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 1),
                                                   st.integers(0, 2**64 - 1)), max_size=8))
def test_the_marker_file_round_trips_and_any_damage_loads_as_no_marker(
        tmp_path_factory, junk: bytes, kept: list[tuple[int, int, int]]) -> None:
    plog = small_log(Path(tmp_path_factory.mktemp("m")))
    m = psm.PartitionMachine(plog, False)
    for op, status, value in sorted(kept):
        m._store_marker(op, psm._REPLY.pack(status, value))
    m._store_marker(6000)  # the last op: no reply of its own kept
    again = psm.PartitionMachine(plog, False)
    assert again.marker == m.marker and again.replies == m.replies
    good = (plog.path / psm.MARKER_FILE).read_bytes()
    (plog.path / psm.MARKER_FILE).write_bytes(junk)
    loaded = psm.PartitionMachine(plog, False)  # never raises
    if len(junk) != 8 and junk != good:
        assert loaded.marker == 0 and loaded.replies == {}


def test_a_barrier_changes_nothing_and_answers_the_same_everywhere(tmp_path: Path) -> None:
    """BARRIER (`ClusterView.confirm`): the same reply on every replica and at a replay, no
    marker, the log and its checkpoint as they were."""
    plog = small_log(tmp_path / "p")
    m = psm.PartitionMachine(plog, False)
    run(m, ["a", "a", "d1"])
    before = (plog.start_offset, plog.next_offset, m.marker, m.snapshot())
    for op in (4, 4, 5):  # a replay of op 4 too
        assert psm.parse_reply(m.apply(op, psm.BARRIER, b"", 1_000_000 * op)) == (psm.OK, 0)
    assert (plog.start_offset, plog.next_offset, m.marker, m.snapshot()) == before
