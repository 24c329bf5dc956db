"""In process: the CPU time of one classic (0.8) request through the native door's `handle`
(frame in, reply buffers out; no socket): a ping (the fixed cost of dispatch), a SendMessages
of 1000 × 1000 B and a PollMessages of those 1000 messages, and the send's validate + stamp
step alone.

    .venv/bin/python scripts/classic_request_cpu.py
    /other/checkout/.venv/bin/python /this/checkout/scripts/classic_request_cpu.py  # other build

Run it from outside a checkout (the interpreter's own pyggy is imported). Best of 7 runs
(`time.thread_time`: user + system of this thread, so a send includes its `pwrite`; the data
directory is on /dev/shm when there is one, to keep the disk out of it).
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
import tempfile
import time
import timeit
from functools import partial
from pathlib import Path

from pyggy.core.engine import LogEngine
from pyggy.core.records import iggy_batch as ib
from pyggy.native_wire.codec import primitives as p
from pyggy.native_wire.context import NativeServer
from pyggy.native_wire.dispatch import handle_classic
from pyggy.native_wire.listener import NativeDoor

N, SIZE = 1000, 1000
STREAM, TOPIC = "bench-stream-1", "topic-1"


def frame(code: int, body: bytes) -> bytearray:
    return bytearray(struct.pack("<II", 4 + len(body), code) + body)


def send_body() -> bytes:
    """A classic SendMessages body: metadata, 16-byte index entries, 64-byte-header frames."""
    one = bytes(48) + struct.pack("<II", 0, SIZE) + bytes(8) + os.urandom(SIZE)
    index = b"".join(struct.pack("<IIQ", 0, (i + 1) * len(one), 0) for i in range(N))
    meta = (p.encode_identifier(STREAM) + p.encode_identifier(TOPIC)
            + p.encode_partitioning(2, 0) + struct.pack("<I", N))
    return struct.pack("<I", len(meta)) + meta + index + one * N


async def timed(door: NativeDoor, make: partial[bytearray], reps: int) -> float:
    best = float("inf")
    for _ in range(7):
        frames = [make() for _ in range(reps)]
        t0 = time.thread_time()
        for f in frames:
            parts, close = await door.handle(f)
            assert not close and bytes(parts[0][:4]) == bytes(4)  # type: ignore[index]
        best = min(best, (time.thread_time() - t0) / reps)
    return best * 1e6


async def main() -> None:
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        e = LogEngine(Path(tmp) / "data", state_fsync=False)
        e.open(("iggy", "iggy"))
        await e.metadata.create_stream(STREAM)
        await e.metadata.create_topic(STREAM, TOPIC, 1)
        server = NativeServer(e)
        door = NativeDoor(server, 64 << 20)
        door.session, door.protocol = server.open_session("bench:1"), "classic"
        door.dispatch = partial(handle_classic, server, door.session)
        await door.handle(frame(38, bytes([4]) + b"iggy" + bytes([4]) + b"iggy"))
        body = send_body()
        poll = (bytes([1]) + p.encode_identifier(1) + p.encode_identifier(STREAM)
                + p.encode_identifier(TOPIC) + p.encode_optional_partition(0)
                + p.encode_polling_strategy(1, 0) + struct.pack("<IB", N, 0))
        print(f"{sys.executable}")
        print(f"ping: {await timed(door, partial(frame, 1, b''), 20000):.2f} µs")
        print(f"send 1000 x 1000 B: {await timed(door, partial(frame, 101, body), 200):.1f} µs")
        print(f"poll 1000 x 1000 B: {await timed(door, partial(frame, 100, poll), 200):.1f} µs")
        e.close()
    batch = ib.classic_frames_to_batch(memoryview(body)[len(body) - N * (16 + 64 + SIZE):], N)

    def stamp() -> None:
        info = ib.validate_batch(memoryview(batch), expected_count=N, verify_checksums=False)
        ib.stamp_batch(batch, 0, 5, 10**15, info.frame_sums)

    best = min(timeit.repeat(stamp, number=2000, repeat=7)) / 2000 * 1e6
    print(f"send's validate (unverified) + stamp: {best:.2f} µs")


if __name__ == "__main__":
    asyncio.run(main())
