"""The replica wire format: every command round-trips; any damage is a clean DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.consensus.message import (
    EXIT,
    FIELDS,
    HEADER_SIZE,
    Command,
    DecodeError,
    Message,
    decode,
    encode,
    header_list,
    prepare_header,
    root_prepare,
)

SIZE_MAX = 1 << 16
CLUSTER = bytes(range(16))


def prepare(op: int = 7, body: bytes = b"batch") -> Message:
    return Message(Command.PREPARE, cluster=CLUSTER, view=3, replica=1, client=b"c" * 16,
                   parent=b"p" * 16, session=2, op=op, commit=op - 1, timestamp=99, request=4,
                   operation=32, group=5, body=body)


def sample(command: int, body: bytes = b"") -> Message:
    fields = {}
    for name, code in FIELDS[command]:
        if code == "16s":
            fields[name] = bytes([len(name)]) * 16
        elif not code.endswith("x"):
            fields[name] = 1 + len(name)
    if command == Command.REQUEST_PREPARES:
        fields.update(from_op=3, to_op=9)
    if command in (Command.DO_VIEW_CHANGE, Command.START_VIEW):
        body = prepare_header(prepare(8)) + prepare_header(prepare(7))
    if command == Command.REPAIR_PREPARE:
        body = encode(prepare())
    if command == Command.PREPARE:
        fields["op"] = 7
    if command == Command.START_VIEW_CHANGE:
        fields["flags"] = EXIT
    return Message(command, cluster=CLUSTER, view=4, replica=2, body=body, **fields)


@pytest.mark.parametrize("command", list(Command))
def test_every_command_round_trips(command):
    m = sample(command, b"xyz" if command in (Command.PREPARE, Command.REQUEST) else b"")
    raw = encode(m)
    assert len(raw) == m.size and raw[:16] == m.checksum
    got = decode(raw, SIZE_MAX)
    for name, code in FIELDS[command]:
        if not code.endswith("x"):
            assert getattr(got, name) == getattr(m, name), name
    assert (got.view, got.replica, got.body, got.command) == (4, 2, m.body, command)


def test_header_lists_carry_prepare_identities():
    m = decode(encode(sample(Command.DO_VIEW_CHANGE)), SIZE_MAX)
    assert [h.op for h in header_list(m)] == [8, 7]
    p7 = prepare(7)
    encode(p7)
    assert header_list(m)[1].checksum == p7.checksum


def test_prepare_identity_covers_the_body():
    a, b = prepare(body=b"one"), prepare(body=b"two")
    encode(a)
    encode(b)
    assert a.checksum != b.checksum
    assert root_prepare(CLUSTER, 5).checksum == root_prepare(CLUSTER, 5).checksum


@pytest.mark.parametrize("cut", [0, 1, 100, HEADER_SIZE - 1, HEADER_SIZE, HEADER_SIZE + 2])
def test_truncated_message_is_refused(cut):
    raw = encode(prepare(body=b"abcdef"))
    with pytest.raises(DecodeError):
        decode(raw[:cut], SIZE_MAX)


def test_size_limit_and_zero_repair_range_are_refused():
    raw = encode(prepare(body=bytes(1000)))
    with pytest.raises(DecodeError):
        decode(raw, 512)
    bad = Message(Command.REQUEST_PREPARES, cluster=CLUSTER, from_op=5, to_op=4)
    with pytest.raises(DecodeError):
        decode(encode(bad), SIZE_MAX)


@pytest.mark.parametrize("flags", [2, 3, 255])
def test_a_start_view_change_with_unknown_flags_is_refused(flags):
    for known in (0, EXIT):
        m = Message(Command.START_VIEW_CHANGE, cluster=CLUSTER, view=3, flags=known)
        assert decode(encode(m), SIZE_MAX).flags == known
    bad = Message(Command.START_VIEW_CHANGE, cluster=CLUSTER, view=3, flags=flags)
    with pytest.raises(DecodeError):
        decode(encode(bad), SIZE_MAX)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(Command)), st.integers(min_value=0), st.integers(0, 7))
def test_any_bit_flip_is_detected(command, position, bit):
    raw = bytearray(encode(sample(command, b"payload")))
    raw[position % len(raw)] ^= 1 << bit
    with pytest.raises(DecodeError):
        decode(bytes(raw), SIZE_MAX)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2 * HEADER_SIZE))
def test_random_bytes_never_crash_the_decoder(data):
    try:
        decode(data, SIZE_MAX)
    except DecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(Command)), st.binary(max_size=300), st.data())
def test_resealed_garbage_in_fields_is_refused_or_well_formed(command, tail, data):
    """Even with valid checksums, out-of-range fields and bodies decode cleanly or not at all."""
    import xxhash
    raw = bytearray(encode(sample(command)))
    start = data.draw(st.integers(32, HEADER_SIZE - 1))
    junk = data.draw(st.binary(min_size=1, max_size=HEADER_SIZE - start))
    raw[start:start + len(junk)] = junk
    raw = raw[:HEADER_SIZE] + tail
    raw[16:32] = xxhash.xxh3_128_digest(bytes(tail))
    raw[48:52] = len(raw).to_bytes(4, "little")
    raw[:16] = xxhash.xxh3_128_digest(bytes(raw[16:HEADER_SIZE]))
    try:
        m = decode(bytes(raw), SIZE_MAX)
    except DecodeError:
        return
    assert m.size == len(raw)
    if m.command in (Command.DO_VIEW_CHANGE, Command.START_VIEW):
        try:
            header_list(m)
        except DecodeError:
            pass
