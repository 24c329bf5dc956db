"""The README's commands, config reference and quick start stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pyggy.core.records.kafka_errors import ErrorCode
from pyggy.kafka_wire.registry import REGISTRY

from pyggy.config import iter_settings
from pyggy.testing import PyggyServer

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_setup_commands() -> None:
    assert (
        "python3 -m venv .venv && .venv/bin/pip install . && "
        ".venv/bin/pyggy-server --with-default-root-credentials"
    ) in README
    assert "\nbash scripts/test.sh\n" in README
    ci = (Path(__file__).resolve().parent.parent / ".ci/run").read_text()
    assert "bash scripts/test.sh" in ci


def test_config_reference_lists_every_key() -> None:
    for s in iter_settings():
        row = f"| `[{'.'.join(s.path[:-1])}]` `{s.path[-1]}` |"
        assert row in README, f"README lacks a row for {s.key}"
        assert f"`{s.env}`" in README


def _versions(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}–{hi}"


def test_kafka_api_table_is_the_registry() -> None:
    section = README.split("### Kafka APIs and versions\n", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
    expected = [f"| {a.name} | {key} | {_versions(a.min_version, a.max_version)} |"
                for key, a in sorted(REGISTRY.items())]
    assert rows == expected, "the README's Kafka API table should read:\n" + "\n".join(expected)


def test_kafka_api_versions_in_the_text_are_the_registry() -> None:
    apis = {a.name: (a.min_version, a.max_version) for a in REGISTRY.values()}
    mentions = re.findall(r"\b([A-Z][A-Za-z]+)\s+v(\d+)(?:[–-](\d+))?(?![\d+])", README)
    checked = 0
    for name, lo, hi in mentions:
        if name in apis:
            assert (int(lo), int(hi or lo)) == apis[name], f"README: {name} v{lo}–{hi}"
            checked += 1
    assert checked >= 15  # the consumer group, admin and SASL paragraphs name 19


def test_kafka_error_codes_in_the_text_are_the_table() -> None:
    named = re.findall(r"\b([A-Z][A-Z_]+[A-Z]) \(?(-?\d+)\b", README)
    pairs = [(name, int(code)) for name, code in named if name in ErrorCode.__members__]
    assert pairs  # the Security section names codes with their numbers
    for name, code in pairs:
        assert ErrorCode[name] == code, f"README: {name} {code}"


def test_quick_start_runs(pyggy_server: PyggyServer) -> None:
    section = README.split("## Quick start", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('"127.0.0.1:8090"', f'"{pyggy_server.tcp_address}"')
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    # apache-iggy 0.9.0 sometimes aborts (SIGABRT) in its native runtime while the interpreter
    # exits after a login (reproduced with connect + login alone, ~1 run in 10); by then the
    # script has finished, so an abort is accepted only together with the complete output.
    assert out.returncode in (0, -6), out.stderr
    assert out.stdout == "0 hello\n1 world\n"
