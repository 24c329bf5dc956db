"""The asyncio edge of the native protocol: bytes in, frames to the dispatcher, replies out.

One BufferedProtocol per connection; `core.framing.FrameAssembler` owns the receive buffers.
Requests of a connection are answered in order by one worker coroutine per connection.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections import deque

from pyggy.core.framing import FrameAssembler
from pyggy.native_wire.codec.frames import SIZE_FIELD_OFFSET, detect_protocol, frame_length
from pyggy.native_wire.codec.reader import WireError
from pyggy.native_wire.context import NativeServer
from pyggy.native_wire.dispatch import handle_classic, handle_vsr

log = logging.getLogger(__name__)
MAX_QUEUED_BYTES = 64 * 1024 * 1024
_U32 = struct.Struct("<I")


class NativeConnection(asyncio.BufferedProtocol):
    def __init__(self, server: NativeServer, max_frame: int) -> None:
        self.server = server
        self.max_frame = max_frame
        self.assembler = FrameAssembler(self._frame_length, self._declared)
        self.protocol: str | None = None
        self.frames: deque[bytearray] = deque()
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = False
        self.reading_paused = False
        self.transport: asyncio.Transport | None = None

    # -- transport callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.session = self.server.open_session(f"{peer[0]}:{peer[1]}" if peer else "?")
        self.server.transports[self.session.client_id] = transport
        self.session.last_seen = time.monotonic()
        self.worker = asyncio.get_running_loop().create_task(self._serve())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.wakeup.set()
        self.writable.set()
        self.server.close_session(self.session)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.assembler.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        try:
            frames = self.assembler.buffer_updated(nbytes)
        except WireError as e:
            log.info("closing %s: %s", self.session.address, e)
            self._abort()
            return
        for frame in frames:
            self._enqueue(frame)

    def eof_received(self) -> bool | None:
        return None

    # -- framing: the protocol is told apart by a connection's first four bytes -----------
    def _frame_length(self, view: memoryview) -> int:
        if self.protocol is None:
            if len(view) < 4:
                return 0
            self.protocol = detect_protocol(view[:4])
        return frame_length(view, self.protocol, self.max_frame)  # type: ignore[arg-type]

    def _declared(self, view: memoryview) -> int:
        if self.protocol == "vsr":
            return _U32.unpack_from(view, SIZE_FIELD_OFFSET)[0] if len(view) >= 52 else 0
        return 4 + _U32.unpack_from(view, 0)[0] if len(view) >= 4 else 0

    def _enqueue(self, frame: bytearray) -> None:
        self.frames.append(frame)
        self.queued_bytes += len(frame)
        if self.queued_bytes > MAX_QUEUED_BYTES and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self.wakeup.set()

    def _abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    # -- the per-connection worker -------------------------------------------------------
    async def _serve(self) -> None:
        handler = None
        while not self.closed:
            if not self.frames:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            frame = self.frames.popleft()
            self.queued_bytes -= len(frame)
            self.session.last_seen = time.monotonic()
            if self.reading_paused and self.queued_bytes < MAX_QUEUED_BYTES // 2:
                self.reading_paused = False
                self.transport.resume_reading()
            handler = handler or (handle_vsr if self.protocol == "vsr" else handle_classic)
            try:
                parts, close = await handler(self.server, self.session, frame)
            except WireError as e:
                log.info("closing %s: bad frame: %s", self.session.address, e)
                self._abort()
                return
            except Exception:
                log.exception("closing %s: internal error", self.session.address)
                self._abort()
                return
            if self.closed:
                return
            self.transport.writelines(parts)
            if close:
                self._abort()
                return
            if not self.writable.is_set():
                await self.writable.wait()


async def start_listener(server: NativeServer, host: str, port: int,
                         max_frame: int) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: NativeConnection(server, max_frame), host, port,
                                    reuse_address=True)
