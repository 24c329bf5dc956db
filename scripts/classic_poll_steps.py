"""In process: the CPU time of one classic (0.8) poll of a stored 1000 × 1000 B batch, the
server's steps without the socket (decode the body, permissions, the engine's poll = `pread` +
CRC-32C, the 64-byte-header frames).

    .venv/bin/python scripts/classic_poll_steps.py
    /other/checkout/.venv/bin/python scripts/classic_poll_steps.py   # another build, alternating

Best and median of 9 runs of 200 polls (`time.process_time`) over 10 stored batches. Runs the
pyggy the interpreter imports, whichever build that is (a build without the streamed classic
path is polled the way it polls).
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pyggy.core import permissions as perm
from pyggy.core.engine import LogEngine
from pyggy.core.records import iggy_batch as ib
from pyggy.native_wire.codec import primitives as p
from pyggy.native_wire.codec.reader import Reader

N, SIZE, BATCHES = 1000, 1000, 10
STREAMED = hasattr(ib, "classic_frames_of_batches")
BODY = (bytes([1]) + p.encode_identifier(1) + p.encode_identifier("bench-stream-1")
        + p.encode_identifier("topic-1") + p.encode_optional_partition(0)
        + p.encode_polling_strategy(1, 0) + struct.pack("<IB", N, 0))


def decode(r: Reader) -> tuple[Any, ...]:
    return p.decode_poll_request(r)  # a build before 0450300 has no one-pass decode to time


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        e = LogEngine(Path(tmp) / "data", state_fsync=False)
        e.open(("iggy", "iggy"))
        asyncio.run(e.metadata.create_stream("bench-stream-1"))
        asyncio.run(e.metadata.create_topic("bench-stream-1", "topic-1", 1))
        payload = os.urandom(SIZE)
        for _ in range(BATCHES):
            asyncio.run(e.data.append("bench-stream-1", "topic-1", (2, 0), ib.build_batch(
                [(0, payload, b"", 1000 + i) for i in range(N)])))
        user = e.identity.user(0)
        loop = asyncio.new_event_loop()

        def one(offset: int) -> None:
            kind, consumer, sid, tid, pid, strategy, _, count, auto = decode(Reader(BODY))
            t = e.metadata.topic(sid, tid)
            perm.ensure(perm.poll_messages(user, t.stream_id, t.id))
            res = loop.run_until_complete(e.data.poll_async(
                t.stream_id, t.id, pid, strategy, offset, count, kind, consumer, auto, None,
                streamed=STREAMED))
            if STREAMED:
                parts = [ib.classic_frames_of_batches(c) for c in (res.streamed or res.chunks)]
            else:
                parts = [ib.classic_frames_and_count(c, 0, res.count) for c in res.chunks]
            assert sum(k for _, k in parts) == N

        runs = []
        for _ in range(9):
            t0 = time.process_time()
            for i in range(200):
                one((i % BATCHES) * N)
            runs.append((time.process_time() - t0) / 200 * 1e6)
        loop.close()
        e.close()
    runs.sort()
    print(f"{sys.executable}: best {runs[0]:.1f} µs per poll, median {runs[4]:.1f}")


if __name__ == "__main__":
    main()
