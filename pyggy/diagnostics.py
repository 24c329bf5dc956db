"""The server's diagnostic snapshot: what Iggy's GET_SNAPSHOT_FILE (`iggy snapshot`) returns.

A zip archive with one `<section>.txt` per requested section, as Iggy's server builds it:

- `filesystem_overview`: the data directory, file by file (size, modification time);
- `process_list`: this server process (pid, threads, memory, open files) and the host's
  processes by pid, name and memory (no command lines: they can hold other programs' secrets);
- `resource_usage`: the GET_STATS values, load, memory, CPU time and disk space;
- `server_logs`: the server's recent log lines (pyggy logs to stderr and writes no log files,
  so it keeps the last `LOG_LINES` in memory: pyggy/logtail.py);
- `server_config`: the effective configuration, with secrets (S3 keys, passwords, tokens,
  credentials in URLs) redacted;
- `test`: the line "test".

Collection runs in a worker thread (it walks directories and /proc); one snapshot at a time,
as in Iggy: a second request while one is collected gets SNAPSHOT_FILE_COMPLETION_FAILED. A
section that cannot be read is logged and left out. Entries are stored, deflated, bzip2- or
lzma-compressed; zstd and xz zip entries (which Iggy can also write) are FEATURE_UNAVAILABLE,
as Python's zipfile cannot write them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pyggy.config import DURATION, SIZE, ServerConfig, iter_settings
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.units import format_duration, format_size
from pyggy.logtail import LOG_TAIL, LogTail

log = logging.getLogger(__name__)

MAX_LISTED = 10_000  # files listed by `filesystem_overview`, processes by `process_list`
# zip methods by request name (zipfile and resource are imported in the collecting thread:
# the server's start-up does not pay for them)
METHODS = {"stored": "ZIP_STORED", "deflated": "ZIP_DEFLATED", "bzip2": "ZIP_BZIP2",
           "lzma": "ZIP_LZMA"}
_SECRET_KEY = re.compile(r"secret|password|token|key_id", re.IGNORECASE)
_URL_CREDENTIALS = re.compile(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)
REDACTED = "<redacted>"




def redacted_config(config: ServerConfig) -> str:
    """The effective configuration as TOML, secrets replaced by `<redacted>`."""
    out: list[str] = []
    section: tuple[str, ...] | None = None
    for s in iter_settings(config):
        if s.path[:-1] != section:
            section = s.path[:-1]
            out.append(f"\n[{'.'.join(section)}]")
        value = s.default  # iter_settings(config) yields the config's current values
        if s.kind == DURATION:
            text = f'"{format_duration(value)}"'
        elif s.kind == SIZE:
            text = f'"{format_size(value)}"'
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            if value and _SECRET_KEY.search(s.path[-1]):
                value = REDACTED
            text = '"' + _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", value).replace(
                "\\", "\\\\").replace('"', '\\"') + '"'
        else:
            text = str(value)
        out.append(f"{s.path[-1]} = {text}")
    return "\n".join(out).lstrip() + "\n"


class Diagnostics:
    """The real `SnapshotSource` of the native door (pyggy.native_wire.context)."""

    def __init__(self, config: ServerConfig, tail: LogTail = LOG_TAIL) -> None:
        self.data = Path(config.system.path)
        self.config = config  # not changed once the server runs
        self.tail = tail
        self.busy = False

    @functools.cached_property
    def config_text(self) -> str:
        """The redacted config, rendered at the first snapshot that asks for it (it was
        rendered at every start, before the doors' first answers)."""
        return redacted_config(self.config)

    async def snapshot(self, sections: Sequence[str], compression: str,
                       stats: Mapping[str, Any]) -> bytes:
        method = METHODS.get(compression)
        if method is None:
            raise IggyError(ErrorCode.FEATURE_UNAVAILABLE,
                            f"{compression} snapshots: use deflated, stored, bzip2 or lzma")
        if self.busy:
            raise IggyError(ErrorCode.SNAPSHOT_FILE_COMPLETION_FAILED,
                            "another snapshot is being collected")
        self.busy = True
        try:  # what lives on the event loop is copied here; the rest is read in the thread
            logs = self.tail.text() if "server_logs" in sections else ""
            readers: dict[str, Callable[[], str]] = {
                "filesystem_overview": self._filesystem,
                "process_list": _processes,
                "resource_usage": lambda: _resources(stats, self.data),
                "server_logs": lambda: logs,
                "server_config": lambda: self.config_text,
                "test": lambda: "test\n",
            }
            chosen = [(name, readers[name]) for name in sections]
            return await asyncio.to_thread(_collect, chosen, method)
        finally:
            self.busy = False

    def _filesystem(self) -> str:
        usage = shutil.disk_usage(self.data)
        lines = [f"data directory {self.data.resolve()}: {usage.free} of {usage.total} bytes "
                 "free", "size\tmodified (UTC)\tpath"]
        for i, path in enumerate(sorted(self.data.rglob("*"))):
            if i == MAX_LISTED:
                lines.append(f"... (listing stops at {MAX_LISTED} entries)")
                break
            st = path.lstat()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime))
            kind = "/" if path.is_dir() else ""
            lines.append(f"{st.st_size}\t{stamp}\t{path.relative_to(self.data)}{kind}")
        return "\n".join(lines) + "\n"


def _collect(chosen: list[tuple[str, Callable[[], str]]], method: str) -> bytes:
    import io
    import zipfile

    started = time.monotonic()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=getattr(zipfile, method)) as archive:
        for name, read in chosen:
            try:
                text = read()
            except OSError as e:  # as Iggy: a section that fails is logged and left out
                log.error("snapshot: could not capture %s: %s", name, e)
                continue
            archive.writestr(f"{name}.txt", text)
    log.info("snapshot collected: %s, %d bytes in %.2f s", ", ".join(n for n, _ in chosen),
             out.tell(), time.monotonic() - started)
    return out.getvalue()


def _status(pid: int | str) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def _processes() -> str:
    me = _status("self")
    lines = ["=== this server ===",
             f"pid {os.getpid()}, parent {os.getppid()}, python {sys.version.split()[0]}",
             f"threads {me.get('Threads', '?')}, rss {me.get('VmRSS', '?').strip()}, "
             f"open files {len(os.listdir('/proc/self/fd'))}",
             "", "=== processes (pid, state, rss, name) ==="]
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    for pid in pids[:MAX_LISTED]:
        try:
            s = _status(pid)
        except OSError:  # gone meanwhile, or not readable
            continue
        lines.append(f"{pid}\t{s.get('State', '?')[:1]}\t{s.get('VmRSS', '-').strip()}\t"
                     f"{s.get('Name', '?')}")
    return "\n".join(lines) + "\n"


def _resources(stats: Mapping[str, Any], data: Path) -> str:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = ["=== server statistics (GET_STATS) ==="]
    lines += [f"{key}: {value}" for key, value in stats.items() if key != "cache_metrics"]
    disk = shutil.disk_usage(data)
    lines += ["", "=== resources ===", f"cpu count: {os.cpu_count()}", f"load average: {load}",
              f"process cpu time: user {usage.ru_utime:.2f} s, system {usage.ru_stime:.2f} s",
              f"process max rss: {usage.ru_maxrss} KiB",
              f"data disk: {disk.free} free of {disk.total} bytes"]
    with open("/proc/meminfo") as f:
        lines += ["", "=== /proc/meminfo ===", *(line.rstrip("\n") for line in f)]
    return "\n".join(lines) + "\n"
