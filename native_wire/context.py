"""What a handler sees: the engine, the node's identity, and the calling session."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pyggy.core.engine import LogEngine
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.lean import lean
from pyggy.core.logins import Attempt, Logins, LoginState, host_of
from pyggy.core.model import User
from pyggy.transport.door import RequestMetrics

if TYPE_CHECKING:
    from pyggy.native_wire.table import Command

# what a handler answers: a body, or buffers written out as they are
Answer = bytes | list[Any]

# With shard processes (pyggy/shards/handoff.py): [command code, shard the request's data was
# forwarded to (-1: none)] of the request being answered; the dispatcher fills in the code,
# the shard runtime the shard. A list, so that a copied context still writes into it.
ROUTE: ContextVar[list[int] | None] = ContextVar("route", default=None)


@dataclass(slots=True)
class Session:
    """One client connection. `client_id` is the server's u32 id (also the group member id)."""

    client_id: int
    address: str
    classic: bool = False
    transport: int = 1  # 1 TCP
    user: User | None = None
    session_id: int = 0  # VSR session (fence epoch) handed out at login
    vsr_client: int = 0
    last_seen: float = 0.0  # monotonic time of the last request (every request is a heartbeat)
    # classic group polls without a partition: round-robin cursor per (stream, topic, group)
    group_cursors: dict[tuple[int, int, int], int] = field(default_factory=dict)
    logins: LoginState = field(default_factory=LoginState)  # failed logins on this connection
    # the client id of the coordinator session this data connection is attached to
    # (ATTACH_CONSUMER_SESSION, handlers/routing.py): its group membership is shared
    attached: int | None = None

    @property
    def member_id(self) -> int:
        """The identity of consumer-group membership checks."""
        return self.client_id if self.attached is None else self.attached

    @property
    def host(self) -> str:
        return host_of(self.address)

    def attempt(self) -> Attempt:
        """A login attempt of this connection (for `core.logins.Logins`)."""
        return Attempt(self.host, "iggy", self.logins)

    def require_user(self) -> User:
        if self.user is None:
            raise IggyError(ErrorCode.UNAUTHENTICATED, "unauthenticated")
        return self.user


@lean
class NodeInfo:
    """This node, as GET_CLUSTER_METADATA, GET_STATS and the login reply describe it."""

    tcp_host: str = "127.0.0.1"
    tcp_port: int = 8090
    http_port: int = 0
    cluster_name: str = "pyggy"
    node_name: str = "pyggy-0"
    version: str = "0.9.0"
    max_tokens_per_user: int = 100


class SnapshotSource(Protocol):
    """What GET_SNAPSHOT_FILE (code 11) reads: the server's diagnostics as a zip archive
    (pyggy/diagnostics.py). Raises `IggyError` (FEATURE_UNAVAILABLE for a compression it cannot
    write, SNAPSHOT_FILE_COMPLETION_FAILED while another snapshot is collected or on failure)."""

    async def snapshot(self, sections: Sequence[str], compression: str,
                       stats: Mapping[str, Any]) -> bytes:
        """`sections` (codec/snapshot.py names) zipped with `compression`; `stats` are the
        values GET_STATS reports, for the resource_usage section."""
        ...


class Handoff(Protocol):
    """Moves a native connection to the shard process owning the partitions it uses
    (pyggy/shards/handoff.py, docs/sharding.md)."""

    def observe(self, door: Any, code: int, peer: int) -> None:
        """`door`'s connection answered command `code`, whose data went to shard `peer`
        (-1: this one, or nowhere)."""
        ...


class RequestSpan(Protocol):
    """The span of one request (pyggy/telemetry.py `RequestSpan`): what handlers add to it."""

    def on_send(self, stream: str, topic: str, partition: int, offset: int, count: int,
                batch: bytes | bytearray | memoryview) -> None:
        """SendMessages appended `count` messages at `offset`."""
        ...

    def on_poll(self, stream: str, topic: str, partition: int, offset: int, count: int,
                size: int) -> None:
        """PollMessages read `count` messages (`size` bytes) from `offset`."""
        ...


class CommandTelemetry(Protocol):
    """What the native door asks of telemetry (pyggy/telemetry.py `Telemetry`, when on)."""

    async def native_command(self, ctx: Context, cmd: Command, body: memoryview,
                             call: Callable[[Context, Command, memoryview], Awaitable[Answer]],
                             ) -> Answer:
        """`call(ctx, cmd, body)` with a span around it (set as `ctx.span`)."""
        ...


@lean
class NativeServer:
    """State shared by all native connections: the engine, the node, the live sessions."""

    engine: LogEngine
    node: NodeInfo = field(default_factory=NodeInfo)
    sessions: dict[int, Session] = field(default_factory=dict)
    telemetry: CommandTelemetry | None = None  # when [telemetry] is on
    transports: dict[int, asyncio.BaseTransport] = field(default_factory=dict)
    # shared with the Kafka door (server.py); None makes one in __post_init__, so every reader
    # sees a `Logins` (the ignore: a dataclass field cannot say "optional argument only")
    logins: Logins = None  # type: ignore[assignment]
    snapshots: SnapshotSource | None = None  # diagnostics for GET_SNAPSHOT_FILE (server.py)
    metrics: RequestMetrics | None = None  # pyggy.metrics.Metrics when /metrics is served
    handoff: Handoff | None = None  # with shard processes (pyggy/shards/handoff.py)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        if self.logins is None:
            self.logins = Logins(self.engine)

    def number_sessions(self, first: int, step: int) -> None:
        """Client ids first, first + step, …: the shard processes of one server hand out
        disjoint ids (a group member is known by its id on every shard, docs/sharding.md)."""
        self._ids = itertools.count(first, step)

    def open_session(self, address: str) -> Session:
        s = Session(next(self._ids), address)
        self.sessions[s.client_id] = s
        return s

    def adopt_session(self, s: Session) -> None:
        """A session another shard process handed over with its connection (its id kept)."""
        self.sessions[s.client_id] = s

    def release_session(self, s: Session) -> None:
        """Forget a session handed to another shard process: its group memberships stay."""
        self.sessions.pop(s.client_id, None)
        self.transports.pop(s.client_id, None)

    def close_session(self, s: Session) -> None:
        self.release_session(s)
        self.engine.consumers.member_gone(s.client_id)

    def reap_stale(self, now: float, interval: float) -> list[Session]:
        """Close sessions silent for 1.2 × interval that hold a consumer-group membership."""
        members = self.engine.consumers.members()
        stale = [s for s in self.sessions.values()
                 if s.client_id in members and now - s.last_seen > 1.2 * interval]
        for s in stale:
            transport = self.transports.get(s.client_id)
            if transport is not None:
                transport.close()
            self.close_session(s)
        return stale

    def close_all(self) -> None:
        """Close every client connection (shutdown)."""
        for transport in list(self.transports.values()):
            transport.close()

    def next_session_id(self) -> int:
        return next(self._ids)


@dataclass(slots=True)
class Context:
    """What a native handler sees: the server and its session."""

    server: NativeServer
    session: Session
    span: RequestSpan | None = None  # while telemetry is on

    @property
    def engine(self) -> LogEngine:
        return self.server.engine

    @property
    def classic(self) -> bool:
        return self.session.classic

    @property
    def user(self) -> User:
        return self.session.require_user()
