"""VSR/classic framing, result sections, protocol detection and frame splitting."""

from __future__ import annotations

import struct

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.errors import ErrorCode
from pyggy.native_wire.codec import frames as f
from pyggy.native_wire.codec.codes import Code, EvictionReason, Operation
from pyggy.native_wire.codec.reader import WireError

CLIENT = (0xDEADBEEF << 64) | 0x1234


def request(operation: int, body: bytes = b"", *, client: int = CLIENT, session: int = 7,
            request_no: int = 3, code: int = 0, checksum: int | None = None,
            command: int = 5, size: int | None = None) -> bytes:
    """A RequestHeader built field by field at the offsets of Iggy's framing page."""
    h = bytearray(256)
    struct.pack_into("<I", h, 48, 256 + len(body) if size is None else size)
    h[60] = command
    struct.pack_into("<QQ", h, 128, client & (2**64 - 1), client >> 64)
    k = xxhash.xxh3_64_intdigest(body) if checksum is None else checksum
    struct.pack_into("<QQ", h, 144, k & (2**64 - 1), k >> 64)
    struct.pack_into("<QQ", h, 160, 0, request_no)
    h[176] = operation
    struct.pack_into("<QI", h, 184, session, 0)
    struct.pack_into("<I", h, 196, code)
    return bytes(h) + body


def test_parse_non_replicated_header() -> None:
    raw = request(Operation.NON_REPLICATED, b"\x01\x04\x00\x00\x00\x00", code=Code.GET_USER,
                  checksum=0)
    h = f.parse_request_header(raw)
    assert (h.client, h.operation, h.session, h.request) == (CLIENT, 2, 7, 3)
    assert h.command_code == Code.GET_USER
    assert (h.size, h.body_size, h.command, h.request_checksum) == (262, 6, 5, 0)
    f.verify_request_checksum(h, raw[256:])


def test_pre_login_ping_has_session_zero() -> None:
    h = f.parse_request_header(request(2, session=0, request_no=1, code=1, checksum=0))
    assert h.command_code == Code.PING and h.session == 0


def test_replicated_operation_maps_to_command_code() -> None:
    h = f.parse_request_header(request(Operation.CREATE_STREAM, b"\x02s1", code=999))
    assert h.command_code == Code.CREATE_STREAM
    h = f.parse_request_header(request(Operation.SEND_MESSAGES, b"x", checksum=0))
    assert h.command_code == Code.SEND_MESSAGES
    h = f.parse_request_header(request(Operation.REGISTER, b"x", session=0, request_no=0))
    assert h.command_code == Code.LOGIN_REGISTER
    h = f.parse_request_header(request(Operation.LOGOUT))
    assert h.command_code == Code.LOGOUT_USER


@pytest.mark.parametrize("kwargs", [
    {"command": 8}, {"size": 255}, {"client": 0}, {"operation": 0},
    {"operation": 1, "session": 1, "request_no": 0},
    {"operation": 1, "session": 0, "request_no": 1},
    {"operation": 128, "session": 0}, {"operation": 128, "request_no": 0},
    {"operation": 161, "session": 0},
])
def test_header_validation(kwargs: dict) -> None:
    operation = kwargs.pop("operation", 2)
    with pytest.raises(WireError):
        f.parse_request_header(request(operation, **kwargs))


def test_short_header() -> None:
    with pytest.raises(WireError):
        f.parse_request_header(request(2)[:255])


def test_checksum_verification() -> None:
    raw = request(Operation.CREATE_STREAM, b"\x02s1")
    h = f.parse_request_header(raw)
    f.verify_request_checksum(h, raw[256:])
    with pytest.raises(WireError) as e:
        f.verify_request_checksum(h, b"\x02s2")
    assert e.value.code == ErrorCode.INVALID_FORMAT
    f.verify_request_checksum(f.parse_request_header(request(160, b"x", checksum=0)), b"y")


def test_reply_header_fields() -> None:
    h = f.parse_request_header(request(Operation.CREATE_STREAM, b"\x02s1", request_no=9))
    body = f.result_ok(b"payload")
    raw = f.build_reply(h, 0, body, session_op=42)
    assert len(raw) == 256 + len(body) and raw[256:] == body
    assert struct.unpack_from("<I", raw, 48)[0] == 256 + len(body)
    assert raw[60] == 8
    k = struct.unpack_from("<QQ", raw, 128)
    assert k[0] | (k[1] << 64) == h.request_checksum != 0
    c = struct.unpack_from("<QQ", raw, 160)
    assert c[0] | (c[1] << 64) == CLIENT
    assert struct.unpack_from("<Q", raw, 176)[0] == 42
    assert struct.unpack_from("<Q", raw, 200)[0] == 9
    assert raw[208] == Operation.CREATE_STREAM
    assert struct.unpack_from("<I", raw, 216)[0] == 0
    untouched = raw[:48] + raw[52:60] + raw[61:128] + raw[144:160] + raw[184:192] + raw[209:216]
    assert untouched == bytes(len(untouched)) and raw[220:256] == bytes(36)


def test_error_reply_drops_body() -> None:
    h = f.parse_request_header(request(2, code=10, checksum=0))
    raw = f.build_reply(h, ErrorCode.UNAUTHENTICATED, b"ignored")
    assert len(raw) == 256 and struct.unpack_from("<I", raw, 216)[0] == 40
    assert f.build_reply_header(h, 0, 10, 1)[48:52] == struct.pack("<I", 266)


def test_eviction() -> None:
    raw = f.build_eviction(CLIENT, EvictionReason.INVALID_CREDENTIALS)
    assert len(raw) == 256 and raw[60] == 13 and raw[255] == 9
    assert struct.unpack_from("<I", raw, 48)[0] == 256
    c = struct.unpack_from("<QQ", raw, 128)
    assert c[0] | (c[1] << 64) == CLIENT
    assert raw[144:255] == bytes(111)
    raw = f.build_eviction(CLIENT, 14, 11264, 11264)
    assert struct.unpack_from("<II", raw, 144) == (11264, 11264) and raw[255] == 14


def test_result_section() -> None:
    assert f.result_ok() == b"\x00\x00\x00\x00"
    assert f.result_ok(b"ab") == b"\x00\x00\x00\x00ab"
    assert f.result_error(1009) == struct.pack("<III", 1, 0, 1009)
    framed = {op for op in range(256) if f.is_result_framed(op)}
    assert framed == set(range(64, 150)) | {161, 162}


def test_detect_protocol() -> None:
    assert f.detect_protocol(request(2)[:4]) == "vsr"
    assert f.detect_protocol(f.build_classic_request(1)[:4]) == "classic"
    with pytest.raises(WireError):
        f.detect_protocol(b"\x00")


def test_vsr_splitter_incremental() -> None:
    frame = request(Operation.CREATE_STREAM, b"\x02s1")
    stream = frame + request(2, code=1, checksum=0)
    for i in range(len(frame)):
        assert f.vsr_frame_length(stream[:i]) == 0
    assert f.vsr_frame_length(stream) == len(frame)
    assert f.frame_length(memoryview(stream)[len(frame):], "vsr") == 256


def test_vsr_splitter_refuses_oversized_before_body() -> None:
    head = bytearray(request(2)[:52])
    struct.pack_into("<I", head, 48, 64 * 1024 * 1024 + 1)
    with pytest.raises(WireError):
        f.vsr_frame_length(head)
    struct.pack_into("<I", head, 48, 10_000)
    with pytest.raises(WireError):
        f.vsr_frame_length(head, max_size=4096)
    assert f.vsr_frame_length(head, max_size=10_000) == 0
    struct.pack_into("<I", head, 48, 100)
    with pytest.raises(WireError):
        f.vsr_frame_length(head)


def test_classic_framing() -> None:
    req = f.build_classic_request(Code.GET_STREAM, b"\x01\x04\x00\x00\x00\x00")
    assert req[:8] == struct.pack("<II", 10, 200)
    for i in range(len(req)):
        assert f.classic_frame_length(req[:i]) == 0
    assert f.classic_frame_length(req + b"more") == len(req)
    code, payload = f.parse_classic_request(req)
    assert code == 200 and bytes(payload) == req[8:]
    with pytest.raises(WireError):
        f.parse_classic_request(req[:-1])
    with pytest.raises(WireError):
        f.classic_frame_length(struct.pack("<I", 3))
    with pytest.raises(WireError):
        f.frame_length(struct.pack("<I", 5000), "classic", max_size=4096)
    assert f.build_classic_response(0, b"abc") == struct.pack("<II", 0, 3) + b"abc"
    assert f.build_classic_response(1009, b"abc") == struct.pack("<II", 1009, 0)
    assert f.build_classic_response_header(0, 9) == struct.pack("<II", 0, 9)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_random_bytes(data: bytes) -> None:
    for fn in (f.parse_request_header, f.vsr_frame_length, f.classic_frame_length,
               f.parse_classic_request, f.detect_protocol):
        try:
            fn(data)
        except WireError:
            pass
