"""What forwarding a batch to another shard costs (docs/sharding.md): one process sends
requests carrying a payload of --size bytes over the inter-shard channel (pyggy/shards/
channel.py, a Unix socket) to a second process that answers each with an empty reply, as an
owner acknowledges an append. Prints the throughput and the CPU seconds per GB forwarded of
both processes together (user + system, /proc/<pid>/stat).

    .venv/bin/python scripts/shard_channel_bench.py [--size 1000000] [--count 2000]
                                                    [--in-flight 4]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
from typing import Any

from pyggy.bench.cost import cpu_seconds
from pyggy.shards.channel import Channel, Reply, connect


async def _echo(meta: dict[str, Any], payload: memoryview) -> Reply:
    return {"n": len(payload)}, b""


def _owner(path: str, ready: Any) -> None:
    async def main() -> None:
        done = asyncio.Event()
        server = await asyncio.get_running_loop().create_unix_server(
            lambda: Channel(_echo, lambda m: None, lambda c: done.set()), path)
        ready.set()
        await done.wait()
        server.close()
    asyncio.run(main())


async def _send(path: str, size: int, count: int, in_flight: int) -> float:
    channel = await connect(path, _echo, lambda m: None, lambda c: None)
    payload = bytearray(size)
    left = count

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            reply, _ = await channel.request({"op": "append"}, payload)
            assert reply["n"] == size
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    channel.close()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1_000_000, help="payload bytes (1000000)")
    ap.add_argument("--count", type=int, default=2000, help="requests (2000)")
    ap.add_argument("--in-flight", type=int, default=4, help="concurrent requests (4)")
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "owner.sock")
        ready = multiprocessing.Event()
        owner = multiprocessing.Process(target=_owner, args=(path, ready))
        owner.start()
        ready.wait(30)
        assert owner.pid is not None
        cpu0 = cpu_seconds(os.getpid()) + cpu_seconds(owner.pid)
        elapsed = asyncio.run(_send(path, args.size, args.count, args.in_flight))
        cpu = cpu_seconds(os.getpid()) + cpu_seconds(owner.pid) - cpu0
        owner.join(10)
    gb = args.size * args.count / 1e9
    print(f"{args.count} x {args.size} B, {args.in_flight} in flight: {gb / elapsed * 1000:.0f} "
          f"MB/s, {elapsed * 1e6 / args.count:.0f} us per request, both processes "
          f"{cpu:.2f} CPU-s = {cpu / gb:.2f} CPU-s/GB forwarded")


if __name__ == "__main__":
    main()
