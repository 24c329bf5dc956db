"""Classic (0.8) consume without `iggy-bench`: the server CPU per 1 MB poll, builds side by side.

    .venv/bin/python scripts/classic_lean_consume.py [--peers pyggy,pyggy@/other/.venv/bin/python]
        [--rounds 8] [--polls 300] [--batches 100] [--per-batch 1000] [--size 1000]

What `iggy-bench pinned-consumer` sends (BENCHMARKS.md, "Classic consume, third pass"): one
classic connection logs in, then Offset polls of 1000 messages, consumer 1, auto-commit off,
one after another, each 1 MB reply read whole. Every peer is a fresh server filled with
``--batches`` stored batches of 1000 × 1000 B by pyggy's native client; per round and peer
(the order alternating), ``--polls`` polls walk the batches in turn and the server's user +
system CPU (/proc/<pid>/stat, 10 ms ticks) is divided by the polls. Prints the median and
range of µs per poll for every peer. Small batches (``--per-batch 10 --size 10``) leave the
fixed cost of a poll: the Python around it and two small syscalls.
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from pyggy.native_client import NativeClient  # noqa: E402
from pyggy.testing import PyggyServer  # noqa: E402
from scripts.consume_after_produce import proc_stat  # noqa: E402
from scripts.poll_rtt import ClassicPoller, fill, start_peer  # noqa: E402


def poll(c: ClassicPoller, offset: int, count: int) -> int:
    """One Offset poll of `count` messages of the fill's partition; the messages read."""
    c.request(100, b"\x01\x01\x04" + struct.pack("<I", 1) + b"\x02\x03rtt\x02\x01t"
              + struct.pack("<BIBQIB", 1, 0, 1, offset, count, 0))
    return struct.unpack_from("<I", c.read_reply(), 12)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", default="pyggy")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--polls", type=int, default=300)
    ap.add_argument("--batches", type=int, default=100)
    ap.add_argument("--per-batch", type=int, default=1000)
    ap.add_argument("--size", type=int, default=1000)
    args = ap.parse_args()
    names = args.peers.split(",")
    runs: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="pyggy-lean-") as tmp:
        peers: dict[str, tuple[PyggyServer, ClassicPoller]] = {}
        try:
            for i, name in enumerate(names):
                server = start_peer(name, Path(tmp) / f"peer{i}")
                filler = NativeClient(server.tcp_address)
                fill(filler, args.batches, args.per_batch, args.size)
                filler.close()
                peers[name] = (server, ClassicPoller(server.tcp_address))
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    server, c = peers[name]
                    assert server.pid is not None
                    u0, s0, _ = proc_stat(server.pid)
                    n = args.per_batch
                    for k in range(args.polls):
                        if poll(c, (k % args.batches) * n, n) != n:
                            raise RuntimeError(f"{name}: a short poll")
                    u1, s1, _ = proc_stat(server.pid)
                    runs[name].append((u1 + s1 - u0 - s0) / args.polls * 1e6)
                    print(f"round {r} {name}: {runs[name][-1]:.0f} µs per poll", flush=True)
        finally:
            for server, c in peers.values():
                c.close()
                server.stop()
    for name in names:
        us = runs[name]
        print(f"{name}: server CPU per poll median {statistics.median(us):.0f} µs "
              f"({min(us):.0f}–{max(us):.0f}), {len(us)} rounds")


if __name__ == "__main__":
    main()
