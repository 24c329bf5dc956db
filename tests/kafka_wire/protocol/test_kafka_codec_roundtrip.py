"""Round trips for every API/version, request and response, with schema-derived values;
byte-for-byte agreement with kafka-python's own protocol classes; interpreted == compiled."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyggy.kafka_wire.protocol.codec import Codec
from pyggy.kafka_wire.protocol.codec import codec as get_codec
from strategies import all_cases, message, message_strategy

CASES = all_cases()
IDS = [f"{name}-v{v}" for name, _, v, _ in CASES]
def _kafka_python_classes() -> dict[str, Any]:
    with warnings.catch_warnings():  # its schema loader uses a deprecated importlib API
        warnings.simplefilter("ignore", DeprecationWarning)
        import kafka.protocol.admin  # noqa: F401  (importing registers the classes)
        import kafka.protocol.consumer  # noqa: F401
        import kafka.protocol.metadata  # noqa: F401
        import kafka.protocol.producer  # noqa: F401
        from kafka.protocol.api_message import ApiMessage

    found: dict[str, Any] = {}
    todo = list(ApiMessage.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if getattr(cls, "_class_version", 1) is None:
            found[cls.__name__] = cls
    return found


KP = _kafka_python_classes()
# KIP-848 messages kafka-python (3.0) has no classes for
NOT_IN_KAFKA_PYTHON = frozenset(f"ConsumerGroup{api}{kind}" for api in ("Heartbeat", "Describe")
                                for kind in ("Request", "Response"))


@pytest.mark.parametrize(("name", "key", "version", "kind"), CASES, ids=IDS)
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_round_trip(name: str, key: int, version: int, kind: Any, data: st.DataObject) -> None:
    """decode(encode(v)) == v; and kafka-python's own classes, decoding our bytes and encoding
    them again, produce the very same bytes (which we decode back to v)."""
    value = data.draw(message_strategy(message(name), version))
    if name == "ApiVersionsResponse":
        value["error_code"] = 0  # clients read an errored ApiVersions body as v0 (KIP-511)
    c = get_codec(key, version, kind)
    raw = c.encode(value)
    assert c.decode(raw, strict=True) == value
    assert c.decode(memoryview(bytearray(raw))) == value
    if name in NOT_IN_KAFKA_PYTHON:  # layout checked against Kafka's JSON (crosscheck test)
        assert name not in KP, f"kafka-python now has {name}: compare with it"
        return
    theirs = KP[name].decode(raw, version=version)
    theirs._header = None  # kafka-python's decode leaves this slot unset
    again = theirs.encode(version=version)
    assert again == raw
    assert c.decode(again, strict=True) == value


@pytest.mark.parametrize(("name", "key", "version", "kind"), CASES[::7], ids=IDS[::7])
@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_interpreted_matches_compiled(
    name: str, key: int, version: int, kind: Any, data: st.DataObject
) -> None:
    value = data.draw(message_strategy(message(name), version))
    compiled = get_codec(key, version, kind)
    interpreted = Codec(compiled.message, version, compile=False)
    assert interpreted.compiled is None
    raw = compiled.encode(value)
    assert interpreted.encode(value) == raw
    assert interpreted.decode(raw, strict=True) == compiled.decode(raw) == value


def test_construct_api_parse_and_build() -> None:
    """The compiled object is a normal construct: .parse/.build work on plain bytes."""
    c = get_codec(12, 3, "request")
    value = {"group_id": "g", "generation_id": 4, "member_id": "m", "group_instance_id": None}
    raw = c.compiled.build(value)
    assert raw == c.encode(value)
    assert c.compiled.parse(raw) == value
    assert c.construct.parse(raw) == value


def test_missing_fields_take_defaults() -> None:
    c = get_codec(1, 11, "response")
    raw = c.encode({"responses": [{"topic": "t", "partitions": [{"partition_index": 2}]}]})
    part = c.decode(raw)["responses"][0]["partitions"][0]
    assert part["last_stable_offset"] == -1 and part["log_start_offset"] == -1
    assert part["preferred_read_replica"] == -1 and part["records"] is None
    assert part["aborted_transactions"] is None and part["error_code"] == 0


def test_absent_fields_decode_to_defaults() -> None:
    """Fields outside the version are present in the dict at their defaults."""
    req = get_codec(0, 2, "request").decode(
        get_codec(0, 2, "request").encode({"acks": 1, "timeout_ms": 5, "topic_data": []})
    )
    assert req["transactional_id"] is None
    md = get_codec(3, 0, "request")
    assert md.decode(md.encode({"topics": []}))["allow_auto_topic_creation"] is True


def test_tagged_fields_written_only_when_not_default() -> None:
    c = get_codec(18, 3, "response")
    plain = c.encode({"api_keys": []})
    assert plain == bytes.fromhex("0000 01 00000000 00")
    tagged = c.encode({"api_keys": [], "finalized_features_epoch": 3, "zk_migration_ready": True})
    # tag buffer: 2 fields; tag 1 size 8 epoch; tag 3 size 1 true
    assert tagged == bytes.fromhex("0000 01 00000000 02 0108 0000000000000003 0301 01")
    assert c.decode(tagged)["finalized_features_epoch"] == 3


def test_unknown_tags_are_skipped() -> None:
    c = get_codec(12, 4, "response")  # Heartbeat v4: throttle, error, tags
    raw = bytes.fromhex("00000005 0000") + bytes.fromhex("02 0703 aabbcc 6300")
    assert c.decode(raw, strict=True) == {"throttle_time_ms": 5, "error_code": 0}


def test_records_are_zero_copy_views() -> None:
    c = get_codec(0, 9, "request")
    batch = bytes(range(256)) * 4
    value = {"acks": -1, "timeout_ms": 1, "topic_data": [
        {"name": "t", "partition_data": [{"index": 0, "records": batch}]}]}  # fmt: skip
    raw = bytearray(c.encode(value))
    rec = c.decode(raw)["topic_data"][0]["partition_data"][0]["records"]
    assert isinstance(rec, memoryview) and rec == batch
    raw[raw.index(batch)] ^= 0xFF  # the view aliases the input buffer
    assert rec[0] == batch[0] ^ 0xFF


def test_encode_parts_keep_records_uncopied() -> None:
    from pyggy.kafka_wire.protocol import encode_response_parts

    records = memoryview(bytearray(100_000))
    value = {"responses": [{"topic": "t", "partitions": [{"records": records}]}]}
    parts = encode_response_parts(1, 11, value)
    assert any(p is records for p in parts)
    assert b"".join(parts) == get_codec(1, 11, "response").encode(value)


def test_versioned_consumer_protocol() -> None:
    from pyggy.kafka_wire.protocol import decode_versioned, encode_versioned

    sub = {"topics": ["a", "b"], "user_data": None, "owned_partitions": [
        {"topic": "a", "partitions": [0, 1]}], "generation_id": 3, "rack_id": "r1"}  # fmt: skip
    raw = encode_versioned("ConsumerProtocolSubscription", 3, sub)
    assert raw[:2] == b"\x00\x03"
    assert decode_versioned("ConsumerProtocolSubscription", raw) == (3, sub)
    # a newer version is read as our newest; its extra trailing fields are ignored
    newer = b"\x00\x07" + raw[2:] + b"extra"
    assert decode_versioned("ConsumerProtocolSubscription", newer) == (7, sub)
    v0 = encode_versioned("ConsumerProtocolAssignment", 0, {"assigned_partitions": [
        {"topic": "t", "partitions": [2]}], "user_data": b"u"})  # fmt: skip
    assert v0 == bytes.fromhex("0000 00000001 0001 74 00000001 00000002 00000001 75")
