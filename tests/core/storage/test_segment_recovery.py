"""Recovery at open: torn tails are cut (and kept in lost+found), damage is kept and refused,
a damaged index is rebuilt from the log — corrupt bytes are never served, intact ones never
lost."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from pyggy.core.storage.index import DAMAGED, ENTRY_SIZE, HAS_CRC, SegmentIndex
from pyggy.core.storage.partition_log import CLEAN_MARKER
from storage_support import fill, kept_aside, open_log, outcome


def flip(path: Path, position: int, mask: int = 0x01) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= mask
    path.write_bytes(bytes(data))


def reopen(log, clean: bool = True):
    log.close(clean=clean)
    return open_log(log.path)


def test_a_flipped_byte_in_a_sealed_segments_last_batch_is_kept_and_refused(tmp_path: Path):
    log = open_log(tmp_path / "p")
    stored = fill(log, 30)
    seg = log.segments[1]
    last = len(seg.index) - 1
    victim = stored.index(next(s for s in stored if s[0] == seg.index.base_offsets[last]))
    flip(seg.log_path, seg.index.positions[last] + 120)
    before = seg.log_path.read_bytes()
    log = reopen(log)
    got = outcome(log, stored)
    assert got[victim] == "refused"
    assert got[:victim] + got[victim + 1:] == ["ok"] * (len(stored) - 1)
    assert log.segments[1].log_path.read_bytes() == before  # nothing cut, nothing rewritten
    assert log.segments[1].index.flags[last] == HAS_CRC | DAMAGED
    assert log.next_offset == stored[-1][0] + 5


def test_damage_inside_a_segment_is_caught_by_the_read_itself(tmp_path: Path):
    log = open_log(tmp_path / "p")
    stored = fill(log, 30)
    seg = log.segments[0]
    flip(seg.log_path, seg.index.positions[1] + 80)  # not the last batch: open trusts it
    got = outcome(reopen(log), stored)
    assert got[1] == "refused" and got.count("ok") == len(stored) - 1


def test_a_zeroed_sector_in_the_active_segment_after_a_crash_is_kept(tmp_path: Path):
    log = open_log(tmp_path / "p", segment_size=1 << 20)
    stored = fill(log, 12)
    seg = log.segments[-1]
    with open(seg.log_path, "r+b") as f:  # a sector in the middle, batches valid after it
        f.seek(1024)
        f.write(bytes(512))
    log = reopen(log, clean=False)  # unclean: every batch of the tail is verified at open
    got = outcome(log, stored)
    assert "WRONG" not in got and "gone" not in got
    assert got == ["ok", "refused"] + ["ok"] * 10  # the sector hit the second batch
    assert log.next_offset == stored[-1][0] + 5


def test_a_torn_tail_after_a_crash_is_cut_and_its_bytes_kept(tmp_path: Path):
    log = open_log(tmp_path / "p", segment_size=1 << 20)
    stored = fill(log, 6)
    seg = log.segments[-1]
    torn = seg.size - 37
    log.close(clean=False)
    os.truncate(seg.log_path, torn)  # the last batch half written when the process died
    log = open_log(log.path)
    assert outcome(log, stored) == ["ok"] * 5 + ["gone"]
    assert log.next_offset == stored[-1][0]
    kept = kept_aside(log.path, "*.log.from-*")
    assert len(kept) == 1 and kept[0].read_bytes() == stored[-1][1][:torn - seg.index.positions[-1]]


def test_after_a_clean_stop_a_bad_last_batch_is_damage_not_a_torn_write(tmp_path: Path):
    log = open_log(tmp_path / "p", segment_size=1 << 20)
    stored = fill(log, 6)
    flip(log.segments[-1].log_path, log.segments[-1].index.positions[-1] + 100)
    log = reopen(log, clean=True)
    assert outcome(log, stored) == ["ok"] * 5 + ["refused"]
    assert log.next_offset == stored[-1][0] + 5  # the offsets stay taken


def test_a_damaged_index_entry_is_rebuilt_from_the_log(tmp_path: Path):
    log = open_log(tmp_path / "p")
    stored = fill(log, 30)
    seg = log.segments[2]
    flip(seg.index_path, 1 * ENTRY_SIZE + 20)  # entry 1's timestamp
    log = reopen(log)
    assert outcome(log, stored) == ["ok"] * len(stored)
    assert len(SegmentIndex.load(log.segments[2].index_path.read_bytes())) == len(
        log.segments[2].index)


def test_a_lost_index_file_is_rebuilt(tmp_path: Path):
    log = open_log(tmp_path / "p")
    stored = fill(log, 30)
    path = log.segments[3].index_path
    log.close()
    path.write_bytes(b"")
    assert outcome(open_log(log.path), stored) == ["ok"] * len(stored)


def test_first_format_indexes_still_open_and_are_upgraded_on_read(tmp_path: Path):
    log = open_log(tmp_path / "p")
    stored = fill(log, 30)
    old = struct.Struct("<QQQQIIB7x")
    for seg in log.segments:
        idx = seg.index
        seg.index_path.write_bytes(b"".join(old.pack(*idx.entry(i)[:7]) for i in range(len(idx))))
    log = reopen(log)
    assert log.segments[0].index.flags[0] == 0  # trusted as it was: not re-read at open
    assert outcome(log, stored) == ["ok"] * len(stored)
    assert log.segments[0].index.flags[0] == HAS_CRC  # verified by its own checksums


def test_a_segment_that_does_not_continue_the_log_is_moved_aside(tmp_path: Path):
    log = open_log(tmp_path / "p")
    stored = fill(log, 30)
    names = [s.log_path.name for s in log.segments]
    kept = len(log.segments[0].index) + len(log.segments[1].index)
    gone = log.segments[2]
    log.close()
    gone.log_path.unlink()  # an operator deleted a file: segments 3.. no longer join the log
    gone.index_path.unlink()
    log = open_log(log.path)
    moved = sorted(p.name for p in kept_aside(log.path, "*.log"))
    assert moved == names[3:]
    assert log.next_offset == gone.start_offset
    assert outcome(log, stored) == ["ok"] * kept + ["gone"] * (len(stored) - kept)
    assert (log.path / CLEAN_MARKER).exists() is False

