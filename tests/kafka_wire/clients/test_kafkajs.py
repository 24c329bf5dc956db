"""kafkajs 2.2.4 (node; never flexible versions, ApiVersions v2) against pyggy, through
node/kjs.js run as a subprocess that prints JSON. kafkajs has no manual assignment: it
consumes through a consumer group (JoinGroup/SyncGroup/Heartbeat/OffsetCommit/OffsetFetch)."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import pytest
from support import (
    PARTITIONS,
    Got,
    Rec,
    check_round_trip,
    iggy_headers,
    iggy_poll,
    iggy_send,
    make_records,
    stored_codecs,
)

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.timeout(120)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def kjs(node_dir: Path, command: str, address: str, timeout: float = 60, **args) -> dict:
    cmd = {"command": command, "brokers": [address], **args}
    out = subprocess.run(["node", str(node_dir / "kjs.js")], input=json.dumps(cmd).encode(),
                         capture_output=True, timeout=timeout)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-4000:]
    return json.loads(out.stdout)


def produce(node_dir: Path, address: str, topic: str, records: list[Rec],
            **args) -> list[tuple[int, int]]:
    encoded = [{"key": _b64(r.key), "value": _b64(r.value),
                "headers": [[k, _b64(v)] for k, v in r.headers]} for r in records]
    result = kjs(node_dir, "produce", address, topic=topic, records=encoded, **args)
    return [tuple(a) for a in result["acks"]]


def consume(node_dir: Path, address: str, topic: str, count: int, group: str,
            **args) -> list[Got]:
    result = kjs(node_dir, "consume", address, topic=topic, count=count, groupId=group,
                 **args)
    return [Got(r["partition"], r["offset"], _bytes(r["key"]), _bytes(r["value"]),
                tuple((k, _bytes(v)) for k, v in r["headers"]), r["timestamp"])
            for r in result["records"]]


def test_10k_keyed_records_with_headers_round_trip(node_dir: Path, kafka_server: PyggyServer,
                                                   topic: str):
    records = make_records(10_000, null_header_values=False)
    acks = produce(node_dir, kafka_server.kafka_address, topic, records)
    got = consume(node_dir, kafka_server.kafka_address, topic, len(records), f"g-{topic}")
    check_round_trip(records, acks, got)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(node_dir: Path, kafka_server: PyggyServer, topic: str, codec: str):
    records = make_records(500, null_header_values=False)
    acks = produce(node_dir, kafka_server.kafka_address, topic, records, compression=codec)
    assert set().union(*(stored_codecs(kafka_server, topic, p) for p in range(PARTITIONS))) \
        == {codec}
    got = consume(node_dir, kafka_server.kafka_address, topic, len(records), f"g-{topic}")
    check_round_trip(records, acks, got)


def test_seek_by_offset_and_by_timestamp(node_dir: Path, kafka_server: PyggyServer,
                                         topic: str):
    base = int(time.time() * 1000) - 100_000
    records = [{"key": None, "value": _b64(b"v%d" % i), "headers": [], "partition": 1,
                "timestamp": base + i * 1000} for i in range(30)]
    kjs(node_dir, "produce", kafka_server.kafka_address, topic=topic, records=records)
    stamps = [base + 15_000, base + 15_500, base + 10**6]
    result = kjs(node_dir, "offsets", kafka_server.kafka_address, topic=topic,
                 timestamps=stamps)
    latest = {p["partition"]: (p["low"], p["high"]) for p in result["latest"]}
    assert latest == {0: ("0", "0"), 1: ("0", "30"), 2: ("0", "0")}
    by_time = {int(ts): {p["partition"]: int(p["offset"]) for p in parts}
               for ts, parts in result["byTime"].items()}
    assert by_time[stamps[0]][1] == 15
    assert by_time[stamps[1]][1] == 16
    # kafkajs replaces "no record at or after that time" (-1) with the high watermark
    assert by_time[stamps[2]][1] == 30

    got = consume(node_dir, kafka_server.kafka_address, topic, 20, f"g-{topic}",
                  seek=[[1, 10]])
    assert [(g.partition, g.offset, g.value) for g in got] == [
        (1, i, b"v%d" % i) for i in range(10, 30)]
    assert [g.timestamp for g in got] == [base + i * 1000 for i in range(10, 30)]


def test_idempotent_producer(node_dir: Path, kafka_server: PyggyServer, topic: str):
    records = make_records(1_000, null_header_values=False)
    acks = produce(node_dir, kafka_server.kafka_address, topic, records, idempotent=True,
                   chunk=100)
    got = consume(node_dir, kafka_server.kafka_address, topic, len(records), f"g-{topic}")
    check_round_trip(records, acks, got)


def test_idempotent_retry_after_a_lost_response_is_not_stored_twice(node_dir: Path,
                                                                    losing_proxy, topic: str):
    """The proxy loses the first Produce response: kafkajs reconnects and sends the batch
    again with the same sequence; pyggy answers with the original offset.

    Keyed records only: on a retry kafkajs runs its partitioner again, which spreads null-key
    records differently, so the retried batches hold other records under the same base
    sequence; Kafka (and pyggy) refuse those with OUT_OF_ORDER_SEQUENCE_NUMBER."""
    _server, proxy = losing_proxy
    records = [r for r in make_records(600, null_header_values=False) if r.key is not None]
    acks = produce(node_dir, proxy.address, topic, records, idempotent=True, chunk=100)
    assert len(proxy.dropped) == 1
    got = consume(node_dir, proxy.address, topic, len(records), f"g-{topic}")
    check_round_trip(records, acks, got)


def test_kafka_to_iggy_and_back(node_dir: Path, kafka_server: PyggyServer, topic: str):
    sent = [Rec(b"k1", b"hello", (("h", b"v"),)), Rec(None, b"no key"),
            Rec(b"k2", None), Rec(b"k3", b"\x00\xffbin", (("a", b"1"), ("b", b"2")))]
    encoded = [{"key": _b64(r.key), "value": _b64(r.value), "partition": 0,
                "headers": [[k, _b64(v)] for k, v in r.headers]} for r in sent]
    result = kjs(node_dir, "produce", kafka_server.kafka_address, topic=topic,
                 records=encoded)
    assert result["acks"] == [[0, 0], [0, 1], [0, 2], [0, 3]]

    messages = iggy_poll(kafka_server, "kafka", topic, 0)
    assert [m.offset() for m in messages] == [0, 1, 2, 3]
    assert [m.payload() for m in messages] == [b"hello", b"no key", b"\x00", b"\x00\xffbin"]
    heads = [{k: v.value for k, v in iggy_headers(m).items()} for m in messages]
    assert heads == [{"kafka.key": b"k1", "h": b"v"}, {},
                     {"kafka.key": b"k2", "kafka.value": "null"},
                     {"kafka.key": b"k3", "a": b"1", "b": b"2"}]

    from apache_iggy import SendMessage

    iggy_send(kafka_server, "kafka", topic, 0, [SendMessage(b"from iggy")])
    got = consume(node_dir, kafka_server.kafka_address, topic, 5, f"g-{topic}")
    assert [(g.partition, g.offset) for g in got] == [(0, i) for i in range(5)]
    assert [(g.key, g.value, g.headers) for g in got] == [
        (r.key, r.value, r.headers) for r in sent] + [(None, b"from iggy", ())]
