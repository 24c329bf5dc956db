"""Stored consumer offsets, per consumer or consumer group, per partition.

Each offset is a small file under the partition directory
(`offsets/consumers/<key>`, `offsets/groups/<group id>`), rewritten on store.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

from pyggy.core.model import Identifier

CONSUMER = 1
CONSUMER_GROUP = 2
_U64 = struct.Struct("<Q")


def _file_key(consumer: Identifier) -> str:
    return f"n{consumer}" if isinstance(consumer, int) else "s" + consumer.encode().hex()


def _parse_key(name: str) -> Identifier | None:
    try:
        return int(name[1:]) if name[0] == "n" else bytes.fromhex(name[1:]).decode()
    except (ValueError, IndexError):
        return None


class ConsumerOffsets:
    """Offsets of one partition: consumers by id or name, groups by group id."""

    def __init__(self, partition_path: Path) -> None:
        self.root = partition_path / "offsets"
        self.values: dict[tuple[int, Identifier], int] = {}
        for kind, sub in ((CONSUMER, "consumers"), (CONSUMER_GROUP, "groups")):
            d = self.root / sub
            if not d.is_dir():
                continue
            for f in d.iterdir():
                key = _parse_key(f.name)
                data = f.read_bytes()
                if key is not None and len(data) == 8:
                    self.values[(kind, key)] = _U64.unpack(data)[0]

    def _path(self, kind: int, consumer: Identifier) -> Path:
        return self.root / ("consumers" if kind == CONSUMER else "groups") / _file_key(consumer)

    def get(self, kind: int, consumer: Identifier) -> int | None:
        return self.values.get((kind, consumer))

    def store(self, kind: int, consumer: Identifier, offset: int) -> None:
        self.values[(kind, consumer)] = offset
        path = self._path(kind, consumer)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(_U64.pack(offset))
        os.replace(tmp, path)

    def delete(self, kind: int, consumer: Identifier) -> bool:
        if self.values.pop((kind, consumer), None) is None:
            return False
        self._path(kind, consumer).unlink(missing_ok=True)
        return True

    def clear(self) -> None:
        self.values.clear()
        shutil.rmtree(self.root, ignore_errors=True)
