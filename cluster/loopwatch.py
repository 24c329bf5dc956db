"""Where the event loop stalls: a watchdog thread that logs what the loop runs when a tick is
late by more than `threshold` seconds.

The ticker (node.py) calls `beat()` on every tick. The watchdog wakes every `threshold / 4`;
when the last beat is older than `threshold`, it takes the loop thread's stack
(`sys._current_frames`) and logs it as a warning, once per stall, then logs the stall's length
when the beats resume. A stall the peers notice (a primary silent past the heartbeat timeout)
then names its cause in the log instead of only in the lateness figures (docs/cluster.md, "Is
the loop light enough?"). The thread only reads a float and, during a stall, one stack.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)
FRAMES = 24  # innermost frames logged (an import alone takes a dozen)


class LoopWatch:
    def __init__(self, threshold: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.clock = clock
        self.last = clock()
        self.stalls = 0
        self.longest = 0.0
        self._loop_thread = threading.get_ident()
        self._stalled_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Watch the calling thread (the event loop's)."""
        self._loop_thread = threading.get_ident()
        self.last = self.clock()
        self._thread = threading.Thread(target=self._run, name="pyggy-loopwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def beat(self) -> None:
        now = self.clock()
        since = self._stalled_since
        if since is not None:
            self._stalled_since = None
            stalled = now - self.last
            self.longest = max(self.longest, stalled)
            log.warning("cluster: the event loop stalled for %.1f s", stalled)
        self.last = now

    def check(self) -> str | None:
        """One watchdog step: the loop thread's stack if a stall just began, else None."""
        now = self.clock()
        if self._stalled_since is not None or now - self.last <= self.threshold:
            return None
        self._stalled_since = self.last
        self.stalls += 1
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return ""
        return "".join(traceback.format_stack(frame)[-FRAMES:])

    def _run(self) -> None:
        while not self._stop.wait(self.threshold / 4):
            stack = self.check()
            if stack is not None:
                log.warning("cluster: the event loop has not ticked for %.1f s; it is running:"
                            "\n%s", self.clock() - self.last, stack)
