"""The node runtime: one `Replica` per group on the event loop, a 10 ms ticker, the actions
carried out, and the client side the doors use (`await node.submit(group, operation, body)`).

Groups are the metadata group and one per partition (ids packed as Iggy packs them, roster.py);
each keeps its consensus files under `<data>/cluster/<group id, hex>/`. The node is a VSR
client of its own groups: it holds a few registered sessions per group (one request in flight
each), sends a request to the local replica while that replica is the primary in normal status,
resends it every `RETRY_TICKS` (a full pipeline drops requests silently, as Iggy's does) and
resolves the caller with the reply. With `forward=True` a backup in normal status sends the
request to its primary over the bus instead (VSR lets a request reach the primary by any path);
it answers once the op has committed and executed *here*, with the reply its own client table
recorded (the same bytes on every replica), so what it acknowledged is readable on this node.
The primary broadcasts a Commit on the next tick after executing a request it did not send, so
the forwarder need not wait for the idle commit heartbeat. Outcomes a door maps to its codes:

- `NotPrimary(primary)`: never admitted; `primary` is the replica id to go to (Kafka
  NOT_LEADER_OR_FOLLOWER, Iggy TransientNotAccepted), None while a view change runs (Kafka
  LEADER_NOT_AVAILABLE);
- `OutcomeUnknown`: admitted, then the view changed or the session was evicted before the
  reply: it may or may not commit (Kafka REQUEST_TIMED_OUT, Iggy TransientNotCommitted).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import random
import shutil
import struct
import time
from collections import deque
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pyggy.consensus.message import Command, Message
from pyggy.consensus.options import Options
from pyggy.consensus.replica import Replica
from pyggy.consensus.replica_state import Action, Clock
from pyggy.consensus.state_machine import REGISTER, StateMachine
from pyggy.consensus.status import COMMITTED, FETCH_STATE, NORMAL, REPLY, SEND
from pyggy.core.storage.outage import StorageFailure

from . import metadata_transfer as mxfer
from .loopwatch import LoopWatch
from .metadata_sm import MetadataMachine, RestartToInstall
from .partition_sm import PartitionMachine
from .segment_transfer import Manifest, Refused, SegmentFetch, chunk_budget, serve
from .storage import FileStorage

log = logging.getLogger(__name__)
TICK = 0.01
RETRY_TICKS = 5  # a pending request is resent every 50 ms
SESSIONS_MAX = 8  # concurrent requests per group from this node
REQUEST_TIMEOUT_TICKS = 3000  # 30 s, then the outcome is unknown
BUNDLE_IDLE_TICKS = 6000  # a served metadata bundle is dropped after 60 s unused
_U64 = struct.Struct("<Q")


class NotPrimary(Exception):
    """This replica is not the group's primary in normal status: the request was not
    admitted. `primary` = the replica id that is, None during a view change or recovery."""

    def __init__(self, group: int, primary: int | None) -> None:
        self.group, self.primary = group, primary
        super().__init__(f"group {group:#x}: " + (
            f"replica {primary} is the primary" if primary is not None
            else "view change in progress"))


class OutcomeUnknown(Exception):
    """The request was admitted but its reply was lost to a view change, an eviction or a
    timeout: it may commit or not (retry with the same idempotence key)."""


class Bus(Protocol):
    def send(self, replica: int, m: Message) -> None: ...


class SystemClock:
    def now(self) -> int:
        return time.time_ns()


@dataclass(slots=True)
class Session:
    client: bytes
    session: int = 0
    request: int = 0


@dataclass(slots=True)
class Pending:
    session: Session
    message: Message
    view: int
    future: asyncio.Future[bytes]
    sent_at: int
    deadline: int


@dataclass(slots=True)
class GroupRuntime:
    id: int
    replica: Replica
    storage: FileStorage
    sm: StateMachine
    free: list[Session] = field(default_factory=list)
    sessions: int = 0
    pending: dict[bytes, Pending] = field(default_factory=dict)  # by client id
    # futures waiting for a free session
    waiters: deque[asyncio.Future[None]] = field(default_factory=deque)
    seen: tuple[int, str] | None = None  # (view, status) last reported to on_view
    fetch: SegmentFetch | None = None  # state transfer of a partition's segments
    mfetch: mxfer.MetadataFetch | None = None  # state transfer of the metadata group
    fetch_deadline: int = 0
    # why this replica stopped taking part in its group (a disk error while executing a
    # committed op): it neither acknowledges nor votes until the node restarts
    fenced: str | None = None
    commit_due: bool = False  # primary: executed a forwarded request; send Commit next tick
    mstage: asyncio.Task[None] | None = None  # staging a fetched metadata bundle (a thread)


@dataclass(slots=True)
class Served:
    """The metadata bundle this node serves: its manifest computed, then its chunks read, off
    the event loop; its hard links removed once dropped and no thread reads it."""

    bundle: mxfer.Bundle
    used: int  # tick
    task: asyncio.Task[None] | None = None  # computing the manifest
    readers: int = 0  # chunk reads in flight
    dropped: bool = False


class Node:
    """`options(group)` gives each group's consensus options; `on_commit(group, op, prepare)`
    is called after every op a group executes here (metadata groups create and drop partition
    groups through it)."""

    def __init__(self, *, cluster: bytes, replica: int, replica_count: int, root: Path,
                 bus: Bus, options: Callable[[int], Options], clock: Clock | None = None,
                 on_commit: Callable[[int, int, Message], None] | None = None) -> None:
        self.cluster, self.replica, self.n = cluster, replica, replica_count
        self.root = Path(root)
        self.bus = bus
        self.options = options
        self.clock = clock or SystemClock()
        self.on_commit = on_commit
        # on_view(group, view, primary or None): a group's view or status changed
        self.on_view: Callable[[int, int, int | None], None] | None = None
        self.groups: dict[int, GroupRuntime] = {}
        self.now = 0  # ticks
        self.lateness: deque[float] = deque(maxlen=100_000)  # ms each tick came late
        self.watch = LoopWatch()  # logs what the loop runs when it stalls past 1 s
        self._ticker: asyncio.Task[None] | None = None
        self.dropped_unknown_group = 0
        self.transfer_refused = 0  # segment chunks that failed verification
        self.transfers_installed = 0  # segment state transfers installed
        self.transfers_dropped = 0  # segment state transfers given up (then started over)
        # the metadata group's state transfer (metadata_transfer.py): the bundle this node
        # serves (built on a peer's request, dropped when idle), and what to call once a
        # fetched checkpoint is staged (the runtime restarts the node to install it)
        self.metadata_bundle: Served | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # metadata transfer work off the loop
        self._served = itertools.count()  # names the hard-link directory of each bundle
        shutil.rmtree(self.root / mxfer.SERVING, ignore_errors=True)  # left by a crash
        self.on_metadata_staged: Callable[[int], None] | None = None
        # readers waiting for a condition (`wait_until`), checked every tick
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    # -- groups ----------------------------------------------------------------------------
    def group_dir(self, group: int) -> Path:
        return self.root / f"{group:016x}"

    def add_group(self, group: int, sm: StateMachine, fsync: bool) -> GroupRuntime:
        """Open (formatting on first use) the replica of `group` on this node."""
        existing = self.groups.get(group)
        if existing is not None:
            return existing
        path = self.group_dir(group)
        fresh = not (path / "superblock").exists()
        storage = FileStorage(path, fsync, functools.partial(self._write_done, group))
        opts = self.options(group)
        if fresh:
            Replica.format(storage, cluster=self.cluster, replica=self.replica,
                           replica_count=self.n, group=group, options=opts)
        replica = Replica(cluster=self.cluster, replica=self.replica, replica_count=self.n,
                          group=group, storage=storage, state_machine=sm, options=opts,
                          prng=random.Random(int.from_bytes(os.urandom(8), "little")),
                          clock=self.clock)
        rt = self.groups[group] = GroupRuntime(group, replica, storage, sm)
        if hasattr(sm, "attach"):
            sm.attach(replica)
        self._process(rt, replica.drain())
        return rt

    def _drive(self, rt: GroupRuntime, call: Callable[[], list[Action]]) -> None:
        """Run one input of a replica and carry out its actions; a disk error while it
        executes a committed op fences the replica instead of letting it diverge."""
        if rt.fenced is not None:
            return
        try:
            actions = call()
        except (OSError, StorageFailure) as e:
            self._fence(rt, e)
            return
        except RestartToInstall:
            self._restart_to_install(rt)
            return
        self._process(rt, actions)

    def _fence(self, rt: GroupRuntime, e: BaseException | str) -> None:
        rt.fenced = str(e)
        if isinstance(e, str):
            log.critical("cluster group %#x: %s; this replica stops taking part in the group "
                         "(no acknowledgements, no votes)", rt.id, e)
        else:
            log.critical("cluster group %#x: a disk error while executing a committed op "
                         "(%s); this replica stops taking part in the group (no "
                         "acknowledgements, no votes) rather than diverge from the others. "
                         "Restart the node once the disk is fixed: it recovers from its "
                         "journal and peers", rt.id, e)
        if rt.fetch is not None:
            rt.fetch.abandon()
            rt.fetch = None
        if rt.mfetch is not None:
            rt.mfetch.abandon()
            rt.mfetch = None
        for p in rt.pending.values():
            if not p.future.done():
                p.future.set_exception(OutcomeUnknown(f"group {rt.id:#x} is fenced: {e}"))
        rt.pending.clear()
        if self.on_view is not None:
            self.on_view(rt.id, rt.replica.view, None)

    def remove_group(self, group: int, delete_files: bool = True) -> None:
        rt = self.groups.pop(group, None)
        if rt is None:
            return
        for p in rt.pending.values():
            if not p.future.done():
                p.future.set_exception(OutcomeUnknown(f"group {group:#x} was deleted"))
        rt.storage.close()
        if rt.fetch is not None:
            rt.fetch.abandon()
        if delete_files:
            shutil.rmtree(self.group_dir(group), ignore_errors=True)

    # -- inputs ----------------------------------------------------------------------------
    def on_message(self, m: Message) -> None:
        rt = self.groups.get(m.group)
        if rt is None:  # not created here yet (its metadata op is not applied): VSR resends
            self.dropped_unknown_group += 1
            return
        if m.command in (Command.REQUEST_SEGMENT, Command.SEGMENT_CHUNK):
            if rt.fenced is None:
                if isinstance(rt.sm, PartitionMachine):
                    self._on_transfer(rt, m)
                else:
                    self._on_metadata_transfer(rt, m)
            return
        self._drive(rt, functools.partial(rt.replica.on_message, m))

    def _write_done(self, group: int, token: Hashable) -> None:
        rt = self.groups.get(group)
        if rt is not None:
            self._drive(rt, functools.partial(rt.replica.on_write_done, token))

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())
        self.watch.start()

    async def close(self) -> None:
        self.watch.stop()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drop_bundle()
        for group in list(self.groups):
            self.remove_group(group, delete_files=False)

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += TICK
            delay = due - loop.time()
            await asyncio.sleep(max(0.0, delay))
            late = loop.time() - due
            self.lateness.append(late * 1000)
            self.watch.beat()
            if late > 1.0:  # the loop stalled: do not replay a burst of ticks at once
                due = loop.time()
            self.tick()

    def tick(self) -> None:
        self.now += 1
        for rt in list(self.groups.values()):
            if rt.commit_due:
                rt.commit_due = False
                self._drive(rt, rt.replica.send_commit)
            self._drive(rt, rt.replica.tick)
            if rt.pending:
                self._watch(rt)
            if rt.fetch is not None and self.now >= rt.fetch_deadline:
                self._fetch_failed(rt, "no answer")
            mf = rt.mfetch
            if mf is not None and not mf.complete and self.now >= rt.fetch_deadline:
                if mf.ask_again:  # the peer was building the manifest
                    mf.ask_again = False
                    self._mfetch_next(rt)
                else:
                    self._mfetch_failed(rt, "no answer")
            elif mf is not None and mf.done and rt.fenced is None \
                    and not rt.replica.transferring:
                self._restart_to_install(rt)  # its checkpoint is durable
        sv = self.metadata_bundle
        if sv is not None and sv.task is None and self.now - sv.used > BUNDLE_IDLE_TICKS:
            self._drop_bundle()
        for ready, w in self._waiters:
            if not w.done() and ready():
                w.set_result(None)

    # -- actions ---------------------------------------------------------------------------
    def _process(self, rt: GroupRuntime, actions: list[Action]) -> None:
        r = rt.replica
        seen = (r.view, r.status)
        if seen != rt.seen:
            rt.seen = seen
            if self.on_view is not None:
                self.on_view(rt.id, r.view, self.primary(rt.id))
        for a in actions:
            if a[0] == SEND:
                self.bus.send(a[1], a[2])
            elif a[0] == REPLY:
                self._reply(rt, a[2])
            elif a[0] == COMMITTED:
                if rt.pending and not r.is_primary:
                    self._forwarded_done(rt, a[2])
                if self.on_commit is not None:
                    self.on_commit(rt.id, a[1], a[2])
            elif a[0] == FETCH_STATE:
                self._start_fetch(rt, a[1], a[2])

    # -- state transfer of partition segments (segment_transfer.py) -------------------------
    def _start_fetch(self, rt: GroupRuntime, peer: int, state: bytes) -> None:
        sm = rt.sm
        if not isinstance(sm, PartitionMachine):
            self._start_metadata_fetch(rt, peer)
            return
        if rt.fetch is not None:
            self._drive(rt, functools.partial(rt.replica.on_state_fetched, False))
            return
        r = rt.replica
        manifest = Manifest.decode(state)
        if manifest.segments is None:  # written before segment transfer existed
            log.error("cluster group %#x: checkpoint %d of replica %d lists no segments (an "
                      "older pyggy wrote it); waiting for a newer checkpoint", rt.id,
                      r.fetching_checkpoint, peer)
            self.transfers_dropped += 1
            self._drive(rt, functools.partial(rt.replica.on_state_fetched, False))
            return
        peers = [peer] + [p for p in r.others if p != peer]
        log.info("cluster group %#x: fetching the segments of checkpoint %d (offsets up to %d) "
                 "from replica %d", rt.id, r.fetching_checkpoint, manifest.next_offset, peer)
        try:
            rt.fetch = SegmentFetch(sm.log, rt.id, r.fetching_checkpoint, manifest, peers)
        except (OSError, Refused) as e:  # staging only: the live log is untouched
            log.error("cluster group %#x: segment transfer cannot stage: %s", rt.id, e)
            self.transfers_dropped += 1
            self._drive(rt, functools.partial(rt.replica.on_state_fetched, False))
            return
        self._fetch_next(rt)

    def _fetch_next(self, rt: GroupRuntime) -> None:
        fetch = rt.fetch
        assert fetch is not None
        if fetch.done:
            rt.fetch = None
            sm = rt.sm
            assert isinstance(sm, PartitionMachine)
            why = f"state transfer (checkpoint {fetch.checkpoint_op})"

            def installed() -> list[Action]:
                sm.install(fetch.manifest, fetch.staged, why)
                self.transfers_installed += 1
                log.info("cluster group %#x: installed %d segment(s) of checkpoint %d",
                         rt.id, len(fetch.staged), fetch.checkpoint_op)
                return rt.replica.on_state_fetched(True)

            self._drive(rt, installed)
            return
        r = rt.replica
        rt.fetch_deadline = self.now + r.options.repair_interval
        self.bus.send(fetch.target, fetch.request(self.cluster, r.view, self.replica))

    def _fetch_failed(self, rt: GroupRuntime, why: str) -> None:
        fetch = rt.fetch
        assert fetch is not None
        log.warning("cluster group %#x: segment transfer from replica %d: %s", rt.id,
                    fetch.target, why)
        if fetch.failed():
            self._fetch_drop(rt, fetch)
            return
        self._fetch_next(rt)

    def _fetch_drop(self, rt: GroupRuntime, fetch: SegmentFetch) -> None:
        """Give this segment transfer up: the replica hears that no state was fetched."""
        fetch.abandon()
        rt.fetch = None
        self.transfers_dropped += 1
        self._drive(rt, functools.partial(rt.replica.on_state_fetched, False))

    def _on_transfer(self, rt: GroupRuntime, m: Message) -> None:
        sm, r = rt.sm, rt.replica
        if m.command == Command.REQUEST_SEGMENT:
            if not isinstance(sm, PartitionMachine):
                return
            budget = chunk_budget(r.options.snapshot_chunk, r.options.message_size_max)
            flags, entries, body = serve(sm.log, m, budget)
            self.bus.send(m.replica, Message(
                Command.SEGMENT_CHUNK, cluster=self.cluster, view=r.view, replica=self.replica,
                group=rt.id, checkpoint_op=m.checkpoint_op, segment=m.segment, entry=m.entry,
                entries=entries, flags=flags, body=body))
            return
        fetch = rt.fetch
        if fetch is None or not fetch.expects(m):
            return
        try:
            fetch.on_chunk(m)
        except Refused as e:
            fetch.refused += 1
            self.transfer_refused += 1
            self._fetch_failed(rt, f"chunk refused: {e}")
            return
        except OSError as e:  # staging only: give up this attempt, the live log is untouched
            log.error("cluster group %#x: segment transfer cannot stage: %s", rt.id, e)
            self._fetch_drop(rt, fetch)
            return
        self._fetch_next(rt)

    # -- state transfer of the metadata group (metadata_transfer.py) --------------------------
    def _start_metadata_fetch(self, rt: GroupRuntime, peer: int) -> None:
        r = rt.replica
        if self.on_metadata_staged is None:  # nothing here could install it
            self._fence(rt, f"its state is behind every peer's journal (checkpoint "
                            f"{r.fetching_checkpoint} of replica {peer}) and this node cannot "
                            "install a metadata checkpoint")
            return
        if rt.mfetch is not None:  # staged already: waiting for the restart that installs it
            return
        log.warning("cluster group %#x: the metadata state is behind every peer's journal; "
                    "fetching the metadata checkpoint (op >= %d) from replica %d", rt.id,
                    r.fetching_checkpoint, peer)
        rt.mfetch = mxfer.MetadataFetch(self.root, rt.id, r.fetching_checkpoint,
                                        [peer] + [p for p in r.others if p != peer])
        self._mfetch_next(rt)

    def _mfetch_next(self, rt: GroupRuntime) -> None:
        fetch = rt.mfetch
        assert fetch is not None
        r = rt.replica
        if fetch.complete and not fetch.done:  # every chunk written: fsync off the loop
            if rt.mstage is None:
                rt.mstage = self._spawn(self._mfetch_stage(rt, fetch))
            return
        if fetch.done:
            # the checkpoint's consensus state (client table, header) is taken now and made
            # durable, executing nothing after it (the machine refuses: its engine is older
            # than the staged files); then the node restarts to install the files
            op = fetch.manifest.op if fetch.manifest is not None else 0
            log.warning("cluster group %#x: metadata checkpoint at op %d fetched, verified and "
                        "staged", rt.id, op)
            sm = rt.sm
            assert isinstance(sm, MetadataMachine)
            sm.staged = op
            self._drive(rt, functools.partial(r.on_state_fetched, True))
            return
        rt.fetch_deadline = self.now + r.options.repair_interval
        self.bus.send(fetch.target, fetch.request(self.cluster, r.view, self.replica))

    def _restart_to_install(self, rt: GroupRuntime) -> None:
        """The staged checkpoint's consensus state is durable: stop feeding the replica and ask
        for the restart that installs the files (the engine and the doors load them then)."""
        if rt.fenced is not None:
            return
        rt.fenced = "restarting to install a metadata checkpoint"
        self.transfers_installed += 1
        for p in rt.pending.values():
            if not p.future.done():
                p.future.set_exception(OutcomeUnknown(f"group {rt.id:#x}: {rt.fenced}"))
        rt.pending.clear()
        sm = rt.sm
        assert isinstance(sm, MetadataMachine) and self.on_metadata_staged is not None
        self.on_metadata_staged(sm.staged)

    def _mfetch_failed(self, rt: GroupRuntime, why: str) -> None:
        fetch = rt.mfetch
        assert fetch is not None
        log.warning("cluster group %#x: metadata state transfer from replica %d: %s", rt.id,
                    fetch.target, why)
        if fetch.failed():
            self._mfetch_drop(rt, fetch)
            return
        self._mfetch_next(rt)

    def _mfetch_refused(self, rt: GroupRuntime, fetch: mxfer.MetadataFetch,
                        e: mxfer.Refused) -> None:
        fetch.refused += 1
        self.transfer_refused += 1
        self._mfetch_failed(rt, f"refused: {e}")

    def _mfetch_drop(self, rt: GroupRuntime, fetch: mxfer.MetadataFetch) -> None:
        """Give this transfer up: the replica hears that no state was fetched."""
        fetch.abandon()
        rt.mfetch = None
        self.transfers_dropped += 1
        self._drive(rt, functools.partial(rt.replica.on_state_fetched, False))

    def _spawn(self, work: Coroutine[None, None, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _mfetch_stage(self, rt: GroupRuntime, fetch: mxfer.MetadataFetch) -> None:
        try:
            await asyncio.to_thread(fetch.stage)
        except mxfer.Refused as e:
            if rt.mfetch is fetch:
                self._mfetch_refused(rt, fetch, e)
            return
        except OSError as e:  # staging only: the live files are untouched
            if rt.mfetch is fetch:
                log.error("cluster group %#x: metadata transfer cannot stage: %s", rt.id, e)
                self._mfetch_drop(rt, fetch)
            return
        finally:
            rt.mstage = None
        if rt.mfetch is fetch and self.groups.get(rt.id) is rt:
            self._mfetch_next(rt)

    # -- serving the metadata state: snapshot on the loop, manifest and chunks off it --------
    def _answer_metadata(self, rt: GroupRuntime, m: Message, flags: int,
                         body: bytes = b"") -> None:
        self.bus.send(m.replica, Message(
            Command.SEGMENT_CHUNK, cluster=self.cluster, view=rt.replica.view,
            replica=self.replica, group=rt.id, checkpoint_op=m.checkpoint_op,
            segment=m.segment, entry=m.entry, flags=flags, body=body))

    def _serve_metadata(self, rt: GroupRuntime, m: Message) -> None:
        r = rt.replica
        if r.status != NORMAL or r.transferring or r.commit_min < m.checkpoint_op:
            self._answer_metadata(rt, m, mxfer.GONE)
            return
        sv = self.metadata_bundle
        if m.segment != 0:  # a chunk of the bundle whose manifest the fetcher has
            mf = None if sv is None else sv.bundle.manifest
            if sv is None or mf is None or m.segment != mf.op:
                self._answer_metadata(rt, m, mxfer.GONE)
                return
            sv.used = self.now
            sv.readers += 1
            self._spawn(self._serve_chunk(rt, sv, m))
            return
        if sv is not None and sv.bundle.op >= m.checkpoint_op:
            sv.used = self.now
            mf = sv.bundle.manifest
            if mf is not None:
                self._answer_metadata(rt, m, mxfer.MANIFEST, mf.encode())
            else:
                self._answer_metadata(rt, m, mxfer.BUILDING)
            return
        self._drop_bundle()
        try:  # one step of the loop: one state (metadata_transfer.snapshot)
            bundle = mxfer.snapshot(self.root.parent, r.commit_min,
                                    chunk_budget(r.options.snapshot_chunk,
                                                 r.options.message_size_max),
                                    self.root / mxfer.SERVING / f"{next(self._served)}")
        except (OSError, ValueError) as e:
            log.error("cluster group %#x: cannot serve the metadata state: %s", rt.id, e)
            self._answer_metadata(rt, m, mxfer.GONE)
            return
        sv = self.metadata_bundle = Served(bundle, self.now)
        sv.task = self._spawn(self._describe(sv))
        self._answer_metadata(rt, m, mxfer.BUILDING)

    async def _describe(self, sv: Served) -> None:
        try:
            await asyncio.to_thread(sv.bundle.describe)
        except (OSError, ValueError) as e:
            log.error("cluster: cannot serve the metadata state: %s", e)
            if self.metadata_bundle is sv:
                self.metadata_bundle = None
            sv.dropped = True
        finally:
            sv.task = None
            self._release(sv)

    async def _serve_chunk(self, rt: GroupRuntime, sv: Served, m: Message) -> None:
        try:
            flags, body = await asyncio.to_thread(mxfer.serve, sv.bundle, m)
        except OSError as e:
            log.error("cluster group %#x: cannot read the metadata state: %s", rt.id, e)
            flags, body = mxfer.GONE, b""
        finally:
            sv.readers -= 1
            self._release(sv)
        if self.groups.get(rt.id) is rt and rt.fenced is None:
            self._answer_metadata(rt, m, flags, body)

    def _drop_bundle(self) -> None:
        sv, self.metadata_bundle = self.metadata_bundle, None
        if sv is not None:
            sv.dropped = True
            self._release(sv)

    @staticmethod
    def _release(sv: Served) -> None:
        if sv.dropped and sv.task is None and sv.readers == 0:
            sv.bundle.close()

    def _on_metadata_transfer(self, rt: GroupRuntime, m: Message) -> None:
        if m.command == Command.REQUEST_SEGMENT:
            self._serve_metadata(rt, m)
            return
        fetch = rt.mfetch
        if fetch is None or not fetch.expects(m):
            return
        try:
            progressed = fetch.on_chunk(m)
        except mxfer.Refused as e:
            self._mfetch_refused(rt, fetch, e)
            return
        except OSError as e:  # staging only: the live files are untouched
            log.error("cluster group %#x: metadata transfer cannot stage: %s", rt.id, e)
            self._mfetch_drop(rt, fetch)
            return
        if not progressed:  # the peer is building the manifest: ask again at the deadline
            rt.fetch_deadline = self.now + rt.replica.options.repair_interval
            return
        self._mfetch_next(rt)

    def _reply(self, rt: GroupRuntime, m: Message) -> None:
        p = rt.pending.get(m.client)
        if p is None:  # another node's client (a forwarded request): push the commit point
            rt.commit_due = True
            return
        if p.future.done():
            return
        if m.command == Command.EVICTION:
            del rt.pending[m.client]
            p.future.set_exception(OutcomeUnknown("session evicted"))
            return
        if m.request != p.message.request or m.session != p.message.session:
            return
        del rt.pending[m.client]
        p.future.set_result(m.body)

    def _forwarded_done(self, rt: GroupRuntime, prepare: Message) -> None:
        """A forwarded request of ours executed here: answer with the client table's reply."""
        p = rt.pending.get(prepare.client)
        m = None if p is None else p.message
        if p is None or m is None or prepare.session != m.session or \
                prepare.request != m.request or prepare.operation != m.operation:
            return
        entry = rt.replica.client_table.get(prepare.client)
        del rt.pending[prepare.client]
        if p.future.done():
            return
        if entry is None or entry.request != m.request or (
                m.operation != REGISTER and entry.session != m.session):
            p.future.set_exception(OutcomeUnknown("session evicted"))
            return
        p.future.set_result(entry.reply)

    @staticmethod
    def _evicted(rt: GroupRuntime, m: Message) -> bool:
        if m.operation == REGISTER:
            return False
        entry = rt.replica.client_table.get(m.client)
        return entry is None or entry.session != m.session

    def _deliver_request(self, rt: GroupRuntime, m: Message) -> None:
        r = rt.replica
        if r.is_primary:
            self._drive(rt, functools.partial(r.on_message, m))
        elif r.status == NORMAL:
            self.bus.send(r.primary_index, m)

    def _watch(self, rt: GroupRuntime) -> None:
        r = rt.replica
        for client, p in list(rt.pending.items()):
            if r.view != p.view or r.status != NORMAL or self.now >= p.deadline:
                del rt.pending[client]
                if not p.future.done():
                    p.future.set_exception(OutcomeUnknown(
                        "view changed before the reply" if r.view != p.view else "timed out"))
            elif not r.is_primary and self._evicted(rt, p.message):
                # forwarded: the primary's Eviction goes nowhere, but the replicated client
                # table shows it here too
                del rt.pending[client]
                if not p.future.done():
                    p.future.set_exception(OutcomeUnknown("session evicted"))
            elif self.now - p.sent_at >= RETRY_TICKS:
                p.sent_at = self.now
                self._deliver_request(rt, p.message)

    # -- the client side ---------------------------------------------------------------------
    def primary(self, group: int) -> int | None:
        """The replica id of the group's primary as this node sees it, None unless normal."""
        rt = self.groups.get(group)
        if rt is None or rt.replica.status != NORMAL or rt.fenced is not None:
            return None
        return rt.replica.primary_index

    def current(self, group: int) -> bool:
        """This replica has executed every op of `group` it knows to be committed and knows of
        no reason to be behind: normal status (not recovering, not in a view change), not
        transferring state, not fenced (nor restarting to install a checkpoint). A backup
        still learns of commits a heartbeat late; this says what it *knows* it lacks."""
        rt = self.groups.get(group)
        if rt is None or rt.fenced is not None:
            return False
        r = rt.replica
        return r.status == NORMAL and not r.transferring and r.commit_min >= r.commit_max

    async def wait_current(self, group: int, timeout: float | None) -> bool:
        """Wait at most `timeout` s (None: for ever) until `group` is `current` here; whether
        it is."""
        return await self.wait_until(functools.partial(self.current, group), timeout)

    async def wait_until(self, ready: Callable[[], bool], timeout: float | None) -> bool:
        """Wait at most `timeout` s (None: for ever) until `ready()` (checked every tick);
        whether it is."""
        if ready():
            return True
        entry = (ready, asyncio.get_running_loop().create_future())
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(entry[1], timeout)
        except TimeoutError:
            return False
        finally:
            self._waiters.remove(entry)
        return True

    def _admit(self, group: int, forward: bool) -> GroupRuntime:
        rt = self.groups.get(group)
        if rt is None:
            raise NotPrimary(group, None)
        r = rt.replica
        if r.status != NORMAL or rt.fenced is not None or r.transferring:
            raise NotPrimary(group, None)
        if not r.is_primary and not forward:
            raise NotPrimary(group, r.primary_index)
        return rt

    async def submit(self, group: int, operation: int, body: bytes,
                     forward: bool = False) -> bytes:
        """Replicate one operation through `group` and return the reply body once it has
        committed and executed here (on the group's primary; with `forward`, on a backup in
        normal status too: the request goes to the primary)."""
        rt = self._admit(group, forward)
        session = await self._session(rt, forward)
        try:
            session.request += 1
            return await self._send(rt, session, operation, body)
        finally:
            if session.session:
                rt.free.append(session)
            else:  # in doubt: dropped, a waiter may register a new one in its place
                rt.sessions -= 1
            if rt.waiters:
                w = rt.waiters.popleft()
                if not w.done():
                    w.set_result(None)

    async def _session(self, rt: GroupRuntime, forward: bool) -> Session:
        while True:
            if rt.free:
                return rt.free.pop()
            if rt.sessions < SESSIONS_MAX:
                rt.sessions += 1
                s = Session(os.urandom(16))
                try:
                    s.session = _U64.unpack(await self._send(rt, s, REGISTER, b""))[0]
                except BaseException:
                    rt.sessions -= 1
                    raise
                return s
            w: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            rt.waiters.append(w)
            await w
            self._admit(rt.id, forward)

    async def _send(self, rt: GroupRuntime, s: Session, operation: int, body: bytes) -> bytes:
        number = 0 if operation == REGISTER else s.request
        m = Message(Command.REQUEST, cluster=self.cluster, replica=self.replica, group=rt.id,
                    client=s.client, session=s.session, request=number, operation=operation,
                    body=body)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        rt.pending[s.client] = Pending(s, m, rt.replica.view, fut, self.now,
                                       self.now + REQUEST_TIMEOUT_TICKS)
        self._deliver_request(rt, m)
        try:
            return await fut
        except OutcomeUnknown:
            s.session = 0  # a session whose request is in doubt is not reused
            raise

    # -- what the doors and the measurement ask ------------------------------------------------
    def lateness_ms(self) -> dict[str, float]:
        """How late ticks fired (ms): p50, p99, p999, max over the recent ticks."""
        data = sorted(self.lateness)
        if not data:
            return {}

        def pick(q: float) -> float:
            return data[min(len(data) - 1, int(q * len(data)))]

        return {"ticks": len(data), "p50": pick(0.5), "p99": pick(0.99), "p999": pick(0.999),
                "max": data[-1]}
