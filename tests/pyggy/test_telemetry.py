"""OpenTelemetry export (`[telemetry]`): spans and logs reach a real OTLP receiver (started
here, gRPC and HTTP), trace context crosses the two doors byte for byte, and a receiver that is
down costs the server nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from apache_iggy import Consumer, IggyClient, PollingStrategy, SendMessage
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from otlp_receiver import GrpcReceiver, HttpReceiver

from pyggy.telemetry import parse_traceparent
from pyggy.testing import PyggyCluster, free_port

# flags 03: SDK 1.45 sets "random trace id" besides "sampled"; 00: not sampled. Both accepted.
TP_IGGY = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"
TP_KAFKA = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


def _env(traces: str, traces_endpoint: str, logs: str, logs_endpoint: str,
         **extra: str) -> dict[str, str]:
    return {"IGGY_TELEMETRY_ENABLED": "true", "IGGY_TELEMETRY_SERVICE_NAME": "pyggy-test",
            "IGGY_TELEMETRY_TRACES_TRANSPORT": traces,
            "IGGY_TELEMETRY_TRACES_ENDPOINT": traces_endpoint,
            "IGGY_TELEMETRY_LOGS_TRANSPORT": logs, "IGGY_TELEMETRY_LOGS_ENDPOINT": logs_endpoint,
            # export every 100 ms instead of the SDK's 5 s / 1 s so the test is quick
            "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_BLRP_SCHEDULE_DELAY": "100", **extra}


async def _iggy_round(address: str) -> list[Any]:
    client = IggyClient(address)
    await client.connect()
    await client.login_user("iggy", "iggy")
    await client.create_stream("demo")
    await client.create_topic("demo", "events", partitions_count=1)
    await client.send_messages("demo", "events", 0, [
        SendMessage(b"from-iggy", user_headers={"traceparent": TP_IGGY})])
    return client


async def _iggy_poll(client: IggyClient) -> list[Any]:
    return await client.poll_messages("demo", "events", consumer=Consumer.Single(1),
                                      polling_strategy=PollingStrategy.First(), count=10,
                                      auto_commit=False, partition_id=0)


def _kafka_round(address: str) -> list[Any]:
    producer = KafkaProducer(bootstrap_servers=address, linger_ms=0)
    producer.send("demo.events", b"from-kafka", headers=[("traceparent", TP_KAFKA)]).get(10)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=address, enable_auto_commit=False,
                             client_id="otel-test-consumer")
    tp = TopicPartition("demo.events", 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    records: list[Any] = []
    deadline = time.monotonic() + 15
    while len(records) < 2 and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
    consumer.close()
    return records


def _one(sink, name: str, pred=lambda s: True):
    return sink.wait_for(lambda s: next((x for x in s.spans if x.name == name and pred(x)),
                                        None))


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_spans_logs_and_cross_protocol_trace_context(pyggy_server_factory,
                                                      transport: str) -> None:
    receiver = GrpcReceiver() if transport == "grpc" else HttpReceiver()
    try:
        server = pyggy_server_factory(env=_env(transport, receiver.endpoint("traces"),
                                               transport, receiver.endpoint("logs")))

        async def iggy() -> tuple[list[Any], list[Any]]:
            client = await _iggy_round(server.tcp_address)
            records = await asyncio.to_thread(_kafka_round, server.kafka_address)
            return await _iggy_poll(client), records

        messages, records = asyncio.run(iggy())
        sink = receiver.sink

        # byte-exact both ways: Kafka-produced traceparent → Iggy consumer, and vice versa
        assert [m.payload() for m in messages] == [b"from-iggy", b"from-kafka"]
        assert messages[1].user_headers().to_scalar_dict()["traceparent"] == TP_KAFKA
        assert messages[0].user_headers().to_scalar_dict()["traceparent"] == TP_IGGY
        assert [r.value for r in records] == [b"from-iggy", b"from-kafka"]
        assert ("traceparent", TP_IGGY.encode()) in records[0].headers
        assert records[1].headers == [("traceparent", TP_KAFKA)]

        # the produce spans of both doors are linked to the producer's trace
        iggy_tid, iggy_sid, _ = parse_traceparent(TP_IGGY.encode())
        kafka_tid, kafka_sid, _ = parse_traceparent(TP_KAFKA)
        send = _one(sink, "message.send")
        assert send.links == [(iggy_tid.to_bytes(16, "big"), iggy_sid.to_bytes(8, "big"),
                               {"messaging.message.traceparent": TP_IGGY})]
        assert send.kind == 2  # SPAN_KIND_SERVER
        assert send.resource["service.name"] == "pyggy-test"
        a = send.attributes
        assert (a["messaging.system"], a["messaging.destination.name"], a["iggy.stream.name"],
                a["messaging.destination.partition.id"], a["messaging.iggy.offset"],
                a["messaging.batch.message_count"]) == ("iggy", "events", "demo", "0", 0, 1)
        assert a["messaging.message.body.size"] > 0 and a["messaging.client.id"]
        produce = _one(sink, "kafka.Produce")
        assert produce.links == [(kafka_tid.to_bytes(16, "big"), kafka_sid.to_bytes(8, "big"),
                                  {"messaging.message.traceparent": TP_KAFKA.decode()})]
        a = produce.attributes
        assert (a["messaging.system"], a["messaging.destination.name"],
                a["messaging.destination.partition.id"], a["messaging.kafka.offset"],
                a["messaging.batch.message_count"]) == ("kafka", "demo.events", "0", 1, 1)
        assert a["messaging.client.id"]
        poll = _one(sink, "message.poll")
        assert (poll.attributes["messaging.batch.message_count"],
                poll.attributes["messaging.destination.name"]) == (2, "events")
        fetch = _one(sink, "kafka.Fetch",
                     lambda s: s.attributes.get("messaging.message.body.size", 0) > 0)
        assert fetch.attributes["messaging.client.id"] == "otel-test-consumer"
        assert fetch.attributes["messaging.destination.name"] == "demo.events"
        for name in ("stream.create", "topic.create", "kafka.Metadata", "kafka.ApiVersions"):
            _one(sink, name)

        # logs: exported with the resource, and with the trace id of the request they came from
        create = _one(sink, "topic.create")
        log = sink.wait_for(lambda s: next((r for r in s.logs if "create_topic" in r.body),
                                           None))
        assert log.trace_id == create.trace_id and log.span_id == create.span_id
        assert log.resource["service.name"] == "pyggy-test"
        sink.wait_for(lambda s: any("tcp listening" in r.body for r in s.logs))
    finally:
        receiver.close()


def test_a_sealed_segment_is_a_span_inside_the_send_that_sealed_it(pyggy_server_factory
                                                                    ) -> None:
    receiver = GrpcReceiver()
    try:
        server = pyggy_server_factory(env=_env("grpc", receiver.endpoint("traces"), "grpc",
                                               receiver.endpoint("logs")))

        async def fill() -> None:
            client = IggyClient(server.tcp_address)
            await client.connect()
            await client.login_user("iggy", "iggy")
            await client.create_stream("seal")
            await client.create_topic("seal", "t", partitions_count=1,
                                      options={"segment_size": "1 MiB"})
            for _ in range(12):  # 100 KB batches: the eleventh goes past 1 MiB
                await client.send_messages("seal", "t", 0,
                                           [SendMessage(b"x" * 1000) for _ in range(100)])

        asyncio.run(fill())
        seal = _one(receiver.sink, "segment.seal")
        a = seal.attributes
        assert (a["messaging.destination.name"], a["messaging.destination.partition.id"],
                a["iggy.segment.start_offset"]) == ("t", "0", 0)
        assert a["iggy.segment.size_bytes"] >= 1 << 20
        assert a["iggy.segment.end_offset"] == a["iggy.segment.batches"] * 100 - 1
        sends = [s for s in receiver.sink.spans if s.name == "message.send"]
        assert any(s.span_id == seal.parent_span_id and s.trace_id == seal.trace_id
                   for s in sends)
    finally:
        receiver.close()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def test_receiver_down_costs_nothing(pyggy_server_factory) -> None:
    """No receiver at either endpoint: requests stay prompt, memory does not follow the
    number of spans (the queues are bounded and drop), and shutdown is bounded."""
    dead = free_port()
    server = pyggy_server_factory(env=_env(
        "grpc", f"http://127.0.0.1:{dead}", "http", f"http://127.0.0.1:{dead}/v1/logs",
        IGGY_TELEMETRY_MAX_QUEUE_SIZE="256", IGGY_TELEMETRY_EXPORT_TIMEOUT="1 s"))

    async def sends(client: IggyClient, n: int) -> float:
        worst = 0.0
        for i in range(n):
            t0 = time.monotonic()
            await client.send_messages("demo", "events", 0, [SendMessage(f"m{i}".encode())])
            worst = max(worst, time.monotonic() - t0)
        return worst

    async def run() -> tuple[int, int, float]:
        client = await _iggy_round(server.tcp_address)
        await sends(client, 1000)  # queues full, exporter threads busy failing
        before = _rss_kib(server.pid)
        worst = await sends(client, 4000)
        after = _rss_kib(server.pid)
        assert len(await _iggy_poll(client)) == 10
        return before, after, worst

    before, after, worst = asyncio.run(run())
    assert worst < 0.5, f"a send took {worst:.3f} s with the receiver down"
    # 4000 more spans kept would be several MiB; bounded queues keep it flat
    assert after - before < 8 * 1024, f"RSS grew {before} → {after} KiB"
    t0 = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - t0 < 10


def test_telemetry_off_imports_no_opentelemetry() -> None:
    code = ("import sys, asyncio\n"
            "from pyggy import server, telemetry\n"
            "from pyggy.config import TelemetryConfig\n"
            "assert telemetry.setup(TelemetryConfig()) is None\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("value, expected", [
    (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
     (0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 1)),
    (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
     (0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 0xff)),
    (b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-future",
     (0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 3)),
    (b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
    (b"00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
    (b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
    (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", None),
    (b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),
    (b"garbage", None),
    (None, None),
])
def test_parse_traceparent(value, expected) -> None:
    assert parse_traceparent(value) == expected


def test_compose_wires_pyggy_to_collector_and_jaeger() -> None:
    yaml = pytest.importorskip("yaml")
    root = Path(__file__).resolve().parents[2]
    services = yaml.safe_load((root / "compose.yaml").read_text())["services"]
    env = services["pyggy"]["environment"]
    assert env["IGGY_TELEMETRY_ENABLED"] == "true"
    assert env["IGGY_TELEMETRY_TRACES_ENDPOINT"].startswith("http://otel-collector:4317")
    assert env["IGGY_TELEMETRY_LOGS_ENDPOINT"] == "http://otel-collector:4318/v1/logs"
    mount = services["otel-collector"]["volumes"][0].split(":")
    collector = yaml.safe_load((root / mount[0]).read_text())
    assert collector["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert "otlp/jaeger" in collector["service"]["pipelines"]["traces"]["exporters"]
    assert "jaeger" in services


def test_http_requests_are_spans_linked_to_their_messages_traceparent(pyggy_server_factory
                                                                      ) -> None:
    import base64
    import json
    import urllib.request

    receiver = GrpcReceiver()
    try:
        port = free_port()
        server = pyggy_server_factory(env=_env(
            "grpc", receiver.endpoint("traces"), "grpc", receiver.endpoint("logs"),
            IGGY_HTTP_ENABLED="true", IGGY_HTTP_ADDRESS=f"127.0.0.1:{port}"))
        server.wait_for_log("http listening on")

        def call(method: str, path: str, body: dict, token: str | None = None) -> dict:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                         data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            if token:
                req.add_header("Authorization", f"Bearer {token}")
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read()
            return json.loads(text) if text else {}

        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        token = call("POST", "/users/login", {"username": "iggy", "password": "iggy"})[
            "access_token"]["token"]
        call("POST", "/streams", {"name": "web"}, token)
        call("POST", "/streams/web/topics", {"name": "t", "partitions_count": 1}, token)
        call("POST", "/streams/web/topics/t/messages", {"messages": [{
            "payload": b64(b"hi"), "user_headers": [{
                "key": {"kind": "string", "value": b64(b"traceparent")},
                "value": {"kind": "string", "value": b64(TP_KAFKA)}}]}]}, token)
        send = _one(receiver.sink, "http.message.send")
        assert send.attributes["http.route"] == "/streams/{stream_id}/topics/{topic_id}/messages"
        assert send.attributes["messaging.destination.name"] == "t"
        trace_id, span_id, _ = parse_traceparent(TP_KAFKA)
        assert any(int.from_bytes(t, "big") == trace_id and int.from_bytes(s, "big") == span_id
                   for t, s, _ in send.links)
        assert _one(receiver.sink, "http.user.login").attributes["http.request.method"] == "POST"
    finally:
        receiver.close()


def test_a_view_change_in_a_cluster_is_a_span(tmp_path: Path) -> None:
    receiver = GrpcReceiver()
    cluster = PyggyCluster(tmp_path / "c", env=_env("grpc", receiver.endpoint("traces"), "grpc",
                                                    receiver.endpoint("logs")))
    try:
        cluster.start()
        line = cluster.servers[0].wait_for_log("cluster: metadata primary is replica")
        primary = int(line.split("replica ")[1].split()[0])
        cluster.servers[primary].kill()
        span = _one(receiver.sink, "cluster.view_change", lambda s: (
            s.attributes["pyggy.cluster.group"] == f"{1 << 63:#018x}"
            and s.attributes["pyggy.cluster.primary"] != primary))
        a = span.attributes
        assert a["pyggy.cluster.view"] > 0 and a["pyggy.cluster.replica"] != primary
        assert span.end_ns > span.start_ns  # it lasted from the first sight until a primary
    finally:
        cluster.close()
        receiver.close()
