"""`pyggy-scrub` (or `python -m pyggy.scrub`): verify everything a stopped server has stored.

It reads the same configuration as `pyggy-server` (`--config`, `IGGY_*` variables,
`--data-path`), takes the data directory's lock (a running server holds it: stop the server
first), opens the data as the server does — the metadata files and every segment's tail are
verified and repaired there — and then reads every stored batch of every local segment back
against the CRC-32C in its index entry. What a verified copy can repair is repaired: a
redundant metadata copy, or the archive (`[data_maintenance.archiver]`, when configured) for
segment data. Everything found is reported; the exit code is 0 when nothing is left damaged,
1 when something is (each such batch named), 2 for a usage or configuration error.

    pyggy-scrub --data-path /var/lib/pyggy
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pyggy import datadir
from pyggy.archiving import setup as setup_archiving
from pyggy.config import ConfigError, load_config, set_value, validate
from pyggy.core.engine import LogEngine
from pyggy.core.errors import IggyError
from pyggy.core.small_file import CorruptFile
from pyggy.core.storage.scrub import ScrubReport, scrub_partition
from pyggy.core.storage.tiered import run_async

log = logging.getLogger("pyggy.scrub")
_SEGMENT_LOGGERS = frozenset({"pyggy.core.storage.recovery", "pyggy.core.storage.repair"})


class _Findings(logging.Handler):
    """Keeps what the engine reported (warnings and errors) while it opened and scrubbed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("pyggy.core") or record.name.startswith("pyggy.archiver"):
            self.records.append(record)


class _Pace:
    """Keeps a walk at most `rate` bytes a second: `pause()` sleeps while it is ahead."""

    def __init__(self, report: ScrubReport, rate: int) -> None:
        self.report, self.rate = report, rate
        self.loop = asyncio.get_running_loop()
        self.since, self.done = self.loop.time(), 0

    async def pause(self) -> None:
        ahead = (self.report.bytes - self.done) / self.rate - (self.loop.time() - self.since)
        if ahead > 0.05:  # ahead of the rate: let the rest of the server run
            await asyncio.sleep(ahead)
            self.since, self.done = self.loop.time(), self.report.bytes


async def background(engine: LogEngine, interval: float, rate: int) -> None:
    """The server's scrubber: a pass over every partition every `interval` seconds, verifying
    at most `rate` bytes a second, awaiting archive reads for repairs; one log line a pass."""
    loop = asyncio.get_running_loop()
    while True:
        began = loop.time()
        report = ScrubReport()
        pace = _Pace(report, rate)
        for plog in engine.partition_logs():
            await run_async(scrub_partition(plog, report), pace.pause)
        level = logging.ERROR if report.refused else logging.INFO
        log.log(level, "scrub: %d batches, %d bytes verified; %d repaired, %d upgraded, %d "
                "damaged and refused", report.batches, report.bytes, report.repaired,
                report.upgraded, len(report.refused))
        await asyncio.sleep(max(interval - (loop.time() - began), 0))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyggy-scrub", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="PATH", help="TOML config file (default: "
                   "$IGGY_CONFIG_PATH), as for pyggy-server")
    p.add_argument("--data-path", metavar="DIR", help="data directory ([system] path)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        config = load_config(args.config, os.environ)
        if args.data_path:
            set_value(config, ("system", "path"), args.data_path)
        validate(config)
        root = Path(config.system.path)
        if not (root / "state").is_dir():
            raise ConfigError(f"{root.resolve()} holds no pyggy data (no state/ directory)")
        lock = datadir.lock(root)
    except (ConfigError, datadir.DataDirBusy) as e:
        log.error("%s", e)
        return 2
    findings = _Findings()
    logging.getLogger().addHandler(findings)
    started = time.monotonic()
    archiving = setup_archiving(config)
    engine = LogEngine(root, validate_checksum=True,
                       state_fsync=config.system.state.enforce_fsync,
                       remote=archiving.remote if archiving is not None else None)
    try:
        engine.open(None)
        report = engine.scrub()
        engine.close()
    except (IggyError, OSError, CorruptFile) as e:  # metadata damaged beyond repair, ...
        log.error("cannot open %s: %s", root.resolve(), e)
        return 1
    finally:
        if archiving is not None:
            archiving.close()
        datadir.unlock(lock)
        logging.getLogger().removeHandler(findings)
    errors = [r for r in findings.records if r.levelno >= logging.ERROR]
    # damage to segment data is judged by the scrub's own outcome (repaired or not), not by
    # the error recovery logged when it found the damage at open
    unresolved = [r for r in errors if r.name not in _SEGMENT_LOGGERS]
    print(f"pyggy-scrub: {root.resolve()}: {len(engine.partition_logs())} partitions, "
          f"{report.batches} batches, {report.bytes} bytes verified in "
          f"{time.monotonic() - started:.1f} s")
    print(f"  repaired from a verified copy: {report.repaired}; index entries upgraded: "
          f"{report.upgraded}; warnings: {len(findings.records) - len(errors)}; "
          f"errors: {len(errors)}")
    for r in findings.records:
        print(f"  {r.levelname.lower()}: {r.getMessage()}")
    for text in report.refused:
        print(f"  damaged, not repaired: {text}")
    damaged = bool(report.refused) or bool(unresolved)
    print("pyggy-scrub: " + ("DAMAGED: see above; restore from the archive or "
                             "`pyggy-server --repair-state`" if damaged else "clean"))
    return 1 if damaged else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
