"""One pyggy server with the HTTP door per test module (real subprocess, real HTTP)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rest_client import JWT_SECRET

from pyggy.testing import PyggyServer, free_port


@pytest.fixture(scope="module")
def http_door(tmp_path_factory) -> Iterator[tuple[PyggyServer, str]]:
    """(server, base URL); the JWT secret is fixed so that tests can forge expired tokens."""
    port = free_port()
    server = PyggyServer(tmp_path_factory.mktemp("http"), env={
        "IGGY_HTTP_ENABLED": "true", "IGGY_HTTP_ADDRESS": f"127.0.0.1:{port}",
        "IGGY_HTTP_MAX_REQUEST_SIZE": "64 KiB", "IGGY_HTTP_JWT_ENCODING_SECRET": JWT_SECRET,
        "IGGY_HTTP_JWT_DECODING_SECRET": JWT_SECRET}).start()
    server.wait_for_log("http listening on")
    yield server, f"http://127.0.0.1:{port}"
    print(f"--- logs of {server!r} ---\n{server.format_logs()}")
    assert server.close() in (None, 0), server.format_logs()
