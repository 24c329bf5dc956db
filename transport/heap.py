"""Give memory back to the OS after a burst of connections closed.

A connection's objects are small; most are freed into the C allocator's heap, which on glibc
keeps freed blocks that sit below live ones, so the process's RSS would stay at its peak after
thousands of connections close. Once `threshold` connections have closed, `malloc_trim(0)`
(glibc; absent elsewhere, then this does nothing) runs once, `delay` seconds later, in a worker
thread (ctypes releases the GIL), returning the free pages anywhere in the heap. ctypes is
imported then, at the first trim, not at start.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


@functools.cache
def _find_malloc_trim() -> Callable[[int], int] | None:
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


class HeapTrimmer:
    __slots__ = ("threshold", "delay", "closed", "timer")

    def __init__(self, threshold: int = 256, delay: float = 1.0) -> None:
        self.threshold = threshold
        self.delay = delay
        self.closed = 0  # connections closed since the last trim
        self.timer: asyncio.TimerHandle | None = None

    @property
    def trim(self) -> Callable[[int], int] | None:
        """glibc's `malloc_trim`, or None where there is none."""
        return _find_malloc_trim()

    def connection_closed(self) -> None:
        self.closed += 1
        if self.closed >= self.threshold and self.timer is None and self.trim is not None:
            self.timer = asyncio.get_running_loop().call_later(self.delay, self._run)

    def _run(self) -> None:
        self.timer, self.closed = None, 0
        trim = self.trim
        if trim is not None:  # always: the timer is only set with one
            asyncio.get_running_loop().run_in_executor(None, trim, 0)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


TRIMMER = HeapTrimmer()  # one per process: every listener's closes count toward it
