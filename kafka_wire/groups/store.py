"""Committed-offset stores: the narrow interface the coordinator needs, in memory and on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple, Protocol

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class CommittedOffset(NamedTuple):
    offset: int
    leader_epoch: int  # -1 when the client sent none
    metadata: str


class OffsetStore(Protocol):
    """Where committed offsets live. ``put`` gets every partition of one OffsetCommit at once,
    so a persistent store can make the whole commit durable with one write."""

    def get(self, group: str, topic: str, partition: int) -> CommittedOffset | None: ...
    def put(self, group: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> None: ...
    def delete(self, group: str, partitions: Iterable[TopicPartition]) -> None: ...
    def offsets(self, group: str) -> dict[TopicPartition, CommittedOffset]: ...
    def delete_group(self, group: str) -> None: ...
    def groups(self) -> list[str]: ...


class MemoryOffsetStore:
    """Offsets in a dict: for tests, and the cache under ``FileOffsetStore``."""

    def __init__(self) -> None:
        self._data: dict[str, dict[TopicPartition, CommittedOffset]] = {}

    def get(self, group: str, topic: str, partition: int) -> CommittedOffset | None:
        return self._data.get(group, {}).get((topic, partition))

    def put(self, group: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> None:
        if offsets:
            self._data.setdefault(group, {}).update(offsets)

    def delete(self, group: str, partitions: Iterable[TopicPartition]) -> None:
        stored = self._data.get(group)
        if stored is None:
            return
        for tp in partitions:
            stored.pop(tp, None)
        if not stored:
            del self._data[group]

    def offsets(self, group: str) -> dict[TopicPartition, CommittedOffset]:
        return dict(self._data.get(group, {}))

    def delete_group(self, group: str) -> None:
        self._data.pop(group, None)

    def groups(self) -> list[str]:
        return list(self._data)


_MAGIC = b"PGOF"
_HEADER = struct.Struct(">4sII")  # magic, CRC-32 of the payload, payload length
_SUFFIX = ".offsets"


def _file_name(group: str) -> str:
    # group ids may be long or hold any character: name files by digest, the id is inside
    digest = hashlib.sha256(group.encode("utf-8", "surrogatepass")).hexdigest()[:40]
    return digest + _SUFFIX


def encode_group_file(group: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> bytes:
    """Header + JSON ``{"group", "offsets": [[topic, partition, offset, epoch, metadata]]}``."""
    rows = [[t, p, o.offset, o.leader_epoch, o.metadata] for (t, p), o in sorted(offsets.items())]
    payload = json.dumps({"group": group, "offsets": rows}, separators=(",", ":")).encode()
    return _HEADER.pack(_MAGIC, zlib.crc32(payload), len(payload)) + payload


def decode_group_file(data: bytes) -> tuple[str, dict[TopicPartition, CommittedOffset]]:
    """Inverse of ``encode_group_file``; ValueError on a torn, corrupt or foreign file."""
    if len(data) < _HEADER.size:
        raise ValueError("short file")
    magic, crc, length = _HEADER.unpack_from(data)
    payload = data[_HEADER.size:]
    if magic != _MAGIC or length != len(payload) or zlib.crc32(payload) != crc:
        raise ValueError("bad header or checksum")
    doc = json.loads(payload)
    group = doc["group"]
    if not isinstance(group, str):
        raise ValueError("bad group id")
    offsets: dict[TopicPartition, CommittedOffset] = {}
    for topic, partition, offset, epoch, metadata in doc["offsets"]:
        if not (isinstance(topic, str) and isinstance(metadata, str)
                and all(type(v) is int for v in (partition, offset, epoch))):
            raise ValueError("bad offset row")
        offsets[(topic, partition)] = CommittedOffset(offset, epoch, metadata)
    return group, offsets


class FileOffsetStore(MemoryOffsetStore):
    """One small checksummed file per group under ``path``, loaded at start.

    Every change rewrites that group's file atomically: write a temporary file, fsync it,
    rename it over the old one, fsync the directory. Unreadable files are logged and skipped
    (left in place). The writes are synchronous; with ``fsync=False`` they cost no disk flush.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        self.fsync = fsync
        self.path.mkdir(parents=True, exist_ok=True)
        for f in sorted(self.path.iterdir()):
            if f.name.endswith(".tmp"):
                f.unlink(missing_ok=True)
            elif f.name.endswith(_SUFFIX):
                self._load(f)

    def _load(self, f: Path) -> None:
        try:
            group, offsets = decode_group_file(f.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping unreadable offsets file %s: %s", f, exc)
            return
        if f.name != _file_name(group):
            log.warning("skipping offsets file %s: it holds group %r", f, group)
            return
        if offsets:
            self._data[group] = offsets

    def put(self, group: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> None:
        super().put(group, offsets)
        if offsets:
            self._write(group)

    def delete(self, group: str, partitions: Iterable[TopicPartition]) -> None:
        super().delete(group, partitions)
        self._write(group)

    def delete_group(self, group: str) -> None:
        super().delete_group(group)
        self._write(group)

    def _write(self, group: str) -> None:
        final = self.path / _file_name(group)
        offsets = self._data.get(group)
        if not offsets:
            if final.exists():
                final.unlink()
                self._sync_dir()
            return
        tmp = final.with_name(final.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(encode_group_file(group, offsets))
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, final)
        self._sync_dir()

    def _sync_dir(self) -> None:
        if not self.fsync:
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
