"""The Kafka door on the shared transport (`pyggy.transport`): size-prefixed frames in,
responses out in order.

The request handlers (`dispatch`: the registry, every handler, the schema codec) are imported
at the first frame, not when the listener starts: a server whose Kafka door is idle never
loads them (a start is that much shorter and its resident memory smaller)."""

from __future__ import annotations

import functools
import logging
import ssl
import struct
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from pyggy.core.engine.data import Deferred
from pyggy.core.records import accel
from pyggy.kafka_wire.context import CloseConnection, Connection, KafkaServer
from pyggy.kafka_wire.protocol.errors import KafkaDecodeError
from pyggy.kafka_wire.protocol.headers import frame_length
from pyggy.transport import Connection as Transport
from pyggy.transport import Limits, Listener, Reply, Stream
from pyggy.transport.door import Buffer, streamed

log = logging.getLogger(__name__)
_SIZE = struct.Struct(">i")


def _declared(view: memoryview) -> int:
    """The whole length (prefix included) a frame announces, 0 until its prefix is here."""
    return _SIZE.unpack_from(view, 0)[0] + 4 if len(view) >= 4 else 0


@functools.cache
def _handle_frame() -> Callable[[Connection, memoryview], Awaitable[list | None]]:
    from pyggy.kafka_wire.dispatch import handle_frame

    return handle_frame


def _streamed(parts: list) -> Sequence[Buffer] | Stream:
    """The reply, a `Stream` when it holds a Deferred (a Fetch's stored batches still to be
    read and verified: core/storage/streamed.py)."""
    return streamed(parts, Deferred)


class KafkaDoor:
    """One client connection's adapter: the handlers' `Connection`, answered in order."""

    __slots__ = ("server", "max_frame", "conn")
    bad_input: tuple[type[Exception], ...] = (KafkaDecodeError, CloseConnection)
    declared_length = staticmethod(_declared)

    def __init__(self, server: KafkaServer) -> None:
        self.server = server
        self.max_frame = server.settings.max_frame_size
        self.conn: Connection | None = None  # set by opened()

    @property
    def requires_auth(self) -> bool:
        return self.server.settings.requires_auth

    def is_authenticated(self) -> bool:
        return self.conn is not None and self.conn.user is not None

    def frame_length(self, view: memoryview) -> int:
        return frame_length(view, self.max_frame)

    async def handle(self, frame: bytearray) -> Reply:
        conn = cast(Connection, self.conn)  # opened() ran before any frame
        parts = await _handle_frame()(conn, memoryview(frame)[4:])
        reply = _streamed(parts) if parts else parts
        if conn.close_after_reply:  # e.g. failed SASL: the error, then close
            log.info("closing kafka connection from %s after its reply", conn.host)
            return reply, True
        return reply, False

    def opened(self, transport: Transport) -> None:
        conn = self.conn = Connection(self.server, transport.peer.rpartition(":")[0] or "?")
        name = transport.certificate_name()
        if name is not None:  # mutual TLS: the certificate's user, until a SASL login
            conn.user = self.server.logins.certificate(name, conn.attempt())

    def closed(self) -> None:
        conn = self.conn
        if conn is None:
            return
        conn.closed = True
        parked = conn.parked
        if parked is not None and not parked.done():
            parked.set_result(None)  # a long poll for a client that is gone ends now


async def start_listener(server: KafkaServer, host: str, port: int,
                         limits: Limits | None = None,
                         tls: ssl.SSLContext | None = None) -> Listener:
    """Bind the Kafka door; the listener's `server` has the bound sockets."""
    listener = Listener("kafka", lambda: KafkaDoor(server), limits, tls, accel.new_buffer)
    await listener.start(host, port)
    return listener
