"""Iggy 0.11 batch view: build/validate/stamp/slice/iterate, corruption, classic frames."""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyggy.core.errors import ErrorCode
from pyggy.core.records import iggy_batch as ib

GOLDEN = Path(__file__).parent / "golden"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = 1_795_717_532_295_762

message = st.tuples(
    st.integers(0, 2**128 - 1),
    st.binary(min_size=1, max_size=40),
    st.binary(max_size=20),
    st.integers(T0, T0 + 2**32 - 1),
)
messages = st.lists(message, min_size=1, max_size=8)


def _frame(
    payload: bytes,
    *,
    user_headers: bytes = b"",
    msg_id: int = 1,
    offset_delta: int = 0,
    timestamp_delta: int = 0,
    payload_length: int | None = None,
    user_headers_length: int | None = None,
    reserved: int = 0,
) -> bytes:
    """A frame with arbitrary header fields and a correct checksum."""
    pl = len(payload) if payload_length is None else payload_length
    uh = len(user_headers) if user_headers_length is None else user_headers_length
    body = struct.pack("<QQIIIIQ", msg_id, 0, offset_delta, timestamp_delta, uh, pl, reserved)
    body += payload + user_headers
    return struct.pack("<Q", xxhash.xxh3_64_intdigest(body)) + body


def _raw_batch(frames: list[bytes], count: int | None = None, origin: int = T0) -> bytearray:
    """A batch of raw frames with a correct batch checksum (computed here independently)."""
    blob = b"".join(frames)
    n = len(frames) if count is None else count
    out = bytearray(struct.pack("<QQQQQQI", 0, 0, 0, origin, 256 + len(blob), 0, n))
    out += bytes(256 - len(out)) + blob
    h = xxhash.xxh3_64()
    h.update(out[0:40])
    h.update(out[48:52])
    pos = 256
    while pos < len(out):
        uh, pl = struct.unpack_from("<II", out, pos + 32)
        h.update(out[pos : pos + 8])
        pos += 48 + uh + pl
    struct.pack_into("<Q", out, 40, h.intdigest())
    return out


def _code(fn, *args, **kwargs) -> int:
    with pytest.raises(ib.BatchError) as exc:
        fn(*args, **kwargs)
    return exc.value.code


def _sample() -> bytearray:
    return ib.build_batch(
        [(42, b"hello", b"\x02\x01\x00\x00\x00k\x02\x01\x00\x00\x00v", T0 + 5),
         (7, b"world!", b"", T0),
         (2**127 + 3, b"xyz", b"\x01\x01\x00\x00\x00a", T0 + 9)]
    )


# --- round trip -------------------------------------------------------------------------


@FAST
@given(messages, st.integers(0, 2**32), st.integers(0, 2**40), st.integers(0, 2**60))
def test_build_validate_stamp_iterate(msgs, partition, base, ts):
    batch = ib.build_batch(msgs)
    origin = min(m[3] for m in msgs)
    info = ib.validate_batch(batch, expected_count=len(msgs))
    assert info[:5] == (len(msgs), len(batch), origin, max(m[3] for m in msgs), 0)
    assert len(info.frame_sums) == 8 * len(msgs)  # the frames' checksums, for stamping
    frames_before = bytes(batch[256:])
    ib.stamp_batch(batch, partition, base, ts)
    assert bytes(batch[256:]) == frames_before  # frame checksums do not cover stamped fields
    assert ib.validate_batch(memoryview(batch)) == info
    assert ib.batch_fields(batch) == (partition, base, ts, origin, len(batch), len(msgs))
    assert ib.batch_offsets(batch) == (base, base + len(msgs) - 1)
    got = [(o, t, ot, i, bytes(p), bytes(h)) for o, t, ot, i, p, h in ib.iter_messages(batch)]
    assert got == [(base + k, ts, m[3], m[0], m[1], m[2]) for k, m in enumerate(msgs)]


def test_validate_accepts_view_into_larger_buffer():
    batch = _sample()
    ib.stamp_batch(batch, 1, 10, 20)
    big = bytearray(b"\xff" * 13) + batch + b"\xee" * 7
    view = memoryview(big)[13 : 13 + len(batch)]
    assert ib.validate_batch(view).message_count == 3
    ib.stamp_batch(view, 2, 30, 40)
    assert ib.batch_fields(big[13 : 13 + len(batch)])[:3] == (2, 30, 40)
    assert big[:13] == b"\xff" * 13 and big[-7:] == b"\xee" * 7


def test_timestamp_lookup_is_batch_granular():
    batch = _sample()
    ib.stamp_batch(batch, 0, 100, 5_000)
    assert ib.timestamp_start_offset(batch, 4_999) == 100
    assert ib.timestamp_start_offset(batch, 5_000) == 100
    assert ib.timestamp_start_offset(batch, 5_001) is None


# --- real SDK bytes ---------------------------------------------------------------------


def test_real_sdk_0_9_0_batch_validates_and_is_reproduced_by_build_batch():
    golden = (GOLDEN / "sdk_0_9_0_send_batch.bin").read_bytes()
    info = ib.validate_batch(golden, expected_count=3)
    assert info.message_count == 3 and info.batch_length == len(golden)
    assert ib.batch_fields(golden)[:3] == (0, 0, 0)  # producer leaves server fields zero
    msgs = list(ib.iter_messages(golden))
    assert [(m[3], bytes(m[4])) for m in msgs] == [
        (42, b"hello"), (2**100 + 7, b"second"), (3, b"x" * 300)]
    # {"k": "v", "n": 5}: String key/value, then String key / Uint8 value (TLV)
    assert bytes(msgs[0][5]) == bytes.fromhex("02010000006b02010000007602010000006e090100000005")
    rebuilt = ib.build_batch([(m[3], bytes(m[4]), bytes(m[5]), m[2]) for m in msgs])
    assert rebuilt == golden  # every checksum computed exactly as the SDK does
    stamped = bytearray(golden)
    ib.stamp_batch(stamped, 4, 1000, 123)
    assert ib.validate_batch(stamped) == info
    assert [m[0] for m in ib.iter_messages(stamped)] == [1000, 1001, 1002]


# --- corruption and garbage -------------------------------------------------------------


@pytest.mark.parametrize("stamped", [False, True])
def test_every_single_byte_corruption_is_detected(stamped):
    batch = _sample()
    if stamped:
        ib.stamp_batch(batch, 9, 1234, 5678)
    ib.validate_batch(batch)
    for i in range(len(batch)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(batch)
            bad[i] ^= mask
            with pytest.raises(ib.BatchError):
                ib.validate_batch(bad)


def test_truncations_raise_batch_error_only():
    batch = _sample()
    for n in range(len(batch)):
        cut = memoryview(batch)[:n]
        _exercise(bytes(cut))
        with pytest.raises(ib.BatchError):
            ib.validate_batch(cut)
        if n >= 40:  # the same cut with batch_length saying so: the frame walk meets the end
            consistent = bytearray(cut)
            struct.pack_into("<Q", consistent, 32, n)
            _exercise(bytes(consistent))


def _exercise(buf: bytes) -> None:
    """Run every reader on ``buf``: the only exception allowed is BatchError."""
    calls = [
        lambda: ib.validate_batch(buf),
        lambda: ib.validate_batch(buf, verify_checksums=False, allow_sliced=True),
        lambda: ib.stamp_batch(bytearray(buf), 1, 2, 3),
        lambda: ib.batch_fields(buf),
        lambda: ib.batch_offsets(buf),
        lambda: ib.timestamp_start_offset(buf, 0),
        lambda: list(ib.iter_messages(buf)),
        lambda: ib.slice_batch(buf, 1, 2),
        lambda: ib.slice_batch(buf, 0, 10),
        lambda: ib.batch_to_classic_frames(buf, 0, 3),
        lambda: ib.classic_frames_to_batch(buf, 1),
        lambda: ib.classic_frames_to_batch(buf, 3),
    ]
    for call in calls:
        try:
            call()
        except ib.BatchError:
            pass


@FAST
@given(st.binary(max_size=600))
def test_random_bytes_raise_batch_error_only(data):
    _exercise(data)


@FAST
@given(st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6))
def test_mutated_batches_raise_batch_error_only(edits):
    batch = _sample()
    for pos, value in edits:
        if pos < len(batch):
            batch[pos] = value
    struct.pack_into("<Q", batch, 32, len(batch))  # keep batch_length plausible: go deeper
    _exercise(bytes(batch))


def test_specific_error_codes():
    ok = _raw_batch([_frame(b"a"), _frame(b"b", offset_delta=1)])
    ib.validate_batch(ok)
    bad = bytearray(ok)
    bad[100] = 1
    assert _code(ib.validate_batch, bad) == ErrorCode.INVALID_RESERVED_FIELD
    assert _code(ib.validate_batch, ok, expected_count=3) == ErrorCode.INVALID_MESSAGES_COUNT
    assert _code(ib.validate_batch, ok + b"\0") == ErrorCode.INVALID_FORMAT
    assert _code(ib.validate_batch, b"\0" * 10) == ErrorCode.INVALID_FORMAT
    cases = [
        ([_frame(b"a", reserved=1)], ErrorCode.INVALID_RESERVED_FIELD),
        ([_frame(b"")], ErrorCode.EMPTY_MESSAGE_PAYLOAD),
        ([_frame(b"a", payload_length=ib.MAX_PAYLOAD_SIZE + 1)], ErrorCode.TOO_BIG_MESSAGE_PAYLOAD),
        ([_frame(b"a", user_headers_length=ib.MAX_USER_HEADERS_SIZE + 1)],
         ErrorCode.TOO_BIG_USER_HEADERS),
        ([_frame(b"a", payload_length=2)], ErrorCode.INVALID_MESSAGE_PAYLOAD_LENGTH),
        ([_frame(b"a"), _frame(b"b", offset_delta=2)], ErrorCode.INVALID_FORMAT),
        ([_frame(b"a", offset_delta=1)], ErrorCode.INVALID_FORMAT),
        ([_frame(b"a"), b"\0" * 47], ErrorCode.INVALID_FORMAT),
    ]
    for frames, code in cases:
        assert _code(ib.validate_batch, _raw_batch(frames)) == code, frames
    assert _code(ib.validate_batch, _raw_batch([_frame(b"a")], count=2)) == \
        ErrorCode.INVALID_MESSAGES_COUNT
    assert _code(ib.validate_batch, _raw_batch([_frame(b"a"), _frame(b"b", offset_delta=1)],
                                               count=1)) == ErrorCode.INVALID_MESSAGES_COUNT
    assert _code(ib.validate_batch, _raw_batch([], count=0)) == ErrorCode.INVALID_MESSAGES_COUNT
    bad = bytearray(ok)
    bad[256 + 48] ^= 1  # payload byte of frame 0
    assert _code(ib.validate_batch, bad) == ErrorCode.INVALID_MESSAGE_CHECKSUM
    unverified = ib.validate_batch(bad, verify_checksums=False)
    assert unverified.message_count == 2
    # the checksum fields come back unverified too: the classic send stamps from them
    assert unverified.frame_sums == ib.validate_batch(ok).frame_sums
    assert ib.validate_batch_py(bad, verify_checksums=False) == unverified
    bad = bytearray(ok)
    bad[8] ^= 1  # base_offset
    assert _code(ib.validate_batch, bad) == ErrorCode.INVALID_BATCH_CHECKSUM
    assert ib.validate_batch(_raw_batch([_frame(b"a", offset_delta=5)]),
                             allow_sliced=True).first_offset_delta == 5


def test_build_batch_rejects_what_the_sdk_rejects():
    assert _code(ib.build_batch, []) == ErrorCode.INVALID_MESSAGES_COUNT
    assert _code(ib.build_batch, [(1, b"", b"", 0)]) == ErrorCode.EMPTY_MESSAGE_PAYLOAD
    big = b"h" * (ib.MAX_USER_HEADERS_SIZE + 1)
    assert _code(ib.build_batch, [(1, b"a", big, 0)]) == ErrorCode.TOO_BIG_USER_HEADERS
    assert _code(ib.build_batch, [(1, b"a", b"", 0), (2, b"b", b"", 2**32)]) == \
        ErrorCode.INVALID_MESSAGE_TIMESTAMP_DELTA


# --- slicing ----------------------------------------------------------------------------


@FAST
@given(messages, st.integers(0, 2**40), st.data())
def test_slice_batch(msgs, base, data):
    batch = ib.build_batch(msgs)
    ib.stamp_batch(batch, 3, base, 777)
    n = len(msgs)
    first = data.draw(st.integers(max(0, base - 2), base + n + 2))
    max_count = data.draw(st.integers(0, n + 2))
    expected = [o for o in range(base, base + n) if o >= first][:max_count]
    out = ib.slice_batch(batch, first, max_count)
    if not expected:
        assert out == b""
        return
    if len(expected) == n:
        assert out is batch  # nothing cut: no copy
    info = ib.validate_batch(out, expected_count=len(expected), allow_sliced=True)
    assert info.first_offset_delta == expected[0] - base
    got = list(ib.iter_messages(out))
    assert [m[0] for m in got] == expected
    assert [bytes(m[4]) for m in got] == [msgs[o - base][1] for o in expected]
    assert ib.batch_fields(out)[:4] == ib.batch_fields(batch)[:4]  # base kept, not rebased
    assert ib.batch_offsets(out) == (expected[0], expected[-1])
    start, end, count = ib.select_frames(batch, first, max_count)
    assert bytes(out) == ib.slice_header(batch, start, end, count) + bytes(batch[start:end])
    # slicing a slice works too
    again = ib.slice_batch(out, expected[-1], 1)
    assert [m[0] for m in ib.iter_messages(again)] == [expected[-1]]
    ib.validate_batch(again, allow_sliced=True)


def test_head_slice_passes_strict_validation_tail_slice_needs_allow_sliced():
    batch = _sample()
    ib.stamp_batch(batch, 0, 50, 1)
    ib.validate_batch(ib.slice_batch(batch, 0, 2))
    tail = ib.slice_batch(batch, 51, 5)
    assert _code(ib.validate_batch, tail) == ErrorCode.INVALID_FORMAT
    assert ib.validate_batch(tail, allow_sliced=True).message_count == 2


# --- classic protocol -------------------------------------------------------------------


def _classic_body(frames: bytes, count: int) -> bytes:
    """Index array [0][cumulative][0] for ``count`` 64-byte-header frames, then the frames."""
    index, pos, total = b"", 0, 0
    for _ in range(count):
        uh, pl = struct.unpack_from("<II", frames, pos + 48)
        pos += 64 + uh + pl
        total = pos
        index += struct.pack("<IIQ", 0, total, 0)
    return index + frames


def test_real_sdk_0_8_0_classic_send_converts():
    body = (GOLDEN / "sdk_0_8_0_classic_send_body.bin").read_bytes()
    (meta_len,) = struct.unpack_from("<I", body, 0)
    (count,) = struct.unpack_from("<I", body, meta_len)  # last metadata field
    assert count == 3
    rest = memoryview(body)[4 + meta_len :]
    assert struct.unpack_from("<IIQ", rest, 0) == (0, 64 + 5, 0)  # [0][cumulative][0]
    batch = ib.classic_frames_to_batch(rest, count)
    ib.validate_batch(batch, expected_count=3)
    got = list(ib.iter_messages(batch))
    assert [bytes(m[4]) for m in got] == [b"hello", b"second", b"x" * 300]
    assert [m[3] for m in got] == [0, 0, 0]  # the 0.8.0 Python client sends id 0
    origins = [struct.unpack_from("<Q", rest, 48 + p + 40)[0] for p in (0, 69, 139)]
    assert [m[2] for m in got] == origins
    blob = bytes(range(48))  # 16 "random" bytes per message become a UUIDv4
    renamed = ib.classic_frames_to_batch(rest, count, random_ids=lambda n: blob[:n])
    assert [m[3] for m in ib.iter_messages(renamed)] == [
        uuid.UUID(bytes=blob[i : i + 16], version=4).int for i in (0, 16, 32)]
    assert all(uuid.UUID(int=m[3]).version == 4 for m in ib.iter_messages(renamed))


@FAST
@given(messages, st.integers(0, 2**40), st.data())
def test_classic_round_trip(msgs, base, data):
    batch = ib.build_batch(msgs)
    ib.stamp_batch(batch, 0, base, 4242)
    first = data.draw(st.integers(base, base + len(msgs) - 1))
    frames, count = ib.classic_frames_and_count(batch, first, 100)
    assert frames == ib.batch_to_classic_frames(batch, first, 100)
    assert count == base + len(msgs) - first
    pos = 0
    for k in range(count):
        fields = struct.unpack_from("<QQQQQQIIQ", frames, pos)
        ck, lo, hi, offset, ts, origin, uh, pl, reserved = fields
        end = pos + 64 + pl + uh
        assert ck == xxhash.xxh3_64_intdigest(frames[pos + 8 : end])
        m = msgs[first - base + k]
        assert (lo | hi << 64, offset, ts, origin, reserved) == (m[0], first + k, 4242, m[3], 0)
        assert frames[pos + 64 : end] == m[1] + m[2]  # payload then user headers
        pos = end
    assert pos == len(frames)
    # classic poll frames → classic send body → 0.11 batch: same messages again
    back = ib.classic_frames_to_batch(_classic_body(frames, count), count)
    ib.validate_batch(back, expected_count=count)
    assert [(m[3], bytes(m[4]), bytes(m[5]), m[2]) for m in ib.iter_messages(back)] == \
        [(m[0], m[1], m[2], m[3]) for m in msgs[first - base :]]


def test_classic_conversion_errors():
    frame = struct.pack("<QQQQQQIIQ", 0, 1, 0, 0, 0, T0, 0, 1, 0) + b"a"
    good = _classic_body(frame, 1)
    ib.validate_batch(ib.classic_frames_to_batch(good, 1))
    bad_index = bytearray(good)
    bad_index[4] += 1
    assert _code(ib.classic_frames_to_batch, bad_index, 1) == ErrorCode.INVALID_FORMAT
    assert _code(ib.classic_frames_to_batch, good + b"\0", 1) == ErrorCode.INVALID_FORMAT
    assert _code(ib.classic_frames_to_batch, good, 2) == ErrorCode.INVALID_FORMAT
    assert _code(ib.classic_frames_to_batch, good, 0) == ErrorCode.INVALID_MESSAGES_COUNT
    empty = struct.pack("<QQQQQQIIQ", 0, 1, 0, 0, 0, T0, 0, 0, 0)
    assert _code(ib.classic_frames_to_batch, _classic_body(empty, 1), 1) == \
        ErrorCode.EMPTY_MESSAGE_PAYLOAD
    late = struct.pack("<QQQQQQIIQ", 0, 1, 0, 0, 0, T0 + 2**32, 0, 1, 0) + b"b"
    assert _code(ib.classic_frames_to_batch, _classic_body(frame + late, 2), 2) == \
        ErrorCode.INVALID_MESSAGE_TIMESTAMP_DELTA
