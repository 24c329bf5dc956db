"""The superblock: four copies, two pairs written in turn, newest intact copy wins."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.consensus.storage import MemoryStorage
from pyggy.consensus.superblock import ZONE, Superblock, SuperblockError, SuperblockState

CLUSTER = bytes(16)


def make(storage: MemoryStorage, replica: int = 0) -> Superblock:
    return Superblock(storage, cluster=CLUSTER, group=7, replica=replica, replica_count=3,
                      vh_max=3)


def complete(sb: Superblock, storage: MemoryStorage) -> SuperblockState | None:
    last = None
    while tokens := storage.take_done():
        for t in tokens:
            last = sb.on_write_done(t) or last
    return last


def formatted(state: SuperblockState | None = None) -> tuple[MemoryStorage, Superblock]:
    """A freshly formatted superblock, opened."""
    storage = MemoryStorage()
    make(storage).format(state or SuperblockState())
    storage.take_done()
    sb = make(storage)
    sb.open()
    return storage, sb


def corrupt(storage: MemoryStorage, sb: Superblock, copy: int) -> None:
    storage.zones[ZONE][copy * sb.copy_size + 20] ^= 0xFF


def test_update_is_durable_only_after_both_pairs():
    storage, sb = formatted()
    sb.write(SuperblockState(view=3, log_view=2, commit_max=9, op=10))
    first = storage.take_done()
    assert [t[2] for t in first] == [0, 1]  # one pair first
    assert all(sb.on_write_done(t) is None for t in first)
    state = complete(sb, storage)
    assert state is not None and state.view == 3
    assert make(storage).open() == state


def test_one_corrupt_copy_never_regresses_the_state():
    storage, sb = formatted()
    sb.write(SuperblockState(view=5, log_view=5))
    complete(sb, storage)
    for copy in range(4):
        corrupt(storage, sb, copy)
        assert make(storage).open().view == 5
        corrupt(storage, sb, copy)  # flip back


def test_after_a_torn_pair_the_next_update_rewrites_that_pair_first():
    storage, sb = formatted(SuperblockState(view=1))
    corrupt(storage, sb, 2)
    corrupt(storage, sb, 3)  # as if a crash tore copies 2 and 3 mid-update
    reopened = make(storage)
    assert reopened.open().view == 1
    reopened.write(SuperblockState(view=2))
    assert [t[2] for t in storage.take_done()] == [2, 3]


def test_no_intact_copy_or_another_replica_refuses_to_open():
    storage, sb = formatted()
    with pytest.raises(SuperblockError):
        make(storage, replica=1).open()
    for copy in range(4):
        corrupt(storage, sb, copy)
    with pytest.raises(SuperblockError):
        make(storage).open()


def test_log_view_above_view_is_refused():
    with pytest.raises(ValueError):
        make(MemoryStorage()).encode(SuperblockState(view=1, log_view=2), 1)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0), st.integers(0, 7))
def test_any_flipped_bit_makes_a_copy_unreadable(position, bit):
    storage, sb = formatted(SuperblockState(view=2, log_view=1, commit_max=3, op=4))
    data = bytearray(storage.read(ZONE, 0, sb.copy_size))
    data[position % len(data)] ^= 1 << bit
    assert sb.decode(bytes(data)) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes_never_decode(data):
    sb = make(MemoryStorage())
    assert sb.decode(data.ljust(sb.copy_size, b"\0")[:sb.copy_size]) is None


def test_an_update_on_one_copy_only_is_not_taken():
    """Simulator seed 6005239: a crash cut an update short with one copy written whole and its
    twin torn. Taking that lone copy, a replica then ran from its checkpoint, and one bit flip
    later reopened below it (S1). The state on two copies wins, and the next update uses a
    sequence above the stray one, so no two states ever share a number."""
    storage, sb = formatted(SuperblockState(view=1))
    sb.write(SuperblockState(view=2))
    complete(sb, storage)  # sequence 2 on all four copies
    sb.write(SuperblockState(view=3))
    first = storage.take_done()
    assert [t[2] for t in first] == [0, 1]
    corrupt(storage, sb, 1)  # copy 0 landed whole, copy 1 torn; the crash
    reopened = make(storage)
    assert reopened.open().view == 2  # not the lone copy of view 3
    reopened.write(SuperblockState(view=4))
    complete(reopened, storage)
    again = make(storage)
    assert again.open().view == 4 and again.sequence == reopened.sequence > 3


def test_with_no_sequence_on_two_copies_the_newest_single_copy_is_taken():
    """Tears and a flip together may leave no sequence on two copies: the newest one left is
    the best there is (a long simulator run found open raising here instead)."""
    storage, sb = formatted(SuperblockState(view=1))
    sb.write(SuperblockState(view=2))
    complete(sb, storage)
    sb.write(SuperblockState(view=3))
    storage.take_done()  # copies 0 and 1 hold sequence 3
    corrupt(storage, sb, 1)
    corrupt(storage, sb, 2)
    corrupt(storage, sb, 3)
    assert make(storage).open().view == 3
