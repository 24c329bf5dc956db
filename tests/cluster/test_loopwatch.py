"""The loop watchdog (cluster/loopwatch.py) on a real event loop blocked by a real call."""

from __future__ import annotations

import asyncio
import logging
import re
import time

from pyggy.cluster.loopwatch import LoopWatch


def blocking_work_on_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # what a synchronous read, fsync or copy does to the loop


def test_a_stall_is_logged_with_what_the_loop_was_running(caplog):
    caplog.set_level(logging.WARNING, logger="pyggy.cluster.loopwatch")
    watch = LoopWatch(threshold=0.2)

    async def main() -> None:
        watch.start()
        for _ in range(5):  # ticks on time: nothing logged
            watch.beat()
            await asyncio.sleep(0.01)
        assert watch.stalls == 0
        blocking_work_on_the_loop(0.8)
        watch.beat()

    try:
        asyncio.run(main())
    finally:
        watch.stop()
    assert watch.stalls == 1 and watch.longest >= 0.7
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "has not ticked" in text and "blocking_work_on_the_loop" in text, text
    assert re.search(r"stalled for \d+\.\d s", text), text


def test_a_loop_that_keeps_ticking_logs_nothing(caplog):
    caplog.set_level(logging.WARNING, logger="pyggy.cluster.loopwatch")
    watch = LoopWatch(threshold=1.0)

    async def main() -> None:
        watch.start()
        for _ in range(60):
            watch.beat()
            await asyncio.sleep(0.01)

    try:
        asyncio.run(main())
    finally:
        watch.stop()
    assert watch.stalls == 0 and not caplog.records
