"""What an HTTP handler sees: the door's shared state and the current call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from pyggy.config import HttpConfig
from pyggy.core.engine import LogEngine
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.logins import Attempt, Logins, LoginState, host_of
from pyggy.core.model import User
from pyggy.http_api.body import Fields, identifier, parse_json
from pyggy.http_api.tokens import Tokens
from pyggy.native_wire.context import NativeServer

if TYPE_CHECKING:  # wired by pyggy/server.py; these import the HTTP door back
    from pyggy.kafka_wire.context import KafkaServer
    from pyggy.metrics import Metrics
    from pyggy.telemetry import RequestSpan, Telemetry


@dataclass(slots=True)
class HttpServer:
    """State shared by all HTTP requests. `native` gives the TCP door's sessions and node
    (for /clients, /stats, /cluster/metadata); `metrics` is pyggy.metrics.Metrics or None."""

    engine: LogEngine
    native: NativeServer
    config: HttpConfig
    tokens: Tokens
    logins: Logins
    metrics: Metrics | None = None
    telemetry: Telemetry | None = None  # when [telemetry] is on
    kafka: KafkaServer | None = None  # its groups' lag and members


@dataclass(slots=True)
class Call:
    server: HttpServer
    request: web.Request
    user_: User | None = None
    token: tuple[int, str, float, int] | None = None  # Tokens.verify of a JWT login
    _body: Fields | None = None
    span: RequestSpan | None = None  # while telemetry is on

    @property
    def engine(self) -> LogEngine:
        return self.server.engine

    @property
    def user(self) -> User:
        if self.user_ is None:
            raise IggyError(ErrorCode.UNAUTHENTICATED, "unauthenticated")
        return self.user_

    def ident(self, name: str) -> int | str:
        return identifier(self.request.match_info[name], name)

    def number(self, name: str) -> int:
        return Fields.from_query(self.request.match_info).integer(name, hi=0xFFFF_FFFF)

    @property
    def query(self) -> Fields:
        return Fields.from_query(self.request.query)

    async def body(self) -> Fields:
        if self._body is None:
            self._body = parse_json(await self.request.read())
        return self._body

    def attempt(self) -> Attempt:
        return Attempt(host_of(self.address), "http", LoginState())

    @property
    def address(self) -> str:
        peer = self.request.transport.get_extra_info("peername") if self.request.transport \
            else None
        return f"{peer[0]}:{peer[1]}" if peer else "unknown:0"
