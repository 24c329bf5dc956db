"""Kafka RecordBatch v2 view: golden batches from kafka-python, corruption, stamping, framing."""

from __future__ import annotations

import struct

import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from pyggy.core.records import compression as codecs
from pyggy.core.records import kafka_batch as kb
from pyggy.core.records.kafka_batch import KafkaBatchError
from pyggy.core.records.kafka_errors import ErrorCode

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = 1_795_717_532_295
CODECS = [codecs.NONE, codecs.GZIP, codecs.SNAPPY, codecs.LZ4, codecs.ZSTD]


def _sample(n: int = 40) -> list[tuple[int, bytes | None, bytes | None, list]]:
    """Compressible records with null keys/values, empty and repeated headers."""
    out = []
    for i in range(n):
        key = None if i % 3 == 0 else b"key-%d" % (i % 7)
        value = None if i % 11 == 5 else b"" if i % 13 == 6 else b"value %d " % i * (i % 9 + 1)
        headers = [] if i % 4 == 0 else [("trace", b"t%d" % i), ("dup", None), ("dup", b"")]
        out.append((T0 + i * 3 - (i % 5), key, value, headers))
    return out


def _kafka_python(records: list, codec: int, *, producer_id: int = -1, epoch: int = -1,
                  sequence: int = -1, transactional: bool = False) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=codec, is_transactional=transactional,
        producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence,
        batch_size=1 << 22)
    for i, (ts, key, value, headers) in enumerate(records):
        assert builder.append(i, timestamp=ts, key=key, value=value, headers=headers)
    return bytes(builder.build())


def _their_records(data: bytes) -> list:
    return [(r.offset, r.timestamp, r.key, r.value, list(r.headers))
            for r in DefaultRecordBatch(bytearray(data))]


def _recrc(buf: bytearray) -> bytearray:
    struct.pack_into(">I", buf, kb.CRC_OFFSET, crc32c(bytes(buf[kb.ATTRIBUTES_OFFSET:])))
    return buf


class _Code:
    """Context manager: the block must raise KafkaBatchError with this code."""

    def __init__(self, code: int) -> None:
        self.code = code

    def __enter__(self) -> None:
        return None

    def __exit__(self, et, e, tb) -> bool:  # type: ignore[no-untyped-def]
        assert isinstance(e, KafkaBatchError), f"expected KafkaBatchError, got {e!r}"
        assert e.code == self.code, f"code {e.code} != {self.code}: {e}"
        return True


# --- golden batches from a real client --------------------------------------------------
@pytest.mark.parametrize("codec", CODECS)
def test_golden_kafka_python_batches(codec: int) -> None:
    records = _sample()
    data = bytearray(_kafka_python(records, codec))
    assert data[kb.ATTRIBUTES_OFFSET + 1] & 7 == codec  # compression really applied
    info = kb.validate_batch(data, decompress=True)
    assert info == kb.KafkaBatchInfo(len(records), len(records) - 1, records[0][0],
                                     max(r[0] for r in records), -1, -1, -1, False, False,
                                     codec, kb.CREATE_TIME)
    kb.stamp_batch(data, 5000, partition_leader_epoch=3)
    ours = list(kb.iter_records(data))
    assert ours == _their_records(data)
    assert ours == [(5000 + i, ts, k, v, h) for i, (ts, k, v, h) in enumerate(records)]
    rebuilt = kb.build_batch([r[1:] for r in ours], 5000, codec, partition_leader_epoch=3)
    assert list(kb.iter_records(rebuilt)) == ours
    if codec == codecs.NONE:
        assert rebuilt == data  # byte-exact with the client's builder
    assert _their_records(rebuilt) == ours


def test_golden_idempotent_transactional() -> None:
    data = _kafka_python(_sample(5), codecs.ZSTD, producer_id=77, epoch=3, sequence=1000,
                         transactional=True)
    info = kb.validate_batch(data, produce=True)
    assert (info.producer_id, info.producer_epoch, info.base_sequence) == (77, 3, 1000)
    assert info.is_transactional and not info.is_control
    ours = kb.build_batch([r[1:] for r in kb.iter_records(data)], 0, codecs.ZSTD, 77, 3, 1000,
                          True)
    assert kb.batch_fields(ours)[9:] == kb.batch_fields(data)[9:]


def test_control_batch() -> None:
    data = kb.build_control_batch(True, 9, 2, 5, T0, base_offset=40)
    info = kb.validate_batch(data)
    assert info.is_control and info.is_transactional and info.record_count == 1
    (record,) = DefaultRecordBatch(bytearray(data))
    assert record.commit and record.offset == 40
    marker = (40, T0, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x05", [])
    assert list(kb.iter_records(data)) == [marker]
    with _Code(ErrorCode.INVALID_RECORD):
        kb.validate_batch(data, produce=True)


def test_header_keys_any_bytes_survive() -> None:
    data = kb.build_batch([(T0, None, b"v", [(b"\xff\xfe", b"x"), ("é", None)])])
    ((_, _, _, _, headers),) = kb.iter_records(data)
    assert headers == [("\udcff\udcfe", b"x"), ("é", None)]
    assert kb.build_batch([(T0, None, b"v", headers)]) == data


# --- validation rules -------------------------------------------------------------------
def _small() -> bytearray:
    return kb.build_batch([(T0, b"k", b"value", [("h", b"1")]), (T0 + 1, None, None, [])])


def test_header_rules() -> None:
    data = _small()
    with _Code(ErrorCode.MESSAGE_TOO_LARGE):
        kb.validate_batch(data, max_size=len(data) - 1)
    with _Code(ErrorCode.CORRUPT_MESSAGE):
        kb.validate_batch(data[:60])
    for magic in (0, 1, 3):
        bad = bytearray(data)
        bad[kb.MAGIC_OFFSET] = magic
        with _Code(ErrorCode.INVALID_RECORD):
            kb.validate_batch(bad)
        with _Code(ErrorCode.INVALID_RECORD):
            list(kb.iter_records(bad))
    bad = _recrc(bytearray(data))
    bad[kb.ATTRIBUTES_OFFSET + 1] |= 5
    with _Code(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE):
        kb.validate_batch(_recrc(bad))
    for field, value in ((kb.RECORDS_COUNT_OFFSET, 0), (kb.RECORDS_COUNT_OFFSET, 3),
                         (kb.LAST_OFFSET_DELTA_OFFSET, 0)):
        bad = bytearray(data)
        struct.pack_into(">i", bad, field, value)
        with _Code(ErrorCode.INVALID_RECORD):
            kb.validate_batch(_recrc(bad))


def test_produce_rules() -> None:
    rec = [(T0, None, b"v", [])]
    kb.validate_batch(kb.build_batch(rec, producer_id=1, producer_epoch=0, base_sequence=0),
                      produce=True)
    for kwargs in ({"producer_id": 1, "producer_epoch": 0},
                   {"transactional": True}):
        with _Code(ErrorCode.INVALID_RECORD):
            kb.validate_batch(kb.build_batch(rec, **kwargs), produce=True)  # type: ignore[arg-type]
        kb.validate_batch(kb.build_batch(rec, **kwargs))  # type: ignore[arg-type]


def _raw_batch(body: bytes, count: int) -> bytearray:
    """A batch header (correct length and CRC) around arbitrary record bytes."""
    out = bytearray(kb.HEADER_SIZE) + body
    struct.pack_into(">qiibIHiqqqhii", out, 0, 0, len(out) - 12, 0, 2, 0, 0, count - 1, T0, T0,
                     -1, -1, -1, count)
    return _recrc(out)


def _record(body: bytes) -> bytes:
    out = bytearray()
    kb.put_varint(out, len(body))
    return bytes(out) + body


@pytest.mark.parametrize("body, count", [
    (_record(b"\x00\x00\x02\x01\x01\x00"), 1),  # offsetDelta 1 for the first record
    (_record(b"\x00\x00\x00\x01\x01\x00") + b"\x00", 1),  # trailing byte
    (_record(b"\x00\x00\x00\x01\x01\x00\x00"), 1),  # record longer than its fields
    (_record(b"\x00\x00\x00\x03\x01\x00"), 1),  # keyLength −2
    (_record(b"\x00\x00\x00\x01\x01\x02\x01\x00\x01"), 1),  # header keyLength −1
    (_record(b"\x00\x00\x00\x01\x01\x7e"), 1),  # 63 headers in no bytes
    (_record(b"\x00\x00\x00\x01\x01\x01"), 1),  # headerCount −1
    (_record(b"\x00\x00\x00\x01\x01\x00"), 2),  # fewer records than recordsCount
    (_record(b"\x00\x00\x00\x01\x01\x00") * 2, 1),  # more records than recordsCount
    (b"\x0a\x00\x00\x00", 1),  # truncated record
    (_record(b"\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x01\x00"), 1),  # varint
])
def test_record_structure_errors(body: bytes, count: int) -> None:
    data = _raw_batch(body, count)
    with _Code(ErrorCode.INVALID_RECORD):
        kb.validate_batch(data)
    with _Code(ErrorCode.INVALID_RECORD):
        list(kb.iter_records(data))
    kb.validate_batch(data, check_records=False)  # header alone is fine


def test_minimal_record_accepted() -> None:
    data = _raw_batch(_record(b"\x00\x00\x00\x01\x01\x00"), 1)
    assert kb.validate_batch(data).record_count == 1
    assert list(kb.iter_records(data)) == [(0, T0, None, None, [])]


def test_every_single_byte_corruption_of_the_crc_area_is_detected() -> None:
    for data in (_small(), bytearray(_kafka_python(_sample(6), codecs.LZ4))):
        info = kb.validate_batch(data)
        for pos in range(kb.CRC_OFFSET, len(data)):
            for flip in range(1, 256):
                bad = bytearray(data)
                bad[pos] ^= flip
                with _Code(ErrorCode.CORRUPT_MESSAGE):
                    kb.validate_batch(bad)
        for pos in [*range(0, 8), *range(12, 16)]:  # baseOffset, leader epoch: not covered
            bad = bytearray(data)
            bad[pos] ^= 0xFF
            assert kb.validate_batch(bad) == info


def test_truncation_and_framing() -> None:
    one = bytes(_small())
    two = bytes(kb.build_batch([(T0, None, b"x" * 100, [])]))
    records = one + two + one
    assert kb.split_batches(records) == [(0, len(one)), (len(one), len(one) + len(two)),
                                         (len(one) + len(two), len(records))]
    assert kb.split_batches(b"") == []
    assert kb.peek_length(two) == len(two)
    for cut in range(1, len(records)):
        if cut in (len(one), len(one) + len(two)):
            continue
        with _Code(ErrorCode.CORRUPT_MESSAGE):
            kb.split_batches(records[:cut])
    for cut in range(len(one)):
        with pytest.raises(KafkaBatchError):
            kb.validate_batch(one[:cut])
    short = bytearray(one)
    struct.pack_into(">i", short, kb.LENGTH_OFFSET, 48)
    with _Code(ErrorCode.CORRUPT_MESSAGE):
        kb.split_batches(short)


@FAST
@given(st.binary(max_size=300))
def test_random_input_only_kafka_errors(data: bytes) -> None:
    for fn in (kb.split_batches, kb.validate_batch, lambda d: list(kb.iter_records(d))):
        try:
            fn(data)
        except KafkaBatchError:
            pass


@FAST
@given(st.sampled_from(CODECS), st.binary(max_size=200), st.integers(1, 5))
def test_random_records_with_valid_crc_only_kafka_errors(codec: int, body: bytes,
                                                         count: int) -> None:
    data = _raw_batch(body, count)
    data[kb.ATTRIBUTES_OFFSET + 1] = codec
    _recrc(data)
    for fn in (lambda d: kb.validate_batch(d, decompress=True),
               lambda d: list(kb.iter_records(d))):
        try:
            fn(data)
        except KafkaBatchError:
            pass


@FAST
@given(st.sampled_from(CODECS), st.binary(min_size=1, max_size=60), st.data())
def test_mutated_golden_only_kafka_errors(codec: int, noise: bytes, data: st.DataObject) -> None:
    batch = bytearray(_kafka_python(_sample(4), codec))
    pos = data.draw(st.integers(kb.HEADER_SIZE, len(batch) - 1))
    batch[pos : pos + len(noise)] = noise
    struct.pack_into(">i", batch, kb.LENGTH_OFFSET, len(batch) - 12)
    _recrc(batch)
    try:
        kb.validate_batch(batch, decompress=True)
        list(kb.iter_records(batch))
    except KafkaBatchError:
        pass


# --- stamping ---------------------------------------------------------------------------
@pytest.mark.parametrize("codec", [codecs.NONE, codecs.SNAPPY])
def test_stamp_keeps_crc_valid(codec: int) -> None:
    data = bytearray(_kafka_python(_sample(5), codec))
    crc = bytes(data[17:21])
    kb.stamp_batch(data, 2**40 + 3, partition_leader_epoch=9)
    assert bytes(data[17:21]) == crc  # base offset and epoch are outside the CRC
    fields = kb.batch_fields(data)
    assert (fields[0], fields[2]) == (2**40 + 3, 9)
    kb.validate_batch(data)
    kb.stamp_batch(memoryview(data), 7, log_append_time_ms=T0 + 999)
    info = kb.validate_batch(data)
    assert info.timestamp_type == kb.LOG_APPEND_TIME and info.max_timestamp == T0 + 999
    assert bytes(data[17:21]) != crc
    assert {r[1] for r in kb.iter_records(data)} == {T0 + 999}
    assert {r.timestamp for r in DefaultRecordBatch(data)} == {T0 + 999}
    again = bytearray(data)
    kb.stamp_batch(again, 7, log_append_time_ms=T0 + 999)
    assert again == data


def test_decompression_cap() -> None:
    data = _kafka_python([(T0, None, bytes(200_000), [])], codecs.GZIP)
    with _Code(ErrorCode.MESSAGE_TOO_LARGE):
        kb.validate_batch(data, decompress=True, limit=100_000)
    with _Code(ErrorCode.MESSAGE_TOO_LARGE):
        list(kb.iter_records(data, limit=100_000))
    kb.validate_batch(data, limit=100_000)  # not decompressed on the produce path
    assert len(list(kb.iter_records(data))[0][3]) == 200_000


def test_varints() -> None:
    for n in (0, 1, -1, 63, -64, 64, 300, -300, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)):
        out = bytearray()
        kb.put_varint(out, n)
        assert kb.read_varint(out, 0) == (n, len(out))
    out = bytearray()
    kb.put_varint(out, 300)
    assert out == b"\xd8\x04"  # zig-zag 600
