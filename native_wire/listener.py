"""The native protocol's door on the shared transport (`pyggy.transport`).

The protocol of a connection (VSR 0.11 or classic 0.8) is told apart by its first four bytes;
each connection is one `Session`; every request counts as a heartbeat.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Literal, cast

from pyggy.core.records import accel
from pyggy.native_wire.codec.frames import SIZE_FIELD_OFFSET, detect_protocol, frame_length
from pyggy.native_wire.codec.reader import WireError
from pyggy.native_wire.context import ROUTE, NativeServer, Session
from pyggy.native_wire.dispatch import handle_classic, handle_vsr
from pyggy.transport import Connection, Limits, Listener, Reply

_U32 = struct.Struct("<I")
# a name for cast(): a subscripted Callable in the call would be built again every request
_Dispatch = Callable[[bytearray], Awaitable[Reply]]


class NativeDoor:
    """One connection's adapter: framing by protocol, the session, the dispatcher."""

    __slots__ = ("server", "max_frame", "protocol", "session", "dispatch", "conn", "route",
                 "run_peer", "run")
    bad_input: tuple[type[Exception], ...] = (WireError,)
    requires_auth = True  # every command but ping and login needs a logged-in user

    def __init__(self, server: NativeServer, max_frame: int, adopted: Session | None = None,
                 protocol: Literal["vsr", "classic"] | None = None) -> None:
        self.server = server
        self.max_frame = max_frame
        self.protocol = protocol
        self.session = adopted  # a session another shard process handed over, else opened()'s
        self.dispatch: _Dispatch | None = None
        if adopted is not None and protocol is not None:
            handler = handle_vsr if protocol == "vsr" else handle_classic
            self.dispatch = partial(handler, server, adopted)
        self.conn: Connection | None = None
        # with shard processes: [code, peer] of the request being answered, and the run of
        # data requests forwarded to one shard (pyggy/shards/handoff.py)
        self.route = [0, -1]
        self.run_peer, self.run = -1, 0

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
        self.session.last_seen = time.monotonic()  # type: ignore[union-attr]  # no cast call
        if self.server.handoff is not None:
            return self._handle_routed(frame)
        return self.dispatch(frame)  # type: ignore[misc]

    async def _handle_routed(self, frame: bytearray) -> Reply:
        """With shard processes: answer, then tell the handoff where the data went."""
        route = self.route
        route[0], route[1] = 0, -1
        ROUTE.set(route)
        reply = await cast(_Dispatch, self.dispatch)(frame)
        if self.session is not None and self.server.handoff is not None:
            self.server.handoff.observe(self, route[0], route[1])
        return reply

    def opened(self, conn: Connection) -> None:
        self.conn = conn
        if self.session is not None:  # handed over by another shard process
            self.server.adopt_session(self.session)
            self.session.last_seen = time.monotonic()
            self.server.transports[self.session.client_id] = cast(asyncio.BaseTransport,
                                                                  conn.transport)
            return
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

    # -- moving the connection to another shard process (pyggy/shards/handoff.py) ------------
    def export(self) -> dict[str, Any]:
        """The session as another process's `adopt` takes it (JSON-able)."""
        s = cast(Session, self.session)
        return {"client": s.client_id, "address": s.address, "protocol": self.protocol,
                "classic": s.classic, "user": None if s.user is None else s.user.id,
                "user_created": None if s.user is None else s.user.created_at,
                "session": s.session_id, "vsr_client": s.vsr_client, "attached": s.attached,
                "cursors": [[*k, v] for k, v in s.group_cursors.items()],
                "failures": s.logins.failures, "limit": s.logins.limit}

    def release(self) -> None:
        """The session went to another process with the socket: forget it here, keeping its
        group memberships (`closed` then finds no session)."""
        if self.session is not None:
            self.server.release_session(self.session)
            self.session = None


async def adopt(listener: Listener, server: NativeServer, max_frame: int,
                sock: socket.socket, state: dict[str, Any], pending: bytes) -> Connection:
    """Serve a connection another shard process handed over (pyggy/shards/handoff.py): its
    socket, its session as `NativeDoor.export` wrote it, and bytes it had read but not yet
    answered (fed to the new connection first). The user is looked up again here, by id and
    creation time: a user deleted meanwhile (or whose id a new user got) is logged out."""
    s = Session(int(state["client"]), str(state["address"]), classic=bool(state["classic"]))
    if state["user"] is not None:
        user = server.engine.identity.get_user(int(state["user"]))
        s.user = user if user is not None and user.created_at == state["user_created"] \
            else None
    s.session_id, s.vsr_client = int(state["session"]), int(state["vsr_client"])
    s.attached = None if state["attached"] is None else int(state["attached"])
    s.group_cursors = {(int(a), int(b), int(c)): int(v) for a, b, c, v in state["cursors"]}
    s.logins.failures, s.logins.limit = int(state["failures"]), int(state["limit"])
    protocol = state["protocol"]
    door = NativeDoor(server, max_frame, s, protocol if protocol in ("vsr", "classic") else None)
    conn = Connection(listener, door)
    conn.adopted = True
    await asyncio.get_running_loop().connect_accepted_socket(lambda: conn, sock)
    if pending and not conn.closed:
        view = conn.get_buffer(len(pending))
        view[:len(pending)] = pending
        conn.buffer_updated(len(pending))
    return conn


async def start_listener(server: NativeServer, host: str, port: int, max_frame: int,
                         limits: Limits | None = None,
                         tls: ssl.SSLContext | None = None) -> Listener:
    """Bind the native door; the listener's `server` has the bound sockets."""
    listener = Listener("tcp", lambda: NativeDoor(server, max_frame), limits, tls,
                        accel.new_buffer)
    await listener.start(host, port)
    return listener
