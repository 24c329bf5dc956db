"""`pyggy-sim`: run seeds of the cluster simulator, in parallel, with a progress bar and a summary.

    pyggy-sim --seed 42 --replicas 3              # one seed, its trace hash and figures
    pyggy-sim --seeds 1000 --jobs 2               # replica counts 1, 3, 5 in turn
    pyggy-sim --seeds 100000 --jobs 2 --quiet     # the long run (docs/consensus.md)
    pyggy-sim --seeds 200 --mutant commit_before_quorum   # must fail

Each failure prints the seed and the one command that replays it; the exit status is 1 if any
seed failed (with `--expect-failure`, for mutants: 1 if none did).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import Iterable, Iterator

from ..replica import MUTANTS
from .cluster import Result, run_seed

DEFAULT_TICKS = 2000
DEFAULT_LIVENESS = 5000


Job = tuple[int, int, int, int, "str | None", str]  # seed, replicas, ticks, liveness, mutant, ...


def replay_command(seed: int, replicas: int, ticks: int, liveness: int, mutant: str | None,
                   replication: str = "star") -> str:
    cmd = f"pyggy-sim --seed {seed} --replicas {replicas} --ticks {ticks}"
    if liveness != DEFAULT_LIVENESS:
        cmd += f" --liveness-ticks {liveness}"
    if replication != "star":
        cmd += f" --replication {replication}"
    return cmd + (f" --mutant {mutant}" if mutant else "")


def _run(job: Job) -> Result:
    return run_seed(*job)


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_many(jobs: list[Job], workers: int) -> Iterator[Result]:
    """Results in completion order; `workers` processes (1 = in this process)."""
    if workers <= 1:
        yield from map(_run, jobs)
        return
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ctx.Pool(workers, initializer=_worker_init) as pool:
        yield from pool.imap_unordered(_run, jobs, chunksize=4)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Summary:
    def __init__(self) -> None:
        self.seeds = self.failed = self.ticks = 0
        self.totals: dict[str, int] = {}
        self.crash_to_view: list[int] = []
        self.latency: list[int] = []
        self.failures: list[Result] = []

    def add(self, r: Result) -> None:
        self.seeds += 1
        self.ticks += r.ticks
        for k, v in r.stats.items():
            self.totals[k] = self.totals.get(k, 0) + v
        self.crash_to_view += r.crash_to_view
        self.latency += r.latency
        if not r.ok:
            self.failed += 1
            self.failures.append(r)

    def lines(self, elapsed: float) -> list[str]:
        t = self.totals
        faults = sum(t.get(k, 0) for k in ("crashes", "restarts", "pauses", "disk_faults",
                                           "network_faults"))
        median = statistics.median(self.crash_to_view) if self.crash_to_view else 0
        latency = statistics.median(self.latency) if self.latency else 0
        p90 = statistics.quantiles(self.latency, n=10)[-1] if len(self.latency) > 1 else 0
        per_op = t.get("messages", 0) / max(t.get("committed", 0), 1)
        per_min = self.seeds / elapsed * 60 if elapsed else 0
        return [
            f"seeds {self.seeds}, failed {self.failed}, ticks {self.ticks:,}, "
            f"wall {elapsed:.1f} s ({per_min:,.0f} seeds/min)",
            f"ops committed {t.get('committed', 0):,} "
            f"({t.get('committed', 0) / max(elapsed, 1e-9):,.0f} simulated ops/s), client acks "
            f"{t.get('acks', 0):,} (latency p50 {latency:.0f} / p90 {p90:.0f} ticks), reads "
            f"checked "
            f"{t.get('reads', 0):,}, replica messages per op {per_op:.1f}",
            f"view changes {t.get('view_changes', 0):,}; faults injected {faults:,} (crashes "
            f"{t.get('crashes', 0):,}, restarts {t.get('restarts', 0):,}, pauses "
            f"{t.get('pauses', 0):,}, disk {t.get('disk_faults', 0):,}, network "
            f"{t.get('network_faults', 0):,})",
            f"repairs {t.get('repaired', 0):,} prepares / {t.get('repair_bytes', 0):,} B; state "
            f"transfers {t.get('transfers', 0):,} / {t.get('transfer_bytes', 0):,} B (data "
            f"fetched {t.get('state_fetches', 0):,}, fetches failed "
            f"{t.get('state_fetch_failures', 0):,}); primary "
            f"crash -> new view: median {median:.0f} ticks over {len(self.crash_to_view):,}",
        ]


def _bar(done: int, total: int, failed: int, start: float) -> str:
    width = 30
    filled = width * done // max(total, 1)
    elapsed = time.monotonic() - start
    rate = done / elapsed if elapsed else 0.0
    eta = (total - done) / rate if rate else 0.0
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} seeds, {failed} failed, "
            f"{rate:.1f}/s, eta {eta:.0f} s ")


def parse_replicas(text: str) -> list[int]:
    counts = [int(x) for x in text.split(",") if x]
    if not counts or any(not 1 <= c <= 6 for c in counts):
        raise argparse.ArgumentTypeError("replica counts are 1..6, comma separated")
    return counts


def build_jobs(seeds: Iterable[int], replicas: list[int], ticks: int, liveness: int,
               mutant: str | None, replication: str = "star") -> list[Job]:
    return [(s, replicas[s % len(replicas)], ticks, liveness, mutant, replication)
            for s in seeds]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pyggy-sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, help="run this one seed")
    p.add_argument("--seeds", type=int, help="run this many seeds")
    p.add_argument("--seed-start", type=int, help="first seed of --seeds (default: random)")
    p.add_argument("--replicas", type=parse_replicas, default=[1, 3, 5],
                   help="replica count, or a list used in turn per seed (default 1,3,5)")
    p.add_argument("--ticks", type=int, default=DEFAULT_TICKS,
                   help="ticks of faults per seed (10 ms each)")
    p.add_argument("--liveness-ticks", type=int, default=DEFAULT_LIVENESS,
                   help="budget to converge after faults stop (L1)")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--mutant", choices=sorted(MUTANTS), help="a deliberately broken replica")
    p.add_argument("--replication", choices=("star", "chain"), default="star",
                   help="how the primary sends prepares (default star)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--expect-failure", action="store_true",
                   help="exit 0 only if some seed failed (for mutants)")
    a = p.parse_args(argv)
    if (a.seed is None) == (a.seeds is None):
        p.error("give exactly one of --seed or --seeds")
    if a.seed is not None:
        seeds = [a.seed]
        replicas = a.replicas if len(a.replicas) == 1 else [a.replicas[a.seed % len(a.replicas)]]
        jobs = build_jobs(seeds, replicas, a.ticks, a.liveness_ticks, a.mutant, a.replication)
    else:
        start = a.seed_start if a.seed_start is not None else random.SystemRandom().randrange(
            1 << 40)
        print(f"pyggy-sim: seeds {start}..{start + a.seeds - 1}, replicas "
              f"{','.join(map(str, a.replicas))}, {a.ticks} ticks, {a.jobs} jobs"
              f"{', mutant ' + a.mutant if a.mutant else ''}", flush=True)
        jobs = build_jobs(range(start, start + a.seeds), a.replicas, a.ticks, a.liveness_ticks,
                          a.mutant, a.replication)
    summary = Summary()
    show_bar = not a.quiet and a.seeds is not None and sys.stderr.isatty()
    began = time.monotonic()
    signal.signal(signal.SIGTERM, _interrupt)  # stopping a long run still prints its summary
    try:
        _run_all(a, jobs, summary, show_bar, began)
    except KeyboardInterrupt:
        print(f"interrupted after {summary.seeds} of {len(jobs)} seeds")
    if show_bar:
        sys.stderr.write("\n")
    for line in summary.lines(time.monotonic() - began):
        print(line, flush=True)
    if a.expect_failure:
        return 0 if summary.failed else 1
    return 1 if summary.failed or summary.seeds < len(jobs) else 0


def _run_all(a: argparse.Namespace, jobs: list[Job], summary: Summary, show_bar: bool,
             began: float) -> None:
    for r in run_many(jobs, max(1, min(a.jobs, os.cpu_count() or 1))):
        summary.add(r)
        if a.quiet and summary.seeds % 1000 == 0:
            rate = summary.seeds / (time.monotonic() - began) * 60
            print(f"progress: {summary.seeds}/{len(jobs)} seeds, {summary.failed} failed, "
                  f"{rate:,.0f} seeds/min", flush=True)
        if a.seed is not None:
            print(f"seed {r.seed}: {'ok' if r.ok else 'FAILED'} after {r.ticks} ticks, trace "
                  f"hash {r.trace_hash}")
        if not r.ok:
            if show_bar:
                sys.stderr.write("\n")
            print(f"FAILED seed {r.seed} (replicas {r.replicas}): {r.error}", flush=True)
            replay = replay_command(r.seed, r.replicas, a.ticks, a.liveness_ticks, a.mutant,
                                    a.replication)
            print(f"  replay: {replay}", flush=True)
        if show_bar:
            sys.stderr.write(_bar(summary.seeds, len(jobs), summary.failed, began))
            sys.stderr.flush()
