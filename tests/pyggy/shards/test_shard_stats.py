"""What an operator sees of a server of 2 shard processes (docs/sharding.md, "What an operator
sees"): `/metrics` (Prometheus' own parser) shows every shard's forwarding and handoff
counters, labelled by shard, and `stats` (the HTTP door's JSON and the Iggy SDK's GET_STATS)
totals the whole server, not the answering shard.

The HTTP door runs on shard 0 only; shard 1's figures reach it over the inter-shard channel.
Which shard accepted a connection is told by its client id (shard k of N hands out k + 1,
k + 1 + N, …)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import urllib.request
from collections.abc import Callable
from pathlib import Path

from apache_iggy import IggyClient, TcpConfig
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families
from pyggy.core.records.iggy_batch import build_batch

from pyggy.native_client import NativeClient
from pyggy.shards import handoff
from pyggy.shards.rule import owner
from pyggy.testing import PyggyServer, free_port

REPO = Path(__file__).resolve().parents[3]
PARTITIONS = 4
GET_ME = 20
MOVE = handoff.MOVE_AFTER
BATCH = bytes(build_batch([(i + 1, b"m" * 50, b"", 0) for i in range(10)]))


def _server(factory: Callable[..., PyggyServer], **env: str) -> tuple[PyggyServer, str]:
    port = free_port()
    server = factory(env={"IGGY_SYSTEM_SHARDING_SHARDS": "2", "IGGY_HTTP_ENABLED": "true",
                          "IGGY_HTTP_ADDRESS": f"127.0.0.1:{port}", **env})
    server.wait_for_log("shards: 2 processes serving")
    return server, f"http://127.0.0.1:{port}"


def _http(base: str, path: str, body: dict | None = None) -> bytes:
    """One request as the root user (Basic auth, as Prometheus can log in)."""
    req = urllib.request.Request(base + path, method="GET" if body is None else "POST",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    req.add_header("Authorization", "Basic " + base64.b64encode(b"iggy:iggy").decode())
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def _scrape(base: str) -> dict[tuple[str, tuple], float]:
    text = _http(base, "/metrics").decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} not in /metrics"
    return samples[key]


def _dashboard_shard_names() -> set[str]:
    """The `pyggy_shard_*` metrics the Grafana dashboard (deploy/grafana) queries."""
    dashboard = json.loads((REPO / "deploy/grafana/dashboards/pyggy.json").read_text())
    return {m for p in dashboard["panels"] for t in p["targets"]
            for m in re.findall(r"\b(pyggy_shard_[a-z_]+)", t["expr"])}


def _on(server: PyggyServer, shard: int) -> tuple[NativeClient, int]:
    """A logged-in connection the kernel put on `shard`, and its client id."""
    for _ in range(40):
        c = NativeClient(server.tcp_address)
        c.login("iggy", "iggy")
        me = struct.unpack_from("<I", c.call(GET_ME))[0]
        if (me - 1) % 2 == shard:
            return c, me
        c.close()
    raise AssertionError(f"40 connections and none on shard {shard}")


def _topic(server: PyggyServer) -> tuple[NativeClient, dict[int, int]]:
    admin = NativeClient(server.tcp_address)
    admin.login("iggy", "iggy")
    admin.create_stream("s")
    admin.create_topic("s", "t", PARTITIONS)
    owners = {p: owner(1, 1, p, 2) for p in range(PARTITIONS)}
    assert sorted(owners.values()) == [0, 0, 1, 1]
    return admin, owners


def test_metrics_show_a_handoff_and_forwarded_requests_per_shard(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    server, base = _server(pyggy_server_factory)
    admin, owners = _topic(server)
    theirs = next(p for p, s in owners.items() if s == 1)
    before = _scrape(base)
    for shard in ("0", "1"):  # every shard's series, at zero before any data request
        assert _value(before, "pyggy_shard_handoffs_out_total", shard=shard) == 0
        assert _value(before, "pyggy_shard_forwarded_out_total", shard=shard, door="iggy") == 0

    # a connection on shard 0 sending to shard 1's partition: MOVE forwarded sends, then it
    # is handed to shard 1, where the rest is served without forwarding
    lean, _ = _on(server, 0)
    bases = [lean.send("s", "t", theirs, BATCH, 10) for _ in range(MOVE + 3)]
    assert bases == [10 * i for i in range(MOVE + 3)]
    # and one send through the HTTP door (shard 0) to shard 1's partition
    _http(base, "/streams/s/topics/t/messages", {
        "partitioning": {"kind": "partition_id",
                         "value": base64.b64encode(struct.pack("<I", theirs)).decode()},
        "messages": [{"payload": base64.b64encode(b"over http").decode()}]})

    m = _scrape(base)
    assert _value(m, "pyggy_shard_handoffs_out_total", shard="0") == 1
    assert _value(m, "pyggy_shard_handoffs_in_total", shard="1") == 1
    assert _value(m, "pyggy_shard_connections_adopted_total", shard="1") == 1
    assert _value(m, "pyggy_shard_handoffs_out_total", shard="1") == 0
    assert _value(m, "pyggy_shard_handoffs_in_total", shard="0") == 0
    for shard in ("0", "1"):
        for reason in ("peer_full", "peer_gone", "send_error", "malformed", "adopt_error"):
            assert _value(m, "pyggy_shard_handoffs_failed_total", shard=shard,
                          reason=reason) == 0
    # the MOVE sends before the move went out of shard 0 and into shard 1, by their door
    assert _value(m, "pyggy_shard_forwarded_out_total", shard="0", door="iggy") == MOVE
    assert _value(m, "pyggy_shard_forwarded_in_total", shard="1", door="iggy") == MOVE
    assert _value(m, "pyggy_shard_forwarded_out_total", shard="0", door="http") == 1
    assert _value(m, "pyggy_shard_forwarded_in_total", shard="1", door="http") == 1
    assert _value(m, "pyggy_shard_forwarded_out_total", shard="1", door="iggy") == 0
    assert _value(m, "pyggy_shard_forwarded_in_total", shard="0", door="iggy") == 0
    used = _dashboard_shard_names()  # the Grafana panel's queries name real metrics
    assert len(used) >= 4
    assert used <= {name for name, _ in m}, used - {name for name, _ in m}
    lean.close()
    admin.close()


def test_metrics_count_a_failed_handoff_by_reason_and_kafka_forwarding(
        pyggy_server_factory: Callable[..., PyggyServer], tmp_path: Path) -> None:
    """Shard 1's handoff socket gone: the connection stays on shard 0, and the failure is
    counted as `peer_gone`; with one Kafka broker, Produce for the other shard's partitions
    is forwarded and counted under the Kafka door."""
    socket_dirs = tmp_path / "tmp"
    socket_dirs.mkdir()
    server, base = _server(pyggy_server_factory, TMPDIR=str(socket_dirs),
                           IGGY_SYSTEM_SHARDING_KAFKA_BROKER_PER_SHARD="false")
    admin, owners = _topic(server)
    theirs = next(p for p, s in owners.items() if s == 1)
    (path,) = socket_dirs.glob("pyggy-shards-*/shard-1.handoff")
    path.unlink()
    stays, _ = _on(server, 0)
    for _ in range(2 * MOVE):  # two attempts: after MOVE sends, and MOVE sends later
        stays.send("s", "t", theirs, BATCH, 10)
    m = _scrape(base)
    assert _value(m, "pyggy_shard_handoffs_failed_total", shard="0", reason="peer_gone") == 2
    assert _value(m, "pyggy_shard_handoffs_out_total", shard="0") == 0
    assert _value(m, "pyggy_shard_forwarded_out_total", shard="0", door="iggy") == 2 * MOVE

    producer = Producer({"bootstrap.servers": server.kafka_address, "linger.ms": 0})
    for p in range(PARTITIONS):  # one connection, on one shard: 2 partitions are the other's
        producer.produce("s.t", value=b"k", partition=p)
    assert producer.flush(20) == 0
    m = _scrape(base)
    assert sum(_value(m, "pyggy_shard_forwarded_out_total", shard=s, door="kafka")
               for s in ("0", "1")) == 2
    assert sum(_value(m, "pyggy_shard_forwarded_in_total", shard=s, door="kafka")
               for s in ("0", "1")) == 2
    stays.close()
    admin.close()


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def test_stats_total_every_shard(pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    server, base = _server(pyggy_server_factory)
    admin, owners = _topic(server)
    # messages on partitions of both shards, and connections on both shards
    clients = [admin, *(_on(server, s)[0] for s in (0, 1, 1))]
    for p in range(PARTITIONS):
        admin.send("s", "t", p, BATCH, 10)

    async def native_stats(shard: int) -> tuple[int, int]:
        client = IggyClient(TcpConfig(server_address=server.tcp_address))
        await client.connect()
        await client.login_user("iggy", "iggy")
        me = struct.unpack_from("<I", await client.send_binary_request(GET_ME, b""))[0]
        if (me - 1) % 2 != shard:
            return -1, -1  # not on that shard: the caller tries again
        s = await client.get_stats()
        return s.clients_count, s.messages_count

    for shard in (0, 1):  # GET_STATS answered by either shard: the same totals
        got = (-1, -1)
        for _ in range(40):
            got = asyncio.run(native_stats(shard))
            if got != (-1, -1):
                break
        # the asking SDK connection is open too (its earlier tries are closed by now, or
        # counted: at least the lean ones and the asker)
        assert got[1] == PARTITIONS * 10
        assert got[0] >= len(clients) + 1

    stats = json.loads(_http(base, "/stats"))
    assert stats["messages_count"] == PARTITIONS * 10
    assert stats["partitions_count"] == PARTITIONS
    assert stats["clients_count"] >= len(clients)  # HTTP is no Iggy client
    assert server.pid is not None
    pids = [server.pid, *_children(server.pid)]
    assert len(pids) == 2
    both = sum(_rss(pid) for pid in pids)
    assert 0.8 * both <= stats["memory_usage"] <= 1.2 * both, (stats["memory_usage"], both)
    for c in clients:
        c.close()
