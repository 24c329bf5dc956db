"""Touch most of a new virtual machine's free memory once, before benchmarking on it.

    python3 scripts/warm_memory.py [--gib N]      # default: 80 % of MemAvailable

A hypervisor may back a guest's memory only when the guest first writes a page. Until the
page cache has been through all of it, a benchmark that writes (the page cache taking new
pages for a produce run) pays that first touch inside the kernel's copy: on a fresh 2-core VM
here, `pwrite` of new data ran at 0.5 GB/s with 75 % of the server's CPU in the page-cache copy,
and 1.3 GB/s once the memory had been written once (BENCHMARKS.md, "Issue 16, seventh session").
This writes N GiB of anonymous memory, 1 MiB at a time, then frees it; it prints the rate, which
is low (hundreds of MB/s) the first time and several GB/s once the memory is backed.
"""

from __future__ import annotations

import argparse
import mmap
import time

CHUNK = 1 << 20


def available_gib() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / (1 << 20)
    return 0.0


def touch(size: int) -> float:
    """Write `size` bytes of fresh anonymous memory once; the seconds it took."""
    chunk = b"\1" * CHUNK
    start = time.perf_counter()
    with mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS) as m:
        for at in range(0, size - CHUNK + 1, CHUNK):
            m[at:at + CHUNK] = chunk
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gib", type=float, help="GiB to touch (default: 80 %% of MemAvailable)")
    args = ap.parse_args(argv)
    gib = args.gib if args.gib is not None else 0.8 * available_gib()
    size = max(CHUNK, int(gib * (1 << 30)) // CHUNK * CHUNK)
    took = touch(size)
    print(f"touched {size / (1 << 30):.2f} GiB in {took:.1f} s ({size / took / 1e9:.2f} GB/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
