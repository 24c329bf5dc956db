"""Framing, request/response headers, and golden frames captured from real clients."""

from __future__ import annotations

import pytest
from pyggy.kafka_wire.protocol import (
    FrameError,
    KafkaDecodeError,
    RequestHeader,
    decode_request,
    encode_request,
    encode_response_header,
    frame_length,
    parse_request_header,
    parse_response_header,
    request_frame,
    request_header_version,
    response_frame,
    response_header_version,
)

# librdkafka 2.16.0 (confluent-kafka 2.16.1), client.id=rdkafka, captured on a socket.
RDK_API_VERSIONS_V3 = bytes.fromhex(
    "000000400012000300000001000772646b61666b610017636f6e666c75656e742d6b61666b612d707974686f"
    "6e16322e31362e312d72646b61666b612d322e31362e3000"
)
RDK_METADATA_V12 = bytes.fromhex(
    "000000290003000c00000002000772646b61666b61000200000000000000000000000000000000027400010000"
)
RDK_PRODUCE_V10 = bytes.fromhex(
    "0000006f0000000a00000002000772646b61666b610000ffff0000753002027402000000004b000000000000"
    "00000000003e000000000236ff4dc30000000000000000018bcfe568000000018bcfe56800ffffffffffffff"
    "ffffffffffffff0000000118000000026b0a68656c6c6f00000000"
)
# kafka-python 3.0.12: MetadataRequest v1 for topic "test", correlation id 7.
KP_METADATA_V1 = bytes.fromhex(
    "000000200003000100000007000c6b61666b612d707974686f6e00000001000474657374"
)


def _split(frame: bytes) -> tuple[RequestHeader, dict]:
    n = frame_length(frame, 1 << 20)
    assert n == len(frame)
    header, off = parse_request_header(memoryview(frame)[4:n])
    return header, decode_request(header.api_key, header.api_version, frame[4 + off :],
                                  strict=True)  # fmt: skip


def _reencode(header: RequestHeader, body: dict) -> bytes:
    return request_frame(header.api_key, header.api_version, header.correlation_id,
                         header.client_id, body)  # fmt: skip


def test_librdkafka_api_versions_v3() -> None:
    header, body = _split(RDK_API_VERSIONS_V3)
    assert header == RequestHeader(18, 3, 1, "rdkafka", 2)
    assert body == {"client_software_name": "confluent-kafka-python",
                    "client_software_version": "2.16.1-rdkafka-2.16.0"}  # fmt: skip
    assert _reencode(header, body) == RDK_API_VERSIONS_V3


def test_librdkafka_metadata_v12() -> None:
    header, body = _split(RDK_METADATA_V12)
    assert header == RequestHeader(3, 12, 2, "rdkafka", 2)
    assert [t["name"] for t in body["topics"]] == ["t"]
    assert body["topics"][0]["topic_id"].int == 0
    assert body["allow_auto_topic_creation"] is True
    assert _reencode(header, body) == RDK_METADATA_V12


def test_librdkafka_produce_v10() -> None:
    header, body = _split(RDK_PRODUCE_V10)
    assert (header.api_key, header.api_version, header.header_version) == (0, 10, 2)
    assert body["transactional_id"] is None and body["acks"] == -1
    part = body["topic_data"][0]["partition_data"][0]
    assert body["topic_data"][0]["name"] == "t" and part["index"] == 0
    records = part["records"]
    assert isinstance(records, memoryview) and len(records) == 74
    assert records[16] == 2  # RecordBatch magic
    assert bytes(records).endswith(b"k\x0ahello\x00")
    assert _reencode(header, body) == RDK_PRODUCE_V10


def test_kafka_python_metadata_v1() -> None:
    header, body = _split(KP_METADATA_V1)
    assert header == RequestHeader(3, 1, 7, "kafka-python", 1)
    assert body["topics"] == [{"topic_id": body["topics"][0]["topic_id"], "name": "test"}]
    assert _reencode(header, body) == KP_METADATA_V1
    assert encode_request(3, 1, {"topics": [{"name": "test"}]}) == bytes.fromhex(
        "00000001 0004 74657374"
    )


def test_frame_length() -> None:
    frame = b"\x00\x00\x00\x03abc"
    assert frame_length(b"", 10) == 0
    assert frame_length(frame[:3], 10) == 0
    assert frame_length(frame[:6], 10) == 0
    assert frame_length(frame, 10) == 7
    assert frame_length(frame + b"\x00\x00", 10) == 7
    assert frame_length(b"xx" + frame, 10, offset=2) == 7
    with pytest.raises(FrameError):  # too big: known from the prefix alone
        frame_length(b"\x00\x00\x00\x0b", 10)
    with pytest.raises(FrameError):
        frame_length(b"\xff\xff\xff\xfe", 10)
    assert issubclass(FrameError, KafkaDecodeError)


def test_header_versions() -> None:
    assert request_header_version(0, 8) == 1 and request_header_version(0, 9) == 2
    assert request_header_version(18, 3) == 2
    assert request_header_version(18, 9) == 2  # unknown newer ApiVersions is still flexible
    assert request_header_version(17, 1) == 1  # SaslHandshake never flexible
    assert request_header_version(999, 5) == 1  # unknown API
    assert response_header_version(18, 3) == 0  # ApiVersions: always v0
    assert response_header_version(3, 9) == 1 and response_header_version(3, 8) == 0
    assert encode_response_header(18, 4, 5) == b"\x00\x00\x00\x05"
    assert encode_response_header(12, 4, 5) == b"\x00\x00\x00\x05\x00"


def test_request_header_null_client_id_and_tags() -> None:
    frame = bytes.fromhex("000c 0004 00000009 ffff 02 0102aabb 0500") + b"BODY"
    header, off = parse_request_header(frame)
    assert header == RequestHeader(12, 4, 9, None, 2)
    assert frame[off:] == b"BODY"


@pytest.mark.parametrize("frame", [
    b"", bytes.fromhex("0003 0001 0000"), bytes.fromhex("0003 0001 00000001 0005 6162"),
    bytes.fromhex("0003 0009 00000001 0001 61"),  # v2 header without its tag buffer
    bytes.fromhex("0003 0009 00000001 0001 61 05"),
    bytes.fromhex("0003 0001 00000001 0002 fffe"),
])  # fmt: skip
def test_bad_request_headers(frame: bytes) -> None:
    with pytest.raises(KafkaDecodeError):
        parse_request_header(frame)


def test_response_frames() -> None:
    value = {"throttle_time_ms": 1, "error_code": 27}
    frame = b"".join(response_frame(12, 4, 77, value))
    assert frame == bytes.fromhex("0000000c 0000004d 00 00000001 001b 00")
    assert parse_response_header(frame[4:], 12, 4) == (77, 5)
    av = b"".join(response_frame(18, 3, 1, {"api_keys": []}))
    assert av[4:8] == b"\x00\x00\x00\x01" and av[8:10] == b"\x00\x00"  # no header tag buffer
    assert parse_response_header(av[4:], 18, 3) == (1, 4)
    with pytest.raises(KafkaDecodeError):
        parse_response_header(b"\x00\x00", 12, 4)
