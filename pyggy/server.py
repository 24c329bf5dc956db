"""PLACEHOLDER server assembly, to be replaced by the real one.

Contract used by `pyggy.cli` and the test fixtures (keep it in the replacement):
- `run(config, root_credentials)` blocks until SIGTERM/SIGINT, then returns (exit code 0);
  the CLI has already installed the uvloop event loop policy.
- one INFO log line per listener: "tcp listening on HOST:PORT", "kafka listening on HOST:PORT"
  (the fixtures wait for "tcp listening on").
This placeholder binds the listeners and closes every connection it accepts.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from pyggy.config import ServerConfig, split_address

log = logging.getLogger(__name__)


class _CloseAtOnce(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


async def _listen(name: str, address: str) -> asyncio.Server:
    host, port = split_address(address)
    server = await asyncio.get_running_loop().create_server(_CloseAtOnce, host, port)
    bound = server.sockets[0].getsockname()
    log.info("%s listening on %s:%d", name, bound[0], bound[1])
    return server


async def serve(config: ServerConfig, root_credentials: tuple[str, str] | None) -> None:
    """Bind the enabled listeners and wait for SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if config.http.enabled:
        log.warning("[http] enabled, but the HTTP REST transport is not implemented yet")
    servers = []
    if config.tcp.enabled:
        servers.append(await _listen("tcp", config.tcp.address))
    if config.kafka.enabled:
        servers.append(await _listen("kafka", config.kafka.address))
    await stop.wait()
    log.info("shutting down")
    for server in servers:
        server.close()
    for server in servers:
        await server.wait_closed()
    log.info("stopped")


def run(config: ServerConfig, root_credentials: tuple[str, str] | None) -> None:
    """Run the server until a shutdown signal arrives."""
    asyncio.run(serve(config, root_credentials))
