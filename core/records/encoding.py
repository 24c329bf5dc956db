"""Batch encodings a partition log may hold, and how recovery recognises a stored batch."""

from __future__ import annotations

from typing import NamedTuple

ENCODING_IGGY = 1
ENCODING_KAFKA = 2


class StoredBatch(NamedTuple):
    encoding: int
    length: int
    count: int
    timestamp: int  # append time, µs
    max_timestamp: int  # newest record timestamp, µs


def recognise(view: memoryview, expected_offset: int, verify: bool = True) -> StoredBatch | None:
    """Identify and validate the stored batch at the start of `view`.

    The batch must carry `expected_offset` as its base offset and pass its checksums. Returns
    None for a torn, corrupt or foreign batch: recovery cuts the log there.
    """
    from core.records import iggy_batch

    if len(view) >= iggy_batch.BATCH_HEADER_SIZE:
        _pid, base, base_ts, _origin, length, _count = iggy_batch.batch_fields(view)
        if base == expected_offset and iggy_batch.BATCH_HEADER_SIZE <= length <= len(view):
            try:
                info = iggy_batch.validate_batch(view[:length], verify_checksums=verify)
            except iggy_batch.BatchError:
                return None
            return StoredBatch(ENCODING_IGGY, length, info.message_count, base_ts, base_ts)
    return None


def peek_length(view: memoryview) -> int | None:
    """The stored length of the batch starting at `view`, from its header alone."""
    from core.records import iggy_batch

    if len(view) >= iggy_batch.BATCH_HEADER_SIZE:
        return iggy_batch.batch_fields(view)[4]
    return None
