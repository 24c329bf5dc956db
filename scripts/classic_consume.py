"""Classic (0.8) consume, builds side by side: `iggy-bench pinned-consumer` against pyggys.

    .venv/bin/python scripts/classic_consume.py [--peers pyggy,pyggy@/other/.venv/bin/python]
        [--rounds 6] [--batches 300] [--json PATH]

Every peer is a fresh server (`pyggy@PYTHON`: the pyggy another interpreter imports, e.g. a
checkout of main, for a before/after comparison in one run) filled once by `iggy-bench
pinned-producer` (``--batches`` × 1000 messages × 1000 B); then `--rounds` rounds of
`pinned-consumer` over the same data, the peers alternating round by round (the first peer of
a round changes every round). Per run: the MB/s and p50 batch latency `iggy-bench` prints and the
server's CPU seconds per GB polled (/proc/<pid>/stat, 10 ms ticks; the consumer's logins
included). The Iggy 0.8.0 `iggy-bench` is read as scripts/iggy_compare.py reads it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyggy.bench.cost import cpu_seconds  # noqa: E402
from pyggy.testing import PyggyServer  # noqa: E402
from scripts.consume_after_produce import OtherPyggy  # noqa: E402
from scripts.iggy_compare import iggy_bench  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", default="pyggy")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--messages-per-batch", type=int, default=1000)
    ap.add_argument("--message-size", type=int, default=1000)
    ap.add_argument("--iggy-dir", type=Path, default=Path(os.environ.get(
        "PYGGY_IGGY08_DIR", Path.home() / ".cache/pyggy/iggy08")))
    ap.add_argument("--run-timeout", type=float, default=300.0)
    ap.add_argument("--json", metavar="PATH")
    args = ap.parse_args()
    bench = args.iggy_dir / "iggy-bench"
    names = args.peers.split(",")
    gb = args.batches * args.messages_per_batch * args.message_size / 1e9
    runs: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="pyggy-cpoll-") as tmp:
        servers: dict[str, PyggyServer] = {}
        try:
            for i, name in enumerate(names):
                work = Path(tmp) / f"peer{i}"
                servers[name] = (OtherPyggy(work, name.split("@", 1)[1])
                                 if name.startswith("pyggy@") else PyggyServer(work))
                servers[name].start()
                iggy_bench(bench, "pinned-producer", servers[name].tcp_address, args)
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for name in order:
                    pid = servers[name].pid or 0
                    cpu0 = cpu_seconds(pid)
                    mbs, p50 = iggy_bench(bench, "pinned-consumer", servers[name].tcp_address,
                                          args)
                    runs[name].append((mbs, p50, (cpu_seconds(pid) - cpu0) / gb))
                    print(f"round {r} {name}: {mbs:.0f} MB/s p50 {p50:.2f} ms "
                          f"{runs[name][-1][2]:.3f} CPU-s/GB", flush=True)
        finally:
            for server in servers.values():
                server.close()
    print("| peer | MB/s median (min–max) | p50 ms median | CPU-s/GB median (min–max) |")
    print("|---|---:|---:|---:|")
    for name in names:
        rs = runs[name]
        mb, p5, cpu = ([x[k] for x in rs] for k in range(3))
        print(f"| {name} | {statistics.median(mb):.0f} ({min(mb):.0f}–{max(mb):.0f}) | "
              f"{statistics.median(p5):.2f} | {statistics.median(cpu):.3f} "
              f"({min(cpu):.3f}–{max(cpu):.3f}) |")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
