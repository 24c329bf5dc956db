"""Shared encodings (Iggy's encodings page): golden bytes, round trips, truncation and fuzzing."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.errors import ErrorCode
from pyggy.core.model import GlobalPermissions, Permissions, StreamPermissions, TopicPermissions
from pyggy.native_wire.codec import primitives as p
from pyggy.native_wire.codec.reader import Reader, WireError

names = st.text(min_size=1, max_size=60).filter(lambda s: 0 < len(s.encode()) <= 255)
identifiers = st.one_of(st.integers(0, 2**32 - 1), names)
FAST = settings(max_examples=60, deadline=None)


def decode_all(fn: Callable[[Reader], Any], data: bytes) -> Any:
    r = Reader(data)
    value = fn(r)
    r.done()
    return value


def assert_every_prefix_fails(fn: Callable[[Reader], Any], data: bytes) -> None:
    for i in range(len(data)):
        with pytest.raises(WireError):
            decode_all(fn, data[:i])


# ---------------------------------------------------------------- identifiers and names


def test_identifier_golden_bytes() -> None:
    assert p.encode_identifier(0) == bytes.fromhex("0104 00000000")
    assert p.encode_identifier("s1") == bytes.fromhex("0202 7331")
    assert decode_all(p.decode_identifier, bytes.fromhex("010400000000")) == 0
    assert decode_all(p.decode_identifier, bytes.fromhex("02027331")) == "s1"


@pytest.mark.parametrize("raw", ["0103010000", "010501000000ff", "0200", "0301aa", "0004",
                                 "02027331"[:6]])
def test_identifier_rejects(raw: str) -> None:
    with pytest.raises(WireError) as e:
        decode_all(p.decode_identifier, bytes.fromhex(raw))
    assert e.value.code == ErrorCode.INVALID_IDENTIFIER


def test_identifier_bad_utf8() -> None:
    with pytest.raises(WireError) as e:
        decode_all(p.decode_identifier, b"\x02\x01\xff")
    assert e.value.code == ErrorCode.INVALID_UTF8


def test_identifier_encode_limits() -> None:
    for bad in (-1, 2**32, "", "x" * 256):
        with pytest.raises(WireError):
            p.encode_identifier(bad)


@FAST
@given(identifiers)
def test_identifier_round_trip(value: int | str) -> None:
    raw = p.encode_identifier(value)
    assert decode_all(p.decode_identifier, raw) == value
    assert_every_prefix_fails(p.decode_identifier, raw)


@FAST
@given(names)
def test_name_round_trip(name: str) -> None:
    raw = p.encode_name(name)
    assert raw[0] == len(name.encode())
    assert decode_all(p.decode_name, raw) == name
    assert_every_prefix_fails(p.decode_name, raw)


def test_name_encode_limits() -> None:
    with pytest.raises(WireError):
        p.encode_name("")
    with pytest.raises(WireError):
        p.encode_name("é" * 128)
    assert len(p.encode_name("a" * 255)) == 256


# ---------------------------------------------------------------- consumer, partition, strategy


@FAST
@given(st.sampled_from([1, 2]), identifiers)
def test_consumer_round_trip(kind: int, ident: int | str) -> None:
    raw = p.encode_consumer(kind, ident)
    assert decode_all(p.decode_consumer, raw) == (kind, ident)
    assert_every_prefix_fails(p.decode_consumer, raw)


def test_consumer_golden_and_bad_kind() -> None:
    assert p.encode_consumer(2, "g1") == b"\x02\x02\x02g1"
    with pytest.raises(WireError):
        decode_all(p.decode_consumer, b"\x03\x01\x04\x00\x00\x00\x00")


@FAST
@given(st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_optional_partition_round_trip(value: int | None) -> None:
    raw = p.encode_optional_partition(value)
    assert len(raw) == 5
    assert decode_all(p.decode_optional_partition, raw) == value
    assert_every_prefix_fails(p.decode_optional_partition, raw)


def test_optional_partition_flag_zero_ignores_value() -> None:
    assert decode_all(p.decode_optional_partition, b"\x00\x07\x00\x00\x00") is None
    assert p.encode_optional_partition(None) == b"\x00" * 5


partitionings = st.one_of(
    st.just((1, None)),
    st.tuples(st.just(2), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(3), st.binary(min_size=1, max_size=255)),
)


@FAST
@given(partitionings)
def test_partitioning_round_trip(pv: tuple[int, Any]) -> None:
    raw = p.encode_partitioning(*pv)
    assert decode_all(p.decode_partitioning, raw) == pv
    assert_every_prefix_fails(p.decode_partitioning, raw)


def test_partitioning_golden_and_rejects() -> None:
    assert p.encode_partitioning(1) == b"\x01\x00"
    assert p.encode_partitioning(2, 3) == b"\x02\x04\x03\x00\x00\x00"
    assert p.encode_partitioning(3, b"k") == b"\x03\x01k"
    for raw in (b"\x01\x01\x00", b"\x02\x03\x00\x00\x00", b"\x03\x00", b"\x04\x00"):
        with pytest.raises(WireError):
            decode_all(p.decode_partitioning, raw)


@FAST
@given(st.integers(1, 5), st.integers(0, 2**64 - 1))
def test_polling_strategy_round_trip(kind: int, value: int) -> None:
    raw = p.encode_polling_strategy(kind, value)
    assert len(raw) == 9
    assert decode_all(p.decode_polling_strategy, raw) == (kind, value)
    assert_every_prefix_fails(p.decode_polling_strategy, raw)


def _poll_outcome(fn: Callable[[Reader], Any], body: bytes) -> tuple[str, Any]:
    r = Reader(body)
    try:
        value = fn(r)
    except WireError as e:
        return "error", (e.code, str(e))
    return "ok", (value, r.pos)


def _poll_body(kind: int, ids: tuple[int | str, int | str, int | str], flag: int,
               partition: int, strategy: int, value: int, count: int, auto: int) -> bytes:
    return (bytes((kind,)) + b"".join(p.encode_identifier(i) for i in ids)
            + struct.pack("<BIBQIB", flag, partition, strategy, value, count, auto))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([0, 1, 2, 3, 255]), st.tuples(identifiers, identifiers, identifiers),
       st.integers(0, 2), st.integers(0, 2**32 - 1), st.integers(0, 6),
       st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2),
       st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), max_size=3),
       st.integers(-2, 2))
def test_poll_request_decodes_as_field_by_field(
        kind: int, ids: tuple[int | str, int | str, int | str], flag: int, partition: int,
        strategy: int, value: int, count: int, auto: int, flips: list[tuple[int, int]],
        resize: int) -> None:
    """The one-unpack path agrees with the field-by-field decode on every body (values and
    errors), numeric or string identifiers, with bytes flipped and the body cut or grown."""
    body = bytearray(_poll_body(kind, ids, flag, partition, strategy, value, count, auto))
    for at, byte in flips:
        if at < len(body):
            body[at] = byte
    body = body[:len(body) + resize] if resize < 0 else body + bytes(resize)
    assert _poll_outcome(p.decode_poll_request, bytes(body)) == \
        _poll_outcome(p.decode_poll_fields, bytes(body))


@pytest.mark.parametrize("body", [
    b"",
    b"\x01",
    b"\x01\x02\x00" + _poll_body(1, (1, 2, 3), 0, 0, 1, 0, 1, 0)[7:],  # empty string id
    b"\x01\x02\x01\xff" + bytes.fromhex("01040000000001040000000000") + bytes(19),  # bad UTF-8
    b"\x01\x03\x04" + bytes(4 + 6 + 6 + 19),  # unknown identifier kind
    b"\x01\x01\x03" + bytes(3 + 6 + 6 + 19),  # numeric identifier of 3 bytes
    _poll_body(1, (1, 2, 3), 0, 0, 1, 0, 1, 0)[:-1],
    _poll_body(1, (1, 2, 3), 0, 0, 1, 0, 1, 0) + b"\x00",
    _poll_body(1, (1, 2, 3), 0, 0, 0, 0, 1, 0),
    _poll_body(3, (1, 2, 3), 0, 0, 1, 0, 1, 0),
])
def test_poll_request_edges_decode_as_field_by_field(body: bytes) -> None:
    assert _poll_outcome(p.decode_poll_fields, body)[0] == "error"
    assert _poll_outcome(p.decode_poll_request, body) == _poll_outcome(p.decode_poll_fields, body)


def test_poll_request_golden() -> None:
    body = _poll_body(2, (7, 1, 2), 1, 3, 1, 40, 1000, 1)
    assert len(body) == 38
    assert decode_all(p.decode_poll_request, _poll_body(1, (7, "s", "tö"), 1, 3, 1, 40, 9, 0)) \
        == (1, 7, "s", "tö", 3, 1, 40, 9, False)
    assert decode_all(p.decode_poll_request, body) == (2, 7, 1, 2, 3, 1, 40, 1000, True)
    assert decode_all(p.decode_poll_request, _poll_body(1, (7, 1, 2), 0, 3, 5, 0, 1, 0)) == \
        (1, 7, 1, 2, None, 5, 0, 1, False)
    assert_every_prefix_fails(p.decode_poll_request, body)


def test_poll_request_heads_seen_before_decode_the_same() -> None:
    """A head (consumer and identifiers) is looked up by its bytes the second time: the tail
    is still read from each body, and a known head before a bad tail still fails."""
    first = _poll_body(1, (9, "seen", "before"), 1, 2, 1, 10, 5, 0)
    again = _poll_body(1, (9, "seen", "before"), 0, 0, 4, 7, 3, 1)
    assert decode_all(p.decode_poll_request, first) == (1, 9, "seen", "before", 2, 1, 10, 5,
                                                        False)
    assert decode_all(p.decode_poll_request, again) == (1, 9, "seen", "before", None, 4, 7, 3,
                                                        True)
    bad = _poll_body(1, (9, "seen", "before"), 0, 0, 6, 7, 3, 1)  # strategy 6
    assert _poll_outcome(p.decode_poll_request, bad) == _poll_outcome(p.decode_poll_fields, bad)
    assert _poll_outcome(p.decode_poll_request, bad)[0] == "error"


@pytest.mark.parametrize("kind", [0, 6, 255])
def test_polling_strategy_bad_kind(kind: int) -> None:
    with pytest.raises(WireError):
        decode_all(p.decode_polling_strategy, struct.pack("<BQ", kind, 0))


# ---------------------------------------------------------------- TLV and options

fields = st.binary(min_size=1, max_size=255)
kinds = st.integers(1, 15)
tlvs = st.lists(st.tuples(kinds, fields, kinds, fields), max_size=6)


@FAST
@given(tlvs)
def test_tlv_round_trip(entries: list[p.Tlv]) -> None:
    raw = p.encode_tlv(entries)
    assert p.validate_tlv(raw) == len(entries)
    assert p.decode_tlv(raw) == entries
    boundaries = set()
    pos = 0
    for _kk, k, _vk, v in entries:
        pos += 10 + len(k) + len(v)
        boundaries.add(pos)
    for i in range(1, len(raw)):
        if i not in boundaries:  # a cut between pairs is a valid shorter block
            with pytest.raises(WireError):
                p.validate_tlv(raw[:i])


def test_tlv_golden_python_user_headers() -> None:
    # {'k': 'v', 'n': 5} as the 0.9.0 SDK sends it (TLV).
    raw = p.encode_tlv([(2, b"k", 2, b"v"), (2, b"n", 9, b"\x05")])
    assert raw == bytes.fromhex("0201000000 6b 0201000000 76 0201000000 6e 0901000000 05")


def test_tlv_rejects() -> None:
    one = p.encode_tlv([(2, b"k", 2, b"v")])
    assert p.validate_tlv(b"") == 0
    with pytest.raises(WireError):
        p.validate_tlv(one[:6])  # odd count
    with pytest.raises(WireError):
        p.validate_tlv(one + b"\x02")  # trailing garbage
    with pytest.raises(WireError) as e:
        p.validate_tlv(b"\x00\x01\x00\x00\x00k" + one[6:])
    assert e.value.code == ErrorCode.INVALID_HEADER_KIND
    with pytest.raises(WireError) as e:
        p.validate_tlv(b"\x10\x01\x00\x00\x00k" + one[6:])
    assert e.value.code == ErrorCode.INVALID_HEADER_KIND
    assert p.validate_tlv(b"\x10\x01\x00\x00\x00k" + one[6:], strict_kinds=False) == 1
    with pytest.raises(WireError):
        p.validate_tlv(b"\x02\x00\x00\x00\x00" + one[6:])  # zero length
    with pytest.raises(WireError):
        p.validate_tlv(b"\x02\x00\x01\x00\x00" + b"k" * 256 + one[6:])  # 256 > 255
    with pytest.raises(WireError):
        p.encode_tlv([(2, b"", 2, b"v")])


def test_user_headers_size_limit() -> None:
    entries = [(2, b"%05d" % i, 1, b"v" * 255) for i in range(400)]
    raw = p.encode_tlv(entries)
    assert len(raw) > 100_000
    with pytest.raises(WireError) as e:
        p.validate_user_headers(raw)
    assert e.value.code == ErrorCode.TOO_BIG_USER_HEADERS


def test_options_golden_block() -> None:
    # The golden options block of the Rust codec (enforce_fsync Bool true, segment_size 1 GiB).
    golden = (b"\x02\x0d\x00\x00\x00enforce_fsync\x03\x01\x00\x00\x00\x01"
              b"\x02\x0c\x00\x00\x00segment_size\x0c\x08\x00\x00\x00" + struct.pack("<Q", 1 << 30))
    opts = [("enforce_fsync", 3, b"\x01"), ("segment_size", 12, struct.pack("<Q", 1 << 30))]
    assert p.encode_options(opts) == golden
    assert p.decode_options(golden) == opts
    block = p.encode_options_block(opts)
    assert block == struct.pack("<I", len(golden)) + golden
    assert decode_all(p.decode_options_block, block) == opts
    assert p.encode_options_block([]) == b"\x00\x00\x00\x00"


def test_options_rules() -> None:
    assert p.decode_options(b"") == []
    with pytest.raises(WireError):  # key must be String
        p.decode_options(p.encode_tlv([(12, b"\x00" * 8, 2, b"v")]))
    with pytest.raises(WireError):  # duplicate key
        p.decode_options(p.encode_tlv([(2, b"a", 2, b"1"), (2, b"a", 2, b"2")]))
    with pytest.raises(WireError) as e:  # key not UTF-8
        p.decode_options(p.encode_tlv([(2, b"\xff", 2, b"1")]))
    assert e.value.code == ErrorCode.INVALID_UTF8
    many = p.encode_tlv([(2, b"k%d" % i, 9, b"\x01") for i in range(1025)])
    with pytest.raises(WireError) as e:
        p.decode_options(many)
    assert e.value.code == ErrorCode.OPTIONS_BLOCK_TOO_LARGE
    big = p.encode_tlv([(2, b"%03d" % i + b"k" * 200, 1, b"v" * 255) for i in range(250)])
    with pytest.raises(WireError) as e:
        p.decode_options(big)
    assert e.value.code == ErrorCode.OPTIONS_BLOCK_TOO_LARGE


@FAST
@given(st.dictionaries(names, st.tuples(kinds, fields), max_size=5))
def test_options_round_trip(d: dict[str, tuple[int, bytes]]) -> None:
    opts = [(k, vk, v) for k, (vk, v) in d.items()]
    assert p.decode_options(p.encode_options(opts)) == opts


# ---------------------------------------------------------------- permissions

topic_perms = st.builds(TopicPermissions, st.booleans(), st.booleans(), st.booleans(),
                        st.booleans())
stream_perms = st.builds(StreamPermissions, *[st.booleans()] * 6,
                         topics=st.dictionaries(st.integers(0, 2**32 - 1), topic_perms,
                                                max_size=3))
permissions = st.builds(Permissions, st.builds(GlobalPermissions, *[st.booleans()] * 10),
                        st.dictionaries(st.integers(0, 2**32 - 1), stream_perms, max_size=3))


@FAST
@given(permissions)
def test_permissions_round_trip(perms: Permissions) -> None:
    raw = p.encode_permissions(perms)
    assert decode_all(p.decode_permissions, raw) == perms
    assert_every_prefix_fails(p.decode_permissions, raw)
    req = p.encode_request_permissions(perms)
    assert decode_all(p.decode_request_permissions, req) == perms
    resp = p.encode_response_permissions(perms)
    assert decode_all(p.decode_response_permissions, resp) == perms


def test_permissions_golden_layout() -> None:
    perms = Permissions(
        GlobalPermissions(manage_servers=True, send_messages=True),
        {7: StreamPermissions(read_stream=True, topics={3: TopicPermissions(poll_messages=True)}),
         8: StreamPermissions()},
    )
    expected = (
        bytes([1, 0, 0, 0, 0, 0, 0, 0, 0, 1]) + b"\x01"
        + struct.pack("<I", 7) + bytes([0, 1, 0, 0, 0, 0]) + b"\x01"
        + struct.pack("<I", 3) + bytes([0, 0, 1, 0]) + b"\x00" + b"\x01"
        + struct.pack("<I", 8) + bytes(6) + b"\x00" + b"\x00"
    )
    assert p.encode_permissions(perms) == expected
    assert p.encode_permissions(Permissions()) == bytes(11)


def test_optional_permissions_forms() -> None:
    assert p.encode_request_permissions(None) == b"\x00"
    assert p.encode_response_permissions(None) == b"\x00\x00\x00\x00"
    assert decode_all(p.decode_request_permissions, b"\x00") is None
    assert decode_all(p.decode_response_permissions, b"\x00\x00\x00\x00") is None
    raw = p.encode_permissions(Permissions())
    # Length prefix must match the permissions exactly (request form).
    with pytest.raises(WireError):
        decode_all(p.decode_request_permissions, b"\x01" + struct.pack("<I", len(raw) + 1)
                   + raw + b"\x00")


def test_permissions_entries_are_capped() -> None:
    """A permissions block is kept in memory and in the state log: at most
    MAX_PERMISSION_ENTRIES stream + topic entries, however large the body may be."""
    cap = p.MAX_PERMISSION_ENTRIES

    def block(streams: int, topics_of_first: int) -> bytes:
        out = bytearray(10) + b"\x01"
        for i in range(streams):
            out += struct.pack("<I", i) + bytes(6)
            if i == 0 and topics_of_first:
                out += b"\x01" + b"".join(struct.pack("<I", t) + bytes(4) + b"\x01"
                                          for t in range(topics_of_first))[:-1] + b"\x00"
            else:
                out += b"\x00"
            out += b"\x01" if i < streams - 1 else b"\x00"
        return bytes(out)

    assert len(decode_all(p.decode_permissions, block(cap, 0)).streams) == cap
    for raw in (block(cap + 1, 0), block(2, cap)):
        with pytest.raises(WireError) as e:
            decode_all(p.decode_permissions, raw)
        assert e.value.code == ErrorCode.INVALID_FORMAT
    assert len(decode_all(p.decode_permissions, block(1, cap - 1)).streams[0].topics) == cap - 1


# ---------------------------------------------------------------- fuzzing

DECODERS = [p.decode_identifier, p.decode_name, p.decode_consumer, p.decode_optional_partition,
            p.decode_partitioning, p.decode_polling_strategy, p.decode_permissions,
            p.decode_request_permissions, p.decode_response_permissions,
            p.decode_options_block]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=48))
def test_random_bytes_only_raise_wire_error(data: bytes) -> None:
    for fn in DECODERS:
        try:
            fn(Reader(data))
        except WireError:
            pass
    for fn2 in (p.validate_tlv, p.decode_tlv, p.decode_options, p.validate_user_headers):
        try:
            fn2(data)
        except WireError:
            pass


def test_send_metadata() -> None:
    inner = p.encode_identifier("s") + p.encode_identifier(1) + p.encode_partitioning(2, 0)
    inner += struct.pack("<I", 3)
    raw = struct.pack("<I", len(inner)) + inner + b"BATCH"
    r = Reader(raw)
    assert p.decode_send_metadata(r) == ("s", 1, 2, 0, 3)
    assert bytes(r.rest()) == b"BATCH"
    with pytest.raises(WireError):
        p.decode_send_metadata(Reader(struct.pack("<I", len(inner) + 1) + inner + b"x"))
    assert_every_prefix_fails(p.decode_send_metadata, raw[: 4 + len(inner)])
