"""The aiohttp application: the route table bound to handlers, authentication, Iggy's JSON
errors, CORS, `/metrics`, `/openapi.json` and the console's static files."""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from pyggy import __version__
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.http_api.context import Call, HttpServer
from pyggy.http_api.errors import error_response
from pyggy.http_api.handlers import Answer, Created
from pyggy.http_api.openapi import document
from pyggy.http_api.table import ROUTES, Route
from pyggy.transport.connection import DOOR

log = logging.getLogger(__name__)
CONSOLE = Path(__file__).parent / "console"
_REFUSALS = frozenset({ErrorCode.UNAUTHORIZED, ErrorCode.ACCESS_TOKEN_MISSING,
                       ErrorCode.INVALID_ACCESS_TOKEN})


async def authenticate(call: Call) -> None:
    """Bearer JWT (from a login) or, for scrapers and scripts, a bearer personal access token
    or HTTP Basic (RFC 7617) user and password; the last two are logins, counted and slowed
    down on failure like any other (core/logins.py)."""
    header = call.request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    server = call.server
    if scheme.lower() == "basic" and token:
        try:
            username, sep, password = base64.b64decode(token, validate=True).decode().partition(
                ":")
        except (binascii.Error, ValueError):
            sep = ""
        if not sep:
            raise IggyError(ErrorCode.INVALID_CREDENTIALS, "malformed Basic credentials")
        call.user_ = await server.logins.password(username, password, call.attempt())
        return
    if scheme.lower() != "bearer" or not token:
        raise IggyError(ErrorCode.ACCESS_TOKEN_MISSING, "missing Authorization: Bearer token")
    if token.count(".") == 2:  # a JWT
        call.token = server.tokens.verify(token)
        user = server.engine.identity.get_user(call.token[0])
        if user is None or user.status != 1 or user.created_at != call.token[3]:
            raise IggyError(ErrorCode.INVALID_ACCESS_TOKEN, "the token's user is gone or inactive")
    else:
        user = await server.logins.token(token, call.attempt())
    call.user_ = user


def _render(result: Answer) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if result is None:
        return web.Response(status=204)
    if isinstance(result, Created):
        if result.data is None:
            return web.Response(status=201)
        return web.json_response(result.data, status=201)
    return web.json_response(result)


def _too_large(limit: int) -> web.Response:
    return web.json_response({"id": 413, "code": "payload_too_large",
                              "reason": f"request body over {limit} bytes", "field": None},
                             status=413)


def _bind(server: HttpServer,
          route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    metrics = server.metrics

    async def handle(request: web.Request) -> web.StreamResponse:
        start = time.perf_counter()
        DOOR.set("http")  # aiohttp's task of this connection: forwarded requests' door
        call = Call(server, request)
        error = ""
        async def run() -> Answer:
            if not route.pre_auth:
                await authenticate(call)
            return await route.handler(call)

        try:
            if server.telemetry is not None:  # a span named http.<route> (pyggy/telemetry.py)
                response = _render(await server.telemetry.http_request(call, route, run))
            else:
                response = _render(await run())
        except IggyError as e:
            error = ErrorCode(e.code).name.lower() if e.code in ErrorCode._value2member_map_ \
                else "error"
            if e.code in _REFUSALS:  # logged once per burst (core/logins.py Audit)
                server.logins.audit.refused(call.user_.username if call.user_ else None,
                                            call.attempt().host, "http", route.name)
            response = error_response(e)
        except web.HTTPRequestEntityTooLarge:
            error = "payload_too_large"
            response = _too_large(server.config.max_request_size)
        except Exception:
            log.exception("http %s %s failed", route.method, route.path)
            error = "error"
            response = web.json_response({"id": 1, "code": "error", "reason": "internal error",
                                          "field": None}, status=500)
        if metrics is not None:
            metrics.request("http", route.name, time.perf_counter() - start, error,
                            request.content_length or 0, response.content_length or 0)
        return response

    return handle


def _cors_headers(server: HttpServer, origin: str) -> dict[str, str]:
    cors = server.config.cors
    allowed = cors.allowed_origins
    if not cors.enabled or not origin or ("*" not in allowed and origin not in allowed):
        return {}
    out = {"Access-Control-Allow-Origin": origin if cors.allow_credentials or "*" not in allowed
           else "*",
           "Access-Control-Allow-Methods": ", ".join(cors.allowed_methods),
           "Access-Control-Allow-Headers": ", ".join(cors.allowed_headers),
           "Vary": "Origin"}
    if cors.exposed_headers:
        out["Access-Control-Expose-Headers"] = ", ".join(cors.exposed_headers)
    if cors.allow_credentials:
        out["Access-Control-Allow-Credentials"] = "true"
    return out


def _cors(server: HttpServer) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        headers = _cors_headers(server, request.headers.get("Origin", ""))
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response: web.StreamResponse = web.Response(status=204 if headers else 403)
            if headers and server.config.cors.allow_private_network and \
                    "Access-Control-Request-Private-Network" in request.headers:
                headers["Access-Control-Allow-Private-Network"] = "true"
        else:
            response = await handler(request)
        response.headers.update(headers)
        return response

    return middleware


def build_app(server: HttpServer) -> web.Application:
    config = server.config
    app = web.Application(client_max_size=config.max_request_size, middlewares=[_cors(server)])
    for route in ROUTES:
        app.router.add_route(route.method, route.path, _bind(server, route))
    spec = document(__version__)

    async def openapi(_: web.Request) -> web.StreamResponse:
        return web.json_response(spec)

    app.router.add_get("/openapi.json", openapi)
    if config.metrics.enabled and server.metrics is not None:
        app.router.add_get(config.metrics.endpoint, _bind(server, Route(
            "GET", config.metrics.endpoint, server.metrics.handler, "metrics",
            "Prometheus metrics")))
    if config.web_ui:
        async def to_console(_: web.Request) -> web.StreamResponse:
            raise web.HTTPFound("/console/")

        async def index(_: web.Request) -> web.StreamResponse:
            return web.FileResponse(CONSOLE / "index.html")

        app.router.add_get("/", to_console)
        app.router.add_get("/console", to_console)
        app.router.add_get("/console/", index)
        app.router.add_static("/console/", CONSOLE)
    return app


async def start(server: HttpServer, host: str, port: int,
                tls: ssl.SSLContext | None) -> tuple[web.AppRunner, int]:
    """Serve on (host, port); returns the runner (for `cleanup()`) and the bound port."""
    runner = web.AppRunner(build_app(server), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=tls, reuse_address=True)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, bound
