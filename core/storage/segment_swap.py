"""Replacing a sealed segment's files by a rewritten copy (compaction), crash-safe.

Steps (each named, so tests can crash the process model at every one, `SwapHook`):

1. ``written``: the new log and index go to ``{start}.log.new`` / ``{start}.index.new``;
2. ``synced``: both are fsync'd;
3. ``verified``: both are read back — every index entry tiles the log and its CRC-32C
   matches the batch's bytes, every batch is recognised at its offset;
4. ``marked``: the marker ``{start}.swap`` is written and fsync'd with the directory: from here
   on the new copy is complete and is what the segment is;
5. ``index-renamed``, ``log-renamed``: ``rename(2)`` over the old files, then the directory
   is fsync'd;
6. ``unmarked``: the marker is removed.

A crash before 4 leaves the old files untouched and `finish_swaps` (run when a partition
opens) deletes the ``.new`` leftovers; a crash from 4 on is rolled forward from the
``.new`` files that remain. Either way a segment is wholly the old or wholly the new copy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from pyggy.core.crc import crc32c
from pyggy.core.records.encoding import recognise
from pyggy.core.small_file import sync_dir
from pyggy.core.storage.index import HAS_CRC, SegmentIndex

NEW = ".new"
MARKER = ".swap"
SwapHook = Callable[[str], None]


class SwapError(Exception):
    """The rewritten copy did not verify; the old segment stays."""


def no_hook(step: str) -> None:
    pass


def _paths(directory: Path, start: int) -> tuple[Path, Path, Path]:
    stem = directory / f"{start:020}"
    return stem.with_suffix(".log"), stem.with_suffix(".index"), stem.with_suffix(MARKER)


def write_copy(directory: Path, start: int, batches: Iterable[tuple[bytes | bytearray,
                                                                    tuple[int, ...]]],
               hook: SwapHook = no_hook) -> SegmentIndex:
    """Steps 1–3: write ``(bytes, (base offset, count, timestamp, max timestamp,
    encoding))`` batches as the new copy of segment `start`, fsync and verify it; return its
    index. Raises SwapError (the ``.new`` files removed) when it does not verify."""
    log_path, index_path, _ = _paths(directory, start)
    new_log, new_index = Path(f"{log_path}{NEW}"), Path(f"{index_path}{NEW}")
    index = SegmentIndex()
    entries = bytearray()
    with open(new_log, "wb") as f:
        pos = 0
        for data, (base, count, ts, max_ts, encoding) in batches:
            f.write(data)
            entries += index.add(base, pos, ts, max_ts, len(data), count, encoding, HAS_CRC,
                                 crc32c(data))
            pos += len(data)
        hook("written")
        f.flush()
        os.fsync(f.fileno())
    with open(new_index, "wb") as f:
        f.write(entries)
        f.flush()
        os.fsync(f.fileno())
    hook("synced")
    try:
        _verify(new_log, new_index, start, index)
    except SwapError:
        discard(directory, start)
        raise
    hook("verified")
    return index


def _verify(log_path: Path, index_path: Path, start: int, expected: SegmentIndex) -> None:
    data = log_path.read_bytes()
    stored = SegmentIndex.load(index_path.read_bytes())
    if len(stored) != len(expected) or stored.to_bytes() != expected.to_bytes():
        raise SwapError(f"{index_path}: the index did not read back as written")
    pos, offset = 0, start
    view = memoryview(data)
    for i in range(len(stored)):
        p, ln, base = stored.positions[i], stored.lengths[i], stored.base_offsets[i]
        batch = view[p:p + ln]
        if p != pos or base != offset or crc32c(batch) != stored.crcs[i] or recognise(
                batch, base) is None:
            raise SwapError(f"{log_path}: batch {i} at offset {base} does not verify")
        pos, offset = p + ln, base + stored.counts[i]
    if pos != len(data):
        raise SwapError(f"{log_path}: {len(data) - pos} bytes past the last batch")


def commit(directory: Path, start: int, hook: SwapHook = no_hook) -> None:
    """Steps 4–6: make the verified copy the segment (atomic per file, rolled forward after a
    crash by `finish_swaps`)."""
    log_path, index_path, marker = _paths(directory, start)
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{start}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    sync_dir(directory)
    hook("marked")
    os.replace(f"{index_path}{NEW}", index_path)
    hook("index-renamed")
    os.replace(f"{log_path}{NEW}", log_path)
    hook("log-renamed")
    sync_dir(directory)
    marker.unlink()
    hook("unmarked")


def discard(directory: Path, start: int) -> None:
    """Remove an unfinished copy (before its marker): the old segment stays as it is."""
    log_path, index_path, _ = _paths(directory, start)
    for path in (log_path, index_path):
        Path(f"{path}{NEW}").unlink(missing_ok=True)


def finish_swaps(directory: Path) -> list[int]:
    """At open: roll every marked swap forward and drop unmarked copies; return the starts
    of the segments that were rolled forward."""
    done = []
    for marker in sorted(directory.glob(f"*{MARKER}")):
        if not marker.stem.isdigit():
            continue
        start = int(marker.stem)
        log_path, index_path, _ = _paths(directory, start)
        for path in (index_path, log_path):
            if Path(f"{path}{NEW}").exists():
                os.replace(f"{path}{NEW}", path)
        sync_dir(directory)
        marker.unlink()
        done.append(start)
    for leftover in directory.glob(f"*{NEW}"):
        leftover.unlink()
    return done
