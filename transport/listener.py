"""A listening socket: accepts connections for one door, counts them, enforces its limits."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from collections.abc import Callable

from pyggy.transport import heap
from pyggy.transport.connection import Connection
from pyggy.transport.door import Door
from pyggy.transport.limits import BurstLog, Limits

from pyggy import prebind

log = logging.getLogger(__name__)
DEFAULT_HANDSHAKE_TIMEOUT = 60.0  # asyncio's own default, when frame_read_timeout is off


class Listener:
    """`name` labels log lines ("tcp", "kafka"); `make_door` makes one Door per connection;
    `tls` (an SSLContext) turns TLS on for every connection of this listener; `allocate(n)`
    makes the receive buffer of an incomplete frame (framing.py; it need not zero it)."""

    def __init__(self, name: str, make_door: Callable[[], Door], limits: Limits | None = None,
                 tls: ssl.SSLContext | None = None,
                 allocate: Callable[[int], bytearray] = bytearray) -> None:
        self.name = name
        self.allocate = allocate
        self.make_door = make_door
        self.limits = limits or Limits()
        self.tls = tls
        self.connections: set[Connection] = set()
        self.events = BurstLog(log)
        self.server: asyncio.Server | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # set by start

    @functools.cached_property
    def read_buffer(self) -> bytearray:
        """The receive buffer this listener's connections share (framing.py), made at the
        first connection: an idle server holds none (256 KiB a door, written when made)."""
        return bytearray(self.limits.read_buffer)

    async def start(self, host: str, port: int) -> asyncio.Server:
        """Bind and accept; returns the asyncio server (its sockets tell the bound port).
        A socket `pyggy-server` already opened for this door and address is used instead of
        binding again (pyggy/prebind.py)."""
        self.loop = asyncio.get_running_loop()
        handshake = None
        if self.tls is not None:
            handshake = self.limits.frame_read_timeout or DEFAULT_HANDSHAKE_TIMEOUT
        sock = None if self.limits.reuse_port else prebind.take(self.name, host, port)
        if sock is not None:
            self.server = await self.loop.create_server(
                self._accept, sock=sock, ssl=self.tls, ssl_handshake_timeout=handshake)
            return self.server
        self.server = await self.loop.create_server(
            self._accept, host, port, reuse_address=True, ssl=self.tls,
            ssl_handshake_timeout=handshake, reuse_port=self.limits.reuse_port or None)
        return self.server

    def _accept(self) -> Connection:
        return Connection(self, self.make_door())

    # -- called by connections -------------------------------------------------------------
    def admit(self, conn: Connection) -> bool:
        """Count `conn` in, or refuse it (False) when `max_connections` are open."""
        if len(self.connections) >= self.limits.max_connections:
            self.events.note(f"{self.name}: refusing connections: max_connections "
                             f"({self.limits.max_connections}) reached", f"from {conn.peer}")
            return False
        self.connections.add(conn)
        return True

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        heap.TRIMMER.connection_closed()

    def timed_out(self, conn: Connection, why: str) -> None:
        self.events.note(f"{self.name}: closing connections: {why}", f"from {conn.peer}")

    # -- shutdown --------------------------------------------------------------------------
    def close(self) -> None:
        """Stop accepting and close every connection."""
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.close()
        self.events.close()
        heap.TRIMMER.cancel()

    async def wait_closed(self) -> None:
        if self.server is not None:
            await self.server.wait_closed()
