"""The long campaign: many seeds of the cluster scenarios, each checked.

    python -m pyggy.checker.campaign --seeds 20                 # every scenario, seeds 0..19
    python -m pyggy.checker.campaign --seeds 5 --first 100 --scenario kill_primary --seconds 60
    python -m pyggy.checker.campaign --seeds 10 --scenario n1 --scenario n5   # as root: netns

Each run gets a fresh three-node cluster under a temporary directory (kept when a run fails,
with the nodes' logs) and prints its outcome and failover figures; the exit status is 1 if any
run failed. A summary of the failover figures (min / median / max) ends the output.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from pyggy.checker.net_scenarios import NET_SCENARIOS
from pyggy.checker.scenarios import SCENARIOS, Outcome

ALL = {**SCENARIOS, **NET_SCENARIOS}  # n1..n5 run each node in a network namespace (root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyggy.checker.campaign",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="runs per scenario")
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument("--scenario", action="append", choices=sorted(ALL),
                        help="repeatable; all when omitted")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="load after the fault (P1: the whole run; n5: the flapping)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    root = Path(args.workdir or tempfile.mkdtemp(prefix="pyggy-campaign-"))
    figures: dict[str, list[float]] = defaultdict(list)
    failed = 0
    for name in args.scenario or list(ALL):
        for seed in range(args.first, args.first + args.seeds):
            workdir = root / f"{name}-{seed}"
            started = time.monotonic()
            try:
                outcome: Outcome | str = ALL[name](workdir, seed, seconds=args.seconds)
            except Exception as e:  # a scenario that cannot finish is a failed run
                outcome = f"{name} seed {seed}: FAILED: {type(e).__name__}: {e}"
            ok = isinstance(outcome, Outcome) and outcome.ok
            print(f"{outcome}\n  ({time.monotonic() - started:.0f} s, {workdir})", flush=True)
            if isinstance(outcome, Outcome):
                for k, v in outcome.figures.items():
                    figures[f"{name}: {k}"].append(v)
            if ok:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                failed += 1
    print(f"\n{failed} failed run(s); figures (min / median / max, n):")
    for k, vs in sorted(figures.items()):
        print(f"  {k}: {min(vs):.2f} / {statistics.median(vs):.2f} / {max(vs):.2f} s, "
              f"n={len(vs)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
