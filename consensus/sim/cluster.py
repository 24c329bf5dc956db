"""One seeded run: a cluster of replicas (one metadata group + partition groups), clients, a
network and disks, faults for `ticks` ticks, then healing and a liveness budget.

Everything random comes from one seed through salted sub-streams (options, network, disks,
faults, workload, replicas), so a seed replays exactly; the trace hash covers every delivered
packet and fault.
"""

from __future__ import annotations

import random
import struct
import traceback
from dataclasses import dataclass, field

import xxhash

from ..journal import FRAME, HEADERS, PREPARES
from ..message import DecodeError, decode, encode
from ..options import Options
from ..quorums import quorums
from ..replica import Replica
from ..replica_state import Action
from ..status import COMMITTED, FETCH_STATE, NORMAL, REPLY, SEND
from ..storage import MemoryStorage
from ..superblock import ZONE as SUPERBLOCK
from ..superblock import Superblock
from . import models
from .checker import Checker, Violation
from .disk import Disk, DiskFaults
from .network import Network, NetworkFaults
from .workload import Client

CLUSTER = xxhash.xxh3_128_digest(b"pyggy-sim")
METADATA_GROUP = 1 << 63
TICK_NS = 10_000_000


def partition_group(index: int) -> int:
    """stream 1, topic 1, partition `index`, packed as Iggy packs partition group ids."""
    return 1 << 32 | 1 << 20 | index


def _sub(seed: int, salt: str) -> random.Random:
    return random.Random(xxhash.xxh3_64_intdigest(f"{seed}:{salt}".encode()))


@dataclass
class SimOptions:
    seed: int
    replicas: int
    ticks: int
    liveness_ticks: int
    partitions: int
    clients: int
    budget: int
    client_timeout: int
    read_rate: float
    replica: Options
    network: NetworkFaults
    disk: DiskFaults
    faulty_node: int  # -1: no faulty disk
    crash: float
    restart: float
    pause: float
    pause_mean: int
    down_max: int
    mutant: str | None = None
    # partitions as pyggy's: records outlive crashes, a checkpoint only names them, and a
    # replica that lacks them fetches them through the driver (FETCH_STATE)
    external_state: bool = False
    fetch_failure: float = 0.0  # chance that such a fetch fails (the driver gives up)

    def describe(self) -> str:
        r, nf = self.replica, self.network
        return (f"replicas={self.replicas} partitions={self.partitions} clients={self.clients} "
                f"pipeline={r.pipeline_max} slots={r.journal_slots} checkpoint="
                f"{r.checkpoint_interval} loss={nf.loss:.2f} replay={nf.replay:.2f} "
                f"crash={self.crash:.4f} faulty_disk={self.faulty_node} "
                f"external_state={self.external_state}")


def swarm(seed: int, replicas: int, ticks: int, liveness_ticks: int = 5000,
          mutant: str | None = None, replication: str = "star") -> SimOptions:
    """The options of one seed (TigerBeetle's swarm testing: every knob drawn per seed)."""
    r = _sub(seed, "options")
    pipeline = r.choice((2, 4, 8))
    slots = r.choice((32, 64))
    checkpoint = r.choice((8, 16))
    heartbeat = r.randrange(60, 140)
    opts = Options(pipeline_max=pipeline, journal_slots=slots, checkpoint_interval=checkpoint,
                   prepare_max=2048, clients_max=r.randrange(2, 9), commit_interval=10,
                   heartbeat_timeout=heartbeat, prepare_retransmit=r.randrange(5, 15),
                   view_change_retransmit=10, view_change_status_timeout=r.randrange(50, 100),
                   request_start_view_interval=20, view_probe_attempts_max=3,
                   repair_interval=r.randrange(6, 16), repair_chunk_max=8,
                   snapshot_chunk=r.choice((256, 1024, 4096)), replication=replication)
    calm = r.random() < 0.15  # some seeds run without network faults
    net = NetworkFaults(
        loss=0.0 if calm else r.uniform(0, 0.15), replay=0.0 if calm else r.uniform(0, 0.2),
        corrupt=0.0 if calm else r.uniform(0, 0.01),
        delay_min=r.randrange(0, 3), delay_mean=r.uniform(1, 8), capacity=r.randrange(8, 64),
        partition=0.0 if calm else r.uniform(0, 0.004), unpartition=r.uniform(0.005, 0.05),
        stability=r.randrange(50, 200), asymmetric=r.random(),
        clog=0.0 if calm else r.uniform(0, 0.005), clog_mean=r.uniform(20, 200))
    faulty = r.randrange(replicas) if replicas > 1 and r.random() < 0.7 else -1
    disk = DiskFaults(latency_max=r.randrange(1, 8), crash_tear=r.uniform(0.5, 1.0),
                      bit_rot=r.uniform(0, 0.01), read_fault=r.uniform(0, 0.05),
                      write_fault=r.uniform(0, 0.02), misdirect=r.uniform(0, 0.02))
    partitions = r.randrange(1, 3)
    return SimOptions(
        seed=seed, replicas=replicas, ticks=ticks, liveness_ticks=liveness_ticks,
        partitions=partitions, clients=r.randrange(partitions + 1, partitions + 6),
        budget=r.randrange(15, 60), client_timeout=r.randrange(30, 80),
        read_rate=r.uniform(0.02, 0.2), replica=opts.validate(), network=net, disk=disk,
        faulty_node=faulty, crash=r.uniform(0.0002, 0.003), restart=r.uniform(0.005, 0.05),
        pause=r.uniform(0, 0.002), pause_mean=r.randrange(10, 150),
        down_max=r.randrange(1, replicas + 1), mutant=mutant,
        # drawn from their own stream, so every other knob of a seed stays as it was
        external_state=(x := _sub(seed, "external")).random() < 0.5,
        fetch_failure=x.uniform(0, 0.3))


class SimClock:
    def __init__(self) -> None:
        self.tick = 0

    def now(self) -> int:
        return self.tick * TICK_NS


@dataclass
class Result:
    seed: int
    replicas: int
    ok: bool
    error: str = ""
    trace_hash: str = ""
    ticks: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    # ticks from a primary's crash to the next normal view (per crash) and from a request to
    # its reply (per acknowledged request)
    crash_to_view: list[int] = field(default_factory=list)
    latency: list[int] = field(default_factory=list)


class Node:
    def __init__(self, index: int) -> None:
        self.index = index
        self.up = True
        self.paused_until = 0
        self.down_since = 0
        self.disks: dict[int, Disk] = {}
        self.replicas: dict[int, Replica] = {}
        self.stores: dict[int, models.SegmentStore] = {}  # external_state: survive crashes
        self.restarts = 0


class Simulation:
    def __init__(self, o: SimOptions) -> None:
        self.o = o
        self.n = o.replicas
        self.clock = SimClock()
        self.groups = [METADATA_GROUP] + [partition_group(i) for i in range(o.partitions)]
        self.q = quorums(self.n)
        self.checker = Checker(self.n, self.q.replication)
        self.network = Network(_sub(o.seed, "network"), o.network, self.n)
        self.faults_rng = _sub(o.seed, "faults")
        self.read_rng = _sub(o.seed, "reads")
        self.hasher = xxhash.xxh3_64()
        self.size_max = o.replica.message_size_max
        self.stats = {"view_changes": 0, "crashes": 0, "restarts": 0, "pauses": 0,
                      "disk_faults": 0, "network_faults": 0, "committed": 0, "repaired": 0,
                      "repair_bytes": 0, "transfers": 0, "transfer_bytes": 0,
                      "decode_errors": 0, "messages": 0}
        self.crash_to_view: list[int] = []
        self.latency: list[int] = []
        self.fetch_rng = _sub(o.seed, "fetch")
        # FETCH_STATE in flight: (due tick, node, its restarts, group, peer, manifest)
        self.fetches: list[tuple[int, int, int, int, int, bytes]] = []
        self.stats["state_fetches"] = self.stats["state_fetch_failures"] = 0
        self._primary_crashes: dict[int, tuple[int, int]] = {}  # group -> (tick, view)
        self.nodes = [Node(i) for i in range(self.n)]
        probe = Superblock(MemoryStorage(), cluster=CLUSTER, group=0, replica=0,
                           replica_count=self.n, vh_max=o.replica.pipeline_max + 1)
        self.units = {PREPARES: FRAME + o.replica.prepare_max, HEADERS: FRAME + 256,
                      SUPERBLOCK: probe.copy_size}
        for node in self.nodes:
            for g in self.groups:
                node.disks[g] = self._disk(node.index, g)
                Replica.format(node.disks[g], cluster=CLUSTER, replica=node.index,
                               replica_count=self.n, group=g, options=o.replica)
                node.disks[g].complete_all()
            self._start(node)
        wl = _sub(o.seed, "workload")
        self.clients = []
        for i in range(o.clients):
            g = i % len(self.groups)
            self.clients.append(Client(i, self.n + i, self.groups[g], g > 0, CLUSTER,
                                       random.Random(wl.getrandbits(64)), self.n, o.budget,
                                       o.client_timeout))
        self.client_by_id = {c.id: c for c in self.clients}

    # -- construction ----------------------------------------------------------------------------

    def _disk(self, node: int, group: int) -> Disk:
        faults = self.o.disk
        if node != self.o.faulty_node:
            faults = DiskFaults(latency_max=faults.latency_max, crash_tear=faults.crash_tear)
        else:
            faults = DiskFaults(**{**faults.__dict__, "faulty": True})

        def on_durable(zone: str, offset: int, data: bytes) -> None:
            self.checker.on_durable(node, group, zone, offset, data)

        return Disk(_sub(self.o.seed, f"disk:{node}:{group}"), faults, self.units, on_durable)

    def _start(self, node: Node) -> None:
        for g in self.groups:
            model: models.MetadataModel | models.PartitionModel
            if g == METADATA_GROUP:
                model = models.MetadataModel()
            elif self.o.external_state:
                model = models.ExternalPartitionModel(
                    node.stores.setdefault(g, models.SegmentStore()))
            else:
                model = models.PartitionModel()
            rng = _sub(self.o.seed, f"replica:{node.index}:{g}:{node.restarts}")
            r = Replica(cluster=CLUSTER, replica=node.index, replica_count=self.n, group=g,
                        storage=node.disks[g], state_machine=model, options=self.o.replica,
                        prng=rng, clock=self.clock, mutant=self.o.mutant)
            node.replicas[g] = r
            self.checker.superblocks[(node.index, g)] = (r.superblock, node.disks[g])
            self.checker.on_restart(node.index, g, r)
            self._process(node, g, r, r.drain())  # what recovery executed

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> Result:
        o = self.o
        now = 0
        try:
            for now in range(1, o.ticks + o.liveness_ticks + 1):
                self.clock.tick = now
                faulting = now <= o.ticks
                if now == o.ticks + 1:
                    self._heal(now)
                if faulting:
                    self._inject(now)
                self._step(now, issue=faulting)
                if not faulting and self._converged():
                    for g in self.groups:
                        self.checker.quiesced(g, [n.replicas[g] for n in self.nodes])
                    return self._result(True, "", now)
            return self._result(False, f"L1: no convergence within {o.liveness_ticks} ticks "
                                       f"after faults stopped: {self._describe_stuck()}", now)
        except Violation as e:
            return self._result(False, str(e), now)
        except Exception as e:  # a replica crashed on an assertion or a bug
            return self._result(False, f"replica raised {type(e).__name__}: {e}\n"
                                       + traceback.format_exc(limit=6), now)

    def _step(self, now: int, issue: bool) -> None:
        self._complete_fetches(now)
        for src, dst, data in self.network.deliver(now):
            self.hasher.update(struct.pack("<IHH", now, src, dst))
            self.hasher.update(data)
            self._deliver(now, src, dst, data)
        for node in self.nodes:
            if not node.up or node.paused_until > now:
                continue
            for g, disk in node.disks.items():
                r = node.replicas[g]
                for token in disk.tick(now):
                    self._process(node, g, r, r.on_write_done(token))
            for g, r in node.replicas.items():
                self._process(node, g, r, r.tick())
                self.checker.on_tick(node.index, g, r)
        for c in self.clients:
            for to, raw in c.tick(now, issue):
                if c.inflight is not None and c.inflight.sent == now and c.inflight.attempts == 0:
                    self.checker.on_request(c.id, c.inflight.session, c.inflight.number,
                                            c.inflight.operation, c.inflight.body)
                self.network.send(now, c.endpoint, to, raw)
        if self.o.partitions and self.read_rng.random() < self.o.read_rate:
            node = self.nodes[self.read_rng.randrange(self.n)]
            g = self.groups[1 + self.read_rng.randrange(self.o.partitions)]
            if node.up and node.paused_until <= now:
                got = node.replicas[g].read(models.read_query(self.read_rng.randrange(64), 16))
                if got is not None:
                    self.checker.on_read(node.index, g, got[1])

    def _deliver(self, now: int, src: int, dst: int, data: bytes) -> None:
        try:
            m = decode(data, self.size_max)
        except DecodeError:
            self.stats["decode_errors"] += 1
            return
        if dst >= self.n:
            c = self.clients[dst - self.n]
            req = c.on_reply(now, m)
            if req is not None:
                self.latency.append(now - req.sent)
                self.checker.on_ack(c.group, c.id, req.operation, req.number, req.body, m)
            return
        node = self.nodes[dst]
        if not node.up:
            return
        if node.paused_until > now:
            self.network.send(node.paused_until, src, dst, data)  # delivered after the pause
            return
        r = node.replicas.get(m.group)
        if r is not None:
            self._process(node, m.group, r, r.on_message(m))

    def _process(self, node: Node, g: int, r: Replica, actions: list[Action]) -> None:
        if self._primary_crashes:
            self._watch_view(g, r)
        if not actions:
            return
        now = self.clock.tick
        for a in actions:
            if a[0] == SEND:
                m = a[2]
                raw = encode(m)
                self.stats["messages"] += 1
                self.checker.on_send(node.index, g, r, m)
                self.network.send(now, node.index, a[1], raw)
            elif a[0] == REPLY:
                c = self.client_by_id.get(a[1])
                if c is not None:
                    self.network.send(now, node.index, c.endpoint, encode(a[2]))
            elif a[0] == COMMITTED:
                self.checker.on_commit(node.index, g, a[1], a[2], a[3])
            elif a[0] == FETCH_STATE:
                due = now + 1 + self.fetch_rng.randrange(40)
                self.fetches.append((due, node.index, node.restarts, g, a[1], a[2]))

    def _complete_fetches(self, now: int) -> None:
        """The driver's side of FETCH_STATE: copy the records a manifest names from the peer's
        store (if it is up and still holds them, and the seed's failure draw allows), then tell
        the replica; a restarted replica's fetch is forgotten with it."""
        due = [f for f in self.fetches if f[0] <= now]
        if not due:
            return
        self.fetches = [f for f in self.fetches if f[0] > now]
        for _, index, restarts, g, peer, manifest in due:
            node = self.nodes[index]
            if not node.up or node.restarts != restarts:
                continue
            if node.paused_until > now:
                self.fetches.append((node.paused_until, index, restarts, g, peer, manifest))
                continue
            log_start, count, marker, digest = models.parse_manifest(manifest)
            source = self.nodes[peer].stores.get(g)
            ok = (self.nodes[peer].up and source is not None and len(source.records) >= count
                  and models.records_digest(source.records[:count]) == digest
                  and self.fetch_rng.random() >= self.o.fetch_failure)
            self.hasher.update(b"fetch%d:%d:%d" % (index, g, ok))
            r = node.replicas[g]
            if ok:
                assert source is not None
                store = node.stores[g]
                store.records = source.records[:count]
                store.log_start, store.marker = log_start, marker
                # the store is now the checkpoint's (pyggy's install): ops above it run again
                store.replies = {op: r for op, r in store.replies.items() if op <= marker}
                self.stats["state_fetches"] += 1
                cp = r.fetching_checkpoint
                self._process(node, g, r, r.on_state_fetched(True))
                if cp and r.commit_min < cp:  # (a store not matching it: restore raises)
                    self.checker.fail("S4", f"replica {index} group {g}: the state fetched for "
                                            f"checkpoint {cp} was not installed as it")
            else:
                self.stats["state_fetch_failures"] += 1
                self._process(node, g, r, r.on_state_fetched(False))

    # -- faults ----------------------------------------------------------------------------------

    def _inject(self, now: int) -> None:
        o, rng = self.o, self.faults_rng
        self.network.step(now)
        down = sum(1 for n in self.nodes if not n.up or n.paused_until > now)
        for node in self.nodes:
            if node.up:
                if down < o.down_max and rng.random() < o.crash:
                    self._crash(now, node)
                    down += 1
                elif down < o.down_max and node.paused_until <= now and rng.random() < o.pause:
                    node.paused_until = now + 1 + int(rng.expovariate(1.0 / o.pause_mean))
                    self.stats["pauses"] += 1
                    self.hasher.update(b"pause%d" % node.index)
                    down += 1
            elif now - node.down_since > 20 and rng.random() < o.restart:
                self._restart(now, node)

    def _crash(self, now: int, node: Node) -> None:
        for g, r in node.replicas.items():
            if r.status == NORMAL and r.is_primary:
                self._primary_crashes[g] = (now, r.view)
            self._harvest(r)
            node.disks[g].crash()
        node.up = False
        node.down_since = now
        node.paused_until = 0
        self.stats["crashes"] += 1
        self.hasher.update(b"crash%d" % node.index)

    def _restart(self, now: int, node: Node) -> None:
        node.up = True
        node.restarts += 1
        self.stats["restarts"] += 1
        self.hasher.update(b"restart%d" % node.index)
        self._start(node)

    def _heal(self, now: int) -> None:
        self.network.heal()
        self.network.faults = NetworkFaults(delay_min=self.o.network.delay_min,
                                            delay_mean=self.o.network.delay_mean,
                                            capacity=max(self.o.network.capacity, 32))
        for node in self.nodes:
            node.paused_until = 0
            for disk in node.disks.values():
                disk.faults = DiskFaults(latency_max=disk.faults.latency_max)
            if not node.up:
                self._restart(now, node)

    def _watch_view(self, g: int, r: Replica) -> None:
        crash = self._primary_crashes.get(g)
        if crash is not None and r.status == NORMAL and r.view > crash[1]:
            self.crash_to_view.append(self.clock.tick - crash[0])
            del self._primary_crashes[g]

    # -- liveness and results ----------------------------------------------------------------------

    def _converged(self) -> bool:
        if any(c.inflight is not None for c in self.clients):
            return False
        for g in self.groups:
            rs = [n.replicas[g] for n in self.nodes]
            primary = [r for r in rs if r.status == NORMAL and r.is_primary]
            if len(primary) != 1:
                return False
            p = primary[0]
            if p.commit_min != p.op or p.transferring:
                return False
            for r in rs:
                if (r.status != NORMAL or r.view != p.view or r.commit_min != p.commit_min
                        or r.transferring):
                    return False
        return True

    def _describe_stuck(self) -> str:
        parts = []
        for g in self.groups:
            for node in self.nodes:
                r = node.replicas[g]
                parts.append(f"g{self.groups.index(g)}/r{r.replica}:{r.status[:4]} v{r.view} "
                             f"lv{r.log_view} op{r.op} c{r.commit_min}/{r.commit_max}"
                             f"{' xfer' if r.transferring else ''}")
        busy = sum(1 for c in self.clients if c.inflight is not None)
        return "; ".join(parts) + f"; {busy} clients waiting"

    def _harvest(self, r: Replica) -> None:
        for k in ("view_changes", "repaired", "repair_bytes", "transfers", "transfer_bytes"):
            self.stats[k] += r.stats[k]
            r.stats[k] = 0

    def _result(self, ok: bool, error: str, now: int) -> Result:
        for node in self.nodes:
            for r in node.replicas.values():
                self._harvest(r)
        self.stats["committed"] = sum(len(log) for log in self.checker.canonical.values())
        self.stats["disk_faults"] = sum(d.injected for n in self.nodes for d in n.disks.values())
        self.stats["network_faults"] = self.network.events
        self.stats["acks"] = self.checker.acks
        self.stats["reads"] = self.checker.reads
        return Result(self.o.seed, self.n, ok, error, self.hasher.hexdigest(), now, self.stats,
                      self.crash_to_view, self.latency)


def run_seed(seed: int, replicas: int, ticks: int, liveness_ticks: int = 5000,
             mutant: str | None = None, replication: str = "star") -> Result:
    return Simulation(swarm(seed, replicas, ticks, liveness_ticks, mutant, replication)).run()

