"""Record mapping: how a Kafka record and an Iggy message map onto each other.

This module is the one definition of the mapping; the user docs quote this text.

Offsets and ids
    Iggy message offset = Kafka record offset (one partition log, one offset space).
    Kafka → Iggy: message id = the record's offset (deterministic, unique in the partition).
    Iggy → Kafka: the message id is not carried (Kafka records have no id).

Timestamps
    Kafka → Iggy: origin_timestamp = record timestamp × 1000 (ms → µs); for a LogAppendTime
    batch that is the batch's append time, as a Kafka consumer sees it. A timestamp that µs
    cannot hold (negative, e.g. −1 "none", or past year 584 556) gives origin_timestamp 0
    and user header ``kafka.timestamp`` (Int64) with the exact value. The Iggy batch
    timestamp (append time) is the stored batch's, by default its maxTimestamp. Records whose
    timestamps span more than an Iggy timestamp delta (u32 µs ≈ 71.6 min) are cut into
    several consecutive Iggy batches.
    Iggy → Kafka: timestamp = origin_timestamp // 1000 (µs → ms), CreateTime. Sub-ms digits
    and the Iggy append time are not carried.

Kafka → Iggy, per record (the *direct* form, what nearly every record gets)
    payload = value. Iggy forbids an empty payload, so a null value (tombstone) or an empty
    value becomes the 1-byte payload ``00`` plus user header ``kafka.value`` (String)
    = ``null`` or ``empty``.
    key → user header ``kafka.key`` (String key, Raw value); a null key → no header.
    each Kafka header → user header (String key, Raw value) in Kafka's order.
    User header keys starting with ``kafka.``, and ``iggy.headers``, are reserved for the
    mapping (a Kafka header of that name is still carried, in the exact form below).

    Iggy user headers are a map whose fields hold 1..255 bytes, so when a record has a key
    of 0 or more than 255 bytes, or a header that is repeated, has a null, empty or over
    255-byte value, has a key that is empty, over 255 bytes, not UTF-8 or reserved, it gets
    the *exact* form: the direct-form headers that can be written (for a repeated key, its
    last writable value, as Kafka's ``lastHeader``) plus ``kafka.exact.0``,
    ``kafka.exact.1``, … (Raw, 255-byte chunks) holding key and headers exactly as Kafka
    encodes them: ``keyLength key headerCount (keyLength key valueLength value)*`` (zig-zag
    varints, −1 = null).
    If the user headers would pass Iggy's 100 000-byte limit, the *envelope* form: payload =
    ``keyLength key valueLength value headerCount headers…`` (the same encoding) and the
    single user header ``kafka.envelope`` = ``1`` (String). A value over Iggy's 64 MB
    payload limit cannot be mapped (MESSAGE_TOO_LARGE).
    Control batches (transaction markers) map to no message: Iggy readers see the offset gap.
    Iggy readers see every data record, committed or aborted (read_uncommitted).

Iggy → Kafka, per message
    A message that is exactly what the rules above produce for some record (checked by
    encoding the decoded record again: same payload, user headers and origin_timestamp to
    the millisecond) becomes that record, byte for byte. Otherwise:
    value = payload (a ``kafka.value`` = ``null``/``empty`` header on a ``00`` payload gives
    a null/empty value); key = user header ``kafka.key`` (bytes as stored, any kind), else
    null: an Iggy producer chooses the Kafka key and tombstones with these two headers.
    Every other user header becomes a Kafka header, in order, as text a Kafka consumer can
    read: String and Raw as stored; Bool ``true``/``false``; integers in decimal; floats in
    shortest round-trip form (``NaN``, ``Infinity``); the same for a non-String key kind,
    and a key that is not UTF-8 is written with ``\\xNN`` escapes (Kafka keys are strings).
    That loses the kinds, so such a record (e.g. any message with String-valued headers, as
    the Iggy SDKs write for ``{"k": "v"}``) ends with one more header, ``iggy.headers``,
    whose value is the message's exact user-header block (TLV), so that it maps back.

Round trips
    Kafka → Iggy → Kafka is exact for key, value (null ≠ empty), headers (order, repeats,
    null values) and timestamp, for every record whose value fits an Iggy payload.
    Iggy → Kafka → Iggy gives back payload, user headers (bytes and kinds), offset and
    origin_timestamp to the millisecond. The one exception is contrived: a message whose
    ``kafka.exact.*`` headers (written by hand) encode a header list that ends with an
    ``iggy.headers`` marker; it comes back as the message that marker describes.
"""

from __future__ import annotations

import struct
from typing import TypeGuard

from pyggy.core.errors import ErrorCode
from pyggy.core.records import iggy_batch, kafka_batch
from pyggy.core.records import user_headers as uh
from pyggy.core.records.compression import DEFAULT_LIMIT
from pyggy.core.records.kafka_batch import KafkaBatchError, put_varint, read_varint
from pyggy.core.records.kafka_errors import ErrorCode as KafkaError

KEY = b"kafka.key"
VALUE = b"kafka.value"
TIMESTAMP = b"kafka.timestamp"
ENVELOPE = b"kafka.envelope"
EXACT = b"kafka.exact."
RESERVED = b"kafka."
MARKER = b"iggy.headers"
NULL = b"null"
EMPTY = b"empty"
PLACEHOLDER = b"\x00"
MAX_TIMESTAMP_MS = ((1 << 64) - 1) // 1000
_U32_MAX = 0xFFFF_FFFF
_I64 = struct.Struct("<q")

Headers = list[tuple[bytes, bytes | None]]
Record = tuple[bytes | None, bytes | None, Headers, int]  # key, value, headers, timestamp_ms
Message = tuple[bytes, bytes, int]  # payload, user headers, origin_timestamp µs


# --- Kafka's own encoding of key / value / headers --------------------------------------
def _put(out: bytearray, data: bytes | None) -> None:
    if data is None:
        out.append(1)
    else:
        put_varint(out, len(data))
        out += data


def _encode_fields(key: bytes | None, headers: Headers, value: bytes | None = None,
                   with_value: bool = False) -> bytes:
    out = bytearray()
    _put(out, key)
    if with_value:
        _put(out, value)
    put_varint(out, len(headers))
    for hkey, hval in headers:
        _put(out, hkey)
        _put(out, hval)
    return bytes(out)


def _parse_fields(buf: bytes, with_value: bool) -> tuple[bytes | None, bytes | None, Headers]:
    """Inverse of :func:`_encode_fields`; ValueError/IndexError if ``buf`` is not one."""
    pos = 0

    def take() -> bytes | None:
        nonlocal pos
        n, pos = read_varint(buf, pos)
        if n < -1 or pos + n > len(buf):
            raise ValueError("bad length")
        if n == -1:
            return None
        pos += n
        return buf[pos - n : pos]

    key = take()
    value = take() if with_value else None
    count, pos = read_varint(buf, pos)
    if not 0 <= count <= len(buf):
        raise ValueError("bad header count")
    headers: Headers = []
    for _ in range(count):
        hkey = take()
        if hkey is None:
            raise ValueError("null header key")
        headers.append((hkey, take()))
    if pos != len(buf):
        raise ValueError("trailing bytes")
    return key, value, headers


# --- Kafka record → Iggy message --------------------------------------------------------
def _plain(value: bytes | None, key: bytes) -> TypeGuard[bytes]:
    """A header that maps 1:1 onto a (String, Raw) user header (its value is not null)."""
    if value is None or not 0 < len(value) <= uh.MAX_FIELD or not 0 < len(key) <= uh.MAX_FIELD:
        return False
    if key.startswith(RESERVED) or key == MARKER:
        return False
    try:
        key.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _encode(key: bytes | None, value: bytes | None, headers: Headers,
            ts: int) -> Message | None:
    """The mapping's rules for one record; None if the value is too big for Iggy."""
    origin = ts * 1000 if 0 <= ts <= MAX_TIMESTAMP_MS else 0
    stamp = [] if 0 <= ts <= MAX_TIMESTAMP_MS else [(uh.STRING, TIMESTAMP, uh.INT64,
                                                      _I64.pack(ts))]
    entries: list[uh.Entry] = []
    if not value:
        entries.append((uh.STRING, VALUE, uh.STRING, NULL if value is None else EMPTY))
    entries += stamp
    exact = False
    if key is not None:
        if 0 < len(key) <= uh.MAX_FIELD:
            entries.append((uh.STRING, KEY, uh.RAW, key))
        else:
            exact = True
    plain: dict[bytes, bytes] = {}
    for hkey, hval in headers:
        if _plain(hval, hkey):
            if hkey in plain:
                exact = True
            plain[hkey] = hval
        else:
            exact = True
    entries += [(uh.STRING, k, uh.RAW, v) for k, v in plain.items()]
    if exact:
        blob = _encode_fields(key, headers)
        entries += [(uh.STRING, EXACT + b"%d" % i, uh.RAW, blob[at : at + uh.MAX_FIELD])
                    for i, at in enumerate(range(0, len(blob), uh.MAX_FIELD))]
    payload = value or PLACEHOLDER
    tlv = uh.encode(entries)
    if len(tlv) > uh.MAX_SIZE:
        payload = _encode_fields(key, headers, value, with_value=True)
        tlv = uh.encode([(uh.STRING, ENVELOPE, uh.STRING, b"1"), *stamp])
    if len(payload) > iggy_batch.MAX_PAYLOAD_SIZE:
        return None
    return payload, tlv, origin


def record_to_message(key: bytes | None, value: bytes | None, headers: Headers,
                      timestamp_ms: int) -> Message:
    """(payload, user_headers, origin_timestamp_us) for one Kafka record."""
    back = _unrender(key, value, headers, timestamp_ms)
    if back is not None:
        return back
    message = _encode(key, value, headers, timestamp_ms)
    if message is None:
        raise KafkaBatchError(KafkaError.MESSAGE_TOO_LARGE, "value too big for Iggy")
    return message


# --- Iggy message → Kafka record --------------------------------------------------------
def _decode(payload: bytes, entries: list[uh.Entry], origin: int) -> Record:
    """The record the mapping rules would have produced ``payload``/``entries`` from."""
    ts = origin // 1000
    found: dict[bytes, tuple[int, bytes]] = {}
    chunks: list[bytes] = []
    others: list[uh.Entry] = []
    for entry in entries:
        kk, k, vk, v = entry
        if kk == uh.STRING and k in (KEY, VALUE, TIMESTAMP, ENVELOPE) and k not in found:
            found[k] = (vk, v)
        elif kk == uh.STRING and k.startswith(EXACT):
            chunks.append(v)
        else:
            others.append(entry)
    if TIMESTAMP in found and found[TIMESTAMP][0] == uh.INT64 and len(found[TIMESTAMP][1]) == 8:
        ts = _I64.unpack(found[TIMESTAMP][1])[0]
    if ENVELOPE in found:
        try:
            key, value, headers = _parse_fields(payload, with_value=True)
            return key, value, headers, ts
        except (ValueError, IndexError):
            pass
    value = payload
    if VALUE in found and payload == PLACEHOLDER and found[VALUE] in ((uh.STRING, NULL),
                                                                      (uh.STRING, EMPTY)):
        value = None if found[VALUE][1] == NULL else b""
    key = found[KEY][1] if KEY in found else None
    if chunks:
        try:
            key, _, headers = _parse_fields(b"".join(chunks), with_value=False)
            return key, value, headers, ts
        except (ValueError, IndexError):
            pass
    return key, value, [(uh.text(kk, k), uh.text(vk, v)) for kk, k, vk, v in others], ts


def _utf8(key: bytes) -> bytes:
    """A Kafka header key clients can decode: invalid UTF-8 bytes become ``\\xNN``."""
    try:
        key.decode("utf-8")
        return key
    except UnicodeDecodeError:
        return key.decode("utf-8", "backslashreplace").encode()


def _render(payload: bytes, tlv: bytes, entries: list[uh.Entry] | None, origin: int) -> Record:
    """Generic form of a message that is not the image of a record: text headers + marker."""
    ts = origin // 1000
    if entries is None:
        return None, payload, [(MARKER, tlv)], ts
    key: bytes | None = None
    value: bytes | None = payload
    headers: Headers = []
    key_done = value_done = False
    for kk, k, vk, v in entries:
        if kk == uh.STRING and k == KEY and not key_done:
            key, key_done = v, True
        elif (kk == uh.STRING and k == VALUE and not value_done and payload == PLACEHOLDER
              and vk == uh.STRING and v in (NULL, EMPTY)):
            value, value_done = (None if v == NULL else b""), True
        else:
            headers.append((_utf8(uh.text(kk, k)), uh.text(vk, v)))
    headers.append((MARKER, tlv))
    return key, value, headers, ts


def _entries(tlv: bytes) -> list[uh.Entry] | None:
    try:
        return uh.decode(tlv)
    except uh.HeaderError:
        return None


def _canonical(payload: bytes, tlv: bytes, entries: list[uh.Entry] | None,
               origin: int) -> Record | None:
    """The record this message is the exact image of, or None."""
    if entries is None:
        return None
    record = _decode(payload, entries, origin)
    again = _encode(*record)
    if again is None or again != (payload, tlv, origin - origin % 1000):
        return None
    return record


def message_to_record(payload: bytes, user_headers: bytes, origin_us: int) -> Record:
    """(key, value, headers, timestamp_ms) for one Iggy message."""
    entries = _entries(user_headers)
    record = _canonical(payload, user_headers, entries, origin_us)
    if record is not None:
        return record
    return _render(payload, user_headers, entries, origin_us)


def _unrender(key: bytes | None, value: bytes | None, headers: Headers,
              ts: int) -> Message | None:
    """The message a record was rendered from (it ends with a consistent marker), or None."""
    if not headers or headers[-1][0] != MARKER or not 0 <= ts <= MAX_TIMESTAMP_MS:
        return None
    tlv = headers[-1][1]
    if tlv is None or len(tlv) > uh.MAX_SIZE:
        return None
    entries = _entries(tlv)
    payload = value or PLACEHOLDER
    origin = ts * 1000
    if entries is None or len(payload) > iggy_batch.MAX_PAYLOAD_SIZE:
        return None
    if _canonical(payload, tlv, entries, origin) is not None:
        return None
    if _render(payload, tlv, entries, origin) != (key, value, headers, ts):
        return None
    return payload, tlv, origin


# --- batches ----------------------------------------------------------------------------
def kafka_to_iggy(view: kafka_batch.Buffer, base_offset: int | None = None, *,
                  partition_id: int = 0, timestamp_us: int | None = None,
                  limit: int = DEFAULT_LIMIT) -> bytearray:
    """The Iggy 0.11 batch(es) of a stored Kafka batch: usually one, several when timestamps
    span more than a u32 µs delta or compaction left offset gaps, none (empty) for a control
    batch or a batch compaction emptied.

    ``base_offset`` defaults to the Kafka batch's; ``timestamp_us`` (the Iggy append time)
    to its maxTimestamp in µs.
    """
    fields = kafka_batch.batch_fields(view)
    if fields[5] & kafka_batch.CONTROL_MASK:
        return bytearray()
    base = fields[0] if base_offset is None else base_offset
    if timestamp_us is None:
        timestamp_us = min(max(fields[8], 0), MAX_TIMESTAMP_MS) * 1000
    out = bytearray()
    group: list[tuple[int, bytes, bytes, int]] = []
    lo = hi = 0
    for delta, ts, key, value, headers in kafka_batch.raw_records(view, limit):
        payload, tlv, origin = record_to_message(key, value, headers, ts)
        # an Iggy batch's offsets are consecutive: a gap left by compaction starts a new one
        if group and (max(hi, origin) - min(lo, origin) > _U32_MAX
                      or base + delta != group[-1][0] + 1):
            out += _iggy(group, partition_id, timestamp_us)
            group = []
        lo, hi = (min(lo, origin), max(hi, origin)) if group else (origin, origin)
        group.append((base + delta, payload, tlv, origin))
    if group:  # a batch compaction emptied has none
        out += _iggy(group, partition_id, timestamp_us)
    return out


def _iggy(group: list[tuple[int, bytes, bytes, int]], partition_id: int,
          timestamp_us: int) -> bytearray:
    return iggy_batch.build_batch(group, partition_id=partition_id, base_offset=group[0][0],
                                  base_timestamp=timestamp_us)


def iggy_to_kafka(view: iggy_batch.Buffer, *, partition_leader_epoch: int = 0) -> bytearray:
    """A Kafka RecordBatch v2 (uncompressed, CreateTime) of an Iggy batch, one record per
    message; base offset = the batch's first message offset."""
    records = []
    first = -1
    for index, (offset, _ts, origin, _id, payload, headers) in enumerate(
            iggy_batch.iter_messages(view)):
        if first < 0:
            first = offset
        elif offset != first + index:
            raise iggy_batch.BatchError(ErrorCode.INVALID_FORMAT, "offset gap")
        key, value, kheaders, ts = message_to_record(bytes(payload), bytes(headers), origin)
        records.append((ts, key, value, kheaders))
    return kafka_batch.build_batch(records, base_offset=first,
                                   partition_leader_epoch=partition_leader_epoch)


def split_iggy(buf: iggy_batch.Buffer) -> list[memoryview]:
    """The consecutive Iggy batches in ``buf`` (as :func:`kafka_to_iggy` returns them)."""
    mv = memoryview(buf)
    out = []
    pos = 0
    while pos < len(mv):
        length = iggy_batch.batch_fields(mv[pos:])[4]
        if length < iggy_batch.BATCH_HEADER_SIZE or pos + length > len(mv):
            raise iggy_batch.BatchError(ErrorCode.INVALID_FORMAT, "batches do not tile")
        out.append(mv[pos : pos + length])
        pos += length
    return out
