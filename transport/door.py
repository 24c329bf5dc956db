"""What a protocol door plugs into the transport: one small adapter per connection."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from pyggy.transport.connection import Connection

Buffer = bytes | bytearray | memoryview


class Stream:
    """A reply written piece by piece as `pieces` produces them (a large Kafka Fetch: its
    head at once, then each chunk of stored batches once verified). The connection writes a
    piece, waits while the peer does not read, yields to other connections, then asks for the
    next: at most one piece and the transport's buffer are held. If `pieces` raises, the
    reply cannot be completed: the connection closes after what was written."""

    __slots__ = ("pieces",)

    def __init__(self, pieces: AsyncGenerator[Sequence[Buffer], None]) -> None:
        self.pieces = pieces


class Lazy(Protocol):
    """Bytes of a known length produced only while they are written (`chunks`)."""

    def __len__(self) -> int: ...

    def chunks(self) -> Iterator[Buffer]: ...


def streamed(parts: Sequence[Any], lazy: type) -> Sequence[Buffer] | Stream:
    """`parts` as they are, or a `Stream` when some are of type `lazy` (a `Lazy`: a door's
    stored batches still to be read and verified), whose chunks follow what precedes them."""
    if lazy not in map(type, parts):  # no generator frame per reply (a type is its own ==)
        return parts

    async def pieces() -> AsyncGenerator[Sequence[Buffer], None]:
        ready: list[Buffer] = []
        for part in parts:
            if type(part) is not lazy:
                ready.append(part)
                continue
            if ready:
                yield ready
                ready = []
            for chunk in cast(Lazy, part).chunks():
                yield (chunk,)
        if ready:
            yield ready

    return Stream(pieces())


# (buffers to write, or a Stream; close once they are written)
Reply = tuple[Sequence[Buffer] | Stream | None, bool]


class Door(Protocol):
    """The protocol side of one connection.

    `bad_input` lists the exceptions that mean "this peer broke the protocol": raised by
    `frame_length` or `handle`, they close the connection with one info line; anything else
    closes it as an internal error (logged with its traceback).
    """

    bad_input: tuple[type[Exception], ...]

    def frame_length(self, view: memoryview) -> int:
        """Length of the complete frame at the start of `view`, 0 while it is incomplete."""
        ...

    def declared_length(self, view: memoryview) -> int:
        """Length the frame at the start of `view` announces, 0 until that is readable."""
        ...

    def handle(self, frame: bytearray) -> Awaitable[Reply]:
        """Answer one frame (a bytearray the door owns and may change in place)."""
        ...

    def opened(self, conn: Connection) -> None:
        """The connection is accepted (and counted): open the door's session."""
        ...

    def closed(self) -> None:
        """The connection is gone: close the session."""
        ...

    @property
    def requires_auth(self) -> bool:
        """Whether the listener's `auth_timeout` applies to this connection."""
        ...

    def is_authenticated(self) -> bool:
        """Whether the peer has authenticated (checked when `auth_timeout` expires)."""
        ...


class RequestMetrics(Protocol):
    """Where a door reports each request it answered (pyggy/metrics.py when `/metrics` is
    served): door, API or command name, seconds taken, error name ("" if none), bytes."""

    def request(self, door: str, api: str, seconds: float, error: str = "",
                received: int = 0, sent: int = 0) -> None: ...
