"""The asyncio edge of the Kafka door: size-prefixed frames in, responses out in order."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque

from pyggy.core.framing import FrameAssembler
from pyggy.kafka_wire.context import Connection, KafkaServer
from pyggy.kafka_wire.dispatch import CloseConnection, handle_frame
from pyggy.kafka_wire.protocol.errors import KafkaDecodeError
from pyggy.kafka_wire.protocol.headers import frame_length

log = logging.getLogger(__name__)
MAX_QUEUED_BYTES = 64 * 1024 * 1024
_SIZE = struct.Struct(">i")


def _declared(view: memoryview) -> int:
    """The whole length (prefix included) a frame announces, 0 until its prefix is here."""
    return _SIZE.unpack_from(view, 0)[0] + 4 if len(view) >= 4 else 0


class KafkaConnection(asyncio.BufferedProtocol):
    """One client connection: a reused receive buffer, one worker answering in order."""

    def __init__(self, server: KafkaServer, connections: set) -> None:
        self.server = server
        self.connections = connections
        max_frame = server.settings.max_frame_size
        self.assembler = FrameAssembler(lambda view: frame_length(view, max_frame), _declared)
        self.frames: deque[bytearray] = deque()
        self.queued = 0
        self.wakeup = asyncio.Event()
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = False
        self.reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.conn = Connection(self.server, peer[0] if peer else "?")
        self.connections.add(self)
        self.worker = asyncio.get_running_loop().create_task(self._serve())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.conn.closed = True
        parked = self.conn.parked
        if parked is not None and not parked.done():
            parked.set_result(None)  # a long poll for a client that is gone ends now
        self.connections.discard(self)
        self.wakeup.set()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.assembler.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        try:
            frames = self.assembler.buffer_updated(nbytes)
        except KafkaDecodeError as e:
            log.info("closing kafka connection from %s: %s", self.conn.host, e)
            self.close()
            return
        for frame in frames:
            self._enqueue(frame)

    def _enqueue(self, frame: bytearray) -> None:
        self.frames.append(frame)
        self.queued += len(frame)
        if self.queued > MAX_QUEUED_BYTES and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()
        self.wakeup.set()

    def close(self) -> None:
        self.closed = True
        self.transport.close()

    async def _serve(self) -> None:
        while not self.closed:
            if not self.frames:
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            frame = self.frames.popleft()
            self.queued -= len(frame)
            if self.reading_paused and self.queued < MAX_QUEUED_BYTES // 2:
                self.reading_paused = False
                self.transport.resume_reading()
            try:
                parts = await handle_frame(self.conn, memoryview(frame)[4:])
            except (KafkaDecodeError, CloseConnection) as e:
                log.info("closing kafka connection from %s: %s", self.conn.host, e)
                self.close()
                return
            except Exception:
                log.exception("closing kafka connection from %s: internal error",
                              self.conn.host)
                self.close()
                return
            if self.closed:
                return
            if parts:
                self.transport.writelines(parts)
            if self.conn.close_after_reply:  # e.g. failed SASL: the error, then close
                log.info("closing kafka connection from %s after its reply", self.conn.host)
                self.close()
                return
            if not self.writable.is_set():
                await self.writable.wait()


async def start_listener(server: KafkaServer, host: str, port: int,
                         connections: set) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: KafkaConnection(server, connections), host, port,
                                    reuse_address=True)
