"""FrameAssembler: frames cut from a read buffer shared by all connections; only an incomplete
frame gets a buffer of its own, grown with the bytes that came and handed over as the frame."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.transport.framing import BIG_START, SHARED_BUFFER, FrameAssembler

_SIZE = struct.Struct(">I")


class Refused(Exception):
    pass


def length(view: memoryview) -> int:
    if len(view) < 4:
        return 0
    n = _SIZE.unpack_from(view, 0)[0] + 4
    if n > 10_000_000:
        raise Refused(n)
    return n if len(view) >= n else 0


def declared(view: memoryview) -> int:
    return _SIZE.unpack_from(view, 0)[0] + 4 if len(view) >= 4 else 0


def frame(body: bytes) -> bytes:
    return _SIZE.pack(len(body)) + body


def feed(asm: FrameAssembler, data: bytes, chunks) -> tuple[list[bytearray], int]:
    """Deliver `data` as a socket would: each read is at most the next chunk size and at most
    the space handed out. Returns the frames and the number of reads."""
    out: list[bytearray] = []
    pos = reads = 0
    sizes = iter(chunks)
    while pos < len(data):
        buf = asm.get_buffer()
        n = min(len(buf), next(sizes), len(data) - pos)
        buf[:n] = data[pos:pos + n]
        pos += n
        reads += 1
        out += asm.buffer_updated(n)
    return out, reads


def forever(n: int):
    while True:
        yield n


@settings(max_examples=150, deadline=None)
@given(bodies=st.lists(st.binary(max_size=3000) | st.binary(min_size=5000, max_size=90_000),
                       max_size=12),
       splits=st.lists(st.integers(1, 70_000), min_size=1, max_size=50),
       size=st.sampled_from([64, 1024, 4096, SHARED_BUFFER]))
def test_any_split_of_a_frame_stream_gives_back_the_same_frames(bodies, splits, size) -> None:
    frames = [frame(b) for b in bodies]
    asm = FrameAssembler(length, declared, bytearray(size))
    cycle = (splits[i % len(splits)] for i in range(10**9))
    got, _ = feed(asm, b"".join(frames), cycle)
    assert got == frames
    assert all(isinstance(f, bytearray) for f in got)
    assert not asm.pending and asm.allocated == 0


def test_the_allocator_the_doors_pass_does_not_zero_when_the_c_walks_are_built() -> None:
    from pyggy.core.records import accel

    if accel.WALKS is not None:
        assert accel.new_buffer is accel.WALKS.uninitialised_bytearray
    assert len(accel.new_buffer(70_000)) == 70_000


def _poisoned(n: int) -> bytearray:
    """A buffer as the allocator may give it (accel.new_buffer does not zero): old bytes."""
    return bytearray(b"\xa5") * n


@settings(max_examples=100, deadline=None)
@given(bodies=st.lists(st.binary(min_size=0, max_size=90_000), min_size=1, max_size=8),
       splits=st.lists(st.integers(1, 70_000), min_size=1, max_size=20))
def test_own_buffers_are_not_zeroed_and_no_stale_byte_reaches_a_frame(bodies, splits) -> None:
    """Own buffers come from the listener's allocator, which need not zero them (the doors
    pass accel.new_buffer, uninitialised in C): every byte of every frame handed over must be
    one that arrived, whatever was in the buffer before."""
    frames = [frame(b) for b in bodies]
    asm = FrameAssembler(length, declared, bytearray(1024), _poisoned)
    cycle = (splits[i % len(splits)] for i in range(10**9))
    got, _ = feed(asm, b"".join(frames), cycle)
    assert got == frames


def test_a_connection_holds_a_buffer_only_while_a_frame_is_incomplete() -> None:
    asm = FrameAssembler(length, declared)
    assert asm.allocated == 0
    feed(asm, frame(b"x" * 100), forever(1 << 20))
    assert asm.allocated == 0  # read into the shared buffer, copied out whole
    data = frame(b"y" * 1_000_000)
    got, _ = feed(asm, data[:500_000], forever(1 << 20))
    assert not got and asm.pending and 500_000 <= asm.allocated <= 1_000_004
    (big,), _ = feed(asm, data[500_000:], forever(1 << 20))
    assert big == data
    assert asm.allocated == 0 and not asm.pending  # handed over with the frame
    feed(asm, data[:10], forever(1))
    asm.release()
    assert asm.allocated == 0


def test_connections_share_the_read_buffer() -> None:
    shared = bytearray(8192)
    a, b = FrameAssembler(length, declared, shared), FrameAssembler(length, declared, shared)
    assert a.get_buffer().obj is shared and b.get_buffer().obj is shared
    got_a, _ = feed(a, frame(b"a" * 100) + frame(b"A" * 100)[:50], forever(1 << 20))
    got_b, _ = feed(b, frame(b"b" * 100), forever(1 << 20))
    got_a2, _ = feed(a, frame(b"A" * 100)[50:], forever(1 << 20))
    assert got_a == [frame(b"a" * 100)] and got_b == [frame(b"b" * 100)]
    assert got_a2 == [frame(b"A" * 100)]


def test_many_small_frames_arrive_in_one_read() -> None:
    asm = FrameAssembler(length, declared)
    stream = b"".join(frame(bytes([i]) * 30) for i in range(100))
    got, reads = feed(asm, stream, forever(SHARED_BUFFER))
    assert len(got) == 100 and reads == 1
    assert [f[4] for f in got] == list(range(100))


def test_a_large_frame_is_received_in_few_reads_and_handed_over_without_a_copy() -> None:
    asm = FrameAssembler(length, declared)
    data = frame(bytes(range(256)) * 4096)  # 1 MiB body, all waiting in the socket
    pos, got, last = 0, [], None
    reads = 0
    while pos < len(data):
        last = asm.get_buffer()
        n = min(len(last), len(data) - pos)
        last[:n] = data[pos:pos + n]
        pos, reads = pos + n, reads + 1
        got += asm.buffer_updated(n)
    assert got == [data]
    assert reads <= 4  # 256 KiB shared, then an own buffer 1 MiB: never 16 KiB at a time
    assert last.obj is got[0]  # the last read went straight into the frame handed over


def test_a_huge_announcement_costs_only_what_arrives() -> None:
    asm = FrameAssembler(length, declared, bytearray(1024))
    feed(asm, _SIZE.pack(9_000_000) + b"x" * 5000, forever(5000))
    assert asm.pending and asm.allocated <= BIG_START
    feed(asm, b"x" * 200_000, forever(1 << 20))
    assert asm.allocated <= 4 * 205_004  # grows only as the bytes come


def test_a_refused_frame_raises_before_its_body() -> None:
    asm = FrameAssembler(length, declared, bytearray(1024))
    with pytest.raises(Refused):
        feed(asm, _SIZE.pack(50_000_000), forever(4))


def test_a_partial_header_is_pending_until_the_frame_completes() -> None:
    asm = FrameAssembler(length, declared)
    data = frame(b"abc")
    got, _ = feed(asm, data[:2], forever(1))
    assert got == [] and asm.pending
    got, _ = feed(asm, data[2:], forever(1))
    assert got == [data] and not asm.pending


def test_a_frame_just_over_the_growth_step_gets_one_buffer() -> None:
    """A 1.08 MB frame (a classic 1000 × 1 KB SendMessages) after a 256 KiB first read: 4 ×
    256 KiB would leave 31 KB for a second buffer, and growing would copy the first MiB; the
    frame gets its whole buffer at once and is handed over without a copy."""
    asm = FrameAssembler(length, declared)
    data = frame(b"c" * 1_079_996)
    pos, got, owns = 0, [], []
    while pos < len(data):
        buf = asm.get_buffer()
        n = min(len(buf), len(data) - pos)
        buf[:n] = data[pos:pos + n]
        pos += n
        got += asm.buffer_updated(n)
        if asm.own is not None and not any(o is asm.own for o in owns):
            owns.append(asm.own)
    assert got == [data]
    assert [len(o) for o in owns] == [len(data)] and got[0] is owns[0]
    # further away from the step the rule stays: 4 × what came
    asm = FrameAssembler(length, declared)
    feed(asm, frame(b"d" * 2_000_000)[:SHARED_BUFFER], forever(SHARED_BUFFER))
    assert asm.allocated == 4 * SHARED_BUFFER


def test_after_a_big_frame_the_next_one_is_read_in_place() -> None:
    """A producer's second 1.08 MB frame: read straight into a buffer of the first one's size
    (no copy of a first read out of the shared buffer) and handed over as it is; the hinted
    buffer is given up when the bytes do not come or a read leaves nothing incomplete."""
    asm = FrameAssembler(length, declared)
    data = frame(bytes(range(256)) * 4218)
    (first,), _ = feed(asm, data, forever(SHARED_BUFFER))
    assert first == data and asm.hint == len(data)
    views = []
    pos, got = 0, []
    while pos < len(data):
        views.append(asm.get_buffer())
        n = min(len(views[-1]), 100_000, len(data) - pos)
        views[-1][:n] = data[pos:pos + n]
        pos += n
        got += asm.buffer_updated(n)
    assert got == [data] and all(v.obj is got[0] for v in views)
    assert not asm.pending and asm.allocated == 0
    asm.get_buffer()  # a read that finds the socket empty
    assert asm.allocated == len(data) and not asm.pending
    asm.drop_spare()  # the connection waits for its next request
    assert asm.allocated == 0
    got, _ = feed(asm, frame(b"s" * 10), forever(1 << 20))  # a small frame ends the hint
    assert got == [frame(b"s" * 10)] and asm.hint == 0 and asm.allocated == 0
    assert asm.get_buffer().obj is asm.shared


def test_a_hinted_buffer_is_kept_for_a_frame_only_under_the_memory_rule() -> None:
    """The hinted buffer holds an incomplete frame only if that frame fills it exactly and a
    sixteenth of it came, or the growth rule allows its size; otherwise what came is moved to
    a buffer sized by the rule, as without the hint."""
    asm = FrameAssembler(length, declared)
    big = frame(b"b" * 1_000_000)
    feed(asm, big, forever(SHARED_BUFFER))
    got, _ = feed(asm, big[:len(big) // 16 - 1], forever(1 << 20))
    assert not got and asm.pending and asm.allocated <= 4 * len(big) // 16 + BIG_START
    got, _ = feed(asm, big[len(big) // 16 - 1:], forever(1 << 20))
    assert got == [big] and asm.hint == len(big)
    smaller = frame(b"m" * 600_000)  # another size: moved to its own buffer
    got, _ = feed(asm, smaller[:200_000], forever(1 << 20))
    assert not got and asm.allocated == len(smaller)
    got, _ = feed(asm, smaller[200_000:], forever(1 << 20))
    assert got == [smaller] and asm.hint == len(smaller) and asm.allocated == 0
    got, _ = feed(asm, big[:3], forever(1 << 20))  # length not readable: a small buffer
    assert not got and asm.allocated <= 1024
    got, _ = feed(asm, big[3:], forever(1 << 20))
    assert got == [big]
