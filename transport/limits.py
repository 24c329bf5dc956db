"""A listener's limits, and the rate-limited log line its refusals and timeouts write."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from pyggy.transport.framing import SHARED_BUFFER

MAX_QUEUED_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class Limits:
    """Per-listener bounds. A timeout of 0 is off.

    - `max_connections`: connections beyond it are closed as soon as they are accepted.
    - `frame_read_timeout`: once the first byte of a frame came, the whole frame must arrive
      within it (slowloris); a TLS handshake must complete within it too.
    - `idle_timeout`: a connection that neither sent nor was sent anything for this long is
      closed (Kafka's `connections.max.idle.ms`).
    - `auth_timeout`: a connection whose door requires authentication and that has not
      authenticated this long after it opened is closed.
    - `max_queued_bytes`: reading pauses while this many received bytes wait for the worker.
    - `read_buffer`: the receive buffer all connections of the listener share (framing.py).
    - `reuse_port`: bind with SO_REUSEPORT, so every shard process listens on the same port
      and the kernel spreads connections over them (docs/sharding.md).
    """

    max_connections: int = 10_000
    frame_read_timeout: float = 30.0
    idle_timeout: float = 0.0
    auth_timeout: float = 0.0
    max_queued_bytes: int = MAX_QUEUED_BYTES
    read_buffer: int = SHARED_BUFFER
    reuse_port: bool = False

    @property
    def timed(self) -> bool:
        """Whether a connection needs its watchdog timer at all."""
        return bool(self.frame_read_timeout or self.idle_timeout or self.auth_timeout)


class BurstLog:
    """One warning when events of a kind start, then at most one summary per `window` seconds
    while they go on: a flood of refusals or timeouts writes a few lines, not one per event."""

    __slots__ = ("log", "window", "counts", "timer")

    def __init__(self, log: logging.Logger, window: float = 10.0) -> None:
        self.log = log
        self.window = window
        self.counts: dict[str, int] = {}  # what → events since the last line
        self.timer: asyncio.TimerHandle | None = None

    def note(self, what: str, detail: str) -> None:
        """Record one event of kind `what` (e.g. "refused ... max_connections 100 reached")."""
        if what not in self.counts:
            self.counts[what] = 0
            self.log.warning("%s (%s)", what, detail)
        else:
            self.counts[what] += 1
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.window, self._flush)

    def _flush(self) -> None:
        self.timer = None
        ongoing = {what: n for what, n in self.counts.items() if n}
        for what, n in ongoing.items():
            self.log.warning("%s: %d more in the last %g s", what, n, self.window)
        self.counts = dict.fromkeys(ongoing, 0)  # still going: summarise again, else start over
        if ongoing:
            self.timer = asyncio.get_running_loop().call_later(self.window, self._flush)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft open-file limit toward `needed` (never above the hard limit);
    returns the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft
