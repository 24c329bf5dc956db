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


class SmallDisk:
    """A tmpfs of a given size mounted for one test: a real full disk (ENOSPC) on demand."""

    def __init__(self, mount: Path) -> None:
        self.path = mount
        self.filler = mount / "filler"

    def fill(self, leave: int = 0) -> None:
        """Write a filler file until at most `leave` bytes stay free."""
        with open(self.filler, "ab") as f:
            while True:
                free = os.statvfs(self.path).f_bavail * os.statvfs(self.path).f_frsize
                if free <= leave:
                    break
                try:
                    f.write(bytes(min(1 << 20, max(free - leave, 4096))))
                    f.flush()
                except OSError:
                    break

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], SmallDisk]]:
    """`make("32m")` → a SmallDisk mounted under tmp_path (unmounted at teardown).

    Mounting needs root, which CI has; without it the test fails under CI and skips elsewhere.
    """
    mounts: list[Path] = []

    def make(size: str) -> SmallDisk:
        mount = tmp_path / f"disk{len(mounts)}"
        mount.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                               str(mount)], capture_output=True, text=True)
        if done.returncode:
            message = f"cannot mount a tmpfs (root needed): {done.stderr.strip()}"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        mounts.append(mount)
        return SmallDisk(mount)

    yield make
    for mount in mounts:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the fault-injection table when fault tests ran (tests/core/faults/)."""
    import sys

    table = sys.modules.get("fault_table")
    if table is not None and table.ROWS:
        terminalreporter.section("storage fault injection: file kind x case x outcome")
        terminalreporter.write_line(table.render())
