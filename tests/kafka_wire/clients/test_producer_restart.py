"""Idempotent producers outlive a pyggy restart (even kill -9): a batch retried into the new
server process is answered with its original offset and not stored twice, a sequence gap is
still refused, and a producer that starts after the restart gets a producer id of its own."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from pyggy.core.records.kafka_batch import build_batch
from pyggy.kafka_wire.protocol.errors import ErrorCode
from support import PARTITIONS, RawKafka, fetch_raw, metadata, produce_batch

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def server(tmp_path: Path):
    s = PyggyServer(tmp_path, env={"IGGY_KAFKA_NUM_PARTITIONS": str(PARTITIONS)}).start()
    s.wait_for_log("kafka listening on")
    yield s
    s.close()


def restart(server: PyggyServer, sig: int) -> None:
    server.restart(sig)
    server.wait_for_log("kafka listening on")


def init_producer(raw: RawKafka) -> tuple[int, int]:
    r = raw.call(22, 4, {"transactional_id": None, "transaction_timeout_ms": 60000,
                         "producer_id": -1, "producer_epoch": -1})
    assert r["error_code"] == 0
    return r["producer_id"], r["producer_epoch"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["clean", "kill-9"])
def test_a_retry_into_the_restarted_server_is_not_stored_twice(server: PyggyServer,
                                                               sig: int) -> None:
    now = int(time.time() * 1000)
    with RawKafka(server.kafka_address) as raw:
        assert metadata(raw, "orders")["error_code"] == 0
        pid, epoch = init_producer(raw)

    def batch(seq: int) -> bytes:
        return bytes(build_batch([(now, b"k", b"order-%d" % (seq + i), []) for i in range(3)],
                                 producer_id=pid, producer_epoch=epoch, base_sequence=seq))

    with RawKafka(server.kafka_address) as raw:
        assert [produce_batch(raw, "orders", 0, batch(s))["base_offset"]
                for s in (0, 3)] == [0, 3]
    restart(server, sig)
    with RawKafka(server.kafka_address) as raw:
        assert init_producer(raw)[0] != pid  # a new producer: a new id
        retry = produce_batch(raw, "orders", 0, batch(3))
        assert (retry["error_code"], retry["base_offset"]) == (0, 3)
        gap = produce_batch(raw, "orders", 0, batch(9))
        assert gap["error_code"] == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        follow = produce_batch(raw, "orders", 0, batch(6))
        assert (follow["error_code"], follow["base_offset"]) == (0, 6)
        assert fetch_raw(raw, "orders", 0)["high_watermark"] == 9


def test_two_idempotent_producers_across_a_restart_lose_and_repeat_nothing(
        server: PyggyServer) -> None:
    """librdkafka producer A writes, pyggy restarts, producer B starts and both write on."""
    address = server.kafka_address

    def producer() -> Producer:
        return Producer({"bootstrap.servers": address, "enable.idempotence": True,
                         "linger.ms": 5, "reconnect.backoff.ms": 20})

    errors: list = []

    def send(p: Producer, name: str, n: int, start: int = 0) -> None:
        for i in range(start, start + n):
            p.produce("ledger", value=f"{name}-{i}".encode(), partition=0,
                      on_delivery=lambda err, msg: err and errors.append(err))
        assert p.flush(30) == 0

    a = producer()
    send(a, "a", 50)
    restart(server, signal.SIGTERM)
    b = producer()
    send(b, "b", 50)
    send(a, "a", 50, start=50)
    assert not errors, errors[:3]

    c = Consumer({"bootstrap.servers": address, "group.id": "ledger-check",
                  "enable.auto.commit": False})
    c.assign([TopicPartition("ledger", 0, OFFSET_BEGINNING)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < 150 and time.monotonic() < deadline:
        got += [m.value() for m in c.consume(num_messages=500, timeout=0.5) if not m.error()]
    c.close()
    assert sorted(got) == sorted([f"a-{i}".encode() for i in range(100)]
                                 + [f"b-{i}".encode() for i in range(50)])
