"""FrameAssembler: the sans-I/O receive side of a connection, whatever protocol it speaks.

A connection reads into the space `get_buffer()` hands out and reports it with
`buffer_updated(n)`, which returns every frame completed by those bytes, as bytearrays the caller
owns (handlers may stamp batches in place).

Memory follows the traffic. A connection with no partial frame reads into a buffer shared by all
connections of its listener (reads are synchronous: each read is cut into frames before the next
connection reads), so an idle connection holds no receive buffer at all, and a read can carry
many small frames, each copied out whole. Only bytes of an incomplete frame stay with the
connection, in a buffer of its own sized for that frame and grown as its bytes actually arrive
(so a peer that announces a huge frame and sends little costs little: at most BIG_GROWTH times
what came, plus BIG_START, see `_room`); when the frame completes
in it, that buffer is handed over as the frame, without a copy, and the connection holds nothing
again. A frame's own buffer comes from `allocate`, which need not zero it (the doors pass
core/records/accel.py `new_buffer`, uninitialised in C): only the bytes that arrived in it are
ever read, cut or handed over.

A connection whose last frame came whole in its own buffer and was bigger than the shared
buffer (a producer's 1 MB batches) reads its next bytes straight into a new buffer of that
frame's size (`hint`) instead of the shared one: when the next frame has the same size it
arrives in place and is handed over without the copy of its first read. That buffer is made
only when bytes are to be read (`get_buffer`), given up when the read leaves nothing
incomplete, kept for an incomplete frame only under the growth rule above (or when the frame
fills it exactly and a sixteenth of it came), and dropped by `drop_spare` when the connection
waits with nothing received (a read that found the socket empty).
"""

from __future__ import annotations

from collections.abc import Callable

SHARED_BUFFER = 256 * 1024  # one per listener: the most one read takes in
BIG_START = 64 * 1024  # a partial frame's own buffer: at least this (capped at the frame) ...
BIG_GROWTH = 4  # ... and at most this many times the bytes that came so far
HEADER_ROOM = 1024  # own buffer for a frame whose length is not readable yet
EXACT_SHARE = 16  # a frame that fills a hinted buffer exactly: kept once 1/16 of it came


class FrameAssembler:
    """`frame_length(view)`: the length of the complete frame at the start of `view`, 0 while it
    is incomplete (raising for a frame it refuses); `declared_length(view)`: the length the
    frame at the start of `view` announces, 0 while that is not readable yet. `shared`: the
    read buffer this connection uses while it holds no partial frame; `allocate(n)`: a buffer
    of n bytes for an incomplete frame (its contents are never read before they are written)."""

    __slots__ = ("frame_length", "declared_length", "shared", "allocate", "own", "end", "need",
                 "hint")

    def __init__(self, frame_length: Callable[[memoryview], int],
                 declared_length: Callable[[memoryview], int],
                 shared: bytearray | None = None,
                 allocate: Callable[[int], bytearray] = bytearray) -> None:
        self.frame_length = frame_length
        self.declared_length = declared_length
        self.allocate = allocate
        self.shared = shared if shared is not None else bytearray(SHARED_BUFFER)
        self.own: bytearray | None = None  # holds the incomplete frame, from index 0
        self.end = 0  # bytes in the buffer being read into (own, or shared: then 0)
        self.need = 0  # the incomplete frame's declared length, 0 = not readable yet
        self.hint = 0  # the size of the last big frame handed over in its own buffer, 0 = none

    @property
    def pending(self) -> bool:
        """Part of a frame has arrived and its remainder has not."""
        return self.end > 0

    @property
    def allocated(self) -> int:
        """Bytes of receive buffer this connection holds on its own."""
        return len(self.own) if self.own is not None else 0

    def get_buffer(self) -> memoryview:
        own = self.own
        if own is None:
            if not self.hint:
                return memoryview(self.shared)
            self.own = own = self.allocate(self.hint)  # end = 0: nothing in it yet
        if self.end == len(own):  # full: grow with the bytes that actually came
            size = len(own)
            size = _room(self.need, size * BIG_GROWTH) if self.need > size else 2 * size
            # A new buffer rather than a resize: the transport may still hold a view.
            grown = self.allocate(size)
            grown[:self.end] = own
            self.own = own = grown
        return memoryview(own)[self.end:]

    def buffer_updated(self, nbytes: int) -> list[bytearray]:
        own = self.own
        end = self.end = self.end + nbytes
        if own is None:
            buf = self.shared
        elif end < self.need:  # more of a frame whose length is known: nothing to cut yet
            return []
        else:
            buf = own
        frames: list[bytearray] = []
        start = 0
        while start < end:
            view = memoryview(buf)[start:end]
            length = self.frame_length(view)
            if not length:
                break
            if buf is own and length == len(own):  # exactly its own buffer: no copy
                frames.append(own)
                self.hint = length if length > len(self.shared) else 0
            else:
                frames.append(bytearray(view[:length]))
                self.hint = 0
            start += length
        if start == end:
            self.own, self.end, self.need = None, 0, 0
            return frames
        self._keep(buf, start, end)
        return frames

    def _keep(self, buf: bytearray, start: int, end: int) -> None:
        """Move the incomplete frame at buf[start:end] to the start of an own buffer."""
        have = end - start
        view = memoryview(buf)[start:end]
        self.need = need = self.declared_length(view)
        size = max(_room(need, max(BIG_START, BIG_GROWTH * have)) if need else
                   max(HEADER_ROOM, 2 * have), have)
        own = self.own
        if buf is own and start == 0 and (
                len(own) <= size and (need == 0 or need >= len(own))
                or need == len(own) and have * EXACT_SHARE >= need):
            return  # already in place (get_buffer grows it when full)
        own = self.allocate(size)
        own[:have] = view
        self.own, self.end = own, have

    def drop_spare(self) -> None:
        """Give up a buffer made for bytes that did not come (the connection waits)."""
        if self.end == 0:
            self.own = None

    def release(self) -> None:
        """Drop the connection's own buffer (it closed)."""
        self.own, self.end, self.need, self.hint = None, 0, 0, 0


def _room(need: int, allowed: int) -> int:
    """A buffer for a frame of `need` bytes when the growth rule allows `allowed`: the whole
    frame when no more than BIG_START would be left for a next buffer (growing again would copy
    every byte so far to save that little: a 1.08 MB classic SendMessages frame after a 256 KiB
    read, BENCHMARKS.md)."""
    return need if need - allowed <= BIG_START else allowed
