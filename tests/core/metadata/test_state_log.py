"""The mirrored state log: torn tails are cut, a damaged copy is repaired from the other, damage
in both copies refuses (or, with repair, keeps the provable prefix), old logs are upgraded."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.lost_found import LostAndFound
from pyggy.core.metadata.state_log import (
    ENTRY_HEAD,
    CorruptState,
    StateLog,
    entry_at,
    merge,
)

COMMANDS = [{"type": "create_stream", "name": f"s{i}", "created_at": i} for i in range(6)]


def written(tmp_path: Path, commands=COMMANDS, fsync: bool = True) -> StateLog:
    log = StateLog(tmp_path / "state" / "state.log", fsync=fsync)
    assert log.replay() == []
    for c in commands:
        log.append(c)
    log.close()
    return log


def offsets(data: bytes) -> list[int]:
    """Byte offset of every entry."""
    out, pos = [], 0
    while pos < len(data):
        out.append(pos)
        pos += ENTRY_HEAD.size + ENTRY_HEAD.unpack_from(data, pos)[0]
    return out


def flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x04
    path.write_bytes(data)


def reopen(tmp_path: Path, **kw) -> tuple[StateLog, list[dict]]:
    log = StateLog(tmp_path / "state" / "state.log", fsync=kw.pop("fsync", True))
    return log, log.replay(**kw)


def test_both_copies_hold_every_entry(tmp_path: Path) -> None:
    log = written(tmp_path)
    assert log.path.read_bytes() == log.mirror.read_bytes()
    again, cmds = reopen(tmp_path)
    assert cmds == COMMANDS and again.size == log.path.stat().st_size
    again.close()


@pytest.mark.parametrize("which", ["path", "mirror"])
@pytest.mark.parametrize("entry", [0, 3, 5])
def test_a_flipped_byte_in_one_copy_is_repaired(tmp_path: Path, caplog, which: str,
                                                entry: int) -> None:
    log = written(tmp_path)
    good = log.path.read_bytes()
    flip(getattr(log, which), offsets(good)[entry] + 9)
    with caplog.at_level(logging.WARNING):
        again, cmds = reopen(tmp_path)
    assert cmds == COMMANDS
    assert log.path.read_bytes() == log.mirror.read_bytes() == good
    assert "repaired from" in caplog.text and f"entry {entry} at byte" in caplog.text
    again.close()


def test_a_zeroed_sector_in_one_copy_is_repaired(tmp_path: Path) -> None:
    log = written(tmp_path, [{"type": "x", "pad": "p" * 1500, "n": i} for i in range(8)])
    good = log.path.read_bytes()
    data = bytearray(good)
    data[4096:8192] = bytes(4096)
    log.mirror.write_bytes(data)
    again, cmds = reopen(tmp_path)
    assert len(cmds) == 8 and log.mirror.read_bytes() == good
    again.close()


def test_a_torn_append_is_cut(tmp_path: Path, caplog) -> None:
    log = written(tmp_path)
    good = log.path.read_bytes()
    last = offsets(good)[-1]
    # the crash hit the primary's write; the mirror was not written yet
    log.path.write_bytes(good[:-3])
    log.mirror.write_bytes(good[:last])
    with caplog.at_level(logging.WARNING):
        again, cmds = reopen(tmp_path)
    assert cmds == COMMANDS[:-1] and "torn tail" in caplog.text
    assert log.path.read_bytes() == log.mirror.read_bytes() == good[:last]
    again.append(COMMANDS[-1])  # the next entry takes the place (and the index)
    again.close()
    assert reopen(tmp_path)[1] == COMMANDS


def test_an_entry_only_the_primary_holds_is_kept(tmp_path: Path) -> None:
    log = written(tmp_path)
    good = log.path.read_bytes()
    log.mirror.write_bytes(good[:offsets(good)[-1] + 5])  # crash during the mirror's write
    again, cmds = reopen(tmp_path)
    assert cmds == COMMANDS and log.mirror.read_bytes() == good
    again.close()


def test_interior_damage_in_both_copies_refuses_naming_file_offset_entry(tmp_path: Path) -> None:
    log = written(tmp_path)
    at = offsets(log.path.read_bytes())[2]
    flip(log.path, at + 10)
    flip(log.mirror, at + 12)
    before = (log.path.read_bytes(), log.mirror.read_bytes())
    with pytest.raises(CorruptState) as e:
        reopen(tmp_path)
    message = str(e.value)
    assert str(log.path) in message and f"entry 2 at byte {at}" in message
    assert "pyggy-restore" in message and "--repair-state" in message
    assert (e.value.offset, e.value.index) == (at, 2)
    assert (log.path.read_bytes(), log.mirror.read_bytes()) == before  # nothing touched


def test_the_last_entry_damaged_in_both_copies_is_not_a_torn_tail(tmp_path: Path) -> None:
    """Appends write one copy after the other, each fsynced: a crash tears at most one."""
    log = written(tmp_path)
    at = offsets(log.path.read_bytes())[-1]
    flip(log.path, at + 10)
    flip(log.mirror, at + 10)
    with pytest.raises(CorruptState):
        reopen(tmp_path)
    again, cmds = reopen(tmp_path, fsync=False)  # without fsync both may be torn: cut
    assert cmds == COMMANDS[:-1]
    again.close()


def test_repair_keeps_the_provable_prefix_and_copies_the_rest_aside(tmp_path: Path) -> None:
    log = written(tmp_path)
    good = log.path.read_bytes()
    at = offsets(good)[3]
    flip(log.path, at + 10)
    flip(log.mirror, at + 10)
    found = LostAndFound(tmp_path, stamp="t")
    again, cmds = reopen(tmp_path, repair=True, lost_found=found)
    assert cmds == COMMANDS[:3]
    assert log.path.read_bytes() == log.mirror.read_bytes() == good[:at]
    kept = found.folder / "state"
    assert (kept / "state.log").stat().st_size == len(good)
    assert (kept / "state.log.copy").stat().st_size == len(good)
    again.close()


def test_an_old_single_log_is_upgraded_and_keeps_its_semantics(tmp_path: Path, caplog) -> None:
    log = written(tmp_path)
    good = log.path.read_bytes()
    log.mirror.unlink()
    log.path.write_bytes(good + b"\x07\x00")  # a torn tail, as the old format had
    with caplog.at_level(logging.INFO):
        again, cmds = reopen(tmp_path)
    assert cmds == COMMANDS and log.mirror.read_bytes() == good == log.path.read_bytes()
    assert "upgrade to a mirrored log" in caplog.text
    again.close()
    log.mirror.unlink()
    flip(log.path, offsets(good)[1] + 10)  # interior damage and no second copy: refuse
    with pytest.raises(CorruptState):
        reopen(tmp_path)


def test_rollback_cuts_the_entry_from_both_copies(tmp_path: Path) -> None:
    log = StateLog(tmp_path / "state.log")
    log.replay()
    log.append(COMMANDS[0])
    pos = log.append(COMMANDS[1])
    log.rollback(pos)
    log.append(COMMANDS[2])
    log.close()
    assert log.path.read_bytes() == log.mirror.read_bytes()
    again = StateLog(tmp_path / "state.log")
    assert again.replay() == [COMMANDS[0], COMMANDS[2]]
    again.close()


def test_read_verified_takes_each_entry_from_a_good_copy(tmp_path: Path) -> None:
    log = written(tmp_path)
    good = log.path.read_bytes()
    again, _ = reopen(tmp_path)
    flip(log.path, 12)  # damage after open: the archiver must not upload it
    assert again.read_verified(len(good)) == good
    flip(log.mirror, 12)
    with pytest.raises(CorruptState):
        again.read_verified(len(good))
    again.close()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_merge_of_random_bytes_never_crashes(data: bytes, strict: bool) -> None:
    m = merge([data], strict_tail=strict)
    assert bytes(m.good) == data[:len(m.good)]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_merge_of_a_truncated_or_flipped_log(data) -> None:
    raw = b""
    for i, c in enumerate(COMMANDS[:3]):
        body = json.dumps({"i": i, "c": c}, separators=(",", ":")).encode()
        raw += ENTRY_HEAD.pack(len(body), crc32c.crc32c(body)) + body
    cut = data.draw(st.integers(0, len(raw)))
    m = merge([raw[:cut]], strict_tail=False)
    assert m.damage is None and m.commands == COMMANDS[:len(offsets(bytes(m.good)))]
    pos = data.draw(st.integers(0, len(raw) - 1))
    flipped = bytearray(raw)
    flipped[pos] ^= 1 << data.draw(st.integers(0, 7))
    m = merge([bytes(flipped), raw], strict_tail=True)
    assert m.commands == COMMANDS[:3] and bytes(m.good) == raw
    assert entry_at(raw, len(raw), 3) is None


def test_a_command_too_large_to_replay_is_refused_unwritten(tmp_path: Path) -> None:
    """An entry above MAX_ENTRY would read back as damage and stop the next start: the append
    refuses it and the log goes on as if it had not been asked."""
    from pyggy.core.errors import IggyError
    from pyggy.core.metadata.state_log import MAX_ENTRY

    log = StateLog(tmp_path / "state" / "state.log", fsync=False)
    assert log.replay() == []
    log.append(COMMANDS[0])
    size = log.size
    with pytest.raises(IggyError):
        log.append({"type": "txn_offsets", "offsets": "x" * MAX_ENTRY})
    assert log.size == size
    log.append(COMMANDS[1])
    log.close()
    _, replayed = reopen(tmp_path)
    assert replayed == COMMANDS[:2]
