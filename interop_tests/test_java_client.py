"""The official Java client (kafka-clients 4.1.1, default config: idempotent producer, acks=all)
through a small Maven-built program: AdminClient create/describe/list/delete topic, producer,
group consumer with commitSync, group offsets and description. Same results on both brokers,
and the same on pyggy over SSL and SASL_SSL."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from interop_tests import java_client
from pyggy.testing import PyggyServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "transport"))
from certs import CertAuthority  # noqa: E402  (the test CA of tests/transport)

OFFSETS = "{" + ", ".join(f"{p}=[{', '.join(map(str, range(20)))}]" for p in range(3)) + "}"
EXPECTED = {
    "admin.create": "ok",
    "admin.create_again": "TopicExistsException",
    "admin.partitions": "3",
    "admin.cluster_nodes": "1",
    "admin.topic_listed": "true",
    "producer.offsets": OFFSETS,
    "consumer.consumed": "60",
    "consumer.intact": "60",
    "consumer.assigned": "[0, 1, 2]",
    "consumer.committed": "60",
    "admin.group_offsets": "60",
    "admin.group_state": "Empty",
    "admin.group_members": "0",
    "admin.delete": "ok",
}


def test_java_client_same_on_both(brokers: dict[str, str], java_target: Path) -> None:
    results = {}
    for name, bootstrap in brokers.items():
        suffix = uuid.uuid4().hex[:8]
        results[name] = java_client.run(java_target, bootstrap, f"java-{suffix}", f"jg-{suffix}")
    assert results["kafka"] == EXPECTED, "real Kafka answered unlike Kafka 4.1"
    diffs = {k: (results["kafka"].get(k), results["pyggy"].get(k))
             for k in EXPECTED if results["kafka"].get(k) != results["pyggy"].get(k)}
    assert not diffs, f"pyggy differs from real Kafka (kafka, pyggy): {diffs}"


@pytest.mark.parametrize(("protocol", "certificate"), [("SSL", "self-signed"),
                                                       ("SASL_SSL", "ca-signed")])
def test_java_client_over_tls(java_target: Path, tmp_path: Path, protocol: str,
                              certificate: str) -> None:
    """The same scenario against a pyggy whose Kafka door speaks TLS only: SSL with the
    certificate pyggy generates, SASL_SSL (PLAIN) with one signed by a CA made here."""
    env = {"IGGY_KAFKA_TLS_ENABLED": "true"}
    if certificate == "ca-signed":
        ca = CertAuthority.create(tmp_path / "ca")
        chain, key = ca.issue(tmp_path / "ca", ["localhost", "127.0.0.1"])
        env |= {"IGGY_KAFKA_TLS_SELF_SIGNED": "false", "IGGY_KAFKA_TLS_CERT_FILE": str(chain),
                "IGGY_KAFKA_TLS_KEY_FILE": str(key)}
    server = PyggyServer(tmp_path / "pyggy", env=env).start()
    try:
        server.wait_for_log("kafka listening on")
        trust = ca.cert_file if certificate == "ca-signed" else \
            server.data_path / "certs" / "pyggy_cert.pem"
        settings = [f"security.protocol={protocol}", "ssl.truststore.type=PEM",
                    f"ssl.truststore.location={trust}"]
        if protocol == "SASL_SSL":
            settings += ["sasl.mechanism=PLAIN",
                         "sasl.jaas.config=org.apache.kafka.common.security.plain."
                         'PlainLoginModule required username="iggy" password="iggy";']
        properties = tmp_path / "client.properties"
        properties.write_text("\n".join(settings) + "\n")
        suffix = uuid.uuid4().hex[:8]
        results = java_client.run(java_target, server.kafka_address, f"java-tls-{suffix}",
                                  f"jg-{suffix}", properties=properties)
    finally:
        server.close()
    assert results == EXPECTED
