"""Fixtures for the group coordinator tests (helpers live in groups_support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from groups_support import Harness


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.loop.close()
