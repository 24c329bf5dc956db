"""`[kafka] authentication`: who decides whether Kafka clients must log in.

`auto` (the default) serves anonymous clients only while the listener is loopback-only, so the
quick start needs no credentials and a server on 0.0.0.0 is never open by accident. The
0.0.0.0 listener runs in a private network namespace (`unshare -rn`), where only this test
can reach it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pyggy.config import KafkaConfig, kafka_requires_auth, loopback_only

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("address, required", [
    ("127.0.0.1:9092", False), ("127.0.0.2:9092", False), ("[::1]:9092", False),
    ("localhost:9092", False), ("0.0.0.0:9092", True), ("[::]:9092", True),
    ("10.1.2.3:9092", True), (":9092", True),
])
def test_auto_requires_sasl_unless_loopback_only(address: str, required: bool) -> None:
    assert kafka_requires_auth(KafkaConfig(address=address)) is required
    assert kafka_requires_auth(KafkaConfig(address=address, authentication="sasl"))
    assert not kafka_requires_auth(KafkaConfig(address=address, authentication="none"))


def test_loopback_only_names() -> None:
    assert loopback_only("127.0.0.1") and loopback_only("::1") and loopback_only("localhost")
    assert not loopback_only("0.0.0.0") and not loopback_only("") and not loopback_only("::")
    assert not loopback_only("no-such-host.invalid")


def _in_private_network(workdir: Path, mode: str) -> dict:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        message = "unshare/ip missing: cannot run a 0.0.0.0 listener in a private namespace"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    script = (f"ip link set lo up && exec {sys.executable} {HERE / 'netns_listener.py'} "
              f"{workdir} {mode}")
    proc = subprocess.run(["unshare", "-rn", "sh", "-c", script], capture_output=True,
                          text=True, timeout=120, env=os.environ | {"PYTHONPATH": str(HERE)},
                          check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"{proc.stdout}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1])


@pytest.mark.timeout(180)
def test_auto_on_0_0_0_0_refuses_anonymous_clients(tmp_path: Path) -> None:
    found = _in_private_network(tmp_path, "")
    assert found["decision"] == "sasl (auto: 0.0.0.0 is not loopback-only)"
    assert found["api_versions"] == 0  # ApiVersions is served before authentication
    assert found["anonymous"].startswith("refused") and found["closed"]
    assert found["sasl"] == "served" and found["exit"] in (None, 0)
    assert not found["warned"]


@pytest.mark.timeout(180)
def test_none_on_0_0_0_0_serves_anonymous_clients_with_a_warning(tmp_path: Path) -> None:
    found = _in_private_network(tmp_path, "none")
    assert found["decision"] == "none ([kafka] authentication)" and found["warned"]
    assert found["anonymous"] == "served" and not found["closed"]
