"""Iggy user headers: the TLV block of a message
(https://iggy.apache.org/docs/0.9/binary-protocol/encodings/ and .../messages/).

Entries ``u8 kind, u32 len (1..255, LE), data`` alternate key, value; the block holds an
even number of them, at most 100 000 bytes. Kinds: 1 Raw, 2 String, 3 Bool, 4 Int8,
5 Int16, 6 Int32, 7 Int64, 8 Int128, 9 Uint8, 10 Uint16, 11 Uint32, 12 Uint64, 13 Uint128,
14 Float32, 15 Float64 (numbers little-endian).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable

RAW = 1
STRING = 2
BOOL = 3
INT8, INT16, INT32, INT64, INT128 = 4, 5, 6, 7, 8
UINT8, UINT16, UINT32, UINT64, UINT128 = 9, 10, 11, 12, 13
FLOAT32 = 14
FLOAT64 = 15
MAX_FIELD = 255
MAX_SIZE = 100_000

Entry = tuple[int, bytes, int, bytes]  # key kind, key, value kind, value

_HEAD = struct.Struct("<BI")
_INTS = {INT8: (1, True), INT16: (2, True), INT32: (4, True), INT64: (8, True),
         INT128: (16, True), UINT8: (1, False), UINT16: (2, False), UINT32: (4, False),
         UINT64: (8, False), UINT128: (16, False)}
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")


class HeaderError(ValueError):
    """A malformed TLV block."""


def encode(entries: Iterable[Entry]) -> bytes:
    """The TLV block of (key_kind, key, value_kind, value) entries; fields 1..255 bytes."""
    out = bytearray()
    for key_kind, key, value_kind, value in entries:
        for kind, data in ((key_kind, key), (value_kind, value)):
            if not 0 < len(data) <= MAX_FIELD or not 0 < kind < 256:
                raise HeaderError(f"TLV field of {len(data)} B, kind {kind}")
            out += _HEAD.pack(kind, len(data))
            out += data
    return bytes(out)


def decode(buf: bytes | bytearray | memoryview) -> list[Entry]:
    """Split a TLV block (any non-zero kind) into entries; raise :class:`HeaderError`."""
    mv = memoryview(buf)
    fields: list[tuple[int, bytes]] = []
    pos, end = 0, len(mv)
    while pos < end:
        if end - pos < _HEAD.size:
            raise HeaderError("truncated TLV entry")
        kind, length = _HEAD.unpack_from(mv, pos)
        pos += _HEAD.size
        if kind == 0 or not 0 < length <= MAX_FIELD or pos + length > end:
            raise HeaderError(f"bad TLV entry: kind {kind}, length {length}")
        fields.append((kind, bytes(mv[pos : pos + length])))
        pos += length
    if len(fields) & 1:
        raise HeaderError("odd number of TLV entries")
    return [(k[0], k[1], v[0], v[1]) for k, v in zip(fields[::2], fields[1::2], strict=True)]


def _float_text(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return repr(x)


def text(kind: int, data: bytes) -> bytes:
    """The value as text a Kafka consumer can read: Raw/String as stored, numbers in decimal,
    Bool ``true``/``false``, floats shortest round-trip (``NaN``, ``Infinity`` as Java).

    A number whose length does not fit its kind, or an unknown kind, stays as stored.
    """
    if kind in _INTS:
        size, signed = _INTS[kind]
        if len(data) == size:
            return str(int.from_bytes(data, "little", signed=signed)).encode()
    elif kind == BOOL and len(data) == 1:
        return b"true" if data[0] else b"false"
    elif kind == FLOAT64 and len(data) == 8:
        return _float_text(_F64.unpack(data)[0]).encode()
    elif kind == FLOAT32 and len(data) == 4:
        x = _F32.unpack(data)[0]
        if math.isfinite(x):  # the shortest decimal that is the same float32
            x = next(float(s) for p in range(1, 10)
                     if _F32.pack(float(s := f"{x:.{p}g}")) == data)
        return _float_text(x).encode()
    return bytes(data)
