"""Error codes agree with kafka-python's table (number and name, Kafka's spelling)."""

from __future__ import annotations

import pytest
from pyggy.kafka_wire.protocol import ErrorCode
from pyggy.kafka_wire.protocol.errors import RETRIABLE

kafka_errors = pytest.importorskip("kafka.errors")

# kafka-python spells a few differently from Kafka's Errors.java (which we follow).
_ALIASES = {
    -1: "UNKNOWN", 0: "NO_ERROR", 4: "INVALID_FETCH_SIZE", 6: "NOT_LEADER_FOR_PARTITION",
    10: "MESSAGE_SIZE_TOO_LARGE", 17: "INVALID_TOPIC", 39: "INVALID_REPLICATION_ASSIGNMENT",
}  # fmt: skip


def _kafka_python_codes() -> dict[int, str]:
    out = {}
    for obj in vars(kafka_errors).values():
        errno = getattr(obj, "errno", None)
        if isinstance(obj, type) and isinstance(errno, int):
            out[errno] = obj.message
    return out


def test_codes_match_kafka_python() -> None:
    theirs = _kafka_python_codes()
    assert set(theirs) <= {int(c) for c in ErrorCode}
    for code, name in theirs.items():
        assert ErrorCode(code).name == name or _ALIASES.get(code) == name, code


def test_well_known_codes() -> None:
    assert ErrorCode.UNKNOWN_TOPIC_OR_PARTITION == 3
    assert ErrorCode.UNSUPPORTED_VERSION == 35
    assert ErrorCode.TOPIC_ALREADY_EXISTS == 36
    assert ErrorCode.REBOOTSTRAP_REQUIRED == 129
    assert ErrorCode.NOT_COORDINATOR in RETRIABLE and ErrorCode.NONE not in RETRIABLE
