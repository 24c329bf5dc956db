"""Zero-copy view of a Kafka RecordBatch v2 (magic 2): split, validate, stamp, iterate, build.

Header (61 B, big-endian; https://kafka.apache.org/documentation/#recordbatch): baseOffset
i64 @0, batchLength i32 @8 (= total − 12), partitionLeaderEpoch i32 @12, magic i8 @16, crc u32
@17, attributes i16 @21, lastOffsetDelta i32 @23, baseTimestamp i64 @27, maxTimestamp i64 @35,
producerId i64 @43, producerEpoch i16 @51, baseSequence i32 @53, recordsCount i32 @57,
records @61.

crc = CRC-32C over bytes [21, end). baseOffset, batchLength, partitionLeaderEpoch and magic
are outside it, so stamping an offset and an epoch never touches the CRC; LogAppendTime
(attributes bit 3 and maxTimestamp) does.

attributes: bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd), bit 3 LogAppendTime,
bit 4 transactional, bit 5 control, bit 6 delete horizon.

Record (…/documentation/#record, all zig-zag varints): length, attributes i8,
timestampDelta (varlong), offsetDelta, keyLength (−1 null), key, valueLength (−1 null), value,
headerCount, then per header keyLength (≥ 0), key (UTF-8), valueLength (−1 null), value.

Producer batches carry offset deltas 0..n−1 and ``lastOffsetDelta + 1 == recordsCount``;
:func:`validate_batch` requires both (the log maps offsets 1:1 onto Iggy messages).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, TypeVar

from pyggy.core.crc import crc32c
from pyggy.core.records import compression as codecs
from pyggy.core.records.accel import WALKS
from pyggy.core.records.compression import DEFAULT_LIMIT, CompressionError
from pyggy.core.records.kafka_errors import ErrorCode

HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes batchLength does not count
MAGIC = 2
BASE_OFFSET_OFFSET = 0
LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
PRODUCER_ID_OFFSET = 43
PRODUCER_EPOCH_OFFSET = 51
BASE_SEQUENCE_OFFSET = 53
RECORDS_COUNT_OFFSET = 57
RECORDS_OFFSET = HEADER_SIZE

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_MASK = 0x10
CONTROL_MASK = 0x20
DELETE_HORIZON_MASK = 0x40
CREATE_TIME = 0
LOG_APPEND_TIME = 1
NO_TIMESTAMP = -1

Buffer = bytes | bytearray | memoryview
Header = tuple[bytes | str, bytes | None]
RawRecord = tuple[int, int, bytes | None, bytes | None, list[tuple[bytes, bytes | None]]]

# baseOffset, batchLength, leaderEpoch, magic, crc, attributes, lastOffsetDelta,
# baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence, recordsCount
_HEADER = struct.Struct(">qiibIHiqqqhii")
_I64 = struct.Struct(">q")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_ATTR_MAXTS = struct.Struct(">H12xq")  # attributes @21, maxTimestamp @35 (unpack only)


class KafkaBatchError(ValueError):
    """A malformed, corrupt or unacceptable batch; ``code`` is the Kafka error code."""

    def __init__(self, code: ErrorCode | int, detail: str = "") -> None:
        self.code = int(code)
        super().__init__(detail or f"kafka error {self.code}")


class KafkaBatchInfo(NamedTuple):
    record_count: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    is_transactional: bool
    is_control: bool
    compression: int
    timestamp_type: int = CREATE_TIME


def _view(buf: Buffer) -> memoryview:
    mv = memoryview(buf)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    return mv


def _corrupt(detail: str) -> KafkaBatchError:
    return KafkaBatchError(ErrorCode.CORRUPT_MESSAGE, detail)


def _invalid(detail: str) -> KafkaBatchError:
    return KafkaBatchError(ErrorCode.INVALID_RECORD, detail)


# --- varints (zig-zag, as in records) ---------------------------------------------------
def _varint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Decode a zig-zag varint/varlong at ``pos``: (value, next position)."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    value = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
        if shift > 63:
            raise _invalid("varint longer than 10 bytes")


def put_varint(out: bytearray, n: int) -> None:
    """Append ``n`` as a zig-zag varint (varlong range)."""
    v = (n << 1) ^ (n >> 63)
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def read_varint(buf: Buffer, pos: int) -> tuple[int, int]:
    """Public form of the record varint reader: (value, next position); IndexError if cut."""
    return _varint(buf, pos)


# --- framing ----------------------------------------------------------------------------
def peek_length(view: Buffer) -> int:
    """Total bytes of the batch starting at ``view`` (12 + batchLength), from 12 bytes."""
    mv = _view(view)
    if len(mv) < LOG_OVERHEAD:
        raise _corrupt("fewer than 12 bytes")
    length: int = _I32.unpack_from(mv, LENGTH_OFFSET)[0]
    return LOG_OVERHEAD + length


def split_batches(records: Buffer) -> list[tuple[int, int]]:
    """(start, end) of each batch in a Produce request's ``records``; a partial batch fails."""
    mv = _view(records)
    total = len(mv)
    out: list[tuple[int, int]] = []
    pos = 0
    while pos < total:
        if total - pos < LOG_OVERHEAD:
            raise _corrupt(f"partial batch header at {pos}")
        (length,) = _I32.unpack_from(mv, pos + LENGTH_OFFSET)
        if length < HEADER_SIZE - LOG_OVERHEAD:
            raise _corrupt(f"batchLength {length} at {pos}")
        end = pos + LOG_OVERHEAD + length
        if end > total:
            raise _corrupt(f"partial batch at {pos}: needs {end - total} more bytes")
        out.append((pos, end))
        pos = end
    return out


def batch_fields(view: Buffer) -> tuple[int, int, int, int, int, int, int, int, int, int,
                                        int, int, int]:
    """The header: (baseOffset, batchLength, partitionLeaderEpoch, magic, crc, attributes,
    lastOffsetDelta, baseTimestamp, maxTimestamp, producerId, producerEpoch, baseSequence,
    recordsCount)."""
    mv = _view(view)
    if len(mv) < HEADER_SIZE:
        raise _corrupt(f"batch shorter than header: {len(mv)} B")
    return _HEADER.unpack_from(mv, 0)


# --- validate / stamp -------------------------------------------------------------------
def validate_batch(
    view: Buffer,
    *,
    verify_crc: bool = True,
    check_records: bool = True,
    decompress: bool = False,
    limit: int = DEFAULT_LIMIT,
    max_size: int | None = None,
    produce: bool = False,
    compacted: bool = False,
) -> KafkaBatchInfo:
    """Check one whole batch; raise :class:`KafkaBatchError` with Kafka's error code.

    Always: size, magic 2, batchLength, CRC-32C (``verify_crc``), codec ≤ 4, recordsCount ≥ 1
    and ``lastOffsetDelta + 1 == recordsCount``. ``check_records``: uncompressed records are
    parsed (ints only) and must tile the batch with offset deltas 0..n−1; compressed ones too
    only with ``decompress`` (at most ``limit`` bytes). ``produce`` adds the rules for a
    client's batch: no control batch, transactional ⇒ producerId ≥ 0, producerId ≥ 0 ⇒
    baseSequence ≥ 0. ``compacted``: a stored batch the compactor may have thinned
    (docs/compaction.md): 0 ≤ recordsCount ≤ lastOffsetDelta + 1, offset deltas increasing.
    """
    mv = _view(view)
    size = len(mv)
    if max_size is not None and size > max_size:
        raise KafkaBatchError(ErrorCode.MESSAGE_TOO_LARGE, f"batch {size} B > {max_size}")
    if size < HEADER_SIZE:
        raise _corrupt(f"batch shorter than header: {size} B")
    (_, length, _, magic, crc, attrs, last_delta, base_ts, max_ts, pid, epoch, base_seq,
     count) = _HEADER.unpack_from(mv, 0)
    if magic != MAGIC:
        raise _invalid(f"magic {magic}: only record batch v2 is accepted")
    if length + LOG_OVERHEAD != size:
        raise _corrupt(f"batchLength {length} does not match {size} B")
    if verify_crc and crc32c(mv[ATTRIBUTES_OFFSET:]) != crc:
        raise _corrupt("CRC-32C mismatch")
    codec = attrs & COMPRESSION_MASK
    if codec > codecs.ZSTD:
        raise KafkaBatchError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, f"codec {codec}")
    if (not 0 <= count <= last_delta + 1) if compacted else (count < 1 or last_delta + 1 != count):
        raise _invalid(f"recordsCount {count}, lastOffsetDelta {last_delta}")
    control = bool(attrs & CONTROL_MASK)
    txn = bool(attrs & TRANSACTIONAL_MASK)
    if produce:
        if control:
            raise _invalid("control batch from a client")
        if txn and pid < 0:
            raise _invalid("transactional batch without producerId")
        if pid >= 0 and base_seq < 0:
            raise _invalid("idempotent batch without baseSequence")
    if check_records:
        if compacted:
            if codec == codecs.NONE or decompress:
                for _ in record_spans(records_region(mv, limit), count, last_delta):
                    pass
        elif codec == codecs.NONE:
            walk_records(mv, RECORDS_OFFSET, count)
        elif decompress:
            walk_records(records_region(mv, limit), 0, count)
    return KafkaBatchInfo(count, last_delta, base_ts, max_ts, pid, epoch, base_seq, txn, control,
                          codec, (attrs & TIMESTAMP_TYPE_MASK) >> 3)


def walk_records(buf: Buffer, pos: int, count: int) -> None:
    """Check that ``count`` records tile buf[pos:] exactly, offset deltas 0..count−1: in C
    when built (core/records/accel.py), else (and to name the error) :func:`walk_records_py`.
    """
    if WALKS is None or not WALKS.kafka_walk(buf, pos, count):
        walk_records_py(buf, pos, len(buf), count)


def walk_records_py(buf: Buffer, pos: int, end: int, count: int) -> None:
    """The pure-Python twin of :func:`walk_records`: ``count`` records tile buf[pos:end].

    Ints only. One- and two-byte varints (values up to 8191: the common case for lengths and
    offset deltas) are decoded inline, the timestampDelta is skipped unread; a record that does
    not add up fails on ``pos != stop`` whatever went wrong inside it.
    """
    n = 0
    varint = _varint
    try:
        while pos < end:
            if n == count:
                raise _invalid(f"more records than recordsCount {count}")
            b = buf[pos]
            if b < 0x80:
                length = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                length = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                length, pos = varint(buf, pos)
            stop = pos + length
            if length < 6 or stop > end:
                raise _invalid(f"record {n}: length {length}")
            pos += 1  # attributes
            while buf[pos] >= 0x80:  # timestampDelta
                pos += 1
            pos += 1
            b = buf[pos]
            if b < 0x80:
                delta = (b >> 1) ^ -(b & 1)
                pos += 1
            elif buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                delta = (b >> 1) ^ -(b & 1)
                pos += 2
            else:
                delta, pos = varint(buf, pos)
            if delta != n:
                raise _invalid(f"record {n}: offsetDelta {delta}")
            for _ in (0, 1):  # key, value
                b = buf[pos]
                if b < 0x80:
                    size = (b >> 1) ^ -(b & 1)
                    pos += 1
                elif buf[pos + 1] < 0x80:
                    b = (b & 0x7F) | (buf[pos + 1] << 7)
                    size = (b >> 1) ^ -(b & 1)
                    pos += 2
                else:
                    size, pos = varint(buf, pos)
                if size > 0:
                    pos += size
                elif size < -1:
                    raise _invalid(f"record {n}: field length {size}")
            if buf[pos]:
                pos = _walk_headers(buf, pos, stop, n)
            else:
                pos += 1
            if pos != stop:
                raise _invalid(f"record {n}: fields do not fill its length")
            n += 1
    except IndexError:
        raise _invalid(f"record {n} truncated") from None
    if n != count:
        raise _invalid(f"{n} records, recordsCount {count}")


def _walk_headers(buf: Buffer, pos: int, stop: int, n: int,
                  out: list[tuple[bytes, bytes | None]] | None = None) -> int:
    """Walk the headers of record ``n`` starting at its headerCount; return the end. With
    ``out``, append each (key bytes, value) to it; else only skip them."""
    headers, pos = _varint(buf, pos)
    if headers < 0:
        raise _invalid(f"record {n}: headerCount {headers}")
    for _ in range(headers):
        if pos >= stop:
            raise _invalid(f"record {n}: headerCount {headers}")
        hk, pos = _varint(buf, pos)
        if hk < 0:
            raise _invalid(f"record {n}: header keyLength {hk}")
        if out is not None:
            hkey, pos = _take_bytes(buf, pos, hk, stop)
            hv, pos = _varint(buf, pos)
            hval, pos = _take(buf, pos, hv, stop)
            out.append((hkey, hval))
            continue
        hv, pos = _varint(buf, pos + hk)
        if hv > 0:
            pos += hv
        elif hv < -1:
            raise _invalid(f"record {n}: header valueLength {hv}")
    return pos


def stamp_batch(buf: bytearray | memoryview, base_offset: int,
                log_append_time_ms: int | None = None, partition_leader_epoch: int = 0) -> None:
    """Write baseOffset and partitionLeaderEpoch in place (CRC untouched: not covered).

    With ``log_append_time_ms``: set the LogAppendTime bit and maxTimestamp, and recompute
    the CRC when that changed a byte. ``buf`` must be writable and already validated.
    """
    mv = _view(buf)
    if len(mv) < HEADER_SIZE:
        raise _corrupt("batch shorter than header")
    _I64.pack_into(mv, BASE_OFFSET_OFFSET, base_offset)
    _I32.pack_into(mv, PARTITION_LEADER_EPOCH_OFFSET, partition_leader_epoch)
    if log_append_time_ms is None:
        return
    attrs, max_ts = _ATTR_MAXTS.unpack_from(mv, ATTRIBUTES_OFFSET)
    new_attrs = attrs | TIMESTAMP_TYPE_MASK
    if new_attrs != attrs or max_ts != log_append_time_ms:
        _U16.pack_into(mv, ATTRIBUTES_OFFSET, new_attrs)  # (a pad byte would write zeros)
        _I64.pack_into(mv, MAX_TIMESTAMP_OFFSET, log_append_time_ms)
        _U32.pack_into(mv, CRC_OFFSET, crc32c(mv[ATTRIBUTES_OFFSET:]))


# --- slow path: records -----------------------------------------------------------------
def records_region(view: Buffer, limit: int = DEFAULT_LIMIT) -> Buffer:
    """The records bytes of a batch, decompressed if needed (at most ``limit`` bytes)."""
    mv = _view(view)
    (attrs,) = _U16.unpack_from(mv, ATTRIBUTES_OFFSET)
    codec = attrs & COMPRESSION_MASK
    try:
        return codecs.decompress(codec, mv[RECORDS_OFFSET:], limit)
    except CompressionError as e:
        code = ErrorCode.MESSAGE_TOO_LARGE if e.too_large else (
            ErrorCode.UNSUPPORTED_COMPRESSION_TYPE if codec > codecs.ZSTD
            else ErrorCode.CORRUPT_MESSAGE)
        raise KafkaBatchError(code, str(e)) from None


def _take(buf: Buffer, pos: int, n: int, stop: int) -> tuple[bytes | None, int]:
    if n < 0:
        if n != -1:
            raise _invalid(f"length {n}")
        return None, pos
    if pos + n > stop:
        raise _invalid("field overruns its record")
    return bytes(buf[pos : pos + n]), pos + n


def _take_bytes(buf: Buffer, pos: int, n: int, stop: int) -> tuple[bytes, int]:
    """`_take` of a field that cannot be null (the caller refused a negative length)."""
    if pos + n > stop:
        raise _invalid("field overruns its record")
    return bytes(buf[pos : pos + n]), pos + n


def raw_records(view: Buffer, limit: int = DEFAULT_LIMIT) -> Iterator[RawRecord]:
    """Yield (offset_delta, timestamp_ms, key, value, [(key bytes, value)]) per record.

    The timestamp is what a Kafka consumer sees: maxTimestamp for LogAppendTime batches.
    Header keys stay bytes. Decompresses when needed; validates structure as it goes.
    Offset deltas increase; a compacted batch has gaps (docs/compaction.md).
    """
    mv = _view(view)
    (_, _, _, magic, _, attrs, last_delta, base_ts, max_ts, _, _, _, count) = batch_fields(mv)
    if magic != MAGIC:
        raise _invalid(f"magic {magic}: only record batch v2 is accepted")
    append_time = bool(attrs & TIMESTAMP_TYPE_MASK)

    def fields(body: Buffer, n: int, delta: int, ts_delta: int, start: int, pos: int,
               stop: int) -> RawRecord:
        klen, pos = _varint(body, pos)
        key, pos = _take(body, pos, klen, stop)
        vlen, pos = _varint(body, pos)
        value, pos = _take(body, pos, vlen, stop)
        headers: list[tuple[bytes, bytes | None]] = []
        pos = _walk_headers(body, pos, stop, n, headers)
        if pos != stop:
            raise _invalid(f"record {n}: fields do not fill its length")
        return delta, max_ts if append_time else base_ts + ts_delta, key, value, headers

    yield from _walk(records_region(mv, limit), count, last_delta, fields)


_T = TypeVar("_T")


def _walk(body: Buffer, count: int, last_delta: int,
          fields: Callable[[Buffer, int, int, int, int, int, int], _T]) -> Iterator[_T]:
    """The slow-path record walker of :func:`raw_records` and :func:`record_spans`: checks
    that ``count`` records tile ``body`` with increasing offset deltas ≤ ``last_delta`` (gaps
    where the compactor removed records) and yields ``fields(body, n, offsetDelta,
    timestampDelta, start, pos, stop)`` per record — body[start:stop] the whole record,
    length prefix included, pos just after its offsetDelta. Malformed → KafkaBatchError."""
    pos, end, n, delta = 0, len(body), 0, -1
    varint = _varint
    try:
        while pos < end:
            if n == count:
                raise _invalid(f"more records than recordsCount {count}")
            start = pos
            length, pos = varint(body, pos)
            stop = pos + length
            if length < 6 or stop > end:
                raise _invalid(f"record {n}: length {length}")
            ts_delta, pos = varint(body, pos + 1)  # after the attributes byte
            previous = delta
            delta, pos = varint(body, pos)
            if not previous < delta <= last_delta:
                raise _invalid(f"record {n}: offsetDelta {delta}")
            yield fields(body, n, delta, ts_delta, start, pos, stop)
            pos = stop
            n += 1
    except IndexError:
        raise _invalid(f"record {n} truncated") from None
    if n != count:
        raise _invalid(f"{n} records, recordsCount {count}")


def iter_records(
    view: Buffer, limit: int = DEFAULT_LIMIT,
) -> Iterator[tuple[int, int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]]:
    """Yield (offset, timestamp_ms, key, value, headers) per record; slow path.

    Header keys are decoded as UTF-8 with ``surrogateescape`` (any bytes survive a round
    trip through :func:`build_batch`).
    """
    base = batch_fields(view)[0]
    for delta, ts, key, value, headers in raw_records(view, limit):
        yield (base + delta, ts, key, value,
               [(k.decode("utf-8", "surrogateescape"), v) for k, v in headers])


# --- compaction: record spans and thinned batches (docs/compaction.md) --------------------
RecordSpan = tuple[int, bytes | None, bool, int, int]


def record_spans(body: Buffer, count: int, last_delta: int) -> Iterator[RecordSpan]:
    """Yield (offsetDelta, key, is_tombstone, start, stop) per record of a batch's (decompressed)
    records bytes: body[start:stop] is the whole record, length prefix included, so a kept
    record is copied verbatim. Checks that ``count`` records tile ``body`` with increasing
    offset deltas ≤ ``last_delta``; raises KafkaBatchError otherwise."""
    yield from _walk(body, count, last_delta, _span)


def _span(body: Buffer, n: int, delta: int, ts_delta: int, start: int, pos: int,
          stop: int) -> RecordSpan:
    klen, pos = _varint(body, pos)
    key, pos = _take(body, pos, klen, stop)
    vlen, pos = _varint(body, pos)
    if vlen < -1 or pos + max(vlen, 0) > stop:
        raise _invalid(f"record {n}: valueLength {vlen}")
    return delta, key, vlen == -1, start, stop


def thinned_batch(view: Buffer, records: Buffer, count: int) -> bytearray:
    """A copy of a stored batch holding only ``records`` (``count`` whole records cut from its
    records bytes), as the compactor writes it: baseOffset, lastOffsetDelta, timestamps and
    producer fields stay, the records are compressed again with the batch's codec (an empty
    batch is written uncompressed), batchLength, recordsCount and CRC are new."""
    mv = _view(view)
    attrs = _U16.unpack_from(mv, ATTRIBUTES_OFFSET)[0]
    codec = attrs & COMPRESSION_MASK
    if not count:
        codec = codecs.NONE
        attrs &= ~COMPRESSION_MASK
    body = codecs.compress(codec, records) if codec != codecs.NONE else records
    out = bytearray(mv[:HEADER_SIZE]) + body
    _I32.pack_into(out, LENGTH_OFFSET, len(out) - LOG_OVERHEAD)
    _U16.pack_into(out, ATTRIBUTES_OFFSET, attrs)
    _I32.pack_into(out, RECORDS_COUNT_OFFSET, count)
    _U32.pack_into(out, CRC_OFFSET, crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return out


# --- build ------------------------------------------------------------------------------
def _put_bytes(out: bytearray, data: Buffer | None) -> None:
    if data is None:
        out.append(1)  # zig-zag −1
    else:
        put_varint(out, len(data))
        out += data


def encode_record(out: bytearray, offset_delta: int, timestamp_delta: int, key: Buffer | None,
                  value: Buffer | None, headers: Iterable[Header]) -> None:
    """Append one record (length-prefixed) to ``out``."""
    body = bytearray(b"\x00")
    put_varint(body, timestamp_delta)
    put_varint(body, offset_delta)
    _put_bytes(body, key)
    _put_bytes(body, value)
    headers = list(headers)
    put_varint(body, len(headers))
    for hkey, hval in headers:
        raw = hkey.encode("utf-8", "surrogateescape") if isinstance(hkey, str) else hkey
        put_varint(body, len(raw))
        body += raw
        _put_bytes(body, hval)
    put_varint(out, len(body))
    out += body


def build_batch(
    records: Iterable[tuple[int, Buffer | None, Buffer | None, Iterable[Header]]],
    base_offset: int = 0,
    compression: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    transactional: bool = False,
    timestamp_type: int = CREATE_TIME,
    *,
    control: bool = False,
    partition_leader_epoch: int = -1,
) -> bytearray:
    """Encode (timestamp_ms, key, value, headers) records as a Kafka client does.

    Offset deltas 0..n−1, baseTimestamp = first record's, maxTimestamp = the largest,
    timestamp deltas relative to the first; records compressed with ``compression``.
    """
    recs = list(records)
    if not recs:
        raise _invalid("a batch needs at least one record")
    base_ts = recs[0][0]
    body = bytearray()
    for delta, (ts, key, value, headers) in enumerate(recs):
        encode_record(body, delta, ts - base_ts, key, value, headers)
    if compression != codecs.NONE:
        body = bytearray(codecs.compress(compression, body))
    attrs = (compression & COMPRESSION_MASK) | (timestamp_type << 3)
    attrs |= (TRANSACTIONAL_MASK if transactional else 0) | (CONTROL_MASK if control else 0)
    out = bytearray(HEADER_SIZE) + body
    _HEADER.pack_into(out, 0, base_offset, len(out) - LOG_OVERHEAD, partition_leader_epoch,
                      MAGIC, 0, attrs, len(recs) - 1, base_ts, max(r[0] for r in recs),
                      producer_id, producer_epoch, base_sequence, len(recs))
    _U32.pack_into(out, CRC_OFFSET, crc32c(memoryview(out)[ATTRIBUTES_OFFSET:]))
    return out


def build_control_batch(commit: bool, producer_id: int, producer_epoch: int,
                        coordinator_epoch: int, timestamp_ms: int, base_offset: int = 0,
                        partition_leader_epoch: int = 0) -> bytearray:
    """A COMMIT/ABORT transaction marker batch (KIP-98; …/documentation/#controlbatch)."""
    key = struct.pack(">hh", 0, 1 if commit else 0)
    value = struct.pack(">hi", 0, coordinator_epoch)
    return build_batch([(timestamp_ms, key, value, ())], base_offset, 0, producer_id,
                       producer_epoch, -1, True, control=True,
                       partition_leader_epoch=partition_leader_epoch)
