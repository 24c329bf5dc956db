"""Zero-copy view of an Iggy 0.11 message batch, plus the classic (≤0.8) 64-byte frames.

Batch = 256-byte header + frames; frame = 48-byte header + payload + user headers
(https://iggy.apache.org/docs/0.9/binary-protocol/messages/). All integers little-endian.

Header: partition_id u64 @0, base_offset u64 @8, base_timestamp u64 @16,
origin_timestamp u64 @24, batch_length u64 @32, batch_checksum u64 @40,
message_count u32 @48, reserved[204] @52 (zero).

Frame: checksum u64 @0 = xxh3_64(frame[8:end]), id u128 @8, offset_delta u32 @24,
timestamp_delta u32 @28, user_headers_length u32 @32, payload_length u32 @36,
reserved u64 @40 (zero).

batch_checksum = xxh3_64(header[0:40] ‖ header[48:52] ‖ each frame's checksum field).
The frame checksum covers neither partition_id, base_offset nor base_timestamp, so
stamping only recomputes the batch checksum.

Every message of a batch has timestamp = base_timestamp; offset = base_offset +
offset_delta; origin_timestamp = header origin_timestamp + timestamp_delta.

Offset deltas: the 0.11 SDK writes 0, 1, 2, ...; :func:`validate_batch` requires that
(``allow_sliced=True`` accepts any contiguous run, as in a sliced poll reply), so a stored
batch holds offsets ``base_offset .. base_offset + message_count - 1``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple, NoReturn

from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.records.accel import WALKS
from xxhash import xxh3_64, xxh3_64_intdigest

BATCH_HEADER_SIZE = 256
FRAME_HEADER_SIZE = 48
CLASSIC_HEADER_SIZE = 64
CLASSIC_INDEX_SIZE = 16
MAX_PAYLOAD_SIZE = 64_000_000
MAX_USER_HEADERS_SIZE = 100_000
MAX_TIMESTAMP_DELTA = 0xFFFF_FFFF

Buffer = bytes | bytearray | memoryview

# partition_id, base_offset, base_timestamp, origin_timestamp, batch_length,
# batch_checksum, message_count
_HEADER = struct.Struct("<QQQQQQI")
_STAMP = struct.Struct("<QQQ")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
# checksum, offset_delta, timestamp_delta, user_headers_length, payload_length, reserved
_FRAME_CHECK = struct.Struct("<Q16xIIIIQ")
# checksum, id_lo, id_hi, offset_delta, timestamp_delta, uh_len, payload_len, reserved
_FRAME = struct.Struct("<QQQIIIIQ")
_FRAME_LENS = struct.Struct("<II")  # user_headers_length, payload_length @32
_DELTA = struct.Struct("<I")  # offset_delta @24
# checksum, id_lo, id_hi, offset, timestamp, origin_timestamp, uh_len, payload_len, reserved
_CLASSIC = struct.Struct("<QQQQQQIIQ")
_CLASSIC_INDEX = struct.Struct("<IIQ")
_RESERVED_ZERO = bytes(BATCH_HEADER_SIZE - 52)
_U64_MASK = 0xFFFF_FFFF_FFFF_FFFF


class BatchError(IggyError):
    """A malformed or corrupt batch; ``code`` is the Iggy error code."""


class BatchInfo(NamedTuple):
    message_count: int
    batch_length: int
    origin_timestamp: int
    max_origin_timestamp: int
    first_offset_delta: int = 0
    # every frame's checksum field in order (verified or not, as asked): stamping reseals
    # the batch from these without walking the frames again
    frame_sums: bytes = b""


def _view(buf: Buffer) -> memoryview:
    mv = memoryview(buf)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


def _fail(code: ErrorCode, detail: str) -> BatchError:
    return BatchError(code, detail)


def _header(mv: memoryview) -> tuple[int, int, int, int, int, int, int]:
    """Unpack the header, checking size, reserved bytes and batch_length == len(buf)."""
    if len(mv) < BATCH_HEADER_SIZE:
        raise _fail(ErrorCode.INVALID_FORMAT, f"batch shorter than header: {len(mv)} B")
    fields = _HEADER.unpack_from(mv, 0)
    if mv[52:BATCH_HEADER_SIZE] != _RESERVED_ZERO:
        raise _fail(ErrorCode.INVALID_RESERVED_FIELD, "batch header reserved bytes not zero")
    if fields[4] != len(mv):
        raise _fail(ErrorCode.INVALID_FORMAT, f"batch_length {fields[4]} != buffer {len(mv)}")
    return fields


def validate_batch(
    buf: Buffer,
    expected_count: int | None = None,
    verify_checksums: bool = True,
    *,
    allow_sliced: bool = False,
) -> BatchInfo:
    """Check layout, limits and (optionally) every checksum; raise :class:`BatchError`.

    Offset deltas must be 0, 1, 2, ... (``allow_sliced``: any contiguous run). Walked in C
    when the extension is built (core/records/accel.py); a batch it rejects is walked again
    by :func:`validate_batch_py`, which names the error.
    """
    if WALKS is not None:
        done = WALKS.iggy_validate(buf, expected_count, verify_checksums, allow_sliced)
        if done is not None:
            count, length, origin, max_ts_delta, first_delta, frame_sums = done
            return BatchInfo(count, length, origin, origin + max_ts_delta, first_delta,
                             frame_sums)
    return validate_batch_py(buf, expected_count, verify_checksums, allow_sliced=allow_sliced)


def validate_batch_py(
    buf: Buffer,
    expected_count: int | None = None,
    verify_checksums: bool = True,
    *,
    allow_sliced: bool = False,
) -> BatchInfo:
    """The pure-Python twin of :func:`validate_batch` (the reference for the C walk)."""
    mv = _view(buf)
    _, _, _, origin, length, stored, count = _header(mv)
    if count == 0 or (expected_count is not None and count != expected_count):
        raise _fail(ErrorCode.INVALID_MESSAGES_COUNT, f"bad message_count {count}")
    # The hot loop: one unpack, one combined limits test and one checksum per frame; a frame
    # that fails the combined test goes to _frame_error for the exact error code. It ends by
    # `count` or by the buffer (every frame advances at least FRAME_HEADER_SIZE).
    unpack = _FRAME_CHECK.unpack_from
    digest = xxh3_64_intdigest
    sums: list[int] = []
    keep = sums.append
    pos = BATCH_HEADER_SIZE
    first_delta = 0
    if allow_sliced and length >= pos + FRAME_HEADER_SIZE:
        first_delta = _U32.unpack_from(mv, pos + 24)[0]
    max_ts_delta = 0
    for index in range(first_delta, first_delta + count):
        if pos + FRAME_HEADER_SIZE > length:
            if pos == length:
                raise _fail(ErrorCode.INVALID_MESSAGES_COUNT,
                            f"{index - first_delta} frames, count {count}")
            raise _fail(ErrorCode.INVALID_FORMAT, "truncated frame header")
        checksum, delta, ts_delta, uh_len, pl_len, reserved = unpack(mv, pos)
        end = pos + FRAME_HEADER_SIZE + pl_len + uh_len
        if (reserved or delta != index or end > length or not 0 < pl_len <= MAX_PAYLOAD_SIZE
                or uh_len > MAX_USER_HEADERS_SIZE):
            _frame_error(index - first_delta, delta, uh_len, pl_len, reserved, end > length)
        if ts_delta > max_ts_delta:
            max_ts_delta = ts_delta
        if verify_checksums and digest(mv[pos + 8 : end]) != checksum:
            raise _fail(ErrorCode.INVALID_MESSAGE_CHECKSUM,
                        f"frame {index - first_delta} checksum")
        keep(checksum)
        pos = end
    if pos != length:
        raise _fail(ErrorCode.INVALID_MESSAGES_COUNT, f"more frames than count {count}")
    frame_sums = struct.pack(f"<{count}Q", *sums)
    if verify_checksums and _batch_checksum(mv, frame_sums) != stored:
        raise _fail(ErrorCode.INVALID_BATCH_CHECKSUM, "batch checksum mismatch")
    return BatchInfo(count, length, origin, origin + max_ts_delta, first_delta, frame_sums)


def _frame_error(frame: int, delta: int, uh_len: int, pl_len: int, reserved: int,
                 overruns: bool) -> NoReturn:
    """Raise the error of a frame that failed validate_batch's combined test (first rule wins)."""
    if reserved:
        raise _fail(ErrorCode.INVALID_RESERVED_FIELD, "frame reserved bytes not zero")
    _check_message(pl_len, uh_len)
    if overruns:
        raise _fail(ErrorCode.INVALID_MESSAGE_PAYLOAD_LENGTH, "frame overruns batch")
    raise _fail(ErrorCode.INVALID_FORMAT, f"offset_delta {delta} at frame {frame}")


def _batch_checksum(header: Buffer, frame_sums: Buffer) -> int:
    """xxh3_64(header[0:40] ‖ header[48:52] ‖ the frames' checksum fields), one pass."""
    hasher = xxh3_64()
    hasher.update(header[0:40])
    hasher.update(header[48:52])
    hasher.update(frame_sums)
    return hasher.intdigest()


def frame_sums(mv: memoryview, start: int, end: int) -> bytes:
    """Every frame's checksum field in mv[start:end] (which the frames must tile), in order:
    in C when built, else (and to name the error) :func:`frame_sums_py`."""
    if WALKS is not None:
        sums = WALKS.iggy_frame_sums(mv, start, end)
        if sums is not None:
            return sums
    return frame_sums_py(mv, start, end)


def frame_sums_py(mv: memoryview, pos: int, end: int) -> bytes:
    """The pure-Python twin of :func:`frame_sums`."""
    sums = bytearray()
    lens = _FRAME_LENS.unpack_from
    while pos < end:
        if end - pos < FRAME_HEADER_SIZE:
            raise _fail(ErrorCode.INVALID_FORMAT, "truncated frame header")
        uh_len, pl_len = lens(mv, pos + 32)
        nxt = pos + FRAME_HEADER_SIZE + pl_len + uh_len
        if nxt > end:
            raise _fail(ErrorCode.INVALID_MESSAGE_PAYLOAD_LENGTH, "frame overruns batch")
        sums += mv[pos : pos + 8]
        pos = nxt
    return bytes(sums)


def _seal(mv: memoryview, header: memoryview | bytearray, start: int, end: int) -> None:
    """Write the batch checksum into ``header`` over its fields and frames mv[start:end]."""
    sums = frame_sums(mv, start, end)
    if len(sums) != 8 * _U32.unpack_from(header, 48)[0]:
        raise _fail(ErrorCode.INVALID_MESSAGES_COUNT, "message_count does not match frames")
    _U64.pack_into(header, 40, _batch_checksum(header, sums))


def stamp_batch(buf: bytearray | memoryview, partition_id: int, base_offset: int,
                base_timestamp: int, frame_sums: bytes = b"") -> None:
    """Write partition_id, base_offset, base_timestamp in place and reseal the batch checksum.

    ``buf`` must be writable and already validated (frame checksums are unaffected).
    ``frame_sums`` (from :func:`validate_batch`) reseals without walking the frames (in C when
    built; without them, or for a header it rejects, :func:`stamp_batch_py` does it).
    """
    if (WALKS is not None and frame_sums and 0 <= partition_id <= _U64_MASK
            and 0 <= base_offset <= _U64_MASK and 0 <= base_timestamp <= _U64_MASK
            and WALKS.iggy_stamp(buf, partition_id, base_offset, base_timestamp, frame_sums)):
        return
    stamp_batch_py(buf, partition_id, base_offset, base_timestamp, frame_sums)


def stamp_batch_py(buf: bytearray | memoryview, partition_id: int, base_offset: int,
                   base_timestamp: int, frame_sums: bytes = b"") -> None:
    """The pure-Python twin of :func:`stamp_batch`."""
    mv = _view(buf)
    _header(mv)
    _STAMP.pack_into(mv, 0, partition_id, base_offset, base_timestamp)
    if frame_sums and len(frame_sums) == 8 * _U32.unpack_from(mv, 48)[0]:
        _U64.pack_into(mv, 40, _batch_checksum(mv, frame_sums))
    else:
        _seal(mv, mv, BATCH_HEADER_SIZE, len(mv))


def reseal_origin(buf: bytearray | memoryview, origin_timestamp: int) -> None:
    """Rewrite a built batch's origin_timestamp in place and reseal its checksum (a client
    resending one prebuilt batch with a fresh send time: frame checksums are unaffected)."""
    mv = _view(buf)
    _U64.pack_into(mv, 24, origin_timestamp)
    _seal(mv, mv, BATCH_HEADER_SIZE, len(mv))


def batch_fields(buf: Buffer) -> tuple[int, int, int, int, int, int]:
    """(partition_id, base_offset, base_timestamp, origin_timestamp, batch_length, count)."""
    mv = _view(buf)
    if len(mv) < BATCH_HEADER_SIZE:
        raise _fail(ErrorCode.INVALID_FORMAT, "batch shorter than header")
    pid, base, ts, origin, length, _, count = _HEADER.unpack_from(mv, 0)
    return pid, base, ts, origin, length, count


def batch_offsets(buf: Buffer) -> tuple[int, int]:
    """(first_offset, last_offset) of a validated batch (deltas are contiguous)."""
    mv = _view(buf)
    if len(mv) < BATCH_HEADER_SIZE + FRAME_HEADER_SIZE:
        raise _fail(ErrorCode.INVALID_FORMAT, "batch has no frame")
    base = _U64.unpack_from(mv, 8)[0]
    count = _U32.unpack_from(mv, 48)[0]
    first = base + _DELTA.unpack_from(mv, BATCH_HEADER_SIZE + 24)[0]
    return first, first + count - 1


def timestamp_start_offset(buf: Buffer, timestamp: int) -> int | None:
    """Offset of the first message with timestamp ≥ ``timestamp``, or None.

    Every message of a batch carries timestamp = base_timestamp, so the answer is
    either the batch's first offset or None: batch granularity is exact.
    """
    mv = _view(buf)
    if len(mv) < BATCH_HEADER_SIZE:
        raise _fail(ErrorCode.INVALID_FORMAT, "batch shorter than header")
    if _U64.unpack_from(mv, 16)[0] < timestamp:
        return None
    return batch_offsets(mv)[0]


def select_frames(buf: Buffer, first_offset: int, max_count: int) -> tuple[int, int, int]:
    """Byte range [start, end) and count of frames with offset ≥ first_offset (≤ max_count).

    Count 0 (and start == end) when nothing matches. Walked in C when built;
    :func:`select_frames_py` names the error of a batch it rejects.
    """
    if WALKS is not None and 0 <= first_offset <= _U64_MASK and max_count > 0:
        done = WALKS.iggy_select(buf, first_offset, min(max_count, 1 << 62))
        if done is not None:
            return done
    return select_frames_py(buf, first_offset, max_count)


def select_frames_py(buf: Buffer, first_offset: int, max_count: int) -> tuple[int, int, int]:
    """The pure-Python twin of :func:`select_frames`."""
    mv = _view(buf)
    _, base, _, _, length, _, _ = _header(mv)
    lens = _FRAME_LENS.unpack_from
    delta_of = _DELTA.unpack_from
    pos = BATCH_HEADER_SIZE
    start = -1
    count = 0
    while pos < length and count < max_count:
        if length - pos < FRAME_HEADER_SIZE:
            raise _fail(ErrorCode.INVALID_FORMAT, "truncated frame header")
        uh_len, pl_len = lens(mv, pos + 32)
        nxt = pos + FRAME_HEADER_SIZE + pl_len + uh_len
        if nxt > length:
            raise _fail(ErrorCode.INVALID_MESSAGE_PAYLOAD_LENGTH, "frame overruns batch")
        if start >= 0 or base + delta_of(mv, pos + 24)[0] >= first_offset:
            if start < 0:
                start = pos
            count += 1
        pos = nxt
    if start < 0:
        return length, length, 0
    return start, pos, count


def slice_header(buf: Buffer, start: int, end: int, count: int) -> bytes:
    """The 256-byte header of the sub-batch made of frames buf[start:end] (``count`` frames).

    base_offset, origin_timestamp and the frames' deltas are kept, as the Iggy server
    does, so frame checksums stay valid and offset = base_offset + offset_delta holds.
    """
    mv = _view(buf)
    header = bytearray(mv[:BATCH_HEADER_SIZE])
    _U64.pack_into(header, 32, BATCH_HEADER_SIZE + end - start)
    _U32.pack_into(header, 48, count)
    _seal(mv, header, start, end)
    return bytes(header)


def slice_batch(buf: Buffer, first_offset: int, max_count: int) -> Buffer:
    """A valid batch of the messages with offset ≥ first_offset, at most max_count of them.

    Returns ``buf`` itself when nothing is cut, ``b""`` when nothing matches. Deltas and
    base_offset are kept (not rebased): the 0.9.0 SDK decodes offset = base + delta.
    """
    if max_count <= 0:
        return b""
    mv = _view(buf)
    _, base, _, _, _, _, n = _header(mv)
    if (n <= max_count and len(mv) > BATCH_HEADER_SIZE + FRAME_HEADER_SIZE
            and base + _DELTA.unpack_from(mv, BATCH_HEADER_SIZE + 24)[0] >= first_offset):
        # the whole batch is wanted (stored deltas are contiguous): no walk over the frames
        return buf
    start, end, count = select_frames(mv, first_offset, max_count)
    if count == 0:
        return b""
    if start == BATCH_HEADER_SIZE and end == len(mv):
        return buf
    return slice_header(mv, start, end, count) + mv[start:end]


def iter_messages(
    buf: Buffer,
) -> Iterator[tuple[int, int, int, int, memoryview, memoryview]]:
    """Yield (offset, timestamp, origin_timestamp, id, payload, user_headers); slow path."""
    mv = _view(buf)
    _, base, ts, origin, length, _, count = _header(mv)
    pos = BATCH_HEADER_SIZE
    seen = 0
    while pos < length:
        if length - pos < FRAME_HEADER_SIZE or seen == count:
            raise _fail(ErrorCode.INVALID_FORMAT, "frames do not tile the batch")
        _, lo, hi, delta, ts_delta, uh_len, pl_len, _ = _FRAME.unpack_from(mv, pos)
        body = pos + FRAME_HEADER_SIZE
        end = body + pl_len + uh_len
        if end > length:
            raise _fail(ErrorCode.INVALID_MESSAGE_PAYLOAD_LENGTH, "frame overruns batch")
        yield (base + delta, ts, origin + ts_delta, lo | hi << 64,
               mv[body : body + pl_len], mv[body + pl_len : end])
        pos = end
        seen += 1
    if seen != count:
        raise _fail(ErrorCode.INVALID_MESSAGES_COUNT, f"{seen} frames, count {count}")


def _check_message(payload_len: int, uh_len: int) -> None:
    if payload_len == 0:
        raise _fail(ErrorCode.EMPTY_MESSAGE_PAYLOAD, "empty payload")
    if payload_len > MAX_PAYLOAD_SIZE:
        raise _fail(ErrorCode.TOO_BIG_MESSAGE_PAYLOAD, f"payload {payload_len} B")
    if uh_len > MAX_USER_HEADERS_SIZE:
        raise _fail(ErrorCode.TOO_BIG_USER_HEADERS, f"user headers {uh_len} B")


def _check_ts_delta(delta: int) -> None:
    if delta > MAX_TIMESTAMP_DELTA:
        raise _fail(ErrorCode.INVALID_MESSAGE_TIMESTAMP_DELTA, f"timestamp delta {delta} µs")


def build_batch(
    messages: Sequence[tuple[int, Buffer, Buffer, int]],
    *,
    partition_id: int = 0,
    base_offset: int = 0,
    base_timestamp: int = 0,
) -> bytearray:
    """Encode (id, payload, user_headers, origin_timestamp) messages as the 0.11 SDK does.

    origin_timestamp = min of the messages', deltas 0, 1, 2, ...; ids are written as given
    (the SDK replaces id 0 by a random UUID before this point).
    """
    if not messages:
        raise _fail(ErrorCode.INVALID_MESSAGES_COUNT, "empty batch")
    origin = min(m[3] for m in messages)
    total = BATCH_HEADER_SIZE
    for _, payload, headers, ts in messages:
        _check_message(len(payload), len(headers))
        _check_ts_delta(ts - origin)
        total += FRAME_HEADER_SIZE + len(payload) + len(headers)
    out = bytearray(total)
    mv = memoryview(out)
    pos = BATCH_HEADER_SIZE
    for index, (msg_id, payload, headers, ts) in enumerate(messages):
        body = pos + FRAME_HEADER_SIZE
        end = body + len(payload) + len(headers)
        _FRAME.pack_into(out, pos, 0, msg_id & _U64_MASK, msg_id >> 64, index, ts - origin,
                         len(headers), len(payload), 0)
        mv[body : body + len(payload)] = payload
        mv[body + len(payload) : end] = headers
        _U64.pack_into(out, pos, xxh3_64_intdigest(mv[pos + 8 : end]))
        pos = end
    _HEADER.pack_into(out, 0, partition_id, base_offset, base_timestamp, origin, total, 0,
                      len(messages))
    _seal(mv, mv, BATCH_HEADER_SIZE, total)
    return out


# --- classic protocol (server ≤ 0.8, 64-byte message headers) ---------------------------


def classic_frames_to_batch(
    index_and_frames: Buffer,
    messages_count: int,
    random_ids: Callable[[int], bytes] | None = None,
) -> bytearray:
    """Convert a classic SendMessages body (after messages_count) into a 0.11 batch.

    Input: messages_count × 16-byte index entries ``[0 u32][cumulative_size u32][0 u64]``,
    then the 64-byte-header frames. The client's checksum/offset/timestamp (all 0) and the
    reserved field are ignored, as the 0.8 server does; with ``random_ids`` (e.g.
    :func:`random_bytes`) each id 0 becomes a UUIDv4 made of 16 random bytes, as the 0.8
    server does at append: ``random_ids`` is called once, for 16 bytes per id 0, and not at
    all when no id is 0. The result is unstamped. Converted in C when built;
    :func:`classic_frames_to_batch_py` names the error of a body it rejects.
    """
    if WALKS is not None and 0 < messages_count <= len(index_and_frames) // CLASSIC_INDEX_SIZE:
        out = WALKS.classic_convert(index_and_frames, messages_count, random_ids)
        if isinstance(out, bytearray):
            return out
    return classic_frames_to_batch_py(index_and_frames, messages_count, random_ids)


IN_PLACE_FROM = BATCH_HEADER_SIZE // CLASSIC_INDEX_SIZE  # 16 index entries make room for it


def classic_frames_to_batch_in_place(
    body: memoryview,
    messages_count: int,
    random_ids: Callable[[int], bytes] | None = None,
) -> bytearray | memoryview:
    """:func:`classic_frames_to_batch`, writing the batch over ``body`` itself when it can:
    the batch is ``32 × messages_count - 256`` bytes shorter than the body, so with at least
    IN_PLACE_FROM messages every frame lands on bytes already read (`_walks.c`
    `classic_write`). Returns ``body[:batch length]`` then (the body is overwritten), else a
    new bytearray (fewer messages, a read-only body, no C build). A body the conversion
    rejects is left as it was, and the error named as by :func:`classic_frames_to_batch`.
    """
    if WALKS is not None and not body.readonly and \
            IN_PLACE_FROM <= messages_count <= len(body) // CLASSIC_INDEX_SIZE:
        length = WALKS.classic_convert(body, messages_count, random_ids, True)
        if isinstance(length, int):
            return body[:length]
    return classic_frames_to_batch(body, messages_count, random_ids)


def classic_frames_to_batch_in_place_py(
    body: memoryview,
    messages_count: int,
    random_ids: Callable[[int], bytes] | None = None,
) -> memoryview:
    """The pure-Python twin of the in-place conversion (at least IN_PLACE_FROM messages)."""
    out = classic_frames_to_batch_py(body, messages_count, random_ids)
    body[:len(out)] = out
    return body[:len(out)]


_RAND_BYTES: Callable[[int], bytes] | None = None


def random_bytes(n: int) -> bytes:
    """``n`` bytes from OpenSSL's CSPRNG (``ssl.RAND_bytes``), for UUIDv4 ids.

    RFC 9562 §6.9 asks that the random bits of a UUID come from a cryptographically secure
    PRNG (unguessable, unlikely to collide). OpenSSL 3's RAND_bytes is a NIST SP 800-90A
    DRBG (AES-256-CTR) seeded and reseeded from the kernel's getrandom, and reseeded in a
    forked child: the same quality as ``os.urandom``, an order of magnitude cheaper per
    batch (no system call; AES-NI). ``ssl`` is imported at the first call (not at start);
    without it (Python built without OpenSSL), ``os.urandom``.
    """
    global _RAND_BYTES
    if _RAND_BYTES is None:
        try:
            from ssl import RAND_bytes
        except ImportError:
            from os import urandom as RAND_bytes  # noqa: N812
        _RAND_BYTES = RAND_bytes
    return _RAND_BYTES(n)


def classic_frames_to_batch_py(
    index_and_frames: Buffer,
    messages_count: int,
    random_ids: Callable[[int], bytes] | None = None,
) -> bytearray:
    """The pure-Python twin of :func:`classic_frames_to_batch`."""
    mv = _view(index_and_frames)
    if messages_count <= 0:
        raise _fail(ErrorCode.INVALID_MESSAGES_COUNT, "no messages")
    frames_at = messages_count * CLASSIC_INDEX_SIZE
    if frames_at > len(mv):
        raise _fail(ErrorCode.INVALID_FORMAT, "index array overruns the body")
    total = len(mv)
    entry = _CLASSIC_INDEX.unpack_from
    unpack = _CLASSIC.unpack_from
    # Pass 1: check framing, cumulative sizes and limits; find origin_timestamp, count ids 0.
    pos = frames_at
    origin = -1
    zero_ids = 0
    for index in range(messages_count):
        if total - pos < CLASSIC_HEADER_SIZE:
            raise _fail(ErrorCode.INVALID_FORMAT, "truncated classic message header")
        fields = unpack(mv, pos)
        uh_len, pl_len, msg_origin = fields[6], fields[7], fields[5]
        _check_message(pl_len, uh_len)
        pos += CLASSIC_HEADER_SIZE + pl_len + uh_len
        if pos > total:
            raise _fail(ErrorCode.INVALID_MESSAGE_PAYLOAD_LENGTH, "message overruns body")
        zero_a, cumulative, zero_b = entry(mv, index * CLASSIC_INDEX_SIZE)
        if zero_a or zero_b or cumulative != pos - frames_at:
            raise _fail(ErrorCode.INVALID_FORMAT, f"bad classic index entry {index}")
        if origin < 0 or msg_origin < origin:
            origin = msg_origin
        zero_ids += not (fields[1] or fields[2])
    if pos != total:
        raise _fail(ErrorCode.INVALID_FORMAT, "trailing bytes after classic messages")
    ids = None
    if random_ids is not None and zero_ids:
        import uuid  # here: its import (platform, regexes) is not paid at start

        ids = random_ids(16 * zero_ids)
    # Pass 2: write the batch.
    out = bytearray(BATCH_HEADER_SIZE + total - frames_at - 16 * messages_count)
    omv = memoryview(out)
    pos = frames_at
    opos = BATCH_HEADER_SIZE
    at = 0  # the next unused random bytes in ids
    for index in range(messages_count):
        _, lo, hi, _, _, msg_origin, uh_len, pl_len, _ = unpack(mv, pos)
        _check_ts_delta(msg_origin - origin)
        if ids is not None and not (lo or hi):
            new_id = uuid.UUID(bytes=ids[at : at + 16], version=4).int
            at += 16
            lo, hi = new_id & _U64_MASK, new_id >> 64
        size = pl_len + uh_len
        body = opos + FRAME_HEADER_SIZE
        _FRAME.pack_into(out, opos, 0, lo, hi, index, msg_origin - origin, uh_len, pl_len, 0)
        omv[body : body + size] = mv[pos + CLASSIC_HEADER_SIZE : pos + CLASSIC_HEADER_SIZE + size]
        _U64.pack_into(out, opos, xxh3_64_intdigest(omv[opos + 8 : body + size]))
        pos += CLASSIC_HEADER_SIZE + size
        opos = body + size
    _HEADER.pack_into(out, 0, 0, 0, 0, origin, len(out), 0, messages_count)
    _seal(omv, omv, BATCH_HEADER_SIZE, len(out))
    return out


def classic_frames_and_count(buf: Buffer, first_offset: int, max_count: int) -> tuple[bytes, int]:
    """Like :func:`batch_to_classic_frames`, also returning the number of messages (in C when
    built; :func:`classic_frames_and_count_py` names the error of a batch it rejects)."""
    if max_count <= 0:
        return b"", 0
    if WALKS is not None and 0 <= first_offset <= _U64_MASK:
        done = WALKS.classic_poll(buf, first_offset, min(max_count, 1 << 62))
        if done is not None:
            return done
    return classic_frames_and_count_py(buf, first_offset, max_count)


def classic_frames_and_count_py(buf: Buffer, first_offset: int,
                                max_count: int) -> tuple[bytes, int]:
    """The pure-Python twin of :func:`classic_frames_and_count`."""
    if max_count <= 0:
        return b"", 0
    mv = _view(buf)
    start, end, count = select_frames_py(mv, first_offset, max_count)
    if count == 0:
        return b"", 0
    _, base, ts, origin, _, _, _ = _HEADER.unpack_from(mv, 0)
    out = bytearray(end - start + count * (CLASSIC_HEADER_SIZE - FRAME_HEADER_SIZE))
    omv = memoryview(out)
    pos = start
    opos = 0
    while pos < end:
        _, lo, hi, delta, ts_delta, uh_len, pl_len, _ = _FRAME.unpack_from(mv, pos)
        size = pl_len + uh_len
        body = opos + CLASSIC_HEADER_SIZE
        _CLASSIC.pack_into(out, opos, 0, lo, hi, base + delta, ts, origin + ts_delta,
                           uh_len, pl_len, 0)
        omv[body : body + size] = mv[pos + FRAME_HEADER_SIZE : pos + FRAME_HEADER_SIZE + size]
        _U64.pack_into(out, opos, xxh3_64_intdigest(omv[opos + 8 : body + size]))
        pos += FRAME_HEADER_SIZE + size
        opos = body + size
    return bytes(out), count


def batch_to_classic_frames(buf: Buffer, first_offset: int, max_count: int) -> bytes:
    """Classic poll-reply frames (64-byte headers) for messages with offset ≥ first_offset.

    checksum = xxh3_64(frame[8:end]) after offset/timestamp are set, as the 0.8 server
    computes it (the 0.8 client does not verify it); timestamp = base_timestamp.
    """
    return classic_frames_and_count(buf, first_offset, max_count)[0]


def classic_frames_of_batches(buf: Buffer) -> tuple[bytes, int]:
    """Classic poll-reply frames of every message of the whole batches laid end to end in
    ``buf`` (a streamed read's chunk: core/storage/streamed.py), and their number; one
    :func:`classic_frames_and_count` per batch (in C when built)."""
    mv = _view(buf)
    if len(mv) >= BATCH_HEADER_SIZE and _U64.unpack_from(mv, 32)[0] == len(mv):
        return classic_frames_and_count(mv, 0, 1 << 62)  # one batch: no join
    parts, count, pos = [], 0, 0
    while pos < len(mv):
        if len(mv) - pos < BATCH_HEADER_SIZE:
            raise _fail(ErrorCode.INVALID_FORMAT, "batch shorter than header")
        length = _U64.unpack_from(mv, pos + 32)[0]
        if length < BATCH_HEADER_SIZE or length > len(mv) - pos:
            raise _fail(ErrorCode.INVALID_FORMAT, f"batch length {length} overruns the read")
        frames, n = classic_frames_and_count(mv[pos:pos + length], 0, 1 << 62)
        parts.append(frames)
        count += n
        pos += length
    return b"".join(parts), count
