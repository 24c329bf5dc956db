"""Consume right after a big produce (issue 16, item 3): pyggy, optionally beside Apache Kafka.

    .venv/bin/python scripts/consume_after_produce.py [--records 500000] [--rounds 3]
        [--gap 60] [--peers pyggy,kafka,pyggy@PYTHON] [--profile DIR] [--perf DIR] [--json PATH]

Each round, for every peer in turn (the order rotates): a fresh one-partition topic, one
librdkafka producer writing `--records` records of `--size` bytes (acks=1, linger 5 ms, 1000
records a batch), then at once a *checking* consumer — librdkafka defaults, a plain assign
from offset 0, batch `consume(1000)`, each record's offset and value size checked — then,
`--gap` seconds later, the same checking consumer again, a *counting* consumer (counts
records only) and a counting consumer with pyggy-bench's settings (10 MB partition fetches).
Every phase prints MB/s, the broker's and the client's CPU seconds (/proc/<pid>/stat,
getrusage), the kernel's Dirty + Writeback memory when it began, and from librdkafka's
statistics the median fetch round trip and the median bytes waiting in the client's fetch
queue — so the phases can be told apart: the client's per-record work, the broker's, the
page cache's state.

`--profile DIR` runs pyggy under cProfile (written to DIR/pyggy.prof when it stops); `--perf DIR`
records each phase of the broker with `perf record -g` (native and kernel stacks).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyggy.testing import PyggyServer  # noqa: E402


def proc_stat(pid: int) -> tuple[float, float, int]:
    """(user s, system s, minor page faults) of process `pid`, all threads (man 5 proc)."""
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    f = raw[raw.rindex(b")") + 2:].split()
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    return int(f[11]) * tick, int(f[12]) * tick, int(f[7])


def meminfo_mb(*fields: str) -> float:
    total = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in fields:
            total += int(rest.split()[0])
    return total / 1024


def produce(bootstrap: str, topic: str, records: int, size: int) -> float:
    from confluent_kafka import Producer

    prod = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                     "batch.num.messages": 1000, "batch.size": 1000 * size + 4096,
                     "message.max.bytes": 1000 * size + 65536,
                     "queue.buffering.max.kbytes": 262144, "compression.type": "none",
                     "enable.idempotence": False})
    value = b"x" * size
    t0 = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                prod.produce(topic, value, partition=0)
                break
            except BufferError:
                prod.poll(0.01)
    if prod.flush(120):
        raise RuntimeError("producer did not flush")
    return records * size / 1e6 / (time.perf_counter() - t0)


# pyggy-bench's consumer settings (pyggy/bench/workload.py): larger fetches, shorter waits
BENCH_CONSUMER = {"fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760,
                  "fetch.wait.max.ms": 100, "queued.min.messages": 200000}


# librdkafka's statistics of the last consume phase: (broker fetch RTT µs, bytes in the
# client's fetch queue) every STATS_MS — a full queue means the client loop is the bottleneck,
# an empty one that fetches are
STATS_MS = 100
STATS: list[tuple[float, float]] = []


def _stats(topic: str, raw: str) -> None:
    doc = json.loads(raw)
    rtt = [b["rtt"]["avg"] for b in doc["brokers"].values() if b.get("rtt", {}).get("cnt")]
    part = doc.get("topics", {}).get(topic, {}).get("partitions", {}).get("0", {})
    STATS.append((statistics.median(rtt) if rtt else float("nan"),
                  part.get("fetchq_size", 0)))


def consume(bootstrap: str, topic: str, records: int, size: int, check: bool,
            tuned: bool = False) -> float:
    from confluent_kafka import Consumer, TopicPartition

    STATS.clear()
    cons = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-{time.time_ns()}",
                     "enable.auto.commit": False, "statistics.interval.ms": STATS_MS,
                     "stats_cb": lambda raw: _stats(topic, raw),
                     **(BENCH_CONSUMER if tuned else {})})
    cons.assign([TopicPartition(topic, 0, 0)])
    n = 0
    deadline = time.monotonic() + 300
    t0 = time.perf_counter()
    try:
        while n < records:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: {n} of {records} records consumed")
            msgs = cons.consume(num_messages=1000, timeout=1.0)
            if check:
                for m in msgs:
                    if m.error() is not None:
                        raise RuntimeError(f"consume error {m.error()}")
                    if m.offset() != n or len(m.value()) != size:
                        raise RuntimeError(f"record {n}: offset {m.offset()}, "
                                           f"{len(m.value())} bytes")
                    n += 1
            else:
                n += len(msgs)
        return records * size / 1e6 / (time.perf_counter() - t0)
    finally:
        cons.close()


def create_topic(bootstrap: str, topic: str) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 1, 1)], operation_timeout=30).values():
        f.result()
    deadline = time.time() + 30
    while time.time() < deadline:
        md = admin.list_topics(topic, timeout=10).topics.get(topic)
        if md and md.error is None and md.partitions and md.partitions[0].leader >= 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{topic} has no leader")


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"port {port} did not open")


class ProfiledServer(PyggyServer):
    def __init__(self, workdir: Path, out: Path) -> None:
        super().__init__(workdir)
        self.out = out

    def command(self) -> list[str]:
        cmd = super().command()
        return [cmd[0], "-m", "cProfile", "-o", str(self.out), *cmd[1:]]


class OtherPyggy(PyggyServer):
    """pyggy as another interpreter (another checkout's venv) imports it."""

    def __init__(self, workdir: Path, python: str) -> None:
        super().__init__(workdir)
        self.python = python

    def command(self) -> list[str]:
        return [self.python, *super().command()[1:]]


def start(name: str, workdir: Path, profile: Path | None) -> tuple[str, int | None, object]:
    """Start a peer: `pyggy`, `pyggy@PYTHON` (the pyggy that interpreter imports: another
    checkout's venv, for a before/after comparison in one run) or `kafka`."""
    if name.startswith("pyggy@"):
        other = OtherPyggy(workdir / f"pyggy-{abs(hash(name))}", name.split("@", 1)[1])
        other.start()
        wait_port(other.kafka_port)
        return other.kafka_address, other.pid, other
    if name == "pyggy":
        server = (ProfiledServer(workdir / "pyggy", profile / "pyggy.prof") if profile
                  else PyggyServer(workdir / "pyggy"))
        if profile:
            server.start_timeout = 60
        server.start()
        wait_port(server.kafka_port)
        return server.kafka_address, server.pid, server
    from interop_tests.kafka_broker.broker import start_real_kafka

    broker = start_real_kafka(workdir / "kafka")
    proc = getattr(broker, "_proc", None)
    return broker.bootstrap, proc.pid if proc else None, broker


PHASES = ("produce", "check_now", "check_later", "count_later", "count_bench")


def one_round(name: str, bootstrap: str, pid: int | None, args: argparse.Namespace) -> dict:
    topic = f"cap-{name.split('@')[0]}-{time.time_ns() % 10**12}"
    create_topic(bootstrap, topic)
    out: dict[str, float] = {}

    def phase(key: str, run: object) -> None:
        dirty = meminfo_mb("Dirty", "Writeback")
        s0 = proc_stat(pid) if pid else (0.0, 0.0, 0)
        c0 = resource.getrusage(resource.RUSAGE_SELF)
        perf = None
        if args.perf and pid:
            perf = subprocess.Popen(["perf", "record", "-q", "-F", "999", "-g", "-p", str(pid),
                                     "-o", str(args.perf / f"{name}-{topic}-{key}.data")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            out[key] = run()  # type: ignore[operator]
        finally:
            if perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait(30)
        c1 = resource.getrusage(resource.RUSAGE_SELF)
        s1 = proc_stat(pid) if pid else (0.0, 0.0, 0)
        out.update({f"{key}_server_user_s": s1[0] - s0[0], f"{key}_server_sys_s": s1[1] - s0[1],
                    f"{key}_server_minflt": s1[2] - s0[2], f"{key}_dirty_mb": dirty,
                    f"{key}_client_cpu_s": (c1.ru_utime + c1.ru_stime
                                            - c0.ru_utime - c0.ru_stime)})
        if key != "produce" and STATS:
            rtts = [r for r, _ in STATS if r == r]
            out[key + "_rtt_ms"] = statistics.median(rtts) / 1000 if rtts else float("nan")
            out[key + "_fetchq_mb"] = statistics.median(q for _, q in STATS) / 1e6
            print(f"    librdkafka: fetch RTT median {out[key + '_rtt_ms']:.2f} ms, fetch "
                  f"queue median {out[key + '_fetchq_mb']:.1f} MB ({len(STATS)} samples)",
                  file=sys.stderr)
        print(f"  {name} {key}: {out[key]:.1f} MB/s; server CPU user "
              f"{s1[0] - s0[0]:.2f} s sys {s1[1] - s0[1]:.2f} s, minor faults {s1[2] - s0[2]}; "
              f"client CPU {out[key + '_client_cpu_s']:.2f} s; dirty+writeback at start "
              f"{dirty:.0f} MB", file=sys.stderr)

    n, size = args.records, args.size
    phase("produce", lambda: produce(bootstrap, topic, n, size))
    phase("check_now", lambda: consume(bootstrap, topic, n, size, True))
    time.sleep(args.gap)
    phase("check_later", lambda: consume(bootstrap, topic, n, size, True))
    phase("count_later", lambda: consume(bootstrap, topic, n, size, False))
    phase("count_bench", lambda: consume(bootstrap, topic, n, size, False, tuned=True))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gap", type=float, default=60.0, help="seconds before the later phases")
    ap.add_argument("--peers", default="pyggy")
    ap.add_argument("--profile", type=Path, help="run pyggy under cProfile, output here")
    ap.add_argument("--perf", type=Path, help="`perf record` the broker in each phase, here")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    names = args.peers.split(",")
    runs: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="pyggy-cap-") as tmp:
        started = {n: start(n, Path(tmp), args.profile) for n in names}
        try:
            for r in range(args.rounds):
                for n in names[r % len(names):] + names[:r % len(names)]:
                    print(f"round {r + 1}/{args.rounds}: {n}", file=sys.stderr)
                    runs[n].append(one_round(n, started[n][0], started[n][1], args))
        finally:
            for _, _, server in started.values():
                server.close()  # type: ignore[attr-defined]
    print(f"\n{args.rounds} rounds, {args.records:,} × {args.size} B, gap {args.gap:.0f} s, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}\n")
    print("| peer | " + " | ".join(f"{p} MB/s (runs)" for p in PHASES) + " |")
    print("|---" + "|---:" * len(PHASES) + "|")
    for n in names:
        cells = [f"{statistics.median(r[p] for r in runs[n]):.0f} "
                 f"({' '.join(f'{r[p]:.0f}' for r in runs[n])})" for p in PHASES]
        print(f"| {n} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
