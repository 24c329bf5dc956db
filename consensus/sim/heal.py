"""Directed runs of the simulator for view changes (docs/cluster.md, finding N-c): three
replicas with the test cluster's timing (10 ms ticks: heartbeat 2 s, view change status
timeout 1 s), a steady workload, and one fault at a time instead of the swarm's: a replica cut
off both ways and healed, a stalled event loop (a paused node: no ticks, its packets wait), and
disks whose writes take up to `write_ticks` (fsync on a loaded machine). Every invariant of
the checker holds throughout (it runs on every event, as in `cluster.Simulation`).

What is measured is the metadata group's views: how many the cluster passes through until
every replica is normal in one view with its primary, at the start and after the fault.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..options import Options
from ..replica import Replica
from ..status import NORMAL
from .cluster import METADATA_GROUP, SimOptions, Simulation
from .disk import DiskFaults
from .network import NetworkFaults

# The timing of pyggy.testing.CLUSTER_TIMING (the process and network-namespace tests) in ticks.
TIMING = Options(pipeline_max=8, journal_slots=64, checkpoint_interval=16, prepare_max=2048,
                 clients_max=8, commit_interval=10, heartbeat_timeout=200, prepare_retransmit=5,
                 view_change_retransmit=10, view_change_status_timeout=100,
                 request_start_view_interval=20, view_probe_attempts_max=3, repair_interval=20,
                 repair_chunk_max=8, snapshot_chunk=1024)
SETTLE_MAX = 6000  # 60 s: a run that needs longer counts as never settling


@dataclass
class Run:
    """Views and ticks of one run: at the start, and from the fault's end (heal or resume)."""

    start_ticks: int | None  # None: no stable primary within SETTLE_MAX
    start_views: int  # views the group passed through before it first settled
    fault_view: int = 0  # the healthy replicas' view when the fault ended
    cut_view: int = 0  # the view of the replica that was cut off (or stalled) then
    settle_ticks: int | None = None
    views_after: int = 0  # views passed after the fault ended (0: none)
    views_during: int = 0  # views passed while the fault lasted

    def __str__(self) -> str:
        return (f"start: {self.start_views} view(s) in {self.start_ticks} ticks; fault: "
                f"{self.views_during} view(s), cut-off replica at view {self.cut_view}; after: "
                f"{self.views_after} view(s) in {self.settle_ticks} ticks")


def sim_options(seed: int, write_ticks: int = 4) -> SimOptions:
    return SimOptions(
        seed=seed, replicas=3, ticks=0, liveness_ticks=0, partitions=1, clients=4,
        budget=1 << 30, client_timeout=50, read_rate=0.05, replica=TIMING.validate(),
        network=NetworkFaults(delay_min=1, delay_mean=2.0, capacity=64),
        disk=DiskFaults(latency_max=write_ticks, crash_tear=0.5), faulty_node=-1,
        crash=0.0, restart=0.0, pause=0.0, pause_mean=1, down_max=0)


class Directed:
    def __init__(self, seed: int, write_ticks: int = 4) -> None:
        self.sim = Simulation(sim_options(seed, write_ticks))
        self.now = 0

    def replicas(self) -> list[Replica]:
        return [node.replicas[METADATA_GROUP] for node in self.sim.nodes]

    def view(self) -> int:
        return max(r.view for r in self.replicas())

    def stable(self) -> bool:
        rs = self.replicas()
        primary = [r for r in rs if r.status == NORMAL and r.is_primary]
        return len(primary) == 1 and all(r.status == NORMAL and r.view == primary[0].view
                                         for r in rs)

    def step(self, ticks: int = 1) -> None:
        for _ in range(ticks):
            self.now += 1
            self.sim.clock.tick = self.now
            self.sim._step(self.now, issue=True)

    def settle(self) -> int | None:
        """Ticks until the group is stable (None: not within SETTLE_MAX)."""
        began = self.now
        while not self.stable():
            if self.now - began >= SETTLE_MAX:
                return None
            self.step()
        return self.now - began

    def primary(self) -> int:
        return next(r.replica for r in self.replicas() if r.status == NORMAL and r.is_primary)


def run(seed: int, *, fault: str, who: str = "backup", ticks: int = 800,
        write_ticks: int = 4) -> Run:
    """`fault`: "isolate" (cut `who` off both ways for `ticks`, then heal) or "stall" (pause
    `who`'s node for `ticks`: its loop runs nothing, what is sent to it waits); `who` is
    "primary" or "backup" (of the metadata group, once it first settled)."""
    d = Directed(seed, write_ticks)
    start = d.settle()
    result = Run(start, d.view())
    if start is None:
        return result
    d.step(100)
    if not d.stable():
        return result
    primary = d.primary()
    x = primary if who == "primary" else (primary + 1) % 3
    before = d.view()
    net = d.sim.network
    if fault == "isolate":
        net.cut = {(x, b) for b in range(3) if b != x} | {(b, x) for b in range(3) if b != x}
    else:
        d.sim.nodes[x].paused_until = d.now + ticks
    d.step(ticks)
    others = max(r.view for r in d.replicas() if r.replica != x)
    result.fault_view, result.cut_view = others, d.replicas()[x].view
    result.views_during = others - before
    net.heal()
    result.settle_ticks = d.settle()
    result.views_after = d.view() - others
    return result
