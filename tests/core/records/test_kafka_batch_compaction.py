"""Thinned batches (what the compactor writes): record spans, gaps, empty batches, and how
both doors read them (raw records for Kafka, transcoding for Iggy polls)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.records import compression, iggy_batch, kafka_batch, transcode
from pyggy.core.records.encoding import recognise

CODECS = (compression.NONE, compression.GZIP, compression.SNAPPY, compression.LZ4,
          compression.ZSTD)


def _batch(n: int, codec: int = compression.NONE, base: int = 100) -> bytearray:
    recs = [(1_700_000_000_000 + i, None if i % 5 == 4 else f"k{i % 3}".encode(),
             None if i % 4 == 3 else f"v{i}".encode(), [("h", b"x")]) for i in range(n)]
    return kafka_batch.build_batch(recs, base_offset=base, compression=codec,
                                   producer_id=7, producer_epoch=1, base_sequence=0)


def _thin(batch: bytearray, keep: list[int]) -> bytearray:
    f = kafka_batch.batch_fields(batch)
    body = kafka_batch.records_region(batch)
    spans = list(kafka_batch.record_spans(body, f[12], f[6]))
    records = b"".join(bytes(body[s[3]:s[4]]) for i, s in enumerate(spans) if i in keep)
    return kafka_batch.thinned_batch(batch, records, len(keep))


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), codec=st.sampled_from(CODECS), data=st.data())
def test_a_thinned_batch_keeps_its_records_and_offsets(n: int, codec: int, data) -> None:
    batch = _batch(n, codec)
    keep = sorted(data.draw(st.sets(st.integers(0, n - 1))))
    thin = _thin(batch, keep)
    info = kafka_batch.validate_batch(thin, compacted=True, decompress=True)
    assert info.record_count == len(keep) and info.last_offset_delta == n - 1
    assert kafka_batch.batch_fields(thin)[9:12] == (7, 1, 0)  # producer state stays
    before = list(kafka_batch.iter_records(batch))
    assert list(kafka_batch.iter_records(thin)) == [before[i] for i in keep]
    found = recognise(memoryview(thin), 100)  # recovery recognises it at its offset
    assert found is not None and found.record_count == n and found.length == len(thin)
    if len(keep) < n:  # a client's batch must still be whole
        with pytest.raises(kafka_batch.KafkaBatchError):
            kafka_batch.validate_batch(thin, produce=True)


def test_an_emptied_batch_is_an_uncompressed_header() -> None:
    thin = _thin(_batch(4, compression.ZSTD), [])
    assert len(thin) == kafka_batch.HEADER_SIZE
    assert kafka_batch.batch_fields(thin)[5] & kafka_batch.COMPRESSION_MASK == 0
    assert list(kafka_batch.raw_records(thin)) == []
    assert transcode.kafka_to_iggy(thin) == bytearray()  # Iggy polls see a gap


def test_iggy_polls_of_a_thinned_batch_keep_offsets() -> None:
    thin = _thin(_batch(8), [1, 2, 5, 7])
    batches = transcode.split_iggy(transcode.kafka_to_iggy(thin))
    offsets = [m[0] for b in batches for m in iggy_batch.iter_messages(b)]
    assert offsets == [101, 102, 105, 107]
    assert len(batches) == 3  # one Iggy batch per run of consecutive offsets


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 5), st.integers(0, 8))
def test_record_spans_refuse_garbage_without_crashing(body: bytes, count: int,
                                                      last: int) -> None:
    try:
        spans = list(kafka_batch.record_spans(body, count, last))
    except kafka_batch.KafkaBatchError:
        return
    assert len(spans) == count
    assert all(0 <= s[3] < s[4] <= len(body) for s in spans)


def test_record_spans_refuse_decreasing_offsets() -> None:
    body = bytearray()
    kafka_batch.encode_record(body, 3, 0, b"k", b"v", [])
    kafka_batch.encode_record(body, 2, 0, b"k", b"v", [])
    with pytest.raises(kafka_batch.KafkaBatchError, match="offsetDelta"):
        list(kafka_batch.record_spans(body, 2, 5))
    with pytest.raises(kafka_batch.KafkaBatchError, match="offsetDelta"):
        list(kafka_batch.record_spans(body[:len(body) // 2], 1, 2))  # beyond lastOffsetDelta
