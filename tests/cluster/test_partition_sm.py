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
