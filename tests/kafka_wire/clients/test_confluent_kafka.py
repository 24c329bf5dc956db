"""confluent-kafka 2.16.1 (librdkafka 2.16, flexible versions) against pyggy."""

from __future__ import annotations

import logging
import os
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from support import (
    PARTITIONS,
    Got,
    Rec,
    check_iggy_view,
    check_round_trip,
    iggy_headers,
    iggy_poll,
    iggy_send,
    make_records,
    normalize_headers,
    stored_codecs,
)

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.timeout(120)
CLIENT_ID = "confluent-kafka"


def _address(server: PyggyServer | str) -> str:
    return server if isinstance(server, str) else server.kafka_address


def producer(server: PyggyServer | str, **config) -> Producer:
    conf = {"bootstrap.servers": _address(server), "client.id": CLIENT_ID, "acks": "all",
            "linger.ms": 5}
    conf.update({k.replace("_", "."): v for k, v in config.items()})
    return Producer(conf)


def consumer(server: PyggyServer | str, **config) -> Consumer:
    conf = {"bootstrap.servers": _address(server), "client.id": CLIENT_ID,
            "group.id": "confluent-assign", "enable.auto.commit": False}
    conf.update({k.replace("_", "."): v for k, v in config.items()})
    return Consumer(conf)


def produce(p: Producer, topic: str, records: list[Rec], **kw) -> list[tuple[int, int]]:
    acks: list[tuple[int, int] | None] = [None] * len(records)
    errors = []

    def report(i: int):
        def on_delivery(err, msg) -> None:
            if err is not None:
                errors.append((i, err))
            else:
                acks[i] = (msg.partition(), msg.offset())
        return on_delivery

    for i, r in enumerate(records):
        while True:
            try:
                p.produce(topic, key=r.key, value=r.value, headers=list(r.headers),
                          on_delivery=report(i), **kw)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(30) == 0
    assert not errors, errors[:5]
    return acks  # type: ignore[return-value]


def consume(c: Consumer, count: int, timeout: float = 30) -> list[Got]:
    got: list[Got] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for m in c.consume(num_messages=1000, timeout=0.5):
            assert m.error() is None, m.error()
            got.append(Got(m.partition(), m.offset(), m.key(), m.value(),
                           normalize_headers(m.headers()), m.timestamp()[1]))
    return got


def assign_from_start(c: Consumer, topic: str) -> None:
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])


def test_10k_keyed_records_with_headers_round_trip(kafka_server: PyggyServer, topic: str):
    """acks=all producer; a group consumer (subscribe, earliest) reads everything back and
    commits its positions."""
    records = make_records(10_000)
    p = producer(kafka_server)
    acks = produce(p, topic, records)
    c = consumer(kafka_server, group_id=f"g-{topic}", auto_offset_reset="earliest")
    c.subscribe([topic])
    got = consume(c, len(records))
    c.commit(asynchronous=False)
    ends = {p: 1 + max(o for q, o in acks if q == p) for p in range(PARTITIONS)}
    committed = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    assert {tp.partition: tp.offset for tp in committed} == ends
    c.close()
    check_round_trip(records, acks, got)
    assert check_iggy_view(kafka_server, topic, records, acks, partition=1) > 1000


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(kafka_server: PyggyServer, topic: str, codec: str):
    records = make_records(500)
    p = producer(kafka_server, compression_type=codec)
    acks = produce(p, topic, records)
    c = consumer(kafka_server)
    assign_from_start(c, topic)
    check_round_trip(records, acks, consume(c, len(records)))
    c.close()
    stored = set().union(*(stored_codecs(kafka_server, topic, p) for p in range(PARTITIONS)))
    # Stored as the client sent it. librdkafka sends a batch uncompressed when compressing
    # would not make it smaller (a batch of a record or two), so "none" may appear beside it.
    assert codec in stored and stored <= {codec, "none"}


def test_seek_by_offset_and_by_timestamp(kafka_server: PyggyServer, topic: str):
    base = int(time.time() * 1000) - 100_000
    p = producer(kafka_server)
    for i in range(30):
        p.produce(topic, value=b"v%d" % i, partition=1, timestamp=base + i * 1000)
    assert p.flush(30) == 0
    c = consumer(kafka_server)
    assert c.get_watermark_offsets(TopicPartition(topic, 1), timeout=10) == (0, 30)

    c.assign([TopicPartition(topic, 1, 10)])
    got = consume(c, 20)
    assert [(g.offset, g.value) for g in got] == [(i, b"v%d" % i) for i in range(10, 30)]

    [found] = c.offsets_for_times([TopicPartition(topic, 1, base + 15_000)], timeout=10)
    assert found.offset == 15
    [found] = c.offsets_for_times([TopicPartition(topic, 1, base + 15_500)], timeout=10)
    assert found.offset == 16
    [found] = c.offsets_for_times([TopicPartition(topic, 1, base + 10**6)], timeout=10)
    assert found.offset == -1  # OFFSET_END: no record at or after that time
    [at] = c.offsets_for_times([TopicPartition(topic, 1, base + 25_000)], timeout=10)
    c.seek(TopicPartition(topic, 1, at.offset))
    assert [g.offset for g in consume(c, 5)] == [25, 26, 27, 28, 29]
    c.close()


def test_idempotent_producer(kafka_server: PyggyServer, topic: str):
    records = make_records(2_000)
    p = producer(kafka_server, enable_idempotence=True, max_in_flight=5, batch_num_messages=50)
    acks = produce(p, topic, records)
    c = consumer(kafka_server)
    assign_from_start(c, topic)
    check_round_trip(records, acks, consume(c, len(records)))
    c.close()


def test_idempotent_retry_after_a_lost_response_is_not_stored_twice(losing_proxy, topic: str):
    """The proxy loses the first Produce response: librdkafka reconnects and sends the batch
    again with the same sequence; pyggy answers with the original offset."""
    _server, proxy = losing_proxy
    records = make_records(500)
    p = producer(proxy.address, enable_idempotence=True, retry_backoff_ms=20)
    acks = produce(p, topic, records)
    assert len(proxy.dropped) == 1
    c = consumer(proxy.address)
    assign_from_start(c, topic)
    check_round_trip(records, acks, consume(c, len(records)))
    c.close()


def test_kafka_to_iggy_and_back(kafka_server: PyggyServer, topic: str):
    p = producer(kafka_server)
    sent = [Rec(b"k1", b"hello", (("h", b"v"),)), Rec(None, b"no key"),
            Rec(b"k2", None), Rec(b"k3", b"\x00\xffbin", (("a", b"1"), ("n", None)))]
    for r in sent:
        p.produce(topic, key=r.key, value=r.value, headers=list(r.headers), partition=0)
        assert p.flush(30) == 0

    messages = iggy_poll(kafka_server, "kafka", topic, 0)
    assert [m.offset() for m in messages] == [0, 1, 2, 3]
    assert [m.payload() for m in messages] == [b"hello", b"no key", b"\x00", b"\x00\xffbin"]
    heads = [{k: v.value for k, v in iggy_headers(m).items()} for m in messages]
    assert heads[:3] == [{"kafka.key": b"k1", "h": b"v"}, {},
                         {"kafka.key": b"k2", "kafka.value": "null"}]
    # a null header value has no direct Iggy form: the exact form carries it
    assert heads[3]["kafka.key"] == b"k3" and heads[3]["a"] == b"1"
    assert "kafka.exact.0" in heads[3] and "n" not in heads[3]

    from apache_iggy import SendMessage

    iggy_send(kafka_server, "kafka", topic, 0, [SendMessage(b"from iggy")])
    c = consumer(kafka_server)
    c.assign([TopicPartition(topic, 0, 0)])
    got = consume(c, 5)
    c.close()
    assert [g.offset for g in got] == list(range(5))
    assert [(g.key, g.value, g.headers) for g in got] == [
        (r.key, r.value, r.headers) for r in sent] + [(None, b"from iggy", ())]


def test_large_records_from_two_partitions_respect_fetch_max_bytes(kafka_server: PyggyServer,
                                                                   topic: str):
    """~900 KB records in two partitions, a consumer whose fetch.max.bytes is 1 MB and whose
    receive buffer is just above it: each Fetch carries one partition's batch (never ~1.8 MB,
    which librdkafka rejects as "Invalid response size" and retries forever)."""
    values = [(part, os.urandom(900_000)) for _ in range(3) for part in (0, 1)]
    p = producer(kafka_server, compression_type="none", linger_ms=0)
    for part, value in values:
        p.produce(topic, value=value, partition=part)
    assert p.flush(30) == 0
    log = logging.getLogger(f"librdkafka.{topic}")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    c = Consumer({"bootstrap.servers": kafka_server.kafka_address, "group.id": topic,
                  "enable.auto.commit": False, "fetch.max.bytes": 1_000_000,
                  "receive.message.max.bytes": 1_000_512}, logger=log)
    try:
        c.assign([TopicPartition(topic, part, OFFSET_BEGINNING) for part in (0, 1)])
        got = consume(c, len(values), timeout=30)
    finally:
        c.close()
    assert sorted((g.partition, g.value) for g in got) == sorted(values)
    assert not [line for line in lines if "Invalid response size" in line], lines[:3]


def test_a_closed_static_member_leaves_on_its_session_timeout(kafka_server: PyggyServer,
                                                              topic: str):
    """A static member (group.instance.id) sends no LeaveGroup on close: the group keeps it
    (DeleteGroups: NON_EMPTY_GROUP) until session.timeout.ms has passed, then a DeleteGroups
    succeeds, as on Kafka."""
    from confluent_kafka.admin import AdminClient

    group = f"{topic}-static"
    send = producer(kafka_server)
    send.produce(topic, b"x", partition=0)
    assert send.flush(30) == 0
    c = consumer(kafka_server, group_id=group, group_instance_id="static-1",
                 session_timeout_ms=6000, auto_offset_reset="earliest")
    c.subscribe([topic])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error() is None:
            break
    c.close()
    closed = time.monotonic()
    admin = AdminClient({"bootstrap.servers": kafka_server.kafka_address})

    def delete() -> str:
        try:
            admin.delete_consumer_groups([group], request_timeout=10)[group].result()
            return "deleted"
        except KafkaException as e:
            return e.args[0].name()

    assert delete() == "NON_EMPTY_GROUP"
    while (result := delete()) == "NON_EMPTY_GROUP" and time.monotonic() - closed < 30:
        time.sleep(0.5)
    waited = time.monotonic() - closed
    assert result == "deleted" and 5 <= waited <= 20, (result, waited)
