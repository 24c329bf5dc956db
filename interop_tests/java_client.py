"""Build (with Maven, cached) and run interop_tests/java_client: the official Java client with
its default configuration (idempotent producer), a group consumer and the AdminClient."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from interop_tests.kafka_broker.broker import KAFKA_VERSION, BrokerUnavailable, maven_repo

PROJECT = Path(__file__).resolve().parent / "java_client"
MAIN = "dev.pyggy.interop.ClientScenario"


def _source_hash(project: Path, version: str) -> str:
    h = hashlib.sha256(version.encode())
    for path in sorted([project / "pom.xml", *project.rglob("*.java")]):
        if "target" not in path.relative_to(project).parts:
            h.update(path.read_bytes())
    return h.hexdigest()


def build(project: Path = PROJECT, version: str = KAFKA_VERSION, timeout: float = 600.0) -> Path:
    """`mvn package` of a Maven project of interop_tests/ with Kafka `version` (its pom puts
    the build in target/<version>), unless that matches the sources; the target directory."""
    target = project / "target" / version
    stamp = target / ".pyggy-stamp"
    digest = _source_hash(project, version)
    if stamp.is_file() and stamp.read_text() == digest:
        return target
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise BrokerUnavailable(f"{tool} not found on PATH")
    proc = subprocess.run(
        ["nice", "-n", "10", "mvn", "-q", "-B", f"-Dmaven.repo.local={maven_repo()}",
         f"-Dkafka.version={version}", "package"],
        cwd=project, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BrokerUnavailable(f"mvn could not build {project} ({version}):\n{tail}")
    stamp.write_text(digest)
    return target


def run(target: Path, *args: str, main: str = MAIN, timeout: float = 180.0,
        properties: Path | None = None) -> dict:
    """Run a program of the project (by default the scenario: BOOTSTRAP TOPIC GROUP);
    {key: value text} from its RESULT lines (raises if it failed). `properties`: a Java
    properties file of extra client settings (e.g. SSL), passed as the last argument."""
    extra = [str(properties)] if properties is not None else []
    proc = subprocess.run(
        ["java", "-Xmx256m", "-XX:ActiveProcessorCount=2", "-XX:TieredStopAtLevel=1",
         "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
         "-cp", f"{target / 'classes'}:{target / 'libs'}/*", main, *args, *extra],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    results = dict(
        line[len("RESULT "):].split("=", 1)
        for line in proc.stdout.splitlines() if line.startswith("RESULT ")
    )  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(
            f"Java client exited {proc.returncode}; results so far {results}\n{proc.stderr[-4000:]}"
        )
    return results
