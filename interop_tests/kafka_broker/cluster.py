"""A real Apache Kafka cluster of `n` KRaft brokers on loopback, from the cached Maven jars
(broker.py's `resolve_jars`), for the cluster benchmark (scripts/cluster_bench.py).

Each broker is a combined broker + controller with its own free ports and log dir; the static
quorum (`controller.quorum.voters`) names all of them, so `StorageTool format` needs no
--standalone. Topics default to replication factor `n` and `min.insync.replicas` `n - 1`
(3 and 2 for three brokers: acks=all then waits for two copies, as the Kafka documentation's
"durability" example recommends). Ready when every broker logged "Kafka Server started"."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from interop_tests.kafka_broker.broker import (
    BROKER_JVM_OPTS,
    HERE,
    KAFKA_MAIN,
    READY_LINE,
    STORAGE_TOOL,
    BrokerUnavailable,
    ProcessOutput,
    cluster_id,
    free_port,
    port_answers,
    resolve_jars,
    stop_process,
)

PROPERTIES = """\
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://{host}:{broker_port},CONTROLLER://{host}:{controller_port}
advertised.listeners=PLAINTEXT://{host}:{broker_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={log_dir}
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
num.partitions=1
auto.create.topics.enable=false
default.replication.factor={n}
min.insync.replicas={min_isr}
offsets.topic.replication.factor={n}
offsets.topic.num.partitions=1
transaction.state.log.replication.factor={n}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor={n}
share.coordinator.state.topic.min.isr={min_isr}
group.initial.rebalance.delay.ms=0
"""


class JvmKafkaCluster:
    """`n` `kafka.Kafka` processes forming one KRaft cluster; `bootstrap` lists them all."""

    def __init__(self, workdir: Path, n: int = 3, host: str = "127.0.0.1") -> None:
        self.workdir, self.n, self.host = workdir, n, host
        self.broker_ports = [free_port(host) for _ in range(n)]
        self.controller_ports = [free_port(host) for _ in range(n)]
        self.outputs = [ProcessOutput() for _ in range(n)]
        self.procs: list[subprocess.Popen[str]] = []

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{p}" for p in self.broker_ports)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _java(self, libs: Path, node: Path, main: str, *args: str) -> list[str]:
        return ["java", *BROKER_JVM_OPTS,
                f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={node / 'logs'}", "-cp", f"{libs}/*", main, *args]

    def start(self, timeout: float = 180.0) -> JvmKafkaCluster:
        libs = resolve_jars()
        cid = cluster_id()
        voters = ",".join(f"{i}@{self.host}:{p}" for i, p in enumerate(self.controller_ports))
        deadline = time.monotonic() + timeout
        try:
            for i in range(self.n):
                node = self.workdir / f"kafka{i}"
                node.mkdir(parents=True, exist_ok=True)
                props = node / "server.properties"
                props.write_text(PROPERTIES.format(
                    node_id=i, voters=voters, host=self.host, n=self.n,
                    min_isr=max(1, self.n - 1), broker_port=self.broker_ports[i],
                    controller_port=self.controller_ports[i], log_dir=node / "data"))
                fmt = subprocess.run(self._java(libs, node, STORAGE_TOOL, "format",
                                                "--ignore-formatted", "-t", cid, "-c", str(props)),
                                     capture_output=True, text=True, timeout=120, check=False)
                if fmt.returncode != 0:
                    raise BrokerUnavailable(f"StorageTool format failed:\n{fmt.stdout}\n"
                                            f"{fmt.stderr}")
            for i in range(self.n):
                node = self.workdir / f"kafka{i}"
                proc = subprocess.Popen(self._java(libs, node, KAFKA_MAIN,
                                                   str(node / "server.properties")),
                                        cwd=node, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, bufsize=1)
                self.procs.append(proc)
                self.outputs[i].follow(proc, (node / "broker.log").open("w"), f"kafka{i}-log")
            for i, out in enumerate(self.outputs):
                if not out.wait_for(READY_LINE, deadline):
                    raise BrokerUnavailable(f"broker {i} did not start:\n{out.tail(100)}")
                while not port_answers(self.host, self.broker_ports[i]):
                    if time.monotonic() > deadline:
                        raise BrokerUnavailable(f"broker {i} port never answered")
                    time.sleep(0.1)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        procs, self.procs = self.procs, []
        for proc in procs:
            proc.terminate()
        for proc in procs:
            stop_process(proc, 30)
