"""Differential tests: one scenario, one real client, run on broker ∈ {real Apache Kafka, pyggy};
the two brokers' normalised observable results must be equal.

Each test runs the scenario against both brokers itself (so a failure shows both answers side
by side, key by key) and also checks the real broker's answer against what Kafka 4.1 is known
to answer (`KAFKA_ANSWERS`), so that a comparison cannot pass because both sides are broken
the same way. What is normalised, and why, is listed in interop_tests/scenarios.py:
broker/cluster/member ids, hosts and ports, throttle times and error message texts are
implementation-specific and dropped; the generated topic/group names are replaced by their
prefix here.
"""

from __future__ import annotations

import pprint
import re
from typing import Any

import pytest

from interop_tests import scenarios
from interop_tests.scenarios import BASE_TS, N_RECORDS, PARTITIONS, SCENARIOS

CLIENTS = ["kafka-python", "confluent-kafka"]
_UNIQUE = re.compile(r"\b([a-z]+(?:-[a-z]+)*)-[0-9a-f]{10}\b")

# What Kafka 4.1.1 answers, per (scenario, client): {result key: value}. Only keys listed are
# checked here; every key is compared with pyggy's.
KAFKA_ANSWERS: dict[tuple[str, str], dict[str, Any]] = {
    ("error_codes", "kafka-python"): {
        "too_large": "MessageSizeTooLargeError",
        "metadata_unknown_topic": ["3 UnknownTopicOrPartitionError"],
        "list_offsets_unknown_topic": "3 UnknownTopicOrPartitionError",
        "list_offsets_bad_partition": "3 UnknownTopicOrPartitionError",
        "list_offsets_latest": "0 NoError offset=3",
        "fetch_offset_out_of_range": "1 OffsetOutOfRangeError hw=-1",
        "fetch_bad_partition": "3 UnknownTopicOrPartitionError hw=-1",
        "fetch_unknown_topic": "3 UnknownTopicOrPartitionError hw=-1",
        "fetch_ok": "0 NoError hw=3",
        "create_topic": "0 NoError",
        "create_duplicate_topic": "36 TopicAlreadyExistsError",
        "create_invalid_config_value": "40 InvalidConfigurationError",
        "create_invalid_config_number": "40 InvalidConfigurationError",
        "create_unknown_config": "40 InvalidConfigurationError",
        "create_zero_partitions": "37 InvalidPartitionsError",
        "create_replication_factor_3": "38 InvalidReplicationFactorError",
        "delete_unknown_topic": "3 UnknownTopicOrPartitionError",
        "join_without_member_id": "79 MemberIdRequiredError",
        "join": ("0 NoError", 1, True, "p1", [b"\x00\x01"]),
        "sync_wrong_generation": ("22 IllegalGenerationError", None),
        "sync_unknown_member": ("25 UnknownMemberIdError", None),
        "sync": ("0 NoError", b"\x07"),
        "heartbeat": "0 NoError",
        "heartbeat_wrong_generation": "22 IllegalGenerationError",
        "heartbeat_unknown_member": "25 UnknownMemberIdError",
        "heartbeat_unknown_group": "25 UnknownMemberIdError",
        "commit_wrong_generation": ["22 IllegalGenerationError"],
        "commit_unknown_member": ["25 UnknownMemberIdError"],
        "commit": ["0 NoError"],
        "leave_unknown_member": ("0 NoError", ["25 UnknownMemberIdError"]),
        "leave": ("0 NoError", ["0 NoError"]),
        "heartbeat_after_leave": "25 UnknownMemberIdError",
    },
    ("error_codes", "confluent-kafka"): {
        "produce": [None, None, None],
        "too_large": [(10, "MSG_SIZE_TOO_LARGE")],
        "describe_unknown_topic": (3, "UNKNOWN_TOPIC_OR_PART"),
        "create": None,
        "create_duplicate": (36, "TOPIC_ALREADY_EXISTS"),
        "create_invalid_config": (40, "INVALID_CONFIG"),
        "create_zero_partitions": (37, "INVALID_PARTITIONS"),
        "delete_unknown_topic": (3, "UNKNOWN_TOPIC_OR_PART"),
        "offset_out_of_range": (-140, "_AUTO_OFFSET_RESET"),
    },
    ("topic_admin", "kafka-python"): {
        "create": [("adm-kp", "0 NoError", 2)],
        "describe": [("adm-kp", "0 NoError", [0, 1])],
        "describe_configs": {"cleanup.policy": "delete", "retention.ms": "3600000"},
        "create_partitions": [("adm-kp", "0 NoError")],
        "partitions_after": 4,
        "delete": [("adm-kp", "0 NoError")],
        "gone_after_delete": True,
    },
    ("topic_admin", "confluent-kafka"): {
        "create": None,
        "metadata": (0, [0, 1]),
        "describe_topics": ("adm-ck", [0, 1], [1, 1]),
        "describe_configs": {"cleanup.policy": "delete", "retention.ms": "3600000"},
        "create_partitions": None,
        "delete": None,
    },
    ("consumer_group", "kafka-python"): {
        "alone_assignment": [0, 1, 2],
        "alone_consumed": N_RECORDS,
        "two_member_assignment": [[0, 1], [2]],
        "two_member_generation_step": 1,
        "list_group_offsets": [(True, p, 5, f"meta-{p}") for p in range(PARTITIONS)],
        "listed": [("g-kp", "consumer", "Empty")],
        "delete_groups": {"g-kp": "OK"},
        "delete_groups_again": {"g-kp": "GroupIdNotFoundError"},
    },
    ("producer_state", "kafka-python"): {
        "init": ("0 NoError", 0),
        "in_order": ["0 NoError offset=0", "0 NoError offset=2"],
        "retry": "0 NoError offset=0",
        "gap": "45 OutOfOrderSequenceNumberError",
        "init_naming_itself": ("0 NoError", False, 0),
        "new_epoch_not_at_0": "45 OutOfOrderSequenceNumberError",
        "new_epoch_at_0": ["0 NoError offset=3", "0 NoError offset=4"],
        "old_epoch_after_it": "47 InvalidProducerEpochError",
        "new_producer_anywhere": ["0 NoError offset=5", "0 NoError offset=6",
                                  "45 OutOfOrderSequenceNumberError"],
    },
    ("consumer_group", "confluent-kafka"): {
        "assignment": [0, 1, 2],
        "committed": [(p, 7, f"m{p}") for p in range(PARTITIONS)],
        "group_offsets": [(p, 7, f"m{p}") for p in range(PARTITIONS)],
        "listed": [("g-ck", False, "EMPTY")],
        "describe_after_close": {"members": 0, "state": "EMPTY"},
    },
}


def normalise(value: Any) -> Any:
    """Generated names ("adm-kp-0123456789") → their prefix; containers recursively."""
    if isinstance(value, str):
        return _UNIQUE.sub(r"\1", value)
    if isinstance(value, dict):
        return {normalise(k): normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, tuple):
        return tuple(normalise(v) for v in value)
    return value


def _check_round_trip(result: dict) -> None:
    """produce_consume on Kafka: every record back, byte for byte, at the expected offset."""
    want = sorted(
        (r["partition"], i // PARTITIONS, r["key"], r["value"], r["headers"], r["timestamp"])
        for i, r in enumerate(scenarios.records())
    )
    got = [(c[0], c[1], c[2], c[3], c[4], c[-1]) for c in result["consumed"]]
    assert got == want
    assert [a[:2] for a in result["acks"]] == [(i % PARTITIONS, i // PARTITIONS)
                                              for i in range(N_RECORDS)]  # fmt: skip
    assert [a[2] for a in result["acks"]] in (
        [BASE_TS + i * 1000 for i in range(N_RECORDS)],  # kafka-python: the CreateTime
        [(1, BASE_TS + i * 1000) for i in range(N_RECORDS)],  # confluent: (type, ts)
    )


def _differences(kafka: dict, pyggy: dict) -> list[str]:
    out = []
    for key in sorted(set(kafka) | set(pyggy), key=str):
        k, p = kafka.get(key, "<missing>"), pyggy.get(key, "<missing>")
        if k != p:
            out.append(
                f"  {key}:\n    kafka: {pprint.pformat(k, width=90)}\n"
                f"    pyggy: {pprint.pformat(p, width=90)}"
            )
    return out


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_pyggy_answers_as_kafka(scenario: str, client: str, brokers: dict[str, str]) -> None:
    _compare(scenario, client, SCENARIOS[scenario][client], brokers)


def test_idempotent_producer_state_answers_as_kafka(brokers: dict[str, str]) -> None:
    """Sequence and epoch checks, and InitProducerId naming the producer's own id and epoch:
    Kafka hands an idempotent producer a new id then (docs/cluster.md, finding N-d)."""
    _compare("producer_state", "kafka-python", scenarios.producer_state_kafka_python, brokers)


def _compare(scenario: str, client: str, run: Any, brokers: dict[str, str]) -> None:
    kafka = normalise(run(brokers["kafka"]))
    if scenario == "produce_consume":
        _check_round_trip(kafka)
    known = KAFKA_ANSWERS.get((scenario, client), {})
    drift = {k: (kafka.get(k), v) for k, v in known.items() if kafka.get(k) != v}
    assert not drift, f"the real Kafka broker answered unlike Kafka 4.1 (got, known): {drift}"

    try:
        pyggy = normalise(run(brokers["pyggy"]))
    except Exception as e:  # the scenario itself broke on pyggy: show Kafka's answer with it
        pytest.fail(
            f"{scenario} with {client} raised on pyggy: {e!r}\n"
            f"real Kafka answered:\n{pprint.pformat(kafka, width=100)}"
        )
    diffs = _differences(kafka, pyggy)
    assert not diffs, (
        f"{scenario} with {client}: pyggy differs from real Kafka in {len(diffs)} result(s):\n"
        + "\n".join(diffs)
    )
