"""FrameAssembler: small frames cut from a small reused buffer, large frames received into a
buffer of their own that grows with the bytes that came and is handed over as the frame."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.transport.framing import BIG_START, SMALL_BUFFER, FrameAssembler

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
       size=st.sampled_from([64, 1024, SMALL_BUFFER]))
def test_any_split_of_a_frame_stream_gives_back_the_same_frames(bodies, splits, size) -> None:
    frames = [frame(b) for b in bodies]
    asm = FrameAssembler(length, declared, buffer_size=size)
    cycle = (splits[i % len(splits)] for i in range(10**9))
    got, _ = feed(asm, b"".join(frames), cycle)
    assert got == frames
    assert all(isinstance(f, bytearray) for f in got)
    assert not asm.pending and asm.allocated <= max(size, 64)


def test_a_new_connection_holds_no_buffer_and_an_idle_one_only_the_small_one() -> None:
    asm = FrameAssembler(length, declared)
    assert asm.allocated == 0
    feed(asm, frame(b"x" * 100), forever(1 << 20))
    assert asm.allocated == SMALL_BUFFER
    (big,), _ = feed(asm, frame(b"y" * 1_000_000), forever(1 << 20))
    assert len(big) == 1_000_004
    assert asm.allocated == SMALL_BUFFER and not asm.pending  # shrunk back after the frame
    asm.release()
    assert asm.allocated == 0


def test_many_small_frames_arrive_in_one_read() -> None:
    asm = FrameAssembler(length, declared)
    stream = b"".join(frame(bytes([i]) * 30) for i in range(100))
    got, reads = feed(asm, stream, forever(SMALL_BUFFER))
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
    assert reads <= 5  # 4 KiB, then 64 KiB, 256 KiB, 1 MiB buffers: never 16 KiB at a time
    assert last.obj is got[0]  # the last read went straight into the frame handed over


def test_a_huge_announcement_costs_only_what_arrives() -> None:
    asm = FrameAssembler(length, declared, buffer_size=1024)
    feed(asm, _SIZE.pack(9_000_000) + b"x" * 5000, forever(5000))
    assert asm.pending and asm.allocated <= 1024 + BIG_START
    feed(asm, b"x" * 200_000, forever(1 << 20))
    assert asm.allocated <= 1024 + 4 * 205_004  # grows only as the bytes come


def test_a_refused_frame_raises_before_its_body() -> None:
    asm = FrameAssembler(length, declared, buffer_size=1024)
    with pytest.raises(Refused):
        feed(asm, _SIZE.pack(50_000_000), forever(4))


def test_a_partial_header_is_pending_until_the_frame_completes() -> None:
    asm = FrameAssembler(length, declared)
    data = frame(b"abc")
    got, _ = feed(asm, data[:2], forever(1))
    assert got == [] and asm.pending
    got, _ = feed(asm, data[2:], forever(1))
    assert got == [data] and not asm.pending
