"""Kafka consumer groups end to end: kafka-python 3.0.12 and aiokafka 0.14.0 (and one
confluent-kafka 2.16.1 test), unmodified, against a pyggy server subprocess (`pyggy_server`).

- three members of a group split a three-partition topic (disjoint, complete assignments, as
  the members and DescribeGroups see them);
- a member leaves and another joins while records keep arriving: no record is lost, and a
  record is consumed twice only if no commit covering it had completed before it was read
  again (the new owner starts exactly at the committed offset);
- a new member of an empty group gets records within 2 s (the initial rebalance delay is
  `[kafka] group_initial_rebalance_delay`, 500 ms, not Kafka's 3 s);
- commit (with metadata), stop the consumer, kill -9 and restart the server: a new consumer
  resumes exactly at the committed offsets, and the metadata comes back;
- DescribeGroups / ListGroups / DeleteGroups / OffsetDelete through the admin clients;
- Kafka group offsets and Iggy consumer(-group) offsets are separate namespaces (README);
- static members (group.instance.id) restart without a rebalance and expire by session;
- the group API versions each client negotiates (read from the server's debug log).

Topics are created through the Iggy door (apache-iggy SDK, stream `kafka`), so they have three
partitions whatever the Kafka auto-create setting. Waiting is done by polling with deadlines.
"""

from __future__ import annotations

import asyncio
import re
import signal
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener as AioRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError as AioCommitFailed
from aiokafka.errors import IllegalStateError as AioIllegalState
from aiokafka.errors import KafkaError as AioKafkaError
from aiokafka.structs import OffsetAndMetadata as AioOffset
from aiokafka.structs import TopicPartition as AioTP
from apache_iggy import Consumer, IggyClient, PollingStrategy
from kafka import (
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from pyggy.kafka_wire.registry import REGISTRY

from pyggy.testing import PyggyServer

PARTITIONS = 3
SESSION_MS = 10_000  # the coordinator accepts 6 s … 30 min
HEARTBEAT_MS = 100  # members notice a rebalance within one heartbeat
GET_CONSUMER_OFFSET, CONSUMER, CONSUMER_GROUP = 120, 1, 2


# ---------------------------------------------------------------------------- helpers


def kafka_address(server: PyggyServer) -> str:
    server.wait_for_log("kafka listening on")  # logged after the "tcp listening on" line
    return server.kafka_address


async def iggy_client(server: PyggyServer) -> IggyClient:
    client = IggyClient(server.tcp_address)
    await client.connect()
    await client.login_user("iggy", "iggy")
    return client


async def create_topic_async(server: PyggyServer, name: str, partitions: int = PARTITIONS):
    """Kafka topic `name` = Iggy topic `name` of stream `kafka`, made through the Iggy door."""
    client = await iggy_client(server)
    if not any(s.name == "kafka" for s in await client.get_streams()):
        await client.create_stream("kafka")
    await client.create_topic("kafka", name, partitions)


def create_topic(server: PyggyServer, name: str, partitions: int = PARTITIONS) -> None:
    asyncio.run(create_topic_async(server, name, partitions))


def produce(address: str, topic: str, per_partition: int, tag: str = "r") -> set[tuple[int, int]]:
    """`per_partition` records to each partition; the acknowledged (partition, offset)s."""
    producer = KafkaProducer(bootstrap_servers=address)
    futures = [producer.send(topic, f"{tag}{i}-{p}".encode(), partition=p)
               for i in range(per_partition) for p in range(PARTITIONS)]
    producer.flush()
    acked = {(f.get().partition, f.get().offset) for f in futures}
    producer.close()
    return acked


def wait_for(probe: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {got!r})")
        time.sleep(0.02)


async def await_for(probe: Callable[[], Any], timeout: float = 30.0,
                    what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout} s (last: {got!r})")
        await asyncio.sleep(0.02)


def split(assignments: list[frozenset[int]], partitions: int = PARTITIONS) -> bool:
    """Every member has partitions, no partition twice, every partition once."""
    return (all(assignments) and sum(map(len, assignments)) == partitions
            and frozenset().union(*assignments) == frozenset(range(partitions)))


class History:
    """What members consumed and which commits completed, with monotonic times (thread-safe
    enough: list appends under the GIL)."""

    def __init__(self) -> None:
        self.consumed: list[tuple[float, str, int, int]] = []  # (time, member, partition, offset)
        self.commits: list[tuple[float, int, int]] = []  # (completed at, partition, offset)

    def offsets(self) -> set[tuple[int, int]]:
        return {(p, o) for _, _, p, o in self.consumed}

    def check(self, produced: set[tuple[int, int]]) -> int:
        """No record lost; a duplicate only of a record no completed commit covered when it
        was read again. Returns the number of duplicates."""
        missing = produced - self.offsets()
        assert not missing, f"records never consumed: {sorted(missing)[:20]}"
        reads: dict[tuple[int, int], list[float]] = defaultdict(list)
        for t, _, p, o in self.consumed:
            reads[(p, o)].append(t)
        duplicates = 0
        for (p, o), times in reads.items():
            if len(times) < 2:
                continue
            duplicates += 1
            again = sorted(times)[1]
            covering = [(t, c) for t, cp, c in self.commits if cp == p and c > o and t < again]
            assert not covering, (
                f"record {p}:{o} read again although commits {covering} covered it")
        return duplicates


def describe(address: str, group: str) -> dict:
    admin = KafkaAdminClient(bootstrap_servers=address)
    try:
        return admin.describe_groups([group])[group]
    finally:
        admin.close()


def described_split(description: dict) -> list[frozenset[int]]:
    return [frozenset(p for a in m["member_assignment"]["assigned_partitions"]
                      for p in a["partitions"]) for m in description["members"]]


# ---------------------------------------------------------------------------- kafka-python


class Member(threading.Thread):
    """A kafka-python group member on its own thread: poll, record what it read, commit it
    every `commit_every` batches and whenever it is idle (so some records are always
    uncommitted when a rebalance moves their partition). A rebalance drops what is pending."""

    def __init__(self, name: str, address: str, topic: str, group: str, history: History,
                 commit_every: int = 1, **config: Any) -> None:
        super().__init__(name=name, daemon=True)
        self.config = dict(bootstrap_servers=address, group_id=group, client_id=name,
                           enable_auto_commit=False, auto_offset_reset="earliest",
                           session_timeout_ms=SESSION_MS, heartbeat_interval_ms=HEARTBEAT_MS,
                           max_poll_records=5, fetch_max_wait_ms=100)
        self.config.update(config)
        self.topic, self.history, self.commit_every = topic, history, commit_every
        self.assigned: frozenset[int] = frozenset()
        self.count = 0
        self.uncommitted: list[tuple[int, int]] = []
        self.abandoned: set[tuple[int, int]] = set()  # read, never committed, left behind
        self.dirty = False
        self.halt = threading.Event()
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:  # reported by stop()
            self.error = e

    def _run(self) -> None:
        pending: dict[TopicPartition, int] = {}
        member = self

        class Revoked(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                pending.clear()  # their new owner starts at the last commit
                member.uncommitted.clear()

            def on_partitions_assigned(self, assigned: Any) -> None:
                pass

        consumer = KafkaConsumer(**self.config)
        consumer.subscribe([self.topic], listener=Revoked())
        batches = 0
        while True:
            batch = consumer.poll(timeout_ms=50)
            now = time.monotonic()
            for tp, records in batch.items():
                for r in records:
                    self.history.consumed.append((now, self.name, tp.partition, r.offset))
                    self.uncommitted.append((tp.partition, r.offset))
                pending[tp] = records[-1].offset + 1
                self.count += len(records)
            self.assigned = frozenset(tp.partition for tp in consumer.assignment())
            batches += bool(batch)
            if self.halt.is_set() and (not self.dirty or batch):
                break  # a dirty stop leaves right after reading a batch it does not commit
            if pending and (not batch or batches % self.commit_every == 0):
                self._commit(consumer, pending)
        self.abandoned = set(self.uncommitted) if self.dirty else set()
        consumer.close(autocommit=False)  # LeaveGroup

    def _commit(self, consumer: KafkaConsumer, pending: dict[TopicPartition, int]) -> None:
        offsets = {tp: OffsetAndMetadata(o, "", -1) for tp, o in pending.items()}
        pending.clear()
        try:
            consumer.commit(offsets)
        except KafkaError:
            return  # a rebalance got there first: these records stay uncommitted
        done = time.monotonic()
        self.history.commits += [(done, tp.partition, o.offset) for tp, o in offsets.items()]
        self.uncommitted.clear()

    def stop(self, dirty: bool = False) -> None:
        """Stop and leave the group; `dirty`: right after reading a batch, uncommitted."""
        self.dirty = dirty
        self.halt.set()
        self.join(30)
        assert not self.is_alive(), f"{self.name} did not stop"
        if self.error is not None:
            raise self.error


class Producer(threading.Thread):
    """Sends records round-robin over the partitions until stopped; keeps the acks."""

    def __init__(self, address: str, topic: str) -> None:
        super().__init__(name="producer", daemon=True)
        self.producer = KafkaProducer(bootstrap_servers=address, linger_ms=0)
        self.topic = topic
        self.acked: set[tuple[int, int]] = set()
        self.halt = threading.Event()
        self.start()

    def run(self) -> None:
        i = 0
        while not self.halt.is_set():
            futures = [self.producer.send(self.topic, b"v%d" % (i + p), partition=p)
                       for p in range(PARTITIONS)]
            i += PARTITIONS
            self.acked |= {(m.partition, m.offset) for m in (f.get(10) for f in futures)}
            self.halt.wait(0.005)  # pacing: about 500 records a second

    def stop(self) -> set[tuple[int, int]]:
        self.halt.set()
        self.join(30)
        self.producer.close()
        return self.acked


def stop_all(*members: Member) -> None:
    for m in members:
        m.halt.set()
    for m in members:
        m.stop()


@pytest.mark.parametrize("api_version", [None, (2, 3), (0, 11)],
                         ids=["latest", "kafka-2.3", "kafka-0.11"])
def test_kafka_python_three_members_split_three_partitions(
        pyggy_server: PyggyServer, api_version: tuple | None) -> None:
    """`api_version` pins kafka-python to older group API versions (0.11: JoinGroup v2,
    SyncGroup/Heartbeat/LeaveGroup v1, OffsetCommit/OffsetFetch v3)."""
    address = kafka_address(pyggy_server)
    create_topic(pyggy_server, "t")
    produced = produce(address, "t", 20)
    history = History()
    extra = {"api_version": api_version} if api_version else {}
    members = [Member(f"m{i}", address, "t", "g", history, **extra) for i in range(3)]
    try:
        wait_for(lambda: split([m.assigned for m in members]) and
                 history.offsets() >= produced, what="a 1-1-1 split and every record read")
        d = describe(address, "g")
        assert (d["group_state"], d["protocol_type"]) == ("Stable", "consumer")
        assert d["protocol_data"] in ("range", "roundrobin")
        assert sorted(m["client_id"] for m in d["members"]) == ["m0", "m1", "m2"]
        assert split(described_split(d))
        assert sorted(map(sorted, described_split(d))) == sorted(
            sorted(m.assigned) for m in members)
    finally:
        stop_all(*members)
    history.check(produced)


def test_kafka_python_member_leaves_and_another_joins_mid_stream(
        pyggy_server: PyggyServer) -> None:
    address = kafka_address(pyggy_server)
    create_topic(pyggy_server, "stream")
    history = History()
    producer = Producer(address, "stream")
    a, b, c = (Member(n, address, "stream", "g", history, commit_every=2)
               for n in ("a", "b", "c"))
    d = None
    try:
        wait_for(lambda: split([a.assigned, b.assigned, c.assigned])
                 and min(a.count, b.count, c.count) >= 10, what="three members consuming")
        a.stop(dirty=True)  # leaves mid-stream with records it read but did not commit
        wait_for(lambda: split([b.assigned, c.assigned]), what="b and c taking over")
        seen = b.count + c.count
        wait_for(lambda: b.count + c.count >= seen + 20, what="b and c consuming")
        d = Member("d", address, "stream", "g", history, commit_every=2)
        wait_for(lambda: split([b.assigned, c.assigned, d.assigned]) and d.count >= 10,
                 what="d joining and consuming")
        produced = producer.stop()
        ends = {p: max(o for q, o in produced if q == p) + 1 for p in range(PARTITIONS)}
        wait_for(lambda: history.offsets() >= produced and all(
            any(cp == p and off == end for _, cp, off in history.commits)
            for p, end in ends.items()), what="every record consumed and committed")
    finally:
        producer.halt.set()
        stop_all(*[m for m in (a, b, c, d) if m is not None])
    assert len(produced) > 100
    history.check(produced)
    # what a read but never committed was read again by the members that took over
    assert a.abandoned
    again = {(p, o) for _, name, p, o in history.consumed if name != "a"}
    assert a.abandoned <= again
    # the group's committed offsets are the ends of the partitions
    final = KafkaConsumer(bootstrap_servers=address, group_id="g", enable_auto_commit=False)
    committed = {p: final.committed(TopicPartition("stream", p)) for p in range(PARTITIONS)}
    final.close()
    assert committed == ends


def test_kafka_python_new_member_reads_at_once(pyggy_server: PyggyServer) -> None:
    address = kafka_address(pyggy_server)
    create_topic(pyggy_server, "t")
    produce(address, "t", 2)
    started = time.monotonic()
    consumer = KafkaConsumer("t", bootstrap_servers=address, group_id="fresh",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        wait_for(lambda: consumer.poll(timeout_ms=50), timeout=10, what="a first record")
        elapsed = time.monotonic() - started
    finally:
        consumer.close()
    # Kafka's group.initial.rebalance.delay.ms alone would be 3 s
    assert elapsed < 2.0, f"first record after {elapsed:.2f} s"


def _read_until(consumer: KafkaConsumer, wanted: Callable[[dict], bool]) -> dict:
    """Poll, collecting {partition: [(offset, value)]}, until `wanted(collected)`."""
    got: dict[int, list[tuple[int, bytes]]] = defaultdict(list)

    def more() -> bool:
        for tp, records in consumer.poll(timeout_ms=50).items():
            got[tp.partition] += [(r.offset, r.value) for r in records]
        return wanted(got)

    wait_for(more, what="records")
    return got


def test_kafka_python_commit_restart_resume_exactly(pyggy_server: PyggyServer) -> None:
    address = kafka_address(pyggy_server)
    create_topic(pyggy_server, "t")
    produce(address, "t", 10)
    first = KafkaConsumer("t", bootstrap_servers=address, group_id="resume",
                          auto_offset_reset="earliest", enable_auto_commit=False,
                          max_poll_records=3)
    _read_until(first, lambda got: all(len(got[p]) >= 6 for p in range(PARTITIONS)))
    chosen = {0: 4, 1: 6, 2: 0}  # next offsets to read; 2: commit offset 0 explicitly
    first.commit({TopicPartition("t", p): OffsetAndMetadata(o, f"meta-{p} ✓", -1)
                  for p, o in chosen.items()})
    first.close(autocommit=False)

    pyggy_server.restart(signal.SIGKILL)  # acknowledged commits are durable
    address = kafka_address(pyggy_server)

    second = KafkaConsumer("t", bootstrap_servers=address, group_id="resume",
                           auto_offset_reset="latest", enable_auto_commit=False)
    try:
        for p, o in chosen.items():
            meta = second.committed(TopicPartition("t", p), metadata=True)
            assert (meta.offset, meta.metadata) == (o, f"meta-{p} ✓")
        got = _read_until(second, lambda got: sum(map(len, got.values())) >= 30 - 10)
        for p, o in chosen.items():
            assert [off for off, _ in got[p]] == list(range(o, 10))  # exactly after the commit
            assert got[p][0][1] == f"r{o}-{p}".encode()
    finally:
        second.close(autocommit=False)


def test_kafka_python_admin_describe_list_delete(pyggy_server: PyggyServer) -> None:
    address = kafka_address(pyggy_server)
    create_topic(pyggy_server, "t")
    produced = produce(address, "t", 5)
    history = History()
    members = [Member(f"adm{i}", address, "t", "adm", history) for i in range(2)]
    admin = KafkaAdminClient(bootstrap_servers=address)
    try:
        wait_for(lambda: split([m.assigned for m in members])
                 and history.offsets() >= produced, what="two members reading everything")
        wait_for(lambda: {(p, o) for _, p, o in history.commits} >= {
            (p, 5) for p in range(PARTITIONS)}, what="the commits of every record")
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert (listed["adm"]["protocol_type"], listed["adm"]["group_state"],
                listed["adm"]["group_type"]) == ("consumer", "Stable", "classic")
        d = admin.describe_groups(["adm", "nope"])
        assert d["nope"]["group_state"] == "Dead" and d["nope"]["members"] == []
        adm = d["adm"]
        assert (adm["group_state"], adm["protocol_type"], adm["error"]) == (
            "Stable", "consumer", None)
        assert sorted(m["client_id"] for m in adm["members"]) == ["adm0", "adm1"]
        assert {m["client_host"] for m in adm["members"]} == {"/127.0.0.1"}
        assert all(m["member_metadata"]["topics"] == ["t"] for m in adm["members"])
        assert split(described_split(adm))
        assert admin.delete_groups(["adm"])["adm"] != "OK"  # NON_EMPTY_GROUP
    finally:
        stop_all(*members)
    try:
        d = admin.describe_groups(["adm"])["adm"]
        assert (d["group_state"], d["members"]) == ("Empty", [])
        offsets = admin.list_group_offsets({"adm": None})["adm"]
        assert {tp.partition: o.offset for tp, o in offsets.items()} == {0: 5, 1: 5, 2: 5}
        assert admin.delete_groups(["adm", "nope"]) == {
            "adm": "OK", "nope": "GroupIdNotFoundError"}
        assert "adm" not in {g["group_id"] for g in admin.list_groups()}
        assert admin.list_group_offsets({"adm": None})["adm"] == {}
        assert admin.describe_groups(["adm"])["adm"]["group_state"] == "Dead"
    finally:
        admin.close()


def test_kafka_python_offset_delete(pyggy_server: PyggyServer) -> None:
    address = kafka_address(pyggy_server)
    create_topic(pyggy_server, "t")
    create_topic(pyggy_server, "other", 1)
    produce(address, "t", 4)
    consumer = KafkaConsumer("t", bootstrap_servers=address, group_id="od",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    admin = KafkaAdminClient(bootstrap_servers=address)
    t0, t1, other = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("other", 0)
    try:
        _read_until(consumer, lambda got: sum(map(len, got.values())) >= 12)
        consumer.commit({t0: OffsetAndMetadata(3, "", -1), t1: OffsetAndMetadata(2, "", -1),
                         other: OffsetAndMetadata(1, "", -1)})
        # an active member subscribes to "t": its offsets stay; "other" can go
        result = admin.delete_group_offsets("od", [t0, other])
        assert {tp: e.__name__ for tp, e in result.items()} == {
            t0: "GroupSubscribedToTopicError", other: "NoError"}
        assert consumer.committed(other) is None and consumer.committed(t0) == 3
    finally:
        consumer.close(autocommit=False)
    try:
        result = admin.delete_group_offsets("od", [t0])
        assert {tp: e.__name__ for tp, e in result.items()} == {t0: "NoError"}
        offsets = admin.list_group_offsets({"od": None})["od"]
        assert {(tp.topic, tp.partition): o.offset for tp, o in offsets.items()} == {
            ("t", 1): 2}
    finally:
        admin.close()
    again = KafkaConsumer("t", bootstrap_servers=address, group_id="od",
                          auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        got = _read_until(again, lambda got: sum(map(len, got.values())) >= 4 + 2 + 4)
        assert [o for o, _ in got[0]][0] == 0  # deleted: back to auto_offset_reset
        assert [o for o, _ in got[1]][0] == 2  # kept
    finally:
        again.close(autocommit=False)


def test_a_deleted_topic_takes_its_committed_offsets_along(pyggy_server: PyggyServer) -> None:
    """As in Kafka: a topic deleted (through either door) and created again under the same
    name starts with no committed offsets, instead of resuming at the old topic's."""
    from kafka.admin import NewTopic

    address = kafka_address(pyggy_server)
    create_topic(pyggy_server, "gone")
    create_topic(pyggy_server, "kept", 1)
    admin = KafkaAdminClient(bootstrap_servers=address)
    consumer = KafkaConsumer(bootstrap_servers=address, group_id="g", enable_auto_commit=False)
    tps = [TopicPartition("gone", p) for p in range(PARTITIONS)] + [TopicPartition("kept", 0)]

    def commit_all() -> None:
        admin.alter_group_offsets("g", {tp: OffsetAndMetadata(5, "m", -1) for tp in tps})
        assert [consumer.committed(tp) for tp in tps] == [5, 5, 5, 5]

    async def delete_and_create_through_iggy() -> None:
        client = await iggy_client(pyggy_server)
        await client.delete_topic("kafka", "gone")
        await client.create_topic("kafka", "gone", PARTITIONS)

    try:
        produce(address, "gone", 6)
        commit_all()
        asyncio.run(delete_and_create_through_iggy())
        assert [consumer.committed(tp) for tp in tps] == [None, None, None, 5]
        commit_all()
        admin.delete_topics(["gone"])
        admin.create_topics([NewTopic("gone", PARTITIONS, 1)])
        assert [consumer.committed(tp) for tp in tps] == [None, None, None, 5]
        pyggy_server.wait_for_log("dropped 3 committed Kafka group offsets of deleted topic gone")
    finally:
        consumer.close(autocommit=False)
        admin.close()


# ---------------------------------------------------------------------------- Kafka vs Iggy


async def iggy_stored_offset(client: IggyClient, kind: int, consumer: str, topic: str,
                             partition: int) -> int | None:
    """GET_CONSUMER_OFFSET (120) of stream `kafka`: the stored offset, or None."""
    def ident(name: str) -> bytes:
        return bytes((2, len(name))) + name.encode()

    body = (bytes((kind,)) + ident(consumer) + ident("kafka") + ident(topic)
            + struct.pack("<BI", 1, partition))
    try:
        reply = await client.send_binary_request(GET_CONSUMER_OFFSET, body)
    except RuntimeError:  # e.g. no such Iggy consumer group
        return None
    return struct.unpack("<IQQ", reply)[2] if reply else None


@pytest.mark.asyncio
async def test_kafka_and_iggy_group_offsets_are_separate(pyggy_server: PyggyServer) -> None:
    """A Kafka group and an Iggy consumer group with the same name, on the same partition,
    keep their own offsets; neither sees the other's commit (README, Kafka consumer groups)."""
    address = kafka_address(pyggy_server)
    await create_topic_async(pyggy_server, "shared", 1)
    producer = AIOKafkaProducer(bootstrap_servers=address)
    await producer.start()
    for i in range(10):
        await producer.send_and_wait("shared", b"m%d" % i, partition=0)
    await producer.stop()

    # Iggy consumer group "g": consumes offsets 0..2, stores 2 (the last consumed)
    root = await iggy_client(pyggy_server)
    await root.create_consumer_group("kafka", "shared", "g")
    await root.join_consumer_group("kafka", "shared", "g")
    got = await root.poll_messages("kafka", "shared", partition_id=0,
                                   consumer=Consumer.Group("g"),
                                   polling_strategy=PollingStrategy.Next(), count=3,
                                   auto_commit=True)
    assert [m.offset() for m in got] == [0, 1, 2]
    assert await iggy_stored_offset(root, CONSUMER_GROUP, "g", "shared", 0) == 2

    # Kafka group "g" knows nothing of it: no committed offset, not even listed
    tp = AioTP("shared", 0)
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        assert await admin.list_consumer_group_offsets("g") == {}
        assert "g" not in {g[0] for g in await admin.list_consumer_groups()}
        # Kafka group "g" commits 5 (the next offset to read) ...
        consumer = AIOKafkaConsumer(bootstrap_servers=address, group_id="g",
                                    enable_auto_commit=False)
        await consumer.start()
        consumer.assign([tp])
        await consumer.commit({tp: 5})
        assert await consumer.committed(tp) == 5
        await consumer.stop()
        assert (await admin.list_consumer_group_offsets("g"))[tp].offset == 5
    finally:
        await admin.close()
    # ... which the Iggy group, an Iggy consumer "g" and an Iggy group of another name ignore
    assert await iggy_stored_offset(root, CONSUMER_GROUP, "g", "shared", 0) == 2
    assert await iggy_stored_offset(root, CONSUMER, "g", "shared", 0) is None
    got = await root.poll_messages("kafka", "shared", partition_id=0,
                                   consumer=Consumer.Group("g"),
                                   polling_strategy=PollingStrategy.Next(), count=1,
                                   auto_commit=True)
    assert [m.offset() for m in got] == [3]  # Iggy resumes after its own offset 2, not at 5
    # and the Kafka group still resumes at its own 5
    consumer = AIOKafkaConsumer("shared", bootstrap_servers=address, group_id="g",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        batch = await await_for(lambda: consumer.getmany(timeout_ms=50), what="records")
        assert [r.offset for r in batch[tp]][0] == 5
    finally:
        await consumer.stop()
    assert await iggy_stored_offset(root, CONSUMER_GROUP, "g", "shared", 0) == 3


# ---------------------------------------------------------------------------- aiokafka


class AioMember:
    """An aiokafka group member as a task, committing as `Member` does."""

    def __init__(self, name: str, address: str, topic: str, group: str, history: History,
                 commit_every: int = 1, **config: Any) -> None:
        self.name, self.history, self.commit_every = name, history, commit_every
        self.consumer = AIOKafkaConsumer(**{
            "bootstrap_servers": address, "group_id": group, "client_id": name,
            "enable_auto_commit": False, "auto_offset_reset": "earliest",
            "session_timeout_ms": SESSION_MS, "heartbeat_interval_ms": HEARTBEAT_MS,
            "max_poll_records": 5, "fetch_max_wait_ms": 100, **config})
        self.topic = topic
        self.assigned: frozenset[int] = frozenset()
        self.count = 0
        self.pending: dict[AioTP, int] = {}
        self.uncommitted: list[tuple[int, int]] = []
        self.abandoned: set[tuple[int, int]] = set()
        self.dirty = False
        self.revocations = 0
        self.halt = asyncio.Event()
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        member = self

        class Revoked(AioRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                member.pending.clear()  # their new owner starts at the last commit
                member.uncommitted.clear()
                member.revocations += 1

            async def on_partitions_assigned(self, assigned: Any) -> None:
                pass

        self.consumer.subscribe([self.topic], listener=Revoked())
        await self.consumer.start()
        batches = 0
        try:
            while True:
                batch = await self.consumer.getmany(timeout_ms=50)
                now = time.monotonic()
                for tp, records in batch.items():
                    for r in records:
                        self.history.consumed.append((now, self.name, tp.partition, r.offset))
                        self.uncommitted.append((tp.partition, r.offset))
                    self.pending[tp] = records[-1].offset + 1
                    self.count += len(records)
                self.assigned = frozenset(tp.partition for tp in self.consumer.assignment())
                batches += bool(batch)
                if self.halt.is_set() and (not self.dirty or batch):
                    break
                if self.pending and (not batch or batches % self.commit_every == 0):
                    await self._commit()
            self.abandoned = set(self.uncommitted) if self.dirty else set()
        finally:
            await self.consumer.stop()  # LeaveGroup

    async def _commit(self) -> None:
        offsets, self.pending = self.pending, {}
        try:
            await self.consumer.commit(offsets)
        except (AioCommitFailed, AioIllegalState, AioKafkaError):
            return  # a rebalance got there first: these records stay uncommitted
        done = time.monotonic()
        self.history.commits += [(done, tp.partition, o) for tp, o in offsets.items()]
        self.uncommitted.clear()

    async def stop(self, dirty: bool = False) -> None:
        self.dirty = dirty
        self.halt.set()
        await asyncio.wait_for(self.task, 30)


async def aio_produce(address: str, topic: str, per_partition: int,
                      tag: str = "r") -> set[tuple[int, int]]:
    producer = AIOKafkaProducer(bootstrap_servers=address)
    await producer.start()
    try:
        futures = [await producer.send(topic, f"{tag}{i}-{p}".encode(), partition=p)
                   for i in range(per_partition) for p in range(PARTITIONS)]
        return {(m.partition, m.offset) for m in await asyncio.gather(*futures)}
    finally:
        await producer.stop()


@pytest.mark.asyncio
async def test_aiokafka_members_split_leave_and_join_mid_stream(
        pyggy_server: PyggyServer) -> None:
    address = kafka_address(pyggy_server)
    await create_topic_async(pyggy_server, "stream")
    history = History()
    acked: set[tuple[int, int]] = set()
    halt = asyncio.Event()

    async def keep_producing() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=address)
        await producer.start()
        i = 0
        try:
            while not halt.is_set():
                sent = [await producer.send("stream", b"v%d" % (i + p), partition=p)
                        for p in range(PARTITIONS)]
                i += PARTITIONS
                acked.update((m.partition, m.offset) for m in await asyncio.gather(*sent))
                await asyncio.sleep(0.005)  # pacing: about 500 records a second
        finally:
            await producer.stop()

    producing = asyncio.ensure_future(keep_producing())
    a, b, c = (AioMember(n, address, "stream", "g", history, commit_every=2)
               for n in ("a", "b", "c"))
    d = None
    try:
        await await_for(lambda: split([a.assigned, b.assigned, c.assigned])
                        and min(a.count, b.count, c.count) >= 10,
                        what="three members consuming")
        admin = AIOKafkaAdminClient(bootstrap_servers=address)
        await admin.start()
        try:
            [described] = await admin.describe_consumer_groups(["g"])
        finally:
            await admin.close()
        [group] = described.groups
        assert (group[0], group[1], group[2], group[3]) == (0, "g", "Stable", "consumer")
        assert sorted(m[1] for m in group[5]) == ["a", "b", "c"]  # client ids

        await a.stop(dirty=True)  # leaves mid-stream with records it did not commit
        await await_for(lambda: split([b.assigned, c.assigned]), what="b and c taking over")
        seen = b.count + c.count
        await await_for(lambda: b.count + c.count >= seen + 20, what="b and c consuming")
        d = AioMember("d", address, "stream", "g", history, commit_every=2)
        await await_for(lambda: split([b.assigned, c.assigned, d.assigned]) and d.count >= 10,
                        what="d joining and consuming")
        halt.set()
        await producing
        ends = {p: max(o for q, o in acked if q == p) + 1 for p in range(PARTITIONS)}
        await await_for(lambda: history.offsets() >= acked and all(
            any(cp == p and off == end for _, cp, off in history.commits)
            for p, end in ends.items()), what="every record consumed and committed")
    finally:
        halt.set()
        for m in (a, b, c, d):
            if m is not None:
                await m.stop()
        await producing
    assert len(acked) > 100
    history.check(acked)
    assert a.abandoned
    assert a.abandoned <= {(p, o) for _, name, p, o in history.consumed if name != "a"}
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets("g")
    finally:
        await admin.close()
    assert {tp.partition: o.offset for tp, o in committed.items()} == ends


@pytest.mark.asyncio
async def test_aiokafka_static_member_restarts_without_rebalance_then_expires(
        pyggy_server: PyggyServer) -> None:
    """group.instance.id (JoinGroup v5): a static member that restarts within its session
    takes its old partitions back and the other member is not disturbed; one that does not
    come back is evicted when its session times out, and the other takes everything."""
    address = kafka_address(pyggy_server)
    await create_topic_async(pyggy_server, "t")
    await aio_produce(address, "t", 3)
    history = History()
    static = {"session_timeout_ms": 6_000}  # the shortest the coordinator accepts
    s1 = AioMember("s1", address, "t", "static", history, group_instance_id="i1", **static)
    s2 = AioMember("s2", address, "t", "static", history, group_instance_id="i2", **static)
    try:
        await await_for(lambda: split([s1.assigned, s2.assigned]), what="a split")
        before, revocations = s1.assigned, s2.revocations
        first = describe(address, "static")["members"]
        await s1.stop()  # a static member sends no LeaveGroup
        s1 = AioMember("s1", address, "t", "static", history, group_instance_id="i1", **static)
        await await_for(lambda: s1.assigned, what="s1 back")
        assert s1.assigned == before
        assert s2.revocations == revocations  # no rebalance
        second = describe(address, "static")
        assert second["group_state"] == "Stable"
        assert sorted(m["group_instance_id"] for m in second["members"]) == ["i1", "i2"]
        ids = {m["group_instance_id"]: m["member_id"] for m in first}
        now = {m["group_instance_id"]: m["member_id"] for m in second["members"]}
        assert now["i2"] == ids["i2"] and now["i1"] != ids["i1"]
        assert now["i1"].startswith("i1-")

        await s1.stop()  # and does not come back: evicted after its 6 s session
        await await_for(lambda: s2.assigned == {0, 1, 2}, timeout=20,
                        what="s2 taking over after s1's session timeout")
        line = pyggy_server.wait_for_log(f"evicted member {now['i1']}")
        assert "session timeout" in line
    finally:
        await s1.stop()
        await s2.stop()


@pytest.mark.asyncio
async def test_aiokafka_new_member_reads_at_once(pyggy_server: PyggyServer) -> None:
    address = kafka_address(pyggy_server)
    await create_topic_async(pyggy_server, "t")
    await aio_produce(address, "t", 2)
    started = time.monotonic()
    consumer = AIOKafkaConsumer("t", bootstrap_servers=address, group_id="fresh",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        await await_for(lambda: consumer.getmany(timeout_ms=50), timeout=10,
                        what="a first record")
        elapsed = time.monotonic() - started
    finally:
        await consumer.stop()
    assert elapsed < 2.0, f"first record after {elapsed:.2f} s"


@pytest.mark.asyncio
async def test_aiokafka_commit_restart_resume_exactly(pyggy_server: PyggyServer) -> None:
    address = kafka_address(pyggy_server)
    await create_topic_async(pyggy_server, "t")
    await aio_produce(address, "t", 10)
    first = AIOKafkaConsumer("t", bootstrap_servers=address, group_id="resume",
                             auto_offset_reset="earliest", enable_auto_commit=False)
    await first.start()
    got: dict[int, list[int]] = defaultdict(list)

    async def more() -> bool:
        for tp, records in (await first.getmany(timeout_ms=50)).items():
            got[tp.partition] += [r.offset for r in records]
        return all(len(got[p]) >= 6 for p in range(PARTITIONS))

    await await_for(more, what="records of every partition")
    chosen = {0: 4, 1: 6, 2: 0}
    await first.commit({AioTP("t", p): (o, f"aio-{p} ✓") for p, o in chosen.items()})
    await first.stop()

    pyggy_server.restart(signal.SIGKILL)
    address = kafka_address(pyggy_server)

    second = AIOKafkaConsumer("t", bootstrap_servers=address, group_id="resume",
                              auto_offset_reset="latest", enable_auto_commit=False)
    await second.start()
    try:
        admin = AIOKafkaAdminClient(bootstrap_servers=address)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets("resume")
        finally:
            await admin.close()
        assert committed == {AioTP("t", p): AioOffset(o, f"aio-{p} ✓")
                             for p, o in chosen.items()}
        resumed: dict[int, list[tuple[int, bytes]]] = defaultdict(list)

        async def rest() -> bool:
            for tp, records in (await second.getmany(timeout_ms=50)).items():
                resumed[tp.partition] += [(r.offset, r.value) for r in records]
            return sum(map(len, resumed.values())) >= 20

        await await_for(rest, what="the records after the commits")
        for p, o in chosen.items():
            assert [off for off, _ in resumed[p]] == list(range(o, 10))
            assert resumed[p][0][1] == f"r{o}-{p}".encode()
    finally:
        await second.stop()


@pytest.mark.asyncio
async def test_aiokafka_admin_lists_and_describes(pyggy_server: PyggyServer) -> None:
    address = kafka_address(pyggy_server)
    await create_topic_async(pyggy_server, "t")
    history = History()
    member = AioMember("solo", address, "t", "aio-adm", history)
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        await await_for(lambda: member.assigned == {0, 1, 2}, what="an assignment")
        listed = await admin.list_consumer_groups()
        assert ("aio-adm", "consumer") in [tuple(g[:2]) for g in listed]
        # one group per request: aiokafka 0.14.0 sends DescribeGroups v3 but reads the answer
        # as v2 (no authorized_operations), which garbles every group after the first
        [response] = await admin.describe_consumer_groups(["nope"])
        assert [g[:3] for g in response.groups] == [(0, "nope", "Dead")]
        [response] = await admin.describe_consumer_groups(["aio-adm"])
        error, _, state, protocol_type, protocol, members = response.groups[0][:6]
        assert (error, state, protocol_type, protocol) == (0, "Stable", "consumer",
                                                           "roundrobin")
        [(member_id, client_id, client_host, metadata, assignment)] = [m[:1] + m[-4:]
                                                                       for m in members]
        assert (client_id, client_host) == ("solo", "/127.0.0.1")
        assert member_id.startswith("solo-") and metadata and assignment
    finally:
        await member.stop()
        await admin.close()


# ---------------------------------------------------------------------------- confluent-kafka


def test_confluent_kafka_group(pyggy_server_factory) -> None:
    """confluent-kafka 2.16.1 (librdkafka 2.16): the flexible OffsetCommit/OffsetFetch v9 the
    Python clients do not send; a second member splits the partitions; metadata round-trips."""
    from confluent_kafka import Consumer
    from confluent_kafka import TopicPartition as CkTP
    from confluent_kafka.admin import AdminClient

    server = pyggy_server_factory(args=["--log-level", "debug"])
    address = kafka_address(server)
    create_topic(server, "t")
    produce(address, "t", 10)
    conf = {"bootstrap.servers": address, "group.id": "ck", "client.id": "ck",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "heartbeat.interval.ms": HEARTBEAT_MS, "session.timeout.ms": SESSION_MS}
    started = time.monotonic()
    first = Consumer(conf)
    first.subscribe(["t"])
    read: set[tuple[int, int]] = set()

    def poll_first() -> bool:
        m = first.poll(0.05)
        if m is not None and m.error() is None:
            read.add((m.partition(), m.offset()))
        return len(read) == 30

    wait_for(poll_first, what="30 records")
    assert time.monotonic() - started < 10
    first.commit(offsets=[CkTP("t", p, 7, metadata=f"ck-{p}") for p in range(PARTITIONS)],
                 asynchronous=False)
    second = Consumer(conf)
    second.subscribe(["t"])
    try:
        def both() -> bool:
            first.poll(0.02)
            second.poll(0.02)
            return split([frozenset(tp.partition for tp in c.assignment())
                          for c in (first, second)])

        wait_for(both, what="a split between two members")
        committed = second.committed([CkTP("t", p) for p in range(PARTITIONS)], timeout=10)
        assert [(tp.partition, tp.offset, tp.metadata) for tp in committed] == [
            (p, 7, f"ck-{p}") for p in range(PARTITIONS)]
        admin = AdminClient({"bootstrap.servers": address, "client.id": "ck"})
        description = admin.describe_consumer_groups(["ck"])["ck"].result(10)
        assert (description.group_id, str(description.state), len(description.members)) == (
            "ck", "ConsumerGroupState.STABLE", 2)
        assert "ck" in [g.group_id for g in admin.list_consumer_groups().result(10).valid]
    finally:
        second.close()
        first.close()
    used = api_versions(server, "ck")
    assert {api: used.get(api) for api in GROUP_APIS[:8]} == {
        "JoinGroup": {5}, "SyncGroup": {3}, "Heartbeat": {3}, "LeaveGroup": {1},
        "OffsetCommit": {9}, "OffsetFetch": {9}, "DescribeGroups": {5}, "ListGroups": {5}}


# ---------------------------------------------------------------------------- versions


def api_versions(server: PyggyServer, client_id: str) -> dict[str, set[int]]:
    """{api name: versions} a client (by client id) used, from the server's debug log."""
    used: dict[str, set[int]] = defaultdict(set)
    pattern = re.compile(rf"kafka client '{re.escape(client_id)}' from \S+ uses (\w+) v(\d+)")
    for line in server.logs:
        m = pattern.search(line)
        if m:
            used[m.group(1)].add(int(m.group(2)))
    return dict(used)


GROUP_APIS = ("JoinGroup", "SyncGroup", "Heartbeat", "LeaveGroup", "OffsetCommit",
              "OffsetFetch", "DescribeGroups", "ListGroups", "DeleteGroups", "OffsetDelete")


@pytest.mark.parametrize(("api_version", "expected"), [
    (None, {"JoinGroup": 7, "SyncGroup": 5, "Heartbeat": 4, "LeaveGroup": 5,
            "OffsetCommit": 8, "OffsetFetch": 8,
            "DescribeGroups": min(6, REGISTRY[15].max_version), "ListGroups": 5,
            "DeleteGroups": 2, "OffsetDelete": 0}),
    ((2, 3), {"JoinGroup": 5, "SyncGroup": 3, "Heartbeat": 3, "LeaveGroup": 2,
              "OffsetCommit": 7, "OffsetFetch": 5, "DescribeGroups": 3, "ListGroups": 2,
              "DeleteGroups": 1, "OffsetDelete": None}),  # OffsetDelete came with Kafka 2.4
    ((0, 11), {"JoinGroup": 2, "SyncGroup": 1, "Heartbeat": 1, "LeaveGroup": 1,
               "OffsetCommit": 3, "OffsetFetch": 3, "DescribeGroups": 1, "ListGroups": 1,
               "DeleteGroups": None, "OffsetDelete": None}),  # DeleteGroups came with 1.1
], ids=["latest", "kafka-2.3", "kafka-0.11"])
def test_kafka_python_group_api_versions(pyggy_server_factory, api_version,
                                         expected: dict[str, int | None]) -> None:
    """One member's life plus the admin calls, at debug log level; the versions it used."""
    server = pyggy_server_factory(args=["--log-level", "debug"])
    address = kafka_address(server)
    create_topic(server, "t")
    produce(address, "t", 3)
    extra = {"api_version": api_version} if api_version else {}
    history = History()
    member = Member("kp", address, "t", "v", history, **extra)
    wait_for(lambda: len(history.commits) >= 3 and "Heartbeat" in api_versions(server, "kp"),
             what="commits and a heartbeat")
    member.stop()
    admin = KafkaAdminClient(bootstrap_servers=address, client_id="kp", **extra)
    try:
        admin.list_groups()
        admin.describe_groups(["v"])
        admin.list_group_offsets({"v": None})
        if expected["OffsetDelete"] is not None:
            admin.delete_group_offsets("v", [TopicPartition("t", 0)])
        if expected["DeleteGroups"] is not None:
            admin.delete_groups(["v"])
    finally:
        admin.close()
    used = api_versions(server, "kp")
    assert {api: used.get(api) for api in GROUP_APIS} == {
        api: None if v is None else {v} for api, v in expected.items()}


@pytest.mark.asyncio
async def test_aiokafka_group_api_versions(pyggy_server_factory) -> None:
    server = pyggy_server_factory(args=["--log-level", "debug"])
    address = kafka_address(server)
    await create_topic_async(server, "t")
    await aio_produce(address, "t", 3)
    history = History()
    member = AioMember("aio", address, "t", "v", history)
    await await_for(lambda: len(history.commits) >= 3
                    and "Heartbeat" in api_versions(server, "aio"), what="commits and a heartbeat")
    await member.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=address, client_id="aio")
    await admin.start()
    try:
        await admin.list_consumer_groups()
        await admin.describe_consumer_groups(["v"])
        await admin.list_consumer_group_offsets("v")
    finally:
        await admin.close()
    used = api_versions(server, "aio")
    assert {api: used.get(api) for api in GROUP_APIS[:8]} == {
        "JoinGroup": {5}, "SyncGroup": {3}, "Heartbeat": {1}, "LeaveGroup": {1},
        "OffsetCommit": {3}, "OffsetFetch": {3}, "DescribeGroups": {3}, "ListGroups": {1}}
