"""Bounds-checked little-endian reader over a request payload."""

from __future__ import annotations

import struct

from pyggy.core.errors import ErrorCode

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_U128 = struct.Struct("<QQ")
_F32 = struct.Struct("<f")


class WireError(Exception):
    """A malformed payload; ``code`` is the Iggy error code to answer with."""

    def __init__(self, code: ErrorCode | int = ErrorCode.INVALID_FORMAT, detail: str = "") -> None:
        self.code = int(code)
        super().__init__(detail or f"wire error {self.code}")


def truncated(need: int, have: int) -> WireError:
    return WireError(ErrorCode.INVALID_FORMAT, f"truncated: need {need} bytes, have {have}")


def decode_utf8(raw: memoryview | bytes) -> str:
    """Strict UTF-8 decode; bad bytes raise ``WireError(INVALID_UTF8)``."""
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError:
        raise WireError(ErrorCode.INVALID_UTF8, "invalid UTF-8") from None


class Reader:
    """Sequential reader; every method raises ``WireError`` instead of reading past the end."""

    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf: bytes | bytearray | memoryview, pos: int = 0) -> None:
        self.buf = buf if isinstance(buf, memoryview) else memoryview(buf)
        self.pos = pos
        self.end = len(self.buf)

    def _take(self, n: int) -> int:
        pos = self.pos
        if n > self.end - pos:
            raise truncated(n, self.end - pos)
        self.pos = pos + n
        return pos

    def u8(self) -> int:
        return _U8.unpack_from(self.buf, self._take(1))[0]

    def u16(self) -> int:
        return _U16.unpack_from(self.buf, self._take(2))[0]

    def u32(self) -> int:
        return _U32.unpack_from(self.buf, self._take(4))[0]

    def u64(self) -> int:
        return _U64.unpack_from(self.buf, self._take(8))[0]

    def u128(self) -> int:
        lo, hi = _U128.unpack_from(self.buf, self._take(16))
        return lo | (hi << 64)

    def f32(self) -> float:
        return _F32.unpack_from(self.buf, self._take(4))[0]

    def bytes(self, n: int) -> memoryview:
        """The next ``n`` bytes as a view (no copy)."""
        if n < 0:
            raise WireError(ErrorCode.INVALID_FORMAT, "negative length")
        pos = self._take(n)
        return self.buf[pos : pos + n]

    def skip(self, n: int) -> None:
        self.bytes(n)

    def name(self) -> str:
        """``u8 len (1..255)`` + UTF-8."""
        n = self.u8()
        if n == 0:
            raise WireError(ErrorCode.INVALID_FORMAT, "empty name")
        return decode_utf8(self.bytes(n))

    def short_bytes(self) -> memoryview:
        """``u8 len`` + raw bytes (len may be 0)."""
        return self.bytes(self.u8())

    def short_string(self) -> str:
        """``u8 len`` + UTF-8 (len may be 0), e.g. passwords."""
        return decode_utf8(self.bytes(self.u8()))

    def long_bytes(self) -> memoryview:
        """``u32 len`` + raw bytes."""
        return self.bytes(self.u32())

    def long_string(self) -> str:
        """``u32 len`` + UTF-8."""
        return decode_utf8(self.bytes(self.u32()))

    def remaining(self) -> int:
        return self.end - self.pos

    def rest(self) -> memoryview:
        """Everything not read yet; the reader is then done."""
        pos, self.pos = self.pos, self.end
        return self.buf[pos:]

    def done(self) -> None:
        """Raise if trailing bytes are left."""
        if self.pos != self.end:
            raise WireError(ErrorCode.INVALID_FORMAT, f"{self.end - self.pos} trailing bytes")
