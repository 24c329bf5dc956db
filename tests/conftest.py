"""Shared fixtures: a real pyggy server subprocess, and the separate apache-iggy 0.8.0 venv."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pyggy.testing import PyggyServer

REPO_ROOT = Path(__file__).resolve().parent.parent


def _close(server: PyggyServer) -> str | None:
    """Stop a server at teardown; return an error text unless it exited 0 on SIGTERM."""
    print(f"--- logs of {server!r} ---\n{server.format_logs()}")  # shown when a test fails
    try:
        code = server.close()
    except AssertionError as e:
        return str(e)
    if code not in (None, 0):
        return f"{server!r} exited with code {code} after SIGTERM\n{server.format_logs()}"
    return None


@pytest.fixture
def pyggy_server(tmp_path: Path) -> Iterator[PyggyServer]:
    """A started server (root iggy/iggy) with data in `tmp_path/data`; SIGTERM at teardown."""
    server = PyggyServer(tmp_path, data_path=tmp_path / "data").start()
    yield server
    error = _close(server)
    if error:
        pytest.fail(error)


@pytest.fixture
def pyggy_server_factory(tmp_path: Path) -> Iterator[Callable[..., PyggyServer]]:
    """`make(name=None, start=True, **PyggyServer kwargs)` → a server in `tmp_path/<name>`."""
    servers: list[PyggyServer] = []

    def make(name: str | None = None, start: bool = True, **kwargs: Any) -> PyggyServer:
        server = PyggyServer(tmp_path / (name or f"server{len(servers)}"), **kwargs)
        servers.append(server)
        return server.start() if start else server

    yield make
    errors = [e for e in map(_close, servers) if e]
    if errors:
        pytest.fail("\n\n".join(errors))


@pytest.fixture(scope="session")
def iggy08_python() -> Path:
    """Python of the separate venv holding `apache-iggy==0.8.0` (conflicts with 0.9.0).

    `$PYGGY_IGGY08_PYTHON`, else `.venv-iggy08/bin/python`; created by
    scripts/install-test-deps.sh. Missing: fails under CI, skips otherwise.
    """
    path = Path(os.environ.get("PYGGY_IGGY08_PYTHON") or REPO_ROOT / ".venv-iggy08/bin/python")
    if not (path.is_file() and os.access(path, os.X_OK)):
        message = f"no apache-iggy 0.8.0 venv at {path}; run scripts/install-test-deps.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """`mount(size)` → an empty tmpfs of `size` bytes under `tmp_path`: a real disk that fills
    up (ENOSPC). Mounting needs root: without it this fails under CI, skips otherwise."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        target = tmp_path / f"tmpfs{len(mounted)}"
        target.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(target)], capture_output=True, text=True, check=False)
        if done.returncode:
            message = f"cannot mount a tmpfs ({done.stderr.strip()}); run the tests as root"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)
