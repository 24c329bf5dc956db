"""The replica bus: one connection per replica pair on asyncio, built on pyggy.transport.

The lower replica id dials the higher one (as Iggy's bus does) and redials every
`reconnect_period` while the connection is down; accepted and dialled connections are both
`transport.Connection`s (framing, bounded receive buffers, timeouts), with a `ReplicaDoor` per
connection running the handshake (handshake.py) and then delivering consensus messages. A
connection that sends anything malformed is closed.

A link is kept alive: every `ping_interval` the bus sends a PING on each link (header only,
never delivered to a replica), and closes a link on which no byte has arrived for
`silence_timeout` (counted in ping intervals, so a stall of this node's own loop counts once),
so the dial loop redials it at once. Without it a connection that survived a network cut
would stay silent after the heal until TCP's backed-off retransmission timer fired (seconds;
docs/cluster.md, N-c).

Sending never blocks the caller: a message goes straight to the socket while it drains, else
into the peer's queue of at most `queue_capacity` messages; beyond that (or while the peer is
unreachable) it is dropped — Viewstamped Replication retransmits what matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from pyggy.consensus.message import HEADER_SIZE, Command, DecodeError, Message, decode, encode
from pyggy.transport import Connection, Limits, Listener
from pyggy.transport.door import Reply

from .handshake import FRAME_SIZE, Acceptor, Dialer, HandshakeError
from .roster import Node

log = logging.getLogger(__name__)
_SIZE = struct.Struct("<I")
_CLIENT_ONLY = frozenset({Command.REPLY, Command.EVICTION})  # never on the replica plane


class BusError(ValueError):
    """A peer broke the replica protocol (its connection closes)."""


@dataclass(slots=True)
class BusSettings:
    cluster: bytes
    me: int
    nodes: tuple[Node, ...]
    key: bytes = b""  # the shared secret; empty without [cluster.auth]
    queue_capacity: int = 256
    reconnect_period: float = 1.0
    message_size_max: int = 64 * 1024 * 1024
    handshake_timeout: float = 10.0
    ping_interval: float = 0.5  # [cluster] commit_broadcast_interval (cluster/runtime.py)
    silence_timeout: float = 2.5  # heartbeat_timeout / 2: a link silent this long is closed
    server_tls: ssl.SSLContext | None = None
    client_tls: ssl.SSLContext | None = None


class Peer:
    """The link to one other replica: its connection (once authenticated) and its queue."""

    __slots__ = ("id", "conn", "queue", "flusher", "dropped", "sent", "connects", "heard_at",
                 "silent", "silences", "wake", "heard_before")

    def __init__(self, replica: int) -> None:
        self.id = replica
        self.conn: Connection | None = None
        self.queue: deque[bytes] = deque()
        self.flusher: asyncio.Task[None] | None = None
        self.dropped = self.sent = self.connects = 0
        self.heard_at = 0.0  # the link's last read time when the keepalive last looked
        self.silent = 0  # keepalive ticks in a row with nothing read
        self.silences = 0  # links closed for silence
        self.wake = asyncio.Event()  # the link was lost: the dial loop redials at once
        self.heard_before = -math.inf  # the last read on its earlier links (`Bus.heard`)

    def retire(self, conn: Connection) -> None:
        self.heard_before = max(self.heard_before, conn.last_active)


class ReplicaDoor:
    """The protocol side of one replica connection (transport.Door)."""

    bad_input: tuple[type[Exception], ...] = (BusError, HandshakeError, DecodeError)
    requires_auth = True

    def __init__(self, bus: Bus, dial_to: int | None = None) -> None:
        self.bus = bus
        s = bus.settings
        self.dialer = Dialer(s.key, s.cluster, s.me, dial_to) if dial_to is not None else None
        self.acceptor = None if dial_to is not None else Acceptor(s.key, s.cluster, s.me,
                                                                  len(s.nodes))
        self.peer: int | None = None  # set once authenticated
        self.conn: Connection | None = None
        # handshake frames still to come (acceptor: HELLO, FINISH; dialer: CHALLENGE), each
        # bounded by FRAME_SIZE; counted as they are framed, before `handle` runs
        self.handshake_frames = 1 if dial_to is not None else 2

    def frame_length(self, view: memoryview) -> int:
        if len(view) < HEADER_SIZE:
            return 0
        size: int = _SIZE.unpack_from(view, 48)[0]
        # The dialer writes its queued messages right behind FINISH, so they may arrive in the
        # same read and be framed before FINISH is handled: past the handshake frames the
        # message limit applies, and the worker verifies FINISH before it handles them (a
        # failed one closes the connection, dropping them).
        handshake = self.peer is None and self.handshake_frames > 0
        limit = FRAME_SIZE if handshake else self.bus.settings.message_size_max
        if not HEADER_SIZE <= size <= limit:
            raise BusError(f"frame size {size} out of range")
        if len(view) < size:
            return 0
        if handshake:
            self.handshake_frames -= 1
        return size

    def declared_length(self, view: memoryview) -> int:
        return _SIZE.unpack_from(view, 48)[0] if len(view) >= 52 else 0

    def opened(self, conn: Connection) -> None:
        self.conn = conn
        if self.dialer is not None:
            # a connection is opened once its transport is set (transport/connection.py)
            cast(asyncio.Transport, conn.transport).write(self.dialer.hello())

    def closed(self) -> None:
        if self.peer is not None:
            self.bus._lost(self.peer, self.conn)

    def is_authenticated(self) -> bool:
        return self.peer is not None

    async def handle(self, frame: bytearray) -> Reply:
        if self.peer is not None:
            m = decode(frame, self.bus.settings.message_size_max)
            if m.command in _CLIENT_ONLY or m.replica != self.peer or \
                    m.cluster != self.bus.settings.cluster:
                raise BusError(f"{Command(m.command).name} from replica {m.replica} on the "
                               f"connection of replica {self.peer}")
            if m.command != Command.PING:
                self.bus.deliver(m)
            return None, False
        if self.dialer is not None:
            conn = cast(Connection, self.conn)  # opened() ran before any frame
            finish = self.dialer.on_challenge(frame)
            transport = cast(asyncio.Transport, conn.transport)
            if transport.is_closing() or conn.closed:  # the acceptor gave up meanwhile
                return None, True
            try:
                transport.write(finish)  # before _established: FINISH precedes any message
            except RuntimeError:  # uvloop: closed under us without is_closing() saying so
                return None, True
            self.peer = self.dialer.peer
            self.bus._established(self.peer, conn)
            return None, False
        assert self.acceptor is not None
        if self.acceptor.hello is None:
            answer, src = self.acceptor.on_hello(frame)
            if src is None:
                self.bus.refusals += 1
                log.warning("replica bus: refused a connection from %s: %s",
                            cast(Connection, self.conn).peer, "handshake refused")
                return [answer], True
            return [answer], False
        self.peer = self.acceptor.on_finish(frame)
        self.bus._established(self.peer, cast(Connection, self.conn))
        return None, False


class Bus:
    """`deliver(message)` is called for every message from an authenticated peer."""

    def __init__(self, settings: BusSettings, deliver: Callable[[Message], None]) -> None:
        self.settings = settings
        self.deliver = deliver
        self.peers = {n.replica_id: Peer(n.replica_id) for n in settings.nodes
                      if n.replica_id != settings.me}
        limits = Limits(max_connections=4 * len(settings.nodes) + 4,
                        frame_read_timeout=settings.handshake_timeout,
                        auth_timeout=settings.handshake_timeout,
                        max_queued_bytes=2 * settings.message_size_max)
        if not limits.timed:  # reads note their time only with a timeout on (the keepalive's)
            raise ValueError("the replica bus needs a handshake_timeout")
        self.listener = Listener("replica", lambda: ReplicaDoor(self), limits,
                                 settings.server_tls)
        self.outbound = Listener("replica-out", lambda: ReplicaDoor(self), limits)
        self.tasks: list[asyncio.Task[None]] = []
        self.refusals = 0
        self.closing = False
        self.connected = asyncio.Event()  # set whenever a peer link comes up (tests wait on it)
        self.ping = encode(Message(Command.PING, cluster=settings.cluster, replica=settings.me))

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str, port: int) -> int:
        """Listen on the replica port and dial every higher id; returns the bound port."""
        server = await self.listener.start(host, port)
        self.outbound.loop = asyncio.get_running_loop()
        for n in self.settings.nodes:
            if n.replica_id > self.settings.me:
                self.tasks.append(asyncio.get_running_loop().create_task(self._dial_loop(n)))
        self.tasks.append(asyncio.get_running_loop().create_task(self._keepalive()))
        bound: int = server.sockets[0].getsockname()[1]  # (host, port, ...) of the socket
        return bound

    async def close(self) -> None:
        self.closing = True
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for p in self.peers.values():
            if p.flusher is not None:
                p.flusher.cancel()
        self.listener.close()
        self.outbound.close()
        await self.listener.wait_closed()

    async def _dial_loop(self, node: Node) -> None:
        loop = asyncio.get_running_loop()
        peer = self.peers[node.replica_id]
        while not self.closing:
            if peer.conn is None:
                try:
                    await asyncio.wait_for(loop.create_connection(
                        lambda: Connection(self.outbound, ReplicaDoor(self, node.replica_id)),
                        node.ip, node.tcp_replica, ssl=self.settings.client_tls,
                        server_hostname=node.ip if self.settings.client_tls else None),
                        self.settings.reconnect_period)
                except TimeoutError:  # no answer (a cut link): that took a period already
                    continue
                except (OSError, ssl.SSLError):
                    pass
            peer.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(peer.wake.wait(), self.settings.reconnect_period)

    async def _keepalive(self) -> None:
        """Ping every link each `ping_interval`; close one silent for `silence_timeout`."""
        s = self.settings
        limit = round(s.silence_timeout / s.ping_interval) + 1  # ticks: silent for limit - 1
        while not self.closing:
            await asyncio.sleep(s.ping_interval)
            for peer in self.peers.values():
                conn = peer.conn
                if conn is None or conn.closed:
                    continue
                if conn.last_active != peer.heard_at:  # a read since the last tick
                    peer.heard_at, peer.silent = conn.last_active, 0
                else:
                    peer.silent += 1
                    if peer.silent >= limit:
                        self._silenced(peer, conn)
                        continue
                if conn.drain is None and not peer.queue:  # else it is not reading anyway
                    cast(asyncio.Transport, conn.transport).write(self.ping)

    def _silenced(self, peer: Peer, conn: Connection) -> None:
        log.warning("replica bus: nothing from replica %d for %g s: closing the link to redial",
                    peer.id, self.settings.silence_timeout)
        peer.silences += 1
        peer.retire(conn)
        peer.conn = None
        conn.abort()  # a dead link's unsent bytes would hold a graceful close for minutes
        peer.wake.set()

    # -- links -----------------------------------------------------------------------------
    def _established(self, replica: int, conn: Connection) -> None:
        peer = self.peers.get(replica)
        if peer is None:
            conn.close()
            return
        old, peer.conn = peer.conn, conn
        if old is not None and old is not conn:
            peer.retire(old)
            old.close()  # the peer restarted: its newest connection wins
        peer.connects += 1
        peer.heard_at, peer.silent = conn.last_active, 0
        log.info("replica bus: connected to replica %d (%s)", replica, conn.peer)
        self.connected.set()
        self._flush(peer)

    def _lost(self, replica: int, conn: Connection | None) -> None:
        peer = self.peers.get(replica)
        if peer is not None and peer.conn is conn:
            if conn is not None:
                peer.retire(conn)
            peer.conn = None
            peer.wake.set()
            if not self.closing:
                log.info("replica bus: lost replica %d", replica)

    def heard(self, within: float) -> list[int]:
        """Replica ids from which something arrived in the last `within` s (on any link:
        one being redialled still counts what its predecessor read)."""
        since = asyncio.get_running_loop().time() - within
        return sorted(p.id for p in self.peers.values() if max(
            p.heard_before, -math.inf if p.conn is None else p.conn.last_active) >= since)

    def linked(self) -> list[int]:
        """Replica ids with an authenticated connection now."""
        return sorted(p.id for p in self.peers.values() if p.conn is not None)

    # -- sending ---------------------------------------------------------------------------
    def send(self, replica: int, m: Message) -> None:
        """Queue `m` for `replica` (dropped when its queue is full)."""
        peer = self.peers.get(replica)
        if peer is None:
            return
        raw = encode(m)
        conn = peer.conn
        if conn is not None and conn.drain is None and not peer.queue:
            conn.transport.write(raw)  # type: ignore[union-attr]
            peer.sent += 1
            return
        if len(peer.queue) >= self.settings.queue_capacity:
            peer.dropped += 1
            return
        peer.queue.append(raw)
        self._flush(peer)

    def _flush(self, peer: Peer) -> None:
        conn = peer.conn
        if conn is None or not peer.queue:
            return
        if conn.drain is None:
            while peer.queue:
                conn.transport.write(peer.queue.popleft())  # type: ignore[union-attr]
                peer.sent += 1
        elif peer.flusher is None or peer.flusher.done():
            peer.flusher = asyncio.get_running_loop().create_task(self._after_drain(peer))

    async def _after_drain(self, peer: Peer) -> None:
        conn = peer.conn
        while conn is not None and conn.drain is not None and not conn.closed:
            await conn.drain
        self._flush(peer)
