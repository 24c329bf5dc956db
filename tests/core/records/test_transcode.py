"""Record mapping Kafka ↔ Iggy: the documented forms, and round trips both ways."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch
from pyggy.core.records import compression as codecs
from pyggy.core.records import iggy_batch as ib
from pyggy.core.records import kafka_batch as kb
from pyggy.core.records import transcode as tc
from pyggy.core.records import user_headers as uh
from pyggy.core.records.kafka_batch import KafkaBatchError
from pyggy.core.records.kafka_errors import ErrorCode

FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GOLDEN = Path(__file__).parent / "golden"
T0 = 1_795_717_532_295  # ms
RESERVED = [b"kafka.key", b"kafka.value", b"kafka.timestamp", b"kafka.envelope",
            b"kafka.exact.0", b"kafka.exact.1", b"iggy.headers"]


def _messages(data: bytes | bytearray) -> list[tuple]:
    """(offset, id, origin, payload, user headers) of every message in kafka_to_iggy output."""
    out = []
    for part in tc.split_iggy(data):
        ib.validate_batch(part)
        out += [(m[0], m[3], m[2], bytes(m[4]), bytes(m[5])) for m in ib.iter_messages(part)]
    return out


def _one(key: bytes | None, value: bytes | None, headers: list, ts: int = T0) -> tuple:
    (msg,) = _messages(tc.kafka_to_iggy(kb.build_batch([(ts, key, value, headers)], 7)))
    return msg


def _tlv(*entries: tuple[int, bytes, int, bytes]) -> bytes:
    return uh.encode(entries)


S, R = uh.STRING, uh.RAW


# --- the documented forms ---------------------------------------------------------------
def test_direct_form() -> None:
    msg = _one(b"user-1", b"hello", [("trace", b"abc"), ("n", b"1")])
    assert msg == (7, 7, T0 * 1000, b"hello", _tlv((S, b"kafka.key", R, b"user-1"),
                                                   (S, b"trace", R, b"abc"), (S, b"n", R, b"1")))
    assert _one(None, b"v", [])[3:] == (b"v", b"")


def test_tombstone_and_empty_value() -> None:
    assert _one(b"k", None, [])[3:] == (b"\x00", _tlv((S, b"kafka.value", S, b"null"),
                                                      (S, b"kafka.key", R, b"k")))
    assert _one(None, b"", [])[3:] == (b"\x00", _tlv((S, b"kafka.value", S, b"empty")))
    assert _one(None, b"\x00", [])[3:] == (b"\x00", b"")  # a real 00 value: no header


def test_exact_form() -> None:
    headers = [("a", b"1"), ("a", b"2"), ("n", None), ("kafka.key", b"x")]
    _, _, _, payload, tlv = _one(b"k", b"v", headers)
    blob = bytearray()
    tc._put(blob, b"k")
    kb.put_varint(blob, 4)
    for k, v in headers:
        tc._put(blob, k.encode())
        tc._put(blob, v)
    assert payload == b"v"
    assert uh.decode(tlv) == [(S, b"kafka.key", R, b"k"), (S, b"a", R, b"2"),
                              (S, b"kafka.exact.0", R, bytes(blob))]
    long_key = b"K" * 600
    entries = uh.decode(_one(long_key, b"v", [])[4])
    assert [e[1] for e in entries] == [b"kafka.exact.0", b"kafka.exact.1", b"kafka.exact.2"]
    assert [len(e[3]) for e in entries] == [255, 255, 93]


def test_envelope_form() -> None:
    headers = [(f"h{i}", b"x" * 255) for i in range(400)]  # > 100 000 B of user headers
    _, _, _, payload, tlv = _one(b"k", b"value", headers)
    assert tlv == _tlv((S, b"kafka.envelope", S, b"1"))
    key, value, got = tc._parse_fields(payload, with_value=True)
    assert (key, value, got) == (b"k", b"value", [(k.encode(), v) for k, v in headers])


def test_timestamps() -> None:
    _, _, origin, _, tlv = _one(None, b"v", [], ts=-1)
    assert origin == 0 and tlv == _tlv((S, b"kafka.timestamp", uh.INT64, struct.pack("<q", -1)))
    # timestamps further apart than a u32 µs delta: consecutive Iggy batches
    data = kb.build_batch([(T0, None, b"a", []), (T0 + 1, None, b"b", []),
                           (T0 + 5_000_000, None, b"c", []), (T0 + 2, None, b"d", [])], 40)
    out = tc.kafka_to_iggy(data, partition_id=3, timestamp_us=99)
    parts = tc.split_iggy(out)
    assert [ib.batch_fields(p)[:3] for p in parts] == [(3, 40, 99), (3, 42, 99), (3, 43, 99)]
    assert [m[0] for m in _messages(out)] == [40, 41, 42, 43]


def test_log_append_time_is_what_kafka_consumers_see() -> None:
    data = kb.build_batch([(T0, None, b"a", []), (T0 + 1, None, b"b", [])])
    kb.stamp_batch(data, 0, log_append_time_ms=T0 + 777)
    out = tc.kafka_to_iggy(data)
    assert ib.batch_fields(out)[2] == (T0 + 777) * 1000  # append time by default
    assert {m[2] for m in _messages(out)} == {(T0 + 777) * 1000}


def test_control_batch_maps_to_nothing() -> None:
    assert tc.kafka_to_iggy(kb.build_control_batch(False, 1, 0, 0, T0)) == b""


def test_value_too_big_for_iggy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ib, "MAX_PAYLOAD_SIZE", 100)
    with pytest.raises(KafkaBatchError) as e:
        tc.kafka_to_iggy(kb.build_batch([(T0, None, b"x" * 101, [])]))
    assert e.value.code == ErrorCode.MESSAGE_TOO_LARGE


def test_iggy_sdk_headers_render_as_text_with_marker() -> None:
    golden = (GOLDEN / "sdk_0_9_0_send_batch.bin").read_bytes()  # real 0.9.0 SDK batch
    stamped = bytearray(golden)
    ib.stamp_batch(stamped, 1, 500, 123)
    kafka = tc.iggy_to_kafka(stamped)
    records = [(r.offset, r.key, r.value, r.headers) for r in DefaultRecordBatch(kafka)]
    tlv = bytes.fromhex("02010000006b02010000007602010000006e090100000005")
    assert records[0] == (500, None, b"hello", [("k", b"v"), ("n", b"5"), ("iggy.headers", tlv)])
    assert [r[0] for r in records] == [500, 501, 502]
    back = _messages(tc.kafka_to_iggy(kafka))
    assert [(m[0], m[3], m[4]) for m in back] == [
        (m[0], bytes(m[4]), bytes(m[5])) for m in ib.iter_messages(stamped)]


@pytest.mark.parametrize("kind, data, text", [
    (uh.BOOL, b"\x01", b"true"), (uh.BOOL, b"\x00", b"false"),
    (uh.INT8, b"\xff", b"-1"), (uh.UINT16, b"\xff\xff", b"65535"),
    (uh.INT64, struct.pack("<q", -(2**63)), b"-9223372036854775808"),
    (uh.UINT128, b"\xff" * 16, str(2**128 - 1).encode()),
    (uh.FLOAT32, struct.pack("<f", 0.1), b"0.1"), (uh.FLOAT32, struct.pack("<f", 100), b"100.0"),
    (uh.FLOAT64, struct.pack("<d", 1.5), b"1.5"), (uh.FLOAT64, struct.pack("<d", -0.0), b"-0.0"),
    (uh.FLOAT64, struct.pack("<d", float("nan")), b"NaN"),
    (uh.FLOAT32, struct.pack("<f", float("-inf")), b"-Infinity"),
    (uh.INT32, b"\x01\x02", b"\x01\x02"),  # wrong width: as stored
    (uh.RAW, b"\x00\xff", b"\x00\xff"), (uh.STRING, "é".encode(), "é".encode()),
])
def test_text_forms(kind: int, data: bytes, text: bytes) -> None:
    assert uh.text(kind, data) == text


def test_iggy_producer_sets_kafka_key_and_tombstone() -> None:
    tlv = _tlv((S, b"kafka.key", S, b"user-9"), (S, b"kafka.value", S, b"null"),
               (S, b"n", uh.UINT8, b"\x05"))
    batch = ib.build_batch([(1, b"\x00", tlv, T0 * 1000 + 123)])
    (record,) = kb.iter_records(tc.iggy_to_kafka(batch))
    assert record == (0, T0, b"user-9", None, [("n", b"5"), ("iggy.headers", tlv)])


# --- round trips ------------------------------------------------------------------------
names = st.one_of(st.sampled_from([b"a", b"b", b"trace", b"", b"x" * 256, "é".encode(),
                                   b"\xff\xfe", *RESERVED]), st.binary(max_size=6))
blobs = st.one_of(st.none(), st.binary(max_size=12), st.just(b""),
                  st.binary(min_size=250, max_size=300))
entries = st.tuples(st.integers(1, 15), st.one_of(st.sampled_from(RESERVED),
                                                  st.binary(min_size=1, max_size=8)),
                    st.integers(1, 15), st.one_of(st.sampled_from([b"null", b"empty", b"1"]),
                                                  st.binary(min_size=1, max_size=9)))
tlvs = st.lists(entries, max_size=4).map(lambda e: uh.encode(e))
headers = st.lists(st.tuples(names, blobs), max_size=5)
marked = st.tuples(headers, tlvs).map(lambda h: [*h[0], (b"iggy.headers", h[1])])
timestamps = st.one_of(st.integers(T0, T0 + 10_000_000), st.just(-1), st.just(0),
                       st.integers(-(2**61), 2**61))
records = st.lists(st.tuples(timestamps, blobs, blobs, st.one_of(headers, marked)),
                   min_size=1, max_size=5)


@FAST
@given(records, st.integers(0, 2**40), st.sampled_from([0, 0, 0, 1, 2, 3, 4]), st.booleans())
def test_kafka_iggy_kafka_is_exact(recs: list, base: int, codec: int, append_time: bool) -> None:
    data = kb.build_batch(recs, base, codec)
    if append_time:
        kb.stamp_batch(data, base, log_append_time_ms=T0 + 5)
    original = list(kb.iter_records(data))
    iggy = tc.kafka_to_iggy(data)
    msgs = _messages(iggy)
    assert [m[0] for m in msgs] == [r[0] for r in original]  # Iggy offset = Kafka offset
    assert [m[1] for m in msgs] == [r[0] for r in original]  # id = offset
    for (_, ts, _, value, _), m in zip(original, msgs, strict=True):
        if 0 <= ts <= tc.MAX_TIMESTAMP_MS:
            assert m[2] == ts * 1000
        if value and b"kafka.envelope" not in m[4]:
            assert m[3] == value
    back = []
    for part in tc.split_iggy(iggy):
        kafka = tc.iggy_to_kafka(part)
        kb.validate_batch(kafka)
        back += list(kb.iter_records(kafka))
    assert back == original


messages = st.lists(st.tuples(st.one_of(st.binary(min_size=1, max_size=30), st.just(b"\x00")),
                              tlvs, st.integers(T0 * 1000, T0 * 1000 + 2**32 - 1)),
                    min_size=1, max_size=5)


@FAST
@given(messages, st.integers(0, 2**40), st.booleans())
def test_iggy_kafka_iggy_keeps_payload_headers_offset_timestamp(msgs: list, base: int,
                                                                sliced: bool) -> None:
    batch = ib.build_batch([(i + 1, p, h, ts) for i, (p, h, ts) in enumerate(msgs)],
                           base_offset=base, partition_id=1, base_timestamp=5)
    if sliced:
        batch = ib.slice_batch(batch, base + len(msgs) // 2, 100)
    original = list(ib.iter_messages(batch))
    kafka = tc.iggy_to_kafka(batch)
    kb.validate_batch(kafka)
    assert kb.batch_fields(kafka)[0] == original[0][0]
    assert len(list(DefaultRecordBatch(kafka))) == len(original)  # a real client reads it
    again = _messages(tc.kafka_to_iggy(kafka))
    assert [(m[0], m[3], m[4], m[2]) for m in again] == [
        (m[0], bytes(m[4]), bytes(m[5]), m[2] // 1000 * 1000) for m in original]


@FAST
@given(records.map(lambda r: r[0]), st.integers(0, 6), st.integers(1, 15), entries,
       st.booleans())
def test_near_miss_messages_round_trip(record: tuple, pos: int, kind: int, extra: tuple,
                                       placeholder: bool) -> None:
    """Messages one edit away from a mapped record (kind changed, entry added, order
    reversed, payload 00) are not mistaken for it: Iggy → Kafka → Iggy stays exact."""
    ts, key, value, hdrs = record
    payload, tlv, origin = tc.record_to_message(key, value, hdrs, ts)
    found = uh.decode(tlv)
    if found and pos < 4:
        kk, k, _, v = found[pos % len(found)]
        found[pos % len(found)] = (kk, k, kind, v)
    elif pos == 4:
        found.append(extra)
    elif pos == 5:
        found.reverse()
    payload = b"\x00" if placeholder else payload
    tlv = uh.encode(found)
    origin = origin or T0 * 1000 + 7
    kafka = tc.iggy_to_kafka(ib.build_batch([(1, payload, tlv, origin)], base_offset=3))
    again = _messages(tc.kafka_to_iggy(kafka))
    assert [(m[0], m[3], m[4], m[2]) for m in again] == [(3, payload, tlv, origin // 1000 * 1000)]


@pytest.mark.parametrize("codec", [codecs.GZIP, codecs.SNAPPY, codecs.LZ4, codecs.ZSTD])
def test_compressed_kafka_batches_transcode(codec: int) -> None:
    recs = [(T0 + i, b"k%d" % i, b"value %d" % i * 20, [("h", b"x")]) for i in range(50)]
    data = kb.build_batch(recs, 10, codec)
    msgs = _messages(tc.kafka_to_iggy(data))
    assert [m[3] for m in msgs] == [r[2] for r in recs]
    back = kb.iter_records(tc.iggy_to_kafka(tc.kafka_to_iggy(data)))
    assert [r[1:] for r in back] == [(ts, k, v, h) for ts, k, v, h in recs]
