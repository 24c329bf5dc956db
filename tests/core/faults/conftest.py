"""Fault-injection suites record their outcomes in one table, printed after the tests."""

from __future__ import annotations

import pytest
from table import TABLE, FaultTable


@pytest.fixture(scope="session")
def fault_table() -> FaultTable:
    return TABLE


def pytest_terminal_summary(terminalreporter) -> None:
    if TABLE.rows:
        terminalreporter.section("fault injection: file kind x case x outcome")
        terminalreporter.write_line(TABLE.render())
