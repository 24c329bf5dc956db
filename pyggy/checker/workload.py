"""Real clients writing, reading and changing metadata on a `PyggyCluster`, into a history.

Each client runs on its own thread until `stop()`: librdkafka (confluent-kafka) and
kafka-python producers, idempotent with acks=all, on partition 0 of a Kafka topic; the
apache-iggy 0.9.0 SDK sending to an Iggy stream, moving to the next node of the roster when a
send fails; a librdkafka consumer reading the Kafka partition as it grows; a metadata client
creating, deleting and listing topics (recorded for `linear.check`). Values are unique:
`<client>-<n>`. A delivery error is recorded as an unknown outcome (`info`): none of these
clients tells a definite refusal apart from a timeout.
"""

from __future__ import annotations

import asyncio
import importlib
import random
import subprocess
import threading
import time
from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path
from typing import IO, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pyggy.checker.history import History, Send
from pyggy.checker.linear import Recorder
from pyggy.testing import PyggyCluster

IGGY_STREAM, IGGY_TOPIC = "checker", "events"
IGGY_KEY = ("iggy", IGGY_STREAM, IGGY_TOPIC, 0)
META_NAMES = ("meta-a", "meta-b", "meta-c")


def kafka_key(topic: str) -> tuple[str, str, int]:
    return ("kafka", topic, 0)


class Workload:
    """Clients of one cluster; `start(...)` the ones a scenario wants, `stop()` joins them."""

    def __init__(self, cluster: PyggyCluster, topic: str, seed: int, rate: float = 10.0):
        self.cluster, self.topic, self.rate = cluster, topic, rate
        self.rng = random.Random(seed)
        # the Kafka producers' request timeout (None: librdkafka's 30 s, kafka-python 10 s): an
        # idempotent producer waits it out on a request to a node cut off by the network
        self.request_timeout_ms: int | None = None
        self.history = History()
        self.metadata = Recorder()
        self.errors: list[str] = []
        self.notes: list[str] = []  # the Iggy client's failed logins and sends, for diagnosis
        self._stop = threading.Event()
        self._go = threading.Event()  # cleared: the writers hold their next send
        self._go.set()
        self._threads: list[threading.Thread] = []

    def start(self, *clients: str) -> Workload:
        """Clients: librdkafka, kafka-python, java, iggy, consumer, metadata."""
        runners: dict[str, Callable[[], None]] = {
            "librdkafka": self._librdkafka, "kafka-python": self._kafka_python,
            "java": self._java, "iggy": lambda: asyncio.run(self._iggy()),
            "consumer": self._consumer,
            "metadata": self._metadata}
        for name in clients:
            t = threading.Thread(target=self._guard, args=(name, runners[name]),
                                 name=f"checker-{name}", daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def stop(self, timeout: float = 90.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
            if t.is_alive():
                self.errors.append(f"{t.name} did not stop within {timeout} s")

    def pause(self) -> None:
        self._go.clear()

    def resume(self) -> None:
        self._go.set()

    def _guard(self, name: str, run: Callable[[], None]) -> None:
        try:
            run()
        except Exception as e:  # reported by the scenario: a client must not die
            self.errors.append(f"{name}: {type(e).__name__}: {e}")

    def _pace(self) -> float:
        """Seconds to the next send of one writer (rate per writer); holds while paused."""
        while not self._go.wait(0.1) and not self._stop.is_set():
            pass
        return 1.0 / self.rate

    # --- Kafka producers --------------------------------------------------------------------

    def _librdkafka(self) -> None:
        key, h = kafka_key(self.topic), self.history
        p = Producer({"bootstrap.servers": self.cluster.kafka_bootstrap, "acks": "all",
                      "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 60000,
                      "retry.backoff.ms": 100, "metadata.max.age.ms": 1000,
                      "topic.metadata.refresh.interval.ms": 1000,
                      **({"request.timeout.ms": self.request_timeout_ms}
                         if self.request_timeout_ms else {})})

        def report(op: Send, err: Any, msg: Any) -> None:  # librdkafka's delivery callback
            if err is None:
                h.ok(op, msg.offset())
            else:
                h.info(op)
                self.errors.append(f"librdkafka: {err}")

        i = 0
        while not self._stop.is_set():
            value = b"librdkafka-%d" % i
            op = h.invoke("librdkafka", key, value)
            p.produce(self.topic, value, partition=0, on_delivery=partial(report, op))
            p.poll(self._pace())
            i += 1
        p.flush(60)

    def _kafka_python(self) -> None:
        from kafka import KafkaProducer  # type: ignore[import-untyped]

        key, h = kafka_key(self.topic), self.history
        p = KafkaProducer(bootstrap_servers=self.cluster.kafka_bootstrap.split(","), acks="all",
                          enable_idempotence=True, linger_ms=5, retry_backoff_ms=100,
                          request_timeout_ms=self.request_timeout_ms or 10000,
                          metadata_max_age_ms=1000,
                          delivery_timeout_ms=60000)
        i = 0
        while not self._stop.is_set():
            value = b"kafka-python-%d" % i
            op = h.invoke("kafka-python", key, value)
            future = p.send(self.topic, value, partition=0)
            future.add_callback(lambda md, op=op: h.ok(op, md.offset))
            future.add_errback(partial(self._kafka_python_failed, op))
            time.sleep(self._pace())
            i += 1
        p.flush(60)
        p.close(10)

    def _java(self) -> None:
        """The Java client's idempotent acks=all producer (IdempotentLoad.java of
        interop_tests/java_client, built by scripts/install-test-deps.sh): values go to its
        stdin, its delivery reports come back on stdout."""
        # the Maven project and its build live in the test tree, not in the package
        java_client = importlib.import_module("interop_tests.java_client")
        key, h = kafka_key(self.topic), self.history
        target: Path = java_client.build()
        proc = subprocess.Popen(
            ["java", "-Xmx128m", "-XX:ActiveProcessorCount=2", "-XX:TieredStopAtLevel=1",
             "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
             "-cp", f"{target / 'classes'}:{target / 'libs'}/*", "dev.pyggy.interop.IdempotentLoad",
             self.cluster.kafka_bootstrap, self.topic],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            bufsize=1)
        assert proc.stdin is not None and proc.stdout is not None
        pending: dict[str, Send] = {}
        done = threading.Event()

        def reports(stdout: IO[str]) -> None:
            for line in stdout:
                kind, _, rest = line.rstrip("\n").partition(" ")
                value, _, detail = rest.partition(" ")
                op = pending.pop(value, None)
                if kind == "DONE":
                    done.set()
                elif op is not None and kind == "OK":
                    h.ok(op, int(detail))
                elif op is not None:
                    h.info(op)
                    self.errors.append(f"java: {detail}")

        reader = threading.Thread(target=reports, args=(proc.stdout,), daemon=True,
                                  name="checker-java-reports")
        reader.start()
        try:
            i = 0
            while not self._stop.is_set():
                value = f"java-{i}"
                pending[value] = h.invoke("java", key, value.encode())
                proc.stdin.write(value + "\n")
                proc.stdin.flush()
                time.sleep(self._pace())
                i += 1
            proc.stdin.close()
            code = proc.wait(90)
            reader.join(10)
            if code != 0 or not done.is_set():
                self.errors.append(f"java: the producer exited {proc.returncode} without DONE")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for op in pending.values():  # never reported: unknown outcome
            h.info(op)

    def _kafka_python_failed(self, op: Send, e: Exception) -> None:
        self.history.info(op)
        self.errors.append(f"kafka-python: {e!r}")

    # --- the Iggy SDK -----------------------------------------------------------------------

    async def _iggy(self) -> None:
        from apache_iggy import SendMessage

        h, servers = self.history, self.cluster.servers
        node, client, i = 0, None, 0
        while not self._stop.is_set():
            if client is None:
                node = (node + 1) % len(servers)
                client = await _iggy_login(servers[node].tcp_address)
                if client is None:
                    self._note(f"login at {servers[node].tcp_address} failed or timed out")
                    await asyncio.sleep(0.1)
                    continue
            value = f"iggy-{i}"
            op = h.invoke("iggy", IGGY_KEY, value.encode())
            i += 1
            try:
                await asyncio.wait_for(client.send_messages(
                    IGGY_STREAM, IGGY_TOPIC, 0, [SendMessage(value)]), 5)
                h.ok(op, None)  # the SDK does not return the offset
            except Exception as e:
                h.info(op)
                client = None
                self._note(f"send via {servers[node].tcp_address}: {type(e).__name__}: {e}")
            await asyncio.sleep(self._pace())

    def _note(self, text: str) -> None:
        if len(self.notes) < 50:
            self.notes.append(text)

    # --- reading --------------------------------------------------------------------------

    def _consumer(self) -> None:
        key = kafka_key(self.topic)
        c = Consumer({"bootstrap.servers": self.cluster.kafka_bootstrap, "group.id": "checker",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest",
                      "topic.metadata.refresh.interval.ms": 1000})
        c.assign([TopicPartition(self.topic, 0, 0)])
        try:
            while not self._stop.is_set():
                for m in c.consume(100, 0.2):
                    offset, value = m.offset(), m.value()
                    if m.error() is None and offset is not None and value is not None:
                        self.history.poll("consumer", key, [(offset, value)])
        finally:
            c.close()

    # --- metadata -------------------------------------------------------------------------

    def _metadata(self) -> None:
        """Create, delete and read a few topic names through the controller; reads count only
        when the broker that answered is the controller (backups' metadata may lag: a Kafka
        Metadata answer is not linearizable, and pyggy's backups apply commits later)."""
        admin = AdminClient({"bootstrap.servers": self.cluster.kafka_bootstrap})
        rec = self.metadata
        while not self._stop.is_set():
            name = self.rng.choice(META_NAMES)
            f = self.rng.choice(("create", "delete", "read"))
            op = rec.begin("admin", f, name)
            try:
                if f == "create":
                    fut = admin.create_topics([NewTopic(name, 1, -1)], request_timeout=10)[name]
                    rec.end(op, _outcome(fut, KafkaError.TOPIC_ALREADY_EXISTS, "exists"))
                elif f == "delete":
                    fut = admin.delete_topics([name], request_timeout=10)[name]
                    rec.end(op, _outcome(fut, KafkaError.UNKNOWN_TOPIC_OR_PART, "missing"))
                else:
                    md = admin.list_topics(timeout=5)
                    if md.orig_broker_id == md.controller_id >= 0:
                        rec.end(op, name in md.topics)
                    else:
                        rec.drop(op)
            except _NoEffect:
                rec.drop(op)
            except KafkaException:
                rec.end(op, None) if f != "read" else rec.drop(op)
            time.sleep(self.rng.uniform(0.2, 0.5))


class _NoEffect(Exception):
    """A definite refusal: the command changed nothing."""


def _outcome(fut: Any, code: int, name: str) -> str | None:
    """"ok", `name` for the expected refusal, None when the outcome is unknown."""
    try:
        fut.result(15)
        return "ok"
    except KafkaException as e:
        err = e.args[0]
        if err.code() == code:
            return name
        if err.code() in (KafkaError.NOT_CONTROLLER, KafkaError.INVALID_REQUEST,
                          KafkaError.CLUSTER_AUTHORIZATION_FAILED):
            raise _NoEffect() from e
        return None


async def _iggy_login(address: str) -> Any:
    from apache_iggy import IggyClient

    try:
        client = IggyClient(address)
        await asyncio.wait_for(client.connect(), 10)  # a login hashes a password: slow when
        await asyncio.wait_for(client.login_user("iggy", "iggy"), 10)  # the machine is busy
        return client
    except Exception:
        return None


# --- set-up and final reads ------------------------------------------------------------------

def create_kafka_topic(cluster: PyggyCluster, name: str, timeout: float = 90.0) -> None:
    """Create topic `name`, retrying with a new client bootstrapped at each node in turn (seen
    once on a busy machine: one client asking the same stale controller for 60 s)."""
    deadline = time.monotonic() + timeout
    for attempt in range(10 ** 6):
        admin = AdminClient({"bootstrap.servers":
                             cluster.servers[attempt % len(cluster.servers)].kafka_address})
        try:
            admin.create_topics([NewTopic(name, 1, -1)], request_timeout=15)[name].result(20)
            return
        except KafkaException as e:
            if e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                return
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def create_iggy_topic(cluster: PyggyCluster, timeout: float = 60.0) -> None:
    async def main() -> None:
        deadline = time.monotonic() + timeout
        for attempt in range(10 ** 6):
            client = await _iggy_login(cluster.servers[attempt % 3].tcp_address)
            try:
                if client is not None:
                    await client.create_stream(IGGY_STREAM)
                    await client.create_topic(IGGY_STREAM, IGGY_TOPIC, partitions_count=1)
                    return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.5)

    asyncio.run(main())


def leaders(cluster: PyggyCluster, topic: str, skip: Collection[int] = ()) -> dict[int, int]:
    """node index -> the leader of topic[0] its Kafka Metadata names (-1: none), live nodes
    but those in `skip` (unreachable ones)."""
    out = {}
    for i, s in enumerate(cluster.servers):
        if s.running and i not in skip:
            md = AdminClient({"bootstrap.servers": s.kafka_address}).list_topics(topic, timeout=5)
            t = md.topics.get(topic)
            ok = t is not None and t.error is None and 0 in t.partitions
            out[i] = t.partitions[0].leader if ok and t is not None else -1
    return out


def wait_leader(cluster: PyggyCluster, topic: str, timeout: float = 30.0,
                avoid: int | None = None, skip: Collection[int] = ()) -> int:
    """The leader every live node (but those in `skip`) names for topic[0] (not `avoid`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            named = set(leaders(cluster, topic, skip).values())
        except KafkaException:
            named = set()
        if len(named) == 1 and (leader := named.pop()) >= 0 and leader != avoid:
            return leader
        time.sleep(0.2)
    raise AssertionError(f"no agreed leader for {topic}[0] within {timeout} s")


_SETTLING = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
             KafkaError.UNKNOWN_LEADER_EPOCH, KafkaError.FENCED_LEADER_EPOCH,
             KafkaError._TIMED_OUT,
             KafkaError._UNKNOWN_PARTITION}  # a new client without the topic's metadata yet


def _high_watermark(c: Consumer, topic: str, deadline: float) -> int:
    """topic[0]'s high watermark, retried as a Kafka client retries while the cluster settles
    (a view change, or a metadata cache naming the previous leader)."""
    while True:
        try:
            return int(c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])
        except KafkaException as e:
            if e.args[0].code() not in _SETTLING or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_kafka(cluster: PyggyCluster, topic: str, history: History,
               timeout: float = 60.0) -> int:
    """Read topic[0] from offset 0 to its high watermark into `history` as a final read."""
    c = Consumer({"bootstrap.servers": cluster.kafka_bootstrap, "group.id": "final",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  # as the workload's consumer: a node still catching up on metadata may not
                  # list the topic yet (docs/cluster.md, "Not done yet"); ask again soon
                  "topic.metadata.refresh.interval.ms": 1000})
    try:
        deadline = time.monotonic() + timeout
        high = _high_watermark(c, topic, deadline)
        c.assign([TopicPartition(topic, 0, 0)])
        got: list[tuple[int, bytes]] = []
        while (not got or got[-1][0] < high - 1) and high > 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"final read of {topic} stuck at {len(got)}/{high}")
            got += [(m.offset(), m.value()) for m in c.consume(500, 0.5)  # type: ignore[misc]
                    if m.error() is None]
        history.final(kafka_key(topic), got)
        return high
    finally:
        c.close()


def read_iggy(cluster: PyggyCluster, history: History, timeout: float = 60.0) -> int:
    """Read the Iggy partition from its first offset into `history` as a final read."""
    from apache_iggy import Consumer as IggyConsumer
    from apache_iggy import PollingStrategy

    async def main() -> list[tuple[int, bytes]]:
        deadline = time.monotonic() + timeout
        got: list[tuple[int, bytes]] = []
        for s in cluster.servers:
            client = await _iggy_login(s.tcp_address) if s.running else None
            if client is None:
                continue
            while time.monotonic() < deadline:
                batch = await client.poll_messages(
                    IGGY_STREAM, IGGY_TOPIC, consumer=IggyConsumer.Single("final"),
                    polling_strategy=PollingStrategy.Offset(len(got)), count=1000,
                    auto_commit=False, partition_id=0)
                if not batch:
                    return got
                got += [(m.offset(), m.payload()) for m in batch]
        raise AssertionError("no node served the final Iggy read")

    got = asyncio.run(main())
    history.final(IGGY_KEY, got)
    return len(got)
