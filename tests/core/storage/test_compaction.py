"""The compactor on real partition logs: the planner, what a pass keeps, offsets and gaps,
tombstones, transactions, Iggy batches, and a crash at every step of a segment's swap."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from pyggy.core.model import TopicOptions
from pyggy.core.options import STRING, topic_options
from pyggy.core.records import kafka_batch
from pyggy.core.storage import compaction, segment_swap
from pyggy.core.storage.compaction import Policy, plan, policy_of
from pyggy.core.storage.index import DAMAGED
from pyggy.core.storage.partition_log import PartitionLog
from storage_support import iggy, open_log

NOW = 1_800_000_000_000_000  # µs: later than any append time below
KEEP_TOMBSTONES = Policy(False, 2**62, 0.0, 0, 2**62)
STEPS = ("written", "synced", "verified", "marked", "index-renamed", "log-renamed",
         "unmarked")


def never(_pid: int, _offset: int) -> bool:
    return False


def _run(coro):  # noqa: ANN001, ANN202
    return asyncio.run(coro)


async def _put(log: PartitionLog, records: list[tuple[bytes | None, bytes | None]],
               **kw: object) -> int:
    b = kafka_batch.build_batch([(1_700_000_000_000, k, v, []) for k, v in records], **kw)
    info = kafka_batch.validate_batch(b)
    return await log.append_kafka(b, info.record_count, info.max_timestamp)


def fill(log: PartitionLog, updates: int, keys: int, per_batch: int = 4,
         tombstone_every: int = 0) -> dict[bytes, bytes | None]:
    """`updates` keyed records (every `tombstone_every`-th a tombstone); the latest per key."""
    latest: dict[bytes, bytes | None] = {}

    async def go() -> None:
        batch: list[tuple[bytes | None, bytes | None]] = []
        for n in range(updates):
            key = f"key-{n % keys:04d}".encode()
            value = None if tombstone_every and n % tombstone_every == 0 else \
                f"value-{n:06d}".encode().ljust(40, b".")
            batch.append((key, value))
            latest[key] = value
            if len(batch) == per_batch:
                await _put(log, batch)
                batch = []
        if batch:
            await _put(log, batch)
    _run(go())
    return latest


def view(log: PartitionLog, start: int = 0) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every Kafka record from `start`, as (offset, key, value)."""
    out = []
    for ref in log.read(start, 1 << 30):
        if ref.encoding == 2:
            out += [(o, k, v) for o, _ts, k, v, _h in kafka_batch.iter_records(ref.data)
                    if o >= start]
    return out


def compact(log: PartitionLog, policy: Policy = KEEP_TOMBSTONES, now: int = NOW,
            **kw: object) -> int:
    return _run(compaction.compact(log, policy, now, log.next_offset, never, **kw))


# -- config ---------------------------------------------------------------------------------
def test_policy_from_topic_options_of_either_door() -> None:
    assert policy_of(TopicOptions()) is None
    opts = topic_options([("kafka.cleanup.policy", STRING, b"compact,delete"),
                          ("kafka.delete.retention.ms", STRING, b"5"),
                          ("kafka.min.cleanable.dirty.ratio", STRING, b"0.01"),
                          ("kafka.min.compaction.lag.ms", STRING, b"7"),
                          ("kafka.max.compaction.lag.ms", STRING, b"9")])
    assert policy_of(opts) == Policy(True, 5000, 0.01, 7000, 9000)
    compact_only = topic_options([("kafka.cleanup.policy", STRING, b"compact")])
    assert policy_of(compact_only) == Policy(False, 86_400_000_000, 0.5, 0,
                                             (2**63 - 1) // 1000 * 1000)
    from pyggy.core.errors import IggyError
    for key, bad in (("cleanup.policy", b"shred"), ("min.cleanable.dirty.ratio", b"2"),
                     ("delete.retention.ms", b"-1"), ("max.compaction.lag.ms", b"0")):
        with pytest.raises(IggyError):  # the Iggy door checks what the Kafka door checks
            topic_options([(f"kafka.{key}", STRING, bad)])


# -- planning -------------------------------------------------------------------------------
def test_planner_never_takes_the_active_segment_and_honours_its_bounds(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_size=2000)
    fill(log, 200, 10)
    sealed = log.segments[:-1]
    assert len(sealed) >= 4
    p = plan(sealed, KEEP_TOMBSTONES, NOW, 0, log.next_offset)
    assert p is not None and p.segments == sealed and p.dirty == 0 and p.ratio == 1.0
    assert p.end == sealed[-1].next_offset < log.next_offset
    # the last stable offset bounds it (an open transaction)
    p = plan(sealed, KEEP_TOMBSTONES, NOW, 0, sealed[2].next_offset - 1)
    assert p is not None and p.segments == sealed[:2]
    # min.compaction.lag.ms: nothing is old enough yet
    lagged = Policy(False, 0, 0.0, NOW, 2**62)
    assert plan(sealed, lagged, NOW, 0, log.next_offset) is None
    # dirty ratio: everything cleaned but the last sealed segment
    strict = Policy(False, 0, 0.9, 0, 2**62)
    assert plan(sealed, strict, NOW, sealed[-2].next_offset, log.next_offset) is None
    overdue = Policy(False, 0, 0.9, 0, 1)  # max.compaction.lag.ms overrides the ratio
    p = plan(sealed, overdue, NOW, sealed[-2].next_offset, log.next_offset)
    assert p is not None and p.dirty == len(sealed) - 1
    assert plan(sealed, KEEP_TOMBSTONES, NOW, sealed[-1].next_offset, log.next_offset) is None
    # a damaged batch stops it: such a segment is never rewritten
    sealed[1].index.flags[0] |= DAMAGED
    p = plan(sealed, KEEP_TOMBSTONES, NOW, 0, log.next_offset)
    assert p is not None and p.segments == sealed[:1]
    log.close()


# -- a pass ---------------------------------------------------------------------------------
def test_a_pass_keeps_the_latest_value_per_key_and_every_offset(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_size=2000)
    latest = fill(log, 400, 20, tombstone_every=7)
    end = log.next_offset
    active = log.segments[-1].start_offset
    before = view(log)
    assert compact(log) == len(log.segments) - 1
    after = view(log)
    assert log.next_offset == end and log.start_offset == 0
    cleaned = [r for r in after if r[0] < active]
    assert len({k for _, k, _ in cleaned}) == len(cleaned)  # one record per key
    assert set(after) <= set(before)  # records keep their offsets
    final = {k: v for _, k, v in after}
    assert final == latest  # tombstones (null values) kept: delete.retention.ms not passed
    # a read from an offset compacted away gets the next record
    gone = next(o for o, _, _ in before if o not in {r[0] for r in after})
    assert view(log, gone)[0][0] == min(o for o, _, _ in after if o > gone)
    assert compact(log) == 0  # nothing dirty any more
    log.close()
    again = open_log(tmp_path, segment_size=2000)  # the compacted segments reopen as they are
    assert view(again) == after and again.next_offset == end
    again.close()


def test_tombstones_go_after_delete_retention(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_size=2000)
    latest = fill(log, 300, 10, tombstone_every=3)
    dead = {k for k, v in latest.items() if v is None}
    assert dead
    compact(log, Policy(False, 1, 0.0, 0, 2**62))
    active = log.segments[-1].start_offset
    cleaned = [r for r in view(log) if r[0] < active]
    assert cleaned and all(v is not None for _, _, v in cleaned)
    log.close()


def test_keyless_records_iggy_batches_and_markers_stay(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_size=2000)

    async def go() -> None:
        for n in range(40):
            await _put(log, [(b"k", b"v%d" % n), (None, b"keyless%d" % n)])
            if n % 10 == 0:
                await log.append_iggy(iggy(2, log.next_offset), 2)
                marker = kafka_batch.build_control_batch(True, 5, 0, 0, 1_700_000_000_000)
                await log.append_kafka(marker, 1, 1_700_000_000_000)
    _run(go())
    active = log.segments[-1].start_offset
    kinds_before = [(r.base_offset, r.encoding) for r in log.read(0, 1 << 30)]
    compact(log)
    refs = log.read(0, 1 << 30)
    assert [(r.base_offset, r.encoding) for r in refs] == kinds_before  # every batch stays
    markers = [r for r in refs if r.encoding == 2
               and kafka_batch.batch_fields(r.data)[5] & kafka_batch.CONTROL_MASK]
    assert len(markers) == 4
    records = [r for r in view(log) if r[0] < active]
    assert sum(1 for _, k, _ in records if k is None) == sum(
        1 for r in refs if r.base_offset < active and r.encoding == 2
        and not kafka_batch.batch_fields(r.data)[5] & kafka_batch.CONTROL_MASK)
    assert sum(1 for _, k, _ in records if k == b"k") <= 1
    log.close()


def test_aborted_transactions_are_removed(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_size=2000)

    async def go() -> list[int]:
        bases = []
        for n in range(30):
            bases.append(await _put(log, [(b"t%d" % n, b"x" * 60)], producer_id=n % 2,
                                    producer_epoch=0, base_sequence=n, transactional=True))
        return bases
    bases = _run(go())
    fill(log, 60, 60)  # more segments after them

    def aborted(pid: int, offset: int) -> bool:
        return pid == 1 and offset in bases

    _run(compaction.compact(log, KEEP_TOMBSTONES, NOW, log.next_offset, aborted))
    keys = {k for _, k, _ in view(log)}
    assert all((b"t%d" % n in keys) == (n % 2 == 0) for n in range(30))
    log.close()


def test_a_pass_over_a_deleted_segment_changes_nothing(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log(tmp_path, segment_size=2000)
    fill(log, 200, 5)
    real = segment_swap.write_copy
    first = log.segments[0]

    def racing(directory, start, batches, hook=segment_swap.no_hook):  # noqa: ANN001, ANN202
        out = real(directory, start, batches, hook)
        if first in log.segments:
            log.segments.remove(first)  # retention deleted it meanwhile (on the loop)
        return out

    monkeypatch.setattr(segment_swap, "write_copy", racing)
    compact(log)
    assert not list(tmp_path.glob("*.new")) and not list(tmp_path.glob("*.swap"))
    assert first.fd >= 0  # never swapped, never retired
    first.close()
    log.close()


# -- crash safety ---------------------------------------------------------------------------
class Crash(Exception):
    """The process dies here (nothing after this step runs; the files are as they are)."""


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_leaves_the_old_or_the_new_segment(tmp_path: Path,
                                                               step: str) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    log = open_log(a, segment_size=2000)
    fill(log, 300, 10, tombstone_every=5)
    log.close()
    shutil.copytree(a, b)
    old = open_log(a, segment_size=2000)
    before = view(old)
    twin = open_log(b, segment_size=2000)
    compact(twin)
    new = view(twin)
    twin.close()
    assert new != before

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    with pytest.raises(Crash):
        compact(old, hook=crash)
    old.close(clean=False)  # the crash: no clean marker, files as the step left them
    reopened = open_log(a, segment_size=2000)
    got = view(reopened)
    committed = STEPS.index(step) >= STEPS.index("marked")
    if committed:  # only the first segment was swapped before the crash
        first_end = reopened.segments[0].next_offset
        assert [r for r in got if r[0] < first_end] == [r for r in new if r[0] < first_end]
        assert [r for r in got if r[0] >= first_end] == [r for r in before if r[0] >= first_end]
    else:
        assert got == before
    assert not list(a.glob("*.new")) and not list(a.glob("*.swap"))
    compact(reopened)  # the next pass finishes the job
    assert view(reopened) == new
    reopened.close()


def test_a_copy_that_does_not_verify_is_discarded(tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_size=2000)
    fill(log, 200, 5)
    before = view(log)

    def flip(step: str) -> None:
        if step == "synced":  # a bit flipped on the way to the disk
            for p in tmp_path.glob("*.log.new"):
                data = bytearray(p.read_bytes())
                data[100] ^= 1
                p.write_bytes(bytes(data))

    assert compact(log, hook=flip) == 0
    assert view(log) == before and not list(tmp_path.glob("*.new"))
    log.close()


def test_a_failed_swap_of_a_segment_retention_then_deletes_does_not_come_back(
        tmp_path: Path) -> None:
    log = open_log(tmp_path, segment_size=2000)
    fill(log, 200, 5)
    first_end = log.segments[0].next_offset

    def fail(step: str) -> None:
        if step == "index-renamed":
            raise OSError(28, "No space left on device")  # injected: the rename's fsync fails

    assert compact(log, hook=fail) == 0  # logged; the marked swap would finish at open
    assert list(tmp_path.glob("*.swap"))
    assert log.delete_oldest(1) == 1  # retention takes that segment meanwhile
    assert not list(tmp_path.glob("*.swap")) and not list(tmp_path.glob("*.new"))
    log.close(clean=False)
    again = open_log(tmp_path, segment_size=2000)
    assert again.start_offset == first_end  # it did not come back
    again.close()
