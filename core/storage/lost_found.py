"""lost+found: where bytes that recovery cannot account for are moved, never deleted.

Everything is kept under a per-run folder, `<lost+found>/<UTC time>/`, with the file's own name
(and, for a cut tail, the position it was cut at), so an operator can inspect or restore it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def run_folder(root: Path) -> Path:
    """The folder of this moment under `root` (created)."""
    folder = root / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def move_aside(root: Path, path: Path) -> Path:
    """Move `path` (a file or directory) under `root`; return where it went."""
    target = run_folder(root) / path.name
    n = 1
    while target.exists():
        target = target.with_name(f"{path.name}.{n}")
        n += 1
    os.replace(path, target)
    return target


def copy_tail(root: Path, fd: int, name: str, start: int, end: int) -> Path:
    """Copy bytes [start, end) of an open file to `<name>.from-<start>` under `root`."""
    target = run_folder(root) / f"{name}.from-{start}"
    with open(target, "wb") as out:
        pos = start
        while pos < end:
            chunk = os.pread(fd, min(8 << 20, end - pos), pos)
            if not chunk:
                break
            out.write(chunk)
            pos += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return target
