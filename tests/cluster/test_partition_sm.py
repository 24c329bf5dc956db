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
from pyggy.core.engine import LogEngine
from pyggy.core.records import iggy_batch


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
                psm.DELETE_SEGMENTS: 8}[operation]
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
