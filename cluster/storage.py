"""File-backed consensus storage: each zone a file under a group's directory.

A write goes to the file at once (`os.pwrite`, into the page cache, so a read right after sees
it) and its token is handed back on the event loop once it is durable: with `fsync` on, after a
worker thread has fsynced the zone's file (every write waiting at that moment shares one fsync:
group commit); with `fsync` off, on the next loop iteration.

What an acknowledgement means follows from that (docs/cluster.md, "Durability"):

- `fsync=True` (the metadata group always; a partition group whose topic asks for it): a
  PrepareOk leaves only once the prepare is on stable storage, so a committed op is on the disks
  of a replication quorum and survives the power loss of every node.
- `fsync=False` (partition groups by default, Iggy's `replicated`): a PrepareOk means the
  prepare is in a quorum's page cache: a committed op survives the crash of any process and the
  power loss of fewer than a quorum of machines, not a power loss of the whole cluster.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

from pyggy.consensus.storage import StorageError

Done = Callable[[Hashable], None]


class FileStorage:
    """`Storage` (pyggy.consensus.storage) over files in `root`; `on_done(token)` is called on
    the loop that created it, once per write, in submission order per zone."""

    def __init__(self, root: Path, fsync: bool, on_done: Done,
                 loop: asyncio.AbstractEventLoop | None = None,
                 syncer: Syncer | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self.on_done = on_done
        self.loop = loop or asyncio.get_running_loop()
        self.syncer = syncer
        self.fds: dict[str, int] = {}
        self.closed = False

    def _fd(self, zone: str) -> int:
        fd = self.fds.get(zone)
        if fd is None:
            if "/" in zone or zone.startswith("."):
                raise ValueError(f"bad zone name {zone!r}")
            fd = self.fds[zone] = os.open(self.root / zone, os.O_RDWR | os.O_CREAT, 0o600)
        return fd

    def read(self, zone: str, offset: int, size: int) -> bytes:
        try:
            data = os.pread(self._fd(zone), size, offset)
        except OSError as e:
            raise StorageError(f"{self.root / zone}: {e}") from None
        return data + bytes(size - len(data)) if len(data) < size else data

    def write(self, zone: str, offset: int, data: bytes, token: Hashable) -> None:
        fd = self._fd(zone)
        view = memoryview(data)
        while view:  # pwrite may write less than asked
            view = view[os.pwrite(fd, view, offset + len(data) - len(view)):]
        if self.fsync:
            (self.syncer or SYNCER).submit(self, fd, token)
        else:
            self.loop.call_soon(self._done, token)

    def _done(self, token: Hashable) -> None:
        if not self.closed:
            self.on_done(token)

    def close(self) -> None:
        """Stop reporting completions and close the files (after pending fsyncs ran)."""
        self.closed = True
        (self.syncer or SYNCER).flush()
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


class Syncer:
    """One worker thread fsyncing for every FileStorage: takes all waiting writes, fsyncs each
    file once, hands the tokens back on their loops."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.waiting: list[tuple[FileStorage, int, Hashable]] = []
        self.busy = False
        self.thread: threading.Thread | None = None
        self.fsyncs = 0

    def submit(self, storage: FileStorage, fd: int, token: Hashable) -> None:
        with self.cond:
            self.waiting.append((storage, fd, token))
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="pyggy-fsync",
                                               daemon=True)
                self.thread.start()
            self.cond.notify()

    def flush(self) -> None:
        """Wait until nothing is waiting or being synced."""
        with self.cond:
            while self.waiting or self.busy:
                self.cond.wait(0.05)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.waiting:
                    self.busy = False
                    self.cond.notify_all()
                    self.cond.wait()
                batch, self.waiting = self.waiting, []
                self.busy = True
            for fd in {fd for _, fd, _ in batch}:
                try:
                    os.fsync(fd)
                    self.fsyncs += 1
                except OSError:
                    # Never report a write durable that may not be: its tokens are withheld,
                    # so the replica never acknowledges it (VSR treats the replica as slow).
                    batch = [b for b in batch if b[1] != fd]
            for storage, _, token in batch:
                try:
                    storage.loop.call_soon_threadsafe(storage._done, token)
                except RuntimeError:  # that loop is closed: nobody waits for it
                    pass


SYNCER = Syncer()
