"""Cold start of `pyggy-server`: time from spawn to each port accepting a connection, the
server's CPU time by then, and its idle resident memory; medians over many runs.

    .venv/bin/python scripts/startup_bench.py [--runs 21] [--json PATH]

Each run spawns `<this python> -m pyggy --with-default-root-credentials` (defaults: the native
TCP and Kafka listeners, no HTTP) on free loopback ports, twice: on an empty data directory (a
first start: the root user is created) and again on the directory the first left (a restart).
A run connects to the port every millisecond until it is accepted; after the Kafka port opens,
the server idles for `--settle` seconds before VmRSS is read, then gets SIGTERM. Run it with
the interpreter of a regular install (`pip install .`: bytecode compiled) to measure what a
user gets; a source checkout with PYTHONDONTWRITEBYTECODE=1 compiles every module at each
start.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pyggy.bench.cost import cpu_seconds
from pyggy.testing import PyggyServer


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_start(workdir: Path, settle: float) -> dict[str, float]:
    """Start a server on `workdir`'s data directory; its timings in ms and RSS in MiB."""
    server = PyggyServer(workdir)
    t0 = time.perf_counter()
    server.start(wait=False)
    assert server.pid is not None
    out: dict[str, float] = {}
    try:
        for name, port in (("tcp_ms", server.tcp_port), ("kafka_ms", server.kafka_port)):
            while not _accepts(port):
                if not server.running or time.perf_counter() - t0 > 60:
                    raise RuntimeError("server did not start:\n" + server.format_logs())
                time.sleep(0.001)
            out[name] = (time.perf_counter() - t0) * 1000
        out["cpu_ms"] = cpu_seconds(server.pid) * 1000
        time.sleep(settle)
        out["rss_mib"] = _rss_mb(server.pid)
    finally:
        server.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=21, help="starts of each kind (21)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds idle before RSS is read (1)")
    ap.add_argument("--json", metavar="PATH", help="write every run and the medians")
    args = ap.parse_args(argv)
    runs: dict[str, list[dict[str, float]]] = {"first start": [], "restart": []}
    with tempfile.TemporaryDirectory(prefix="pyggy-startup-") as tmp:
        for i in range(args.runs):
            workdir = Path(tmp) / str(i)
            runs["first start"].append(one_start(workdir, args.settle))
            runs["restart"].append(one_start(workdir, args.settle))
    print(f"{args.runs} runs each, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{platform.node()}, {platform.platform()}, python {platform.python_version()}, "
          f"load average {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}\n")
    print("| data directory | native port, ms | Kafka port, ms | server CPU by then, ms "
          "| RSS, MiB |")
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for kind, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        lo = {k: min(r[k] for r in rows) for k in rows[0]}
        medians[kind] = med
        print(f"| {kind} | {med['tcp_ms']:.0f} (min {lo['tcp_ms']:.0f}) | "
              f"{med['kafka_ms']:.0f} (min {lo['kafka_ms']:.0f}) | {med['cpu_ms']:.0f} | "
              f"{med['rss_mib']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "medians": medians,
                                               "date": datetime.now(UTC).isoformat()},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
