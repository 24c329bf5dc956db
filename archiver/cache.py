"""A bounded LRU cache of archived bytes: fixed-size aligned chunks of objects, plus parsed
segment indexes. Used on the event loop thread only."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

CHUNK = 1 << 20


class RangeCache:
    """Chunks of `chunk` bytes keyed by (object key, chunk number), and whole parsed objects
    keyed by (object key, None); least recently used entries go first once `capacity` bytes are
    held. A put may overshoot the capacity by its own size until the next put, so what a fetch
    just brought in is still there for the read that follows it."""

    def __init__(self, capacity: int, chunk: int = CHUNK) -> None:
        self.capacity = capacity
        self.chunk = chunk
        self.entries: OrderedDict[tuple[str, int | None], tuple[Any, int]] = OrderedDict()
        self.size = 0
        self.hits = self.misses = self.fetched_bytes = 0

    # -- byte ranges -------------------------------------------------------------------------
    def get(self, key: str, position: int, length: int) -> bytes | None:
        """Bytes [position, position + length) of `key`, or None unless every chunk is held."""
        if length <= 0:
            return b""
        first, last = position // self.chunk, (position + length - 1) // self.chunk
        pieces = []
        for n in range(first, last + 1):
            entry = self.entries.get((key, n))
            if entry is None:
                self.misses += 1
                return None
            self.entries.move_to_end((key, n))
            pieces.append(entry[0])
        self.hits += 1
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        start = position - first * self.chunk
        return bytes(memoryview(data)[start:start + length])

    def missing(self, key: str, position: int, length: int, object_size: int
                ) -> list[tuple[int, int]]:
        """Chunk-aligned (start, end) byte ranges of [position, position + length) not held,
        merged where adjacent and clipped to the object's size."""
        if length <= 0:
            return []
        first, last = position // self.chunk, (position + length - 1) // self.chunk
        out: list[tuple[int, int]] = []
        for n in range(first, last + 1):
            if (key, n) in self.entries:
                continue
            start, end = n * self.chunk, min((n + 1) * self.chunk, object_size)
            if out and out[-1][1] == start:
                out[-1] = (out[-1][0], end)
            else:
                out.append((start, end))
        return out

    def put(self, key: str, start: int, data: bytes) -> None:
        """Store bytes fetched at chunk-aligned `start` (the last chunk may be short)."""
        assert start % self.chunk == 0
        self.fetched_bytes += len(data)
        self._make_room(len(data))
        view = memoryview(data)
        for off in range(0, len(data), self.chunk):
            piece = bytes(view[off:off + self.chunk])
            self._insert((key, (start + off) // self.chunk), piece, len(piece))

    # -- whole objects (parsed indexes) ------------------------------------------------------
    def get_object(self, key: str) -> Any:
        entry = self.entries.get((key, None))
        if entry is None:
            self.misses += 1
            return None
        self.entries.move_to_end((key, None))
        self.hits += 1
        return entry[0]

    def put_object(self, key: str, value: Any, size: int) -> None:
        self._make_room(size)
        self._insert((key, None), value, size)

    # -- bookkeeping -------------------------------------------------------------------------
    def forget(self, key: str) -> None:
        """Drop everything held for `key` (its object was deleted)."""
        for k in [k for k in self.entries if k[0] == key]:
            self.size -= self.entries.pop(k)[1]

    def _insert(self, k: tuple[str, int | None], value: Any, size: int) -> None:
        old = self.entries.pop(k, None)
        if old is not None:
            self.size -= old[1]
        self.entries[k] = (value, size)
        self.size += size

    def _make_room(self, incoming: int) -> None:
        while self.entries and self.size + incoming > self.capacity:
            _, (_, size) = self.entries.popitem(last=False)
            self.size -= size
