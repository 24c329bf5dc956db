"""The asyncio edge of the Kafka door: size-prefixed frames in, responses out in order."""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import deque

from kafka_wire.context import Connection, KafkaServer
from kafka_wire.dispatch import CloseConnection, handle_frame
from kafka_wire.protocol.errors import KafkaDecodeError
from kafka_wire.protocol.headers import frame_length

log = logging.getLogger(__name__)
RECV_BUFFER = 256 * 1024
MAX_QUEUED_BYTES = 64 * 1024 * 1024
_SIZE = struct.Struct(">i")


class KafkaConnection(asyncio.BufferedProtocol):
    """One client connection: a reused receive buffer, one worker answering in order."""

    def __init__(self, server: KafkaServer, connections: set) -> None:
        self.server = server
        self.connections = connections
        self.max_frame = server.settings.max_frame_size
        self.buf = bytearray(RECV_BUFFER)
        self.start = self.end = 0
        self.big: bytearray | None = None  # a frame larger than `buf`, grown as it arrives
        self.big_size = 0  # the bytes that frame declares
        self.big_filled = 0
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
        if self.big is not None:
            if self.big_filled == len(self.big):  # (no view of it is exported here)
                grow = min(len(self.big), self.big_size - len(self.big))
                self.big += bytes(grow)
            return memoryview(self.big)[self.big_filled:]
        if self.end == len(self.buf):
            self._compact()
        return memoryview(self.buf)[self.end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self.big is not None:
            self.big_filled += nbytes
            if self.big_filled == self.big_size:
                self._enqueue(self.big)
                self.big = None
            return
        self.end += nbytes
        try:
            self._split()
        except KafkaDecodeError as e:
            log.info("closing kafka connection from %s: %s", self.conn.host, e)
            self.close()

    def _compact(self) -> None:
        n = self.end - self.start
        self.buf[:n] = self.buf[self.start:self.end]
        self.start, self.end = 0, n

    def _split(self) -> None:
        while self.end > self.start:
            view = memoryview(self.buf)[self.start:self.end]
            length = frame_length(view, self.max_frame)
            if length:
                self._enqueue(bytearray(view[4:length]))
                self.start += length
                continue
            if len(view) >= 4:
                declared = _SIZE.unpack_from(view, 0)[0] + 4
                if declared > len(self.buf):
                    # Memory follows the bytes received, not the size declared: a client
                    # announcing 100 MiB and sending little costs little.
                    self.big_size = declared - 4
                    self.big = bytearray(min(self.big_size, 2 * len(self.buf)))
                    self.big[:len(view) - 4] = view[4:]
                    self.big_filled = len(view) - 4
                    self.start = self.end = 0
                    return
                if self.start + declared > len(self.buf):
                    self._compact()
            return
        self.start = self.end = 0

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
                parts = await handle_frame(self.conn, memoryview(frame))
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
