"""The journal: prepares + redundant headers; recovery keeps what it can prove it held."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.consensus.journal import FRAME, HEADERS, PREPARES, Journal
from pyggy.consensus.message import Command, Message, encode
from pyggy.consensus.storage import MemoryStorage

SLOTS, PREPARE_MAX = 8, 512


def prepare(op: int, body: bytes = b"body", view: int = 1) -> Message:
    m = Message(Command.PREPARE, cluster=bytes(16), view=view, op=op, parent=bytes([op]) * 16,
                group=3, operation=32, body=body)
    encode(m)
    return m


def settle(j: Journal, storage: MemoryStorage) -> list:
    done = []
    while tokens := storage.take_done():
        done += [j.on_write_done(t) for t in tokens]
    return done


def written(ops: list[Message]) -> tuple[Journal, MemoryStorage]:
    storage = MemoryStorage()
    j = Journal(storage, SLOTS, PREPARE_MAX)
    for p in ops:
        j.write(p.op, p.raw, p.checksum)
    settle(j, storage)
    return j, storage


def test_a_prepare_is_durable_once_both_copies_are():
    storage = MemoryStorage()
    j = Journal(storage, SLOTS, PREPARE_MAX)
    p = prepare(3)
    j.write(3, p.raw, p.checksum)
    (first,) = storage.take_done()  # the prepare; its header copy only once it is durable
    assert j.on_write_done(first) is None and j.pending(3, p.checksum)
    (second,) = storage.take_done()
    assert j.on_write_done(second) == (3, p.checksum) and j.durable(3, p.checksum)
    assert j.read(3).body == b"body"


def test_writes_to_one_slot_are_serialised():
    storage = MemoryStorage()
    j = Journal(storage, SLOTS, PREPARE_MAX)
    a, b = prepare(3, b"a"), prepare(3, b"b", view=2)
    j.write(3, a.raw, a.checksum)
    j.write(3, b.raw, b.checksum)  # waits for the first
    assert j.pending(3, b.checksum) and j.read(3).body == b"a"
    done = [d for d in settle(j, storage) if d]
    assert done == [(3, a.checksum), (3, b.checksum)] and j.read(3).body == b"b"


def test_recovery_finds_every_intact_prepare():
    ops = [prepare(op) for op in range(1, 6)]
    _, storage = written(ops)
    found = Journal(storage, SLOTS, PREPARE_MAX).recover()
    assert sorted(found) == [1, 2, 3, 4, 5]
    assert all(found[p.op].prepare.checksum == p.checksum for p in ops)


def test_a_rotten_body_leaves_the_op_known_but_faulty():
    ops = [prepare(op) for op in range(1, 4)]
    j, storage = written(ops)
    slot = 2 % SLOTS
    storage.zones[PREPARES][slot * j.slot_size + FRAME + 256] ^= 1  # first body byte
    found = Journal(storage, SLOTS, PREPARE_MAX).recover()
    assert found[2].header.checksum == ops[1].checksum and found[2].prepare is None


def test_a_rotten_prepare_header_is_rescued_by_its_copy():
    ops = [prepare(op) for op in range(1, 4)]
    j, storage = written(ops)
    storage.zones[PREPARES][3 * j.slot_size + FRAME + 60] ^= 1
    found = Journal(storage, SLOTS, PREPARE_MAX).recover()
    assert found[3].header.checksum == ops[2].checksum and found[3].prepare is None


def test_a_misdirected_write_is_seen_through_the_header_copy():
    old, new = prepare(2), prepare(2 + SLOTS)
    j, storage = written([old])
    lo, hi = 2 * j.slot_size, 3 * j.slot_size
    before = bytes(storage.zones[PREPARES][lo:hi])
    j.write(new.op, new.raw, new.checksum)
    settle(j, storage)
    storage.zones[PREPARES][lo:hi] = before  # the prepare landed elsewhere, its header copy here
    found = Journal(storage, SLOTS, PREPARE_MAX).recover()
    assert found[new.op].header.checksum == new.checksum and found[new.op].prepare is None
    assert old.op not in found


def test_a_slot_with_both_copies_torn_was_never_durable():
    ops = [prepare(op) for op in range(1, 4)]
    j, storage = written(ops)
    storage.zones[PREPARES][3 * j.slot_size + 5] ^= 1
    storage.zones[HEADERS][3 * (FRAME + 256) + 5] ^= 1
    assert sorted(Journal(storage, SLOTS, PREPARE_MAX).recover()) == [1, 2]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=SLOTS * (FRAME + PREPARE_MAX)), st.binary(max_size=SLOTS * (FRAME + 256)),
       st.data())
def test_recovery_from_arbitrary_bytes_never_crashes(prepares, headers, data):
    """Garbage, or real entries with garbage spliced in: recovery keeps only intact entries."""
    j, storage = written([prepare(op) for op in range(1, 1 + data.draw(st.integers(0, SLOTS)))])
    for zone, junk in ((PREPARES, prepares), (HEADERS, headers)):
        at = data.draw(st.integers(0, max(0, len(storage.zones.get(zone, b"")))))
        buf = storage.zones.setdefault(zone, bytearray())
        buf[at:at + len(junk)] = junk
    found = Journal(storage, SLOTS, PREPARE_MAX).recover()
    assert len({op % SLOTS for op in found}) == len(found)  # one entry per slot at most
    for op, rec in found.items():
        assert rec.header.op == op
        if rec.prepare is not None:
            assert rec.prepare.checksum == rec.header.checksum and rec.prepare.op == op


class CountingStorage(MemoryStorage):
    """Counts the bytes the journal asks to read."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes_read = 0

    def read(self, zone: str, offset: int, size: int) -> bytes:
        self.bytes_read += size
        return super().read(zone, offset, size)


def test_reads_cost_the_prepare_not_the_slot():
    """A partition's slots are 8 MiB (the largest batch); a read of a small prepare, and a
    recovery scan of mostly empty slots, read the frame, the header and the declared body only
    (whole-slot reads stalled a node's loop for tens of seconds while it answered repairs)."""
    storage = CountingStorage()
    j = Journal(storage, 1024, 8 << 20)
    p = prepare(5, b"x" * 100)
    j.write(5, p.raw, p.checksum)
    settle(j, storage)
    storage.bytes_read = 0
    assert j.read(5).body == b"x" * 100
    assert storage.bytes_read == FRAME + p.size
    storage.bytes_read = 0
    found = Journal(storage, 1024, 8 << 20).recover()
    assert set(found) == {5} and found[5].prepare.body == b"x" * 100
    assert storage.bytes_read < 1024 * 2 * (FRAME + 256) + p.size
