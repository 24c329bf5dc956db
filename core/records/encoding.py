"""Batch encodings a partition log may hold, and how recovery recognises a stored batch.

The two encodings are told apart by structure alone:

* Iggy 0.11 batch: 256-byte header whose bytes [52, 256) are reserved and zero.
* Kafka RecordBatch v2: magic byte 2 at 16. Its bytes [57, 61) hold recordsCount ≥ 1, so a
  stored Kafka batch can never pass for an Iggy header (and a short batch is not one).

A batch is then accepted only if it carries the expected base offset (Iggy: u64 LE at 8;
Kafka: i64 BE at 0) and its checksums hold (XXH3-64 / CRC-32C).
"""

from __future__ import annotations

from typing import NamedTuple

ENCODING_IGGY = 1
ENCODING_KAFKA = 2

_IGGY_HEADER = 256
_IGGY_RESERVED = bytes(_IGGY_HEADER - 52)
_KAFKA_MAGIC_AT = 16
_KAFKA_HEADER = 61
_U64_MAX = (1 << 64) - 1


class StoredBatch(NamedTuple):
    encoding: int
    length: int
    record_count: int
    timestamp: int  # append time, µs
    max_timestamp: int  # newest record timestamp, µs


def encoding_of(view: memoryview) -> int | None:
    """ENCODING_IGGY or ENCODING_KAFKA by the header's structure, None if it is neither."""
    if len(view) >= _IGGY_HEADER and view[52:_IGGY_HEADER] == _IGGY_RESERVED:
        return ENCODING_IGGY
    if len(view) >= _KAFKA_HEADER and view[_KAFKA_MAGIC_AT] == 2:
        return ENCODING_KAFKA
    return None


def recognise(view: memoryview, expected_offset: int, verify: bool = True) -> StoredBatch | None:
    """Identify and validate the stored batch at the start of `view`.

    The batch must carry `expected_offset` as its base offset and pass its checksums. Returns
    None for a torn, corrupt or foreign batch: recovery cuts the log there.
    """
    encoding = encoding_of(view)
    if encoding == ENCODING_IGGY:
        return _recognise_iggy(view, expected_offset, verify)
    if encoding == ENCODING_KAFKA:
        return _recognise_kafka(view, expected_offset, verify)
    return None


def _recognise_iggy(view: memoryview, expected_offset: int, verify: bool) -> StoredBatch | None:
    from pyggy.core.records import iggy_batch

    _pid, base, base_ts, _origin, length, _count = iggy_batch.batch_fields(view)
    if base != expected_offset or not iggy_batch.BATCH_HEADER_SIZE <= length <= len(view):
        return None
    try:
        info = iggy_batch.validate_batch(view[:length], verify_checksums=verify)
    except iggy_batch.BatchError:
        return None
    return StoredBatch(ENCODING_IGGY, length, info.message_count, base_ts, base_ts)


def _recognise_kafka(view: memoryview, expected_offset: int, verify: bool) -> StoredBatch | None:
    """A Kafka batch: its index timestamps are its maxTimestamp (ms → µs, ≥ 0)."""
    from pyggy.core.records import kafka_batch

    base = kafka_batch.batch_fields(view)[0]
    length = kafka_batch.peek_length(view)
    if base != expected_offset or not kafka_batch.HEADER_SIZE <= length <= len(view):
        return None
    try:
        info = kafka_batch.validate_batch(view[:length], verify_crc=verify, check_records=False,
                                          compacted=True)
    except kafka_batch.KafkaBatchError:
        return None
    ts = min(max(info.max_timestamp, 0) * 1000, _U64_MAX)
    return StoredBatch(ENCODING_KAFKA, length, info.last_offset_delta + 1, ts, ts)


def peek_length(view: memoryview) -> int | None:
    """The stored length of the batch starting at `view`, from its header alone."""
    encoding = encoding_of(view)
    if encoding == ENCODING_IGGY:
        from pyggy.core.records import iggy_batch

        return iggy_batch.batch_fields(view)[4]
    if encoding == ENCODING_KAFKA:
        from pyggy.core.records import kafka_batch

        length = kafka_batch.peek_length(view)
        return length if length >= kafka_batch.HEADER_SIZE else None
    return None
