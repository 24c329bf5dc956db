"""Fixtures of the archiver tests: a real S3-compatible server, moto's standalone server
(`moto[server]`, a test extra installed by scripts/install-test-deps.sh), as a subprocess."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3support import MotoS3


def _start(workdir: Path) -> MotoS3:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        message = "moto[server] is not installed; run scripts/install-test-deps.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return MotoS3(workdir).start()


@pytest.fixture
def moto_s3(tmp_path: Path) -> Iterator[MotoS3]:
    """A moto S3 server of this test alone (it may stop and restart it); no buckets."""
    server = _start(tmp_path / "moto")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def shared_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """A moto S3 server shared by tests that never stop it: each uses buckets of its own."""
    server = _start(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()
