"""Three pyggy processes on loopback as one cluster, used by real Kafka clients (librdkafka via
confluent-kafka): a topic created through the controller exists on every node, acks=all
produce is answered after the quorum commit, every node's segment files are byte-identical,
and SIGKILL of a partition's leader does not lose or duplicate what was acknowledged to an
idempotent producer."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pyggy.core import small_file

from pyggy.testing import PyggyCluster


@pytest.fixture
def cluster(tmp_path: Path):
    c = PyggyCluster(tmp_path / "cluster").start()
    try:
        yield c
    finally:
        c.close()


def admin(c: PyggyCluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": c.kafka_bootstrap})


def leader_of(c: PyggyCluster, topic: str, partition: int = 0, timeout: float = 30.0,
              avoid: int | None = None) -> int:
    """The partition's leader once a live broker reports one (not `avoid`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in c.servers:
            if not s.running:
                continue
            md = AdminClient({"bootstrap.servers": s.kafka_address}).list_topics(topic,
                                                                                 timeout=5)
            t = md.topics.get(topic)
            if t is not None and t.error is None and partition in t.partitions:
                leader = t.partitions[partition].leader
                if leader >= 0 and leader != avoid:
                    return leader
        time.sleep(0.2)
    raise AssertionError(f"no leader for {topic}[{partition}]")


def create_topic(c: PyggyCluster, name: str, partitions: int = 1) -> None:
    client = admin(c)  # alive until the result is in
    for _, f in client.create_topics([NewTopic(name, partitions, -1)],
                                     request_timeout=30).items():
        f.result(timeout=30)


def segment_files(c: PyggyCluster, index: int) -> dict[str, bytes]:
    root = c.servers[index].data_path / "streams"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.suffix in (".log", ".index")}


def wait_identical(c: PyggyCluster, nodes: list[int], timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        files = [segment_files(c, i) for i in nodes]
        if files[0] and all(f == files[0] for f in files):
            return files[0]
        if time.monotonic() > deadline:
            sizes = [{k: len(v) for k, v in f.items()} for f in files]
            raise AssertionError(f"segments differ: {sizes}")
        time.sleep(0.2)


def produce(c: PyggyCluster, topic: str, values: list[bytes],
            kill_after: int | None = None, victim=None) -> dict[bytes, int]:
    """Produce with an idempotent acks=all producer; returns value -> acknowledged offset."""
    acked: dict[bytes, int] = {}
    errors: list[str] = []

    def report(err, msg) -> None:
        if err is None:
            assert msg.value() not in acked, "acknowledged twice"
            acked[msg.value()] = msg.offset()
            times.append(time.monotonic())
        else:
            errors.append(str(err))

    times: list[float] = []

    p = Producer({"bootstrap.servers": c.kafka_bootstrap, "acks": "all",
                  "enable.idempotence": True, "linger.ms": 5, "message.timeout.ms": 60000,
                  "retry.backoff.ms": 100, "metadata.max.age.ms": 1000,
                  "topic.metadata.refresh.interval.ms": 1000})
    for i, v in enumerate(values):
        p.produce(topic, v, partition=0, on_delivery=report)
        p.poll(0)
        if kill_after is not None and i == kill_after:
            p.poll(0.05)  # some acknowledged, the rest in flight
            victim()
        if i % 50 == 0:
            p.poll(0.01)
    assert p.flush(90) == 0, "messages left undelivered"
    assert not errors, errors[:5]
    produce.ack_times = times  # type: ignore[attr-defined]
    return acked


def consume(c: PyggyCluster, topic: str, count: int) -> list[tuple[int, bytes]]:
    consumer = Consumer({"bootstrap.servers": c.kafka_bootstrap, "group.id": "g",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 60
    while len(got) < count and time.monotonic() < deadline:
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            got.append((m.offset(), m.value()))
    consumer.close()
    return got


def test_a_topic_on_every_node_acks_all_and_byte_identical_segments(
        cluster: PyggyCluster) -> None:
    create_topic(cluster, "orders")
    for s in cluster.servers:  # every node knows it, and names the same leader
        md = AdminClient({"bootstrap.servers": s.kafka_address}).list_topics("orders",
                                                                             timeout=10)
        assert len(md.brokers) == 3 and "orders" in md.topics
    leader = leader_of(cluster, "orders")
    values = [b"order-%04d" % i for i in range(300)]
    acked = produce(cluster, "orders", values)
    assert sorted(acked.values()) == list(range(300))
    files = wait_identical(cluster, [0, 1, 2])
    assert sum(len(v) for k, v in files.items() if k.endswith(".log")) > 300 * 10
    got = consume(cluster, "orders", 300)
    assert [v for _, v in got] == [v for v, _ in sorted(acked.items(), key=lambda kv: kv[1])]
    assert leader in (0, 1, 2)


def test_sigkill_of_the_leader_loses_and_duplicates_nothing_then_it_rejoins(
        cluster: PyggyCluster) -> None:
    create_topic(cluster, "payments")
    leader = leader_of(cluster, "payments")
    killed_at: list[float] = []

    def kill() -> None:
        cluster.servers[leader].kill()
        killed_at.append(time.monotonic())

    values = [b"pay-%04d" % i for i in range(400)]
    acked = produce(cluster, "payments", values, kill_after=150, victim=kill)
    assert set(acked) == set(values)  # every record acknowledged once the new leader took over
    after = [t for t in produce.ack_times if t > killed_at[0]]  # type: ignore[attr-defined]
    assert after, "nothing was acknowledged after the kill"
    failover = after[0] - killed_at[0]
    print(f"failover: first acknowledgement {failover:.2f} s after SIGKILL of the leader")
    assert failover < 2.0 + 10.0  # heartbeat_timeout 2 s, plus a generous margin
    offsets = sorted(acked.values())
    assert offsets == list(range(400)), "an acknowledged offset is missing or duplicated"
    new_leader = leader_of(cluster, "payments", avoid=leader)
    assert new_leader != leader
    got = consume(cluster, "payments", 400)
    assert len(got) == 400 and len({v for _, v in got}) == 400
    assert {v: o for o, v in got} == acked
    # the killed node comes back, rejoins and catches up to the same bytes
    cluster.servers[leader].start(60)
    wait_identical(cluster, [0, 1, 2], timeout=60)


def test_load_does_not_fake_a_dead_primary(tmp_path: Path) -> None:
    """Under full produce load, with the default 5 s heartbeat timeout, no tick comes as late
    as the failure detector's timeout and no group changes its view: a slow request or a GC
    pause must not fake a dead primary. Prints the tick lateness each node measured."""
    cluster = PyggyCluster(tmp_path / "c", timing={"heartbeat_timeout": "5 s"}).start()
    try:
        _load(cluster)
    finally:
        cluster.close()


def _load(cluster: PyggyCluster) -> None:
    create_topic(cluster, "load")
    leader_of(cluster, "load")
    marks = [len(s.logs) for s in cluster.servers]
    p = Producer({"bootstrap.servers": cluster.kafka_bootstrap, "acks": "all",
                  "enable.idempotence": True, "linger.ms": 5, "batch.size": 65536})
    value = b"x" * 200
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 8:
        for _ in range(1000):
            try:
                p.produce("load", value, partition=0)
                sent += 1
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    assert p.flush(60) == 0
    elapsed = time.monotonic() - started
    for s, mark in zip(cluster.servers, marks, strict=True):
        changes = [line for line in s.logs[mark:] if "primary is replica" in line]
        assert changes == [], changes  # nobody suspected a primary under load
    for s in cluster.servers:
        s.stop()
        line = s.wait_for_log("tick lateness over")
        print(f"{s.kafka_address}: {sent} records in {elapsed:.1f} s: {line.split(': ', 2)[-1]}")
        worst = float(line.rsplit("max ", 1)[1].split()[0])
        assert worst < 5000.0, line  # the heartbeat timeout


def test_the_whole_cluster_killed_and_restarted_keeps_every_acknowledged_record(
        cluster: PyggyCluster) -> None:
    """SIGKILL of every node (the machine stays up, so the page cache survives): after the
    restart the replicas find each other, elect a primary from their recovered logs and serve
    everything that was acknowledged, then take new writes."""
    create_topic(cluster, "ledger")
    leader_of(cluster, "ledger")
    acked = produce(cluster, "ledger", [b"before-%03d" % i for i in range(100)])
    for s in cluster.servers:
        s.kill()
    cluster.start()
    leader_of(cluster, "ledger")
    got = consume(cluster, "ledger", 100)
    assert {v: o for o, v in got} == acked
    more = produce(cluster, "ledger", [b"after-%03d" % i for i in range(50)])
    assert sorted(more.values()) == list(range(100, 150))
    wait_identical(cluster, [0, 1, 2])


def test_the_leader_uploads_each_sealed_segment_once_and_every_replica_records_it(
        tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    c = PyggyCluster(tmp_path / "c", env={
        "IGGY_DATA_MAINTENANCE_ARCHIVER_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_KIND": "disk",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_DISK_PATH": str(archive),
        "IGGY_DATA_MAINTENANCE_MESSAGES_ARCHIVER_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_MESSAGES_INTERVAL": "1 s"}).start()
    try:
        client = admin(c)
        for _, f in client.create_topics([NewTopic("audit", 1, -1, config={
                "segment.bytes": str(1 << 20)})], request_timeout=30).items():
            f.result(timeout=30)
        leader_of(c, "audit")
        values = [b"%06d" % i + b"." * 994 for i in range(4000)]  # 4 MB: some segments sealed
        assert sorted(produce(c, "audit", values).values()) == list(range(4000))

        def manifests() -> list[list[int]]:
            out = []
            for s in c.servers:
                doc = {}
                for path in s.data_path.rglob("archive.json"):
                    try:  # read only (the server may be writing it): one verified copy
                        doc = json.loads(small_file.decode(path.read_bytes())[1])
                    except ValueError:
                        pass
                out.append([e["start"] for e in doc.get("segments", [])])
            return out

        sealed = sum(1 for k in wait_identical(c, [0, 1, 2]) if k.endswith(".log")) - 1
        assert sealed >= 2
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(len(m) == sealed for m in manifests()):
            time.sleep(0.2)
        seen = manifests()
        assert seen[0] == seen[1] == seen[2] and len(seen[0]) == sealed, seen
        objects = sorted(p.name for p in archive.rglob("*.log"))
        uploads = sum(1 for s in c.servers for line in s.logs
                      if "archiver: archived segment" in line)
        assert len(objects) == uploads == sealed, (objects, uploads)
    finally:
        c.close()


def test_a_backup_down_past_the_journal_rejoins_by_state_transfer(
        cluster: PyggyCluster) -> None:
    """vsr.md N2 in spirit: a backup of the partition is SIGKILLed while 400 ops commit
    without it — past the partition journal (128 slots) and several checkpoints (every 64
    ops) — then restarted: the peers answer its repair with RangeEvicted, it fetches the
    segments (cluster/segment_transfer.py), ends byte-identical, and follows new writes.
    (A backup only frozen, SIGSTOP, for those 400 small ops needs no transfer: its TCP
    buffers and the peer queue hold every prepare, nothing is dropped.)"""
    create_topic(cluster, "ledger")
    leader = leader_of(cluster, "ledger")
    backup = next(i for i in range(3) if i != leader)
    p = Producer({"bootstrap.servers": cluster.servers[leader].kafka_address, "acks": "all",
                  "enable.idempotence": True, "linger.ms": 0, "batch.num.messages": 1,
                  "message.timeout.ms": 60000})
    errors: list[str] = []

    def send(values: list[bytes]) -> None:
        for v in values:  # one record a batch: one op each
            p.produce("ledger", v, partition=0,
                      on_delivery=lambda err, _: errors.append(str(err)) if err else None)
            p.poll(0)
        assert p.flush(90) == 0 and not errors, errors[:5]

    send([b"before-%03d" % i for i in range(20)])
    wait_identical(cluster, [0, 1, 2])
    cluster.servers[backup].kill()
    send([b"while-away-%04d" % i for i in range(400)])
    wait_identical(cluster, [leader, 3 - leader - backup])
    cluster.servers[backup].start(60)
    line = cluster.servers[backup].wait_for_log("segment(s) of checkpoint", timeout=60)
    assert "installed 1 segment(s)" in line
    wait_identical(cluster, [0, 1, 2], timeout=60)
    send([b"after-%03d" % i for i in range(20)])
    files = wait_identical(cluster, [0, 1, 2], timeout=60)
    index = next(v for k, v in files.items() if k.endswith(".index"))
    assert len(index) == 440 * 48  # every batch, once
