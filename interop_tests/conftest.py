"""Fixtures for the interop suite: a real Apache Kafka 4.x broker, the Kafka CLI tools, and a
pyggy server, all session-scoped (scenarios use fresh topic and group names).

A real broker or the CLI jars that cannot be had fail the tests under CI (`CI` set) and skip
them elsewhere, with the reason (interop_tests/kafka_broker/broker.py says what is tried).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop_tests.kafka_broker.broker import (
    AUTO_CREATE_PARTITIONS,
    BrokerUnavailable,
    KafkaCli,
    RealKafka,
    resolve_jars,
    start_real_kafka,
)
from pyggy.testing import PyggyServer


def _unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def real_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealKafka]:
    """A running real Kafka broker: `.bootstrap` ("127.0.0.1:port"), `.kind` (external, docker
    or jvm). Terminated at the end of the session."""
    started = time.monotonic()
    try:
        broker = start_real_kafka(tmp_path_factory.mktemp("real-kafka"))
    except BrokerUnavailable as e:
        _unavailable(f"no real Kafka broker: {e}")
    print(f"real Kafka ({broker.kind}) at {broker.bootstrap}, "
          f"ready in {time.monotonic() - started:.1f} s")  # fmt: skip
    yield broker
    broker.close()


@pytest.fixture(scope="session")
def kafka_cli(tmp_path_factory: pytest.TempPathFactory) -> KafkaCli:
    """Kafka's CLI tools (TopicCommand, ConsoleProducer, ...) from the Maven jars."""
    try:
        libs = resolve_jars()
    except BrokerUnavailable as e:
        _unavailable(f"no Kafka CLI jars: {e}")
    return KafkaCli(libs, tmp_path_factory.mktemp("kafka-cli"))


@pytest.fixture(scope="session")
def java_target() -> Path:
    """interop_tests/java_client built with Maven (cached by source hash)."""
    from interop_tests import java_client

    try:
        return java_client.build()
    except BrokerUnavailable as e:
        _unavailable(str(e))


@pytest.fixture(scope="session")
def kafka_apps_target() -> Path:
    """interop_tests/kafka_apps (Kafka Streams word count, Kafka Connect) built with Maven."""
    from interop_tests import kafka_apps

    try:
        return kafka_apps.build()
    except BrokerUnavailable as e:
        _unavailable(str(e))


@pytest.fixture(scope="session")
def pyggy_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyggyServer]:
    """A pyggy server for the whole interop session; its Kafka door is `.kafka_address`.
    Auto-created topics get as many partitions as on the real broker."""
    server = PyggyServer(
        tmp_path_factory.mktemp("pyggy"),
        env={"IGGY_KAFKA_NUM_PARTITIONS": str(AUTO_CREATE_PARTITIONS)},
    ).start()
    server.wait_for_log("kafka listening on")
    yield server
    errors = [line for line in server.logs if "Traceback" in line or " ERROR " in line]
    code = server.close()
    assert code in (None, 0), f"pyggy exited with {code}\n{server.format_logs()}"
    assert not errors, "pyggy logged errors:\n" + "\n".join(errors)


@pytest.fixture(scope="session")
def brokers(real_kafka: RealKafka, pyggy_kafka: PyggyServer) -> dict[str, str]:
    """{"kafka": bootstrap of the real broker, "pyggy": pyggy's Kafka door}."""
    return {"kafka": real_kafka.bootstrap, "pyggy": pyggy_kafka.kafka_address}
