"""One set of users and permissions, both doors: a principal × door × operation matrix.

An operator sets up streams, topics and a restricted user `alice` with the Iggy SDK
(security_cast.py). Then alice — with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and a personal
access token — and root try to list, describe, produce, consume, commit, create, alter, delete
records and delete through confluent-kafka, kafka-python and kcat on a listener that requires
SASL, and through the Iggy SDK on the native door. Every cell has its expected outcome: OK, or
the refusal code the client reports. Anonymous clients are refused on the SASL listener and
served in full on a loopback listener with authentication off. The Java client's cells are in
interop_tests/test_security_java.py.

Where a client translates a refusal itself, the cell says so: librdkafka and kafka-python look
up the partition leader through Metadata (answered TOPIC_AUTHORIZATION_FAILED) before a
DeleteRecords, and report "no such entry" (-156) / UNKNOWN_TOPIC_OR_PARTITION (3); kafka-python
joins its group before it reads the topic's metadata, and pyggy refuses a member that
subscribes to a topic it may not poll with GROUP_AUTHORIZATION_FAILED (30).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from apache_iggy import (
    AutoLogin,
    Consumer,
    IggyClient,
    PollingStrategy,
    SendMessage,
    TcpConfig,
    TcpReconnectionConfig,
)
from security_cast import (
    ALICE_PASSWORD,
    EVERY_TOPIC,
    FORBIDDEN,
    GROUP_DENIED,
    OK,
    SHARED,
    TOPIC_DENIED,
    TOPIC_OPS,
    Principal,
    expected,
    mismatches,
    setup,
)

from pyggy.testing import PyggyServer

ENV = {"IGGY_KAFKA_AUTHENTICATION": "sasl", "IGGY_KAFKA_GROUP_INITIAL_REBALANCE_DELAY": "0 s"}


@pytest.fixture(scope="module")
def cast(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PyggyServer, list]]:
    """One server with a SASL listener for the whole matrix, set up through the Iggy door."""
    server = PyggyServer(tmp_path_factory.mktemp("matrix"), env=ENV).start()
    server.wait_for_log("kafka listening on")
    principals = setup(server)
    yield server, principals
    code = server.close()
    logs = "\n".join(server.logs)
    assert code in (None, 0), logs
    for p in principals:  # no password or token ever reaches the log
        assert p.secret not in logs or p.secret == "iggy", f"{p.name}'s secret in the log"
    assert "Traceback" not in logs
    # logins and refusals of both doors are logged (once per burst)
    for line in ("login: user 'alice' from 127.0.0.1 (kafka door, SCRAM-SHA-256)",
                 "login: user 'alice' from 127.0.0.1 (iggy door, password)",
                 "permission refused: user 'alice' from 127.0.0.1 (kafka door): "
                 "DeleteTopics topic 'shared'",
                 "permission refused: user 'alice' from 127.0.0.1 (iggy door): topic.delete"):
        assert line in logs, line


def run_cells(server: PyggyServer, principals: list[Principal], client: str,
              measure: Callable[[PyggyServer, Principal, str], dict],
              overrides: dict | None = None) -> None:
    results, wanted = {}, {}
    for p in principals:
        results[p.name] = measure(server, p, f"{client}-{p.name.replace('/', '-').lower()}")
        wanted[p.name] = expected(p, overrides)
    table = "\n".join(f"{who}: {cells}" for who, cells in results.items())
    print(f"--- {client} cells ---\n{table}")
    assert not mismatches(results, wanted), "\n".join(mismatches(results, wanted))


# -- confluent-kafka (librdkafka 2.x) -------------------------------------------------------
def _confluent_code(fn: Callable[[], object]) -> int:
    from confluent_kafka import KafkaException

    try:
        fn()
        return OK
    except KafkaException as e:
        return e.args[0].code()


def confluent_cells(server: PyggyServer, p: Principal, tag: str) -> dict:
    from confluent_kafka import Consumer as KConsumer
    from confluent_kafka import KafkaException, Producer, TopicPartition
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewTopic,
        ResourceType,
    )

    conf = {"bootstrap.servers": server.kafka_address}
    if p.mechanism:  # else anonymous
        conf |= {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": p.mechanism,
                 "sasl.username": p.user, "sasl.password": p.secret}
    admin = AdminClient(conf)
    cells: dict = {"list": set(admin.list_topics(timeout=15).topics) & EVERY_TOPIC}

    def one(futures: dict) -> None:
        for f in futures.values():
            f.result(timeout=15)

    for t in (SHARED, FORBIDDEN):
        error = admin.list_topics(topic=t, timeout=15).topics[t].error
        cells[("describe", t)] = error.code() if error else OK
        delivered: list = []
        producer = Producer(conf | {"message.timeout.ms": 15000})
        producer.produce(t, b"matrix", on_delivery=lambda err, _m, d=delivered: d.append(err))
        producer.flush(20)
        cells[("produce", t)] = delivered[0].code() if delivered[0] else OK
        consumer = KConsumer(conf | {"group.id": f"{tag}-{t}-read",
                                     "auto.offset.reset": "earliest"})
        consumer.subscribe([t])
        deadline, code = time.monotonic() + 20, None
        while code is None and time.monotonic() < deadline:
            m = consumer.poll(1)
            if m is not None:
                code = m.error().code() if m.error() else OK
        consumer.close()
        cells[("consume", t)] = code
        committer = KConsumer(conf | {"group.id": f"{tag}-{t}-commit",
                                      "enable.auto.commit": False})

        def commit(committer=committer, t=t) -> None:
            for tp in committer.commit(offsets=[TopicPartition(t, 0, 1)],
                                       asynchronous=False):
                if tp.error is not None:
                    raise KafkaException(tp.error)

        cells[("commit", t)] = _confluent_code(commit)
        committer.close()
        cells[("alter", t)] = _confluent_code(lambda t=t: one(admin.incremental_alter_configs([
            ConfigResource(ResourceType.TOPIC, t, incremental_configs=[ConfigEntry(
                "retention.ms", "604800000", incremental_operation=AlterConfigOpType.SET)])])))
        cells[("delete_records", t)] = _confluent_code(
            lambda t=t: one(admin.delete_records([TopicPartition(t, 0, 0)])))
    allowed = p.root or not p.mechanism
    made = f"secret.made-{tag}" if allowed else f"secret.try-{tag}"
    cells["create"] = _confluent_code(lambda: one(admin.create_topics([NewTopic(made, 1)])))
    doomed = made if allowed else SHARED
    cells["delete"] = _confluent_code(lambda: one(admin.delete_topics([doomed])))
    return cells


@pytest.mark.timeout(600)
def test_confluent_kafka(cast) -> None:
    server, principals = cast
    run_cells(server, principals, "confluent", confluent_cells,
              {("delete_records", FORBIDDEN): -156})  # librdkafka's "no such entry"


# -- kafka-python ---------------------------------------------------------------------------
def _kp_code(fn: Callable[[], object]) -> int:
    from kafka.errors import KafkaError

    try:
        fn()
        return OK
    except KafkaError as e:
        return e.errno


def kafka_python_cells(server: PyggyServer, p: Principal, tag: str) -> dict:
    from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

    kw = dict(bootstrap_servers=server.kafka_address, security_protocol="SASL_PLAINTEXT",
              sasl_mechanism=p.mechanism, sasl_plain_username=p.user,
              sasl_plain_password=p.secret)
    admin = KafkaAdminClient(**kw)
    cells: dict = {"list": set(admin.list_topics()) & EVERY_TOPIC}
    for t in (SHARED, FORBIDDEN):
        cells[("describe", t)] = admin.describe_topics([t])[0]["error_code"]
        producer = KafkaProducer(**kw, max_block_ms=15000)
        cells[("produce", t)] = _kp_code(lambda t=t, pr=producer: pr.send(t, b"m").get(15))
        producer.close()
        consumer = KafkaConsumer(**kw, group_id=f"{tag}-{t}-read", auto_offset_reset="earliest",
                                 enable_auto_commit=False)
        consumer.subscribe([t])

        def consume(consumer=consumer) -> None:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if consumer.poll(1000):
                    return
            raise AssertionError("nothing consumed")

        cells[("consume", t)] = _kp_code(consume)
        consumer.close()
        committer = KafkaConsumer(**kw, group_id=f"{tag}-{t}-commit", enable_auto_commit=False)
        cells[("commit", t)] = _kp_code(lambda t=t, c=committer: c.commit(
            {TopicPartition(t, 0): OffsetAndMetadata(1, None, -1)}))
        committer.close()
        altered = admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, t, configs={"retention.ms": "604800000"})],
            raise_on_unknown=False)
        error = re.match(r"\[Error (\d+)\]", str((altered.get("topic") or {}).get(t)))
        cells[("alter", t)] = int(error.group(1)) if error else OK
        cells[("delete_records", t)] = _kp_code(
            lambda t=t: admin.delete_records({TopicPartition(t, 0): 0}))
    made = f"secret.made-{tag}" if p.root else f"secret.try-{tag}"
    cells["create"] = _kp_code(lambda: admin.create_topics([NewTopic(made, 1, 1)]))
    cells["delete"] = _kp_code(lambda: admin.delete_topics([made if p.root else SHARED]))
    admin.close()
    return cells


@pytest.mark.timeout(600)
def test_kafka_python(cast) -> None:
    server, principals = cast
    run_cells(server, principals, "kafka-python", kafka_python_cells,
              {("delete_records", FORBIDDEN): 3, ("consume", FORBIDDEN): GROUP_DENIED})


# -- kcat (librdkafka 2.0.2): list, describe, produce, consume ------------------------------
def kcat_cells(server: PyggyServer, p: Principal, tag: str) -> dict:
    base = ["kcat", "-b", server.kafka_address, "-X", "security.protocol=SASL_PLAINTEXT",
            "-X", f"sasl.mechanisms={p.mechanism}", "-X", f"sasl.username={p.user}",
            "-X", f"sasl.password={p.secret}"]

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], input=stdin, capture_output=True, text=True,
                              timeout=60, check=False)

    def code(proc: subprocess.CompletedProcess) -> int:
        if proc.returncode == 0:
            return OK
        return TOPIC_DENIED if "Topic authorization failed" in proc.stderr else -1

    listed = json.loads(run("-L", "-J").stdout)
    cells: dict = {"list": {t["topic"] for t in listed["topics"]} & EVERY_TOPIC}
    for t in (SHARED, FORBIDDEN):
        described = json.loads(run("-L", "-J", "-t", t).stdout)["topics"][0]
        cells[("describe", t)] = TOPIC_DENIED if "authorization failed" in described.get(
            "error", "") else OK
        cells[("produce", t)] = code(run("-P", "-t", t, stdin="from kcat\n"))
        cells[("consume", t)] = code(run("-G", f"{tag}-{t}", t, "-o", "beginning", "-e",
                                         "-c", "1"))
    return cells


@pytest.mark.timeout(600)
def test_kcat(cast) -> None:
    if shutil.which("kcat") is None:
        if os.environ.get("CI"):
            pytest.fail("kcat is not installed (scripts/install-test-deps.sh)")
        pytest.skip("kcat is not installed")
    server, principals = cast
    results, wanted = {}, {}
    for p in principals:
        results[p.name] = kcat_cells(server, p, f"kcat-{p.name.replace('/', '-').lower()}")
        wanted[p.name] = {k: v for k, v in expected(p).items()
                          if k == "list" or k[0] in ("describe", "produce", "consume")}
    print("--- kcat cells ---\n" + "\n".join(f"{k}: {v}" for k, v in results.items()))
    assert not mismatches(results, wanted), "\n".join(mismatches(results, wanted))


# -- anonymous clients ----------------------------------------------------------------------
def test_anonymous_clients_are_refused_on_the_sasl_listener(cast) -> None:
    from confluent_kafka.admin import AdminClient
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    server, _ = cast
    with pytest.raises(Exception, match="Failed to get metadata|transport|Timed out"):
        AdminClient({"bootstrap.servers": server.kafka_address}).list_topics(timeout=3)
    with pytest.raises(KafkaError):
        KafkaAdminClient(bootstrap_servers=server.kafka_address, request_timeout_ms=3000,
                         api_version_auto_timeout_ms=3000).list_topics()
    server.wait_for_log("Metadata before SASL authentication (this listener requires it)")


@pytest.mark.timeout(300)
def test_anonymous_clients_get_everything_on_an_open_loopback_listener(
        tmp_path: Path) -> None:
    """authentication = auto on 127.0.0.1 (the quick start): no SASL, full access."""
    server = PyggyServer(tmp_path, env={"IGGY_KAFKA_GROUP_INITIAL_REBALANCE_DELAY": "0 s"})
    server.start().wait_for_log("kafka authentication: none (auto: 127.0.0.1 is loopback-only)")
    try:
        setup(server)
        anonymous = Principal("anonymous", "", "", "")
        cells = confluent_cells(server, anonymous, "anonymous")
        everything = expected(Principal("root", "iggy", "", ""))
        assert not mismatches({"anonymous": cells}, {"anonymous": everything})
    finally:
        assert server.close() in (None, 0)


# -- the Iggy door: the same users through the Iggy SDK -------------------------------------
UNAUTHORIZED, UNAUTHENTICATED = "Unauthorized", "Unauthenticated"


async def iggy_cells(server: PyggyServer, login: AutoLogin | None, tag: str) -> dict:
    """Iggy's own rules: listing and describing need read rights (alice, who may only poll
    and send on one topic, gets Unauthorized there, where Kafka's Metadata needs just one
    right on the topic); everything else as on the Kafka door."""
    from pyggy.native_wire.codec.primitives import encode_consumer, encode_identifier

    client = IggyClient(TcpConfig(
        server_address=server.tcp_address, auto_login=login or AutoLogin.disabled(),
        reconnection=TcpReconnectionConfig(enabled=False)))
    await client.connect()

    async def outcome(call) -> str:
        try:
            await call
            return "OK"
        except RuntimeError as e:
            return str(e)

    cells = {"list": await outcome(client.get_topics("kafka"))}
    for stream, topic in (("kafka", "shared"), ("secret", "x")):
        name = f"{stream}/{topic}"
        cells[("describe", name)] = await outcome(client.get_topic(stream, topic))
        cells[("produce", name)] = await outcome(client.send_messages(
            stream, topic, 0, [SendMessage("from iggy")]))
        cells[("consume", name)] = await outcome(client.poll_messages(
            stream, topic, partition_id=0, consumer=Consumer.Single("matrix"),
            polling_strategy=PollingStrategy.First(), count=1, auto_commit=False))
        store = (encode_consumer(1, 1) + encode_identifier(stream) + encode_identifier(topic)
                 + b"\x01\x00\x00\x00\x00" + (0).to_bytes(8, "little") + b"\x00")
        cells[("commit", name)] = await outcome(client.send_binary_request(121, store))
        cells[("alter", name)] = await outcome(client.update_topic(stream, topic, topic))
        cells[("delete_records", name)] = await outcome(client.purge_topic(stream, topic))
    cells["create"] = await outcome(client.create_topic("kafka", f"made-{tag}", 1))
    made = cells["create"] == "OK"
    cells["delete"] = await outcome(client.delete_topic("kafka", f"made-{tag}" if made
                                                        else "shared"))
    return cells


def test_iggy_sdk(cast) -> None:
    server, principals = cast
    token = next(p.secret for p in principals if p.name == "alice/PAT")
    logins = {
        "alice/password": AutoLogin.username_password("alice", ALICE_PASSWORD),
        "alice/PAT": AutoLogin.personal_access_token(token),
        "root/password": AutoLogin.username_password("iggy", "iggy"),
        "anonymous": None,
    }
    alice = {"list": UNAUTHORIZED, "create": UNAUTHORIZED, "delete": UNAUTHORIZED}
    for op in TOPIC_OPS:
        alice[(op, "kafka/shared")] = "OK" if op in ("produce", "consume", "commit") \
            else UNAUTHORIZED
        alice[(op, "secret/x")] = UNAUTHORIZED
    root = {key: "OK" for key in alice}
    anonymous = {key: UNAUTHENTICATED for key in alice}
    # status 40 too: the SDK's raw-request path names it so when it does not reconnect
    anonymous |= {("commit", t): "Disconnected" for t in ("kafka/shared", "secret/x")}
    wanted = {"alice/password": alice, "alice/PAT": alice, "root/password": root,
              "anonymous": anonymous}
    results = {who: asyncio.run(iggy_cells(server, login, who.replace("/", "-")))
               for who, login in logins.items()}
    print("--- iggy sdk cells ---\n" + "\n".join(f"{k}: {v}" for k, v in results.items()))
    assert results == wanted
