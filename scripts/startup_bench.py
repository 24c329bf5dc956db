"""Cold start of `pyggy-server`: time from spawn to each port accepting a connection and to
its first answer, the server's CPU time by then, and its idle resident memory; medians.

    .venv/bin/python scripts/startup_bench.py [--runs 21] [--json PATH]

Each run spawns `<this python> -m pyggy --with-default-root-credentials` (defaults: the native
TCP and Kafka listeners, no HTTP) on free loopback ports, twice: on an empty data directory (a
first start: the root user is created) and again on the directory the first left (a restart).
A run connects to each port every millisecond until the connection is accepted ("accepts":
the kernel completed the handshake; pyggy-server listens before it imports the server, so this
is early and the request waits in the backlog), sends a request on it at once (native: Ping;
Kafka: ApiVersions v0) and notes when its answer arrives ("answers": the door serves). The
server's CPU time is read when the native port accepts and when both answered. Idle memory is
a third start of each run (a restart): no request (the first Kafka request loads that door's
handlers), VmRSS read `--settle` seconds after the "kafka listening on" line. Run it with
the interpreter of a regular install (`pip install .`: bytecode compiled) to measure what a
user gets; a source checkout with PYTHONDONTWRITEBYTECODE=1 compiles every module at each
start.
"""

from __future__ import annotations

import argparse
import json
import platform
import selectors
import socket
import statistics
import struct
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pyggy.bench.cost import cpu_seconds
from pyggy.testing import PyggyServer

# a request each door answers without a login: native Ping (length 4, command 1); Kafka
# ApiVersions v0 (size, api key 18, version 0, correlation id 1, null client id)
REQUESTS = {"tcp": struct.pack("<II", 4, 1),
            "kafka": struct.pack(">ihhih", 10, 18, 0, 1, -1)}


def _connect(port: int) -> socket.socket | None:
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=0.5)
    except OSError:
        return None


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_start(workdir: Path) -> dict[str, float]:
    """Start a server on `workdir`'s data directory; its timings in ms and RSS in MiB."""
    server = PyggyServer(workdir)
    t0 = time.perf_counter()
    server.start(wait=False)
    assert server.pid is not None
    out: dict[str, float] = {}
    socks: list[socket.socket] = []
    try:
        with selectors.DefaultSelector() as waiting:
            for name, port in (("tcp", server.tcp_port), ("kafka", server.kafka_port)):
                while (sock := _connect(port)) is None:
                    if not server.running or time.perf_counter() - t0 > 60:
                        raise RuntimeError("server did not start:\n" + server.format_logs())
                    time.sleep(0.001)
                out[f"{name}_ms"] = (time.perf_counter() - t0) * 1000
                if name == "tcp":
                    out["accept_cpu_ms"] = cpu_seconds(server.pid) * 1000
                socks.append(sock)
                sock.sendall(REQUESTS[name])
                waiting.register(sock, selectors.EVENT_READ, name)
            while waiting.get_map():
                for key, _ in waiting.select(timeout=60):
                    assert key.fileobj.recv(4096), f"{key.data}: closed without an answer"
                    out[f"{key.data}_answer_ms"] = (time.perf_counter() - t0) * 1000
                    waiting.unregister(key.fileobj)
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError("no answer:\n" + server.format_logs())
        out["cpu_ms"] = cpu_seconds(server.pid) * 1000
    finally:
        for sock in socks:
            sock.close()
        server.close()
    return out


def idle_rss(workdir: Path, settle: float) -> float:
    """VmRSS (MiB) of a server started on `workdir`, `settle` s after both doors serve."""
    server = PyggyServer(workdir)
    try:
        server.start(wait=False)
        assert server.pid is not None
        server.wait_for_log("kafka listening on", timeout=60)
        time.sleep(settle)
        return _rss_mb(server.pid)
    finally:
        server.close()


def _no_bytecode_warning() -> str | None:
    """Why this run would measure compiling pyggy, not starting it: its modules have no
    cached bytecode and none will be written (PYTHONDONTWRITEBYTECODE=1, as on an editable
    checkout where it was always set: 2-3x the CPU of a start, BENCHMARKS.md)."""
    import importlib.util

    import pyggy.testing

    cached = importlib.util.cache_from_source(pyggy.testing.__file__)
    if sys.flags.dont_write_bytecode and not Path(cached).exists():
        return (f"warning: no bytecode cache for pyggy ({cached}) and PYTHONDONTWRITEBYTECODE "
                "is set: every start compiles pyggy's modules")
    return None


def main(argv: list[str] | None = None) -> int:
    if (warning := _no_bytecode_warning()) is not None:
        print(warning, file=sys.stderr)
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
            runs["first start"].append(one_start(workdir))
            runs["restart"].append(one_start(workdir))
            runs["restart"][-1]["rss_mib"] = idle_rss(workdir, args.settle)
    print(f"{args.runs} runs each, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{platform.node()}, {platform.platform()}, python {platform.python_version()}, "
          f"load average {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}\n")
    print("| data directory | native port accepts / answers, ms | Kafka port accepts / answers, "
          "ms | server CPU at accept / answers, ms | idle RSS, MiB |")
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for kind, rows in runs.items():
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        lo = {k: min(r[k] for r in rows) for k in rows[0]}
        medians[kind] = med
        doors = [f"{med[f'{d}_ms']:.0f} / {med[f'{d}_answer_ms']:.0f} (min {lo[f'{d}_ms']:.0f} "
                 f"/ {lo[f'{d}_answer_ms']:.0f})" for d in ("tcp", "kafka")]
        rss = f"{med['rss_mib']:.1f}" if "rss_mib" in med else "–"
        print(f"| {kind} | {doors[0]} | {doors[1]} | {med['accept_cpu_ms']:.0f} / "
              f"{med['cpu_ms']:.0f} | {rss} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "medians": medians,
                                               "date": datetime.now(UTC).isoformat()},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
