"""The official apache-iggy SDK's HTTP transport drives pyggy's HTTP door; a message sent over
HTTP is read by a Kafka client and by the SDK over TCP (one log, three doors)."""

from __future__ import annotations

import base64

import pytest
from apache_iggy import Consumer, HttpConfig, IggyClient, PollingStrategy, SendMessage
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition
from rest_client import Client, b64, header

pytestmark = pytest.mark.asyncio


async def test_the_sdk_http_transport_manages_streams_and_sends_and_polls(http_door):
    client = IggyClient(HttpConfig(api_url=http_door[1]))
    await client.connect()
    await client.login_user("iggy", "iggy")
    await client.ping()
    await client.create_stream("sdk")
    assert "sdk" in [s.name for s in await client.get_streams()]
    await client.create_topic("sdk", "events", 2)
    topic = await client.get_topic("sdk", "events")
    assert topic.name == "events" and topic.partitions_count == 2
    await client.send_messages("sdk", "events", 1, [
        SendMessage("hello", {"traceparent": "00-ab-cd-01"}), SendMessage(b"\x00world")])
    polled = await client.poll_messages(
        "sdk", "events", consumer=Consumer.Single(1), polling_strategy=PollingStrategy.Offset(0),
        count=10, auto_commit=True, partition_id=1)
    assert [m.payload() for m in polled] == [b"hello", b"\x00world"]
    assert [m.offset() for m in polled] == [0, 1]
    assert "traceparent" in str(polled[0].user_headers())
    assert (await client.get_stats()).streams_count >= 1
    await client.delete_topic("sdk", "events")
    await client.delete_stream("sdk")
    assert "sdk" not in [s.name for s in await client.get_streams()]


async def test_a_message_sent_over_http_is_read_by_kafka_and_by_tcp(http_door):
    server, base = http_door
    rest = Client(base)
    rest.login()
    assert rest.post("/streams", {"name": "doors"})[0] == 201
    assert rest.post("/streams/doors/topics", {"name": "t", "partitions_count": 1})[0] == 201
    status, _ = rest.send("/streams/doors/topics/t", 0, {"payload": b64("over http"),
                                                         "user_headers": [header("k", "v")]})
    assert status == 201

    tcp = IggyClient(server.tcp_address)
    await tcp.connect()
    await tcp.login_user("iggy", "iggy")
    polled = await tcp.poll_messages("doors", "t", consumer=Consumer.Single(5),
                                     polling_strategy=PollingStrategy.Offset(0), count=10,
                                     auto_commit=False, partition_id=0)
    assert [m.payload() for m in polled] == [b"over http"]

    kafka = KafkaConsumer({"bootstrap.servers": server.kafka_address, "group.id": "doors-g",
                           "enable.auto.commit": False})
    try:
        kafka.assign([TopicPartition("doors.t", 0, 0)])
        record = None
        for _ in range(30):  # each poll waits up to 1 s for the fetch
            record = kafka.poll(1.0)
            if record is not None and record.error() is None:
                break
        assert record is not None and record.error() is None
        assert record.value() == b"over http"
        assert (b"k", b"v") in [(k.encode() if isinstance(k, str) else k, v)
                                for k, v in record.headers() or []]
    finally:
        kafka.close()
    # and the reverse: what the TCP SDK sent is polled over HTTP
    await tcp.send_messages("doors", "t", 0, [SendMessage("over tcp")])
    status, got = rest.get("/streams/doors/topics/t/messages?partition_id=0&value=1&count=5")
    assert status == 200 and base64.b64decode(got["messages"][0]["payload"]) == b"over tcp"
