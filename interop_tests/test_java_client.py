"""The official Java client (kafka-clients 4.1.1, default config: idempotent producer, acks=all)
through a small Maven-built program: AdminClient create/describe/list/delete topic, producer,
group consumer with commitSync, group offsets and description. Same results on both brokers."""

from __future__ import annotations

import uuid
from pathlib import Path

from interop_tests import java_client

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
