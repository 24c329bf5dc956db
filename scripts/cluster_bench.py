"""acks=all produce (and consume) on a three-node pyggy cluster, one pyggy node and a
three-broker Apache Kafka cluster, on this machine; medians and ratios.

    .venv/bin/python scripts/cluster_bench.py [--rounds 3] [--messages 200000] [--json PATH]

Starts, side by side on loopback (free ports): `pyggy-1`, one `python -m pyggy` process;
`pyggy-3`, three pyggy processes forming a cluster (`pyggy.testing.PyggyCluster`, the default
5 s heartbeat timeout); `kafka-3`, three KRaft brokers from the cached Maven jars
(interop_tests/kafka_broker/cluster.py), topics with replication factor 3 and
min.insync.replicas 2. Each round runs, for every peer in turn (the order rotates between
rounds; one small untimed warm-up run each comes first), pyggy-bench's Kafka workload: one
librdkafka producer process (acks=all, no idempotence, linger.ms 5) writing `--messages`
records to a fresh topic of `--partitions` partitions, then one consumer process reading
them all back. The Kafka client is given every node of a cluster and follows each
partition's leader itself. The cost figure sums the CPU time of every node's process
(/proc/<pid>/stat, pyggy/bench/cost.py).

Durability is alike, not equal: pyggy's default partition groups acknowledge once a quorum
holds the op in its page cache (docs/cluster.md, "Storage and durability"), Kafka acks=all
once min.insync.replicas replicas have it (no fsync by default either). The whole run is
bounded by --timeout (SIGALRM); every process started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interop_tests.kafka_broker.cluster import JvmKafkaCluster  # noqa: E402
from pyggy.bench import runner  # noqa: E402
from pyggy.bench import workload as w  # noqa: E402
from pyggy.testing import PyggyCluster, PyggyServer  # noqa: E402

PEERS = ("pyggy-3", "pyggy-1", "kafka-3")


@dataclass
class Peer:
    name: str
    bootstrap: str
    pids: tuple[int, ...]
    close: Callable[[], object]
    replication_factor: int = 1
    min_insync_replicas: int = 0


def start_pyggy_1(workdir: Path) -> Peer:
    s = PyggyServer(workdir / "pyggy-1").start(60)
    assert s.pid is not None
    return Peer("pyggy-1", s.kafka_address, (s.pid,), s.close)


def start_pyggy_3(workdir: Path) -> Peer:
    c = PyggyCluster(workdir / "pyggy-3", timing={"heartbeat_timeout": "5 s"}).start(90)
    pids = tuple(s.pid for s in c.servers if s.pid is not None)
    return Peer("pyggy-3", c.kafka_bootstrap, pids, c.close, replication_factor=3)


def start_kafka_3(workdir: Path) -> Peer:
    k = JvmKafkaCluster(workdir / "kafka-3").start()
    return Peer("kafka-3", k.bootstrap, tuple(k.pids), k.close, replication_factor=3,
                min_insync_replicas=2)


STARTERS = {"pyggy-1": start_pyggy_1, "pyggy-3": start_pyggy_3, "kafka-3": start_kafka_3}


def one_run(peer: Peer, args: argparse.Namespace) -> dict[str, float]:
    p = w.Params(mode="pinned-consumer", protocol="kafka", address=peer.bootstrap,
                 message_size=args.message_size, messages_per_batch=args.batch,
                 total_messages=args.messages, partitions=args.partitions, acks="all",
                 replication_factor=peer.replication_factor,
                 min_insync_replicas=peer.min_insync_replicas,
                 prefix=f"cb-{peer.name}-{time.time_ns() % 10**12}", server_pids=peer.pids)
    produced, consumed = runner.produce_then_consume(p, progress=not args.quiet)
    prod, cons = produced["stats"][0], consumed["stats"][0]
    if prod["messages"] != cons["messages"]:
        raise RuntimeError(f"{peer.name}: produced {prod['messages']}, consumed "
                           f"{cons['messages']}")
    gb_in, gb_out = prod["bytes"] / 1e9, cons["bytes"] / 1e9
    cpu_in, cpu_out = produced["cost"]["server_cpu_s"], consumed["cost"]["server_cpu_s"]
    return {"produce_mb_s": prod["mb_per_s"], "produce_p50_ms": prod["p50_ms"],
            "produce_p99_ms": prod["p99_ms"], "consume_mb_s": cons["mb_per_s"],
            "consume_p99_ms": cons["p99_ms"], "cpu_s_per_gb_in": cpu_in / gb_in,
            "cpu_s_per_gb_out": cpu_out / gb_out}


METRICS = (
    ("produce_mb_s", "produce MB/s (acks=all)", "{:,.1f}"),
    ("produce_p50_ms", "produce p50 ack ms", "{:,.1f}"),
    ("produce_p99_ms", "produce p99 ack ms", "{:,.1f}"),
    ("consume_mb_s", "consume MB/s", "{:,.1f}"),
    ("consume_p99_ms", "consume p99 poll ms", "{:,.1f}"),
    ("cpu_s_per_gb_in", "CPU-s per GB in, all nodes", "{:,.2f}"),
    ("cpu_s_per_gb_out", "CPU-s per GB out, all nodes", "{:,.2f}"),
)


def table(medians: dict[str, dict[str, float]], names: list[str]) -> str:
    ratios = [(a, b) for a, b in (("pyggy-3", "kafka-3"), ("pyggy-3", "pyggy-1"))
              if a in names and b in names]
    head = ["metric (median)", *names, *(f"{a} / {b}" for a, b in ratios)]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for key, label, fmt in METRICS:
        row = [label, *(fmt.format(medians[n][key]) for n in names)]
        row += [f"{medians[a][key] / medians[b][key]:.2f}" if medians[b][key] else "–"
                for a, b in ratios]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _alarm(signum: int, frame: object) -> None:
    raise TimeoutError("cluster_bench: --timeout reached")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="runs per peer (3); medians")
    ap.add_argument("--messages", type=int, default=200_000, help="records per run (200,000)")
    ap.add_argument("--message-size", type=int, default=1000, help="record value bytes (1000)")
    ap.add_argument("--batch", type=int, default=1000,
                    help="records per produce batch / consume() call (1000)")
    ap.add_argument("--warmup", type=int, default=20_000,
                    help="records of one untimed run per peer before the rounds (20,000; 0: none)")
    ap.add_argument("--partitions", type=int, default=3, help="partitions of the topic (3)")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="comma-separated subset of " + ", ".join(PEERS))
    ap.add_argument("--timeout", type=int, default=1800,
                    help="seconds for the whole run, start-up included (1800)")
    ap.add_argument("--json", metavar="PATH", help="write every run and the medians as JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    names = [n for n in args.peers.split(",") if n]
    if not names or any(n not in PEERS for n in names):
        ap.error(f"--peers must name only {', '.join(PEERS)}")

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(args.timeout)
    runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    peers: dict[str, Peer] = {}
    with tempfile.TemporaryDirectory(prefix="pyggy-cluster-bench-") as tmp:
        try:
            for n in names:
                t0 = time.perf_counter()
                peers[n] = STARTERS[n](Path(tmp))
                print(f"{n}: {peers[n].bootstrap} (pids {peers[n].pids}) up in "
                      f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
            for n in names:  # JIT, page cache, ISR settling: one small untimed run each
                if args.warmup:
                    print(f"warm-up: {n}", file=sys.stderr)
                    one_run(peers[n], argparse.Namespace(**{**vars(args),
                                                            "messages": args.warmup}))
            load_before = os.getloadavg()
            for r in range(args.rounds):
                order = names[r % len(names):] + names[:r % len(names)]
                for n in order:
                    print(f"round {r + 1}/{args.rounds}: {n}", file=sys.stderr)
                    runs[n].append(one_run(peers[n], args))
                    print(f"  {json.dumps(runs[n][-1])}", file=sys.stderr)
        finally:
            signal.alarm(0)
            for peer in peers.values():
                peer.close()
    medians = {n: {k: statistics.median(run[k] for run in runs[n]) for k, _, _ in METRICS}
               for n in names}
    print(f"\n{args.rounds} rounds, {args.messages:,} × {args.message_size} B records, "
          f"{args.partitions} partitions, acks=all, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{platform.node()}, {platform.platform()}\n")
    load = (load_before, os.getloadavg())
    print(table(medians, names))
    print(f"\nload average (1, 5, 15 min) before the rounds {load[0]}, after {load[1]}; "
          f"{os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": vars(args), "runs": runs, "medians": medians, "loadavg": load,
             "peers": {n: {"bootstrap": x.bootstrap, "pids": x.pids} for n, x in peers.items()},
             "date": datetime.now(UTC).isoformat()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
