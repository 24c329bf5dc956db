"""The inter-shard frame codec: what `encode` makes `parse` gives back; anything else is a
FrameError (the channel closes), never another exception."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyggy.shards import frames
from pyggy.shards.frames import FrameError

scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.text(max_size=12)
json_values = scalars | st.lists(scalars, max_size=3)
metas = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def _body(head: bytes, payload: bytes) -> tuple[int, bytes]:
    whole = head + payload
    return frames.frame_length(whole[:4]), whole[4:]


@given(st.sampled_from(sorted(frames.KINDS)), st.integers(0, 2**32 - 1), metas,
       st.binary(max_size=300))
def test_round_trip(kind: int, request_id: int, meta: dict, payload: bytes) -> None:
    head, body = frames.encode(kind, request_id, meta, payload)
    assert body is payload  # the batch is not copied into the header
    length, rest = _body(head, payload)
    assert length == len(rest)
    frame = frames.parse(rest)
    assert (frame.kind, frame.request_id, frame.meta) == (kind, request_id, meta)
    assert frame.payload.tobytes() == payload


@given(st.binary(max_size=200))
def test_garbage_is_a_frame_error(data: bytes) -> None:
    try:
        frame = frames.parse(data)
    except FrameError:
        return
    assert frame.kind in frames.KINDS and isinstance(frame.meta, dict)


@given(metas, st.binary(max_size=50), st.data())
def test_truncated_frames_are_refused(meta: dict, payload: bytes, data: st.DataObject) -> None:
    head, _ = frames.encode(frames.REQUEST, 7, meta, payload)
    cut = data.draw(st.integers(0, len(head) - 5))  # inside the header or the meta
    with pytest.raises(FrameError):
        frames.parse(head[4:4 + cut])


def test_lengths_out_of_range_are_refused_before_reading() -> None:
    with pytest.raises(FrameError):
        frames.frame_length(struct.pack(">I", frames.MAX_FRAME + 1))
    with pytest.raises(FrameError):
        frames.frame_length(struct.pack(">I", 3))


def test_meta_must_be_an_object_and_kind_known() -> None:
    body = struct.pack(">BII", frames.REQUEST, 1, 2) + b"[]"
    with pytest.raises(FrameError, match="not an object"):
        frames.parse(body)
    with pytest.raises(FrameError, match="kind"):
        frames.parse(struct.pack(">BII", 9, 1, 2) + b"{}")
    with pytest.raises(FrameError, match="meta length"):
        frames.parse(struct.pack(">BII", frames.REPLY, 1, 50) + b"{}")
    with pytest.raises(FrameError, match="bad meta"):
        frames.parse(struct.pack(">BII", frames.REPLY, 1, 2) + b"\xff{")
