"""ProducerStates across a restart: ids reserved in blocks before use, sequences rebuilt from
stored batches (kafka_wire/producers.py), and the reservation file (kafka_wire/producer_ids.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyggy.kafka_wire.producer_ids import IdBlocks, ProducerIdFile
from pyggy.kafka_wire.producers import ID_BLOCK, OWN_RANGES, IdsExhausted, ProducerStates
from pyggy.kafka_wire.protocol.errors import ErrorCode

KEY = (1, 2, 0)


def test_ids_are_reserved_before_use_and_never_repeat_after_a_restart() -> None:
    marks: list[int] = []
    first = ProducerStates(1000, marks.append)
    ids = [first.init()[1] for _ in range(ID_BLOCK + 5)]
    assert marks == [1000 + ID_BLOCK, 1000 + 2 * ID_BLOCK]
    assert all(pid < marks[-1] for pid in ids)
    # a restart starts from the last durable mark: every later id is new
    again = ProducerStates(marks[-1], marks.append)
    later = {again.init()[1] for _ in range(10)}
    assert not later & set(ids)


def test_restored_sequences_answer_retries_and_refuse_gaps() -> None:
    before = ProducerStates()
    _, pid, epoch = before.init()
    stored = []  # what the log holds: (base offset, pid, epoch, base sequence, count)
    offset = 0
    for seq in (0, 3, 6):
        assert before.check(pid, epoch, seq, 3, KEY) == (ErrorCode.NONE, None)
        before.record(pid, epoch, seq, 3, KEY, offset)
        stored.append((offset, pid, epoch, seq, 3))
        offset += 3
    after = ProducerStates(5000)
    after.restore(KEY, stored)
    assert KEY in after.restored
    assert after.check(pid, epoch, 6, 3, KEY) == (ErrorCode.NONE, 6)  # a retry: its offset
    assert after.check(pid, epoch, 3, 3, KEY) == (ErrorCode.NONE, 3)
    assert after.check(pid, epoch, 12, 3, KEY) == (ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, None)
    assert after.check(pid, epoch, 9, 3, KEY) == (ErrorCode.NONE, None)
    assert after.check(pid, epoch - 1, 9, 3, KEY)[0] == ErrorCode.INVALID_PRODUCER_EPOCH
    # batches without a producer id are not producer state
    other = ProducerStates()
    other.restore(KEY, [(0, -1, -1, -1, 5)])
    assert other.partitions == {}


def test_deleting_a_partition_forgets_that_it_was_restored() -> None:
    states = ProducerStates()
    states.restore(KEY, [(0, 7, 0, 0, 1)])
    states.forget_partitions(KEY[0], KEY[1], {KEY[2]})
    assert KEY not in states.restored and not states.partitions


def test_id_file_round_trip_and_corruption(tmp_path: Path) -> None:
    f = ProducerIdFile(tmp_path / "kafka" / "producer_ids")
    assert f.load(1000) == 1000  # no file yet
    f.store(3000)
    assert f.load(1000) == 3000
    assert not list(f.path.parent.glob("*.tmp"))
    f.path.write_text("garbage\n")  # one damaged copy: repaired from the other
    assert f.load(1000) == 3000 and ProducerIdFile(f.path).load(1000) == 3000
    f.path.write_text("garbage\n")
    Path(f"{f.path}.copy").write_text("3001\n")
    jumped = f.load(1000)
    assert jumped > 10**15  # both lost: far above any id a mark could have allowed
    assert ProducerIdFile(f.path).load(1000) == jumped  # stored at once
    assert len(list(tmp_path.glob("kafka/lost+found/*/producer_ids*"))) == 2
    f.path.parent.joinpath("legacy").write_text("4000\n")  # the old format still loads
    assert ProducerIdFile(f.path.parent / "legacy").load(1000) == 4000


def test_cluster_blocks_continue_above_every_mark_and_fall_back_to_the_own_range(
        tmp_path: Path) -> None:
    """IdBlocks: a block starts at the replicated mark or the proposer's floor, whichever is
    higher, and moves the mark on disk; ProducerStates in block mode uses a granted block,
    then its own range; without one it refuses (retriable)."""
    blocks = IdBlocks(ProducerIdFile(tmp_path / "ids"), 1000, ID_BLOCK)
    assert blocks.apply({"floor": 1000}) == 1000
    assert blocks.apply({"floor": 0}) == 1000 + ID_BLOCK  # pipelined: the mark moved on
    # a proposer that knows a higher mark (an older version's per-replica range)
    assert blocks.apply({"floor": 5 << 40}) == 5 << 40
    assert IdBlocks(ProducerIdFile(tmp_path / "ids"), 1000, ID_BLOCK).mark \
        == (5 << 40) + ID_BLOCK  # durable
    with pytest.raises(ValueError):
        blocks.apply({"floor": "1"})
    own = iter(range(OWN_RANGES, OWN_RANGES + 10))
    states = ProducerStates(blocks=True, fallback=lambda: next(own))
    assert states.remaining() == 0
    assert states.new_id() == OWN_RANGES  # no block yet: this replica's own range
    states.take_block(2000, 2)
    assert [states.new_id(), states.new_id(), states.new_id()] == [2000, 2001, OWN_RANGES + 1]
    with pytest.raises(IdsExhausted):
        ProducerStates(blocks=True).new_id()


def test_idle_producers_expire_per_partition() -> None:
    """producer.id.expiration.ms: a producer idle on a partition for longer is forgotten
    there (a retry is no longer recognised: any sequence starts it afresh, as on Kafka); its
    epoch goes once no partition holds it, unless it is kept (a live transactional id)."""
    states = ProducerStates()
    _, idle, e1 = states.init()
    _, busy, e2 = states.init()
    _, txn, e3 = states.init()
    other = (1, 2, 1)
    states.record(idle, e1, 0, 1, KEY, 0, now_ms=1_000)
    states.record(busy, e2, 0, 1, KEY, 1, now_ms=1_000)
    states.record(busy, e2, 0, 1, other, 0, now_ms=5_000)
    states.record(txn, e3, 0, 1, KEY, 2, now_ms=1_000)
    assert states.expire(5_500, 10_000, keep=lambda pid: False) == 0
    assert states.check(idle, e1, 0, 1, KEY) == (ErrorCode.NONE, 0)  # a retry: its offset
    assert states.expire(11_500, 10_000, keep=lambda pid: pid == txn) == 3
    assert (busy, other) in states.partitions and (busy, KEY) not in states.partitions
    assert idle not in states.epochs and txn in states.epochs and busy in states.epochs
    assert states.check(idle, e1, 0, 1, KEY) == (ErrorCode.NONE, None)  # new again
    assert states.check(idle, e1, 7, 1, KEY) == (ErrorCode.NONE, None)  # any sequence
    assert states.expire(20_000, 10_000, keep=lambda pid: False) == 1
    assert not states.partitions and busy not in states.epochs


def test_a_batch_of_an_epoch_bumped_past_is_fenced_not_out_of_order() -> None:
    """KIP-360: a producer bumps its epoch after a timeout and starts again at sequence 0; a
    late retry of its old epoch is INVALID_PRODUCER_EPOCH (as on Kafka), not an
    OUT_OF_ORDER_SEQUENCE_NUMBER against the new epoch's sequences, even on a node that did
    not hand out the bump (a cluster's partition leader: only the batches tell it)."""
    states = ProducerStates()
    pid = 4242
    for seq in range(3):
        assert states.check(pid, 0, seq, 1, KEY) == (ErrorCode.NONE, None)
        states.record(pid, 0, seq, 1, KEY, seq)
    assert states.check(pid, 1, 0, 1, KEY) == (ErrorCode.NONE, None)  # the bumped epoch
    states.record(pid, 1, 0, 1, KEY, 3)
    assert states.epochs[pid] == 1
    assert states.check(pid, 0, 3, 1, KEY) == (ErrorCode.INVALID_PRODUCER_EPOCH, None)
    assert states.check(pid, 1, 1, 1, KEY) == (ErrorCode.NONE, None)


def test_sequence_rules_and_init_are_kafkas() -> None:
    """As Kafka's partition leader and coordinator answer (interop_tests/test_differential.py
    compares with a real broker): a new epoch starts at 0; a producer new to the partition may
    start anywhere; InitProducerId of an idempotent producer is always a new id at epoch 0
    (pyggy used to bump the epoch of the id it named, on whichever node received it)."""
    states = ProducerStates()
    _, pid, epoch = states.init()
    assert epoch == 0
    for seq in range(3):
        assert states.check(pid, 0, seq, 1, KEY) == (ErrorCode.NONE, None)
        states.record(pid, 0, seq, 1, KEY, seq)
    assert states.check(pid, 1, 3, 1, KEY) == (ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, None)
    assert "new epoch" in states.explain(pid, 1, 3, KEY)
    assert states.check(pid, 1, 0, 1, KEY) == (ErrorCode.NONE, None)
    assert states.check(pid, 0, 5, 1, KEY) == (ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, None)
    assert "5 (incoming seq. number), 2 (current end" in states.explain(pid, 0, 5, KEY)
    error, again, epoch = states.init()
    assert (error, epoch) == (ErrorCode.NONE, 0) and again != pid
    assert states.check(again, 0, 41, 1, KEY) == (ErrorCode.NONE, None)
