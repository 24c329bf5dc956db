"""One large Fetch, timed from the wire: time to the response's first byte and to its last.

    .venv/bin/python scripts/fetch_rtt.py [--mb 30] [--fetch-mb 10] [--rounds 20]
        [--peers pyggy,kafka,pyggy@/other/checkout/.venv/bin/python] [--json PATH]

For every peer: a fresh one-partition topic, `--mb` MB of 1000-byte records from one librdkafka
producer (1000 records a batch, as scripts/consume_after_produce.py), then `--rounds` Fetch v4
requests on one raw socket, each from offset 0 with a `--fetch-mb` MB partition limit,
alternating between the peers round by round. `pyggy@PYTHON` runs the pyggy that interpreter
imports (another checkout's venv: a before/after comparison in one run). Prints the median and
the spread of the time to the first response byte and to the last, and the response size.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.consume_after_produce import create_topic, produce, start  # noqa: E402

FETCH, VERSION = 1, 4


def start_peer(name: str, workdir: Path) -> tuple[str, object]:
    bootstrap, _pid, server = start(name, workdir, None)
    return bootstrap, server


def fetch_request(topic: str, corr: int, partition_max: int) -> bytes:
    """A Fetch v4 request (header v1), packed by hand: no codec of the server under test."""
    name = topic.encode()
    body = struct.pack(">iiiib", -1, 500, 1, 0x7FFFFFFF, 0)  # replica, wait, min, max, isolation
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, 0, 0, partition_max)  # one partition: 0, offset 0
    head = struct.pack(">hhih", FETCH, VERSION, corr, 5) + b"timer"
    return struct.pack(">i", len(head) + len(body)) + head + body


def timed_fetch(sock: socket.socket, topic: str, corr: int, partition_max: int,
                buf: bytearray) -> tuple[float, float, int]:
    """(ms to the first byte, ms to the last, response bytes) of one Fetch."""
    request = fetch_request(topic, corr, partition_max)
    t0 = time.perf_counter()
    sock.sendall(request)
    view = memoryview(buf)
    got = sock.recv_into(view)
    first = time.perf_counter()
    while got < 4:
        got += sock.recv_into(view[got:])
    size = struct.unpack_from(">i", buf)[0] + 4
    if size > len(buf):
        raise RuntimeError(f"response of {size} bytes exceeds the buffer")
    while got < size:
        n = sock.recv_into(view[got:size])
        if not n:
            raise RuntimeError("connection closed mid-response")
        got += n
    last = time.perf_counter()
    if struct.unpack_from(">i", buf, 4)[0] != corr:
        raise RuntimeError("correlation id mismatch")
    return (first - t0) * 1000, (last - t0) * 1000, size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=30)
    ap.add_argument("--fetch-mb", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--peers", default="pyggy")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    peers = args.peers.split(",")
    partition_max = args.fetch_mb * 1_000_000
    buf = bytearray(partition_max + (4 << 20))
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="fetch-rtt-") as tmp:
        socks: dict[str, tuple[socket.socket, str]] = {}
        servers = []
        try:
            for name in peers:
                bootstrap, server = start_peer(name, Path(tmp))
                servers.append(server)
                topic = f"rtt-{len(servers)}-{time.time_ns() % 10**9}"
                create_topic(bootstrap, topic)
                produce(bootstrap, topic, args.mb * 1000, 1000)
                host, port = bootstrap.rsplit(":", 1)
                sock = socket.create_connection((host, int(port)))
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                socks[name] = (sock, topic)
                results[name] = {"first_ms": [], "last_ms": [], "bytes": []}
            for r in range(args.rounds):
                order = peers[r % len(peers):] + peers[:r % len(peers)]
                for name in order:
                    sock, topic = socks[name]
                    first, last, size = timed_fetch(sock, topic, r + 1, partition_max, buf)
                    results[name]["first_ms"].append(first)
                    results[name]["last_ms"].append(last)
                    results[name]["bytes"].append(size)
        finally:
            for sock, _ in socks.values():
                sock.close()
            for server in servers:
                server.close()  # type: ignore[attr-defined]
    for name, r in results.items():
        f, la = r["first_ms"], r["last_ms"]
        print(f"{name}: first byte median {statistics.median(f):.1f} ms "
              f"({min(f):.1f}–{max(f):.1f}), last byte median {statistics.median(la):.1f} ms "
              f"({min(la):.1f}–{max(la):.1f}), {statistics.median(r['bytes']) / 1e6:.2f} MB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
