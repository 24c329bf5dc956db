"""One accepted connection: bytes in, frames to its door in order, replies out.

One BufferedProtocol per connection reads into the FrameAssembler's buffers; complete frames
queue for one worker coroutine that hands them to the door one at a time (replies leave in
request order, as Kafka requires; no task per request). A reply may be a `Stream`, written
piece by piece while the door produces the rest (at most STREAM_AHEAD bytes buffered). Reading
pauses while more than `max_queued_bytes` wait and while the peer does not read its replies
(write flow control). A watchdog timer (one per connection, re-armed lazily) enforces the
listener's timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from pyggy.transport.door import Door, Stream
from pyggy.transport.framing import FrameAssembler

if TYPE_CHECKING:
    from pyggy.transport.listener import Listener

log = logging.getLogger(__name__)
STREAM_AHEAD = 4 << 20  # a streamed reply: most bytes waiting in the transport (write buffer)
# the name of the listener whose connection's worker is running (set once per connection, in
# its worker's own context): which door a request forwarded to another shard came in on
# (pyggy/shards/counters.py); "" outside a connection's worker
DOOR: ContextVar[str] = ContextVar("pyggy_transport_door", default="")


class Connection(asyncio.BufferedProtocol):
    __slots__ = ("listener", "door", "loop", "assembler", "frames", "queued", "waiter", "drain",
                 "closed", "counted", "timed", "reading_paused", "transport", "peer", "worker",
                 "last_active", "partial_since", "auth_deadline", "watchdog", "watchdog_at",
                 "after_reply", "adopted")

    def __init__(self, listener: Listener, door: Door) -> None:
        self.listener = listener
        self.door = door
        self.loop = cast(asyncio.AbstractEventLoop, listener.loop)  # made once it started
        self.assembler = FrameAssembler(door.frame_length, door.declared_length,
                                        listener.read_buffer, listener.allocate)
        self.frames: deque[bytearray] | None = None  # made with the worker, at the first frame
        self.queued = 0
        self.waiter: asyncio.Future[None] | None = None  # the idle worker waits on it
        self.drain: asyncio.Future[None] | None = None  # set while the peer reads too slowly
        self.closed = False
        self.counted = False
        self.timed = False  # any timeout on: reads note the time
        self.reading_paused = False
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.worker: asyncio.Task[None] | None = None
        self.last_active = 0.0
        self.partial_since = 0.0  # when the first byte of the incomplete frame came, 0 = none
        self.auth_deadline = 0.0
        self.watchdog: asyncio.TimerHandle | None = None
        self.watchdog_at = math.inf
        # called once after the next reply is written, if the connection is still open (a
        # door that moves the connection to another process, pyggy/shards/handoff.py)
        self.after_reply: Callable[[], None] | None = None
        self.adopted = False  # taken over from another process: admitted past the limit

    # -- what doors and the server may ask ---------------------------------------------------
    @property
    def tls(self) -> bool:
        return self.transport is not None and \
            self.transport.get_extra_info("ssl_object") is not None

    def peer_certificate(self, binary: bool = True) -> Any:
        """The TLS peer's certificate (DER bytes, or the decoded dict when `binary` is false),
        None without TLS or when the peer sent none (only a listener with `client_auth`
        asks for one; it is verified then)."""
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        return ssl_object.getpeercert(binary) if ssl_object is not None else None

    def certificate_name(self) -> str | None:
        """The common name of the peer's verified certificate (mutual TLS), else None."""
        if not self.tls:
            return None
        from pyggy.transport.tls import common_name  # with its datetime: for TLS only

        return common_name(self.peer_certificate(False))

    def close(self) -> None:
        """Close after the replies already written (idempotent)."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def idle(self) -> bool:
        """No whole request unanswered, nothing unsent: a request boundary at which the
        socket may change hands (`detach`, with `unread`)."""
        return (not self.closed and self.transport is not None and not self.frames
                and self.queued == 0 and self.transport.get_write_buffer_size() == 0)

    def unread(self) -> bytes:
        """The received part of an incomplete next request ('' if none)."""
        a = self.assembler
        return bytes(memoryview(a.own)[:a.end]) if a.own is not None else b""

    def detach(self) -> None:
        """Stop serving this connection without ending it: another process holds a duplicate
        of its socket (pyggy/shards/handoff.py), so closing ours sends no FIN. The door's
        `closed` is still called; a door that handed its session on has let go of it."""
        self.abort()
        self._wake()

    def abort(self) -> None:
        """Close at once, dropping what is still unsent (a dead link never drains)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- transport callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream server's transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if self.adopted:  # it was counted by the process it came from: not refused now
            self.listener.connections.add(self)
        elif not self.listener.admit(self):
            self.closed = True
            transport.close()
            return
        self.counted = True
        self.door.opened(self)
        limits = self.listener.limits
        if limits.timed:
            self.timed = True
            now = self.last_active = self.loop.time()
            if limits.auth_timeout and self.door.requires_auth:
                self.auth_deadline = now + limits.auth_timeout
            self._check()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.frames is not None:
            self.frames.clear()
        self.assembler.release()
        if self.counted:
            self.counted = False
            self.listener.forget(self)
            self.door.closed()
        self.transport = None  # a TLS transport and its protocol refer to each other

    def pause_writing(self) -> None:
        if self.drain is None:
            self.drain = self.loop.create_future()

    def resume_writing(self) -> None:
        drain, self.drain = self.drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.assembler.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self.closed:
            return
        try:
            frames = self.assembler.buffer_updated(nbytes)
        except self.door.bad_input as e:
            log.info("closing %s connection from %s: %s", self.listener.name, self.peer, e)
            self.close()
            return
        if frames:
            queue = self.frames
            if queue is None:  # the first request: a queue and the worker that empties it
                queue = self.frames = deque()
                self.worker = self.loop.create_task(self._serve(queue))
            else:
                self._wake()
            for frame in frames:
                queue.append(frame)
                self.queued += len(frame)
            if self.queued > self.listener.limits.max_queued_bytes and not self.reading_paused:
                self.reading_paused = True
                self.partial_since = 0.0  # not the peer's fault while we do not read
                cast(asyncio.Transport, self.transport).pause_reading()  # open: not closed
        if self.timed:
            self._read_seen(bool(frames))

    def eof_received(self) -> bool | None:
        return None

    # -- the per-connection worker -------------------------------------------------------
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _serve(self, frames: deque[bytearray]) -> None:
        door, limits = self.door, self.listener.limits
        DOOR.set(self.listener.name)
        while not self.closed:
            if not frames:
                frame = parts = None  # an idle connection keeps no request or reply alive
                self.assembler.drop_spare()  # nor a receive buffer made for bytes to come
                self.waiter = self.loop.create_future()
                await self.waiter
                continue
            frame = frames.popleft()
            self.queued -= len(frame)
            if self.reading_paused and self.queued < limits.max_queued_bytes // 2:
                self.reading_paused = False
                cast(asyncio.Transport, self.transport).resume_reading()  # open, as above
                if self.timed and self.assembler.pending:
                    self._partial_began(self.loop.time())
            try:
                parts, close = await door.handle(frame)
            except door.bad_input as e:
                log.info("closing %s connection from %s: bad frame: %s", self.listener.name,
                         self.peer, e)
                self.close()
                return
            except Exception:
                log.exception("closing %s connection from %s: internal error",
                              self.listener.name, self.peer)
                self.close()
                return
            if self.closed:
                return
            if isinstance(parts, Stream):
                if not await self._stream(parts):
                    return
            elif parts:
                self.transport.writelines(parts)  # type: ignore[union-attr]  # open; no cast()
            if parts and limits.idle_timeout:
                self.last_active = self.loop.time()
            if close:
                self.close()
                return
            if self.after_reply is not None:
                then, self.after_reply = self.after_reply, None
                then()
                if self.closed:
                    return
            if self.drain is not None:
                await self.drain

    async def _stream(self, reply: Stream) -> bool:
        """Write a streamed reply (transport/door.py); False if the connection closed."""
        pieces = reply.pieces
        transport = cast(asyncio.Transport, self.transport)  # not closed
        # the next piece is made while up to STREAM_AHEAD bytes still wait to be sent
        transport.set_write_buffer_limits(STREAM_AHEAD, STREAM_AHEAD // 2)
        try:
            async for piece in pieces:
                if self.closed:
                    return False
                transport.writelines(piece)
                if self.drain is not None:
                    await self.drain
                else:
                    await asyncio.sleep(0)  # let other connections run between pieces
        except Exception as e:
            log.warning("closing %s connection from %s: reply cut short: %s",
                        self.listener.name, self.peer, e)
            self.close()
            return False
        finally:
            await pieces.aclose()
            if not self.closed:
                transport.set_write_buffer_limits()  # back to the defaults
        return not self.closed

    # -- timeouts --------------------------------------------------------------------------
    def _read_seen(self, completed: bool) -> None:
        """After a read, with timeouts on: note activity and when a partial frame began."""
        now = self.last_active = self.loop.time()
        if not self.assembler.pending or self.reading_paused:
            self.partial_since = 0.0
        elif completed or not self.partial_since:
            self._partial_began(now)

    def _partial_began(self, now: float) -> None:
        """A frame is incomplete from `now` on: make sure the watchdog wakes in time for it."""
        self.partial_since = now
        timeout = self.listener.limits.frame_read_timeout
        if timeout and self.watchdog_at > now + timeout:
            self._arm(now + timeout)

    def _arm(self, when: float) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        self.watchdog = self.loop.call_at(when, self._check)
        self.watchdog_at = when

    def _check(self) -> None:
        """The watchdog: close on an expired deadline, else sleep until the next one."""
        self.watchdog, self.watchdog_at = None, math.inf
        if self.closed:
            return
        limits, now, due = self.listener.limits, self.loop.time(), math.inf
        expired = None
        if self.auth_deadline:
            if self.door.is_authenticated():
                self.auth_deadline = 0.0
            elif now >= self.auth_deadline:
                expired = f"not authenticated within {limits.auth_timeout:g} s (auth_timeout)"
            else:
                due = self.auth_deadline
        if self.partial_since and limits.frame_read_timeout:
            if now >= self.partial_since + limits.frame_read_timeout:
                expired = (f"a frame did not arrive whole within {limits.frame_read_timeout:g} s"
                           " (frame_read_timeout)")
            due = min(due, self.partial_since + limits.frame_read_timeout)
        if limits.idle_timeout:
            busy = self.worker is not None and self.waiter is None or bool(self.frames)
            if busy:  # a request in progress is not idleness
                self.last_active = now
            elif now >= self.last_active + limits.idle_timeout:
                expired = f"idle for {limits.idle_timeout:g} s (idle timeout)"
            due = min(due, self.last_active + limits.idle_timeout)
        if expired is not None:
            self.listener.timed_out(self, expired)
            self.close()
        elif due != math.inf:
            self._arm(due)
