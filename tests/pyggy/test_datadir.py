"""pyggy/datadir.py: the lock, and what tells a first start from a restart."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyggy.core.engine import LogEngine

from pyggy import datadir


def test_a_directory_is_new_until_its_state_log_exists(tmp_path: Path) -> None:
    assert datadir.is_new(tmp_path / "missing") and datadir.is_new(tmp_path)
    e = LogEngine(tmp_path, state_fsync=False)
    e.open(("iggy", "iggy"))
    e.close()
    assert not datadir.is_new(tmp_path)
    (tmp_path / "state" / "state.log").unlink()  # one copy of the mirrored log is enough
    assert not datadir.is_new(tmp_path)


def test_a_second_lock_is_refused(tmp_path: Path) -> None:
    fd = datadir.lock(tmp_path)
    with pytest.raises(datadir.DataDirBusy):
        datadir.lock(tmp_path)
    datadir.unlock(fd)
    datadir.unlock(datadir.lock(tmp_path))
