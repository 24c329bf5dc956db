"""File-backed consensus storage: real files, fsync on a worker thread, and a replica that
recovers from a write torn at every byte of its last prepare, as in the simulator."""

from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path

from pyggy.cluster import storage as storage_mod
from pyggy.cluster.storage import FileStorage
from pyggy.consensus.journal import PREPARES
from pyggy.consensus.message import Command, Message
from pyggy.consensus.options import Options
from pyggy.consensus.replica import Replica
from pyggy.consensus.sim import models
from pyggy.consensus.state_machine import REGISTER
from pyggy.consensus.status import REPLY

CLUSTER = bytes(range(16))
GROUP = 1 << 32 | 1 << 20
OPTIONS = Options(pipeline_max=4, journal_slots=32, checkpoint_interval=16, prepare_max=2048,
                  clients_max=4, commit_interval=5, heartbeat_timeout=40, prepare_retransmit=5,
                  view_change_retransmit=5, view_change_status_timeout=40,
                  request_start_view_interval=5, view_probe_attempts_max=3, repair_interval=5,
                  repair_chunk_max=8)
CLIENT = bytes([7]) * 16


class Clock:
    def now(self) -> int:
        return 1


class Recording(FileStorage):
    """Keeps an undo log of every write: (zone, offset, new bytes, old bytes)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.undo: list[tuple[str, int, bytes, bytes]] = []

    def write(self, zone, offset, data, token) -> None:
        old = self.read(zone, offset, len(data))
        self.undo.append((zone, offset, bytes(data), old))
        super().write(zone, offset, data, token)


class Solo:
    """One replica (n = 1) driven on the running loop over real files."""

    def __init__(self, root: Path, storage_cls=FileStorage, fresh: bool = True) -> None:
        self.done: list = []
        self.storage = storage_cls(root, True, self.done.append)
        if fresh:
            Replica.format(self.storage, cluster=CLUSTER, replica=0, replica_count=1,
                           group=GROUP, options=OPTIONS)
        self.replies: list[Message] = []
        self.replica = None

    async def settle(self) -> None:
        for _ in range(200):
            await asyncio.sleep(0.001)
            storage_mod.SYNCER.flush()
            await asyncio.sleep(0)
            if not self.done:
                if self.replica is None or not self._busy():
                    return
                continue
            tokens, self.done[:] = list(self.done), []
            if self.replica is not None:
                for t in tokens:
                    self._take(self.replica.on_write_done(t))

    def _busy(self) -> bool:
        return bool(self.replica.pipeline) or self.replica.commit_min < self.replica.op

    def _take(self, actions) -> None:
        for a in actions:
            if a[0] == REPLY:
                self.replies.append(a[2])

    async def boot(self) -> Replica:
        await self.settle()
        self.replica = Replica(cluster=CLUSTER, replica=0, replica_count=1, group=GROUP,
                               storage=self.storage, state_machine=models.PartitionModel(),
                               options=OPTIONS, prng=random.Random(1), clock=Clock())
        self._take(self.replica.drain())
        await self.settle()
        return self.replica

    async def request(self, session: int, number: int, operation: int, body: bytes) -> Message:
        m = Message(Command.REQUEST, cluster=CLUSTER, group=GROUP, client=CLIENT,
                    session=session, request=number, operation=operation, body=body)
        self._take(self.replica.on_message(m))
        await self.settle()
        return self.replies[-1]


def test_a_write_is_readable_at_once_and_reported_once_fsynced(tmp_path: Path) -> None:
    async def main() -> None:
        done: list = []
        s = FileStorage(tmp_path / "g", True, done.append)
        before = storage_mod.SYNCER.fsyncs
        s.write("wal_prepares", 4096, b"abc", ("t", 1))
        assert s.read("wal_prepares", 4096, 5) == b"abc\0\0"  # page cache, before the fsync
        assert s.read("nothing", 0, 4) == bytes(4)
        for _ in range(500):
            if done:
                break
            await asyncio.sleep(0.002)
        assert done == [("t", 1)] and storage_mod.SYNCER.fsyncs > before
        s.close()
        assert (tmp_path / "g" / "wal_prepares").read_bytes()[4096:] == b"abc"

    asyncio.run(main())


def test_without_fsync_a_write_is_reported_on_the_next_loop_turn(tmp_path: Path) -> None:
    async def main() -> None:
        done: list = []
        s = FileStorage(tmp_path / "g", False, done.append)
        s.write("z", 0, b"x", "tok")
        assert done == []
        await asyncio.sleep(0)
        assert done == ["tok"]
        s.close()

    asyncio.run(main())


def _tear(src: Path, dst: Path, undo: list, index: int, keep: int) -> None:
    """`dst` = the files as they were with write `index` torn after `keep` bytes (every later
    write never happened)."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    for zone, offset, _, old in reversed(undo[index:]):
        with open(dst / zone, "r+b") as fh:
            fh.seek(offset)
            fh.write(old)
    zone, offset, new, _ = undo[index]
    with open(dst / zone, "r+b") as fh:
        fh.seek(offset)
        fh.write(new[:keep])


def test_a_replica_recovers_from_its_last_prepare_torn_at_every_byte(tmp_path: Path) -> None:
    appends = [[b"r%d-%d" % (i, j) for j in range(3)] for i in range(5)]

    async def build() -> tuple[list, int]:
        solo = Solo(tmp_path / "g", Recording)
        await solo.boot()
        session = int.from_bytes((await solo.request(0, 0, REGISTER, b"")).body, "little")
        for number, records in enumerate(appends, 1):
            await solo.request(session, number, models.APPEND, models.append_body(records))
        undo = solo.storage.undo
        solo.storage.close()
        last = max(i for i, w in enumerate(undo) if w[0] == PREPARES)
        return undo, last

    undo, last = asyncio.run(build())
    size = len(undo[last][2])
    every = [r for batch in appends for r in batch]

    async def recover(keep: int) -> list[bytes]:
        _tear(tmp_path / "g", tmp_path / "torn", undo, last, keep)
        solo = Solo(tmp_path / "torn", fresh=False)
        r = await solo.boot()
        records = list(r.sm.records)
        # and it goes on: a new session appends after whatever survived
        session = int.from_bytes((await solo.request(0, 0, REGISTER, b"")).body, "little")
        reply = await solo.request(session, 1, models.APPEND, models.append_body([b"after"]))
        assert int.from_bytes(reply.body, "little") == len(records)
        solo.storage.close()
        return records

    for keep in range(size + 1):
        records = asyncio.run(recover(keep))
        if keep < size:  # a torn prepare was never durable, so never acknowledged: cut
            assert records == every[:-3], keep
        else:
            assert records in (every, every[:-3]), keep
