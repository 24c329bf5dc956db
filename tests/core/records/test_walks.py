"""The C batch walks (core/records/_walks.c) against their pure-Python twins.

Every input, valid or mutated, goes through both: the C walk must accept exactly what the
Python twin accepts and return the same fields, and the public functions (C first, Python to
name the error) must give the same result or the same error as the twin alone, and the same
output bytes where they write. The extension must be built in CI (scripts/install-test-deps.sh
installs the xxHash headers and builds it); elsewhere a missing build skips these tests.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyggy.core.records import accel
from pyggy.core.records import iggy_batch as ib
from pyggy.core.records import kafka_batch as kb

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
T0 = 1_795_717_532_295_762


def _load_c() -> ModuleType | None:
    try:
        from pyggy.core.records import _walks
    except ImportError:
        return None
    return _walks


C_WALKS = _load_c()


@pytest.fixture(autouse=True)
def cwalks(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The compiled module, installed in both record modules for the test (whatever
    PYGGY_PURE_PYTHON says); missing: fails under CI, skips otherwise."""
    if C_WALKS is None:
        message = ("pyggy.core.records._walks is not built (needs gcc and libxxhash-dev; "
                   "run scripts/install-test-deps.sh)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    monkeypatch.setattr(ib, "WALKS", C_WALKS)
    monkeypatch.setattr(kb, "WALKS", C_WALKS)
    yield C_WALKS


def _outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """("ok", result) or ("error", (exception type, code, message))."""
    try:
        return "ok", fn(*args, **kwargs)
    except (ib.BatchError, kb.KafkaBatchError) as e:
        return "error", (type(e), e.code, str(e))
    except struct.error as e:  # reseal_origin of a cut batch (a client's own built batches)
        return "error", (type(e), None, str(e))


def _twin(monkeypatch: pytest.MonkeyPatch, fn: Callable[..., Any], *args: Any) -> tuple[
        tuple[str, Any], tuple[str, Any]]:
    """``fn(*args)`` with the C walks, then with the pure-Python twins (copies of any
    bytearray argument, so in-place writes are compared too)."""
    def run() -> tuple[str, Any]:
        copies = [bytearray(a) if isinstance(a, bytearray) else a for a in args]
        result = _outcome(fn, *copies)
        return result[0], (result[1], [c for c in copies if isinstance(c, bytearray)])
    with_c = run()
    monkeypatch.setattr(ib, "WALKS", None)
    monkeypatch.setattr(kb, "WALKS", None)
    pure = run()
    monkeypatch.setattr(ib, "WALKS", C_WALKS)
    monkeypatch.setattr(kb, "WALKS", C_WALKS)
    return with_c, pure


def test_the_build_is_the_extension_in_use() -> None:
    """Without PYGGY_PURE_PYTHON a built extension is what the record modules run."""
    assert C_WALKS is not None
    if os.environ.get("PYGGY_PURE_PYTHON"):
        assert accel.WALKS is None and accel.IMPLEMENTATION == "python"
    else:
        assert accel.WALKS is C_WALKS and accel.IMPLEMENTATION == "c"


# --- Iggy batches -------------------------------------------------------------------------

message = st.tuples(
    st.integers(0, 2**128 - 1),
    st.binary(min_size=1, max_size=60),
    st.binary(max_size=20),
    st.integers(T0, T0 + 2**32 - 1),
)


def _reseal(buf: bytearray) -> None:
    """Recompute every frame checksum and the batch checksum of a (possibly mutated) batch
    as far as its frames can be followed, so mutations reach the rules past the checksums."""
    if len(buf) < ib.BATCH_HEADER_SIZE:
        return
    h = xxhash.xxh3_64()
    h.update(buf[0:40])
    h.update(buf[48:52])
    pos = ib.BATCH_HEADER_SIZE
    while len(buf) - pos >= ib.FRAME_HEADER_SIZE:
        uh, pl = struct.unpack_from("<II", buf, pos + 32)
        end = pos + ib.FRAME_HEADER_SIZE + uh + pl
        if end > len(buf):
            break
        struct.pack_into("<Q", buf, pos, xxhash.xxh3_64_intdigest(bytes(buf[pos + 8 : end])))
        h.update(buf[pos : pos + 8])
        pos = end
    struct.pack_into("<Q", buf, 40, h.intdigest())


@st.composite
def iggy_inputs(draw: st.DrawFn) -> bytearray:
    """A built batch (or a slice of one), then maybe mutated: fields set to edge values,
    bytes flipped, cut or extended, and maybe resealed."""
    msgs = draw(st.lists(message, min_size=1, max_size=6))
    buf = ib.build_batch(msgs, partition_id=draw(st.integers(0, 9)),
                         base_offset=draw(st.integers(0, 2**40)),
                         base_timestamp=draw(st.integers(0, 2**63)))
    if draw(st.booleans()):
        sliced = ib.slice_batch(buf, draw(st.integers(0, 2**40 + 6)), draw(st.integers(1, 6)))
        buf = bytearray(sliced) if len(sliced) else buf
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["u32", "u64", "byte", "cut", "extend"]))
        if kind == "cut":
            del buf[draw(st.integers(0, len(buf))):]
        elif kind == "extend":
            buf += draw(st.binary(min_size=1, max_size=60))
        elif len(buf) >= 8:
            at = draw(st.integers(0, len(buf) - 8))
            if kind == "byte":
                buf[at] ^= draw(st.integers(1, 255))
            else:
                fmt, top = ("<I", 2**32 - 1) if kind == "u32" else ("<Q", 2**64 - 1)
                value = draw(st.sampled_from([0, 1, 2, 48, 100_000, 100_001, 64_000_000,
                                              64_000_001, len(buf), top]))
                struct.pack_into(fmt, buf, at, value)
    if draw(st.booleans()):
        _reseal(buf)
    return buf


@FAST
@given(iggy_inputs(), st.booleans(), st.booleans(), st.sampled_from([None, "count", 1, 7]))
def test_iggy_validate_agrees_with_the_python_twin(
        cwalks: ModuleType, buf: bytearray, verify: bool, sliced: bool,
        expected: int | str | None) -> None:
    count = struct.unpack_from("<I", buf, 48)[0] if len(buf) >= 52 else 0
    want = count if expected == "count" else expected
    pure = _outcome(ib.validate_batch_py, buf, want, verify, allow_sliced=sliced)
    raw = cwalks.iggy_validate(buf, want, verify, sliced)
    assert (raw is not None) == (pure[0] == "ok"), (raw, pure)
    assert _outcome(ib.validate_batch, buf, want, verify, allow_sliced=sliced) == pure
    assert _outcome(ib.validate_batch, memoryview(buf), want, verify,
                    allow_sliced=sliced) == pure


@FAST
@given(iggy_inputs(), st.data())
def test_iggy_frame_sums_agree_with_the_python_twin(
        cwalks: ModuleType, buf: bytearray, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(buf)))
    end = data.draw(st.integers(start, len(buf)))
    mv = memoryview(buf)
    pure = _outcome(ib.frame_sums_py, mv, start, end)
    raw = cwalks.iggy_frame_sums(mv, start, end)
    assert (raw is not None) == (pure[0] == "ok")
    if raw is not None:
        assert raw == pure[1]
    assert _outcome(ib.frame_sums, mv, start, end) == pure


@FAST
@given(iggy_inputs(), st.integers(0, 2**40 + 6), st.integers(1, 7), st.integers(0, 2**63))
def test_iggy_writers_give_the_same_bytes_with_either_twin(
        monkeypatch: pytest.MonkeyPatch, buf: bytearray, first: int, most: int,
        stamp: int) -> None:
    """stamp_batch (with and without frame sums), slice_batch, reseal_origin."""
    for fn, args in ((ib.stamp_batch, (buf, 3, stamp, T0)),
                     (ib.stamp_batch, (buf, 3, stamp, T0, b"\0" * 8)),
                     (ib.slice_batch, (bytes(buf), first, most)),
                     (ib.reseal_origin, (buf, stamp))):
        with_c, pure = _twin(monkeypatch, fn, *args)
        assert with_c == pure, fn.__name__


@FAST
@given(iggy_inputs(), st.integers(-1, 2**40 + 6), st.integers(-1, 7))
def test_iggy_select_agrees_with_the_python_twin(
        cwalks: ModuleType, buf: bytearray, first: int, most: int) -> None:
    pure = _outcome(ib.select_frames_py, buf, first, most)
    if 0 <= first and most > 0:
        raw = cwalks.iggy_select(buf, first, most)
        assert (raw is not None) == (pure[0] == "ok"), (raw, pure)
        if raw is not None:
            assert raw == pure[1]
    assert _outcome(ib.select_frames, buf, first, most) == pure
    assert _outcome(ib.select_frames, memoryview(buf), first, most) == pure


def test_iggy_select_at_the_ends_of_64_bits(cwalks: ModuleType) -> None:
    """Offsets whose sum passes 2**64 are above any first offset, as Python's ints say."""
    buf = ib.build_batch([(i, b"x", b"", T0) for i in range(3)], base_offset=2**64 - 2)
    for first in (0, 2**64 - 2, 2**64 - 1, 2**64, 2**64 + 5):
        assert ib.select_frames(buf, first, 9) == ib.select_frames_py(buf, first, 9), first


@FAST
@given(iggy_inputs(), st.sampled_from([0, 1, 2**64 - 1, 2**64]), st.integers(0, 2**63),
       st.sampled_from(["validated", "none", "short", "zeros"]))
def test_iggy_stamp_agrees_with_the_python_twin(
        monkeypatch: pytest.MonkeyPatch, buf: bytearray, pid: int, base: int,
        sums_kind: str) -> None:
    """stamp_batch with the frame sums validate_batch gave, none, too few, or made up (the
    caller's promise: both twins trust sums of the right length); fields beyond 64 bits."""
    count = struct.unpack_from("<I", buf, 48)[0] if len(buf) >= 52 else 0
    count = min(count, len(buf))  # a header's count may claim 2**32 - 1 frames: no 32 GiB sums
    done = _outcome(ib.validate_batch_py, buf, None, True, allow_sliced=True)
    sums = {"validated": done[1].frame_sums if done[0] == "ok" else b"", "none": b"",
            "short": b"\0" * max(0, 8 * count - 8), "zeros": b"\0" * (8 * count)}[sums_kind]
    with_c, pure = _twin(monkeypatch, ib.stamp_batch, buf, pid, base, T0, sums)
    assert with_c == pure


def test_iggy_stamp_writes_nothing_when_it_refuses(cwalks: ModuleType) -> None:
    buf = ib.build_batch([(1, b"x", b"", T0)])
    before = bytes(buf)
    assert not cwalks.iggy_stamp(buf, 1, 2, 3, b"\0" * 16)  # one message, two sums
    buf[60] = 1  # a reserved header byte
    assert not cwalks.iggy_stamp(buf, 1, 2, 3, b"\0" * 8)
    buf[60] = 0
    assert bytes(buf) == before
    assert cwalks.iggy_stamp(buf, 1, 2, 3, ib.validate_batch_py(buf).frame_sums)
    assert ib.batch_fields(buf)[:3] == (1, 2, 3) and ib.validate_batch_py(buf).message_count == 1
    with pytest.raises(TypeError):
        cwalks.iggy_stamp(before, 1, 2, 3, b"\0" * 8)  # read-only


def test_a_stamped_batch_validates_in_both_twins(cwalks: ModuleType) -> None:
    buf = ib.build_batch([(i, b"x" * (i + 1), b"", T0 + i) for i in range(100)])
    info = ib.validate_batch(buf)
    ib.stamp_batch(buf, 1, 1000, T0, info.frame_sums)
    assert ib.validate_batch(buf) == ib.validate_batch_py(buf) == info
    buf[-1] ^= 1
    assert cwalks.iggy_validate(buf, None, True, False) is None
    assert cwalks.iggy_validate(buf, None, False, False) is not None


def test_a_huge_message_count_is_refused_without_allocating(cwalks: ModuleType) -> None:
    buf = ib.build_batch([(1, b"x", b"", T0)])
    struct.pack_into("<I", buf, 48, 2**32 - 1)
    assert cwalks.iggy_validate(buf, None, True, False) is None
    with pytest.raises(ib.BatchError) as e:
        ib.validate_batch(buf)
    assert e.value.code == ib.ErrorCode.INVALID_MESSAGES_COUNT


def test_the_walks_take_a_multi_megabyte_batch_without_the_gil(cwalks: ModuleType) -> None:
    """Batches over 64 KiB are walked with the GIL released: same answers."""
    buf = ib.build_batch([(i, bytes([i % 251]) * 1000, b"h" * (i % 3), T0 + i)
                          for i in range(3000)])
    assert ib.validate_batch(buf) == ib.validate_batch_py(buf)
    kafka = kb.build_batch([(T0 // 1000 + i, b"k", b"v" * 1000, [("h", b"x")])
                            for i in range(3000)])
    assert cwalks.kafka_walk(kafka, kb.RECORDS_OFFSET, 3000)
    assert not cwalks.kafka_walk(kafka, kb.RECORDS_OFFSET, 2999)


@st.composite
def classic_inputs(draw: st.DrawFn, fewest: int = 1, most: int = 5) -> tuple[bytearray, int]:
    """(classic SendMessages body, messages_count): 64-byte-header frames as the 0.8 SDK
    sends them (ids maybe 0, origin timestamps spread), then maybe mutated or miscounted."""
    msgs = draw(st.lists(message, min_size=fewest, max_size=most))
    frames, index = bytearray(), bytearray()
    for msg_id, payload, headers, ts in msgs:
        msg_id = draw(st.sampled_from([0, msg_id]))
        ts = draw(st.sampled_from([ts, ts + 2**32, 0]))
        frames += struct.pack("<QQQQQQIIQ", 0, msg_id & 2**64 - 1, msg_id >> 64, 0, 0, ts,
                              len(headers), len(payload), 0) + payload + headers
        index += struct.pack("<IIQ", 0, len(frames), 0)
    body = index + frames
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["u32", "byte", "cut", "extend"]))
        if kind == "cut":
            del body[draw(st.integers(0, len(body))):]
        elif kind == "extend":
            body += draw(st.binary(min_size=1, max_size=20))
        elif len(body) >= 4:
            at = draw(st.integers(0, len(body) - 4))
            if kind == "byte":
                body[at] ^= draw(st.integers(1, 255))
            else:
                struct.pack_into("<I", body, at, draw(st.sampled_from(
                    [0, 1, 64, 100_001, 64_000_001, 2**32 - 1])))
    count = len(msgs) + draw(st.sampled_from([0, 0, 0, -1, 1, -len(msgs), 2**32 - 1]))
    return body, count


class _Noise:
    """A random_ids that hands out slices of fixed bytes and records what was asked."""

    def __init__(self, noise: bytes) -> None:
        self.noise, self.asked = noise, []

    def __call__(self, n: int) -> bytes:
        self.asked.append(n)
        return self.noise[:n]


def _zero_ids(body: bytes, count: int) -> int:
    """Messages of a well-formed classic body whose id is 0."""
    pos, zeros = 16 * count, 0
    for _ in range(count):
        _, lo, hi, _, _, _, uh, pl, _ = struct.unpack_from("<QQQQQQIIQ", body, pos)
        zeros += not (lo or hi)
        pos += 64 + uh + pl
    return zeros


@FAST
@given(classic_inputs(), st.binary(min_size=16 * 6, max_size=16 * 6), st.booleans())
def test_classic_conversion_agrees_with_the_python_twin(
        cwalks: ModuleType, body_count: tuple[bytearray, int], noise: bytes,
        new_ids: bool) -> None:
    body, count = body_count
    pure_ids = _Noise(noise) if new_ids else None
    pure = _outcome(ib.classic_frames_to_batch_py, body, count, pure_ids)
    if 0 < count <= len(body) // 16:
        c_ids = _Noise(noise) if new_ids else None
        raw = cwalks.classic_convert(body, count, c_ids)
        assert (raw is not None) == (pure[0] == "ok"), pure
        if raw is not None:
            assert raw == pure[1]
            assert ib.validate_batch(raw, expected_count=count).message_count == count
            if c_ids is not None and pure_ids is not None:  # once, 16 bytes per id 0, or never
                zeros = _zero_ids(body, count)
                assert c_ids.asked == pure_ids.asked == ([16 * zeros] if zeros else [])
    assert _outcome(ib.classic_frames_to_batch, memoryview(body), count,
                    _Noise(noise) if new_ids else None) == pure
    if pure[0] == "ok":  # every checksum right: what lets a classic send skip re-verifying
        assert ib.validate_batch(pure[1], expected_count=count,
                                 verify_checksums=True).message_count == count


@FAST
@given(classic_inputs(ib.IN_PLACE_FROM, ib.IN_PLACE_FROM + 8),
       st.binary(min_size=16 * 24, max_size=16 * 24), st.integers(0, 7))
def test_the_in_place_conversion_agrees_with_the_python_twin(
        cwalks: ModuleType, body_count: tuple[bytearray, int], noise: bytes,
        lead: int) -> None:
    """Written over the body itself (at least 16 messages), at any start inside a bigger
    buffer: the same batch as the twin's and as a new buffer's, the bytes after it left as
    they were read; a rejected body is left untouched and the twin names its error."""
    body, count = body_count
    pure = _outcome(ib.classic_frames_to_batch_py, bytes(body), count, _Noise(noise))
    frame = bytearray(b"\xaa" * lead) + body
    view = memoryview(frame)[lead:]
    got = _outcome(ib.classic_frames_to_batch_in_place, view, count, _Noise(noise))
    assert got[0] == pure[0]
    if pure[0] == "error":
        assert got == pure
        assert frame[lead:] == body and frame[:lead] == b"\xaa" * lead
        return
    batch = got[1]
    if count >= ib.IN_PLACE_FROM and count <= len(body) // 16:  # written in place
        assert isinstance(batch, memoryview) and batch.obj is frame
        assert frame[lead + len(batch):] == body[len(batch):]
    assert bytes(batch) == bytes(pure[1])
    assert frame[:lead] == b"\xaa" * lead
    twin = bytearray(body)
    if count >= ib.IN_PLACE_FROM:
        assert bytes(ib.classic_frames_to_batch_in_place_py(memoryview(twin), count,
                                                            _Noise(noise))) == bytes(pure[1])
        raw = bytearray(body)
        length = cwalks.classic_convert(raw, count, _Noise(noise), True)
        assert length == len(pure[1]) and raw[:length] == pure[1]


def test_the_in_place_conversion_takes_only_what_it_can(cwalks: ModuleType) -> None:
    """Fewer than 16 messages or a read-only body: a new buffer; C refuses in place below 16."""
    small = _classic([0] * (ib.IN_PLACE_FROM - 1))
    got = ib.classic_frames_to_batch_in_place(memoryview(bytearray(small)),
                                              ib.IN_PLACE_FROM - 1)
    assert isinstance(got, bytearray)
    assert got == ib.classic_frames_to_batch(small, ib.IN_PLACE_FROM - 1)
    with pytest.raises(ValueError):
        cwalks.classic_convert(bytearray(small), ib.IN_PLACE_FROM - 1, None, True)
    big = _classic([5] * ib.IN_PLACE_FROM)
    assert isinstance(ib.classic_frames_to_batch_in_place(memoryview(big), ib.IN_PLACE_FROM),
                      bytearray)
    with pytest.raises(BufferError):
        cwalks.classic_convert(big, ib.IN_PLACE_FROM, None, True)
    many = _classic([0] * 3000)  # over 64 KiB: converted without the GIL, in place
    buf = bytearray(many)
    batch = ib.classic_frames_to_batch_in_place(memoryview(buf), 3000, bytes)
    assert bytes(batch) == ib.classic_frames_to_batch_py(many, 3000, bytes)


def _classic(ids: list[int]) -> bytes:
    frames, index = bytearray(), bytearray()
    for i, msg_id in enumerate(ids):
        frames += struct.pack("<QQQQQQIIQ", 0, msg_id, 0, 0, 0, T0 + i, 0, 3, 0) + b"abc"
        index += struct.pack("<IIQ", 0, len(frames), 0)
    return bytes(index + frames)


@FAST
@given(st.lists(st.one_of(st.integers(1, 1100), st.sampled_from([3000, 9000, 25000])),
                min_size=1, max_size=70), st.integers(0, 2**32), st.booleans())
def test_classic_conversion_agrees_with_the_twin_across_hash_groups(
        cwalks: ModuleType, sizes: list[int], seed: int, in_place: bool) -> None:
    """The C conversion writes frames a group at a time before hashing them (`CLASSIC_GROUP`
    frames or `CLASSIC_GROUP_BYTES`), in a new buffer or over the body: bodies of up to 70
    messages of any size (ids 0 among them) give the twin's batch byte for byte."""
    rnd = seed.to_bytes(8, "little") * 3200
    frames, index = bytearray(), bytearray()
    for i, n in enumerate(sizes):
        frames += struct.pack("<QQQQQQIIQ", 0, (seed + i) % 3, 0, 0, 0, T0 + i, i % 4, n, 0)
        frames += rnd[:i % 4] + rnd[i % 7:i % 7 + n]
        index += struct.pack("<IIQ", 0, len(frames), 0)
    body, count = bytes(index + frames), len(sizes)
    noise = rnd[: 16 * count]
    pure = ib.classic_frames_to_batch_py(body, count, _Noise(noise))
    if in_place and count >= ib.IN_PLACE_FROM:
        raw = bytearray(body)
        length = cwalks.classic_convert(raw, count, _Noise(noise), True)
        assert length == len(pure) and raw[:length] == pure
    else:
        assert cwalks.classic_convert(body, count, _Noise(noise)) == pure
    assert ib.validate_batch(pure, expected_count=count, verify_checksums=True)


def test_classic_conversion_random_ids_only_for_ids_0(cwalks: ModuleType) -> None:
    """random_ids is asked once for the ids 0 only, its bytes used in order; a client's own
    ids are kept; too few bytes: C declines and the twin raises; an exception propagates."""
    body = _classic([7, 0, 9, 0])
    ids = _Noise(bytes(range(32)))
    batch = cwalks.classic_convert(body, 4, ids)
    assert ids.asked == [32]
    got = [m[3] for m in ib.iter_messages(batch)]
    assert got[0] == 7 and got[2] == 9
    assert got[1] == uuid.UUID(bytes=bytes(range(16)), version=4).int
    assert got[3] == uuid.UUID(bytes=bytes(range(16, 32)), version=4).int
    none = _Noise(b"")
    assert cwalks.classic_convert(_classic([1, 2]), 2, none) is not None and none.asked == []
    assert cwalks.classic_convert(body, 4, lambda n: b"x" * (n - 1)) is None
    with pytest.raises(ValueError):
        ib.classic_frames_to_batch(body, 4, random_ids=lambda n: b"x" * (n - 1))

    def broken(n: int) -> bytes:
        raise RuntimeError("no entropy")

    with pytest.raises(RuntimeError):
        cwalks.classic_convert(body, 4, broken)


def test_random_bytes_make_distinct_uuid4_ids() -> None:
    body = _classic([0] * 1000)
    a = [m[3] for m in ib.iter_messages(ib.classic_frames_to_batch(body, 1000, ib.random_bytes))]
    b = [m[3] for m in ib.iter_messages(ib.classic_frames_to_batch(body, 1000, ib.random_bytes))]
    assert all(uuid.UUID(int=x).version == 4 for x in a + b)
    assert len(set(a + b)) == 2000
    assert len(ib.random_bytes(16_000)) == 16_000


@FAST
@given(st.integers(0, 1 << 21))
def test_new_buffer_has_the_size_asked(cwalks: ModuleType, n: int) -> None:
    buf = cwalks.uninitialised_bytearray(n)
    assert type(buf) is bytearray and len(buf) == n
    buf[:] = b"\1" * n  # writable, resizable as any bytearray
    buf += b"x"
    assert len(buf) == n + 1
    with pytest.raises(ValueError):
        cwalks.uninitialised_bytearray(-1)


@FAST
@given(iggy_inputs(), st.sampled_from([0, 1, 2**40, 2**40 + 3, 2**64 - 1]),
       st.integers(-1, 8))
def test_classic_poll_frames_agree_with_the_python_twin(
        cwalks: ModuleType, buf: bytearray, first: int, most: int) -> None:
    pure = _outcome(ib.classic_frames_and_count_py, buf, first, most)
    if most > 0:
        raw = cwalks.classic_poll(buf, first, most)
        assert (raw is not None) == (pure[0] == "ok"), pure
        if raw is not None:
            assert raw == pure[1]
    assert _outcome(ib.classic_frames_and_count, memoryview(buf), first, most) == pure


@FAST
@given(st.lists(st.sampled_from([1, 16, 17, 128, 129, 200, 241, 1000, 1024, 1025, 4096, 70_000]),
                min_size=1, max_size=6), st.integers(0, 2**32), st.integers(1, 8))
def test_classic_poll_hashes_long_messages_as_the_twin(
        cwalks: ModuleType, sizes: list[int], seed: int, most: int) -> None:
    """Frames on every XXH3 length path (≤ 16, ≤ 128, ≤ 240 bytes, then the vectorised long
    loop the C walk may run on AVX2/AVX-512): the same checksums as the `xxhash` package."""
    rnd = seed.to_bytes(8, "little") * 10_000
    msgs = [(i + 1, rnd[i:i + n], rnd[:i % 3], T0 + i) for i, n in enumerate(sizes)]
    buf = ib.build_batch(msgs, base_offset=2**40, base_timestamp=T0)
    raw = cwalks.classic_poll(buf, 0, most)
    assert raw is not None and raw == ib.classic_frames_and_count_py(buf, 0, most)
    frames, count = raw
    pos = 0
    for _ in range(count):  # the checksum covers the frame after its checksum field
        end = pos + 64 + sum(struct.unpack_from("<II", frames, pos + 48))
        assert struct.unpack_from("<Q", frames, pos)[0] == \
            xxhash.xxh3_64_intdigest(frames[pos + 8:end])
        pos = end
    assert pos == len(frames)


@FAST
@given(st.lists(st.one_of(st.integers(1, 1100), st.sampled_from([3000, 9000, 25000])),
                min_size=1, max_size=70), st.integers(0, 2**32),
       st.integers(0, 75), st.integers(1, 80), st.integers(0, 3))
def test_classic_poll_agrees_with_the_twin_across_hash_groups(
        cwalks: ModuleType, sizes: list[int], seed: int, first: int, most: int,
        flip: int) -> None:
    """The C walk copies frames a group at a time before hashing them (`CLASSIC_GROUP`
    frames or `CLASSIC_GROUP_BYTES`): batches of up to 70 messages of any size, polled from
    any offset with any count, give the twin's frames byte for byte; a mutated batch is
    refused by both or converted alike."""
    rnd = seed.to_bytes(8, "little") * 3200
    msgs = [(i + 1, rnd[i % 7:i % 7 + n], rnd[:i % 4], T0 + i) for i, n in enumerate(sizes)]
    buf = ib.build_batch(msgs, base_offset=1000, base_timestamp=T0)
    if flip:  # a byte of a later frame's header or payload changed (its sums go stale)
        at = ib.BATCH_HEADER_SIZE + (seed % max(1, len(buf) - ib.BATCH_HEADER_SIZE))
        buf[at] ^= 1 << flip
    pure = _outcome(ib.classic_frames_and_count_py, buf, 1000 + first, most)
    raw = cwalks.classic_poll(buf, 1000 + first, most)
    assert (raw is not None) == (pure[0] == "ok"), pure
    if raw is not None:
        assert raw == pure[1]


def test_classic_poll_declines_an_offset_beyond_64_bits_in_a_later_group(
        cwalks: ModuleType) -> None:
    """An offset past 2**64 after the first group of frames was written: C declines (frees
    what it wrote), the twin raises struct.error."""
    buf = ib.build_batch([(i + 1, b"m" * 300, b"", T0) for i in range(40)],
                         base_offset=2**64 - 30)
    assert cwalks.classic_poll(buf, 0, 40) is None
    assert _outcome(ib.classic_frames_and_count, buf, 0, 40)[1][0] is struct.error
    frames, count = ib.classic_frames_and_count(buf, 0, 30)  # the first 30 still fit
    assert count == 30 and (frames, count) == ib.classic_frames_and_count_py(buf, 0, 30)


@FAST
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 300)), min_size=1, max_size=4),
       st.booleans())
def test_classic_frames_of_batches_converts_each_whole_batch(
        cwalks: ModuleType, shapes: list[tuple[int, int]], python: bool) -> None:
    """A streamed read's chunk (whole batches end to end): the frames of every message of
    each batch in order, with either twin; a cut chunk is refused."""
    if python:
        ib.WALKS = None  # the fixture's monkeypatch restores it
    batches, base = [], 0
    for n, size in shapes:
        batches.append(bytes(ib.build_batch([(base + i + 1, bytes([i]) * size, b"u", T0 + i)
                                             for i in range(n)], base_offset=base,
                                            base_timestamp=T0)))
        base += n
    chunk = b"".join(batches)
    want = [ib.classic_frames_and_count_py(b, 0, 1 << 62) for b in batches]
    assert ib.classic_frames_of_batches(chunk) == (b"".join(f for f, _ in want), base)
    with pytest.raises(ib.BatchError):
        ib.classic_frames_of_batches(chunk + batches[0][:300])


def test_classic_poll_offsets_beyond_64_bits_fall_back(cwalks: ModuleType) -> None:
    """base_offset + offset_delta past 2**64: C declines, the twin raises struct.error."""
    buf = ib.build_batch([(1, b"a", b"", T0), (2, b"b", b"", T0)], base_offset=2**64 - 1)
    assert cwalks.classic_poll(buf, 0, 2) is None
    assert _outcome(ib.classic_frames_and_count, buf, 0, 2)[1][0] is struct.error
    frames, count = ib.classic_frames_and_count(buf, 0, 1)  # the first still fits
    assert count == 1 and struct.unpack_from("<Q", frames, 24)[0] == 2**64 - 1


# --- Kafka records ------------------------------------------------------------------------

def _raw_varint(value: int) -> bytes:
    """Unsigned LEB128 of ``value`` as is (no zig-zag): any width, for edge cases."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(n: int) -> bytes:
    return _raw_varint((n << 1) ^ (n >> 63) if -(2**63) <= n < 2**63 else abs(n) * 2)


kafka_record = st.tuples(
    st.integers(0, 2**40),
    st.one_of(st.none(), st.binary(max_size=30)),
    st.one_of(st.none(), st.binary(max_size=200)),
    st.lists(st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=10))),
             max_size=3),
)

edge_ints = st.one_of(st.integers(-3, 300), st.sampled_from(
    [2**31 - 1, -(2**31), 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**69, 2**70 - 1]))
# a token is a varint (zig-zag or raw, of any width), an over-long varint, or raw bytes
token = st.one_of(
    edge_ints.map(_zigzag),
    st.integers(0, 2**70 - 1).map(_raw_varint),
    st.integers(11, 14).map(lambda n: b"\x80" * (n - 1) + b"\x01"),
    st.binary(max_size=6),
)


@st.composite
def kafka_bodies(draw: st.DrawFn) -> tuple[bytes, int]:
    """(records region, recordsCount): encoded records, maybe mutated, or tokens glued."""
    if draw(st.booleans()):
        recs = draw(st.lists(kafka_record, min_size=1, max_size=5))
        body = bytearray()
        for delta, (ts, key, value, headers) in enumerate(recs):
            kb.encode_record(body, delta, ts, key, value, headers)
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["byte", "cut", "extend", "splice"]))
            at = draw(st.integers(0, len(body)))
            if kind == "cut":
                del body[at:]
            elif kind == "extend":
                body += draw(st.binary(min_size=1, max_size=20))
            elif kind == "splice":
                body[at:at] = draw(token)
            elif at < len(body):
                body[at] ^= draw(st.integers(1, 255))
        count = len(recs) + draw(st.sampled_from([0, 0, 0, -1, 1]))
    else:
        body = bytearray(b"".join(draw(st.lists(token, max_size=24))))
        count = draw(st.integers(1, 4))
    return bytes(body), max(count, 1)


@FAST
@given(kafka_bodies(), st.integers(0, 3))
def test_kafka_walk_agrees_with_the_python_twin(
        cwalks: ModuleType, body_count: tuple[bytes, int], lead: int) -> None:
    body, count = body_count
    buf = bytes(lead) + body
    pure = _outcome(kb.walk_records_py, buf, lead, len(buf), count)
    assert cwalks.kafka_walk(buf, lead, count) == (pure[0] == "ok"), pure
    assert _outcome(kb.walk_records, buf, lead, count) == pure
    assert _outcome(kb.walk_records, memoryview(bytearray(buf)), lead, count) == pure


@FAST
@given(st.lists(kafka_record, min_size=1, max_size=5), st.data())
def test_kafka_validate_agrees_with_the_python_twin(
        monkeypatch: pytest.MonkeyPatch, recs: list[Any], data: st.DataObject) -> None:
    """validate_batch on built batches, mutated anywhere and the CRC recomputed or not."""
    buf = kb.build_batch([(T0 // 1000 + ts, k, v, h) for ts, k, v, h in recs])
    for _ in range(data.draw(st.integers(0, 2))):
        at = data.draw(st.integers(0, len(buf) - 1))
        buf[at] ^= data.draw(st.integers(1, 255))
    if data.draw(st.booleans()) and len(buf) >= kb.HEADER_SIZE:
        from crc32c import crc32c
        struct.pack_into(">I", buf, kb.CRC_OFFSET, crc32c(bytes(buf[kb.ATTRIBUTES_OFFSET:])))
    with_c, pure = _twin(monkeypatch, kb.validate_batch, bytes(buf))
    assert with_c == pure


@pytest.mark.parametrize("body", [
    b"",  # no record at all
    _zigzag(7) + b"\x00\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00" + b"\x00\x01\x01\x00",
    _zigzag(2**69) + b"\x00" * 8,  # a length beyond 64 bits
    _zigzag(6) + b"\x00\x00\x00" + _zigzag(2**62) + b"\x01\x00",  # a key past the end
    _zigzag(8) + b"\x00\x00\x00\x01\x01" + _zigzag(2**40) + b"\x00\x01",  # 2**40 headers
])
def test_kafka_walk_edge_cases(cwalks: ModuleType, body: bytes) -> None:
    pure = _outcome(kb.walk_records_py, body, 0, len(body), 1)
    assert pure[0] == "error"
    assert cwalks.kafka_walk(body, 0, 1) is False
    assert _outcome(kb.walk_records, body, 0, 1) == pure


def test_the_classic_send_stamps_in_c_from_unverified_sums(
        cwalks: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch the classic conversion built is validated without hashing again; its checksum
    fields still come back, so the stamp reseals in C instead of the Python twin's walk."""
    frames = ib.classic_frames_of_batches(ib.build_batch(
        [(i + 1, b"p" * (i + 1), b"", T0 + i) for i in range(50)]))[0]
    index, pos = b"", 0
    for _ in range(50):
        uh, pl = struct.unpack_from("<II", frames, pos + 48)
        pos += 64 + uh + pl
        index += struct.pack("<IIQ", 0, pos, 0)
    batch = ib.classic_frames_to_batch(index + frames, 50)
    info = ib.validate_batch(batch, expected_count=50, verify_checksums=False)
    assert info.frame_sums == ib.validate_batch(batch).frame_sums
    monkeypatch.setattr(ib, "stamp_batch_py", lambda *a: pytest.fail("stamped in Python"))
    ib.stamp_batch(batch, 1, 1000, T0, info.frame_sums)
    assert ib.validate_batch_py(batch).message_count == 50  # its checksums hold
