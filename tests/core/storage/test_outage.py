"""A failing disk is logged once, then at most once a minute, and its recovery once."""

from __future__ import annotations

import errno
import logging

from pyggy.core.errors import ErrorCode
from pyggy.core.storage.outage import WriteOutage


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now_us(self) -> int:
        return int(self.t * 1e6)

    def monotonic(self) -> float:
        return self.t


def test_lines_per_outage(caplog) -> None:
    clock = Clock()
    outage = WriteOutage("metadata", clock, logging.getLogger("test.outage"))
    full = OSError(errno.ENOSPC, "No space left on device")
    with caplog.at_level(logging.INFO, logger="test.outage"):
        error = outage.failed(full)
        assert error.code == ErrorCode.CANNOT_WRITE_TO_FILE
        assert str(error) == "metadata could not be stored: No space left on device"
        for _ in range(50):
            clock.t += 1
            outage.failed(full)
        outage.ok()  # 50 s: one line for the failure, one for the recovery
        assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]
        clock.t += 5
        outage.failed(full)  # flapping within the minute: quiet, and so is its recovery
        outage.ok()
        assert len(caplog.records) == 2
        clock.t += 1
        outage.failed(full)
        clock.t += 61
        outage.failed(full)  # a minute on: "still cannot be written"
        outage.ok()
    assert [r.getMessage().split(":")[0] for r in caplog.records[2:]] == [
        "metadata still cannot be written", "metadata can be written again after 2 failure(s) in "
        "61 s"]
