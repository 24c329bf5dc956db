"""Kafka transactions with confluent-kafka 2.16 (librdkafka): a transactional producer commits
and aborts, read_committed consumers see only committed records (read_uncommitted ones see
everything, markers skipped), a second instance with the same transactional.id fences the
first, consumed offsets are committed inside a transaction (consume-transform-produce), and
Iggy polls see only committed records (the cross-door rule, docs/two-doors.md)."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Producer,
    TopicPartition,
)

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.timeout(180)


def txn_producer(server: PyggyServer, tid: str, **extra) -> Producer:
    conf = {"bootstrap.servers": server.kafka_address, "transactional.id": tid,
            "linger.ms": 5}
    conf.update(extra)
    p = Producer(conf)
    p.init_transactions(30)
    return p


def values(server: PyggyServer, topic: str, isolation: str, expect: int,
           timeout: float = 20) -> list[bytes]:
    """Every record value of partition 0, read from the start until `expect` arrived and no
    more come for a moment."""
    c = Consumer({"bootstrap.servers": server.kafka_address, "group.id": f"{topic}-{isolation}",
                  "enable.auto.commit": False, "isolation.level": isolation})
    got: list[bytes] = []
    try:
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            batch = c.consume(100, 0.3)
            for m in batch:
                assert m.error() is None, m.error()
                got.append(m.value())
            if len(got) >= expect:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
    finally:
        c.close()
    return got


def iggy_payloads(server: PyggyServer, topic: str) -> list[bytes]:
    """Partition 0 through the Iggy door (apache-iggy SDK), each poll from the offset after
    the last message polled (offsets of markers and aborted records are gaps)."""
    from apache_iggy import Consumer as IggyConsumer
    from apache_iggy import IggyClient, PollingStrategy

    async def run() -> list[bytes]:
        client = IggyClient(server.tcp_address)
        await client.connect()
        await client.login_user("iggy", "iggy")
        out: list = []
        while True:
            batch = await client.poll_messages(
                "kafka", topic, partition_id=0, consumer=IggyConsumer.Single(1),
                polling_strategy=PollingStrategy.Offset(out[-1].offset() + 1 if out else 0),
                count=2, auto_commit=False)
            if not batch:
                return [m.payload() for m in out]
            out += batch

    return asyncio.run(run())


def send(p: Producer, topic: str, items: list[bytes]) -> None:
    for v in items:
        p.produce(topic, value=v, partition=0)
    p.flush(30)


def test_commit_and_abort_read_committed_sees_only_committed(kafka_server: PyggyServer,
                                                             topic: str):
    p = txn_producer(kafka_server, f"{topic}-tx")
    p.begin_transaction()
    send(p, topic, [b"c1", b"c2"])
    p.commit_transaction(30)
    p.begin_transaction()
    send(p, topic, [b"a1", b"a2", b"a3"])
    p.abort_transaction(30)
    p.begin_transaction()
    send(p, topic, [b"c3"])
    p.commit_transaction(30)
    assert values(kafka_server, topic, "read_committed", 3) == [b"c1", b"c2", b"c3"]
    assert values(kafka_server, topic, "read_uncommitted", 6) == [
        b"c1", b"c2", b"a1", b"a2", b"a3", b"c3"]
    # the cross-door rule: an Iggy poll sees the committed records only (no markers)
    assert iggy_payloads(kafka_server, topic) == [b"c1", b"c2", b"c3"]


def test_an_open_transaction_holds_read_committed_readers_back(kafka_server: PyggyServer,
                                                               topic: str):
    """Records of an open transaction are beyond the last stable offset: read_committed
    readers (and Iggy polls) see the records before it, then everything once it commits."""
    plain = Producer({"bootstrap.servers": kafka_server.kafka_address})
    send(plain, topic, [b"before"])
    p = txn_producer(kafka_server, f"{topic}-tx")
    p.begin_transaction()
    send(p, topic, [b"t1", b"t2"])
    send(plain, topic, [b"after"])  # behind the open transaction: not stable yet
    assert values(kafka_server, topic, "read_committed", 1, timeout=3) == [b"before"]
    assert iggy_payloads(kafka_server, topic) == [b"before"]
    p.commit_transaction(30)
    assert values(kafka_server, topic, "read_committed", 4) == [
        b"before", b"t1", b"t2", b"after"]


def test_a_new_instance_fences_the_zombie(kafka_server: PyggyServer, topic: str):
    tid = f"{topic}-tx"
    zombie = txn_producer(kafka_server, tid)
    zombie.begin_transaction()
    send(zombie, topic, [b"zombie"])
    successor = txn_producer(kafka_server, tid)  # aborts the zombie's open transaction
    successor.begin_transaction()
    send(successor, topic, [b"successor"])
    successor.commit_transaction(30)
    with pytest.raises(KafkaException) as e:
        zombie.commit_transaction(10)
    assert e.value.args[0].fatal() or "fenced" in str(e.value).lower(), e.value
    assert values(kafka_server, topic, "read_committed", 1) == [b"successor"]


def test_consume_transform_produce_commits_offsets_with_the_output(kafka_server: PyggyServer,
                                                                   topic: str):
    """send_offsets_to_transaction: the group's offsets become visible with the commit, and
    not at all when the transaction aborts."""
    src = f"{topic}-in"
    plain = Producer({"bootstrap.servers": kafka_server.kafka_address})
    send(plain, src, [b"x", b"y", b"z"])
    group = f"{topic}-etl"
    c = Consumer({"bootstrap.servers": kafka_server.kafka_address, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    p = txn_producer(kafka_server, f"{topic}-tx")
    try:
        c.assign([TopicPartition(src, 0, OFFSET_BEGINNING)])
        got = []
        deadline = time.monotonic() + 20
        while len(got) < 3 and time.monotonic() < deadline:
            got += [m for m in c.consume(10, 0.5) if m.error() is None]
        assert [m.value() for m in got] == [b"x", b"y", b"z"]
        p.begin_transaction()
        send(p, topic, [m.value().upper() for m in got[:2]])
        p.send_offsets_to_transaction([TopicPartition(src, 0, got[1].offset() + 1)],
                                      c.consumer_group_metadata(), 30)
        p.abort_transaction(30)
        assert c.committed([TopicPartition(src, 0)], 10)[0].offset < 0
        p.begin_transaction()
        send(p, topic, [m.value().upper() for m in got])
        p.send_offsets_to_transaction([TopicPartition(src, 0, got[2].offset() + 1)],
                                      c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        assert c.committed([TopicPartition(src, 0)], 10)[0].offset == got[2].offset() + 1
    finally:
        c.close()
    assert values(kafka_server, topic, "read_committed", 3) == [b"X", b"Y", b"Z"]


def test_transactions_survive_kill_9(tmp_path, topic: str):
    """A committed and an aborted transaction, then one left open, then SIGKILL: after the
    restart read_committed readers see the committed records only; the open transaction is
    aborted by its timeout (its producer is gone), which frees the records behind it."""
    server = PyggyServer(tmp_path, args=["--log-level", "info"]).start()
    try:
        server.wait_for_log("kafka listening on")
        p = txn_producer(server, f"{topic}-tx")
        p.begin_transaction()
        send(p, topic, [b"kept"])
        p.commit_transaction(30)
        p.begin_transaction()
        send(p, topic, [b"dropped"])
        p.abort_transaction(30)
        open_one = txn_producer(server, f"{topic}-open", **{"transaction.timeout.ms": 3000})
        open_one.begin_transaction()
        send(open_one, topic, [b"never committed"])
        plain = Producer({"bootstrap.servers": server.kafka_address})
        send(plain, topic, [b"plain"])
        server.kill()
        del p, open_one, plain
        server.start()
        server.wait_for_log("kafka listening on")
        assert values(server, topic, "read_committed", 1, timeout=3) == [b"kept"]
        server.wait_for_log("timed out after 3000 ms: aborted", timeout=20)
        assert values(server, topic, "read_committed", 2) == [b"kept", b"plain"]
        assert iggy_payloads(server, topic) == [b"kept", b"plain"]
    finally:
        code = server.close()
    assert code in (None, 0), server.format_logs()
