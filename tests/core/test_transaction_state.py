"""Transaction state as the metadata state machine keeps it (core/transactions.py): the last
stable offset, aborted ranges, staged offsets; rebuilt identically by replaying the commands,
and through the engine (markers written, state kept across a restart)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from pyggy.core.engine import FIRST, LAST, LogEngine
from pyggy.core.metadata.machine import MetadataStateMachine
from pyggy.core.records import kafka_batch
from pyggy.core.transactions import (
    COMPLETE_ABORT,
    COMPLETE_COMMIT,
    ONGOING,
    PREPARE_COMMIT,
    AbortedRanges,
)

P = (0, 1, 0)


def commands(tid: str = "t", pid: int = 7) -> list[dict]:
    return [
        {"type": "txn_init", "transactional_id": tid, "producer_id": pid, "epoch": 0,
         "timeout_ms": 1000},
        {"type": "txn_add", "transactional_id": tid, "partitions": [list(P)], "now_ms": 5},
        {"type": "txn_first_offset", "producer_id": pid, "partition": list(P), "offset": 10},
        {"type": "txn_add", "transactional_id": tid, "groups": ["g"], "now_ms": 6},
        {"type": "txn_offsets", "transactional_id": tid, "group": "g",
         "offsets": [["in", 0, 3, -1, ""]]},
        {"type": "txn_prepare", "transactional_id": tid, "commit": False},
        {"type": "txn_complete", "transactional_id": tid, "markers": [[list(P), 14]],
         "epoch": 1},
    ]


def test_an_aborted_transaction_leaves_its_range_and_frees_the_lso() -> None:
    machine = MetadataStateMachine()  # applies txn_* commands to its TransactionState
    s = machine.txns
    steps = commands()
    for c in steps[:3]:
        machine.apply(c)
    assert s.txns["t"].state == ONGOING and s.txns["t"].started_ms == 5
    assert s.last_stable(P, 20) == 10 and s.last_stable((0, 1, 1), 20) == 20
    for c in steps[3:6]:
        machine.apply(c)
    assert s.txns["t"].offsets == {"g": [("in", 0, 3, -1, "")]}
    assert s.txns["t"].prepared
    machine.apply(steps[6])
    t = s.txns["t"]
    assert (t.state, t.epoch, t.partitions, t.offsets) == (COMPLETE_ABORT, 1, set(), {})
    assert s.last_stable(P, 20) == 20
    assert s.aborted_between(P, 0, 20) == [(7, 10)]
    assert s.aborted_between(P, 15, 20) == []  # ended before the fetch offset
    assert s.aborted_between(P, 0, 10) == []  # begins at/after the end of the data
    s.forget(0, 1, {0})
    assert s.aborted_between(P, 0, 20) == [] and not s.open


def test_a_committed_transaction_leaves_no_range() -> None:
    machine = MetadataStateMachine()
    steps = commands()
    steps[5] = {**steps[5], "commit": True}
    for c in steps:
        machine.apply(c)
    s = machine.txns
    assert s.txns["t"].state == COMPLETE_COMMIT and s.aborted_between(P, 0, 99) == []


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 50), st.integers(0, 50)),
                max_size=30), st.integers(0, 60), st.integers(0, 60))
def test_overlapping_matches_a_linear_scan(ranges, start, end) -> None:
    """The bisected lookup answers what a scan of every range answers."""
    a = AbortedRanges()
    marker = 0
    expected = []
    for pid, first, length in ranges:
        marker += length + 1  # markers come in offset order
        a.add(pid, min(first, marker), marker)
        expected.append((pid, min(first, marker), marker))
    assert a.overlapping(start, end) == [(pid, f) for pid, f, last in expected
                                         if last >= start and f < end]


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 50), st.integers(0, 50)),
                max_size=30), st.integers(0, 400), st.integers(0, 400))
def test_pruning_below_the_log_start_changes_no_fetch_from_there(ranges, below, start) -> None:
    a, b = AbortedRanges(), AbortedRanges()
    marker = 0
    for pid, first, length in ranges:
        marker += length + 1
        a.add(pid, min(first, marker), marker)
        b.add(pid, min(first, marker), marker)
    gone = b.prune(below)
    assert gone == sum(1 for last in a.last if last < below) and len(b.last) == len(a.last) - gone
    fetch_from = max(start, below)  # no fetch starts below the log start
    assert b.overlapping(fetch_from, 10**6) == a.overlapping(fetch_from, 10**6)


def test_the_state_forgets_aborted_ranges_below_each_log_start() -> None:
    machine = MetadataStateMachine()
    for c in commands():
        machine.apply(c)
    s = machine.txns
    assert s.prune_aborted({P: 14}) == 0 and s.aborted_between(P, 14, 20) == [(7, 10)]
    assert s.prune_aborted({(0, 1, 1): 99}) == 0  # another partition
    assert s.prune_aborted({P: 15}) == 1 and P not in s.aborted


def test_engine_writes_markers_and_keeps_the_state_across_a_restart(tmp_path: Path) -> None:
    async def run() -> None:
        engine = LogEngine(tmp_path / "data", state_fsync=False)
        engine.open(("iggy", "iggy"))
        s = await engine.metadata.create_stream("kafka")
        t = await engine.metadata.create_topic(s.id, "out", 1)
        txns = engine.txns
        await txns.init("tx", 42, 0, 60_000)
        await txns.add("tx", [(t.stream_id, t.id, 0)])
        await txns.first_offset(t, 0, 42, 0)
        batch = kafka_batch.build_batch([(1, None, b"v", ())], producer_id=42,
                                        producer_epoch=0, base_sequence=0, transactional=True)
        await engine.data.append_kafka(t, 0, batch, kafka_batch.validate_batch(batch))
        assert txns.last_stable(t, 0, 1) == 0
        for strategy in (FIRST, LAST):  # the open transaction's record is not stable yet
            assert engine.data.poll("kafka", "out", 0, strategy, 0, 10).count == 0
        await txns.end("tx", commit=False, bump_epoch=True)
        assert engine.data.watermarks(t, 0) == (0, 2)  # the record and its ABORT marker
        engine.close()
        again = LogEngine(tmp_path / "data", state_fsync=False)
        again.open()
        t2 = again.metadata.topic("kafka", "out")
        got = again.txns.get("tx")
        assert (got.state, got.epoch, got.producer_id) == (COMPLETE_ABORT, 1, 42)
        assert again.txns.aborted(t2, 0, 0, 2) == [(42, 0)]
        assert again.txns.last_stable(t2, 0, 2) == 2
        assert again.data.poll("kafka", "out", 0, FIRST, 0, 10).count == 0  # aborted
        await again.txns.add("tx", [(t2.stream_id, t2.id, 0)])
        await again.commands.propose({"type": "txn_prepare", "transactional_id": "tx",
                                      "commit": True})
        again.close()
        # a restart finds it prepared: finishing writes the markers and completes it
        last = LogEngine(tmp_path / "data", state_fsync=False)
        last.open()
        assert last.txns.get("tx").state == PREPARE_COMMIT
        await last.txns.finish(last.txns.get("tx"))
        assert last.txns.get("tx").state == COMPLETE_COMMIT
        assert last.data.watermarks(last.metadata.topic("kafka", "out"), 0) == (0, 3)
        last.close()

    asyncio.run(run())
