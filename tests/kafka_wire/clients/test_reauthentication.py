"""KIP-368 with real clients: with `[kafka] connections_max_reauth` a SASL session lasts that
long; confluent-kafka (librdkafka 2.x) and kafka-python re-authenticate on their connections
before it ends, so a producer keeps going without a disconnect or an error."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pyggy.testing import PyggyServer

LIFETIME = 1.5  # seconds


@pytest.fixture
def server(tmp_path: Path):
    s = PyggyServer(tmp_path, args=["--log-level", "debug"], env={
        "IGGY_KAFKA_AUTHENTICATION": "sasl", "IGGY_KAFKA_CONNECTIONS_MAX_REAUTH": f"{LIFETIME} s"})
    s.start().wait_for_log("kafka listening on")
    yield s
    assert s.close() in (None, 0)


def _reauths(server: PyggyServer) -> int:
    return sum("re-authenticated as 'iggy'" in line for line in server.logs)


def _expired(server: PyggyServer) -> list[str]:
    return [line for line in server.logs if "session expired" in line]


@pytest.mark.timeout(120)
def test_confluent_kafka_re_authenticates(server: PyggyServer) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": server.kafka_address,
                         "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "iggy",
                         "sasl.password": "iggy"})
    errors: list = []
    deadline = time.monotonic() + 4 * LIFETIME
    sent = 0
    while time.monotonic() < deadline:
        producer.produce("reauth", b"x", on_delivery=lambda e, _m: e and errors.append(e))
        producer.poll(0.05)
        sent += 1
    assert producer.flush(15) == 0
    assert not errors and sent > 20
    assert _reauths(server) >= 2 and not _expired(server)


@pytest.mark.timeout(120)
def test_kafka_python_re_authenticates(server: PyggyServer) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=server.kafka_address,
                             security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                             sasl_plain_username="iggy", sasl_plain_password="iggy")
    deadline = time.monotonic() + 4 * LIFETIME
    sent = 0
    while time.monotonic() < deadline:
        producer.send("reauth", b"y").get(10)
        sent += 1
        time.sleep(0.05)
    producer.close()
    assert sent > 20
    assert _reauths(server) >= 2 and not _expired(server)
