"""`<data>/lost+found/`: where pyggy puts what it will not use but must not delete.

Files and directories that metadata cannot account for (a stream directory the state log does
not know, the leftovers of a deleted partition whose id is used again) and copies of damaged
metadata files are moved or copied to `<data>/lost+found/<UTC time>/<path relative to data>`,
one log line each. Nothing there is read by the server; an operator inspects it and deletes it.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

log = logging.getLogger(__name__)

DIR_NAME = "lost+found"
STATE_DIR = "state"  # every data directory has one (the state log lives there)


def data_root(path: Path) -> Path | None:
    """The data directory holding `path` (the nearest ancestor with a `state/` directory)."""
    for parent in Path(path).resolve().parents:
        if (parent / STATE_DIR).is_dir():
            return parent
    return None


class LostAndFound:
    """Moves and copies aside into `<root>/lost+found/<stamp>/`, one stamp per instance."""

    def __init__(self, root: Path, stamp: str | None = None) -> None:
        self.root = Path(root)
        self.stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())

    @classmethod
    def near(cls, path: Path) -> LostAndFound:
        """The lost+found of the data directory holding `path` (else of its own directory)."""
        return cls(data_root(path) or Path(path).resolve().parent)

    @property
    def folder(self) -> Path:
        return self.root / DIR_NAME / self.stamp

    def _target(self, path: Path) -> Path:
        path = Path(path).resolve()
        try:
            relative = path.relative_to(self.root.resolve())
        except ValueError:
            relative = Path(path.name)
        target = self.folder / relative
        n = 1
        while target.exists() or target.is_symlink():
            target = target.with_name(f"{relative.name}.{n}")
            n += 1
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def move(self, path: Path, why: str) -> Path:
        """Move `path` (file or directory) aside; return where it went."""
        target = self._target(path)
        os.rename(path, target)
        log.warning("moved %s to %s: %s", path, target, why)
        return target

    def copy(self, path: Path, why: str) -> Path:
        """Copy the file `path` aside (it stays in place); return where the copy went."""
        target = self._target(path)
        shutil.copy2(path, target)
        log.warning("copied %s to %s: %s", path, target, why)
        return target

    def copy_range(self, fd: int, path: Path, start: int, end: int, why: str) -> Path:
        """Copy bytes [start, end) of the open file `path` aside, as `<name>.from-<start>`
        (a cut tail); return where the copy went."""
        target = self._target(Path(path).with_name(f"{Path(path).name}.from-{start}"))
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
        log.warning("copied bytes %d..%d of %s to %s: %s", start, end, path, target, why)
        return target
