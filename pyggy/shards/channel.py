"""One connection between two shards over a Unix socket: requests matched to their replies by
id, handled concurrently; APPLY frames (shard 0's metadata broadcast) handed over in the order
they arrive. A reply whose meta holds `error` raises IggyError with that code on the asking
side, so a forwarded request fails as it would have failed locally."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pyggy.core.errors import IggyError

from . import frames
from .frames import Buffer, FrameError

log = logging.getLogger(__name__)

Reply = tuple[dict[str, Any], Buffer]
Handler = Callable[[dict[str, Any], memoryview], Awaitable[Reply]]


class ChannelClosed(IggyError):
    def __init__(self) -> None:
        super().__init__(1, "inter-shard channel closed")  # Iggy's generic Error


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 handle: Handler, apply: Callable[[dict[str, Any]], None],
                 closed: Callable[[Channel], None]) -> None:
        self.reader, self.writer = reader, writer
        self.handle, self.apply, self.closed = handle, apply, closed
        self.pending: dict[int, asyncio.Future[Reply]] = {}
        self.next_id = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.task = asyncio.get_running_loop().create_task(self._read())

    def _write(self, kind: int, request_id: int, meta: dict[str, Any],
               payload: Buffer = b"") -> None:
        head, body = frames.encode(kind, request_id, meta, payload)
        self.writer.write(head)
        if body:
            self.writer.write(body)

    async def request(self, meta: dict[str, Any], payload: Buffer = b"") -> Reply:
        """Send one request and await its reply; IggyError as the other shard raised it."""
        if self.writer.is_closing():
            raise ChannelClosed()
        self.next_id = request_id = (self.next_id + 1) & 0xFFFFFFFF
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = fut
        try:
            self._write(frames.REQUEST, request_id, meta, payload)
            await self.writer.drain()
            reply, body = await fut
        finally:
            self.pending.pop(request_id, None)
        if "error" in reply:
            raise IggyError(int(reply["error"]), str(reply.get("message", "")))
        return reply, body

    def send_apply(self, meta: dict[str, Any]) -> None:
        """One metadata entry of shard 0's broadcast (the socket keeps them in order)."""
        if not self.writer.is_closing():
            self._write(frames.APPLY, 0, meta)

    async def _serve(self, request_id: int, meta: dict[str, Any], payload: memoryview) -> None:
        try:
            reply, body = await self.handle(meta, payload)
        except IggyError as e:
            reply, body = {"error": int(e.code), "message": str(e)}, b""
        except Exception as e:  # a bug on this shard: the asking one gets an error, not a hang
            log.exception("forwarded %s failed", meta.get("op"))
            reply, body = {"error": 1, "message": f"shard error: {e}"}, b""
        if not self.writer.is_closing():
            self._write(frames.REPLY, request_id, reply, body)

    async def _read(self) -> None:
        try:
            while True:
                length = frames.frame_length(await self.reader.readexactly(4))
                frame = frames.parse(await self.reader.readexactly(length))
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
        except (asyncio.IncompleteReadError, ConnectionError, FrameError) as e:
            if isinstance(e, FrameError):
                log.error("inter-shard channel: %s", e)
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ChannelClosed())
            self.writer.close()
            self.closed(self)

    async def close(self) -> None:
        self.writer.close()
        self.task.cancel()
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
