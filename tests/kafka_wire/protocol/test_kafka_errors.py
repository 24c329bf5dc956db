"""pyggy's one Kafka error table (`pyggy.core.records.kafka_errors`) is Kafka's `Errors`: same
codes, same names, same retriable set, read from the Kafka release the interop suite runs."""

from __future__ import annotations

from kafka_spec import error_table
from pyggy.core.records.kafka_errors import RETRIABLE, ErrorCode


def test_codes_and_names_match_kafka() -> None:
    theirs = {code: name for code, (name, _) in error_table().items()}
    assert len(theirs) > 130  # the whole table was read
    assert {int(c): c.name for c in ErrorCode} == theirs


def test_retriable_codes_match_kafka() -> None:
    theirs = {code for code, (_, retriable) in error_table().items() if retriable}
    assert {int(c) for c in RETRIABLE} == theirs
    assert ErrorCode.NOT_COORDINATOR in RETRIABLE and ErrorCode.NONE not in RETRIABLE
