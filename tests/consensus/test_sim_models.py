"""The simulator's state machines: stamped partition batches, log-start moves, determinism."""

from __future__ import annotations

import struct

import pytest
from pyggy.consensus.sim import models
from pyggy.consensus.status import Divergence


def test_the_primary_stamps_base_offsets_past_the_appends_ahead_in_the_pipeline():
    p = models.PartitionModel()
    p.apply(1, models.APPEND, p.stamp(models.APPEND, models.append_body([b"a", b"b"]), []), 0)
    pending = [(models.APPEND, models.append_body([b"c"])), (models.PURGE, b"")]
    stamped = p.stamp(models.APPEND, models.append_body([b"d"]), pending)
    assert models.batch_records(stamped) == (3, [b"d"])  # 2 executed + 1 pending


def test_a_batch_stamped_elsewhere_than_the_log_end_is_a_divergence():
    p = models.PartitionModel()
    wrong = bytearray(models.append_body([b"x"]))
    struct.pack_into("<Q", wrong, 0, 5)
    with pytest.raises(Divergence):
        p.apply(1, models.APPEND, bytes(wrong), 0)


def test_log_start_moves_only_through_ops_and_reads_start_there():
    p = models.PartitionModel()
    p.apply(1, models.APPEND, models.append_body([b"%d" % i for i in range(10)]), 0)
    p.apply(2, models.DELETE_RECORDS, struct.pack("<Q", 4), 0)
    p.apply(3, models.DELETE_RECORDS, struct.pack("<Q", 2), 0)  # never moves back
    log_start, hw, records = models.parse_read(p.read(models.read_query(0, 3)))
    assert (log_start, hw, records) == (4, 10, [(4, b"4"), (5, b"5"), (6, b"6")])
    p.apply(4, models.RETENTION, struct.pack("<Q", 2), 0)
    assert models.parse_read(p.read(models.read_query(0, 9)))[0] == 8
    p.apply(5, models.PURGE, b"", 0)
    assert models.parse_read(p.read(models.read_query(0, 9)))[2] == []


def test_snapshots_restore_the_same_state_and_bytes():
    for model in (models.PartitionModel(), models.MetadataModel()):
        if isinstance(model, models.PartitionModel):
            model.apply(1, models.APPEND, models.append_body([b"r1", b"r2"]), 0)
        else:
            model.apply(1, models.CREATE_STREAM, models.pack_names("s1"), 0)
            model.apply(2, models.CREATE_TOPIC, models.pack_names("s1", "t1"), 0)
        twin = type(model)()
        twin.restore(model.snapshot())
        assert twin.snapshot() == model.snapshot()


def test_metadata_ids_are_assigned_at_apply_and_duplicates_answer_exists():
    m = models.MetadataModel()
    first = m.apply(1, models.CREATE_STREAM, models.pack_names("orders"), 0)
    again = m.apply(2, models.CREATE_STREAM, models.pack_names("orders"), 0)
    assert first[0] == models.OK and again[0] == models.EXISTS and first[1:] == again[1:]
    pid = m.apply(3, models.INIT_PRODUCER_ID, b"", 0)
    assert struct.unpack("<BQ", pid) == (models.OK, 1000)


def _external_after(ops: list[tuple[int, bytes]]) -> models.ExternalPartitionModel:
    p = models.ExternalPartitionModel(models.SegmentStore())
    for op, (operation, body) in enumerate(ops, start=1):
        if operation == models.APPEND:
            body = p.stamp(operation, body, [])
        p.apply(op, operation, body, 0)
    return p


OPS = [(models.APPEND, models.append_body([b"a", b"b", b"c"])),
       (models.DELETE_RECORDS, struct.pack("<Q", 2)),
       (models.APPEND, models.append_body([b"d"])),
       (models.DELETE_RECORDS, struct.pack("<Q", 3))]


def test_a_store_holding_every_record_but_not_the_last_log_start_move_misses_the_manifest():
    """Seeds 5023673 and 5029082: the store had every record a peer's checkpoint named but had
    not executed the DeleteRecords before it; installing the manifest over it kept its old log
    start. As pyggy's partition, such a store now misses the manifest (the driver fetches)."""
    peer, behind = _external_after(OPS), _external_after(OPS[:3])
    manifest = peer.snapshot()
    assert manifest is not None and behind.records == peer.records
    assert behind.missing(manifest) and not peer.missing(manifest)


def test_a_replay_answers_the_first_reply_and_skips_checkpoints_it_cannot_describe():
    """After a restart the store is ahead: replayed DeleteRecords answer what they answered,
    and no checkpoint is described while the store holds a later op's log-start move."""
    first = _external_after(OPS)
    replies = [first.store.replies[2], first.store.replies[4]]
    restarted = models.ExternalPartitionModel(first.store)  # the same store, a new process
    snapshots = []
    for op, (operation, body) in enumerate(OPS, start=1):
        if operation == models.APPEND:  # as the journal holds it: stamped
            body = struct.pack("<Q", 0 if op == 1 else 3) + body[8:]
        reply = restarted.apply(op, operation, body, 0)
        if op in (2, 4):
            assert reply == replies[op // 2 - 1]
        snapshots.append(restarted.snapshot())
    assert snapshots[:3] == [None, None, None] and snapshots[3] == first.snapshot()
