"""The tier below local disk, as a partition log sees it: archived copies of sealed segments.

`core` knows only this narrow interface. The implementation (an archive on disk or S3 with a
bounded read cache) lives in `archiver/` and is injected by the composition root through
`LogEngine(remote=...)`; core never imports it.

A partition log keeps, below its first local segment, the list of segments that exist only in
the archive ("tiered" segments). Reads of offsets below the first local segment consult the
remote: its segment index and byte ranges. Everything the remote hands back is the segment as
it was written, so the bytes and offsets a client sees are the same as before the local copy
went away.

Reads come in two modes:
- blocking (`block=True`): a cache miss fetches the range on the calling thread. Used by the
  few callers that cannot await (and bounded by the remote's own timeouts and circuit breaker);
- non-blocking (`block=False`): a cache miss on the first batch raises `RemoteFetch`, whose
  `fetch()` coroutine fills the cache; the caller awaits it and tries again
  (`LogEngine.poll_async`, `LogEngine.read_kafka_async`). A miss after some batches were read
  just ends the read early (every reader accepts a short read).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.storage.index import SegmentIndex


@dataclass(frozen=True, slots=True)
class RemoteSegment:
    """What is known of an archived segment without fetching it (kept in a local manifest)."""

    start_offset: int
    next_offset: int
    size: int  # bytes of the .log object
    first_timestamp: int  # append time (µs) of the first batch
    last_timestamp: int  # append time (µs) of the last batch (message expiry looks at it)
    max_timestamp: int  # the largest (max) timestamp of any batch, µs


class RemoteReadError(IggyError):
    """An archived segment could not be read (archive down, object missing or corrupt)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ERROR, message)


class RemoteFetch(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by a non-blocking read that needs data not cached yet; await `fetch()`, retry."""

    def __init__(self, fetch: Callable[[], Awaitable[None]]) -> None:
        super().__init__("archived data not cached yet")
        self.fetch = fetch


class RemoteSegments(Protocol):
    """One partition's archive tier. All methods are called on the event loop thread."""

    def segments(self) -> list[RemoteSegment]:
        """Segments confirmed in the archive (uploaded and verified), oldest first."""
        ...

    def is_archived(self, start_offset: int, next_offset: int, size: int) -> bool:
        """True once a segment with exactly these bounds is confirmed in the archive."""
        ...

    def index(self, start_offset: int, block: bool = True) -> SegmentIndex | None:
        """The segment's index; None if not cached and `block` is false.

        Raises RemoteReadError when it cannot be fetched."""
        ...

    def read(self, start_offset: int, position: int, length: int,
             block: bool = True) -> bytes | None:
        """`length` bytes of the segment's log at `position`; None if not cached and not
        `block`. Raises RemoteReadError when they cannot be fetched."""
        ...

    async def fetch_index(self, start_offset: int) -> None:
        """Bring the segment's index into the cache (raises RemoteReadError)."""
        ...

    async def fetch(self, start_offset: int, position: int, length: int) -> None:
        """Bring a byte range of the segment's log into the cache (raises RemoteReadError)."""
        ...

    def drop(self, start_offset: int) -> None:
        """Retention or DeleteSegments removed this segment: delete its archived copy."""
        ...

    def drop_all(self) -> None:
        """The partition was purged or deleted: delete every archived copy."""
        ...
