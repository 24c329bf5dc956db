"""The tier below local disk, as a partition log sees it: archived copies of sealed segments.

`core` knows only this narrow interface. The implementation (an archive on disk or S3 with a
bounded read cache and a bounded pool of reader threads) lives in `archiver/` and is injected by
the composition root through `LogEngine(remote=...)`; core never imports it.

A partition log keeps, below its first local segment, the list of segments that exist only in
the archive ("tiered" segments). Reads of offsets below the first local segment consult the
remote: its segment index and byte ranges. Everything the remote hands back is the segment as
it was written, so the bytes and offsets a client sees are the same as before the local copy
went away. Repairs of a damaged local batch read the archive the same way.

The read logic is written once, sans I/O: a read is a generator (`Steps`) that yields a `Need`
(an archived index, or a byte range) whenever it must have archived data, and receives the data
back. Two drivers run it: `run_blocking` (offline tools and tests: the remote's blocking calls)
and `run_async` (the server: the remote's `*_async` calls, which wait on the archive's reader
pool and never block the event loop). Nothing is retried or re-run: each need is asked once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Protocol, TypeVar, Union

from pyggy.core.errors import RemoteReadError
from pyggy.core.lean import lean_frozen
from pyggy.core.storage.index import SegmentIndex

__all__ = ["Need", "NeedBytes", "NeedIndex", "RemoteReadError", "RemoteSegment",
           "RemoteSegments", "Steps", "run_async", "run_blocking"]

T = TypeVar("T")


@lean_frozen
class RemoteSegment:
    """What is known of an archived segment without fetching it (kept in a local manifest)."""

    start_offset: int
    next_offset: int
    size: int  # bytes of the .log object
    first_timestamp: int  # append time (µs) of the first batch
    last_timestamp: int  # append time (µs) of the last batch (message expiry looks at it)
    max_timestamp: int  # the largest (max) timestamp of any batch, µs


class RemoteSegments(Protocol):
    """One partition's archive tier. All methods are called on the event loop thread, except
    that the blocking ones may also be called where no loop runs (offline tools)."""

    def segments(self) -> list[RemoteSegment]:
        """Segments confirmed in the archive (uploaded and verified), oldest first."""
        ...

    def is_archived(self, start_offset: int, next_offset: int, size: int) -> bool:
        """True once a segment with exactly these bounds is confirmed in the archive."""
        ...

    def index(self, start_offset: int) -> SegmentIndex:
        """The segment's index, from the cache or read on this thread (blocking). Raises
        RemoteReadError when it cannot be read."""
        ...

    def read(self, start_offset: int, position: int, length: int) -> bytes:
        """`length` bytes of the segment's log at `position`, from the cache or read on this
        thread (blocking). Raises RemoteReadError when they cannot be read."""
        ...

    async def index_async(self, start_offset: int) -> SegmentIndex:
        """`index`, waiting for the archive's reader pool instead of blocking."""
        ...

    async def read_async(self, start_offset: int, position: int, length: int) -> bytes:
        """`read`, waiting for the archive's reader pool instead of blocking."""
        ...

    def drop(self, start_offset: int) -> None:
        """Retention or DeleteSegments removed this segment: delete its archived copy."""
        ...

    def confirm(self, record: bytes) -> bool:
        """In a cluster: record a segment the partition's leader archived (the record its
        ARCHIVED op carries); False, and nothing recorded, when `record` is malformed."""
        ...

    def drop_all(self) -> None:
        """The partition was purged or deleted: delete every archived copy."""
        ...


@lean_frozen
class NeedIndex:
    """A read needs an archived segment's index (answered with the SegmentIndex)."""

    remote: RemoteSegments
    start_offset: int


@lean_frozen
class NeedBytes:
    """A read needs a byte range of an archived segment's log (answered with the bytes)."""

    remote: RemoteSegments
    start_offset: int
    position: int
    length: int


Need = Union[NeedIndex, NeedBytes]  # noqa: UP007 - a runtime alias (isinstance, generics)
# A read written once: it yields what it needs from the archive and gets it sent back (a long
# walk may also yield None between units of work: a point where its driver may pause).
Steps = Generator[Need | None, object, T]


def answer(need: Need) -> object:
    """The data a need asks for, read on this thread (blocking)."""
    if isinstance(need, NeedIndex):
        return need.remote.index(need.start_offset)
    return need.remote.read(need.start_offset, need.position, need.length)


async def answer_async(need: Need) -> object:
    """The data a need asks for, awaited from the archive's reader pool."""
    if isinstance(need, NeedIndex):
        return await need.remote.index_async(need.start_offset)
    return await need.remote.read_async(need.start_offset, need.position, need.length)


def run_blocking(steps: Steps[T]) -> T:
    """Run a read to its result, answering its needs on this thread. A need the archive
    cannot answer is raised inside the read (RemoteReadError), which may handle it."""
    try:
        need = next(steps)
        while True:
            if need is None:
                need = steps.send(None)
                continue
            try:
                data = answer(need)
            except RemoteReadError as e:
                need = steps.throw(e)
            else:
                need = steps.send(data)
    except StopIteration as done:
        result: T = done.value  # what the generator returned (a Steps[T] returns a T)
        return result


async def run_async(steps: Steps[T],
                    pause: Callable[[], Awaitable[None]] | None = None) -> T:
    """Run a read to its result, awaiting its needs (the event loop keeps running); at each
    point where the read may pause, await `pause()` when given (a paced walk)."""
    try:
        need = next(steps)
        while True:
            if need is None:
                if pause is not None:
                    await pause()
                need = steps.send(None)
                continue
            try:
                data = await answer_async(need)
            except RemoteReadError as e:
                need = steps.throw(e)
            else:
                need = steps.send(data)
    except StopIteration as done:
        result: T = done.value  # what the generator returned (a Steps[T] returns a T)
        return result
