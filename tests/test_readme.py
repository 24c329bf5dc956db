"""The README's commands, config reference and quick start stay true."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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
