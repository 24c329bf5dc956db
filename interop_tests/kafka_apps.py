"""Kafka applications, unchanged, against any bootstrap address (pyggy's Kafka door or a real
broker): the Kafka Streams word count of interop_tests/kafka_apps (WordCountApp) and a Kafka
Connect worker in distributed mode (connect-runtime's ConnectDistributed with connect-file's
FileStreamSource/Sink connectors), all built with Maven from Maven Central (`build`)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from interop_tests import java_client
from interop_tests.kafka_broker.broker import (
    KAFKA_VERSION,
    ProcessOutput,
    free_port,
    stop_process,
)

PROJECT = Path(__file__).resolve().parent / "kafka_apps"
WORD_COUNT = "dev.pyggy.interop.WordCountApp"
CONNECT_DISTRIBUTED = "org.apache.kafka.connect.cli.ConnectDistributed"
JVM_OPTS = ("-Xms64m", "-Xmx384m", "-XX:ActiveProcessorCount=2", "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.showDateTime=true")


def build(version: str = KAFKA_VERSION) -> Path:
    """interop_tests/kafka_apps built against Kafka `version` (cached by source hash)."""
    return java_client.build(PROJECT, version)


class JavaApp:
    """A long-running Java program of the project; its output goes to `log_path` and a buffer
    that `wait_for` watches."""

    def __init__(self, target: Path, main: str, args: Sequence[str], log_path: Path) -> None:
        self.cmd = ["java", *JVM_OPTS, "-cp", f"{target / 'classes'}:{target / 'libs'}/*", main,
                    *args]
        self.log_path = log_path
        self.output = ProcessOutput()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> JavaApp:
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.output.follow(self.proc, self.log_path.open("a"), "java-app-log")
        return self

    def wait_for(self, needle: str, timeout: float) -> None:
        """Until a line of output contains `needle`; AssertionError (with the log) otherwise."""
        if not self.output.wait_for(needle, time.monotonic() + timeout):
            raise AssertionError(f"{self.cmd[-5:]} never printed {needle!r}:\n" + self.tail())

    def tail(self, last: int = 80) -> str:
        return self.output.tail(last)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no commit, no LeaveGroup."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self, grace: float = 60.0) -> int | None:
        """SIGTERM (a clean shutdown), SIGKILL after `grace` s; the exit code."""
        stop_process(self.proc, grace)
        return self.proc.returncode if self.proc is not None else None


def word_count(target: Path, bootstrap: str, app_id: str, input_topic: str, output_topic: str,
               workdir: Path) -> JavaApp:
    """The Streams word count (not yet started); its state directory is under `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    return JavaApp(target, WORD_COUNT,
                   [bootstrap, app_id, input_topic, output_topic, str(workdir / "state")],
                   workdir / "streams.log")


class ConnectWorker(JavaApp):
    """A Kafka Connect worker in distributed mode (its config, offset and status topics are
    named after `name`) with a REST listener on a free loopback port. Exactly-once source
    support (KIP-618) is on: source tasks write records and offsets in transactions, and the
    leader fences the producers of a task's earlier generation (Admin.fenceProducers)."""

    def __init__(self, target: Path, bootstrap: str, name: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.rest = f"http://127.0.0.1:{free_port()}"
        props = {
            "bootstrap.servers": bootstrap,
            "group.id": name,
            "config.storage.topic": f"{name}-configs",
            "offset.storage.topic": f"{name}-offsets",
            "status.storage.topic": f"{name}-status",
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "2",
            "status.storage.partitions": "1",
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "offset.flush.interval.ms": "500",
            "listeners": self.rest,
            "plugin.discovery": "service_load",  # connect-file ships its ServiceLoader manifests
            # a SIGKILLed worker (and its sink tasks' consumers) leaves its groups after 6 s
            "session.timeout.ms": "6000",
            "heartbeat.interval.ms": "1000",
            "consumer.session.timeout.ms": "6000",
            "consumer.heartbeat.interval.ms": "1000",
            "scheduled.rebalance.max.delay.ms": "0",
            "exactly.once.source.support": "enabled",
        }
        path = workdir / "worker.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        super().__init__(target, CONNECT_DISTRIBUTED, [str(path)], workdir / "connect.log")

    def request(self, method: str, path: str, body: object = None) -> object:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.rest + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
        return json.loads(text) if text else None

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until the REST API answers GET /connectors (the herder has started)."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"Connect worker exited:\n{self.tail()}")
            try:
                self.request("GET", "/connectors")
                return
            except (OSError, urllib.error.HTTPError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"Connect REST never ready:\n{self.tail()}") from None
            time.sleep(0.5)  # polling a REST port: there is no event to await

    def put_connector(self, name: str, config: Mapping[str, str]) -> None:
        self.request("PUT", f"/connectors/{name}/config", dict(config))


def main() -> int:
    """`python -m interop_tests.kafka_apps`: build every Maven project of the suite (fills the
    Maven cache; scripts/install-test-deps.sh runs it)."""
    from interop_tests.kafka_broker.broker import KAFKA_VERSIONS

    started = time.monotonic()
    builds = [build(), *(java_client.build(version=v) for v in KAFKA_VERSIONS)]
    print(f"built {', '.join(str(t) for t in builds)} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
