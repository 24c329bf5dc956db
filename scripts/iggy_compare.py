"""pyggy's native door against Apache Iggy 0.8.0, driven by Iggy's own `iggy-bench`.

    .venv/bin/python scripts/iggy_compare.py [--rounds 5] [--batches 200] [--pyggy-config TOML]
        [--actors N] [--pyggy-shards 1,2] [--iggy-shards 1,2] [--pin-pyggy] [--json PATH]

Each round starts, for each server in turn (the order alternates between rounds), a fresh
server on loopback with an empty data directory, runs `iggy-bench pinned-producer` and then
`pinned-consumer` against it (classic protocol, TCP, 1 stream, 1 producer / 1 consumer,
``--batches`` × 1000 messages × 1000 B by default) and stops it. The table gives the median over
the rounds of the total MB/s and p50 batch latency `iggy-bench` prints, the server's CPU
seconds per GB (user + system from /proc/<pid>/stat, pyggy/bench/cost.py), and the ratio
pyggy / Iggy. Then, per round, pyggy's own lean client over protocol 0.11
(`pyggy-bench native-send-poll`, same batch shape) against a fresh pyggy: send and poll GB/s.

The peer is not built here: `iggy-server` and `iggy-bench` of the tag `server-0.8.0` are read
from ``--iggy-dir`` (default ``$PYGGY_IGGY08_DIR`` or ``~/.cache/pyggy/iggy08``), built as
`../shared/reference/iggy-peer.md` says. Without `iggy-server` only pyggy is measured; without
`iggy-bench` only the 0.11 part runs (both said in the output).

Shard scaling (issue 16's 2-shard target) with the same load generator: ``--actors 4`` gives
each run 4 producers / 4 consumers on 4 streams (one partition each, every connection pinned to
its stream), ``--pyggy-shards 1,2`` runs pyggy once per shard count in each round
(``[system.sharding] shards``), and the table adds the ratio of the last count to the first.
``--iggy-shards 1,2`` does the same for Iggy (``IGGY_SYSTEM_SHARDING_CPU_ALLOCATION``: that many
shards, each pinned to its core, as Iggy always pins them), so the scaling of the two servers
compares in one window. ``--warmup-batches 10`` first runs both modes untimed on each fresh
server, so what each process does once (its first logins, a password hash per process; its
first imports; the streams) stays out of the CPU per GB. ``--pin-pyggy`` pins each pyggy shard
process (all its threads) to a core of its own after the start, as Iggy does. The CPU figure
sums every process listening on the port (every shard), once every shard listens.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyggy.bench.cost import CpuMeter, cpu_seconds, listening_pids  # noqa: E402
from pyggy.bench.native import native_send_poll  # noqa: E402
from pyggy.testing import PyggyServer, free_port  # noqa: E402

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RESULT = re.compile(r"(Producers|Consumers) Results: Total throughput: ([\d.]+) MB/s.*?"
                     r"p50 latency: ([\d.]+) ms")


@dataclass
class Server:
    """A started server: its native TCP address, process id and how to stop it."""

    name: str
    address: str
    pid: int
    stop: object  # Callable[[], None]
    cpu: list[float] = field(default_factory=list)


def _wait_port(address: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    host, port = address.rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            socket.create_connection((host, int(port)), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"{address} did not accept connections in {timeout} s")


def start_iggy(binary: Path, workdir: Path, shards: int | None = None) -> Server:
    """Iggy 0.8.0 with its defaults (one shard per core, each pinned to its core), only the TCP
    listener, root iggy/iggy; `shards`: that many shards (still pinned, to cores 0..n-1)."""
    port = free_port()
    env = dict(os.environ, IGGY_TCP_ADDRESS=f"127.0.0.1:{port}", IGGY_HTTP_ENABLED="false",
               IGGY_QUIC_ENABLED="false", IGGY_WEBSOCKET_ENABLED="false",
               IGGY_CLUSTER_ENABLED="false", IGGY_TELEMETRY_ENABLED="false",
               IGGY_SYSTEM_PATH=str(workdir / "iggy-data"), IGGY_ROOT_USERNAME="iggy",
               IGGY_ROOT_PASSWORD="iggy")
    if shards is not None:
        env["IGGY_SYSTEM_SHARDING_CPU_ALLOCATION"] = str(shards)
    config = binary.parent / "config.toml"
    if config.exists():
        env["IGGY_CONFIG_PATH"] = str(config)
    log = open(workdir / "iggy-server.log", "wb")  # noqa: SIM115 - closed by stop()
    proc = subprocess.Popen([str(binary)], env=env, cwd=workdir, stdout=log,
                            stderr=subprocess.STDOUT)

    def stop() -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

    try:
        _wait_port(f"127.0.0.1:{port}", proc, 60)
    except BaseException:
        stop()
        raise
    return Server("iggy", f"127.0.0.1:{port}", proc.pid, stop)


def start_pyggy(workdir: Path, config: Path | None = None, shards: int | None = None) -> Server:
    """pyggy with its defaults (native door on, Kafka door on, no fsync), root iggy/iggy;
    `config`: a TOML file whose settings replace the defaults; `shards`: the shard count."""
    env = {} if shards is None else {"IGGY_SYSTEM_SHARDING_SHARDS": str(shards)}
    server = PyggyServer(workdir / "pyggy", args=["--config", str(config)] if config else (),
                         env=env)
    server.start()
    if shards is not None and shards > 1:  # "tcp listening on" is shard 0's: wait for them all,
        # or the CPU figure misses the shards still starting (their sockets not listening yet)
        try:
            server.wait_for_log(f"shards: {shards} processes serving", timeout=60)
        except BaseException:
            server.close()
            raise
    return Server("pyggy", server.tcp_address, server.pid or 0, server.close)


def _pids(server: Server) -> list[int]:
    """Every shard process listening on the server's port (one process for Iggy and a
    one-shard pyggy)."""
    return listening_pids(int(server.address.rsplit(":", 1)[1])) or [server.pid]


def _pin(server: Server) -> None:
    """Every thread of each process listening on the server's port to one core, in turn."""
    cpus = sorted(os.sched_getaffinity(0))
    for i, pid in enumerate(_pids(server)):
        subprocess.run(["taskset", "-a", "-cp", str(cpus[i % len(cpus)]), str(pid)],
                       check=True, capture_output=True)


def iggy_bench(bench: Path, kind: str, address: str, args: argparse.Namespace) -> tuple[
        float, float]:
    """(total MB/s, p50 batch latency ms) of one `iggy-bench` run."""
    n = str(args.actors)
    actors = ["--producers", n] if kind == "pinned-producer" else ["--consumers", n]
    cmd = [str(bench), "--message-size", str(args.message_size), "--messages-per-batch",
           str(args.messages_per_batch), "--message-batches", str(args.batches), kind,
           "--streams", n, *actors, "tcp", "--server-address", address]
    out = subprocess.run(cmd, capture_output=True, timeout=args.run_timeout)
    text = (out.stdout + out.stderr).decode(errors="replace")
    result = parse_bench_output(text)
    if out.returncode != 0 or result is None:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{text[-2000:]}")
    return result


def parse_bench_output(text: str) -> tuple[float, float] | None:
    """(total MB/s, p50 ms) from the "Producers/Consumers Results" line `iggy-bench` prints
    (core/bench/report/src/prints.rs of the tag, colours included), None without one."""
    m = _RESULT.search(_ANSI.sub("", text))
    return (float(m.group(2)), float(m.group(3))) if m else None


def classic_round(server: Server, bench: Path, args: argparse.Namespace) -> dict[str, float]:
    """One pinned-producer and one pinned-consumer run (each actor moves ``--batches``)."""
    gb = args.actors * args.batches * args.messages_per_batch * args.message_size / 1e9
    pids = _pids(server)
    if args.warmup_batches:  # untimed: each process's first logins, imports and streams
        warm = argparse.Namespace(**{**vars(args), "batches": args.warmup_batches})
        for kind in ("pinned-producer", "pinned-consumer"):
            iggy_bench(bench, kind, server.address, warm)
    run: dict[str, float] = {}
    for kind, key in (("pinned-producer", "produce"), ("pinned-consumer", "consume")):
        meter = CpuMeter(pids).start()
        mbs, p50 = iggy_bench(bench, kind, server.address, args)
        run[f"{key}_mb_s"], run[f"{key}_p50_ms"] = mbs, p50
        run[f"{key}_cpu_s_gb"] = meter.stop() / gb
    return run


def vsr_round(args: argparse.Namespace) -> dict[str, float]:
    gb = args.batches * args.messages_per_batch * args.message_size / 1e9
    with tempfile.TemporaryDirectory(prefix="pyggy-iggycmp-") as tmp:
        server = start_pyggy(Path(tmp), args.pyggy_config)
        cpu: dict[str, float] = {}
        try:
            sent, polled = native_send_poll(
                server.address, args.batches, args.messages_per_batch, args.message_size,
                phase=lambda name: cpu.__setitem__(name, cpu_seconds(server.pid)))
        finally:
            server.stop()  # type: ignore[operator]
    return {"send_gb_s": sent.mb_per_s / 1e3, "poll_gb_s": polled.mb_per_s / 1e3,
            "send_cpu_s_gb": (cpu["poll"] - cpu["send"]) / gb,
            "poll_cpu_s_gb": (cpu["end"] - cpu["poll"]) / gb}


CLASSIC = [("produce_mb_s", "pinned-producer MB/s", "{:.0f}"),
           ("produce_p50_ms", "pinned-producer p50 batch latency, ms", "{:.2f}"),
           ("produce_cpu_s_gb", "server CPU-s per GB in", "{:.2f}"),
           ("consume_mb_s", "pinned-consumer MB/s", "{:.0f}"),
           ("consume_p50_ms", "pinned-consumer p50 batch latency, ms", "{:.2f}"),
           ("consume_cpu_s_gb", "server CPU-s per GB out", "{:.2f}")]


def _counts(arg: str | None) -> list[int | None]:
    return [int(x) for x in arg.split(",")] if arg else [None]


def _name(server: str, shards: int | None) -> str:
    return server if shards is None else f"{server} {shards} shard{'s' if shards > 1 else ''}"


def classic_table(runs: dict[str, list[dict[str, float]]]) -> str:
    """Medians (min–max) per server, each pyggy's ratio to Iggy (to the Iggy of the same shard
    count when several were run), and for each server run with several shard counts the last
    count's ratio to the first."""
    names = [n for n in runs if runs[n]]
    mine = [n for n in names if n.startswith("pyggy")]
    theirs = [n for n in names if n.startswith("iggy")]
    med = {n: {k: statistics.median(r[k] for r in runs[n]) for k, _, _ in CLASSIC}
           for n in names}
    rng = {n: {k: (min(r[k] for r in runs[n]), max(r[k] for r in runs[n]))
               for k, _, _ in CLASSIC} for n in names}
    ratios = []
    for m in mine:
        same = [t for t in theirs if t.removeprefix("iggy") == m.removeprefix("pyggy")]
        ratios += [(m, t) for t in (same or theirs[:1])]
    for group in (mine, theirs):
        if len(group) > 1:
            ratios.append((group[-1], group[0]))
    head = ["median (min–max)"] + names + [f"{a} / {b}" for a, b in ratios]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for key, label, fmt in CLASSIC:
        row = [label] + [f"{fmt.format(med[n][key])} ({fmt.format(rng[n][key][0])}–"
                         f"{fmt.format(rng[n][key][1])})" for n in names]
        row += [f"{med[a][key] / med[b][key]:.2f}" if med[b][key] else "–" for a, b in ratios]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="rounds (5); medians")
    ap.add_argument("--batches", type=int, default=200, help="batches per run (200)")
    ap.add_argument("--messages-per-batch", type=int, default=1000)
    ap.add_argument("--message-size", type=int, default=1000)
    ap.add_argument("--iggy-dir", type=Path, default=Path(os.environ.get(
        "PYGGY_IGGY08_DIR", Path.home() / ".cache/pyggy/iggy08")),
        help="holds iggy-server and iggy-bench of server-0.8.0")
    ap.add_argument("--skip-vsr", action="store_true", help="no protocol 0.11 part")
    ap.add_argument("--run-timeout", type=float, default=300.0, help="seconds per bench run")
    ap.add_argument("--pyggy-config", type=Path, metavar="PATH",
                    help="TOML config for pyggy (e.g. to compare a setting off and on)")
    ap.add_argument("--actors", type=int, default=1,
                    help="producers / consumers, one stream each (1)")
    ap.add_argument("--pyggy-shards", metavar="LIST",
                    help="shard counts to run pyggy with, e.g. 1,2 (default: its own)")
    ap.add_argument("--warmup-batches", type=int, default=0, metavar="N",
                    help="an untimed pinned-producer and pinned-consumer run of N batches per "
                         "actor on each fresh server first (0: none)")
    ap.add_argument("--iggy-shards", metavar="LIST",
                    help="Iggy shard counts to run, e.g. 1,2 (default: Iggy's, one per core)")
    ap.add_argument("--pin-pyggy", action="store_true",
                    help="pin each pyggy shard process to a core of its own (taskset -a)")
    ap.add_argument("--json", metavar="PATH", help="write every run and the tables as JSON")
    args = ap.parse_args(argv)
    mine = {_name("pyggy", n): n for n in _counts(args.pyggy_shards)}
    theirs = {_name("iggy", n): n for n in _counts(args.iggy_shards)}

    bench, server_bin = args.iggy_dir / "iggy-bench", args.iggy_dir / "iggy-server"
    names = [*mine] + ([*theirs] if server_bin.exists() else [])
    notes = []
    if not bench.exists():
        notes.append(f"no {bench}: the iggy-bench (classic) part was not run")
    elif not server_bin.exists():
        notes.append(f"no {server_bin}: Apache Iggy was not measured")
    classic: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    vsr: list[dict[str, float]] = []
    for r in range(args.rounds):
        if bench.exists():
            for n in names[r % len(names):] + names[:r % len(names)]:
                with tempfile.TemporaryDirectory(prefix="pyggy-iggycmp-") as tmp:
                    server = start_iggy(server_bin, Path(tmp), theirs[n]) if n in theirs \
                        else start_pyggy(Path(tmp), args.pyggy_config, mine[n])
                    if args.pin_pyggy and n in mine:
                        _pin(server)
                    try:
                        classic[n].append(classic_round(server, bench, args))
                    finally:
                        server.stop()  # type: ignore[operator]
                print(f"round {r + 1}/{args.rounds} {n}: {classic[n][-1]}", file=sys.stderr)
        if not args.skip_vsr:
            vsr.append(vsr_round(args))
            print(f"round {r + 1}/{args.rounds} pyggy 0.11: {vsr[-1]}", file=sys.stderr)

    print(f"\n{args.rounds} rounds, {args.actors} × {args.batches} × "
          f"{args.messages_per_batch} × {args.message_size} B, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}\n")
    for note in notes:
        print(note)
    text = classic_table(classic) if bench.exists() else ""
    print(text + "\n")
    for label in ("send", "poll") if vsr else ():
        rate = [v[f"{label}_gb_s"] for v in vsr]
        cost = [v[f"{label}_cpu_s_gb"] for v in vsr]
        print(f"pyggy lean client, protocol 0.11, {label}: median {statistics.median(rate):.2f}"
              f" GB/s ({min(rate):.2f}–{max(rate):.2f}); server CPU-s per GB: median "
              f"{statistics.median(cost):.2f} ({min(cost):.2f}–{max(cost):.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "classic": classic,
             "vsr": vsr, "notes": notes, "date": datetime.now(UTC).isoformat()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
