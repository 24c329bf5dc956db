"""FrameAssembler: frames cut from a reused buffer, large frames grown as their bytes arrive."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.framing import FrameAssembler

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


def feed(asm: FrameAssembler, data: bytes, chunk: int) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        buf = asm.get_buffer()
        n = min(len(buf), chunk, len(data) - pos)
        buf[:n] = data[pos:pos + n]
        pos += n
        out += [bytes(f) for f in asm.buffer_updated(n)]
    return out


@settings(max_examples=60, deadline=None)
@given(bodies=st.lists(st.binary(max_size=3000), max_size=20), chunk=st.integers(1, 5000),
       size=st.sampled_from([64, 1024, 4096]))
def test_any_chunking_gives_back_the_same_frames(bodies, chunk: int, size: int) -> None:
    frames = [_SIZE.pack(len(b)) + b for b in bodies]
    asm = FrameAssembler(length, declared, buffer_size=size)
    assert feed(asm, b"".join(frames), chunk) == frames


def test_a_huge_announcement_costs_only_what_arrives() -> None:
    asm = FrameAssembler(length, declared, buffer_size=1024)
    feed(asm, _SIZE.pack(9_000_000) + b"x" * 5000, 5000)
    assert asm.big is not None and len(asm.big) <= 16 * 1024


def test_a_refused_frame_raises_before_its_body() -> None:
    asm = FrameAssembler(length, declared, buffer_size=1024)
    with pytest.raises(Refused):
        feed(asm, _SIZE.pack(50_000_000), 4)
