"""The storage a replica persists to: zones of bytes, reads now, writes completed later.

A write is a submission; the replica learns it is durable when its driver calls
`Replica.on_write_done(token)` with the token it passed. The in-memory implementation completes
writes when its driver asks (`take_done`); the simulator's implementation (sim/disk.py) completes
them after a delay and tears, loses or misdirects them on crash and injects faults.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol


def snapshot_zone(area: int) -> str:
    """The zone of checkpoint snapshot area 0 or 1 (written alternately)."""
    return f"snapshot{area}"


class StorageError(Exception):
    """A read the device could not serve."""


class Storage(Protocol):
    def read(self, zone: str, offset: int, size: int) -> bytes:
        """Up to `size` bytes at `offset` (fewer or zeros past what was ever written)."""
        ...

    def write(self, zone: str, offset: int, data: bytes, token: Hashable) -> None:
        """Submit a write; `token` comes back through the driver once it is durable."""
        ...


class MemoryStorage:
    """Storage in dicts of bytearrays; a write is applied at once and reported by `take_done`."""

    def __init__(self) -> None:
        self.zones: dict[str, bytearray] = {}
        self._done: list[Hashable] = []

    def read(self, zone: str, offset: int, size: int) -> bytes:
        data = self.zones.get(zone, b"")
        out = bytes(data[offset:offset + size])
        return out + bytes(size - len(out)) if len(out) < size else out

    def write(self, zone: str, offset: int, data: bytes, token: Hashable) -> None:
        buf = self.zones.setdefault(zone, bytearray())
        if len(buf) < offset + len(data):
            buf.extend(bytes(offset + len(data) - len(buf)))
        buf[offset:offset + len(data)] = data
        self._done.append(token)

    def take_done(self) -> list[Hashable]:
        done, self._done = self._done, []
        return done
