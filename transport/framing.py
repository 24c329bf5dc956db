"""FrameAssembler: the sans-I/O receive side of a connection, whatever protocol it speaks.

A connection reads into the space `get_buffer()` hands out and reports it with
`buffer_updated(n)`, which returns every frame completed by those bytes, as bytearrays the caller
owns (handlers may stamp batches in place).

Memory follows the traffic. A connection starts with no buffer; its first read allocates a small
one (`buffer_size`) that holds frames up to that size, many per read, each copied out whole. A
frame larger than that is received into a buffer of its own, grown as its bytes actually arrive
(so a peer that announces a huge frame and sends little costs little) and handed over as the
frame itself, without a copy. Once such a frame is complete nothing larger than the small buffer
stays with the connection; `release()` drops everything when the connection closes.
"""

from __future__ import annotations

from collections.abc import Callable

SMALL_BUFFER = 4 * 1024  # the reused buffer: most requests (fetch, poll, metadata) fit in it
BIG_START = 64 * 1024  # the first size of a large frame's own buffer (capped at the frame)
BIG_GROWTH = 4  # a large frame's buffer grows ×4 each time the bytes that came fill it


class FrameAssembler:
    """`frame_length(view)`: the length of the complete frame at the start of `view`, 0 while it
    is incomplete (raising for a frame it refuses); `declared_length(view)`: the length the
    frame at the start of `view` announces, 0 while that is not readable yet."""

    __slots__ = ("frame_length", "declared_length", "size", "buf", "start", "end", "big",
                 "big_size", "big_filled")

    def __init__(self, frame_length: Callable[[memoryview], int],
                 declared_length: Callable[[memoryview], int],
                 buffer_size: int = SMALL_BUFFER) -> None:
        self.frame_length = frame_length
        self.declared_length = declared_length
        self.size = buffer_size
        self.buf = bytearray()  # allocated by the first read
        self.start = self.end = 0
        self.big: bytearray | None = None
        self.big_size = 0
        self.big_filled = 0

    @property
    def pending(self) -> bool:
        """Part of a frame has arrived and its remainder has not."""
        return self.big is not None or self.end > self.start

    @property
    def allocated(self) -> int:
        """Bytes of receive buffer this connection holds now."""
        return len(self.buf) + (len(self.big) if self.big is not None else 0)

    def get_buffer(self) -> memoryview:
        big = self.big
        if big is not None:
            filled = self.big_filled
            if filled == len(big):  # grow with the bytes that actually came
                # A new buffer rather than a resize: the transport may still hold a view.
                grown = bytearray(min(BIG_GROWTH * len(big), self.big_size))
                grown[:filled] = big
                self.big = big = grown
            return memoryview(big)[filled:]
        if self.end == len(self.buf):
            if not self.buf:
                self.buf = bytearray(self.size)
            elif self.start:
                self._compact()
            else:  # a header longer than the buffer (only with tiny buffers): make room
                self.buf = self.buf + bytearray(len(self.buf))
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
        buf = self.buf
        while self.end > self.start:
            view = memoryview(buf)[self.start:self.end]
            length = self.frame_length(view)
            if length:
                frames.append(bytearray(view[:length]))
                self.start += length
                continue
            declared = self.declared_length(view)
            if declared > len(buf):  # a large frame: a buffer of its own
                have = len(view)
                self.big_size = declared
                self.big = bytearray(min(declared, max(BIG_START, 2 * have)))
                self.big[:have] = view
                self.big_filled = have
                self.start = self.end = 0
            elif self.start + (declared or len(buf)) > len(buf):
                self._compact()
            return frames
        self.start = self.end = 0
        return frames

    def release(self) -> None:
        """Drop every buffer (the connection closed)."""
        self.buf = bytearray()
        self.big = None
        self.start = self.end = self.big_filled = self.big_size = 0

    def _compact(self) -> None:
        n = self.end - self.start
        self.buf[:n] = self.buf[self.start:self.end]
        self.start, self.end = 0, n
