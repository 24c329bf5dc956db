"""A full disk fails the append that hit it with a storage error, leaves the segment as it
was, logs once, and the log accepts writes again when space returns (a real tmpfs)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pyggy.core.errors import ErrorCode, IggyError
from storage_support import fill, iggy, open_log, outcome

from pyggy.testing import fill_disk


def test_disk_full_then_space_again(small_tmpfs, caplog: pytest.LogCaptureFixture) -> None:
    mount = small_tmpfs(2 << 20)
    log = open_log(mount / "p", segment_size=64 << 10)
    stored = fill(log, 20)
    filler = fill_disk(mount)
    sizes = [(s.log_path.stat().st_size, s.index_path.stat().st_size) for s in log.segments]
    end = log.next_offset

    async def append() -> int:
        return await log.append_iggy(iggy(50, log.next_offset), 50)

    with caplog.at_level(logging.WARNING, logger="pyggy.core.storage"):
        for _ in range(5):
            with pytest.raises(IggyError) as err:
                asyncio.run(append())
            assert err.value.code == ErrorCode.CANNOT_SAVE_MESSAGES_TO_SEGMENT
            assert "No space left" in str(err.value)
        # nothing of the failed batches stayed behind
        assert log.next_offset == end
        assert [(s.log_path.stat().st_size, s.index_path.stat().st_size)
                for s in log.segments] == sizes
        assert caplog.text.count("messages cannot be written") == 1
        filler.unlink()
        assert asyncio.run(append()) == end
        assert caplog.text.count("messages can be written again") == 1
    assert outcome(log, stored) == ["ok"] * len(stored)
    log.close()
    reopened = open_log(log.path, segment_size=64 << 10)
    assert reopened.next_offset == end + 50
    assert outcome(reopened, stored) == ["ok"] * len(stored)
