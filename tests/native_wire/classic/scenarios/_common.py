"""Shared by the scenario scripts: run under the apache-iggy 0.8.0 venv's python, stdlib + SDK.

A scenario is `python SCRIPT HOST:PORT [ARGS...]`; it prints one JSON object on stdout. Each
step stores its result (or ``{"error": "..."}``) under its own key, so a failing step does not
hide the others and the pytest side asserts on exact values.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from apache_iggy import IggyClient


async def login(address: str, username: str = "iggy", password: str = "iggy") -> IggyClient:
    client = IggyClient(address)
    await client.connect()
    await client.login_user(username, password)
    return client


def message(m: Any) -> dict[str, Any]:
    """A ReceiveMessage as JSON (the payload as hex, so any bytes survive)."""
    return {
        "offset": m.offset(),
        "id": m.id(),
        "payload": m.payload().hex(),
        "timestamp": m.timestamp(),
        "partition_id": m.partition_id(),
        "length": m.length(),
        "checksum": m.checksum(),
    }


def messages(ms: list[Any]) -> list[dict[str, Any]]:
    return [message(m) for m in ms]


class Results(dict):
    """Step name → result; `await results.step(name, fn)` records errors instead of raising."""

    async def step(self, name: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        try:
            value = await fn()
        except Exception as e:  # recorded for the test to assert on
            self[name] = {"error": f"{type(e).__name__}: {e}"}
            return None
        self[name] = value
        return value


def run(main: Callable[[str, list[str]], Awaitable[dict]]) -> None:
    """`main(address, extra_args)` → JSON on stdout (with the SDK version under
    "sdk_version"); a crash prints a traceback and exits 1."""
    try:
        out = asyncio.run(main(sys.argv[1], sys.argv[2:]))
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    out["sdk_version"] = importlib.metadata.version("apache-iggy")
    print(json.dumps(out), flush=True)
    # The SDK's native runtime aborts (SIGABRT, no message) in roughly 1 of 10 interpreter
    # shutdowns after a login — reproduced with connect + login alone, with 0.8.0 and 0.9.0.
    # The scenario is complete once its JSON is out, so leave without the interpreter teardown.
    os._exit(0)
