"""The node runtime: one `Replica` per group on the event loop, a 10 ms ticker, the actions
carried out, and the client side the doors use (`await node.submit(group, operation, body)`).

Groups are the metadata group and one per partition (ids packed as Iggy packs them, roster.py);
each keeps its consensus files under `<data>/cluster/<group id, hex>/`. The node is a VSR
client of its own groups: it holds a few registered sessions per group (one request in flight
each), sends a request to the local replica while that replica is the primary in normal status,
resends it every `RETRY_TICKS` (a full pipeline drops requests silently, as Iggy's does) and
resolves the caller with the reply. Outcomes a door maps to its codes:

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
import logging
import os
import random
import shutil
import struct
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pyggy.consensus.message import Command, Message
from pyggy.consensus.options import Options
from pyggy.consensus.replica import Replica
from pyggy.consensus.replica_state import Action, Clock
from pyggy.consensus.state_machine import REGISTER, StateMachine
from pyggy.consensus.status import COMMITTED, NORMAL, REPLY, SEND

from .storage import FileStorage

log = logging.getLogger(__name__)
TICK = 0.01
RETRY_TICKS = 5  # a pending request is resent every 50 ms
SESSIONS_MAX = 8  # concurrent requests per group from this node
REQUEST_TIMEOUT_TICKS = 3000  # 30 s, then the outcome is unknown
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
        self._ticker: asyncio.Task[None] | None = None
        self.dropped_unknown_group = 0

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

    def remove_group(self, group: int, delete_files: bool = True) -> None:
        rt = self.groups.pop(group, None)
        if rt is None:
            return
        for p in rt.pending.values():
            if not p.future.done():
                p.future.set_exception(OutcomeUnknown(f"group {group:#x} was deleted"))
        rt.storage.close()
        if delete_files:
            shutil.rmtree(self.group_dir(group), ignore_errors=True)

    # -- inputs ----------------------------------------------------------------------------
    def on_message(self, m: Message) -> None:
        rt = self.groups.get(m.group)
        if rt is None:  # not created here yet (its metadata op is not applied): VSR resends
            self.dropped_unknown_group += 1
            return
        self._process(rt, rt.replica.on_message(m))

    def _write_done(self, group: int, token: Hashable) -> None:
        rt = self.groups.get(group)
        if rt is not None:
            self._process(rt, rt.replica.on_write_done(token))

    def start(self) -> None:
        self._ticker = asyncio.get_running_loop().create_task(self._tick_loop())

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
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
            if late > 1.0:  # the loop stalled: do not replay a burst of ticks at once
                due = loop.time()
            self.tick()

    def tick(self) -> None:
        self.now += 1
        for rt in list(self.groups.values()):
            self._process(rt, rt.replica.tick())
            if rt.pending:
                self._watch(rt)

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
            elif a[0] == COMMITTED and self.on_commit is not None:
                self.on_commit(rt.id, a[1], a[2])

    def _reply(self, rt: GroupRuntime, m: Message) -> None:
        p = rt.pending.get(m.client)
        if p is None or p.future.done():
            return
        if m.command == Command.EVICTION:
            del rt.pending[m.client]
            p.future.set_exception(OutcomeUnknown("session evicted"))
            return
        if m.request != p.message.request or m.session != p.message.session:
            return
        del rt.pending[m.client]
        p.future.set_result(m.body)

    def _watch(self, rt: GroupRuntime) -> None:
        r = rt.replica
        for client, p in list(rt.pending.items()):
            if r.view != p.view or r.status != NORMAL or self.now >= p.deadline:
                del rt.pending[client]
                if not p.future.done():
                    p.future.set_exception(OutcomeUnknown(
                        "view changed before the reply" if r.view != p.view else "timed out"))
            elif self.now - p.sent_at >= RETRY_TICKS:
                p.sent_at = self.now
                self._process(rt, r.on_message(p.message))

    # -- the client side ---------------------------------------------------------------------
    def primary(self, group: int) -> int | None:
        """The replica id of the group's primary as this node sees it, None unless normal."""
        rt = self.groups.get(group)
        if rt is None or rt.replica.status != NORMAL:
            return None
        return rt.replica.primary_index

    def _admit(self, group: int) -> GroupRuntime:
        rt = self.groups.get(group)
        if rt is None:
            raise NotPrimary(group, None)
        r = rt.replica
        if r.status != NORMAL:
            raise NotPrimary(group, None)
        if not r.is_primary:
            raise NotPrimary(group, r.primary_index)
        return rt

    async def submit(self, group: int, operation: int, body: bytes) -> bytes:
        """Replicate one operation through `group` and return the reply body once it has
        committed and executed here (this node must be the group's primary)."""
        rt = self._admit(group)
        session = await self._session(rt)
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

    async def _session(self, rt: GroupRuntime) -> Session:
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
            self._admit(rt.id)

    async def _send(self, rt: GroupRuntime, s: Session, operation: int, body: bytes) -> bytes:
        number = 0 if operation == REGISTER else s.request
        m = Message(Command.REQUEST, cluster=self.cluster, group=rt.id, client=s.client,
                    session=s.session, request=number, operation=operation, body=body)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        rt.pending[s.client] = Pending(s, m, rt.replica.view, fut, self.now,
                                       self.now + REQUEST_TIMEOUT_TICKS)
        self._process(rt, rt.replica.on_message(m))
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
