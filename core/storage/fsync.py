"""Group commit: one fsync thread; waiters that arrive during a flush share the next one."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


# observer(seconds) after every group-commit flush, on the event loop (e.g. pyggy/metrics.py)
FSYNC_OBSERVERS: list[Callable[[float], None]] = []


def _fsync_all(fds: set[int]) -> float:
    start = time.perf_counter()
    for fd in fds:
        os.fdatasync(fd)
    return time.perf_counter() - start


class GroupCommitter:
    """Makes appended bytes durable without blocking the event loop.

    `await sync(fd)` returns once an fdatasync that started after the call has completed on fd.
    Calls that arrive while a flush is running are collected and flushed together next.
    """

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._waiting: list[tuple[int, asyncio.Future[None]]] = []
        self._running = False
        self.flushes = 0

    async def sync(self, fd: int) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiting.append((fd, fut))
        if not self._running:
            self._start(loop)
        await fut

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="pyggy-fsync")
        batch, self._waiting = self._waiting, []
        self._running = True
        work = loop.run_in_executor(self._executor, _fsync_all, {fd for fd, _ in batch})
        work.add_done_callback(lambda f: self._finished(loop, batch, f))

    def _finished(self, loop: asyncio.AbstractEventLoop,
                  batch: list[tuple[int, asyncio.Future[None]]],
                  work: asyncio.Future[float]) -> None:
        self._running = False
        self.flushes += 1
        exc = work.exception()
        if exc is not None:
            log.error("fsync failed: %s", exc)
        else:
            for observe in FSYNC_OBSERVERS:
                observe(work.result())
        for _, fut in batch:
            if fut.done():
                continue
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)
        if self._waiting:
            self._start(loop)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
