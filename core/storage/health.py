"""WriteHealth: one log line when writes start failing, one a minute while they fail, one when
they succeed again — a full disk must not turn into a traceback (or a log line) per request."""

from __future__ import annotations

import logging

from pyggy.core.clock import Clock

log = logging.getLogger(__name__)
REPEAT_US = 60_000_000


class WriteHealth:
    __slots__ = ("clock", "failing_since", "failures", "last_logged")

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.failing_since = 0  # µs; 0 while writes succeed
        self.failures = 0
        self.last_logged = 0

    def failed(self, where: str, error: OSError) -> None:
        now = self.clock.now_us()
        self.failures += 1
        if not self.failing_since:
            self.failing_since = self.last_logged = now
            log.error("storage: writes are failing (%s: %s); requests that write get a storage "
                      "error until space or the device comes back", where, error)
        elif now - self.last_logged >= REPEAT_US:
            self.last_logged = now
            log.error("storage: writes still failing (%d failed since the first; last: %s: %s)",
                      self.failures, where, error)

    def succeeded(self) -> None:
        if self.failing_since:
            log.warning("storage: writes succeed again after %.1f s (%d failed)",
                        (self.clock.now_us() - self.failing_since) / 1e6, self.failures)
            self.failing_since = self.failures = 0
