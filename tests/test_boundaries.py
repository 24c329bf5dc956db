"""The boundaries of the design, checked on every module's imports (ast, no import run):

- core imports no door, no transport, no composition root;
- the doors never import each other, and reach the log only through the engine: no door
  imports `pyggy.core.storage` (segments, indexes, partition logs) or the engine's internals;
- transport imports neither a door nor core (the replica bus and an HTTP door share it);
- consensus is sans I/O: it imports nothing of pyggy but itself, and no asyncio or sockets;
- cluster may use core, consensus and transport, never a door (the doors see it only through
  `engine.cluster`), and a single node never imports it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOORS = ("native_wire", "kafka_wire")


def imports(folder: str) -> list[tuple[str, str]]:
    """(file, imported module) of every absolute import in a source folder."""
    out = []
    for path in sorted((REPO / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out += [(str(path.relative_to(REPO)), a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                out.append((str(path.relative_to(REPO)), node.module))
    return out


def offending(folder: str, *prefixes: str) -> list[tuple[str, str]]:
    return [(f, m) for f, m in imports(folder)
            if any(m == p or m.startswith(p + ".") for p in prefixes)]


def test_core_imports_no_door_transport_or_server() -> None:
    assert offending("core", "pyggy.native_wire", "pyggy.kafka_wire", "pyggy.transport",
                     "pyggy.archiver", "pyggy.server", "pyggy.config", "pyggy.cli") == []


@pytest.mark.parametrize("door", DOORS)
def test_a_door_reaches_the_log_only_through_the_engine(door: str) -> None:
    other = next(d for d in DOORS if d != door)
    assert offending(door, f"pyggy.{other}") == []
    assert offending(door, "pyggy.core.storage", "pyggy.core.engine.commands",
                     "pyggy.core.engine.partitions", "pyggy.core.metadata") == []


def test_transport_imports_neither_door_nor_core() -> None:
    assert offending("transport", "pyggy.native_wire", "pyggy.kafka_wire", "pyggy.core") == []


def test_consensus_is_sans_io() -> None:
    own = [(f, m) for f, m in imports("consensus") if m.startswith("pyggy.")
           and not m.startswith("pyggy.consensus")]
    assert own == []
    assert offending("consensus", "asyncio", "socket", "selectors", "threading") == []


def test_cluster_imports_no_door() -> None:
    assert offending("cluster", "pyggy.native_wire", "pyggy.kafka_wire", "pyggy.server",
                     "pyggy.cli") == []
    for folder in ("core", "native_wire", "kafka_wire", "transport", "consensus", "archiver"):
        assert offending(folder, "pyggy.cluster") == [], folder


def test_the_checker_sees_imports() -> None:
    """The rules above would pass on an empty list: the scan must find real imports."""
    found = {m for _, m in imports("kafka_wire")}
    assert "pyggy.core.engine" in found and "pyggy.core.errors" in found
