"""The metadata state machine's consumer-state op (`STATE`) on a real engine: a change is
applied and its result handed to the proposer; a malformed body — any bytes, any JSON — is
refused with an error code and changes nothing, never an exception out of `apply` (which
would stop the replica)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyggy.cluster.metadata_sm import STATE, MetadataMachine, reply_result
from pyggy.core.engine import CONSUMER, LogEngine
from pyggy.core.errors import ErrorCode, IggyError


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> MetadataMachine:
    engine = LogEngine(Path(tmp_path_factory.mktemp("sm")))
    engine.open(("iggy", "iggy"))
    engine.metadata.apply({"type": "create_stream", "name": "s", "created_at": 1})
    engine.metadata.apply({"type": "create_topic", "stream_id": 0, "name": "t",
                           "partitions_count": 1, "options": [], "created_at": 1})
    return MetadataMachine(engine)


def store(stream: object = 0, key: object = "c", offset: object = 3) -> bytes:
    return json.dumps({"kind": "iggy_offset", "stream_id": stream, "topic_id": 0,
                       "partition_id": 0, "consumer_kind": CONSUMER, "key": key,
                       "offset": offset}).encode()


def test_a_change_is_applied_and_a_missing_offset_refused_the_same_everywhere(
        machine: MetadataMachine) -> None:
    reply = machine.apply(1, STATE, store(), 0)
    assert reply_result(machine, reply) is None
    assert machine.engine.consumers.get_offset(CONSUMER, "c", 0, 0, 0)[2] == 3
    gone = json.dumps({"kind": "iggy_offset_delete", "stream_id": 0, "topic_id": 0,
                       "partition_id": 0, "consumer_kind": CONSUMER, "key": "x"}).encode()
    with pytest.raises(IggyError) as refused:
        reply_result(machine, machine.apply(2, STATE, gone, 0))
    assert refused.value.code == ErrorCode.CONSUMER_OFFSET_NOT_FOUND


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                           max_leaves=8)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode())
       | st.builds(store, json_values, json_values, json_values))
def test_any_malformed_body_is_refused_without_an_exception(machine: MetadataMachine,
                                                            body: bytes) -> None:
    offsets = machine.engine.files.offsets_of(machine.engine.metadata.topic(0, 0), 0)
    before = dict(offsets.values)
    answer = json.loads(machine.apply(9, STATE, body, 0))
    assert answer["op"] == 9
    changed = {k: v for k, v in offsets.values.items() if before.get(k) != v}
    if changed:  # only a well-formed store to this partition changes anything
        doc = json.loads(body)
        assert "code" not in answer and (doc["stream_id"], doc["topic_id"]) == (0, 0)
        assert changed == {(CONSUMER, doc["key"]): doc["offset"]}
    machine.results.clear()
    machine.engine.replicated.backlog.clear()


def test_a_checkpoint_ahead_of_the_state_log_is_missing_state(machine: MetadataMachine) -> None:
    last = machine.commands.last_op
    assert not machine.missing(machine.snapshot())
    assert not machine.missing(struct.pack("<Q", last))
    assert machine.missing(struct.pack("<Q", last + 1))  # fetched (or fenced), not restored
