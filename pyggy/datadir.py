"""The data directory belongs to one process at a time: an exclusive lock on `<data>/.lock`.

Two servers (or a server and `pyggy-scrub`) writing the same segments would corrupt them; the
second one is refused with the holder's pid. The lock is `flock`, released by the kernel when
the process ends however it ends, so a `kill -9` leaves nothing stale behind.

`pyggy-server` takes it before it binds its ports (pyggy/prebind.py), so this module imports
only `fcntl` and what the interpreter has loaded already (`os`): not `pathlib`.
"""

from __future__ import annotations

import fcntl
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

LOCK_FILE = ".lock"


class DataDirBusy(RuntimeError):
    """Another process holds the data directory."""


def lock(path: Path | str) -> int:
    """Take the lock (creating the directory); return its descriptor (keep it open)."""
    os.makedirs(path, exist_ok=True)
    fd = os.open(os.path.join(path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        from pathlib import Path

        raise DataDirBusy(f"data directory {Path(path).resolve()} is in use by another pyggy "
                          f"process (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def is_new(path: Path | str) -> bool:
    """True when the directory holds no metadata yet (no state log, `core/metadata/
    state_log.py`): a first start, which creates the root user."""
    state = os.path.join(path, "state")
    return not any(os.path.exists(os.path.join(state, name))
                   for name in ("state.log", "state.log.copy"))


def unlock(fd: int) -> None:
    os.close(fd)
