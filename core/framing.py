"""FrameAssembler: the sans-I/O receive side shared by both protocol doors.

A connection reads into the space `get_buffer()` hands out and reports it with
`buffer_updated(n)`, which returns every frame completed by those bytes (as bytearrays the
caller owns: handlers may stamp batches in place). Frames are cut from one reused buffer; a
frame larger than that buffer is received into a buffer of its own that grows (by doubling) as
its bytes arrive, so a peer that announces a huge frame and sends little costs little.
"""

from __future__ import annotations

from collections.abc import Callable

RECV_BUFFER = 256 * 1024


class FrameAssembler:
    """`frame_length(view)`: the length of the complete frame at the start of `view`, 0 while it
    is incomplete (raising for a frame it refuses); `declared_length(view)`: the length the
    frame at the start of `view` announces, 0 while that is not readable yet."""

    __slots__ = ("frame_length", "declared_length", "buf", "start", "end", "big", "big_size",
                 "big_filled")

    def __init__(self, frame_length: Callable[[memoryview], int],
                 declared_length: Callable[[memoryview], int],
                 buffer_size: int = RECV_BUFFER) -> None:
        self.frame_length = frame_length
        self.declared_length = declared_length
        self.buf = bytearray(buffer_size)
        self.start = self.end = 0
        self.big: bytearray | None = None
        self.big_size = 0
        self.big_filled = 0

    def get_buffer(self) -> memoryview:
        if self.big is not None:
            if self.big_filled == len(self.big):  # grow with the bytes that actually came
                # A new buffer rather than a resize: the transport may still hold a view.
                grown = bytearray(min(2 * len(self.big), self.big_size))
                grown[:self.big_filled] = self.big
                self.big = grown
            return memoryview(self.big)[self.big_filled:]
        if self.end == len(self.buf):
            self._compact()
        return memoryview(self.buf)[self.end:]

    def buffer_updated(self, nbytes: int) -> list[bytearray]:
        if self.big is not None:
            self.big_filled += nbytes
            if self.big_filled < self.big_size:
                return []
            frame, self.big = self.big, None
            return [frame]
        self.end += nbytes
        frames: list[bytearray] = []
        while self.end > self.start:
            view = memoryview(self.buf)[self.start:self.end]
            length = self.frame_length(view)
            if length:
                frames.append(bytearray(view[:length]))
                self.start += length
                continue
            declared = self.declared_length(view)
            if declared > len(self.buf):
                self.big_size = declared
                self.big = bytearray(min(declared, 2 * len(self.buf)))
                self.big[:len(view)] = view
                self.big_filled = len(view)
                self.start = self.end = 0
            elif self.start + (declared or len(self.buf)) > len(self.buf):
                self._compact()
            return frames
        self.start = self.end = 0
        return frames

    def _compact(self) -> None:
        n = self.end - self.start
        self.buf[:n] = self.buf[self.start:self.end]
        self.start, self.end = 0, n
