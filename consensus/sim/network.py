"""A simulated packet network between replicas and clients (after TigerBeetle's packet simulator).

Each packet gets a delay (minimum + exponential), so packets reorder; it may be lost, corrupted
(one flipped bit) or duplicated (replayed later); a directed path holds at most `capacity`
packets in flight (more are dropped); a path may be clogged for a while (packets wait); replicas
may be partitioned symmetrically or one-way (packets across the cut are dropped when they would
arrive). Endpoints
0..n-1 are replicas, n.. are clients (clients are never partitioned, only lossy).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass


@dataclass
class NetworkFaults:
    loss: float = 0.0
    replay: float = 0.0
    corrupt: float = 0.0  # a bit flipped in transit (the receiver's checksum must catch it)
    delay_min: int = 1
    delay_mean: float = 3.0
    capacity: int = 64
    partition: float = 0.0  # chance per tick to partition (when whole)
    unpartition: float = 0.0  # chance per tick to heal (after `stability` ticks)
    stability: int = 100
    asymmetric: float = 0.5  # share of partitions that cut one direction only
    clog: float = 0.0  # chance per tick that one path clogs
    clog_mean: float = 50.0


class Network:
    def __init__(self, prng: random.Random, faults: NetworkFaults, replicas: int) -> None:
        self.prng, self.faults, self.replicas = prng, faults, replicas
        self.queue: list[tuple[int, int, int, int, bytes]] = []
        self.seq = 0
        self.inflight: dict[tuple[int, int], int] = {}
        self.cut: set[tuple[int, int]] = set()
        self.cut_since = 0
        self.clogged: dict[tuple[int, int], int] = {}
        self.events = 0

    def send(self, now: int, src: int, dst: int, data: bytes) -> None:
        f = self.faults
        path = (src, dst)
        if f.loss and self.prng.random() < f.loss:
            return
        count = self.inflight.get(path, 0)
        if count >= f.capacity:
            return
        if f.corrupt and self.prng.random() < f.corrupt:
            damaged = bytearray(data)
            damaged[self.prng.randrange(len(damaged))] ^= 1 << self.prng.randrange(8)
            data = bytes(damaged)
        copies = 2 if f.replay and self.prng.random() < f.replay else 1
        for _ in range(copies):
            due = now + f.delay_min + int(self.prng.expovariate(1.0 / f.delay_mean))
            due = max(due, self.clogged.get(path, 0), now + 1)
            self.seq += 1
            heapq.heappush(self.queue, (due, self.seq, src, dst, data))
            self.inflight[path] = self.inflight.get(path, 0) + 1

    def deliver(self, now: int) -> list[tuple[int, int, bytes]]:
        out = []
        queue = self.queue
        while queue and queue[0][0] <= now:
            _, _, src, dst, data = heapq.heappop(queue)
            self.inflight[(src, dst)] -= 1
            if (src, dst) not in self.cut:
                out.append((src, dst, data))
        return out

    def step(self, now: int) -> None:
        """Partitions and clogs come and go."""
        f, r = self.faults, self.prng
        if self.cut:
            if now - self.cut_since >= f.stability and r.random() < f.unpartition:
                self.cut = set()
                self.events += 1
        elif f.partition and self.replicas > 1 and r.random() < f.partition:
            self.cut = self._make_cut()
            self.cut_since = now
            self.events += 1
        if f.clog and r.random() < f.clog:
            src, dst = r.randrange(self.replicas), r.randrange(self.replicas)
            if src != dst:
                self.clogged[(src, dst)] = now + 1 + int(r.expovariate(1.0 / f.clog_mean))
                self.events += 1

    def _make_cut(self) -> set[tuple[int, int]]:
        r, n = self.prng, self.replicas
        if r.random() < 0.5:
            side = {r.randrange(n)}  # isolate one replica
        else:
            side = {i for i in range(n) if r.random() < 0.5} or {0}
        one_way = r.random() < self.faults.asymmetric
        cut = set()
        for a in side:
            for b in range(n):
                if b not in side:
                    cut.add((b, a))
                    if not one_way:
                        cut.add((a, b))
        return cut

    def heal(self) -> None:
        self.cut = set()
        self.clogged = {}
