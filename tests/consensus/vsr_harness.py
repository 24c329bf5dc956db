"""A tiny hand-driven cluster for replica unit tests: real replicas, real codec, in-memory storage.

Messages travel as encoded bytes through one FIFO; the test decides what is delivered, dropped,
held, crashed or restarted, so each scenario reads as a story.
"""

from __future__ import annotations

import random

from pyggy.consensus.message import Command, Message, decode, encode
from pyggy.consensus.options import Options
from pyggy.consensus.replica import Replica
from pyggy.consensus.sim import models
from pyggy.consensus.state_machine import REGISTER
from pyggy.consensus.status import COMMITTED, FETCH_STATE, REPLY, SEND
from pyggy.consensus.storage import MemoryStorage

CLUSTER = bytes(range(16))
GROUP = 1 << 32 | 1 << 20
SMALL = Options(pipeline_max=4, journal_slots=16, checkpoint_interval=4, prepare_max=1024,
                clients_max=4, commit_interval=5, heartbeat_timeout=40, prepare_retransmit=5,
                view_change_retransmit=5, view_change_status_timeout=40,
                request_start_view_interval=5, view_probe_attempts_max=3, repair_interval=5,
                repair_chunk_max=8, snapshot_chunk=64)


class Clock:
    def __init__(self) -> None:
        self.t = 0

    def now(self) -> int:
        return self.t


class Harness:
    def __init__(self, n: int, options: Options = SMALL, seed: int = 1,
                 machine: type[models.PartitionModel] = models.PartitionModel) -> None:
        self.n, self.options, self.seed, self.machine = n, options, seed, machine
        self.clock = Clock()
        self.storages = [MemoryStorage() for _ in range(n)]
        for i, s in enumerate(self.storages):
            Replica.format(s, cluster=CLUSTER, replica=i, replica_count=n, group=GROUP,
                           options=options)
            s.take_done()
        self.boots = [0] * n
        self.replicas: list[Replica | None] = [self._boot(i) for i in range(n)]
        self.queue: list[tuple[int, bytes]] = []  # (destination replica, bytes)
        self.replies: list[Message] = []
        self.commits: list[list[tuple[int, Message, bool]]] = [[] for _ in range(n)]
        self.sent: list[tuple[int, int, Message]] = []  # (from, to, message)
        self.fetches: list[tuple[int, int, bytes]] = []  # FETCH_STATE: (replica, peer, state)
        self.hold_writes: set[int] = set()
        self.held: dict[int, list] = {i: [] for i in range(n)}
        self.drop = lambda src, dst, m: False
        for i in range(n):
            self._take(i, self.replicas[i].drain())

    def _boot(self, i: int) -> Replica:
        self.boots[i] += 1
        return Replica(cluster=CLUSTER, replica=i, replica_count=self.n, group=GROUP,
                       storage=self.storages[i], state_machine=self.machine(),
                       options=self.options, prng=random.Random(self.seed * 100 + i * 10
                                                                + self.boots[i]),
                       clock=self.clock)

    def _take(self, i: int, actions: list[tuple]) -> None:
        for a in actions:
            if a[0] == SEND:
                m = a[2]
                self.sent.append((i, a[1], m))
                if not self.drop(i, a[1], m):
                    self.queue.append((a[1], encode(m)))
            elif a[0] == REPLY:
                self.replies.append(decode(encode(a[2]), 1 << 20))
            elif a[0] == COMMITTED:
                self.commits[i].append((a[1], a[2], a[3]))
            elif a[0] == FETCH_STATE:
                self.fetches.append((i, a[1], a[2]))

    # -- driving ---------------------------------------------------------------------------------

    def crash(self, i: int) -> None:
        self.replicas[i] = None
        self.held[i] = []
        self.storages[i].take_done()  # in-memory storage: what was written stays

    def restart(self, i: int) -> Replica:
        r = self._boot(i)
        self.replicas[i] = r
        self._take(i, r.drain())
        return r

    def send_request(self, client: bytes, session: int, request: int, operation: int,
                     body: bytes, to: int | None = None) -> None:
        m = Message(Command.REQUEST, cluster=CLUSTER, group=GROUP, client=client,
                    session=session, request=request, operation=operation, body=body)
        for r in range(self.n) if to is None else [to]:
            self.queue.append((r, encode(m)))

    def step(self) -> None:
        """Deliver what is queued, complete writes, tick every live replica once."""
        self.clock.t += 10_000_000
        queue, self.queue = self.queue, []
        for dst, data in queue:
            r = self.replicas[dst]
            if r is not None:
                self._take(dst, r.on_message(decode(data, self.options.message_size_max)))
        for i, r in enumerate(self.replicas):
            if r is None:
                continue
            done = self.storages[i].take_done()
            if i in self.hold_writes:
                self.held[i] += done
                continue
            done = self.held[i] + done
            self.held[i] = []
            for token in done:
                self._take(i, r.on_write_done(token))
        for i, r in enumerate(self.replicas):
            if r is not None:
                self._take(i, r.tick())

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()

    def until(self, predicate, steps: int = 2000) -> None:
        for _ in range(steps):
            if predicate():
                return
            self.step()
        raise AssertionError("condition not reached")

    def primary(self) -> Replica:
        live = [r for r in self.replicas if r is not None and r.status == "normal"
                and r.is_primary]
        assert len(live) == 1, [(r.replica, r.status, r.view) for r in self.replicas if r]
        return live[0]

    def has_primary(self) -> bool:
        return any(r is not None and r.status == "normal" and r.is_primary
                   for r in self.replicas)

    def ask(self, client: bytes, session: int, request: int, operation: int, body: bytes,
            steps: int = 2000) -> Message:
        """Send a request to every replica, again every 20 steps, until it is answered."""
        for step in range(steps):
            reply = next((m for m in self.replies if m.client == client and (
                m.command == Command.REPLY and m.request == request
                or m.command == Command.EVICTION and m.session == session)), None)
            if reply is not None:
                return reply
            if step % 20 == 0:
                self.send_request(client, session, request, operation, body)
            self.step()
        raise AssertionError("request not answered")

    def register(self, client: bytes) -> int:
        return self.ask(client, 0, 0, REGISTER, b"").op

    def append(self, client: bytes, session: int, request: int, records: list[bytes]) -> Message:
        return self.ask(client, session, request, models.APPEND, models.append_body(records))

    def reply_for(self, client: bytes, request: int) -> Message | None:
        return next((m for m in self.replies if m.client == client and m.request == request
                     and m.command == Command.REPLY), None)
