"""The native protocol's door on the shared transport (`pyggy.transport`).

The protocol of a connection (VSR 0.11 or classic 0.8) is told apart by its first four bytes;
each connection is one `Session`; every request counts as a heartbeat.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Literal, cast

from pyggy.native_wire.codec.frames import SIZE_FIELD_OFFSET, detect_protocol, frame_length
from pyggy.native_wire.codec.reader import WireError
from pyggy.native_wire.context import NativeServer, Session
from pyggy.native_wire.dispatch import handle_classic, handle_vsr
from pyggy.transport import Connection, Limits, Listener, Reply

_U32 = struct.Struct("<I")


class NativeDoor:
    """One connection's adapter: framing by protocol, the session, the dispatcher."""

    __slots__ = ("server", "max_frame", "protocol", "session", "dispatch")
    bad_input: tuple[type[Exception], ...] = (WireError,)
    requires_auth = True  # every command but ping and login needs a logged-in user

    def __init__(self, server: NativeServer, max_frame: int) -> None:
        self.server = server
        self.max_frame = max_frame
        self.protocol: Literal["vsr", "classic"] | None = None
        self.session: Session | None = None
        self.dispatch: Callable[[bytearray], Awaitable[Reply]] | None = None

    def frame_length(self, view: memoryview) -> int:
        protocol = self.protocol
        if protocol is None:
            if len(view) < 4:
                return 0
            protocol = self.protocol = detect_protocol(view[:4])
            handler = handle_vsr if protocol == "vsr" else handle_classic
            # opened() made the session before the first byte arrived
            self.dispatch = partial(handler, self.server, cast(Session, self.session))
        return frame_length(view, protocol, self.max_frame)

    def declared_length(self, view: memoryview) -> int:
        if self.protocol == "vsr":
            return _U32.unpack_from(view, SIZE_FIELD_OFFSET)[0] if len(view) >= 52 else 0
        return 4 + _U32.unpack_from(view, 0)[0] if len(view) >= 4 else 0

    def handle(self, frame: bytearray) -> Awaitable[Reply]:
        # opened() made the session, and frame_length the dispatcher, before any frame
        cast(Session, self.session).last_seen = time.monotonic()
        return cast(Callable[[bytearray], Awaitable[Reply]], self.dispatch)(frame)

    def opened(self, conn: Connection) -> None:
        self.session = self.server.open_session(conn.peer)
        self.session.last_seen = time.monotonic()
        # accepted: the transport is there until the connection is lost
        self.server.transports[self.session.client_id] = cast(asyncio.BaseTransport,
                                                              conn.transport)
        name = conn.certificate_name()
        if name is not None:  # mutual TLS: logged in as the certificate's user
            self.session.user = self.server.logins.certificate(name, self.session.attempt())

    def closed(self) -> None:
        if self.session is not None:
            self.server.close_session(self.session)

    def is_authenticated(self) -> bool:
        return self.session is not None and self.session.user is not None


async def start_listener(server: NativeServer, host: str, port: int, max_frame: int,
                         limits: Limits | None = None,
                         tls: ssl.SSLContext | None = None) -> Listener:
    """Bind the native door; the listener's `server` has the bound sockets."""
    listener = Listener("tcp", lambda: NativeDoor(server, max_frame), limits, tls)
    await listener.start(host, port)
    return listener
