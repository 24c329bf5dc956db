"""The HTTP door's request parsing (JSON bodies and query strings → typed values): any input
gives a value of the asked type or a FieldError (a 400), never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.errors import IggyError
from pyggy.core.records import user_headers as uh

from pyggy.http_api import views
from pyggy.http_api.body import Fields, identifier, parse_json
from pyggy.http_api.errors import FieldError, status_of
from pyggy.http_api.handlers.messages import _partitioning, consumer_id
from pyggy.http_api.handlers.streams import _options

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**130), max_value=2**130)
    | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=25)
objects = st.dictionaries(
    st.sampled_from(["name", "partitions_count", "message_expiry", "max_topic_size",
                     "compression_algorithm", "options", "permissions", "global", "streams",
                     "user_headers", "partitioning", "kind", "value", "messages", "payload",
                     "id", "consumer_id", "offset", "status", "username", "password"]),
    json_values, max_size=8)

PARSERS = [
    lambda f: _options(f),
    lambda f: views.parse_permissions(f),
    lambda f: views.parse_headers(f),
    lambda f: _partitioning(f),
    lambda f: consumer_id(f),
    lambda f: (f.name(), f.integer("partitions_count", 1, hi=1000)),
    lambda f: f.choice("status", {"active": 1}, None),
    lambda f: f.b64("payload", None),
]


@settings(max_examples=300, deadline=None)
@given(objects, st.sampled_from(range(len(PARSERS))))
def test_any_object_parses_or_is_a_field_error(data: dict, which: int) -> None:
    try:
        PARSERS[which](Fields(data))
    except FieldError as e:
        assert status_of(e.code) == 400 and e.field
    except IggyError as e:  # an engine-side option check: still a typed 4xx
        assert status_of(e.code) in (400, 404)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_body_is_an_object_or_a_400(raw: bytes) -> None:
    try:
        fields = parse_json(raw)
    except FieldError as e:
        assert e.field == "body"
    else:
        assert isinstance(fields.data, dict)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["count", "value", "kind", "auto_commit", "partition_id"]),
                       st.text(max_size=50), max_size=5))
def test_any_query_string_is_typed_or_a_400(query: dict) -> None:
    q = Fields.from_query(query)
    try:
        assert isinstance(q.integer("count", 10, lo=1, hi=100_000), int)
        assert isinstance(q.flag("auto_commit", False), bool)
    except FieldError:
        pass


@given(st.text(max_size=300))
def test_path_identifiers(text: str) -> None:
    try:
        value = identifier(text, "stream_id")
    except FieldError:
        assert not text or len(text.encode()) > 255 or (text.isdigit() and text.isascii())
    else:
        assert value == (int(text) if text.isdigit() and text.isascii() else text)


def test_headers_round_trip_through_json() -> None:
    block = uh.encode([(uh.STRING, b"traceparent", uh.STRING, b"00-1-2-01"),
                       (uh.RAW, b"\x00k", uh.UINT32, b"\x01\x00\x00\x00")])
    rendered = views.headers(block)
    assert rendered[0]["key"]["kind"] == "string" and rendered[1]["value"]["kind"] == "uint32"
    assert views.parse_headers(Fields({"user_headers": rendered})) == block
    assert views.parse_headers(Fields({"user_headers": views.b64(block)})) == block


@pytest.mark.parametrize("bad", [[{"key": {"kind": "string", "value": ""},
                                   "value": {"kind": "string", "value": "eA=="}}],
                                 [{"key": {"kind": "nope", "value": "eA=="},
                                   "value": {"kind": "string", "value": "eA=="}}], "%%%", [1]])
def test_bad_headers_are_field_errors(bad) -> None:
    with pytest.raises(FieldError):
        views.parse_headers(Fields({"user_headers": bad}))
