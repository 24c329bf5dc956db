"""`pyggy-restore` (or `python -m pyggy.restore`): give a fresh server the metadata archived by
`[data_maintenance.state] archiver_enabled` — streams, topics and their options, partitions,
users, permissions, personal access tokens, consumer groups.

It reads the same configuration as `pyggy-server` (`--config`, `IGGY_*` variables, `--data-path`)
to find the archive (`[data_maintenance.archiver] kind` and its disk or S3 keys) and the data
directory, checks every entry of the archived state log (CRC-32C, order, and that the commands
apply), and writes it to `<data>/state/state.log` (the server writes its mirror,
`state.log.copy`, when it starts). The server then starts with that metadata. Messages are not
part of the state log; they stay in the archive under `streams/`. It is also the way out when
the server refuses to start because both copies of the local state log are damaged.

    pyggy-restore --list                       # the archived state-log snapshots
    pyggy-restore --data-path /var/lib/pyggy   # restore the newest one
    pyggy-restore --key state/20250101T120000.000000Z/state.log --force
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pyggy.archiver import layout
from pyggy.archiver.base import Archiver, ArchiverError
from pyggy.archiver.tiered import write_atomic
from pyggy.archiving import make_archiver
from pyggy.config import ConfigError, load_config, set_value, validate
from pyggy.core.errors import IggyError
from pyggy.core.metadata.machine import MetadataStateMachine
from pyggy.core.metadata.state_log import MIRROR_SUFFIX, merge


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyggy-restore", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="PATH", help="TOML config file (default: "
                   "$IGGY_CONFIG_PATH), as for pyggy-server")
    p.add_argument("--data-path", metavar="DIR", help="data directory to restore into "
                   "([system] path)")
    p.add_argument("--key", help="archived state log to restore (default: the newest)")
    p.add_argument("--list", action="store_true", help="list archived state logs and exit")
    p.add_argument("--force", action="store_true",
                   help="replace an existing state log (kept as state.log.bak-<time>)")
    return p


def snapshots(archiver: Archiver) -> list[tuple[str, int]]:
    return [(k, n) for k, n in archiver.list(layout.STATE_PREFIX) if k.endswith("/state.log")]


def choose(found: list[tuple[str, int]], overwrite: bool) -> str | None:
    """The newest snapshot: `state/state.log` when overwriting, else the latest stamped one
    (each falling back to the other)."""
    keys = [k for k, _ in found]
    stamped = sorted(k for k in keys if k != layout.STATE_KEY)
    fixed = [layout.STATE_KEY] if layout.STATE_KEY in keys else []
    order = fixed + stamped[-1:] if overwrite else stamped[-1:] + fixed
    return order[0] if order else None


def check(data: bytes) -> dict[str, int]:
    """Replay the state log into a scratch state machine; raise ValueError unless every byte
    is a valid entry and every command applies. Returns counts of what it holds."""
    merged = merge([data], strict_tail=True)
    if len(merged.good) != len(data):
        raise ValueError(f"only {len(merged.good)} of {len(data)} bytes are valid entries")
    meta = MetadataStateMachine()
    entries = 0
    for cmd in merged.commands:
        try:
            meta.apply(cmd)
        except IggyError as e:
            raise ValueError(f"entry {entries} ({cmd.get('type')}) does not apply: {e}"
                             ) from None
        entries += 1
    topics = [t for s in meta.streams.values() for t in s.topics.values()]
    return {"entries": entries, "streams": len(meta.streams), "topics": len(topics),
            "partitions": sum(len(t.partitions) for t in topics), "users": len(meta.users)}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config, os.environ)
        if args.data_path:
            set_value(config, ("system", "path"), args.data_path)
        validate(config)
        archiver = make_archiver(config)
        archiver.init()
        found = snapshots(archiver)
        if args.list:
            for name, size in found:
                print(f"{name}\t{size}")
            return 0
        key = args.key or choose(found, config.data_maintenance.state.overwrite)
        if key is None:
            print(f"pyggy-restore: no archived state log in {archiver.describe()}",
                  file=sys.stderr)
            return 1
        data = archiver.read_all(key)
        counts = check(data)
    except (ConfigError, ArchiverError) as e:
        print(f"pyggy-restore: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"pyggy-restore: {key} is not a usable state log: {e}", file=sys.stderr)
        return 1
    target = Path(config.system.path) / "state" / "state.log"
    copies = [target, target.with_name(target.name + MIRROR_SUFFIX)]
    if any(p.exists() and p.stat().st_size for p in copies):
        if not args.force:
            print(f"pyggy-restore: {target} exists; refusing to replace it without --force",
                  file=sys.stderr)
            return 1
        stamp = time.strftime('%Y%m%dT%H%M%S')
        for p in copies:
            if p.exists():
                backup = p.with_name(f"{p.name}.bak-{stamp}")
                p.rename(backup)
                print(f"kept the previous {p.name} as {backup}")
    target.parent.mkdir(parents=True, exist_ok=True)
    copies[1].unlink(missing_ok=True)  # the server writes the mirror from this log
    write_atomic(target, data)
    print(f"restored {counts['entries']} state entries ({counts['streams']} streams, "
          f"{counts['topics']} topics, {counts['partitions']} partitions, {counts['users']} "
          f"users) from {key} in {archiver.describe()} into {target}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
