"""Three pyggy processes: a backup SIGKILLed while more metadata ops commit than the metadata
journal holds (1024): topics created and deleted through Kafka, a user created and Iggy
consumer offsets stored with the apache-iggy SDK, Kafka group offsets committed with
librdkafka. Restarted, it fetches the metadata checkpoint (cluster/metadata_transfer.py),
restarts itself to install it (same pid), serves the topics in Kafka Metadata, and ends
with the same streams, topics, users, offsets and producer-id mark as the leader."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path

from apache_iggy import IggyClient, SendMessage
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pyggy.core.engine import LogEngine
from pyggy.core.offsets import CONSUMER
from pyggy.kafka_wire.groups.store import FileOffsetStore
from pyggy.kafka_wire.producer_ids import ProducerIdFile
from pyggy.kafka_wire.protocol import decode_response, parse_response_header, request_frame
from pyggy.native_wire.codec import primitives as p
from test_cluster_consumer_state import controller

from pyggy.testing import PyggyCluster

STORE_CONSUMER_OFFSET = 121
QUORUM = 1
STORES = 1100  # Iggy offset stores while the backup is away: each one metadata op
CONSUMERS = 40


def store_body(consumer: str, offset: int) -> bytes:
    return (p.encode_consumer(CONSUMER, consumer) + p.encode_identifier("s")
            + p.encode_identifier("t") + p.encode_optional_partition(0)
            + struct.pack("<QB", offset, QUORUM))


def kafka_topics(address: str) -> set[str]:
    """The churn topics one broker lists in Metadata (v4, all topics), asked on a socket of its
    own (librdkafka would answer from any broker it knows)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request_frame(3, 4, 1, "mxfer-test", {
            "topics": None, "allow_auto_topic_creation": False}))
        size = struct.unpack(">i", read_exactly(sock, 4))[0]
        frame = read_exactly(sock, size)
    _, pos = parse_response_header(frame, 3, 4)
    body = decode_response(3, 4, frame[pos:])
    return {t["name"] for t in body["topics"] if t["name"].startswith("churn-")}


def read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        buf += chunk
    return bytes(buf)


def wait_kafka_topics(address: str, want: set[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = kafka_topics(address)
        except OSError:  # listening again only once the restarted server is up
            got = set()
        if got == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{address} lists {sorted(got ^ want)} differently")
        time.sleep(0.5)


def wait_applied(server, needle: bytes, timeout: float = 60.0) -> None:
    """Until the node's state log holds `needle` (a command applied there; the Kafka clients
    would answer from any broker)."""
    deadline = time.monotonic() + timeout
    log = server.data_path / "state" / "state.log"
    while needle not in log.read_bytes():
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not applied on {server}:\n"
                                 + server.format_logs(80))
        time.sleep(0.2)


def snapshot(data: Path) -> dict[str, object]:
    """What a node holds, read with the real stores from its (stopped) data directory."""
    e = LogEngine(data)
    e.open()
    try:
        meta = e.metadata.meta
        streams = sorted(s.name for s in meta.streams.values())
        topics = sorted((s.name, t.name) for s in meta.streams.values()
                        for t in s.topics.values())
        users = sorted(u.username for u in meta.users.values())
        offsets = {c: e.consumers.get_offset(CONSUMER, c, "s", "t", 0)
                   for c in [f"c{i}" for i in range(CONSUMERS)] + ["early"]}
    finally:
        e.close()
    kafka = FileOffsetStore(data / "kafka" / "offsets")
    return {"streams": streams, "topics": topics, "users": users, "offsets": offsets,
            "kafka": {g: kafka.offsets(g) for g in sorted(kafka.groups())},
            "producer ids": ProducerIdFile(data / "kafka" / "producer_ids").load(0)}


def test_a_backup_down_past_the_metadata_journal_rejoins_by_state_transfer(
        tmp_path: Path) -> None:
    c = PyggyCluster(tmp_path / "c").start()
    try:
        boss = controller(c)
        backup = next(i for i in range(3) if i != boss)

        async def client() -> IggyClient:
            cl = IggyClient(c.servers[boss].tcp_address)
            await cl.connect()
            await cl.login_user("iggy", "iggy")
            return cl

        async def before() -> None:
            cl = await client()
            await cl.create_stream("s")
            await cl.create_topic("s", "t", partitions_count=1)
            await cl.send_messages("s", "t", 0, [SendMessage(f"m{i}") for i in range(30)])
            await cl.send_binary_request(STORE_CONSUMER_OFFSET, store_body("early", 3))

        asyncio.run(before())
        c.servers[backup].kill()

        admin = AdminClient({"bootstrap.servers": c.servers[boss].kafka_address})
        names = [f"churn-{k}" for k in range(40)]
        for f in admin.create_topics([NewTopic(n, 1, -1) for n in names],
                                     request_timeout=60).values():
            f.result(timeout=60)
        for f in admin.delete_topics(names[:20], request_timeout=60).values():
            f.result(timeout=60)
        kafka = Consumer({"bootstrap.servers": c.servers[boss].kafka_address,
                          "group.id": "ledger", "enable.auto.commit": False})
        for i in range(10):
            kafka.commit(offsets=[TopicPartition(names[30], 0, i)], asynchronous=False)
        kafka.close()
        # a transactional producer's id comes from the coordinator (the metadata primary): a
        # producer-id block granted by the metadata group, the mark moved on every replica
        producer = Producer({"bootstrap.servers": c.servers[boss].kafka_address,
                             "transactional.id": "mover"})
        producer.init_transactions(60)

        async def away() -> None:
            cl = await client()
            await cl.create_user("alice", "alice-password-1")

            async def stores(worker: int) -> None:
                w = await client()
                for i in range(worker, STORES, 4):
                    await w.send_binary_request(STORE_CONSUMER_OFFSET,
                                                store_body(f"c{i % CONSUMERS}", i % 30))

            await asyncio.gather(*(stores(k) for k in range(4)))

        asyncio.run(away())
        started = time.monotonic()
        c.servers[backup].start(90)
        pid = c.servers[backup].pid
        c.servers[backup].wait_for_log("restarting the server: a metadata checkpoint",
                                       timeout=120)
        line = c.servers[backup].wait_for_log("installed the metadata checkpoint", timeout=60)
        assert "fetched by state transfer" in line
        assert c.servers[backup].running and c.servers[backup].pid == pid  # exec'd in place
        c.servers[backup].wait_for_log("cluster: metadata primary is replica", timeout=60)
        wait_kafka_topics(c.servers[backup].kafka_address, set(names[20:]))
        took = time.monotonic() - started

        async def after() -> None:
            cl = await client()
            await cl.create_stream("after")  # applied by the rejoined node too

        asyncio.run(after())
        admin.create_topics([NewTopic("churn-last", 1, -1)])["churn-last"].result(timeout=60)
        for s in c.servers:  # everything committed before is applied where this is
            wait_applied(s, b'"churn-last"')
        for s in c.servers:
            assert s.stop() == 0
        states = [snapshot(s.data_path) for s in c.servers]
        assert states[backup] == states[boss], "the rejoined node differs from the leader"
        assert "after" in states[backup]["streams"]
        assert "alice" in states[backup]["users"]
        assert states[backup]["offsets"]["c0"] is not None
        assert any("ledger" == g for g in states[backup]["kafka"])
        assert states[backup]["producer ids"] > 0  # the mark of the block granted while away
        print(f"rejoined by metadata state transfer in {took:.1f} s")
    finally:
        c.close()
