"""Classic (0.8) SendMessages from the wire, as `iggy-bench pinned-producer` sends them: one
connection, lockstep batches of 1000 × 1000 B (ids 0: the server makes UUIDv4s), the server's
CPU per GB in, MB/s and the batch round trip.

    .venv/bin/python scripts/classic_produce.py [--batches 1000] [--rounds 6]
        [--peers pyggy,pyggy@/other/checkout/.venv/bin/python] [--json PATH]
        [--attach 'perf record -g -q -o /tmp/{tag}.data -p {pid}']

Per round and peer (order alternating round by round): a fresh server with an empty data
directory, a login and a one-partition topic over pyggy's native client, then `--batches`
SendMessages frames on a classic connection, each sent whole and its empty reply awaited.
The server's user + system CPU (/proc, all threads) is read around the sends only (logins
and set-up excluded). `pyggy@PYTHON` runs the pyggy that interpreter imports (another
checkout's venv). `--attach` runs a command on the server during the sends (`{pid}`: the
server's, `{tag}`: peer index and round), stopped with SIGINT after them: perf, strace -c.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyggy.native_client import NativeClient  # noqa: E402
from scripts.consume_after_produce import proc_stat  # noqa: E402
from scripts.poll_rtt import ClassicPoller, start_peer  # noqa: E402

N, SIZE = 1000, 1000


def send_frame() -> bytes:
    """A classic SendMessages frame: stream "bench", topic "t", partition 0, 1000 × 1000 B with
    id 0 (the layout of native_wire/codec/frames.py and core/records/iggy_batch.py)."""
    one = bytes(48) + struct.pack("<II", 0, SIZE) + bytes(8) + os.urandom(SIZE)
    index = b"".join(struct.pack("<IIQ", 0, (i + 1) * len(one), 0) for i in range(N))
    meta = b"\x02\x05bench" + b"\x02\x01t" + b"\x02\x04" + struct.pack("<I", 0) \
        + struct.pack("<I", N)
    body = struct.pack("<I", len(meta)) + meta + index + one * N
    return struct.pack("<II", 4 + len(body), 101) + body


def one_round(name: str, workdir: Path, batches: int, frame: bytes,
              attach: str | None, tag: str) -> dict[str, float]:
    server = start_peer(name, workdir)
    try:
        c = NativeClient(server.tcp_address)
        c.login("iggy", "iggy")
        c.create_stream("bench")
        c.create_topic("bench", "t", 1)
        c.close()
        classic = ClassicPoller(server.tcp_address)
        sock = classic.sock
        reply = bytearray(8)
        pid = server.pid
        assert pid is not None
        recorder = None
        if attach is not None:
            recorder = subprocess.Popen(shlex.split(attach.format(pid=pid, tag=tag)))
            time.sleep(0.5)  # the tool attaches (not a synchronisation of the server)
        lat: list[float] = []
        u0, s0, _ = proc_stat(pid)
        t0 = time.perf_counter()
        for _ in range(batches):
            t = time.perf_counter()
            sock.sendall(frame)
            got = 0
            view = memoryview(reply)
            while got < 8:
                k = sock.recv_into(view[got:])
                if not k:
                    raise ConnectionError("closed")
                got += k
            lat.append(time.perf_counter() - t)
            if reply != bytes(8):
                raise RuntimeError(f"send refused: {bytes(reply).hex()}")
        wall = time.perf_counter() - t0
        u1, s1, _ = proc_stat(pid)
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(30)
        classic.close()
    finally:
        server.stop()
    gb = batches * len(frame) / 1e9
    return {"mb_s": gb * 1000 / wall, "p50_ms": statistics.median(lat) * 1000,
            "cpu_s_per_gb": (u1 + s1 - u0 - s0) / gb}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--peers", default="pyggy")
    ap.add_argument("--attach")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    peers = args.peers.split(",")
    frame = send_frame()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in peers}
    for r in range(args.rounds):
        order = peers[r % len(peers):] + peers[:r % len(peers)]
        for name in order:
            with tempfile.TemporaryDirectory(prefix="classic-produce-") as tmp:
                out = one_round(name, Path(tmp), args.batches, frame, args.attach,
                                f"{peers.index(name)}-{r}")
            results[name].append(out)
            print(f"round {r} {name}: {out['mb_s']:.0f} MB/s, p50 {out['p50_ms']:.3f} ms, "
                  f"{out['cpu_s_per_gb']:.3f} CPU-s/GB, load {os.getloadavg()[0]:.2f}",
                  flush=True)
    for name, rows in results.items():
        def col(key: str, rows: list[dict[str, float]] = rows) -> str:
            v = [row[key] for row in rows]
            return f"{statistics.median(v):.3f} ({min(v):.3f}–{max(v):.3f})"
        print(f"{name}: MB/s {col('mb_s')}; p50 ms {col('p50_ms')}; "
              f"CPU-s/GB in {col('cpu_s_per_gb')}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
