"""`/metrics` as Prometheus reads it (prometheus_client's own text parser): request counters of
all three doors move with traffic, partition gauges follow the log, and consumer lag is what
the consumers (an Iggy consumer and a Kafka group) really have left."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from apache_iggy import Consumer, IggyClient, PollingStrategy, SendMessage
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from pyggy.testing import free_port

pytestmark = pytest.mark.asyncio
REPO = Path(__file__).resolve().parents[2]


def scrape(base: str, token: str) -> dict[tuple[str, tuple], float]:
    req = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def pat(base: str) -> str:
    """A personal access token for Prometheus' `authorization` (bearer) setting."""

    def post(path: str, body: dict, token: str | None = None) -> dict:
        req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    jwt = post("/users/login", {"username": "iggy", "password": "iggy"})["access_token"]["token"]
    post("/streams", {"name": "metered"}, jwt)
    post("/streams/metered/topics", {"name": "t", "partitions_count": 1,
                                     "options": {"enforce_fsync": True}}, jwt)
    return post("/personal-access-tokens", {"name": "prometheus"}, jwt)["token"]


async def test_metrics_follow_traffic_and_lag(pyggy_server_factory, tmp_path):
    port = free_port()
    server = pyggy_server_factory(env={
        "IGGY_HTTP_ENABLED": "true", "IGGY_HTTP_ADDRESS": f"127.0.0.1:{port}",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_KIND": "disk",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_DISK_PATH": str(tmp_path / "archive")})
    server.wait_for_log("http listening on")
    base = f"http://127.0.0.1:{port}"
    with pytest.raises(urllib.error.HTTPError) as refused:  # no anonymous scraping
        urllib.request.urlopen(base + "/metrics", timeout=30)
    assert refused.value.code == 401
    token = pat(base)
    before = scrape(base, token)
    labels = {"stream": "metered", "topic": "t", "partition": "0"}
    assert value(before, "pyggy_partition_log_end_offset", **labels) == 0

    tcp = IggyClient(server.tcp_address)
    await tcp.connect()
    await tcp.login_user("iggy", "iggy")
    await tcp.send_messages("metered", "t", 0, [SendMessage(f"m{i}") for i in range(10)])
    await tcp.poll_messages("metered", "t", consumer=Consumer.Single(3),
                            polling_strategy=PollingStrategy.Offset(0), count=4,
                            auto_commit=True, partition_id=0)  # stores offset 3
    kafka = KafkaConsumer({"bootstrap.servers": server.kafka_address, "group.id": "lagging",
                           "enable.auto.commit": False})
    try:
        kafka.commit(offsets=[TopicPartition("metered.t", 0, 6)], asynchronous=False)
        after = scrape(base, token)
        assert value(after, "pyggy_requests_total", door="iggy", api="message.send") == \
            value(before, "pyggy_requests_total", door="iggy", api="message.send") + 1
        assert value(after, "pyggy_requests_total", door="http", api="metrics") >= 1
        assert value(after, "pyggy_requests_total", door="kafka", api="OffsetCommit") >= 1
        assert value(after, "pyggy_request_duration_seconds_count", door="iggy",
                     api="message.poll") == 1
        assert value(after, "pyggy_received_bytes_total", door="iggy") > 0
        assert value(after, "pyggy_connections", door="iggy") == 1
        assert value(after, "pyggy_fsync_duration_seconds_count") >= 1  # enforce_fsync topic
        assert value(after, "pyggy_partition_log_end_offset", **labels) == 10
        assert value(after, "pyggy_partition_size_bytes", **labels) > 0
        assert value(after, "pyggy_messages") == 10
        assert value(after, "process_resident_memory_bytes") > 0
        # lag = what each consumer has left: Iggy stored 3 (next 4), Kafka committed 6
        assert value(after, "pyggy_consumer_lag_messages", door="iggy", group="3", **labels) == 6
        assert value(after, "pyggy_consumer_lag_messages", door="kafka", group="lagging",
                     **labels) == 4
        kafka.commit(offsets=[TopicPartition("metered.t", 0, 10)], asynchronous=False)
        final = scrape(base, token)
        assert value(final, "pyggy_consumer_lag_messages", door="kafka", group="lagging",
                     **labels) == 0
        assert value(final, "pyggy_archiver_failures_total") == 0
        assert ("pyggy_archiver_pending_deletes", ()) in final
        dashboard_names_exist({name for name, _ in final})
    finally:
        kafka.close()


def dashboard_names(sharded: bool) -> set[str]:
    """The metrics the Grafana dashboard (deploy/grafana) queries: those of shard processes
    (`pyggy_shard_*`, exported only by a sharded server) or the others."""
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/pyggy.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b((?:pyggy|process)_[a-z_]+)", e)}
    return {m for m in used if m.startswith("pyggy_shard_") == sharded}


def dashboard_names_exist(scraped: set[str]) -> None:
    """Every metric the Grafana dashboard queries is one pyggy exports (the shard ones are
    checked on a sharded server: tests/pyggy/shards/test_shard_stats.py)."""
    used = dashboard_names(sharded=False)
    assert len(used) >= 15
    assert used <= scraped, used - scraped
