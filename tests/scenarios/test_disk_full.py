"""A user's disk fills up: both doors answer a storage error (no dropped connection, no
traceback), nothing acknowledged is lost, and writes resume by themselves when space returns —
with and without a restart. The data directory is a real tmpfs of a few MiB."""

from __future__ import annotations

import asyncio

from apache_iggy import Consumer, IggyClient, PollingStrategy, SendMessage
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import KafkaError, Producer

from pyggy.testing import PyggyServer, fill_disk

PAYLOAD = b"x" * 1000


async def iggy_client(server: PyggyServer) -> IggyClient:
    client = IggyClient(server.tcp_address)
    await client.connect()
    await client.login_user("iggy", "iggy")
    return client


def kafka_produce(server: PyggyServer, n: int, tag: str) -> list:
    """Produce n records (no client retries); return the delivery errors (None = acked)."""
    producer = Producer({"bootstrap.servers": server.kafka_address, "acks": "all",
                         "retries": 0, "linger.ms": 0, "message.timeout.ms": 10000})
    errors: list = []
    for i in range(n):
        producer.produce("k", f"{tag}-{i}".encode() + PAYLOAD, partition=0,
                         on_delivery=lambda err, msg: errors.append(err))
    producer.flush(20)
    return errors


def kafka_values(server: PyggyServer) -> list[bytes]:
    consumer = KafkaConsumer({"bootstrap.servers": server.kafka_address, "group.id": "check",
                              "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["k"])
    out: list[bytes] = []
    idle = 0
    while idle < 5:
        msgs = consumer.consume(1000, timeout=1)
        idle = 0 if msgs else idle + 1
        out += [m.value() for m in msgs if m.error() is None]
    consumer.close()
    return out


async def iggy_payloads(client: IggyClient) -> list[bytes]:
    out: list[bytes] = []
    while True:
        batch = await client.poll_messages("s", "t", partition_id=0, consumer=Consumer.Single(1),
                                           polling_strategy=PollingStrategy.Offset(len(out)),
                                           count=1000, auto_commit=False)
        if not batch:
            return out
        out += [m.payload() for m in batch]


def test_a_full_disk_through_both_doors(small_tmpfs, pyggy_server_factory) -> None:
    mount = small_tmpfs(32 << 20)
    server = pyggy_server_factory(data_path=mount / "data")

    async def setup() -> None:
        client = await iggy_client(server)
        await client.create_stream("s")
        await client.create_topic("s", "t", 1)
        await client.send_messages("s", "t", 0, [SendMessage(b"before" + PAYLOAD)] * 100)

    asyncio.run(setup())
    assert kafka_produce(server, 100, "before") == [None] * 100
    filler = fill_disk(mount)

    async def refused() -> None:
        client = await iggy_client(server)
        for _ in range(3):
            try:
                await client.send_messages("s", "t", 0, [SendMessage(b"full" + PAYLOAD)] * 50)
            except RuntimeError as e:
                assert "segment" in str(e).lower() or "4006" in str(e), e
            else:
                raise AssertionError("a send on a full disk succeeded")
        assert (await client.get_stream("s")) is not None  # the same connection still works

    asyncio.run(refused())
    errors = kafka_produce(server, 20, "full")
    assert errors and all(e is not None and e.code() == KafkaError.KAFKA_STORAGE_ERROR
                          for e in errors), errors
    logs = server.format_logs()
    assert "Traceback" not in logs
    assert logs.count("messages cannot be written") == 1

    filler.unlink()  # space comes back: no restart needed
    asyncio.run(_send(server, b"after"))
    assert kafka_produce(server, 10, "after") == [None] * 10
    assert "messages can be written again" in server.format_logs()

    server.stop()
    server.start()  # and the data survives a restart

    async def check() -> list[bytes]:
        return await iggy_payloads(await iggy_client(server))

    got = asyncio.run(check())
    assert got == [b"before" + PAYLOAD] * 100 + [b"after" + PAYLOAD] * 10
    values = kafka_values(server)
    assert [v[:len(b"before-0")] for v in values[:1]] == [b"before-0"]
    assert len(values) == 110 and all(not v.startswith(b"full") for v in values)


async def _send(server: PyggyServer, tag: bytes) -> None:
    client = await iggy_client(server)
    await client.send_messages("s", "t", 0, [SendMessage(tag + PAYLOAD)] * 10)
