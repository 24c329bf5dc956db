"""Fixtures for the apache-iggy 0.9.0 SDK end-to-end tests (see sdk_support.py).

Each test gets its own server (`pyggy_server` from tests/conftest.py: a real `python -m pyggy`
subprocess with root iggy/iggy and a fresh data directory, SIGTERM'd at teardown, which must
exit 0), so 0-based ids can be asserted exactly.
"""

from __future__ import annotations

import pytest_asyncio
from apache_iggy import IggyClient
from sdk_support import connect

from pyggy.testing import PyggyServer


@pytest_asyncio.fixture
async def root(pyggy_server: PyggyServer) -> IggyClient:
    """A client logged in as the root user (iggy/iggy, user id 0)."""
    return await connect(pyggy_server)
