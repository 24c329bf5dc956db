"""Which twin runs the hot batch walks: the C extension ``_walks`` or pure Python.

``WALKS`` is the compiled module when it was built (``pip install`` with a C compiler and the
xxHash headers, see setup.py) and ``PYGGY_PURE_PYTHON`` is unset or empty; else None and
iggy_batch / kafka_batch walk in Python. The C walk only accepts or rejects: on reject the
Python twin re-walks the batch to raise the exact error (README, "C walks").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

Buffer = bytes | bytearray | memoryview


class Walks(Protocol):
    """core/records/_walks.c (signatures in _walks.pyi)."""

    def iggy_validate(self, buf: Buffer, expected_count: int | None, verify: bool,
                      allow_sliced: bool, /) -> tuple[int, int, int, int, int, bytes] | None:
        ...

    def iggy_frame_sums(self, buf: Buffer, start: int, end: int, /) -> bytes | None: ...

    def iggy_stamp(self, buf: bytearray | memoryview, partition_id: int, base_offset: int,
                   base_timestamp: int, frame_sums: Buffer, /) -> bool: ...

    def iggy_select(self, buf: Buffer, first_offset: int, max_count: int, /
                    ) -> tuple[int, int, int] | None: ...

    def classic_convert(self, buf: Buffer, count: int,
                        random_ids: Callable[[int], bytes] | None, in_place: bool = False, /
                        ) -> bytearray | int | None: ...

    def classic_poll(self, buf: Buffer, first_offset: int, max_count: int, /
                     ) -> tuple[bytes, int] | None: ...

    def kafka_walk(self, buf: Buffer, pos: int, count: int, /) -> bool: ...

    def uninitialised_bytearray(self, n: int, /) -> bytearray: ...


_NAMES = ("iggy_validate", "iggy_frame_sums", "iggy_stamp", "iggy_select", "classic_convert",
          "classic_poll", "kafka_walk", "uninitialised_bytearray")


def _load() -> tuple[Walks | None, str]:
    if os.environ.get("PYGGY_PURE_PYTHON"):
        return None, "PYGGY_PURE_PYTHON is set"
    try:
        from pyggy.core.records import _walks
    except ImportError:
        return None, "the C extension is not built"
    if not all(hasattr(_walks, name) for name in _NAMES):
        return None, "the C extension is older than core/records/_walks.c (reinstall to rebuild)"
    return _walks, "C extension"


WALKS, WHY = _load()
IMPLEMENTATION = "c" if WALKS is not None else "python"

# bytearray(n) with its bytes not zeroed first (in C), for a buffer the caller overwrites whole
# before anything reads it (transport/framing.py); the pure-Python fallback zeroes them.
new_buffer: Callable[[int], bytearray] = (
    WALKS.uninitialised_bytearray if WALKS is not None else bytearray)
