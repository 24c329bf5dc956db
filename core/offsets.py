"""Stored consumer offsets, per consumer or consumer group, per partition.

Each offset is a small file under the partition directory (`offsets/consumers/<key>`,
`offsets/groups/<group id>`) holding the offset as a u64, kept as two checksummed copies
(`core/small_file.py`) and overwritten in place on store. Stores are not fsynced (an
auto-commit poll stores one): a crash of the machine may lose the last stores, never the file.
A file whose copies are both damaged is refused loudly: an error names it, it moves to
lost+found, and that consumer starts again from the log start — duplicates, never a skip.
Files of the old format (8 raw bytes) still load.
"""

from __future__ import annotations

import logging
import shutil
import struct
from pathlib import Path

from pyggy.core.lost_found import LostAndFound
from pyggy.core.model import Identifier
from pyggy.core.small_file import COPY_SUFFIX, CorruptFile, SmallFile

log = logging.getLogger(__name__)

CONSUMER = 1
CONSUMER_GROUP = 2
_U64 = struct.Struct("<Q")
_SUBDIRS = ((CONSUMER, "consumers"), (CONSUMER_GROUP, "groups"))


def _file_key(consumer: Identifier) -> str:
    return f"n{consumer}" if isinstance(consumer, int) else "s" + consumer.encode().hex()


def _parse_key(name: str) -> Identifier | None:
    try:
        return int(name[1:]) if name[0] == "n" else bytes.fromhex(name[1:]).decode()
    except (ValueError, IndexError):
        return None


def _offset(payload: bytes) -> int:
    if len(payload) != _U64.size:
        raise ValueError(f"{len(payload)} bytes where an offset takes 8")
    offset: int = _U64.unpack(payload)[0]
    return offset


def _legacy(data: bytes) -> bytes:
    _offset(data)  # the old format: the 8 bytes alone
    return data


class ConsumerOffsets:
    """Offsets of one partition: consumers by id or name, groups by group id."""

    def __init__(self, partition_path: Path, lost_found: LostAndFound | None = None) -> None:
        self.root = partition_path / "offsets"
        self.values: dict[tuple[int, Identifier], int] = {}
        self.files: dict[tuple[int, Identifier], SmallFile] = {}
        for kind, sub in _SUBDIRS:
            d = self.root / sub
            if not d.is_dir():
                continue
            names = {f.name.removesuffix(COPY_SUFFIX) for f in d.iterdir()}
            for name in sorted(names):
                key = _parse_key(name)
                if key is not None:
                    self._load(kind, key, SmallFile(d / name, durable=False, legacy=_legacy),
                               lost_found)

    def _load(self, kind: int, key: Identifier, f: SmallFile,
              lost_found: LostAndFound | None) -> None:
        try:
            payload = f.read()
            if payload is None:
                return
            value = _offset(payload)
        except (CorruptFile, ValueError) as e:
            log.error("consumer offset refused: %s; %s %r reads this partition again from the "
                      "log start (duplicates, never a skip)", e,
                      "consumer" if kind == CONSUMER else "group", key)
            f.set_aside("damaged consumer offset", lost_found)
            return
        self.values[(kind, key)] = value
        self.files[(kind, key)] = f

    def _file(self, kind: int, consumer: Identifier) -> SmallFile:
        f = self.files.get((kind, consumer))
        if f is None:
            sub = self.root / ("consumers" if kind == CONSUMER else "groups")
            sub.mkdir(parents=True, exist_ok=True)
            f = self.files[(kind, consumer)] = SmallFile(sub / _file_key(consumer),
                                                         durable=False)
        return f

    def get(self, kind: int, consumer: Identifier) -> int | None:
        return self.values.get((kind, consumer))

    def store(self, kind: int, consumer: Identifier, offset: int) -> None:
        """Write the offset (OSError when the disk refuses: nothing changes then)."""
        self._file(kind, consumer).write(_U64.pack(offset))
        self.values[(kind, consumer)] = offset

    def delete(self, kind: int, consumer: Identifier) -> bool:
        if self.values.pop((kind, consumer), None) is None:
            return False
        f = self.files.pop((kind, consumer), None)
        if f is not None:
            f.remove()
        return True

    def clear(self) -> None:
        self.values.clear()
        self.files.clear()
        shutil.rmtree(self.root, ignore_errors=True)
