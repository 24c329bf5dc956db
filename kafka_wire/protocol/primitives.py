"""Wire primitives shared by the compiled codecs: a bounded input cursor, a chunk-list output,
and readers/writers for Kafka's strings, bytes, records, array counts, varints and tag buffers.

Every reader raises `KafkaDecodeError` rather than read past the end; a declared length or
count is checked against the bytes that remain before anything is allocated.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from .errors import KafkaDecodeError

if TYPE_CHECKING:
    from uuid import UUID

Buffer = bytes | bytearray | memoryview

I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
_UV1 = [bytes((i,)) for i in range(128)]
_NULL16 = b"\xff\xff"
_NULL32 = b"\xff\xff\xff\xff"
_ZERO_UUID = bytes(16)


def __getattr__(name: str) -> Any:
    """`UUID` and `ZERO_UUID` for the compiled codecs (constructs.py), which are built at the
    first Kafka request: `uuid` imports `platform`, whose regexes a server start (which
    imports this module) need not compile (PEP 562; BENCHMARKS.md, start-up)."""
    if name in ("UUID", "ZERO_UUID"):
        from uuid import UUID

        globals().update(UUID=UUID, ZERO_UUID=UUID(int=0))
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Input:
    """A read cursor over ``buf`` (a memoryview); construct streams need only read/tell/seek.

    ``budget`` (a one-item list, shared with the cursors of tagged fields) caps the array
    elements one decode may create, so a small request cannot unfold into millions of Python
    objects; None: no cap.
    """

    __slots__ = ("buf", "pos", "end", "budget")

    def __init__(self, data: Buffer, pos: int = 0, budget: list[int] | None = None) -> None:
        self.buf = data if isinstance(data, memoryview) else memoryview(data)
        if self.buf.format != "B" or self.buf.ndim != 1:
            self.buf = self.buf.cast("B")
        self.pos = pos
        self.end = len(self.buf)
        self.budget = budget

    def take(self, n: int) -> int:
        """Advance by ``n`` bytes and return the old position."""
        p = self.pos
        if n < 0 or n > self.end - p:
            raise KafkaDecodeError(f"truncated: need {n} bytes at {p}, have {self.end - p}")
        self.pos = p + n
        return p

    def remaining(self) -> int:
        return self.end - self.pos

    def read(self, n: int = -1) -> bytes:
        p = self.take(self.end - self.pos if n < 0 else n)
        return bytes(self.buf[p : self.pos])

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self.pos, self.end)[whence]
        if not 0 <= base + offset <= self.end:
            raise KafkaDecodeError("seek out of range")
        self.pos = base + offset
        return self.pos


class Output(list):
    """Chunks written in order; ``b"".join(out)`` or hand the list to ``writelines``."""

    __slots__ = ()
    write = list.append

    def size(self) -> int:
        return sum(map(len, self))

    def coalesce(self, big: int = 16384) -> list[bytes | memoryview]:
        """Join runs of small chunks; chunks of at least ``big`` bytes, and parts that are not
        buffers (a streamed read's tail: core/storage/streamed.py), stay as they are."""
        out: list[bytes | memoryview] = []
        small: list[Any] = []
        for chunk in self:
            if len(chunk) >= big or not isinstance(chunk, bytes | bytearray | memoryview):
                if small:
                    out.append(b"".join(small))
                    small = []
                out.append(chunk)
            else:
                small.append(chunk)
        if small:
            out.append(b"".join(small))
        return out


def as_input(stream: Any) -> Input:
    """The `Input` for a construct stream: itself, or a file-like stream's remaining bytes."""
    if isinstance(stream, Input):
        return stream
    return Input(stream.read())


def reparse(parse: Any, stream: Any, context: Any) -> Any:
    """Run ``parse`` over a file-like stream's remaining bytes, then advance the stream."""
    start, io = stream.tell(), Input(stream.read())
    try:
        return parse(io, context)
    finally:
        stream.seek(start + io.pos)


# --- readers ---------------------------------------------------------------------------------


def r_uvarint(io: Input) -> int:
    """UNSIGNED_VARINT, at most 5 bytes (Kafka rejects longer ones)."""
    buf, p, end = io.buf, io.pos, io.end
    if p < end and buf[p] < 0x80:  # one-byte fast path
        io.pos = p + 1
        return buf[p]
    value = shift = 0
    while True:
        if p >= end:
            raise KafkaDecodeError("truncated varint")
        b = buf[p]
        p += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            io.pos = p
            return value
        shift += 7
        if shift > 28:
            raise KafkaDecodeError("varint longer than 5 bytes")


def _len16(io: Input) -> int:
    p = io.take(2)
    return I16.unpack_from(io.buf, p)[0]


def _len32(io: Input) -> int:
    p = io.take(4)
    return I32.unpack_from(io.buf, p)[0]


def _utf8(io: Input, n: int) -> str:
    p = io.take(n)
    try:
        return str(io.buf[p : p + n], "utf-8")
    except UnicodeDecodeError:
        raise KafkaDecodeError("invalid UTF-8 in string") from None


def _not_null(what: str) -> KafkaDecodeError:
    return KafkaDecodeError(f"non-nullable {what} was null")


def r_str(io: Input) -> str:
    n = _len16(io)
    if n < 0:
        raise _not_null("string")
    return _utf8(io, n)


def r_nstr(io: Input) -> str | None:
    n = _len16(io)
    return None if n < 0 else _utf8(io, n)


def r_cstr(io: Input) -> str:
    n = r_uvarint(io) - 1
    if n < 0:
        raise _not_null("string")
    return _utf8(io, n)


def r_cnstr(io: Input) -> str | None:
    n = r_uvarint(io) - 1
    return None if n < 0 else _utf8(io, n)


def _blob(io: Input, n: int) -> bytes:
    p = io.take(n)
    return bytes(io.buf[p : p + n])


def r_bytes(io: Input) -> bytes:
    n = _len32(io)
    if n < 0:
        raise _not_null("bytes")
    return _blob(io, n)


def r_nbytes(io: Input) -> bytes | None:
    n = _len32(io)
    return None if n < 0 else _blob(io, n)


def r_cbytes(io: Input) -> bytes:
    n = r_uvarint(io) - 1
    if n < 0:
        raise _not_null("bytes")
    return _blob(io, n)


def r_cnbytes(io: Input) -> bytes | None:
    n = r_uvarint(io) - 1
    return None if n < 0 else _blob(io, n)


def r_records(io: Input) -> memoryview | None:
    """RECORDS (nullable bytes) as a zero-copy view of the input."""
    n = _len32(io)
    if n < 0:
        return None
    p = io.take(n)
    return io.buf[p : p + n]


def r_crecords(io: Input) -> memoryview | None:
    n = r_uvarint(io) - 1
    if n < 0:
        return None
    p = io.take(n)
    return io.buf[p : p + n]


def r_records_nn(io: Input) -> memoryview:
    value = r_records(io)
    if value is None:
        raise _not_null("records")
    return value


def r_crecords_nn(io: Input) -> memoryview:
    value = r_crecords(io)
    if value is None:
        raise _not_null("records")
    return value


def r_uuid(io: Input) -> UUID:
    from uuid import UUID  # imported by the codecs already: a lookup (see __getattr__)

    p = io.take(16)
    return UUID(bytes=bytes(io.buf[p : p + 16]))


def _check_count(io: Input, n: int, min_size: int) -> int:
    if n * min_size > io.end - io.pos:
        raise KafkaDecodeError(f"array of {n} elements cannot fit in {io.end - io.pos} bytes")
    budget = io.budget
    if budget is not None:
        budget[0] -= n
        if budget[0] < 0:
            raise KafkaDecodeError("more array elements than one request may hold")
    return n


def r_count(io: Input, min_size: int) -> int:
    """INT32 array count, checked against the remaining bytes (``min_size`` ≥ 1 per element)."""
    n = _len32(io)
    if n < 0:
        raise _not_null("array")
    return _check_count(io, n, min_size)


def r_ncount(io: Input, min_size: int) -> int:
    """Nullable INT32 array count; -1 for null."""
    n = _len32(io)
    return -1 if n < 0 else _check_count(io, n, min_size)


def r_ccount(io: Input, min_size: int) -> int:
    n = r_uvarint(io) - 1
    if n < 0:
        raise _not_null("array")
    return _check_count(io, n, min_size)


def r_cncount(io: Input, min_size: int) -> int:
    n = r_uvarint(io) - 1
    return -1 if n < 0 else _check_count(io, n, min_size)


def r_tags(io: Input) -> list[tuple[int, Input]]:
    """A tag buffer as ``[(tag, Input over the field's bytes)]``; empty in the common case."""
    p = io.pos
    if p < io.end and io.buf[p] == 0:
        io.pos = p + 1
        return []
    n = _check_count(io, r_uvarint(io), 2)
    out = []
    for _ in range(n):
        tag = r_uvarint(io)
        size = r_uvarint(io)
        q = io.take(size)
        out.append((tag, Input(io.buf[q : q + size], budget=io.budget)))
    return out


def skip_tags(io: Input) -> None:
    """Consume a tag buffer whose fields are all unknown."""
    p = io.pos
    if p < io.end and io.buf[p] == 0:
        io.pos = p + 1
    else:
        r_tags(io)


# --- writers ---------------------------------------------------------------------------------


def uvarint(n: int) -> bytes:
    if 0 <= n < 128:
        return _UV1[n]
    if n < 0 or n > 0xFFFFFFFF:
        raise ValueError(f"unsigned varint out of range: {n}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _enc(s: str) -> bytes:
    if not isinstance(s, str):
        raise TypeError(f"expected str, got {type(s).__name__}")
    return s.encode()


def w_str(io: Any, s: str) -> None:
    b = _enc(s)
    io.write(I16.pack(len(b)) + b)


def w_nstr(io: Any, s: str | None) -> None:
    if s is None:
        io.write(_NULL16)
    else:
        w_str(io, s)


def w_cstr(io: Any, s: str) -> None:
    b = _enc(s)
    io.write(uvarint(len(b) + 1) + b)


def w_cnstr(io: Any, s: str | None) -> None:
    if s is None:
        io.write(b"\x00")
    else:
        w_cstr(io, s)


class RecordParts:
    """A RECORDS value held as several buffers (e.g. batches read from the log): written
    chunk by chunk, never joined; ``len`` is the byte length."""

    __slots__ = ("parts", "nbytes")

    def __init__(self, parts: list) -> None:
        self.parts = parts
        self.nbytes = sum(map(len, parts))

    def __len__(self) -> int:
        return self.nbytes

    def __bytes__(self) -> bytes:
        return b"".join(self.parts)


def _flat(b: Buffer) -> Buffer:
    """``b`` checked to be bytes-like; a memoryview is made a flat byte view (len = bytes)."""
    if isinstance(b, memoryview):
        return b if b.format == "B" and b.ndim == 1 else b.cast("B")
    if not isinstance(b, bytes | bytearray):
        raise TypeError(f"expected bytes, got {type(b).__name__}")
    return b


def w_bytes(io: Any, b: Buffer | RecordParts) -> None:
    if type(b) is RecordParts:
        io.write(I32.pack(b.nbytes))
        for part in b.parts:
            io.write(part)
        return
    b = _flat(cast(Buffer, b))  # not RecordParts (`type() is`: the quicker test, no subclass)
    io.write(I32.pack(len(b)))
    io.write(b)


def w_nbytes(io: Any, b: Buffer | RecordParts | None) -> None:
    if b is None:
        io.write(_NULL32)
    else:
        w_bytes(io, b)


def w_cbytes(io: Any, b: Buffer | RecordParts) -> None:
    if type(b) is RecordParts:
        io.write(uvarint(b.nbytes + 1))
        for part in b.parts:
            io.write(part)
        return
    b = _flat(cast(Buffer, b))  # not RecordParts, as in w_bytes
    io.write(uvarint(len(b) + 1))
    io.write(b)


def w_cnbytes(io: Any, b: Buffer | None) -> None:
    if b is None:
        io.write(b"\x00")
    else:
        w_cbytes(io, b)


def w_uuid(io: Any, u: UUID | bytes | None) -> None:
    from uuid import UUID

    raw = _ZERO_UUID if u is None else u.bytes if isinstance(u, UUID) else bytes(u)
    if len(raw) != 16:
        raise ValueError("UUID must be 16 bytes")
    io.write(raw)


def w_count(io: Any, seq: Any) -> int:
    n = len(seq)
    io.write(I32.pack(n))
    return n


def w_ncount(io: Any, seq: Any) -> int:
    if seq is None:
        io.write(_NULL32)
        return -1
    return w_count(io, seq)


def w_ccount(io: Any, seq: Any) -> int:
    n = len(seq)
    io.write(uvarint(n + 1))
    return n


def w_cncount(io: Any, seq: Any) -> int:
    if seq is None:
        io.write(b"\x00")
        return -1
    return w_ccount(io, seq)


def w_tags(io: Any, tags: Iterable[tuple[int, Output]]) -> None:
    """Write a tag buffer from ``(tag, encoded field)`` pairs in ascending tag order."""
    tags = list(tags)
    io.write(uvarint(len(tags)))
    for tag, body in tags:
        io.write(uvarint(tag) + uvarint(body.size()))
        for chunk in body:
            io.write(chunk)


def scalar_array(fmt: str) -> tuple[Any, Any]:
    """(reader, writer) for a whole array of one fixed-width type: one struct call each way."""
    size = struct.calcsize(">" + fmt)

    def read(io: Input, n: int) -> list[Any]:
        p = io.take(n * size)
        return list(struct.unpack_from(f">{n}{fmt}", io.buf, p))

    def write(io: Any, items: Any) -> None:
        io.write(struct.pack(f">{len(items)}{fmt}", *items))

    return read, write
