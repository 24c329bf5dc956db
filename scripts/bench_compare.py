"""Run the same Kafka-protocol workloads against pyggy, Apache Kafka and Tansu; print ratios.

    .venv/bin/python scripts/bench_compare.py [--rounds 5] [--messages 300000] [--json PATH]
        [--peers pyggy,kafka,tansu,pyggy@/other/checkout/.venv/bin/python]

Starts the three brokers side by side on loopback (each on its own free port): pyggy's Kafka
door (`python -m pyggy`, defaults: no fsync), a real Apache Kafka broker from the interop
fixture (JVM from the Maven jars, or Docker, or REAL_KAFKA_BOOTSTRAP), and Tansu with its
memory storage engine (interop_tests/tansu.py). Each round runs, for every peer in turn (the
order rotates between rounds), one produce phase then one consume phase of pyggy-bench's Kafka
workload: librdkafka (confluent-kafka) processes, 1 producer then 1 consumer, one partition,
acks as given, a fresh topic per run. The table gives the median of the rounds for each peer
and the ratio pyggy / peer (above 1 means pyggy is faster, or for latency, memory and CPU
per GB, larger).
Also reported: time from spawning a broker to its Kafka port accepting connections, its
resident memory right after start and at its peak (VmHWM) at the end, and the cost figure:
the broker process's CPU seconds (user + system, /proc/<pid>/stat, pyggy/bench/cost.py) per GB
produced, per GB consumed, and per GB moved in both phases together (lower is cheaper). A peer
`pyggy@PYTHON` is the pyggy that interpreter imports (another checkout's venv): a before/after
comparison in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interop_tests.kafka_broker.broker import port_answers, start_real_kafka  # noqa: E402
from interop_tests.tansu import Tansu, resolve_binary  # noqa: E402
from pyggy.bench import runner  # noqa: E402
from pyggy.bench import workload as w  # noqa: E402
from pyggy.testing import PyggyServer  # noqa: E402
from scripts.consume_after_produce import OtherPyggy  # noqa: E402

PEERS = ("pyggy", "kafka", "tansu")


def rss_mb(pid: int | None, field: str = "VmRSS") -> float:
    """A process's resident set (or VmHWM, its peak) in MB, from /proc."""
    if pid is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return float("nan")


class Peer:
    """A started broker: name, Kafka bootstrap address, pid, start-up seconds, close()."""

    def __init__(self, name: str, bootstrap: str, pid: int | None, startup_s: float,
                 close: Callable[[], object]) -> None:
        self.name, self.bootstrap, self.pid, self.startup_s = name, bootstrap, pid, startup_s
        self.close = close
        self.idle_rss_mb = float("nan")


def _until_port(address: str, t0: float, timeout: float = 60.0) -> float:
    host, port = address.rsplit(":", 1)
    while not port_answers(host, int(port), timeout=0.2):
        if time.perf_counter() - t0 > timeout:
            raise RuntimeError(f"{address} did not accept connections")
        time.sleep(0.002)
    return time.perf_counter() - t0


def start_pyggy(workdir: Path, python: str | None = None) -> Peer:
    """pyggy from this venv, or (`python`) as another interpreter imports it."""
    if python is None:
        server = PyggyServer(workdir / "pyggy")
    else:
        server = OtherPyggy(workdir / f"pyggy-{abs(hash(python))}", python)
    t0 = time.perf_counter()
    server.start(wait=False)
    startup = _until_port(server.kafka_address, t0)
    return Peer("pyggy" if python is None else f"pyggy@{python}", server.kafka_address,
                server.pid, startup, server.close)


def start_kafka(workdir: Path) -> Peer:
    t0 = time.perf_counter()
    broker = start_real_kafka(workdir / "kafka")
    startup = time.perf_counter() - t0  # includes StorageTool format (a JVM run of its own)
    proc = getattr(broker, "_proc", None)
    return Peer("kafka", broker.bootstrap, proc.pid if proc else None, startup, broker.close)


def start_tansu(workdir: Path) -> Peer:
    binary = resolve_binary()
    t0 = time.perf_counter()
    tansu = Tansu(binary).start()
    startup = time.perf_counter() - t0
    return Peer("tansu", tansu.bootstrap, tansu.pid, startup, tansu.close)


STARTERS = {"pyggy": start_pyggy, "kafka": start_kafka, "tansu": start_tansu}


def one_run(peer: Peer, args: argparse.Namespace) -> dict[str, float]:
    p = w.Params(mode="pinned-consumer", protocol="kafka", address=peer.bootstrap,
                 message_size=args.message_size, messages_per_batch=args.batch,
                 total_messages=args.messages, acks=args.acks,
                 prefix=f"cmp-{peer.name.split('@')[0]}-{time.time_ns() % 10**12}",
                 # the broker's own process only (not a Docker proxy holding the port)
                 server_pids=(peer.pid,) if peer.pid is not None else ())
    produced, consumed = runner.produce_then_consume(p, progress=not args.quiet)
    prod, cons = produced["stats"][0], consumed["stats"][0]
    if prod["messages"] != cons["messages"]:
        raise RuntimeError(f"{peer.name}: produced {prod['messages']}, consumed "
                           f"{cons['messages']}")
    nan = float("nan")
    cost_in, cost_out = produced.get("cost"), consumed.get("cost")
    cpu_in = cost_in["server_cpu_s"] if cost_in else nan
    cpu_out = cost_out["server_cpu_s"] if cost_out else nan
    gb_in, gb_out = prod["bytes"] / 1e9, cons["bytes"] / 1e9
    return {"produce_mb_s": prod["mb_per_s"], "produce_msgs_s": prod["msgs_per_s"],
            "produce_p99_ms": prod["p99_ms"], "consume_mb_s": cons["mb_per_s"],
            "consume_msgs_s": cons["msgs_per_s"], "consume_p99_ms": cons["p99_ms"],
            "cpu_s_per_gb_in": cpu_in / gb_in if gb_in else nan,
            "cpu_s_per_gb_out": cpu_out / gb_out if gb_out else nan,
            "cpu_s_per_gb": (cpu_in + cpu_out) / (gb_in + gb_out) if gb_in + gb_out else nan}


METRICS = (
    ("produce_mb_s", "produce MB/s", "{:,.1f}"),
    ("produce_msgs_s", "produce msgs/s", "{:,.0f}"),
    ("produce_p99_ms", "produce p99 ack ms", "{:,.1f}"),
    ("consume_mb_s", "consume MB/s", "{:,.1f}"),
    ("consume_msgs_s", "consume msgs/s", "{:,.0f}"),
    ("consume_p99_ms", "consume p99 poll ms", "{:,.1f}"),
    ("cpu_s_per_gb_in", "server CPU-s per GB in (produce)", "{:,.2f}"),
    ("cpu_s_per_gb_out", "server CPU-s per GB out (consume)", "{:,.2f}"),
    ("cpu_s_per_gb", "server CPU-s per GB moved (in + out)", "{:,.2f}"),
    ("startup_s", "start → Kafka port open, s", "{:,.2f}"),
    ("idle_rss_mb", "RSS after start, MB", "{:,.0f}"),
    ("peak_rss_mb", "peak RSS at end, MB", "{:,.0f}"),
)


def table(medians: dict[str, dict[str, float]], names: list[str]) -> str:
    others = [n for n in names if n != "pyggy"]
    head = (["metric (median)"] + names + [f"pyggy / {n}" for n in others])
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for key, label, fmt in METRICS:
        row = [label] + [fmt.format(medians[n][key]) for n in names]
        for n in others:
            peer = medians[n][key]
            row.append(f"{medians['pyggy'][key] / peer:.2f}" if peer else "–")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="runs per peer (5); medians")
    ap.add_argument("--messages", type=int, default=300_000, help="records per run (300,000)")
    ap.add_argument("--message-size", type=int, default=1000, help="record value bytes (1000)")
    ap.add_argument("--batch", type=int, default=1000,
                    help="records per produce batch / consume() call (1000)")
    ap.add_argument("--acks", default="1", help="producer acks (1)")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset of "
                    + ", ".join(PEERS))
    ap.add_argument("--json", metavar="PATH", help="write every run and the medians as JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    names = [n for n in args.peers.split(",") if n]
    if "pyggy" not in names or any(n not in PEERS and not n.startswith("pyggy@")
                                   for n in names):
        ap.error(f"--peers must include pyggy and name only {', '.join(PEERS)} or pyggy@PYTHON")

    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    peers: dict[str, Peer] = {}
    with tempfile.TemporaryDirectory(prefix="pyggy-compare-") as tmp:
        try:
            for n in names:
                peers[n] = start_pyggy(Path(tmp), n.split("@", 1)[1]) if "@" in n else \
                    STARTERS[n](Path(tmp))
                time.sleep(2.0)  # let it settle before reading its idle memory
                peers[n].idle_rss_mb = rss_mb(peers[n].pid)
                print(f"{n}: {peers[n].bootstrap} up in {peers[n].startup_s:.2f} s, "
                      f"RSS {peers[n].idle_rss_mb:.0f} MB", file=sys.stderr)
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for n in order:
                    print(f"round {r + 1}/{args.rounds}: {n}", file=sys.stderr)
                    runs[n].append(one_run(peers[n], args))
            for n in names:
                for run in runs[n]:
                    run.update(startup_s=peers[n].startup_s, idle_rss_mb=peers[n].idle_rss_mb)
                runs[n][-1]["peak_rss_mb"] = rss_mb(peers[n].pid, "VmHWM")
        finally:
            for peer in peers.values():
                peer.close()
    medians = {n: {k: statistics.median(run[k] for run in runs[n] if k in run)
                   for k, _, _ in METRICS} for n in names}
    text = table(medians, names)
    print(f"\n{args.rounds} rounds, {args.messages:,} × {args.message_size} B records, "
          f"acks={args.acks}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{platform.platform()}\n")
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": vars(args), "runs": runs, "medians": medians,
             "date": datetime.now(UTC).isoformat()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
