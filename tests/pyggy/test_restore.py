"""`pyggy-restore` as the way out when both copies of the local state log are damaged."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pyggy.archiver import layout
from pyggy.archiver.base import Source
from pyggy.archiver.disk import DiskArchiver
from pyggy.core.engine import LogEngine
from pyggy.core.metadata.state_log import CorruptState

from pyggy import restore


def test_restore_replaces_a_state_log_damaged_in_both_copies(tmp_path: Path, capsys) -> None:
    data, archive = tmp_path / "data", tmp_path / "archive"
    e = LogEngine(data, state_fsync=False)
    e.open(("iggy", "iggy"))
    asyncio.run(e.metadata.create_stream("orders"))
    asyncio.run(e.metadata.create_topic("orders", "events", 2))
    e.close()
    state = data / "state" / "state.log"
    disk = DiskArchiver(archive)
    disk.init()
    source = Source.open(state)
    disk.archive(layout.STATE_KEY, source)
    source.close()
    for p in (state, state.with_name("state.log.copy")):
        damaged = bytearray(p.read_bytes())
        damaged[20] ^= 0xFF
        p.write_bytes(damaged)
    with pytest.raises(CorruptState):
        LogEngine(data).open()
    config = tmp_path / "pyggy.toml"
    config.write_text(f'[data_maintenance.archiver]\nenabled = true\nkind = "disk"\n'
                      f'[data_maintenance.archiver.disk]\npath = "{archive}"\n')
    argv = ["--config", str(config), "--data-path", str(data)]
    assert restore.main(argv) == 1  # an existing log is not replaced without --force
    assert restore.main([*argv, "--force"]) == 0
    out = capsys.readouterr().out
    assert "kept the previous state.log as" in out and "kept the previous state.log.copy" in out
    assert len(list(state.parent.glob("state.log*.bak-*"))) == 2
    again = LogEngine(data, state_fsync=False)
    again.open()
    assert [t.name for t in again.metadata.topics("orders")] == ["events"]
    again.close()
    assert state.read_bytes() == state.with_name("state.log.copy").read_bytes()
