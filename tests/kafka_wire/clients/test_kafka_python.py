"""kafka-python 3.0.12 (pure Python; idempotent acks=all producer by default) against pyggy."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pyggy.core.records.kafka_errors import ErrorCode as E
from support import (
    PARTITIONS,
    Got,
    RawKafka,
    Rec,
    check_iggy_view,
    check_round_trip,
    fetch_raw,
    iggy_headers,
    iggy_poll,
    iggy_send,
    make_records,
    metadata,
    normalize_headers,
    produce_batch,
    stored_codecs,
)

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.timeout(120)


def producer(server: PyggyServer | str, **config) -> KafkaProducer:
    config.setdefault("acks", "all")
    address = server if isinstance(server, str) else server.kafka_address
    return KafkaProducer(bootstrap_servers=address, client_id="kafka-python", linger_ms=5,
                         **config)


def consumer(server: PyggyServer | str, **config) -> KafkaConsumer:
    address = server if isinstance(server, str) else server.kafka_address
    return KafkaConsumer(bootstrap_servers=address, client_id="kafka-python",
                         enable_auto_commit=False, **config)


def produce(p: KafkaProducer, topic: str, records: list[Rec], **kw) -> list[tuple[int, int]]:
    futures = [p.send(topic, key=r.key, value=r.value, headers=list(r.headers), **kw)
               for r in records]
    p.flush(30)
    return [(m.partition, m.offset) for m in (f.get(30) for f in futures)]


def consume(c: KafkaConsumer, count: int, timeout: float = 30) -> list[Got]:
    got: list[Got] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=500).values():
            got += [Got(m.partition, m.offset, m.key, m.value, normalize_headers(m.headers),
                        m.timestamp) for m in records]
    return got


def assign_from_start(c: KafkaConsumer, topic: str) -> list[TopicPartition]:
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    return tps


def test_10k_keyed_records_with_headers_round_trip(kafka_server: PyggyServer, topic: str):
    """acks=all producer; a group consumer (subscribe, earliest) reads everything back and
    commits its positions."""
    records = make_records(10_000, null_header_values=False)
    p = producer(kafka_server)
    acks = produce(p, topic, records)
    p.close()
    c = consumer(kafka_server, group_id=f"g-{topic}", auto_offset_reset="earliest")
    c.subscribe([topic])
    got = consume(c, len(records))
    c.commit()
    ends = {p: 1 + max(o for q, o in acks if q == p) for p in range(PARTITIONS)}
    assert {tp.partition: c.committed(tp) for tp in c.assignment()} == ends
    c.close()
    check_round_trip(records, acks, got)
    assert check_iggy_view(kafka_server, topic, records, acks, partition=0) > 1000


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(kafka_server: PyggyServer, topic: str, codec: str):
    records = make_records(500, null_header_values=False)
    p = producer(kafka_server, compression_type=codec, batch_size=64 * 1024)
    acks = produce(p, topic, records)
    p.close()
    c = consumer(kafka_server)
    assign_from_start(c, topic)
    check_round_trip(records, acks, consume(c, len(records)))
    c.close()
    # stored and served as the client compressed it (kafka-python leaves a batch
    # uncompressed when compression would not make it smaller)
    assert codec in set().union(*(stored_codecs(kafka_server, topic, p)
                                  for p in range(PARTITIONS)))


def test_seek_by_offset_and_by_timestamp(kafka_server: PyggyServer, topic: str):
    base = int(time.time() * 1000) - 100_000
    p = producer(kafka_server)
    for i in range(30):
        p.send(topic, value=b"v%d" % i, partition=1, timestamp_ms=base + i * 1000)
    p.flush(30)
    p.close()
    c = consumer(kafka_server)
    tp = TopicPartition(topic, 1)
    c.assign([tp])
    assert c.beginning_offsets([tp]) == {tp: 0}
    assert c.end_offsets([tp]) == {tp: 30}

    c.seek(tp, 10)
    got = consume(c, 20)
    assert [(g.offset, g.value) for g in got] == [(i, b"v%d" % i) for i in range(10, 30)]

    found = c.offsets_for_times({tp: base + 15_000})[tp]
    assert (found.offset, found.timestamp) == (15, base + 15_000)
    found = c.offsets_for_times({tp: base + 15_500})[tp]  # first record at or after
    assert (found.offset, found.timestamp) == (16, base + 16_000)
    assert c.offsets_for_times({tp: base + 10**6})[tp] is None
    c.seek(tp, c.offsets_for_times({tp: base + 25_000})[tp].offset)
    assert [g.offset for g in consume(c, 5)] == [25, 26, 27, 28, 29]
    c.close()


def test_idempotent_producer_is_default_and_gets_a_producer_id(kafka_server: PyggyServer,
                                                                topic: str):
    p = producer(kafka_server)
    acks = produce(p, topic, make_records(100, null_header_values=False))
    pid = p._transaction_manager.producer_id_and_epoch
    p.close()
    assert pid.producer_id >= 0 and pid.epoch >= 0
    c = consumer(kafka_server)
    assign_from_start(c, topic)
    got = consume(c, 100)
    c.close()
    check_round_trip(make_records(100, null_header_values=False), acks, got)


def test_idempotent_retry_after_a_lost_response_is_not_stored_twice(losing_proxy, topic: str):
    """The proxy loses the first Produce response: kafka-python reconnects and sends the batch
    again with the same sequence; pyggy answers with the original offset."""
    server, proxy = losing_proxy
    records = make_records(500, null_header_values=False)
    p = producer(proxy.address, retry_backoff_ms=20)
    acks = produce(p, topic, records)
    p.close()
    assert len(proxy.dropped) == 1
    c = consumer(proxy.address)
    assign_from_start(c, topic)
    check_round_trip(records, acks, consume(c, len(records)))
    c.close()


def test_kafka_to_iggy_and_back(kafka_server: PyggyServer, topic: str):
    p = producer(kafka_server)
    sent = [Rec(b"k1", b"hello", (("h", b"v"),)), Rec(None, b"no key"),
            Rec(b"k2", None), Rec(b"k3", b"\x00\xffbin", (("a", b"1"), ("b", b"2")))]
    acks = [(m.partition, m.offset) for m in (
        p.send(topic, key=r.key, value=r.value, headers=list(r.headers), partition=0).get(30)
        for r in sent)]
    assert acks == [(0, 0), (0, 1), (0, 2), (0, 3)]

    messages = iggy_poll(kafka_server, "kafka", topic, 0)
    assert [m.offset() for m in messages] == [0, 1, 2, 3]
    assert [m.payload() for m in messages] == [b"hello", b"no key", b"\x00", b"\x00\xffbin"]
    heads = [iggy_headers(m) for m in messages]
    assert {k: v.value for k, v in heads[0].items()} == {"kafka.key": b"k1", "h": b"v"}
    assert heads[1] == {}
    assert {k: v.value for k, v in heads[2].items()} == {"kafka.key": b"k2",
                                                         "kafka.value": "null"}
    assert {k: v.value for k, v in heads[3].items()} == {"kafka.key": b"k3", "a": b"1",
                                                         "b": b"2"}

    from apache_iggy import SendMessage

    iggy_send(kafka_server, "kafka", topic, 0, [SendMessage(b"from iggy"),
                                                 SendMessage(b"\x01\x02", {"trace": "t-1"})])
    p.send(topic, value=b"after", partition=0).get(30)
    p.close()
    c = consumer(kafka_server)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    got = consume(c, 7)
    c.close()
    assert [g.offset for g in got] == list(range(7))
    assert [(g.key, g.value, g.headers) for g in got[:4]] == [
        (r.key, r.value, r.headers) for r in sent]
    assert (got[4].key, got[4].value, got[4].headers) == (None, b"from iggy", ())
    assert (got[5].key, got[5].value) == (None, b"\x01\x02")
    assert got[5].headers[0] == ("trace", b"t-1")
    assert got[5].headers[-1][0] == "iggy.headers"  # String-valued header: kinds preserved
    assert (got[6].value, got[6].offset) == (b"after", 6)


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_raw_duplicate_batches_get_their_original_offsets(kafka_server: PyggyServer,
                                                          topic: str, codec: str):
    """What a retrying idempotent producer sends, built by hand: the same batch (producer id,
    epoch, sequence) again, compressed with each codec."""
    from pyggy.core.records import compression
    from pyggy.core.records.kafka_batch import build_batch

    codec_id = {v: k for k, v in compression.CODEC_NAMES.items()}[codec]
    now = int(time.time() * 1000)
    with RawKafka(kafka_server.kafka_address) as raw:
        assert metadata(raw, topic)["error_code"] == 0
        init = raw.call(22, 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                                "producer_id": -1, "producer_epoch": -1})
        pid, epoch = init["producer_id"], init["producer_epoch"]
        assert init["error_code"] == 0 and pid >= 0

        def batch(seq: int, n: int = 10) -> bytes:
            return bytes(build_batch([(now, b"k", b"v%d" % (seq + i), [("h", b"x")])
                                      for i in range(n)], compression=codec_id,
                                     producer_id=pid, producer_epoch=epoch, base_sequence=seq))

        firsts = [produce_batch(raw, topic, 2, batch(seq)) for seq in (0, 10, 20)]
        assert [(r["error_code"], r["base_offset"]) for r in firsts] == [(0, 0), (0, 10),
                                                                          (0, 20)]
        again = produce_batch(raw, topic, 2, batch(20))  # the last batch, retried
        assert (again["error_code"], again["base_offset"]) == (0, 20)
        again = produce_batch(raw, topic, 2, batch(0))  # an older one still remembered
        assert (again["error_code"], again["base_offset"]) == (0, 0)
        gap = produce_batch(raw, topic, 2, batch(40))
        assert gap["error_code"] == E.OUT_OF_ORDER_SEQUENCE_NUMBER
        assert fetch_raw(raw, topic, 2)["high_watermark"] == 30
        nxt = produce_batch(raw, topic, 2, batch(30))
        assert (nxt["error_code"], nxt["base_offset"]) == (0, 30)
    c = consumer(kafka_server)
    tp = TopicPartition(topic, 2)
    c.assign([tp])
    c.seek(tp, 0)
    got = consume(c, 40)
    c.close()
    assert [(g.offset, g.value) for g in got] == [(i, b"v%d" % i) for i in range(40)]
