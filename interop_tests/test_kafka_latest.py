"""The newest Kafka release (KAFKA_LATEST, 4.4.0) beside 4.1.1: a 4.4.0 broker (one for this
module) and the 4.4.0 Java client against it and against pyggy, with the scenarios of
test_java_client.py: the same answers as with 4.1.1."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop_tests import java_client
from interop_tests.conftest import _unavailable
from interop_tests.kafka_broker.broker import (
    KAFKA_LATEST,
    BrokerUnavailable,
    RealKafka,
    start_real_kafka,
)
from interop_tests.test_java_client import EXPECTED, KAFKA_TV2, TXN_EXPECTED
from pyggy.testing import PyggyServer


@pytest.fixture(scope="module")
def latest_brokers(tmp_path_factory: pytest.TempPathFactory,
                   pyggy_kafka: PyggyServer) -> Iterator[dict[str, str]]:
    """{"kafka": a Kafka 4.4.0 broker, "pyggy": the session's pyggy}."""
    started = time.monotonic()
    try:
        broker: RealKafka = start_real_kafka(tmp_path_factory.mktemp("kafka-latest"),
                                             version=KAFKA_LATEST)
    except BrokerUnavailable as e:
        _unavailable(f"no Kafka {KAFKA_LATEST} broker: {e}")
    print(f"Kafka {KAFKA_LATEST} ({broker.kind}) at {broker.bootstrap}, "
          f"ready in {time.monotonic() - started:.1f} s")
    yield {"kafka": broker.bootstrap, "pyggy": pyggy_kafka.kafka_address}
    broker.close()


@pytest.fixture(scope="module")
def latest_client() -> Path:
    """interop_tests/java_client built with kafka-clients 4.4.0."""
    try:
        return java_client.build(version=KAFKA_LATEST)
    except BrokerUnavailable as e:
        _unavailable(str(e))


def test_java_client_latest_same_on_both(latest_brokers: dict[str, str],
                                         latest_client: Path) -> None:
    results = {}
    for name, bootstrap in latest_brokers.items():
        suffix = uuid.uuid4().hex[:8]
        results[name] = java_client.run(latest_client, bootstrap, f"j44-{suffix}",
                                        f"j44g-{suffix}")
    assert results["kafka"] == EXPECTED, f"Kafka {KAFKA_LATEST} answered unlike Kafka 4.1"
    assert results["pyggy"] == results["kafka"]


def test_java_transactions_latest_same_on_both(latest_brokers: dict[str, str],
                                               latest_client: Path) -> None:
    results = {}
    for name, bootstrap in latest_brokers.items():
        suffix = uuid.uuid4().hex[:8]
        results[name] = java_client.run(latest_client, bootstrap, f"j44tx-{suffix}",
                                        f"j44tg-{suffix}", f"j44tid-{suffix}",
                                        main="dev.pyggy.interop.TransactionScenario")
    assert results["kafka"] == TXN_EXPECTED | KAFKA_TV2, \
        f"Kafka {KAFKA_LATEST} answered unlike Kafka 4.1"
    assert results["pyggy"] == TXN_EXPECTED  # transaction.version 1 (test_java_client.py)
