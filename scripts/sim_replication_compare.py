"""Star vs chain replication in the simulator, on the same seeds (figures for BENCHMARKS.md).

Each seed's swarm options are kept except the faults: no crashes, pauses, partitions, clogs or
disk faults, and a fixed packet loss, so the latency measured is replication's own. Prints, per
replica count and loss: client acknowledgements, latency p50/p90 (ticks of 10 ms, request sent
to reply received) and replica messages per committed op.

    python scripts/sim_replication_compare.py [--seeds 60] [--jobs 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import statistics

from pyggy.consensus.sim.cluster import Simulation, swarm
from pyggy.consensus.sim.disk import DiskFaults
from pyggy.consensus.sim.network import NetworkFaults


def run(job: tuple[int, int, float, str]) -> tuple[int, float, str, bool, list[int], int, int]:
    seed, replicas, loss, replication = job
    o = swarm(seed, replicas, 2000, replication=replication)
    o = dataclasses.replace(
        o, crash=0.0, pause=0.0, faulty_node=-1, disk=DiskFaults(latency_max=o.disk.latency_max),
        network=NetworkFaults(loss=loss, delay_min=o.network.delay_min,
                              delay_mean=o.network.delay_mean, capacity=64))
    r = Simulation(o).run()
    return (replicas, loss, replication, r.ok, r.latency, r.stats["messages"],
            r.stats["committed"])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=60)
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    jobs = [(s, n, loss, mode) for n in (3, 5) for loss in (0.0, 0.05, 0.15)
            for mode in ("star", "chain") for s in range(a.seeds)]
    rows: dict[tuple, list] = {}
    with multiprocessing.get_context("fork").Pool(a.jobs) as pool:
        for n, loss, mode, ok, latency, messages, committed in pool.imap(run, jobs, chunksize=4):
            assert ok, (n, loss, mode)
            row = rows.setdefault((n, loss, mode), [[], 0, 0])
            row[0] += latency
            row[1] += messages
            row[2] += committed
    print("| replicas | loss | replication | acks | latency p50 / p90 (ticks) | messages per op |")
    print("|---:|---:|---|---:|---:|---:|")
    for (n, loss, mode), (latency, messages, committed) in rows.items():
        p90 = statistics.quantiles(latency, n=10)[-1]
        print(f"| {n} | {loss:.0%} | {mode} | {len(latency):,} | "
              f"{statistics.median(latency):.0f} / {p90:.0f} | {messages / committed:.1f} |")


if __name__ == "__main__":
    main()
