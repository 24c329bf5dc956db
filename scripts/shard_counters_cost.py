"""What counting a forwarded request costs (pyggy/shards/counters.py): the asking shard's
door lookup, counter bump and `door` key in the frame's JSON meta (frames.head), and the
owner's bump, against the same frame head without them; medians of alternating runs.

    .venv/bin/python scripts/shard_counters_cost.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import timeit

from pyggy.transport.connection import DOOR

from pyggy.shards import frames
from pyggy.shards.counters import ShardCounters, door_of

BASE = {"op": "iggy_append", "count": 10, "stream": 1, "topic": 1, "partition": 3}
N = 200_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    DOOR.set("tcp")
    counters = ShardCounters()

    def before() -> None:
        frames.head(0, 1, dict(BASE), 1000)

    def after() -> None:
        meta = dict(BASE)
        door = door_of(DOOR.get())
        meta["door"] = door
        counters.forwarded_out[door] += 1
        frames.head(0, 1, meta, 1000)
        got = meta.get("door")  # the owner's side
        if got is not None and got in counters.forwarded_in:
            counters.forwarded_in[got] += 1

    b, a = [], []
    for _ in range(runs):
        b.append(min(timeit.repeat(before, number=N, repeat=3)) / N * 1e9)
        a.append(min(timeit.repeat(after, number=N, repeat=3)) / N * 1e9)
    added = statistics.median(x - y for x, y in zip(a, b, strict=True))
    print(f"frame head: {statistics.median(b):.0f} ns; with the counting: "
          f"{statistics.median(a):.0f} ns; added {added:.0f} ns per forwarded request")


if __name__ == "__main__":
    main()
