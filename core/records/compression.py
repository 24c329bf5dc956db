"""Kafka record-batch codecs (attributes bits 0-2) with bounded decompression.

gzip uses stdlib zlib, streamed with an output cap (several gzip members are read, as Java's
GZIPInputStream does); snappy, lz4 and zstd use cramjam and decompress into a buffer that is
never larger than the cap, so a few compressed bytes cannot make the server allocate more.

Snappy comes in two shapes and both are accepted: Java's xerial framing (magic
``82 53 4E 41 50 50 59 00``, i32 version, i32 compat, then ``i32 len + raw block``...) and a
single raw snappy block (librdkafka). lz4 is the LZ4 *frame* format; zstd any frame(s).
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Callable
from types import ModuleType

NONE = 0
GZIP = 1
SNAPPY = 2
LZ4 = 3
ZSTD = 4
CODEC_NAMES = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}
DEFAULT_LIMIT = 64 << 20  # bytes of decompressed records per batch

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = struct.Struct(">8sii")
_I32 = struct.Struct(">i")
_XERIAL_BLOCK = 32 * 1024  # snappy-java's default block size

Buffer = bytes | bytearray | memoryview


@functools.cache
def _cramjam() -> ModuleType:
    """cramjam, imported at the first snappy/lz4/zstd batch (not at start: ~1.5 MB resident)."""
    import cramjam

    return cramjam


class CompressionError(ValueError):
    """Undecodable compressed records, or (``too_large``) more than the cap once decompressed."""

    def __init__(self, detail: str, too_large: bool = False) -> None:
        super().__init__(detail)
        self.too_large = too_large


def decompress(codec: int, data: Buffer, limit: int = DEFAULT_LIMIT) -> Buffer:
    """The decompressed bytes of ``data``; raise :class:`CompressionError` past ``limit``."""
    if codec == NONE:
        if len(data) > limit:
            raise CompressionError(f"{len(data)} B > limit {limit}", too_large=True)
        return data
    if codec == GZIP:
        return _gunzip(data, limit)
    if codec == SNAPPY:
        if bytes(data[:8]) == XERIAL_MAGIC:
            return _unxerial(data, limit)
        return _unsnappy_raw(data, limit)
    if codec == LZ4:
        return _into(_cramjam().lz4.decompress_into, data, limit)
    if codec == ZSTD:
        return _into(_cramjam().zstd.decompress_into, data, limit)
    raise CompressionError(f"unknown compression codec {codec}")


def compress(codec: int, data: Buffer) -> bytes:
    """Compress as the Java client does (snappy: xerial framing with 32 KiB blocks)."""
    if codec == NONE:
        return bytes(data)
    if codec == GZIP:
        return zlib.compress(data, wbits=31)
    if codec == SNAPPY:
        return snappy_xerial(data)
    if codec == LZ4:
        return bytes(_cramjam().lz4.compress(bytes(data)))
    if codec == ZSTD:
        return bytes(_cramjam().zstd.compress(bytes(data)))
    raise CompressionError(f"unknown compression codec {codec}")


def snappy_xerial(data: Buffer) -> bytes:
    """snappy-java's framed stream: header, then ``i32 length + raw block`` per 32 KiB."""
    out = bytearray(_XERIAL_HEADER.pack(XERIAL_MAGIC, 1, 1))
    mv = memoryview(data)
    for start in range(0, len(mv), _XERIAL_BLOCK):
        block = bytes(_cramjam().snappy.compress_raw(bytes(mv[start : start + _XERIAL_BLOCK])))
        out += _I32.pack(len(block))
        out += block
    return bytes(out)


def _too_large(limit: int) -> CompressionError:
    return CompressionError(f"decompressed records exceed {limit} B", too_large=True)


def _gunzip(data: Buffer, limit: int) -> bytes:
    out = bytearray()
    rest: Buffer = data
    try:
        while True:
            d = zlib.decompressobj(31)
            out += d.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise _too_large(limit)
            if not d.eof:
                raise CompressionError("truncated gzip stream")
            rest = d.unused_data
            if not rest:
                return bytes(out)
    except zlib.error as e:
        raise CompressionError(f"gzip: {e}") from None


def _raw_len(block: Buffer) -> int:
    try:
        return int(_cramjam().snappy.decompress_raw_len(bytes(block)))
    except _cramjam().DecompressionError as e:
        raise CompressionError(f"snappy: {e}") from None


def _unsnappy_raw(data: Buffer, limit: int) -> Buffer:
    size = _raw_len(data[:10])  # the declared length is a varint prefix of ≤ 5 bytes
    if size > limit:
        raise _too_large(limit)
    out = bytearray(size)
    try:
        _cramjam().snappy.decompress_raw_into(bytes(data), out)
    except _cramjam().DecompressionError as e:
        raise CompressionError(f"snappy: {e}") from None
    return out


def _unxerial(data: Buffer, limit: int) -> Buffer:
    mv = memoryview(data)
    pos = _XERIAL_HEADER.size
    blocks: list[tuple[int, int, int]] = []
    total = 0
    while pos < len(mv):
        if len(mv) - pos < 4:
            raise CompressionError("truncated xerial block length")
        (n,) = _I32.unpack_from(mv, pos)
        pos += 4
        if n < 0 or pos + n > len(mv):
            raise CompressionError("xerial block overruns the stream")
        size = _raw_len(mv[pos : pos + min(n, 10)])
        total += size
        if total > limit:
            raise _too_large(limit)
        blocks.append((pos, pos + n, size))
        pos += n
    out = bytearray(total)
    omv = memoryview(out)
    at = 0
    try:
        for start, end, size in blocks:
            _cramjam().snappy.decompress_raw_into(bytes(mv[start:end]), omv[at : at + size])
            at += size
    except _cramjam().DecompressionError as e:
        raise CompressionError(f"snappy: {e}") from None
    return out


def _into(fn: Callable[[bytes, bytearray], int], data: Buffer, limit: int) -> Buffer:
    """Decompress with ``fn(input, output)`` into a buffer grown ×4 up to ``limit``."""
    src = bytes(data)
    size = min(limit, max(1 << 16, 8 * len(src)))
    while True:
        out = bytearray(size)
        try:
            n = fn(src, out)
        except _cramjam().DecompressionError as e:
            if "whole buffer" not in str(e) and "smaller" not in str(e):
                raise CompressionError(str(e)) from None
            if size >= limit:
                raise _too_large(limit) from None
            size = min(limit, size * 4)
            continue
        return memoryview(out)[:n]
