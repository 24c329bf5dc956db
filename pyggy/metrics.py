"""Prometheus metrics (prometheus_client's registry and text format), served at `/metrics` by
the HTTP door.

The request paths only bump counters and observe one histogram per request (children cached
per (door, api)); no per-message work. Partition offsets and sizes, consumer lag of both doors'
groups, connections and archiver counters are read from the engine when Prometheus scrapes
(`EngineCollector`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from pyggy.core.storage import fsync
from pyggy.lag import iggy_lags, kafka_lags

if TYPE_CHECKING:  # attached by pyggy/server.py
    from pyggy.archiver.service import ArchiverService
    from pyggy.core.engine import LogEngine
    from pyggy.http_api.context import Call
    from pyggy.kafka_wire.context import KafkaServer
    from pyggy.native_wire.context import NativeServer
    from pyggy.shards.runtime import ShardRuntime
    from pyggy.transport import Listener

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)


class Metrics:
    """The registry and the request-side instruments. `kafka` (KafkaServer), `native`
    (NativeServer) and `archiver` (ArchiverService) are attached by the server when present."""

    def __init__(self, engine: LogEngine) -> None:
        self.engine = engine
        self.kafka: KafkaServer | None = None
        self.native: NativeServer | None = None
        self.archiver: ArchiverService | None = None
        self.shards: ShardRuntime | None = None  # with shard processes (docs/sharding.md)
        self.listeners: dict[str, Listener] = {}  # by door (their open connections)
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.requests = Counter("pyggy_requests", "Requests handled, by door and API/command",
                                ["door", "api"], registry=r)
        self.errors = Counter("pyggy_request_errors", "Requests answered with an error",
                              ["door", "api", "error"], registry=r)
        self.latency = Histogram("pyggy_request_duration_seconds",
                                 "Time from a complete request to its reply", ["door", "api"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.bytes_in = Counter("pyggy_received_bytes", "Request bytes received", ["door"],
                                registry=r)
        self.bytes_out = Counter("pyggy_sent_bytes", "Reply bytes sent", ["door"], registry=r)
        self.fsync = Histogram("pyggy_fsync_duration_seconds",
                               "Duration of one group-commit fdatasync flush",
                               buckets=LATENCY_BUCKETS, registry=r)
        fsync.FSYNC_OBSERVERS.append(self.fsync.observe)
        self._children: dict[tuple[str, str], tuple] = {}
        r.register(EngineCollector(self))

    def request(self, door: str, api: str, seconds: float, error: str = "",
                received: int = 0, sent: int = 0) -> None:
        """One request: count, latency, bytes, and its error name if it failed."""
        key = (door, api)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.requests.labels(door, api), self.latency.labels(door, api),
                self.bytes_in.labels(door), self.bytes_out.labels(door))
        children[0].inc()
        children[1].observe(seconds)
        if received:
            children[2].inc(received)
        if sent:
            children[3].inc(sent)
        if error:
            self.errors.labels(door, api, error).inc()

    def close(self) -> None:
        if self.fsync.observe in fsync.FSYNC_OBSERVERS:
            fsync.FSYNC_OBSERVERS.remove(self.fsync.observe)

    def text(self) -> bytes:
        return generate_latest(self.registry)

    async def handler(self, call: Call) -> web.Response:
        """`GET /metrics` (authenticated, as every Iggy route but ping and login)."""
        await self.engine.data.refresh_stats()  # other shards' partitions (pyggy/shards)
        return web.Response(body=self.text(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class EngineCollector:
    """Gauges computed at scrape time from the engine (nothing kept per message)."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        engine = self.m.engine
        labels = ["stream", "topic", "partition"]
        start = GaugeMetricFamily("pyggy_partition_log_start_offset",
                                  "First offset still readable", labels=labels)
        end = GaugeMetricFamily("pyggy_partition_log_end_offset",
                                "Offset the next message gets (high watermark)", labels=labels)
        size = GaugeMetricFamily("pyggy_partition_size_bytes",
                                 "Stored bytes (local and archived)", labels=labels)
        segments = GaugeMetricFamily("pyggy_partition_segments", "Segments", labels=labels)
        lag = GaugeMetricFamily("pyggy_consumer_lag_messages",
                                "Messages after a consumer's or group's committed offset",
                                labels=["door", "group", *labels])
        for s in engine.metadata.streams():
            for t in sorted(s.topics.values(), key=lambda t: t.id):
                for p in t.partitions:
                    ls = [s.name, t.name, str(p.id)]
                    log_start, log_end = engine.data.watermarks(t, p.id)
                    start.add_metric(ls, log_start)
                    end.add_metric(ls, log_end)
                    size.add_metric(ls, p.size_bytes)
                    segments.add_metric(ls, p.segments_count)
                for x in iggy_lags(engine, t):
                    lag.add_metric(["iggy", x.group, x.stream, x.topic, str(x.partition)], x.lag)
        for x in kafka_lags(engine, self.m.kafka):
            lag.add_metric(["kafka", x.group, x.stream, x.topic, str(x.partition)], x.lag)
        yield from (start, end, size, segments, lag)
        yield from self._counts()
        if self.m.shards is not None:
            yield from _shard_families(self.m.shards)

    def _counts(self) -> Iterator[Metric]:
        c = self.m.engine.counts()
        for key in ("streams", "topics", "partitions", "segments", "messages"):
            yield GaugeMetricFamily(f"pyggy_{key}", f"Number of {key}", value=c[key])
        conns = GaugeMetricFamily("pyggy_connections", "Open client connections",
                                  labels=["door"])
        for door, listener in self.m.listeners.items():
            conns.add_metric([door], len(listener.connections))
        yield conns
        archiver = self.m.archiver
        if archiver is not None:
            counters = archiver.counters
            yield CounterMetricFamily("pyggy_archiver_failures", "Archiver failures",
                                      value=counters.failures)
            yield CounterMetricFamily("pyggy_archiver_segments_archived",
                                      "Segments archived", value=counters.segments_archived)
            yield GaugeMetricFamily("pyggy_archiver_pending_deletes",
                                    "Archive objects queued for deletion",
                                    value=len(archiver.store.pending_deletes))


def _shard_families(shards: ShardRuntime) -> Iterator[Metric]:
    """Every shard's forwarding and handoff counters (pyggy/shards/counters.py), labelled by
    shard: this one's as they are, the others' as the scrape's statistics request got them."""
    fwd_out = CounterMetricFamily("pyggy_shard_forwarded_out",
                                  "Requests sent to the shard owning their partition",
                                  labels=["shard", "door"])
    fwd_in = CounterMetricFamily("pyggy_shard_forwarded_in",
                                 "Requests for this shard's partitions from other shards",
                                 labels=["shard", "door"])
    out = CounterMetricFamily("pyggy_shard_handoffs_out",
                              "Iggy connections handed to another shard", labels=["shard"])
    into = CounterMetricFamily("pyggy_shard_handoffs_in",
                               "Iggy connections received from another shard",
                               labels=["shard"])
    failed = CounterMetricFamily("pyggy_shard_handoffs_failed",
                                 "Handoffs not done, by reason", labels=["shard", "reason"])
    adopted = CounterMetricFamily("pyggy_shard_connections_adopted",
                                  "Received connections served by this shard",
                                  labels=["shard"])
    for index, c in shards.all_counters():
        shard = str(index)
        for door, n in c["forwarded_out"].items():
            fwd_out.add_metric([shard, door], n)
        for door, n in c["forwarded_in"].items():
            fwd_in.add_metric([shard, door], n)
        out.add_metric([shard], c["handoffs_out"])
        into.add_metric([shard], c["handoffs_in"])
        for reason, n in c["handoffs_failed"].items():
            failed.add_metric([shard, reason], n)
        adopted.add_metric([shard], c["adopted"])
    yield from (fwd_out, fwd_in, out, into, failed, adopted)
