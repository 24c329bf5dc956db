"""Helpers for the end-to-end tests that drive a pyggy server with the official apache-iggy 0.9.0
SDK (unmodified), over TCP, speaking the native Iggy 0.11 (VSR) protocol.

Everything here goes through the public SDK API. Personal access tokens cannot be created from
the Python SDK's typed API, so `create_pat`/`list_pats`/`delete_pat` use the SDK's raw escape
hatch `IggyClient.send_binary_request(code, payload)` (codes 41/42/43 of Iggy's commands
page); the SDK still does the framing, and strips the result section of the reply.

The SDK surfaces every server error as `RuntimeError(<Display text of the IggyError>)`; the
texts the tests rely on are collected below.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from apache_iggy import (
    AutoLogin,
    Consumer,
    IggyClient,
    IggyConsumer,
    PollingStrategy,
    ReceiveMessage,
    TcpConfig,
    TcpReconnectionConfig,
)

from pyggy.testing import PyggyServer

T = TypeVar("T")

ROOT_USERNAME = "iggy"
ROOT_PASSWORD = "iggy"

# RuntimeError texts the 0.9.0 SDK shows for server error codes / login evictions.
UNAUTHENTICATED = "Unauthenticated"  # 40, and Eviction 11 (user inactive)
DISCONNECTED = "Disconnected"  # 40 to a client whose reconnection is off (see tcp_config)
UNAUTHORIZED = "Unauthorized"  # 41
INVALID_CREDENTIALS = "Invalid credentials"  # Eviction 9 (and 42)
INVALID_PAT = "Invalid personal access token"  # Eviction 10 (and 53)

# Personal access tokens and GET_CONSUMER_OFFSET (not exposed by the typed Python API).
GET_PATS, CREATE_PAT, DELETE_PAT = 41, 42, 43
GET_CONSUMER_OFFSET = 120
CONSUMER, CONSUMER_GROUP = 1, 2


def now_us() -> int:
    """Wall clock in µs since the Unix epoch (the server runs on the same host)."""
    return time.time_ns() // 1000


def tcp_config(server: PyggyServer, auto_login: AutoLogin | None = None,
               reconnect: bool = True) -> TcpConfig:
    """TCP config for `server`. Reconnection stays on (as by default) but quick and finite, so
    a test never waits seconds for a redial nor hangs on a dead server; `reconnect=False`
    turns it off (a refused login then fails at once instead of being retried).

    The policy changes the text the SDK shows for a status 40 reply: with reconnection on, the
    SDK re-establishes the session (replaying its credentials, if it has any) and reports
    "Unauthenticated" without them; with it off, it reports "Disconnected". The server's reply
    is the same: status 40.
    """
    if reconnect:
        reconnection = TcpReconnectionConfig(
            enabled=True, max_retries=3, interval=timedelta(milliseconds=50),
            reestablish_after=timedelta(0))
    else:
        reconnection = TcpReconnectionConfig(enabled=False)
    return TcpConfig(
        server_address=server.tcp_address,
        auto_login=auto_login or AutoLogin.disabled(),
        reconnection=reconnection,
    )


async def connect_anonymous(server: PyggyServer, reconnect: bool = True) -> IggyClient:
    """A connected client that has not logged in."""
    client = IggyClient(tcp_config(server, reconnect=reconnect))
    await client.connect()
    return client


async def connect(server: PyggyServer, username: str = ROOT_USERNAME,
                  password: str = ROOT_PASSWORD, reconnect: bool = True) -> IggyClient:
    """A client logged in with a password (auto-login on connect)."""
    client = IggyClient(tcp_config(server, AutoLogin.username_password(username, password),
                                   reconnect))
    await client.connect()
    return client


async def connect_with_token(server: PyggyServer, token: str,
                             reconnect: bool = True) -> IggyClient:
    """A client logged in with a personal access token (auto-login on connect)."""
    client = IggyClient(tcp_config(server, AutoLogin.personal_access_token(token), reconnect))
    await client.connect()
    return client


def _name(value: str) -> bytes:
    raw = value.encode()
    return bytes((len(raw),)) + raw


async def create_pat(client: IggyClient, name: str, expiry_us: int = 0) -> str:
    """CREATE_PERSONAL_ACCESS_TOKEN (42): `Name name, u64 expiry µs` → raw token as a Name."""
    reply = await client.send_binary_request(CREATE_PAT, _name(name) + struct.pack("<Q", expiry_us))
    assert len(reply) == 1 + reply[0], f"token reply is not one Name: {reply!r}"
    return reply[1:].decode()


async def list_pats(client: IggyClient) -> list[tuple[str, int]]:
    """GET_PERSONAL_ACCESS_TOKENS (41): `{Name name, u64 expiry_at µs}`* → [(name, expiry)]."""
    reply = await client.send_binary_request(GET_PATS, b"")
    out, pos = [], 0
    while pos < len(reply):
        n = reply[pos]
        name = reply[pos + 1:pos + 1 + n].decode()
        (expiry,) = struct.unpack_from("<Q", reply, pos + 1 + n)
        out.append((name, expiry))
        pos += 1 + n + 8
    return out


async def delete_pat(client: IggyClient, name: str) -> None:
    """DELETE_PERSONAL_ACCESS_TOKEN (43): `Name name` → empty."""
    assert await client.send_binary_request(DELETE_PAT, _name(name)) == b""


def _identifier(value: int | str) -> bytes:
    if isinstance(value, int):
        return struct.pack("<BBI", 1, 4, value)
    return bytes((2,)) + _name(value)


async def get_consumer_offset(client: IggyClient, kind: int, consumer: int | str,
                              stream: int | str, topic: int | str,
                              partition_id: int | None) -> tuple[int, int, int] | None:
    """GET_CONSUMER_OFFSET (120): the server's (partition id, current offset, stored offset),
    or None when nothing is stored. `kind`: CONSUMER or CONSUMER_GROUP."""
    partition = struct.pack("<BI", 0, 0) if partition_id is None else \
        struct.pack("<BI", 1, partition_id)
    body = (bytes((kind,)) + _identifier(consumer) + _identifier(stream) + _identifier(topic)
            + partition)
    reply = await client.send_binary_request(GET_CONSUMER_OFFSET, body)
    return struct.unpack("<IQQ", reply) if reply else None


async def poll(client: IggyClient, stream: str | int, topic: str | int,
               strategy: PollingStrategy | None = None, *, count: int = 100,
               partition_id: int | None = 0, consumer: Consumer | None = None,
               auto_commit: bool = False) -> list[ReceiveMessage]:
    """`poll_messages` with test defaults: regular consumer "reader", partition 0, First."""
    return await client.poll_messages(
        stream, topic, consumer=consumer or Consumer.Single("reader"),
        polling_strategy=strategy or PollingStrategy.First(), count=count,
        auto_commit=auto_commit, partition_id=partition_id,
    )


def payloads(messages: list[ReceiveMessage]) -> list[bytes]:
    return [m.payload() for m in messages]


def offsets(messages: list[ReceiveMessage]) -> list[int]:
    return [m.offset() for m in messages]


async def take(consumer: IggyConsumer, n: int, timeout: float = 10.0) -> list[ReceiveMessage]:
    """The next `n` messages of a high-level consumer's `iter_messages()` (fails on timeout)."""
    out: list[ReceiveMessage] = []

    async def run() -> None:
        async for message in consumer.iter_messages():
            out.append(message)
            if len(out) >= n:
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        raise AssertionError(f"got {len(out)} of {n} messages within {timeout} s: "
                             f"{[(m.partition_id(), m.offset()) for m in out]}") from None
    return out


async def outcomes(calls: dict[str, Callable[[], Awaitable[Any]]]) -> dict[str, str]:
    """Run each call in turn: name → "ok", or the text of the RuntimeError it raised."""
    out = {}
    for name, call in calls.items():
        try:
            await call()
            out[name] = "ok"
        except RuntimeError as e:
            out[name] = str(e)
    return out


async def wait_until(probe: Callable[[], Awaitable[T]], timeout: float = 5.0,
                     what: str = "condition") -> T:
    """Re-run `probe` until it returns something truthy; return that (fails on timeout)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")
        await asyncio.sleep(0.02)
