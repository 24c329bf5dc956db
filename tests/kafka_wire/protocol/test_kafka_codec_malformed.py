"""Bad input: truncation, random bytes, huge declared counts, bad varints/UTF-8/nulls, bad values.

Every decode either returns a value or raises `KafkaDecodeError`, quickly; never another type.
"""

from __future__ import annotations

import random
import struct
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyggy.kafka_wire.protocol import (
    MAX_REQUEST_ELEMENTS,
    KafkaDecodeError,
    KafkaEncodeError,
    UnsupportedVersionError,
    decode_data,
    decode_request,
    encode_request,
)
from pyggy.kafka_wire.protocol.codec import codec
from strategies import all_cases, message, sample_value

CASES = all_cases()
IDS = [f"{name}-v{v}" for name, _, v, _ in CASES]


@pytest.mark.parametrize(("name", "key", "version", "kind"), CASES, ids=IDS)
def test_every_truncation_fails(name: str, key: int, version: int, kind: Any) -> None:
    msg = message(name)
    c = codec(key, version, kind)
    value = sample_value(msg.fields, version, msg.is_flexible(version))
    raw = c.encode(value)
    assert c.decode(raw, strict=True) == value
    for cut in range(len(raw)):
        with pytest.raises(KafkaDecodeError):
            c.decode(raw[:cut])


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=st.sampled_from(CASES), blob=st.binary(max_size=64))
def test_random_bytes_decode_or_raise_decode_error(case: tuple, blob: bytes) -> None:
    _, key, version, kind = case
    try:
        value = codec(key, version, kind).decode(blob)
    except KafkaDecodeError:
        return
    assert isinstance(value, dict)


def test_mutated_valid_messages_decode_or_raise_decode_error() -> None:
    rng = random.Random(1)
    for _, key, version, kind in CASES:
        c = codec(key, version, kind)
        raw = bytearray(c.encode({}))
        for _ in range(20):
            mutated = bytearray(raw) + rng.randbytes(rng.randrange(4))
            for _ in range(rng.randrange(1, 4)):
                if mutated:
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                c.decode(mutated)
            except KafkaDecodeError:
                pass


def _fails_fast(key: int, version: int, body: bytes, kind: Any = "request") -> None:
    start = time.perf_counter()
    with pytest.raises(KafkaDecodeError, match="cannot fit"):
        codec(key, version, kind).decode(body)
    assert time.perf_counter() - start < 0.05


def test_huge_array_count_fails_fast() -> None:
    _fails_fast(3, 1, b"\x7f\xff\xff\xff" + b"\x00" * 10)  # Metadata v1 topics
    _fails_fast(3, 9, b"\x80\x80\x80\x80\x08" + b"\x00" * 10)  # compact count 2**31 - 1
    _fails_fast(1, 11, b"\x00\x00\x00\x00" + b"\x00" * 6 + b"\x7f\xff\xff\xff" + b"\x00" * 4,
                "response")  # fmt: skip  Fetch v11 responses
    _fails_fast(47, 0, bytes.fromhex("0001 67 00000001 0001 74 7fffffff"))  # OffsetDelete
    _fails_fast(17, 0, bytes.fromhex("0000 7fffffff") + b"\x00" * 12, "response")  # []str
    # []i32 inside a struct: 1e9 ints declared, 12 bytes present
    with pytest.raises(KafkaDecodeError, match="cannot fit"):
        decode_data("ConsumerProtocolAssignment", 0,
                    bytes.fromhex("00000001 0001 74 3b9aca00") + b"\x00" * 12)  # fmt: skip


def test_a_request_may_hold_at_most_max_request_elements() -> None:
    """Arrays that fit their bytes but unfold into too many objects: 2-byte empty topic names
    (Metadata v1), and Fetch v4 topics × partitions (the cap counts nested elements)."""
    n = MAX_REQUEST_ELEMENTS
    ok = decode_request(3, 1, struct.pack(">i", n) + b"\x00\x00" * n)
    assert len(ok["topics"]) == n
    with pytest.raises(KafkaDecodeError, match="more array elements"):
        decode_request(3, 1, struct.pack(">i", n + 1) + b"\x00\x00" * (n + 1))
    assert len(decode_request(3, 1, struct.pack(">i", n + 1) + b"\x00\x00" * (n + 1),
                              max_elements=None)["topics"]) == n + 1
    partition = struct.pack(">iqi", 0, 0, 1 << 20)  # Fetch v4: partition, offset, max bytes
    topics = 2
    per_topic = n // topics  # topics + topics × per_topic > n
    topic = b"\x00\x01t" + struct.pack(">i", per_topic) + partition * per_topic
    body = struct.pack(">iiiib", -1, 0, 0, 1 << 20, 0) + struct.pack(">i", topics) + topic * 2
    with pytest.raises(KafkaDecodeError, match="more array elements"):
        decode_request(1, 4, body)
    assert len(decode_request(1, 4, body, max_elements=n + topics)["topics"]) == topics


def test_huge_string_and_bytes_lengths_fail() -> None:
    with pytest.raises(KafkaDecodeError, match="truncated"):
        decode_request(12, 0, b"\x7f\xff" + b"g" * 10)  # Heartbeat group_id
    with pytest.raises(KafkaDecodeError, match="truncated"):
        decode_request(36, 0, b"\x7f\xff\xff\xff" + b"a" * 10)  # SaslAuthenticate auth_bytes
    with pytest.raises(KafkaDecodeError, match="truncated"):
        decode_request(36, 2, b"\xff\xff\xff\xff\x0f" + b"a" * 10)  # compact, 2**32 - 2 bytes
    with pytest.raises(KafkaDecodeError, match="truncated"):  # records
        decode_request(0, 3, bytes.fromhex("ffff 0001 00000000 00000001 0001 74 00000001 "
                                           "00000000 7fffffff") + b"r" * 8)  # fmt: skip


def test_varint_longer_than_five_bytes() -> None:
    with pytest.raises(KafkaDecodeError, match="varint"):
        decode_request(36, 2, b"\x80\x80\x80\x80\x80\x01")


def test_bad_utf8_and_unexpected_nulls() -> None:
    with pytest.raises(KafkaDecodeError, match="UTF-8"):
        decode_request(17, 0, b"\x00\x02\xff\xfe")
    with pytest.raises(KafkaDecodeError, match="null"):
        decode_request(17, 0, b"\xff\xff")  # non-nullable string
    with pytest.raises(KafkaDecodeError, match="null"):
        decode_request(3, 0, b"\xff\xff\xff\xff")  # Metadata v0 topics are not nullable
    assert decode_request(3, 1, b"\xff\xff\xff\xff")["topics"] is None  # v1+: null = all


def test_tag_buffer_bounds() -> None:
    c = codec(12, 4, "response")
    with pytest.raises(KafkaDecodeError):  # a tag whose size runs past the end
        c.decode(bytes.fromhex("00000000 0000 01 05 7f 00"))
    with pytest.raises(KafkaDecodeError, match="cannot fit"):  # 2**28 tags
        c.decode(bytes.fromhex("00000000 0000 8080808001 0000"))


def test_trailing_bytes_only_rejected_when_strict() -> None:
    body = bytes.fromhex("0001 67 00000000 0001 6d")  # Heartbeat v0 + 1 stray byte
    assert decode_request(12, 0, body + b"!")["member_id"] == "m"
    with pytest.raises(KafkaDecodeError, match="trailing"):
        decode_request(12, 0, body + b"!", strict=True)


def test_unsupported_versions() -> None:
    for key, version in ((0, 13), (1, 3), (2, 0), (99, 0), (18, 5)):
        with pytest.raises(UnsupportedVersionError):
            decode_request(key, version, b"")
    assert issubclass(UnsupportedVersionError, KafkaDecodeError)


@pytest.mark.parametrize("value", [
    {"group_id": None},  # None for a non-nullable string
    {"generation_id": 2**31},  # out of INT32 range
    {"group_id": 5},  # wrong type
    {"group_id": "x" * 40000},  # longer than an INT16 length allows
])  # fmt: skip
def test_bad_values_raise_encode_error(value: dict) -> None:
    with pytest.raises(KafkaEncodeError):
        encode_request(12, 0, value)


def test_bad_array_and_bytes_values() -> None:
    with pytest.raises(KafkaEncodeError):
        encode_request(3, 0, {"topics": None})  # not nullable in v0
    with pytest.raises(KafkaEncodeError):
        encode_request(36, 0, {"auth_bytes": "text"})
    with pytest.raises(KafkaEncodeError):
        encode_request(3, 10, {"topics": [{"topic_id": b"short", "name": "t"}]})
