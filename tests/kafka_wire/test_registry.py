"""The Kafka handler registry: rows name their handlers; a handler's module is imported when its
API is first served (the start-up test in tests/pyggy/test_server_start.py shows it on a real
server; these check the rows themselves)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import subprocess
import sys

from pyggy.core.engine.cluster import FORWARD
from pyggy.kafka_wire.registry import _ROWS, REGISTRY, Api, load_handlers


def test_every_row_resolves_to_its_handler_and_says_whether_it_is_async() -> None:
    load_handlers()
    assert len(REGISTRY) == len(_ROWS)
    for name, target, forward in _ROWS:
        api = next(a for a in REGISTRY.values() if a.name == name)
        module, _, attr = target.rpartition(".")
        function = getattr(importlib.import_module(f"pyggy.kafka_wire.handlers.{module}"), attr)
        assert api.is_async == inspect.iscoroutinefunction(function) or forward, name
        if forward:  # wrapped: FORWARD is set while it runs (core/engine/cluster.py)
            assert api.handler is not function and api.handler.__wrapped__ is function
            assert api.is_async
        else:
            assert api.handler is function


def test_a_forwarded_handler_runs_with_forward_set() -> None:
    seen = []

    async def handler(conn: object, request: dict, version: int) -> dict:
        seen.append(FORWARD.get())
        return {}

    api = Api(19, "CreateTopics", 0, 7, handler, forward=True)
    assert asyncio.run(api.handler(None, {}, 0)) == {} and seen == [True]
    assert not FORWARD.get()


def test_importing_the_registry_imports_no_handler_but_sasl_and_api_versions() -> None:
    code = ("import sys, pyggy.kafka_wire.dispatch; print(sorted(m for m in sys.modules "
            "if m.startswith('pyggy.kafka_wire.handlers.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.split() == ["['pyggy.kafka_wire.handlers.api_versions',",
                           "'pyggy.kafka_wire.handlers.sasl']"]
