"""One connection between two shards over a Unix socket: requests matched to their replies by
id, handled concurrently; APPLY frames (shard 0's metadata broadcast) handed over in the order
they arrive. A reply whose meta holds `error` raises IggyError with that code on the asking
side, so a forwarded request fails as it would have failed locally.

Frames are received straight into a buffer of their own size (a BufferedProtocol): a
forwarded batch is copied once, from the socket, and its payload is a writable view the
owner validates and stamps in place. A payload may be sent as several buffers (the batches a
read returned), written one after the other without joining them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from pyggy.core.errors import IggyError

from . import frames
from .frames import Buffer, FrameError

log = logging.getLogger(__name__)

Payload = Buffer | Sequence[Buffer]
Reply = tuple[dict[str, Any], Payload]
Handler = Callable[[dict[str, Any], memoryview], Awaitable[Reply]]


class ChannelClosed(IggyError):
    def __init__(self) -> None:
        super().__init__(1, "inter-shard channel closed")  # Iggy's generic Error


class Channel(asyncio.BufferedProtocol):
    """Made by `connect` or `serve` (the protocol factory of a Unix server)."""

    def __init__(self, handle: Handler, apply: Callable[[dict[str, Any]], None],
                 closed: Callable[[Channel], None]) -> None:
        self.handle, self.apply, self.closed = handle, apply, closed
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, asyncio.Future[tuple[dict[str, Any], memoryview]]] = {}
        self.next_id = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.prefix = bytearray(4)
        self.body: bytearray | None = None  # the frame being received, once its length is
        self.filled = 0
        self.writable: asyncio.Future[None] | None = None  # set while writing is paused
        self.lost = False

    # -- asyncio.BufferedProtocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.body is None:
            return memoryview(self.prefix)[self.filled:]
        return memoryview(self.body)[self.filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self.filled += nbytes
        try:
            if self.body is None:
                if self.filled < 4:
                    return
                self.body = bytearray(frames.frame_length(bytes(self.prefix)))
                self.filled = 0
            if self.filled < len(self.body):
                return
            frame = frames.parse(self.body)
        except FrameError as e:
            log.error("inter-shard channel: %s", e)
            assert self.transport is not None
            self.transport.abort()
            return
        self.body, self.filled = None, 0
        self._dispatch(frame)

    def pause_writing(self) -> None:
        self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)
        self.writable = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ChannelClosed())
        self.resume_writing()
        self.closed(self)

    # -- frames ----------------------------------------------------------------------------
    def _dispatch(self, frame: frames.Frame) -> None:
        if frame.kind == frames.REPLY:
            fut = self.pending.get(frame.request_id)
            if fut is not None and not fut.done():
                fut.set_result((frame.meta, frame.payload))
        elif frame.kind == frames.APPLY:
            self.apply(frame.meta)
        else:
            task = asyncio.get_running_loop().create_task(
                self._serve(frame.request_id, frame.meta, frame.payload))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def _write(self, kind: int, request_id: int, meta: dict[str, Any],
               payload: Payload = b"") -> None:
        parts: Sequence[Buffer]
        if isinstance(payload, bytes | bytearray | memoryview):
            parts = [payload] if len(payload) else []
        else:
            parts = payload
        head = frames.head(kind, request_id, meta, sum(len(p) for p in parts))
        assert self.transport is not None
        self.transport.write(head)
        for part in parts:
            self.transport.write(part)

    async def request(self, meta: dict[str, Any], payload: Buffer = b""
                      ) -> tuple[dict[str, Any], memoryview]:
        """Send one request and await its reply; IggyError as the other shard raised it."""
        if self.lost:
            raise ChannelClosed()
        self.next_id = request_id = (self.next_id + 1) & 0xFFFFFFFF
        fut: asyncio.Future[tuple[dict[str, Any], memoryview]] = \
            asyncio.get_running_loop().create_future()
        self.pending[request_id] = fut
        try:
            self._write(frames.REQUEST, request_id, meta, payload)
            if self.writable is not None:  # the socket's buffer is full: wait for room
                await self.writable
            reply, body = await fut
        finally:
            self.pending.pop(request_id, None)
        if "error" in reply:
            raise IggyError(int(reply["error"]), str(reply.get("message", "")))
        return reply, body

    def send_apply(self, meta: dict[str, Any]) -> None:
        """One metadata entry of shard 0's broadcast (the socket keeps them in order)."""
        if not self.lost:
            self._write(frames.APPLY, 0, meta)

    async def _serve(self, request_id: int, meta: dict[str, Any], payload: memoryview) -> None:
        try:
            reply, body = await self.handle(meta, payload)
        except IggyError as e:
            reply, body = {"error": int(e.code), "message": str(e)}, b""
        except Exception as e:  # a bug on this shard: the asking one gets an error, not a hang
            log.exception("forwarded %s failed", meta.get("op"))
            reply, body = {"error": 1, "message": f"shard error: {e}"}, b""
        if not self.lost:
            self._write(frames.REPLY, request_id, reply, body)

    def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.transport is not None:
            self.transport.close()


async def connect(path: str, handle: Handler, apply: Callable[[dict[str, Any]], None],
                  closed: Callable[[Channel], None]) -> Channel:
    _, channel = await asyncio.get_running_loop().create_unix_connection(
        lambda: Channel(handle, apply, closed), path)
    return channel
