"""The cost figure: server CPU seconds per GB moved, from `/proc/<pid>/stat` (Linux).

A server may be several processes (one per shard): the figure sums every process given, or
every process with a socket listening on the benchmarked port (`listening_pids`), so a run
against shards in processes needs no option. Fields 14 and 15 of `stat` (utime, stime, in
clock ticks; `man 5 proc`) count the CPU time of all of a process's threads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01
_TCP_LISTEN = "0A"  # st column of /proc/net/tcp{,6}


def cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """User + system CPU seconds used so far by process `pid` (all its threads)."""
    raw = (proc / str(pid) / "stat").read_bytes()
    # the command name (field 2) is in parentheses and may hold spaces or ')': split after it
    fields = raw[raw.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # fields 14, 15 counting from 1


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == _TCP_LISTEN and int(cols[1].rsplit(":", 1)[1],
                                                                 16) == port:
                inodes.add(cols[9])
    return inodes


def listening_pids(port: int, proc: Path = Path("/proc")) -> list[int]:
    """Pids of the processes holding a TCP socket that listens on `port` (every shard of a
    server that listens on each shard). Processes whose descriptors cannot be read are
    skipped (another user's, or gone)."""
    wanted = {f"socket:[{inode}]" for inode in _listening_inodes(port, proc)}
    pids: list[int] = []
    if not wanted:
        return pids
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in wanted for fd in (entry / "fd").iterdir()):
                pids.append(int(entry.name))
        except OSError:
            continue
    return sorted(pids)


class CpuMeter:
    """CPU seconds a set of processes spend between `start()` and `stop()`."""

    def __init__(self, pids: Iterable[int]) -> None:
        self.pids: Sequence[int] = tuple(pids)
        self._start: dict[int, float] = {}
        self.seconds = 0.0

    def _read(self) -> dict[int, float]:
        out = {}
        for pid in self.pids:
            try:
                out[pid] = cpu_seconds(pid)
            except OSError:  # gone: its time up to now is lost, the others still count
                continue
        return out

    def start(self) -> CpuMeter:
        self._start = self._read()
        return self

    def stop(self) -> float:
        end = self._read()
        self.seconds = sum(end[p] - self._start[p] for p in end if p in self._start)
        return self.seconds


def cost(cpu_s: float, bytes_in: int, bytes_out: int) -> dict[str, float]:
    """The cost figure of one phase: server CPU seconds, GB in (produced) and out (consumed),
    and CPU seconds per GB moved (in + out; NaN when nothing moved)."""
    gb_in, gb_out = bytes_in / 1e9, bytes_out / 1e9
    moved = gb_in + gb_out
    return {"server_cpu_s": cpu_s, "gb_in": gb_in, "gb_out": gb_out,
            "cpu_s_per_gb": cpu_s / moved if moved else float("nan")}
