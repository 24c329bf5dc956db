"""pyggy-bench: load generators for pyggy (or any Iggy / Kafka broker), modelled on iggy-bench
and Kafka's perf tools.

Modes (each for --protocol native or kafka):
  pinned-producer    P producer processes, each pinned to stream (topic) i % streams; batch b
                     goes to partition b % partitions. Reports send→ack latency per batch.
  pinned-consumer    fills the topics first (untimed), then C consumer processes each read a
                     fixed set of (stream, partition) pairs from offset 0 until every message
                     is read. Reports the round trip of each poll (Kafka: consume() call).
  producer-consumer  producers and pinned consumers at the same time.
  consumer-group     fills first, then C consumers in one consumer group (native: server-side
                     assignment, poll NEXT with auto-commit; Kafka: subscribe, group
                     rebalance) read everything.
  end-to-end         producers and consumers at the same time; latency is receive time minus
                     the send time carried in the batch (native: origin_timestamp; Kafka: the
                     first 8 payload bytes of each batch's first record).
  native-send-poll   (older) one producer then one consumer on one connection, lean client.
  sdk-send-poll      (older) the same through the apache-iggy SDK.

Native load: pyggy's lean blocking client (prebuilt batches, no per-message objects), one
process per actor. Kafka load: confluent-kafka (librdkafka), one process per actor; a batch is
messages-per-batch produce() calls to one partition (librdkafka batches them; linger.ms 5).
Output: a progress line on stderr, a summary table (msgs/s, MB/s, latency p50/p90/p99/p999/max
in ms), the cost figure (server CPU seconds per GB in and out, read from /proc/<pid>/stat of
every server process: those listening on the address's port, or --server-pid), optionally
--json PATH and --png PATH (needs matplotlib: pip install 'pyggy[bench]').

A cluster: --address with every node (comma-separated), or one node and --cluster to find the
others. Native requests go to each partition's leader (a node answering 58, not the leader,
passes the request on to the next); Kafka clients get the whole bootstrap list and follow the
leaders from Metadata; the cost figure sums every node's processes on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: the CLI starts without it
    from pyggy.bench.workload import Params

MODE_HELP = {
    "pinned-producer": "producers only, each pinned to one stream",
    "pinned-consumer": "fill, then consumers pinned to (stream, partition) pairs",
    "producer-consumer": "pinned producers and consumers at the same time",
    "consumer-group": "fill, then consumers in one consumer group",
    "end-to-end": "producers and consumers at once; send-to-receive latency",
}


def _add_common(m: argparse.ArgumentParser) -> None:
    m.add_argument("--protocol", choices=("native", "kafka"), default="native")
    m.add_argument("--address", help="server address (default 127.0.0.1:8090 native, "
                   "127.0.0.1:9092 kafka); a comma-separated list names every node of a "
                   "cluster")
    m.add_argument("--cluster", action="store_true",
                   help="the server is a cluster: find every node from --address (native: "
                   "GET_CLUSTER_METADATA, kafka: Metadata); native requests follow each "
                   "partition's leader, Kafka clients do by themselves; the cost figure sums "
                   "every node's processes on this machine")
    m.add_argument("--replication-factor", type=int, default=1,
                   help="Kafka topics' replication factor (1)")
    m.add_argument("--min-insync-replicas", type=int, default=0,
                   help="Kafka topics' min.insync.replicas config (default: the broker's)")
    m.add_argument("--message-size", type=int, default=1000, help="payload bytes (1000)")
    m.add_argument("--messages-per-batch", type=int, default=1000,
                   help="messages per send/poll (1000)")
    m.add_argument("--producers", type=int, default=1, help="producer processes (1)")
    m.add_argument("--consumers", type=int, default=1, help="consumer processes (1)")
    m.add_argument("--streams", type=int, default=1,
                   help="streams (native) / topics (kafka) (1)")
    m.add_argument("--partitions", type=int, default=1, help="partitions per topic (1)")
    m.add_argument("--total-messages", type=int, default=1_000_000,
                   help="messages to produce in all, rounded up to whole batches (1e6)")
    m.add_argument("--duration", type=float,
                   help="seconds to run instead of a message count")
    m.add_argument("--fsync", action="store_true",
                   help="topics with enforce_fsync (Kafka peers: flush.messages=1)")
    m.add_argument("--acks", default="1", help="Kafka producer acks: 0, 1 or all (1)")
    m.add_argument("--native-address",
                   help="kafka protocol against pyggy: create the topics on this native "
                   "address (so --fsync sets enforce_fsync); they are '<stream>.t' on Kafka")
    m.add_argument("--username", default="iggy")
    m.add_argument("--password", default="iggy")
    m.add_argument("--json", metavar="PATH", help="write parameters, results and the "
                   "throughput series as JSON")
    m.add_argument("--png", metavar="PATH", help="write a chart: throughput over time and "
                   "latency percentiles")
    m.add_argument("--quiet", action="store_true", help="no progress line")
    m.add_argument("--server-pid", type=int, action="append", default=[], metavar="PID",
                   help="a server process for the cost figure, repeatable (default: every "
                   "process on this machine listening on the address's port)")
    m.add_argument("--shards", metavar="N,N,...",
                   help="a sweep: for each shard count start a pyggy server of that many "
                   "shard processes ([system.sharding] shards; a temporary data directory, "
                   "loopback ports), run the mode against it, stop it; prints one line per "
                   "count (throughput and the cost figure summed over every shard process)")
    m.add_argument("--server-env", action="append", default=[], metavar="IGGY_X=VALUE",
                   help="with --shards: a setting of the servers the sweep starts, repeatable "
                   "(e.g. IGGY_SYSTEM_SHARDING_NATIVE_HANDOFF=false)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyggy-bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    for name, help_text in MODE_HELP.items():
        _add_common(sub.add_parser(name, help=help_text, description=help_text))
    for name, help_text in (
        ("native-send-poll", "pinned producer then consumer with pyggy's lean native client"),
        ("sdk-send-poll", "pinned producer then consumer through the apache-iggy SDK"),
    ):
        m = sub.add_parser(name, help=help_text)
        m.add_argument("--address", default="127.0.0.1:8090", help="native TCP address")
        m.add_argument("--batches", type=int, default=200, help="batches to send")
        m.add_argument("--messages-per-batch", type=int, default=1000)
        m.add_argument("--message-size", type=int, default=1000, help="payload bytes")
        m.add_argument("--json", metavar="PATH", help="write the results as JSON")
        if name == "native-send-poll":
            m.add_argument("--in-flight", type=int, default=1,
                           help="requests on the wire before a reply is read (1: lockstep)")
    return p


def format_table(stats: list[dict]) -> str:
    head = (f"{'role':<12}{'actors':>7}{'messages':>12}{'MB':>10}{'s':>8}{'msgs/s':>13}"
            f"{'MB/s':>9}{'p50':>8}{'p90':>8}{'p99':>8}{'p999':>8}{'max':>8}  (latency ms)")
    lines = [head]
    for s in stats:
        lines.append(
            f"{s['role']:<12}{s['actors']:>7}{s['messages']:>12,}{s['bytes'] / 1e6:>10.1f}"
            f"{s['seconds']:>8.2f}{s['msgs_per_s']:>13,.0f}{s['mb_per_s']:>9.1f}"
            f"{s['p50_ms']:>8.2f}{s['p90_ms']:>8.2f}{s['p99_ms']:>8.2f}{s['p999_ms']:>8.2f}"
            f"{s['max_ms']:>8.2f}")
    return "\n".join(lines)


def format_cost(c: dict | None) -> str:
    """The cost line of a result: server CPU seconds per GB moved (in + out)."""
    if not c:
        return "server CPU: not measured (no server process found on this machine)"
    return (f"server CPU: {c['server_cpu_s']:.2f} s for {c['gb_in']:.3f} GB in + "
            f"{c['gb_out']:.3f} GB out = {c['cpu_s_per_gb']:.2f} CPU-s/GB "
            f"(pids {', '.join(map(str, c['server_pids']))})")


def write_png(path: str, result: dict, title: str, message_size: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result["series"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for idx, name in ((1, "produced"), (2, "consumed")):
        xs, ys = [], []
        for prev, cur in zip(series, series[1:], strict=False):
            dt = cur[0] - prev[0]
            if dt > 0:
                xs.append(cur[0])
                ys.append((cur[idx] - prev[idx]) * message_size / dt / 1e6)
        if any(ys):
            a.plot(xs, ys, label=name)
    a.set_xlabel("seconds")
    a.set_ylabel("MB/s")
    a.set_title("throughput over time")
    a.legend()
    names = ["p50", "p90", "p99", "p999", "max"]
    stats = result["stats"]
    width = 0.8 / max(1, len(stats))
    for k, s in enumerate(stats):
        b.bar([i + k * width for i in range(len(names))],
              [s[f"{n}_ms"] for n in names], width, label=s["role"])
    b.set_xticks([i + width * (len(stats) - 1) / 2 for i in range(len(names))], names)
    b.set_ylabel("ms")
    b.set_yscale("log")
    b.set_title("latency percentiles")
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _legacy(args: argparse.Namespace) -> None:
    from pyggy.bench.native import native_send_poll, sdk_send_poll

    if args.mode == "native-send-poll":
        results = native_send_poll(args.address, args.batches, args.messages_per_batch,
                                   args.message_size, in_flight=args.in_flight)
    else:
        results = sdk_send_poll(args.address, args.batches, args.messages_per_batch,
                                args.message_size)
    print(f"{'mode':<14}{'messages':>12}{'msgs/s':>14}{'MB/s':>10}")
    for r in results:
        print(f"{r.mode:<14}{r.messages:>12}{r.msgs_per_s:>14,.0f}{r.mb_per_s:>10.1f}")
    if args.json:
        doc = {"date": datetime.now(UTC).isoformat(), "machine": platform.platform(),
               "args": vars(args),
               "results": [{"mode": r.mode, "messages": r.messages, "bytes": r.bytes,
                            "seconds": r.seconds} for r in results]}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    sys.stdout.flush()
    if args.mode == "sdk-send-poll":
        # The SDK's native runtime can abort while the interpreter tears down after a run;
        # the results are written by now, so leave without running finalizers.
        os._exit(0)


def params_from_args(args: argparse.Namespace) -> Params:
    from pyggy.bench.workload import Params

    address = args.address or ("127.0.0.1:8090" if args.protocol == "native"
                               else "127.0.0.1:9092")
    return Params(mode=args.mode, protocol=args.protocol, address=address,
                  message_size=args.message_size, messages_per_batch=args.messages_per_batch,
                  producers=args.producers, consumers=args.consumers, streams=args.streams,
                  partitions=args.partitions, total_messages=args.total_messages,
                  duration=args.duration, fsync=args.fsync, acks=args.acks,
                  username=args.username, password=args.password,
                  native_address=args.native_address, server_pids=tuple(args.server_pid),
                  cluster=args.cluster, replication_factor=args.replication_factor,
                  min_insync_replicas=args.min_insync_replicas)


def run_cli(argv: list[str] | None = None) -> dict | None:
    """Parse, run, print; return the result (stats and series) of a bench mode."""
    args = build_parser().parse_args(argv)
    if args.mode in ("native-send-poll", "sdk-send-poll"):
        _legacy(args)
        return None
    from pyggy.bench.runner import run

    if args.shards:
        return _sweep(args, [int(n) for n in args.shards.split(",")])
    p = params_from_args(args)
    if p.mode == "end-to-end" and p.message_size < 8 and p.protocol == "kafka":
        raise SystemExit("end-to-end over kafka needs --message-size >= 8")
    result = run(p, progress=not args.quiet)
    title = (f"{p.mode} {p.protocol} {p.address}: {p.producers}P/{p.consumers}C, "
             f"{p.message_size} B x {p.messages_per_batch}, {p.streams}S x {p.partitions}P"
             f"{', fsync' if p.fsync else ''}")
    print(title)
    print(format_table(result["stats"]))
    print(format_cost(result.get("cost")))
    if args.json:
        doc = {"date": datetime.now(UTC).isoformat(), "machine": platform.platform(),
               "cpus": os.cpu_count(), "params": p.as_dict(), **result}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    if args.png:
        write_png(args.png, result, title, p.message_size)
    sys.stdout.flush()
    return result


def _sweep(args: argparse.Namespace, counts: list[int]) -> dict:
    """`--shards`: the same run against a fresh server of each shard count."""
    import dataclasses
    import tempfile
    from pathlib import Path

    from pyggy.bench.runner import run
    from pyggy.testing import PyggyServer

    rows = []
    for n in counts:
        with tempfile.TemporaryDirectory(prefix="pyggy-bench-") as tmp:
            env = {"IGGY_SYSTEM_SHARDING_SHARDS": str(n), "IGGY_HTTP_ENABLED": "false",
                   "IGGY_SYSTEM_STATE_ENFORCE_FSYNC": "false",
                   **dict(kv.split("=", 1) for kv in args.server_env)}
            server = PyggyServer(Path(tmp), env=env, start_timeout=60).start()
            try:
                if n > 1:
                    server.wait_for_log("shards: ", timeout=60)
                base = params_from_args(args)
                p = dataclasses.replace(
                    base, address=server.tcp_address if base.protocol == "native"
                    else server.kafka_address,
                    native_address=server.tcp_address if base.protocol == "kafka" else None)
                result = run(p, progress=not args.quiet)
            finally:
                server.close()
        rows.append({"shards": n, **result})
        print(f"shards={n}")
        print(format_table(result["stats"]))
        print(format_cost(result.get("cost")))
    print("sweep: shards, MB/s of producers and consumers together, server CPU-s/GB")
    for row in rows:
        total = sum(s["mb_per_s"] for s in row["stats"]
                    if s["role"] in ("producers", "consumers"))
        cost = row.get("cost") or {}
        print(f"  {row['shards']:>3}  {total:10.1f}  "
              f"{cost.get('cpu_s_per_gb', float('nan')):.2f}")
    doc = {"date": datetime.now(UTC).isoformat(), "machine": platform.platform(),
           "cpus": os.cpu_count(), "sweep": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    sys.stdout.flush()
    return doc


def main(argv: list[str] | None = None) -> None:
    run_cli(argv)
