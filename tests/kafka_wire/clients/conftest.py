"""Fixtures for the real-Kafka-client tests: one pyggy server per test module (3 partitions
per auto-created topic, debug log so the API versions each client picks can be read), a fresh
topic name per test, and the external clients (kcat, node + kafkajs) — missing ones fail under
CI and skip otherwise, as `iggy08_python` in tests/conftest.py."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import PARTITIONS, LosingProxy, log_api_versions

from pyggy.testing import PyggyServer

NODE_DIR = Path(__file__).resolve().parent / "node"


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def kafka_server(tmp_path_factory: pytest.TempPathFactory,
                 request: pytest.FixtureRequest) -> Iterator[PyggyServer]:
    """A pyggy server shared by one test module; `kafka_address` is its Kafka door."""
    workdir = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    server = PyggyServer(workdir, args=["--log-level", "debug"],
                         env={"IGGY_KAFKA_NUM_PARTITIONS": str(PARTITIONS)}).start()
    server.wait_for_log("kafka listening on")  # logged after "tcp listening on"
    yield server
    log_api_versions(server)
    errors = [line for line in server.logs if " ERROR " in line or "Traceback" in line]
    code = server.close()
    assert code in (None, 0), f"server exited with {code}\n{server.format_logs()}"
    assert not errors, "server logged errors:\n" + "\n".join(errors)


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic name unique to the test (auto-created on first use, 3 partitions)."""
    return re.sub(r"[^a-zA-Z0-9._-]", "-", request.node.name)[:200]


@pytest.fixture(scope="session")
def kcat() -> str:
    """Path of kcat (Debian package, installed by scripts/install-test-deps.sh)."""
    path = shutil.which("kcat")
    if path is None:
        _missing("kcat not installed; run scripts/install-test-deps.sh (apt-get install kcat)")
    return path


@pytest.fixture(scope="session")
def node_dir() -> Path:
    """tests/kafka_wire/clients/node with kafkajs installed (npm ci by install-test-deps.sh)."""
    if shutil.which("node") is None:
        _missing("node not installed")
    if not (NODE_DIR / "node_modules" / "kafkajs" / "package.json").is_file():
        _missing(f"kafkajs not installed in {NODE_DIR}; run scripts/install-test-deps.sh")
    return NODE_DIR


@pytest.fixture
def losing_proxy(tmp_path: Path) -> Iterator[tuple[PyggyServer, LosingProxy]]:
    """A server of its own behind a `LosingProxy` (first Produce response lost); clients
    bootstrap to `proxy.address` and the server advertises it."""
    proxy = LosingProxy(drops=1)
    server = PyggyServer(tmp_path, args=["--log-level", "debug"],
                         env={"IGGY_KAFKA_NUM_PARTITIONS": str(PARTITIONS),
                              "IGGY_KAFKA_ADVERTISED_PORT": str(proxy.port)}).start()
    server.wait_for_log("kafka listening on")
    host, port = server.kafka_address.split(":")
    proxy.upstream = (host, int(port))
    yield server, proxy
    proxy.close()
    log_api_versions(server)
    code = server.close()
    assert code in (None, 0), f"server exited with {code}\n{server.format_logs()}"
