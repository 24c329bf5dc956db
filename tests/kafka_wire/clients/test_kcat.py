"""kcat 1.7.1 (Debian; librdkafka 2.0.2, the strictest old-client feature detection) as a new
user would run it against pyggy: -L, -P / -C with -K keys and -H headers, -Q, compression,
idempotence, and the Iggy door."""

from __future__ import annotations

import json
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from support import PARTITIONS, iggy_headers, iggy_poll, iggy_send, stored_codecs

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.timeout(120)
CLIENT_ID = "kcat"


def run(kcat_path: str, server: PyggyServer, *args: str, stdin: bytes | None = None,
         timeout: float = 30) -> str:
    out = subprocess.run([kcat_path, "-b", server.kafka_address, "-X", f"client.id={CLIENT_ID}",
                          *args], input=stdin, capture_output=True, timeout=timeout)
    assert out.returncode == 0, f"kcat {' '.join(args)}: exit {out.returncode}\n" \
                                f"{out.stderr.decode(errors='replace')}"
    return out.stdout.decode()


def consume_json(kcat_path: str, server: PyggyServer, topic: str, *args: str) -> list[dict]:
    out = run(kcat_path, server, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J", *args)
    return [json.loads(line) for line in out.splitlines() if line]


def test_metadata_list_shows_the_broker_and_topics(kcat: str, kafka_server: PyggyServer,
                                                   topic: str):
    run(kcat, kafka_server, "-P", "-t", topic, stdin=b"hello\n")
    out = run(kcat, kafka_server, "-L")
    host, port = kafka_server.kafka_address.split(":")
    assert f"broker 0 at {host}:{port} (controller)" in out
    assert f'topic "{topic}" with {PARTITIONS} partitions:' in out
    for p in range(PARTITIONS):
        assert f"partition {p}, leader 0, replicas: 0, isrs: 0" in out
    meta = json.loads(run(kcat, kafka_server, "-L", "-J", "-t", topic))
    assert meta["brokers"] == [{"id": 0, "name": f"{host}:{port}"}]
    assert [t["topic"] for t in meta["topics"]] == [topic]
    assert len(meta["topics"][0]["partitions"]) == PARTITIONS


def test_features_librdkafka_2_0_2_enables(kcat: str, kafka_server: PyggyServer):
    """Old librdkafka enables features only for exact versions inside the advertised ranges
    (librdkafka's feature map, src/rdkafka_feature.c): all that a single broker can offer
    must come out enabled."""
    out = subprocess.run([kcat, "-b", kafka_server.kafka_address, "-L", "-d", "feature"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    enabled = {line.rsplit("Enabling feature ", 1)[1].strip()
               for line in out.stderr.splitlines() if "Enabling feature " in line}
    for feature in ("MsgVer2", "ApiVersion", "BrokerGroupCoordinator",
                    "BrokerBalancedConsumer", "LZ4", "OffsetTime", "IdempotentProducer",
                    "ZSTD"):
        assert feature in enabled, f"{feature} not enabled: {sorted(enabled)}"


def test_10k_keyed_records_with_headers_round_trip(kcat: str, kafka_server: PyggyServer,
                                                   topic: str):
    """-K: key delimiter (empty key + -Z = null key, empty value + -Z = tombstone), -H headers
    (repeated, empty value) on every record; consumed by a balanced consumer (-G) with -J."""
    n = 10_000
    lines = []
    expected = []
    for i in range(n):
        key = "" if i % 10 == 0 else f"key-{i % 97}"
        value = "" if i % 13 == 0 and key else f"value-{i}"
        lines.append(f"{key}:{value}\n")
        expected.append((key or None, value or None))
    run(kcat, kafka_server, "-P", "-t", topic, "-K:", "-Z", "-H", "rep=a", "-H", "rep=b",
         "-H", "empty=", "-H", "h=zażółć", "-X", "acks=all", "-X", "linger.ms=5",
         stdin="".join(lines).encode())
    out = run(kcat, kafka_server, "-G", f"g-{topic}", "-X", "auto.offset.reset=earliest",
              "-c", str(n), "-q", "-J", topic, timeout=60)
    got = [json.loads(line) for line in out.splitlines() if line]
    assert len(got) == n
    assert len({(g["partition"], g["offset"]) for g in got}) == n
    by_partition: dict[int, list[dict]] = defaultdict(list)
    for g in got:
        by_partition[g["partition"]].append(g)
        assert g["headers"] == ["rep", "a", "rep", "b", "empty", "", "h", "zażółć"]
    key_partition: dict[str, int] = {}
    seen = set()
    for partition, records in by_partition.items():
        assert [r["offset"] for r in records] == list(range(len(records)))
        indexes = []
        for r in records:
            if r["key"] is not None:
                assert key_partition.setdefault(r["key"], partition) == partition
            index = next(i for i in _candidates(r, expected) if i not in seen)
            seen.add(index)
            indexes.append(index)
        assert indexes == sorted(indexes), f"partition {partition}: produce order lost"
    assert len(seen) == n


def _candidates(record: dict, expected: list[tuple[str | None, str | None]]):
    """Indexes of the produced records this consumed one can be (values carry the index)."""
    if record["payload"] is not None:
        i = int(record["payload"].split("-")[1])
        assert expected[i] == (record["key"], record["payload"])
        return [i]
    return [i for i, e in enumerate(expected) if e == (record["key"], None)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(kcat: str, kafka_server: PyggyServer, topic: str, codec: str):
    lines = "".join(f"k{i % 7}:{'compressible ' * 20}{i}\n" for i in range(500))
    run(kcat, kafka_server, "-P", "-t", topic, "-p", "0", "-K:", "-z", codec,
         stdin=lines.encode())
    assert stored_codecs(kafka_server, topic, 0) == {codec}  # not "disabled by the broker"
    got = consume_json(kcat, kafka_server, topic, "-p", "0")
    assert [(g["offset"], g["key"], g["payload"]) for g in got] == [
        (i, f"k{i % 7}", f"{'compressible ' * 20}{i}") for i in range(500)]


def test_seek_by_offset_and_timestamp_and_query(kcat: str, kafka_server: PyggyServer,
                                                topic: str):
    base = int(time.time() * 1000) - 100_000
    # kcat cannot set record timestamps: a raw Produce writes them, kcat reads
    from pyggy.core.records.kafka_batch import build_batch
    from support import RawKafka, metadata, produce_batch

    batch = build_batch([(base + i * 1000, None, b"v%d" % i, ()) for i in range(30)])
    with RawKafka(kafka_server.kafka_address) as raw:
        assert metadata(raw, topic)["error_code"] == 0
        assert produce_batch(raw, topic, 1, bytes(batch))["error_code"] == 0
    out = run(kcat, kafka_server, "-C", "-t", topic, "-p", "1", "-o", "10", "-c", "5", "-q",
               "-f", "%o %s %T\n")
    assert out.splitlines() == [f"{i} v{i} {base + i * 1000}" for i in range(10, 15)]
    out = run(kcat, kafka_server, "-C", "-t", topic, "-p", "1", "-o", f"s@{base + 15_500}",
               "-c", "3", "-q", "-f", "%o %s\n")
    assert out.splitlines() == ["16 v16", "17 v17", "18 v18"]
    out = run(kcat, kafka_server, "-C", "-t", topic, "-p", "1", "-o", "-3", "-e", "-q",
               "-f", "%o\n")
    assert out.splitlines() == ["27", "28", "29"]
    out = run(kcat, kafka_server, "-Q", "-t", f"{topic}:1:{base + 20_000}")
    assert f"{topic} [1] offset 20" in out
    out = run(kcat, kafka_server, "-Q", "-t", f"{topic}:1:{base + 10**6}")
    assert f"{topic} [1] offset -1" in out


def test_idempotent_producer(kcat: str, kafka_server: PyggyServer, topic: str):
    lines = "".join(f"k{i % 5}:v{i}\n" for i in range(2000))
    run(kcat, kafka_server, "-P", "-t", topic, "-K:", "-X", "enable.idempotence=true",
         "-X", "batch.num.messages=100", "-z", "lz4", stdin=lines.encode())
    got = consume_json(kcat, kafka_server, topic)
    assert sorted(int(g["payload"][1:]) for g in got) == list(range(2000))
    for p in range(PARTITIONS):
        offsets = [g["offset"] for g in got if g["partition"] == p]
        assert offsets == list(range(len(offsets)))


def test_idempotent_retry_after_a_lost_response_is_not_stored_twice(kcat: str, losing_proxy,
                                                                    topic: str):
    """The proxy loses the first Produce response: librdkafka 2.0.2 reconnects and sends the
    batch again with the same sequence; pyggy answers with the original offset. (-E: kcat
    would exit on the transient "all brokers down" of its only broker connection.)"""
    server, proxy = losing_proxy
    lines = "".join(f"k{i % 5}:v{i}\n" for i in range(500))
    out = subprocess.run([kcat, "-b", proxy.address, "-X", f"client.id={CLIENT_ID}", "-P", "-E",
                          "-t", topic, "-K:", "-X", "enable.idempotence=true",
                          "-X", "batch.num.messages=50", "-X", "retry.backoff.ms=20"],
                         input=lines.encode(), capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    assert len(proxy.dropped) == 1
    got = consume_json(kcat, server, topic)
    assert sorted(int(g["payload"][1:]) for g in got) == list(range(500))
    for p in range(PARTITIONS):
        records = [g for g in got if g["partition"] == p]
        assert [g["offset"] for g in records] == list(range(len(records)))
        indexes = [int(g["payload"][1:]) for g in records]
        assert indexes == sorted(indexes)


def test_kafka_to_iggy_and_back(kcat: str, kafka_server: PyggyServer, topic: str,
                                tmp_path: Path):
    run(kcat, kafka_server, "-P", "-t", topic, "-p", "0", "-K:", "-H", "h=v",
         stdin=b"k1:hello\nk2:world\n")
    (tmp_path / "blob").write_bytes(b"\x00\x01\xfe\xff")
    run(kcat, kafka_server, "-P", "-t", topic, "-p", "0", "-k", "bin", str(tmp_path / "blob"))
    messages = iggy_poll(kafka_server, "kafka", topic, 0)
    assert [(m.offset(), m.payload()) for m in messages] == [
        (0, b"hello"), (1, b"world"), (2, b"\x00\x01\xfe\xff")]
    heads = [{k: v.value for k, v in iggy_headers(m).items()} for m in messages]
    assert heads == [{"kafka.key": b"k1", "h": b"v"}, {"kafka.key": b"k2", "h": b"v"},
                     {"kafka.key": b"bin"}]

    from apache_iggy import HeaderKey, HeaderValue, SendMessage

    iggy_send(kafka_server, "kafka", topic, 0, [
        SendMessage(b"from iggy", {HeaderKey.String("kafka.key"): HeaderValue.Raw(b"ik"),
                                   HeaderKey.String("x"): HeaderValue.Raw(b"y")})])
    out = run(kcat, kafka_server, "-C", "-t", topic, "-p", "0", "-o", "3", "-e", "-q",
               "-f", "%o|%k|%s|%h\n")
    offset, key, value, headers = out.strip().split("|")
    assert (offset, key, value) == ("3", "ik", "from iggy")
    # user headers reach Kafka as headers; their order is the SDK's (a hash map)
    assert "x=y" in headers.split(",")


def test_readme_kafka_quick_starts(kcat: str, pyggy_server: PyggyServer):
    """The README's kcat lines, then its confluent-kafka snippet, on a default server."""
    import re
    import sys

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    pyggy_server.wait_for_log("kafka listening on")
    address = pyggy_server.kafka_address

    section = readme.split("### Quick start with kcat", 1)[1]
    script = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    out = subprocess.run(["bash", "-euo", "pipefail", "-c",
                          script.replace("127.0.0.1:9092", address)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"broker 0 at {address} (controller)" in out.stdout
    assert 'topic "greetings" with 1 partitions:' in out.stdout
    assert out.stdout.endswith("0/0 user1=hello source=readme\n0/1 user2=world source=readme\n")

    section = readme.split("### Quick start with confluent-kafka", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    out = subprocess.run([sys.executable, "-c", code.replace("127.0.0.1:9092", address)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "0 user1 hello\n1 user2 world\n2 user3 hi from Python\n"
