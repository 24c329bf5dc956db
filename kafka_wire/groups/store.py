"""Committed-offset stores: the narrow interface the coordinator needs, in memory and on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import NamedTuple, Protocol

from pyggy.core.lost_found import LostAndFound
from pyggy.core.small_file import COPY_SUFFIX, CorruptFile, SmallFile

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
LOST_GROUPS = "lost_groups"  # digests of groups whose offsets file was lost (JSON list)


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


def _legacy(data: bytes) -> bytes:
    """The files before two copies were this encoding alone; it stays the payload."""
    try:
        decode_group_file(data)
    except (KeyError, TypeError) as e:
        raise ValueError(str(e)) from None
    return data


class FileOffsetStore(MemoryOffsetStore):
    """One small checksummed file per group under ``path``, loaded at start.

    Every change rewrites that group's file, kept as two checksummed copies (each fsynced unless
    ``fsync=False``; core/small_file.py): a damaged copy is repaired from the other. If
    both are damaged the group's offsets are lost; that is refused loudly, never a silent
    reset: an error names the file, the copies go to lost+found (a copy; the file stays until
    the group commits again), and the group is remembered in ``lost_groups``: OffsetFetch then
    answers a partition it has no offset for with the partition's log start (``log_start``),
    so its consumers read everything again (duplicates, never a skip) whatever their
    auto.offset.reset says. Files of the old format (one copy) still load.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True,
                 log_start: Callable[[str, int], int | None] | None = None,
                 lost_found: LostAndFound | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.fsync = fsync
        self.log_start = log_start
        self.path.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, SmallFile] = {}
        self._lost = SmallFile(self.path / LOST_GROUPS, durable=fsync)
        self.lost: set[str] = set(self._load_lost())
        lost_before = len(self.lost)
        names = set()
        for f in sorted(self.path.iterdir()):
            if f.name.endswith(".tmp"):
                f.unlink(missing_ok=True)
            elif f.name.removesuffix(COPY_SUFFIX).endswith(_SUFFIX):
                names.add(f.name.removesuffix(COPY_SUFFIX))
        for name in sorted(names):
            self._load(self._file(name), lost_found)
        if len(self.lost) != lost_before:
            self._save_lost()

    def _file(self, name: str) -> SmallFile:
        f = self._files.get(name)
        if f is None:
            f = self._files[name] = SmallFile(self.path / name, durable=self.fsync,
                                              legacy=_legacy)
        return f

    def _load_lost(self) -> list[str]:
        try:
            payload = self._lost.read()
            return [] if payload is None else list(json.loads(payload))
        except (CorruptFile, ValueError, TypeError) as e:
            # without the list, a lost group's consumers could skip: keep refusing loudly
            raise CorruptFile(self._lost.path, f"{e}; this list of Kafka groups whose "
                              f"offsets were lost cannot be read: restore both copies, or "
                              f"delete them to let those groups reset as their clients say"
                              ) from None

    def _save_lost(self) -> None:
        self._lost.write(json.dumps(sorted(self.lost)).encode())

    def _load(self, f: SmallFile, lost_found: LostAndFound | None) -> None:
        try:
            payload = f.read()
            if payload is None:
                return
            group, offsets = decode_group_file(payload)
        except (CorruptFile, ValueError, KeyError, TypeError) as exc:
            log.error("Kafka group offsets lost: %s; until that group commits again, "
                      "OffsetFetch answers its partitions with their log start (its consumers "
                      "read again from there: duplicates, never a skip)", exc)
            if f.path.name not in self.lost:  # first seen: keep the damaged bytes
                found = lost_found or LostAndFound.near(f.path)
                for p in (f.path, f.copy):
                    if p.exists():
                        found.copy(p, "damaged Kafka group offsets")
                self.lost.add(f.path.name)
            return
        if f.path.name != _file_name(group):
            log.warning("skipping offsets file %s: it holds group %r", f.path, group)
            return
        if offsets:
            self._data[group] = offsets

    def get(self, group: str, topic: str, partition: int) -> CommittedOffset | None:
        found = super().get(group, topic, partition)
        if found is None and self.lost and self.log_start is not None \
                and _file_name(group) in self.lost:
            start = self.log_start(topic, partition)
            if start is not None:
                return CommittedOffset(start, -1, "")
        return found

    def put(self, group: str, offsets: Mapping[TopicPartition, CommittedOffset]) -> None:
        """Write first (OSError when the disk refuses: nothing changes), then remember."""
        if offsets:
            self._write(group, {**self._data.get(group, {}), **offsets})
            super().put(group, offsets)

    def delete(self, group: str, partitions: Iterable[TopicPartition]) -> None:
        super().delete(group, partitions)
        self._write(group)

    def delete_group(self, group: str) -> None:
        super().delete_group(group)
        self._write(group)
        if _file_name(group) in self.lost:
            self.lost.discard(_file_name(group))
            self._save_lost()

    def _write(self, group: str, offsets: Mapping | None = None) -> None:
        f = self._file(_file_name(group))
        offsets = self._data.get(group) if offsets is None else offsets
        if not offsets:
            if f.path.exists() or f.copy.exists():
                f.remove()
            return
        f.write(encode_group_file(group, offsets))
