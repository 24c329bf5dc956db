"""A real Apache Kafka 4.x broker and the Kafka CLI tools, for pyggy's interop tests.

Where the broker comes from, first that works:

1. `REAL_KAFKA_BOOTSTRAP=host:port` in the environment: an external broker, used as is;
2. a Docker engine that answers a fast probe: testcontainers starts `apache/kafka:<version>`;
3. the JVM: Maven resolves `kafka_2.13` + `kafka-tools` (pom.xml beside this file, plus the
   slf4j → log4j2 binding the published POMs lack) into a cache directory; then
   `kafka.tools.StorageTool format` and `kafka.Kafka` run as a subprocess on free loopback ports
   with a temporary log dir. Ready when the log says "Kafka Server started" and the port answers.

The CLI tools (TopicCommand, ConsoleProducer, ...) always run from the Maven jars (`KafkaCli`),
against any bootstrap address: the real broker's or pyggy's.

Caches live under `${XDG_CACHE_HOME:-~/.cache}/pyggy`: `m2/` (Maven's local repository) and
`kafka-libs/<version>-<pom hash>/` (the resolved classpath, with a stamp file once complete).
`python -m interop_tests.kafka_broker.broker resolve` fills them (scripts/install-test-deps.sh).
"""

from __future__ import annotations

import base64
import collections
import hashlib
import os
import shutil
import socket
import string
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
KAFKA_VERSION = "4.1.1"  # the default; keep in step with <kafka.version> in pom.xml
KAFKA_LATEST = "4.4.0"  # the newest release, tested beside it (`-Dkafka.version`)
KAFKA_VERSIONS = (KAFKA_VERSION, KAFKA_LATEST)
READY_LINE = "Kafka Server started"
# Partitions of an auto-created topic; pyggy's fixture sets IGGY_KAFKA_NUM_PARTITIONS the same
AUTO_CREATE_PARTITIONS = 3
BROKER_JVM_OPTS = (
    "-Xms256m",
    "-Xmx768m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:ActiveProcessorCount=2",
    "-Djava.awt.headless=true",
)
TOOL_JVM_OPTS = ("-Xms64m", "-Xmx512m", "-XX:ActiveProcessorCount=2", "-XX:TieredStopAtLevel=1")

# Kafka CLI entry points (from bin/*.sh of Kafka 4.x)
TOPIC_COMMAND = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUP_COMMAND = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
PRODUCER_PERFORMANCE = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERFORMANCE = "org.apache.kafka.tools.ConsumerPerformance"
GET_OFFSET_SHELL = "org.apache.kafka.tools.GetOffsetShell"
BROKER_API_VERSIONS = "org.apache.kafka.tools.BrokerApiVersionsCommand"
CONFIG_COMMAND = "kafka.admin.ConfigCommand"
STORAGE_TOOL = "kafka.tools.StorageTool"
KAFKA_MAIN = "kafka.Kafka"


class BrokerUnavailable(RuntimeError):
    """No real Kafka broker could be had (reason in the message)."""


# --- caches and Maven ---------------------------------------------------------------------


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pyggy"


def maven_repo() -> Path:
    return cache_root() / "m2"


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the resolved classpath lives: keyed by Kafka version and the pom's content."""
    digest = hashlib.sha256((HERE / "pom.xml").read_bytes()).hexdigest()[:12]
    return cache_root() / "kafka-libs" / f"{version}-{digest}"


def resolve_jars(timeout: float = 900.0, version: str = KAFKA_VERSION) -> Path:
    """The directory of Kafka's runtime jars; runs Maven once (idempotent, cached).

    Raises BrokerUnavailable when java/mvn are missing or Maven cannot resolve.
    """
    target = libs_dir(version)
    stamp = target / ".complete"
    if stamp.is_file():
        return target
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise BrokerUnavailable(f"{tool} not found on PATH (Kafka 4.x needs Java 17 + Maven)")
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    # The pom copies into ${kafka.libs.dir}; a scratch dir first, moved into place when complete
    # (a half-resolved classpath is never used).
    build = target.parent / f"build{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    cmd = [
        "mvn", "-q", "-B",
        f"-Dmaven.repo.local={maven_repo()}",
        "-f", str(HERE / "pom.xml"),
        f"-Dkafka.libs.dir={tmp}",
        f"-Dkafka.version={version}",
        "package",
    ]  # fmt: skip
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=build, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise BrokerUnavailable(f"mvn package timed out after {timeout} s") from e
    finally:
        shutil.rmtree(build, ignore_errors=True)
    if proc.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
        shutil.rmtree(tmp, ignore_errors=True)
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise BrokerUnavailable(
            f"mvn could not resolve the Kafka jars (exit {proc.returncode}):\n{tail}"
        )
    (tmp / ".complete").write_text(f"resolved in {time.monotonic() - started:.1f} s\n")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


# --- the CLI tools --------------------------------------------------------------------------


@dataclass
class ToolResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def check(self) -> ToolResult:
        if self.returncode != 0:
            raise AssertionError(
                f"{' '.join(self.args[-12:])} exited {self.returncode}\n"
                f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
            )
        return self


class KafkaCli:
    """Runs Kafka's Java CLI tools from the resolved jars against any bootstrap address."""

    def __init__(self, libs: Path, workdir: Path) -> None:
        self.libs = libs
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def classpath(self) -> str:
        return f"{self.libs}/*"

    def java_command(
        self, main: str, args: Sequence[str], jvm_opts: Sequence[str] = ()
    ) -> list[str]:
        return [
            "java",
            *TOOL_JVM_OPTS,
            *jvm_opts,
            f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir}",
            "-cp",
            self.classpath,
            main,
            *map(str, args),
        ]

    def run(
        self,
        main: str,
        *args: object,
        input: str | None = None,
        timeout: float = 120.0,
        check: bool = True,
        jvm_opts: Sequence[str] = (),
    ) -> ToolResult:
        cmd = self.java_command(main, [str(a) for a in args], jvm_opts)
        try:
            proc = subprocess.run(
                cmd,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=self.workdir,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            raise AssertionError(
                f"{main} {' '.join(map(str, args))} timed out after {timeout} s\n"
                f"--- stdout ---\n{out[-4000:]}\n--- stderr ---\n{err[-4000:]}"
            ) from None
        result = ToolResult(cmd, proc.returncode, proc.stdout, proc.stderr)
        return result.check() if check else result

    # kafka-topics.sh
    def topics(self, bootstrap: str, *args: object, **kw) -> ToolResult:
        return self.run(TOPIC_COMMAND, "--bootstrap-server", bootstrap, *args, **kw)

    # kafka-console-producer.sh: one record per line of `lines`
    def console_produce(
        self, bootstrap: str, topic: str, lines: Sequence[str], *args: object, **kw
    ) -> ToolResult:
        text = "".join(line + "\n" for line in lines)
        return self.run(
            CONSOLE_PRODUCER, "--bootstrap-server", bootstrap, "--topic", topic, *args,
            input=text, **kw,
        )  # fmt: skip

    # kafka-console-consumer.sh
    def console_consume(self, bootstrap: str, topic: str, *args: object, **kw) -> ToolResult:
        return self.run(
            CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--topic", topic, *args, **kw
        )

    # kafka-consumer-groups.sh
    def consumer_groups(self, bootstrap: str, *args: object, **kw) -> ToolResult:
        return self.run(CONSUMER_GROUP_COMMAND, "--bootstrap-server", bootstrap, *args, **kw)

    # kafka-producer-perf-test.sh
    def producer_perf(self, bootstrap: str, topic: str, records: int, size: int = 100,
                      *props: str, **kw) -> ToolResult:  # fmt: skip
        return self.run(
            PRODUCER_PERFORMANCE, "--topic", topic, "--num-records", records,
            "--record-size", size, "--throughput", -1,
            "--producer-props", f"bootstrap.servers={bootstrap}", *props, **kw,
        )  # fmt: skip

    # kafka-consumer-perf-test.sh
    def consumer_perf(self, bootstrap: str, topic: str, records: int, *args: object,
                      **kw) -> ToolResult:  # fmt: skip
        return self.run(
            CONSUMER_PERFORMANCE, "--bootstrap-server", bootstrap, "--topic", topic,
            "--messages", records, *args, **kw,
        )  # fmt: skip


# --- brokers --------------------------------------------------------------------------------


def stop_process(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM a running broker process, SIGKILL it after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cluster_id() -> str:
    """URL-safe base64 of 16 random bytes, 22 chars, not starting with '-' (StorageTool's rule)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class ProcessOutput:
    """A child's output, copied line by line to a log file and to a bounded buffer that
    `wait_for` watches (the JVM broker here, the Java applications of kafka_apps.py)."""

    def __init__(self) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=5000)
        self._cond = threading.Condition()
        self._eof = False

    def follow(self, proc: subprocess.Popen[str], log: IO[str], name: str) -> None:
        """Start copying `proc`'s output (a fresh buffer); `log` is closed at its end."""
        with self._cond:
            self._eof = False
            self.lines.clear()
        threading.Thread(target=self._drain, args=(proc, log), name=name, daemon=True).start()

    def _drain(self, proc: subprocess.Popen[str], log: IO[str]) -> None:
        assert proc.stdout is not None
        with log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for(self, needle: str, deadline: float) -> bool:
        """Until a line contains `needle` (True), or the output ended or `deadline` (a
        time.monotonic() value) passed first (False)."""
        with self._cond:
            while not any(needle in line for line in self.lines):
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 1.0))
            return True

    def tail(self, last: int) -> str:
        with self._cond:
            lines = list(self.lines)[-last:]
        return "\n".join("    | " + line for line in lines)


class RealKafka:
    """Common face of the three kinds of real broker: `.bootstrap`, `.kind`, `.close()`."""

    kind = "external"

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    def close(self) -> None:
        pass

    def format_logs(self, last: int = 200) -> str:
        return ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.bootstrap}>"


class JvmKafka(RealKafka):
    """`kafka.Kafka` from the Maven jars, as a subprocess with its own data dir and ports."""

    kind = "jvm"

    def __init__(self, libs: Path, workdir: Path, host: str = "127.0.0.1") -> None:
        self.libs = libs
        self.workdir = workdir
        self.host = host
        self.broker_port = free_port(host)
        self.controller_port = free_port(host)
        super().__init__(f"{host}:{self.broker_port}")
        self.log_path = workdir / "broker.log"
        self.output = ProcessOutput()
        self._proc: subprocess.Popen[str] | None = None

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            "java",
            *BROKER_JVM_OPTS,
            f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir / 'logs'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def start(self, timeout: float = 120.0) -> JvmKafka:
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        template = string.Template((HERE / "server.properties.template").read_text())
        props = self.workdir / "server.properties"
        props.write_text(
            template.substitute(
                node_id=1,
                host=self.host,
                broker_port=self.broker_port,
                controller_port=self.controller_port,
                log_dir=data,
                num_partitions=AUTO_CREATE_PARTITIONS,
            )
        )
        fmt = subprocess.run(
            self._java(STORAGE_TOOL, "format", "--ignore-formatted", "-t", cluster_id(),
                       "-c", str(props)),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if fmt.returncode != 0:
            raise BrokerUnavailable(f"StorageTool format failed:\n{fmt.stdout}\n{fmt.stderr}")
        log = self.log_path.open("w")
        self._proc = subprocess.Popen(
            self._java(KAFKA_MAIN, str(props)),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.output.follow(self._proc, log, "kafka-broker-log")
        deadline = time.monotonic() + timeout
        self._wait_for(READY_LINE, deadline)
        while not port_answers(self.host, self.broker_port):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.close()
                raise BrokerUnavailable(f"broker port {self.bootstrap} never answered\n"
                                        + self.format_logs())  # fmt: skip
            time.sleep(0.1)
        return self

    def _wait_for(self, needle: str, deadline: float) -> None:
        if self.output.wait_for(needle, deadline):
            return
        code = self._proc.poll() if self._proc else None
        self.close()
        raise BrokerUnavailable(
            f"Kafka broker did not log {needle!r} (exit code {code}):\n{self.format_logs()}"
        )

    def close(self) -> None:
        proc, self._proc = self._proc, None
        stop_process(proc, 30)

    def format_logs(self, last: int = 200) -> str:
        return self.output.tail(last)


class DockerKafka(RealKafka):
    """`apache/kafka` through testcontainers (only when a Docker engine answers)."""

    kind = "docker"

    def __init__(self, version: str = KAFKA_VERSION) -> None:
        from testcontainers.core.container import DockerContainer

        image = self.image = f"apache/kafka:{version}"
        # The host port is chosen first and used inside the container too, so the advertised
        # address 127.0.0.1:<port> is right both for clients on the host and for the broker.
        port = free_port()
        super().__init__(f"127.0.0.1:{port}")
        env = {
            "KAFKA_NODE_ID": "1",
            "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_LISTENERS": f"PLAINTEXT://0.0.0.0:{port},CONTROLLER://127.0.0.1:9093",
            "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@127.0.0.1:9093",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
            "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
            "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
            "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
            "KAFKA_NUM_PARTITIONS": str(AUTO_CREATE_PARTITIONS),
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "true",
            "KAFKA_HEAP_OPTS": "-Xms256m -Xmx768m",
        }
        container = DockerContainer(image).with_bind_ports(port, port)
        for key, value in env.items():
            container = container.with_env(key, value)
        self._container = container

    def start(self, timeout: float = 120.0) -> DockerKafka:
        from testcontainers.core.waiting_utils import wait_for_logs

        self._container.start()
        try:
            wait_for_logs(self._container, READY_LINE, timeout=timeout)
        except Exception as e:
            self.close()
            raise BrokerUnavailable(f"{self.image} did not start: {e}") from e
        host, port = self.bootstrap.split(":")
        deadline = time.monotonic() + 30
        while not port_answers(host, int(port)):
            if time.monotonic() > deadline:
                self.close()
                raise BrokerUnavailable(f"{self.image}: port {port} never answered")
            time.sleep(0.2)
        return self

    def close(self) -> None:
        container, self._container = self._container, None
        if container is not None:
            container.stop()


def docker_engine_answers(timeout: float = 2.0) -> bool:
    """Fast probe: a Docker socket/host is configured and `ping` answers within `timeout`."""
    if os.environ.get("PYGGY_INTEROP_NO_DOCKER"):
        return False
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False
    try:
        import docker
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def start_real_kafka(workdir: Path, timeout: float = 120.0,
                     version: str = KAFKA_VERSION) -> RealKafka:
    """A running real broker of Kafka `version` (see the module docstring for the order tried;
    an external broker is used for the default version only)."""
    external = os.environ.get("REAL_KAFKA_BOOTSTRAP")
    if external and version == KAFKA_VERSION:
        return RealKafka(external)
    reasons = []
    if docker_engine_answers():
        try:
            return DockerKafka(version).start(timeout)
        except ImportError as e:
            reasons.append(f"docker: testcontainers not installed ({e})")
        except Exception as e:  # engine answered but the container failed: try the JVM
            reasons.append(f"docker: {e}")
    else:
        reasons.append("docker: no engine answered")
    try:
        return JvmKafka(resolve_jars(version=version), workdir).start(timeout)
    except BrokerUnavailable as e:
        reasons.append(f"jvm: {e}")
    raise BrokerUnavailable("; ".join(reasons))


def main(argv: Sequence[str] = ()) -> int:
    """`resolve`: fetch the jars into the cache; `run`: start a broker until Ctrl-C."""
    args = list(argv) or sys.argv[1:] or ["resolve"]
    if args[0] == "resolve":  # every version the suite runs
        for version in KAFKA_VERSIONS:
            started = time.monotonic()
            libs = resolve_jars(version=version)
            jars = len(list(libs.glob("*.jar")))
            print(f"kafka {version} jars: {libs} ({jars} jars, "
                  f"{time.monotonic() - started:.1f} s)")
        return 0
    if args[0] == "run":
        import tempfile

        with tempfile.TemporaryDirectory(prefix="pyggy-kafka-") as tmp:
            broker = start_real_kafka(Path(tmp))
            print(f"real Kafka ({broker.kind}) at {broker.bootstrap}; Ctrl-C stops it", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
            finally:
                broker.close()
        return 0
    print(f"usage: {sys.argv[0]} [resolve|run]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
