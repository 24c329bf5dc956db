"""Injected time, so a simulator can later drive the engine deterministically."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int: ...
    def monotonic(self) -> float: ...


class SystemClock:
    """Wall clock in µs since the epoch; monotonic seconds for timeouts."""

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic(self) -> float:
        return time.monotonic()
