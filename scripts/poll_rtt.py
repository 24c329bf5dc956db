"""Large Iggy 0.11 polls, timed from the wire: time to the reply's first byte and to its last,
throughput and the server's CPU per GB polled.

    .venv/bin/python scripts/poll_rtt.py [--mb 30] [--poll-mb 10] [--rounds 20]
        [--peers pyggy,pyggy@/other/checkout/.venv/bin/python] [--classic] [--json PATH]

For every peer: a fresh one-partition topic, `--mb` MB of 1000-byte messages sent by pyggy's
native client (1000 a batch), then `--rounds` polls of `--poll-mb` × 1000 messages from offset
0 (whole stored batches) on one connection, alternating between the peers round by round.
`pyggy@PYTHON` runs the pyggy that interpreter imports (another checkout's venv: a
before/after comparison in one run). The first byte is seen with MSG_PEEK, the last when the
client has read the whole reply; the server's user + system CPU is read from /proc around each
peer's polls. With `--classic` the polls go over the classic (0.8) protocol on a connection of
their own (the reply's 64-byte-header frames as apache-iggy 0.8.0 reads them).
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

from pyggy.core.records.iggy_batch import build_batch  # noqa: E402

from pyggy.native_client import NativeClient  # noqa: E402
from pyggy.testing import PyggyServer  # noqa: E402
from scripts.consume_after_produce import OtherPyggy, proc_stat  # noqa: E402

PER_BATCH, SIZE = 1000, 1000


def start_peer(name: str, workdir: Path) -> PyggyServer:
    server = OtherPyggy(workdir / f"pyggy-{abs(hash(name))}", name.split("@", 1)[1]) \
        if name.startswith("pyggy@") else PyggyServer(workdir / "pyggy")
    server.start()
    server.wait_for_log("listening")
    return server


def fill(c: NativeClient, batches: int, per_batch: int = PER_BATCH, size: int = SIZE) -> None:
    """Stream "rtt", topic "t", one partition: `batches` batches of `per_batch` × `size` B
    (by default 1 MB each)."""
    c.login("iggy", "iggy")
    c.create_stream("rtt")
    c.create_topic("rtt", "t", 1)
    batch = build_batch([(i + 1, b"x" * size, b"", 1) for i in range(per_batch)])
    for _ in range(batches):
        c.send("rtt", "t", 0, batch, per_batch)


def timed_poll(c: NativeClient, count: int) -> tuple[float, float, int]:
    """(ms to the first byte, ms to the last, messages) of one poll from offset 0."""
    t0 = time.perf_counter()
    c.write_poll("rtt", "t", 0, 0, count)
    c.sock.recv(1, socket.MSG_PEEK)
    first = time.perf_counter()
    n, _ = c.read_poll_reply(view=True)
    last = time.perf_counter()
    return (first - t0) * 1000, (last - t0) * 1000, int(n)


class ClassicPoller:
    """A classic (0.8) connection that logs in and polls the fill's partition (the framing of
    native_wire/codec/frames.py: `[length u32][code u32]` requests, `[status][length]` replies)."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request(38, b"\x04iggy\x04iggy")  # LoginUser
        self.read_reply()

    def request(self, code: int, body: bytes) -> None:
        self.sock.sendall(struct.pack("<II", 4 + len(body), code) + body)

    def read_reply(self) -> bytes:
        status, length = struct.unpack("<II", self._read(8))
        if status:
            raise RuntimeError(f"classic request refused: {status}")
        return self._read(length)

    def _read(self, n: int) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if not k:
                raise ConnectionError("closed")
            got += k
        return bytes(buf)

    def write_poll(self, count: int) -> None:  # consumer 1, stream "rtt", topic "t", offset 0
        self.request(100, b"\x01\x01\x04" + struct.pack("<I", 1) + b"\x02\x03rtt\x02\x01t"
                     + struct.pack("<BIBQIB", 1, 0, 1, 0, count, 0))

    def close(self) -> None:
        self.sock.close()


def timed_classic_poll(c: ClassicPoller, count: int) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    c.write_poll(count)
    c.sock.recv(1, socket.MSG_PEEK)
    first = time.perf_counter()
    body = c.read_reply()
    last = time.perf_counter()
    return (first - t0) * 1000, (last - t0) * 1000, struct.unpack_from("<I", body, 12)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=30)
    ap.add_argument("--poll-mb", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--peers", default="pyggy")
    ap.add_argument("--classic", action="store_true", help="poll over the classic protocol")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    peers = args.peers.split(",")
    count = args.poll_mb * PER_BATCH
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="poll-rtt-") as tmp:
        clients: dict[str, tuple[NativeClient, PyggyServer]] = {}
        classic: dict[str, ClassicPoller] = {}
        try:
            for name in peers:
                server = start_peer(name, Path(tmp))
                c = NativeClient(server.tcp_address)
                clients[name] = (c, server)
                fill(c, args.mb)
                if args.classic:
                    classic[name] = ClassicPoller(server.tcp_address)
                results[name] = {"first_ms": [], "last_ms": [], "messages": [], "cpu_s": []}
            for r in range(args.rounds):
                order = peers[r % len(peers):] + peers[:r % len(peers)]
                for name in order:
                    c, server = clients[name]
                    assert server.pid is not None
                    u0, s0, _ = proc_stat(server.pid)
                    first, last, n = (timed_classic_poll(classic[name], count) if args.classic
                                      else timed_poll(c, count))
                    u1, s1, _ = proc_stat(server.pid)
                    if n != count:
                        raise RuntimeError(f"{name} polled {n} messages of {count}")
                    out = results[name]
                    out["first_ms"].append(first)
                    out["last_ms"].append(last)
                    out["messages"].append(n)
                    out["cpu_s"].append(u1 + s1 - u0 - s0)
        finally:
            for poller in classic.values():
                poller.close()
            for c, server in clients.values():
                c.close()
                server.stop()
    for name, r in results.items():
        f, la = r["first_ms"], r["last_ms"]
        gb = sum(r["messages"]) * (SIZE + 64) / 1e9  # stored bytes: payload + frame header
        q = statistics.quantiles
        print(f"{name}: first byte min {min(f):.1f} q1 {q(f)[0]:.1f} median "
              f"{statistics.median(f):.1f} q3 {q(f)[2]:.1f} max {max(f):.1f} ms; last byte "
              f"min {min(la):.1f} q1 {q(la)[0]:.1f} median {statistics.median(la):.1f} "
              f"q3 {q(la)[2]:.1f} max {max(la):.1f} ms; {gb / (sum(la) / 1000):.2f} GB/s "
              f"over the polls; server {sum(r['cpu_s']) / gb:.2f} CPU-s/GB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
