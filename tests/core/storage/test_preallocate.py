"""A batch of at least PREALLOCATE_FROM bytes gets its blocks (fallocate, KEEP_SIZE) before its
write: the files keep exactly the stored bytes (size, no blocks held past the end), read back
and recover as before, and a full disk or a file system without fallocate changes nothing."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os

import pytest
from pyggy.core.errors import IggyError
from pyggy.core.records.iggy_batch import build_batch
from pyggy.core.storage import segment as seg_mod
from storage_support import open_log, outcome

from pyggy.testing import fill_disk


def big(start: int) -> bytearray:
    """Three messages of 100 KB: above PREALLOCATE_FROM."""
    batch = build_batch([(start + i + 1, bytes([i + 1]) * 100_000, b"", 1000 + i)
                         for i in range(3)])
    assert len(batch) >= seg_mod.PREALLOCATE_FROM
    return batch


def append_big(log, n: int) -> list[tuple[int, bytes]]:
    stored = []

    async def go() -> None:
        for _ in range(n):
            b = big(log.next_offset)
            stored.append((await log.append_iggy(b, 3), bytes(b)))

    asyncio.run(go())
    return stored


def files_hold_exactly_the_batches(log) -> None:
    for s in log.segments:
        st = os.stat(s.log_path)
        assert st.st_size == s.size == sum(s.index.lengths)
        # nothing allocated past the end (4 KiB blocks)
        assert st.st_blocks * 512 <= -(-st.st_size // 4096) * 4096


def test_big_batches_are_stored_exactly_and_recover(tmp_path) -> None:
    calls = []
    real = seg_mod.preallocate

    def spy(fd: int, offset: int, length: int) -> None:
        calls.append((offset, length))
        real(fd, offset, length)

    seg_mod.preallocate = spy
    try:
        log = open_log(tmp_path / "p", segment_size=1 << 20)
        stored = append_big(log, 8)
    finally:
        seg_mod.preallocate = real
    assert len(calls) == 8 and all(length >= seg_mod.PREALLOCATE_FROM for _, length in calls)
    assert len(log.segments) > 1  # rolled over: sealed segments hold no extra blocks either
    files_hold_exactly_the_batches(log)
    assert outcome(log, stored) == ["ok"] * 8
    log.close()
    reopened = open_log(tmp_path / "p", segment_size=1 << 20)
    files_hold_exactly_the_batches(reopened)
    assert outcome(reopened, stored) == ["ok"] * 8
    reopened.segments[-1].truncate(1)  # truncation: the same files, cut
    files_hold_exactly_the_batches(reopened)
    reopened.close()


def test_without_fallocate_the_write_goes_on(tmp_path, monkeypatch) -> None:
    """A file system that refuses fallocate (EOPNOTSUPP): asked once, then not again."""
    asked = []

    def refuses(fd: int, mode: int, offset: int, length: int) -> int:
        asked.append(offset)
        ctypes.set_errno(errno.EOPNOTSUPP)
        return -1

    monkeypatch.setattr(seg_mod, "_fallocate", refuses)
    log = open_log(tmp_path / "p", segment_size=1 << 30)
    stored = append_big(log, 3)
    assert len(asked) == 1 and seg_mod._fallocate is seg_mod._unsupported
    assert outcome(log, stored) == ["ok"] * 3
    files_hold_exactly_the_batches(log)
    log.close()


def test_a_full_disk_fails_the_big_batch_and_leaves_the_files(small_tmpfs) -> None:
    mount = small_tmpfs(4 << 20)
    log = open_log(mount / "p", segment_size=1 << 30)
    stored = append_big(log, 2)
    filler = fill_disk(mount)
    size = log.segments[-1].log_path.stat().st_size
    for _ in range(3):
        with pytest.raises(IggyError):
            append_big(log, 1)
    assert log.segments[-1].log_path.stat().st_size == size
    files_hold_exactly_the_batches(log)
    filler.unlink()
    stored += append_big(log, 1)
    assert outcome(log, stored) == ["ok"] * 3
    log.close()
