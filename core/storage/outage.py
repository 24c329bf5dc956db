"""Failed writes (ENOSPC, EIO) become an Iggy storage error and a few log lines, not a crash.

`WriteOutage` logs the first failure of an outage, then at most one line a minute while it
lasts, and one line when writes succeed again; `failed()` returns the `IggyError` the request
fails with (`CANNOT_WRITE_TO_FILE`, which the Kafka door answers as KAFKA_STORAGE_ERROR).
"""

from __future__ import annotations

import logging
import os

from pyggy.core.clock import Clock
from pyggy.core.errors import ErrorCode, IggyError

LOUD_EVERY = 60.0  # seconds between repeated lines during an outage


class StorageFailure(IggyError):
    """The IggyError of a request that failed because this node's disk refused a write (not
    because of the request): a cluster replica executing a committed op fences itself on it
    (pyggy.cluster.node) rather than answer differently from its peers."""


class WriteOutage:
    """One kind of write (metadata, consumer offsets, ...) and whether it is failing. A disk
    that is nearly full may fail one write and take the next (it fits in a file's last page):
    such flapping logs no more than one failure line a minute either."""

    def __init__(self, what: str, clock: Clock, logger: logging.Logger,
                 code: int = ErrorCode.CANNOT_WRITE_TO_FILE) -> None:
        self.what = what
        self.code = code  # the Iggy error the failing requests get
        self.clock = clock
        self.log = logger
        self.since: float | None = None
        self.failures = 0
        self.logged = False  # a line about the current outage was written
        self._last_loud: float | None = None

    def failed(self, e: OSError) -> IggyError:
        now = self.clock.monotonic()
        self.failures += 1
        why = os.strerror(e.errno) if e.errno else str(e)
        quiet = self._last_loud is not None and now - self._last_loud < LOUD_EVERY
        if self.since is None:
            self.since = now
            if not quiet:
                self.log.error("%s cannot be written: %s; those requests fail with a storage "
                               "error until writes succeed again", self.what, e)
        elif not quiet:
            self.log.error("%s still cannot be written: %d failures in %.0f s, last: %s",
                           self.what, self.failures, now - self.since, e)
        if not quiet:
            self._last_loud, self.logged = now, True
        return StorageFailure(self.code, f"{self.what} could not be stored: {why}")

    def ok(self) -> None:
        if self.since is None:
            return
        if self.logged:
            self.log.warning("%s can be written again after %d failure(s) in %.0f s",
                             self.what, self.failures, self.clock.monotonic() - self.since)
        self.since, self.failures, self.logged = None, 0, False
