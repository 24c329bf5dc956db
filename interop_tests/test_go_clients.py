"""sarama and franz-go as clients (interop_tests/go_client, versions pinned in its go.mod): create a
3-partition topic (and again: TOPIC_ALREADY_EXISTS), produce records with headers and explicit
timestamps through the idempotent producer, consume them in a group, commit, and read back the
committed offsets and the group description. Same JSON results on real Kafka and pyggy."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from interop_tests import go_tools
from interop_tests.kafka_broker.broker import BrokerUnavailable

RECORDS = 30
EXPECTED = {
    "create": "ok",
    "create_again": "TOPIC_ALREADY_EXISTS",
    "produced": {str(p): list(range(RECORDS // 3)) for p in range(3)},
    "consumed": RECORDS,
    "intact": RECORDS,
    "assigned": [0, 1, 2],
    "committed": {str(p): RECORDS // 3 for p in range(3)},
    "group_state": "Empty",
    "group_members": 0,
    "group_protocol_type": "consumer",
}


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return go_tools.build_go_client(tmp_path_factory.mktemp("go-client"))
    except BrokerUnavailable as e:
        if os.environ.get("CI"):
            pytest.fail(str(e), pytrace=False)
        pytest.skip(str(e))


def run_client(binary: Path, lib: str, bootstrap: str) -> dict:
    suffix = uuid.uuid4().hex[:8]
    proc = subprocess.run(
        [str(binary), "-lib", lib, "-brokers", bootstrap, "-topic", f"go-{lib}-{suffix}",
         "-group", f"gog-{lib}-{suffix}", "-n", str(RECORDS)],
        capture_output=True, text=True, timeout=150, check=False,
        env=os.environ | {"GOMAXPROCS": "2"},
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(
            f"go-client {lib} on {bootstrap} exited {proc.returncode}: {proc.stdout[-2000:]}\n"
            f"{proc.stderr[-4000:]}"
        )
    result = json.loads(lines[-1])
    result.pop("lib")
    return result


@pytest.mark.parametrize("lib", ["sarama", "franz"])
def test_go_client_same_on_both(brokers: dict[str, str], go_client: Path, lib: str) -> None:
    results = {name: run_client(go_client, lib, bootstrap) for name, bootstrap in brokers.items()}
    assert results["kafka"] == EXPECTED, "real Kafka answered unlike Kafka 4.1"
    diffs = {
        k: (results["kafka"].get(k), results["pyggy"].get(k))
        for k in EXPECTED
        if results["kafka"].get(k) != results["pyggy"].get(k)
    }
    assert not diffs, f"pyggy differs from real Kafka (kafka, pyggy): {diffs}"
