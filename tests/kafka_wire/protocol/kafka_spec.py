"""Apache Kafka's own protocol definitions, read from the Kafka release the interop suite runs.

`scripts/install-test-deps.sh` resolves that release's jars into
`~/.cache/pyggy/kafka-libs/<version>-<pom hash>/` (interop_tests/kafka_broker/broker.py);
`kafka-clients-<version>.jar` carries the JSON message definitions (`common/message/*.json`)
and the `Errors` enum. Without them the tests that use this module fail (they never skip): the
cross-checks are what keeps pyggy's schema lines and error table honest.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from interop_tests.kafka_broker.broker import KAFKA_VERSION, libs_dir

HERE = Path(__file__).resolve().parent
_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)  # Kafka's JSON files carry // comments


def _jar(pattern: str) -> Path:
    jars = sorted(libs_dir().glob(pattern))
    if not jars:
        pytest.fail(f"no {pattern} of Kafka {KAFKA_VERSION} in {libs_dir()}: run "
                    "`bash scripts/install-test-deps.sh` (needs Java 17 and Maven)", pytrace=False)
    return jars[0]


def clients_jar() -> Path:
    return _jar(f"kafka-clients-{KAFKA_VERSION}.jar")


@cache
def message_specs() -> dict[str, dict[str, Any]]:
    """Every message definition of the jar by name (``ProduceRequest``, ...)."""
    specs = {}
    with zipfile.ZipFile(clients_jar()) as jar:
        for name in jar.namelist():
            if name.startswith("common/message/") and name.endswith(".json"):
                spec = json.loads(_COMMENT.sub("", jar.read(name).decode()))
                specs[spec["name"]] = spec
    if not specs:
        pytest.fail(f"{clients_jar()} holds no common/message/*.json", pytrace=False)
    return specs


@cache
def error_table() -> dict[int, tuple[str, bool]]:
    """Kafka's `Errors`: code → (name, whether its exception is retriable)."""
    java = shutil.which("java")
    if java is None:
        pytest.fail("java not found: the Kafka error table is read with it", pytrace=False)
    classpath = f"{clients_jar()}:{_jar('slf4j-api-*.jar')}"
    done = subprocess.run([java, "-cp", classpath, str(HERE / "KafkaErrors.java")],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode:
        pytest.fail(f"KafkaErrors.java failed:\n{done.stderr}", pytrace=False)
    rows = (line.split() for line in done.stdout.splitlines())
    return {int(code): (name, retriable == "true") for code, name, retriable in rows}
