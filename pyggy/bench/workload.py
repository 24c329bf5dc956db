"""Bench workloads: a plan shared by every worker process, and the native / Kafka workers.

Every producer sends whole batches of ``messages_per_batch`` messages. Producer ``i`` writes to
stream (topic) ``i % streams``, batch ``b`` to partition ``b % partitions``: so the parent knows
how many messages each (stream, partition) pair receives, and pinned consumers stop when they
have read exactly that many. Workers report through a shared counter array (progress, the
throughput time series) and a result queue (counts, bytes, latencies in microseconds).

Latency: a producer records each batch's acknowledgement time (send → reply; Kafka: produce →
delivery report of the batch's last message); a consumer each poll's round trip (Kafka: each
``consume()`` call that returned messages); end-to-end is receive time minus the send time the
producer wrote into the batch (native: the batch origin_timestamp; Kafka: the first 8 payload
bytes of every ``messages_per_batch``-th record), on the same machine's clock.
"""

from __future__ import annotations

import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

MODES = ("pinned-producer", "pinned-consumer", "producer-consumer", "consumer-group",
         "end-to-end")
_U64 = struct.Struct("<Q")

if TYPE_CHECKING:  # the shared objects bench/runner.py hands each worker process
    from multiprocessing.queues import Queue
    from multiprocessing.sharedctypes import SynchronizedArray
    from multiprocessing.synchronize import Event, Semaphore

    Counters = SynchronizedArray[int]
    Results = Queue[tuple[Any, ...]]


class SharedFloat(Protocol):
    """A `multiprocessing.Value("d", lock=False)`: the time the run stops (0: not yet)."""

    value: float


@dataclass
class Params:
    mode: str
    protocol: str = "native"
    address: str = ""
    message_size: int = 1000
    messages_per_batch: int = 1000
    producers: int = 1
    consumers: int = 1
    streams: int = 1
    partitions: int = 1
    total_messages: int = 1_000_000
    duration: float | None = None
    fsync: bool = False
    acks: str = "1"
    username: str = "iggy"
    password: str = "iggy"
    prefix: str = ""
    kafka_linger_ms: int = 5
    native_address: str | None = None  # pyggy's native door, for topic options on Kafka runs
    # the server's processes for the cost figure (pyggy/bench/cost.py); empty: every process
    # listening on the address's port on this machine (every shard of a sharded server)
    server_pids: tuple[int, ...] = ()
    # a cluster: every node's address (native TCP or Kafka); empty = `address` alone (or its
    # comma-separated list). `cluster` asks setup to discover them from `address`.
    nodes: tuple[str, ...] = ()
    cluster: bool = False
    replication_factor: int = 1  # Kafka topics made by kafka_setup
    min_insync_replicas: int = 0  # its topic config min.insync.replicas (0: the broker's)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.prefix:
            self.prefix = f"bench-{os.getpid()}-{int(time.time() * 1000) % 10**8}"

    @property
    def batches_per_producer(self) -> int:
        return max(1, math.ceil(self.total_messages
                                / (self.producers * self.messages_per_batch)))

    def stream_name(self, s: int) -> str:
        return f"{self.prefix}-{s}"

    def pairs(self) -> list[tuple[int, int]]:
        return [(s, p) for s in range(self.streams) for p in range(self.partitions)]

    def expected(self) -> dict[tuple[int, int], int]:
        """Messages each (stream, partition) receives from the producers of a counted run."""
        out = dict.fromkeys(self.pairs(), 0)
        for i in range(self.producers):
            s = i % self.streams
            for b in range(self.batches_per_producer):
                out[(s, b % self.partitions)] += self.messages_per_batch
        return out

    def consumer_pairs(self, j: int) -> list[tuple[int, int]]:
        return self.pairs()[j :: self.consumers]

    def as_dict(self) -> dict:
        return asdict(self)

    def node_addresses(self) -> list[str]:
        """Every node to route to and count the CPU of: `nodes`, else `address` split at
        commas (a bootstrap list)."""
        return list(self.nodes) or [a for a in self.address.split(",") if a]


def _wait_go(go: Event, ready: Semaphore) -> None:
    ready.release()
    go.wait()


def _payload(size: int) -> bytes:
    return (b"pyggy-bench-" * (size // 12 + 1))[:size]


# --- native ---------------------------------------------------------------------------------

NOT_ACCEPTED = 58  # Iggy TransientNotAccepted: not this partition's (or metadata's) leader
ROUTE_TRIES = 100  # rounds of the roster before a request gives up (a view change: ~seconds)


class NativeRoutes:
    """Native clients of a cluster's nodes (one connection each, logged in on first use).
    Each key (a (stream, partition) pair, or "metadata") goes to the node that last accepted
    it; an answer 58 (not the leader, or no leader during a view change: docs/cluster.md)
    moves it to the next node of the roster. Against one node it is one client."""

    def __init__(self, p: Params, addresses: list[str] | None = None) -> None:
        from pyggy.native_client import NativeClient

        self.p = p
        self.addresses = addresses or p.node_addresses()
        self._new = NativeClient
        self.clients: dict[int, Any] = {}
        self.route: dict[object, int] = {}

    def client(self, k: int) -> Any:
        c = self.clients.get(k)
        if c is None:
            c = self.clients[k] = self._new(self.addresses[k])
            c.login(self.p.username, self.p.password)
        return c

    def call(self, key: object, method: str, *args: Any) -> Any:
        """`NativeClient.<method>(*args)` on the node that takes `key`'s requests."""
        from pyggy.native_client import NativeError

        n = len(self.addresses)
        start = self.route.get(key, 0)
        for attempt in range(n * ROUTE_TRIES):
            k = (start + attempt) % n
            try:
                out = getattr(self.client(k), method)(*args)
            except NativeError as e:
                if e.status != NOT_ACCEPTED:
                    raise
                if attempt % n == n - 1:  # nobody took it: wait out a view change
                    time.sleep(0.05)
                continue
            self.route[key] = k
            return out
        raise RuntimeError(f"no node of {self.addresses} accepted a request for {key!r}")

    def close(self) -> None:
        for c in self.clients.values():
            c.close()


def discover_native(p: Params) -> None:
    """`p.cluster`: every node of the roster (GET_CLUSTER_METADATA) becomes `p.nodes`."""
    from pyggy.native_client import NativeClient

    c = NativeClient(p.node_addresses()[0])
    c.login(p.username, p.password)
    p.nodes = tuple(n.address for n in c.cluster_nodes())
    c.close()


def native_setup(p: Params) -> None:
    from pyggy.native_wire.codec.primitives import encode_options

    if p.cluster and not p.native_address:
        discover_native(p)
    routes = NativeRoutes(p, [p.native_address] if p.native_address else None)
    opts = encode_options([("enforce_fsync", 3, b"\x01")] if p.fsync else [])
    for s in range(p.streams):
        routes.call("metadata", "create_stream", p.stream_name(s))
        routes.call("metadata", "create_topic", p.stream_name(s), "t", p.partitions, opts)
    if p.mode == "consumer-group":
        if len(routes.addresses) > 1:
            raise RuntimeError("consumer-group over the native protocol against a cluster is "
                               "not supported (group members are bound to one node)")
        for s in range(p.streams):
            routes.call("metadata", "create_group", p.stream_name(s), "t", "bench-group")
    routes.close()
    if len(p.node_addresses()) > 1 and not p.native_address:
        _await_topics_everywhere(p)


def _await_topics_everywhere(p: Params, timeout: float = 30.0) -> None:
    """A cluster applies a created topic on each node a moment after the leader: poll every
    partition on every node until none answers 'not found' (58 is fine: led elsewhere)."""
    from pyggy.native_client import NativeClient, NativeError

    deadline = time.monotonic() + timeout
    for address in p.node_addresses():
        c = NativeClient(address)
        c.login(p.username, p.password)
        for s, part in p.pairs():
            while True:
                try:
                    c.poll(p.stream_name(s), "t", part, 0, 1)
                    break
                except NativeError as e:
                    if e.status == NOT_ACCEPTED:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{address} does not know {p.stream_name(s)} "
                                           f"partition {part} (status {e.status})") from None
                    time.sleep(0.05)
        c.close()


def native_producer(p: Params, i: int, counters: Counters, go: Event, ready: Semaphore,
                    results: Results, stop_at: SharedFloat) -> None:
    from pyggy.core.records import iggy_batch

    routes = NativeRoutes(p)
    payload = _payload(p.message_size)
    now_us = time.time_ns() // 1000
    batch = iggy_batch.build_batch([(k + 1, payload, b"", now_us)
                                    for k in range(p.messages_per_batch)])
    e2e = p.mode == "end-to-end"
    stream = p.stream_name(i % p.streams)
    lat: list[float] = []
    n = nbytes = 0
    size = len(payload) * p.messages_per_batch
    _wait_go(go, ready)
    start = time.perf_counter()
    b = 0
    while True:
        if stop_at.value:
            if time.time() >= stop_at.value:
                break
        elif b >= p.batches_per_producer:
            break
        if e2e:
            iggy_batch.reseal_origin(batch, time.time_ns() // 1000)
        part = b % p.partitions
        t0 = time.perf_counter()
        routes.call((stream, part), "send", stream, "t", part, batch, p.messages_per_batch)
        lat.append((time.perf_counter() - t0) * 1e6)
        n += p.messages_per_batch
        nbytes += size
        counters[i] = n
        b += 1
    results.put(("producer", i, n, nbytes, start, time.perf_counter(), lat))
    routes.close()


def native_consumer(p: Params, j: int, slot: int, counters: Counters, go: Event,
                    ready: Semaphore, results: Results, stop_at: SharedFloat) -> None:
    routes = NativeRoutes(p)
    group = p.mode == "consumer-group"
    pairs = p.consumer_pairs(j)
    expected = p.expected()
    want = {pair: expected[pair] for pair in pairs}
    if group:
        for s in range(p.streams):
            routes.call("metadata", "join_group", p.stream_name(s), "t", "bench-group")
    offsets = dict.fromkeys(pairs, 0)
    e2e = p.mode == "end-to-end"
    lat: list[float] = []
    e2e_lat: list[float] = []
    n = nbytes = 0
    per_msg = p.message_size
    _wait_go(go, ready)
    start = time.perf_counter()
    idle = 0
    while True:
        if stop_at.value and time.time() >= stop_at.value + (1.0 if group else 0.0):
            break
        if group:
            if counters[-1] >= sum(expected.values()) and not stop_at.value:
                break
            s = n // p.messages_per_batch % p.streams if p.streams > 1 else 0
            t0 = time.perf_counter()
            reply: int | memoryview
            got, reply = routes.call("metadata", "poll_group", p.stream_name(s), "t",
                                     "bench-group", p.messages_per_batch)
        else:
            open_pairs = [x for x in pairs if offsets[x] < want[x] or stop_at.value]
            if not open_pairs:
                break
            pair = open_pairs[n // p.messages_per_batch % len(open_pairs)]
            t0 = time.perf_counter()
            got, reply = routes.call(pair, "poll", p.stream_name(pair[0]), "t", pair[1],
                                     offsets[pair], p.messages_per_batch, e2e)
            offsets[pair] += got
        if got:
            t1 = time.perf_counter()
            lat.append((t1 - t0) * 1e6)
            if e2e and not isinstance(reply, int):
                origin = _U64.unpack_from(reply, 16 + 24)[0]
                e2e_lat.append(time.time_ns() / 1000 - origin)
            n += got
            nbytes += got * per_msg
            counters[slot] = n
            if group:
                with counters.get_lock():
                    counters[-1] += got
            idle = 0
        else:
            idle += 1
            if idle > 2:
                time.sleep(0.0005)
    results.put(("consumer", j, n, nbytes, start, time.perf_counter(), lat, e2e_lat))
    routes.close()


# --- Kafka (librdkafka through confluent-kafka) ----------------------------------------------

def kafka_setup(p: Params) -> None:
    if p.native_address:  # pyggy: create the topics on its native door (topic options)
        native_setup(p)
        p.extra["kafka_topics"] = {s: f"{p.stream_name(s)}.t" for s in range(p.streams)}
        return
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_bootstrap(p)})
    if p.cluster:  # every broker of the cluster, from Metadata
        brokers = admin.list_topics(timeout=30).brokers.values()
        p.nodes = tuple(sorted(f"{b.host}:{b.port}" for b in brokers))
    config = {"flush.messages": "1"} if p.fsync else {}
    if p.min_insync_replicas:
        config["min.insync.replicas"] = str(p.min_insync_replicas)
    topics = [NewTopic(p.stream_name(s), p.partitions, p.replication_factor, config=config)
              for s in range(p.streams)]
    for f in admin.create_topics(topics, operation_timeout=30).values():
        f.result()
    # wait until the metadata shows every partition with a leader (and, when replication was
    # asked for, that many replicas in sync: acks=all then waits for real copies)
    rf = p.replication_factor
    deadline = time.time() + 30
    while time.time() < deadline:
        md = admin.list_topics(timeout=10)
        ok = all(p.stream_name(s) in md.topics
                 and len(md.topics[p.stream_name(s)].partitions) == p.partitions
                 and all(x.leader >= 0 and (rf <= 1 or len(x.isrs) >= rf)
                         for x in md.topics[p.stream_name(s)].partitions.values())
                 for s in range(p.streams))
        if ok:
            return
        time.sleep(0.1)
    if rf > 1:
        raise RuntimeError(f"topics of {kafka_bootstrap(p)} have no leader or fewer than {rf} "
                           "replicas in sync after 30 s")


def kafka_bootstrap(p: Params) -> str:
    """bootstrap.servers: every known node (a Kafka client then follows each partition's
    leader from Metadata by itself)."""
    return ",".join(p.node_addresses())


def _kafka_topic(p: Params, s: int) -> str:
    # pyggy topics made on the native door are `<stream>.<topic>` on its Kafka door
    return p.extra.get("kafka_topics", {}).get(s, p.stream_name(s))


def kafka_producer(p: Params, i: int, counters: Counters, go: Event, ready: Semaphore,
                   results: Results, stop_at: SharedFloat) -> None:
    from confluent_kafka import Producer

    batch_bytes = p.message_size * p.messages_per_batch
    prod = Producer({
        "bootstrap.servers": kafka_bootstrap(p), "acks": p.acks, "linger.ms": p.kafka_linger_ms,
        "batch.num.messages": p.messages_per_batch,
        "batch.size": max(batch_bytes + 4096, 16384),
        "message.max.bytes": max(batch_bytes + 65536, 1_000_000),
        "queue.buffering.max.kbytes": 262144, "compression.type": "none",
        "enable.idempotence": False,
    })
    topic = _kafka_topic(p, i % p.streams)
    payload = _payload(p.message_size)
    e2e = p.mode == "end-to-end"
    lat: list[float] = []
    acked = [0]

    def report(t0: float, count: int) -> Callable[[object, object], None]:
        def cb(err: object, msg: object) -> None:
            if err is None:
                lat.append((time.perf_counter() - t0) * 1e6)
                acked[0] += count
        return cb

    n = nbytes = 0
    _wait_go(go, ready)
    start = time.perf_counter()
    b = 0
    produce = prod.produce
    last = p.messages_per_batch - 1
    while True:
        if stop_at.value:
            if time.time() >= stop_at.value:
                break
        elif b >= p.batches_per_producer:
            break
        part = b % p.partitions
        t0 = time.perf_counter()
        if e2e:  # one value per batch, carrying the send time
            payload = _U64.pack(time.time_ns() // 1000) + payload[8:]
        for k in range(p.messages_per_batch):
            while True:
                try:
                    if k == last:
                        produce(topic, payload, partition=part, on_delivery=report(t0, k + 1))
                    else:
                        produce(topic, payload, partition=part)
                    break
                except BufferError:
                    prod.poll(0.01)
        prod.poll(0)
        n += p.messages_per_batch
        nbytes += batch_bytes
        counters[i] = acked[0]
        b += 1
    while prod.flush(0.1):
        counters[i] = acked[0]
    counters[i] = acked[0]
    results.put(("producer", i, n, nbytes, start, time.perf_counter(), lat))


def kafka_consumer(p: Params, j: int, slot: int, counters: Counters, go: Event,
                   ready: Semaphore, results: Results, stop_at: SharedFloat) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    group = p.mode == "consumer-group"
    cons = Consumer({
        "bootstrap.servers": kafka_bootstrap(p), "group.id": f"{p.prefix}-group" if group
        else f"{p.prefix}-c{j}", "enable.auto.commit": group, "auto.offset.reset": "earliest",
        "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760,
        "fetch.wait.max.ms": 100, "queued.min.messages": 200000,
        "enable.partition.eof": False,
    })
    expected = p.expected()
    if group:
        cons.subscribe([_kafka_topic(p, s) for s in range(p.streams)])
        want = sum(expected.values())
    else:
        pairs = p.consumer_pairs(j)
        cons.assign([TopicPartition(_kafka_topic(p, s), part, OFFSET_BEGINNING)
                     for s, part in pairs])
        want = sum(expected[x] for x in pairs)
    e2e = p.mode == "end-to-end"
    every = p.messages_per_batch
    lat: list[float] = []
    e2e_lat: list[float] = []
    n = nbytes = 0
    if group:  # join before the clock starts
        deadline = time.time() + 30
        while not cons.assignment() and time.time() < deadline:
            cons.poll(0.1)
    _wait_go(go, ready)
    start = time.perf_counter()
    while True:
        if stop_at.value:
            if time.time() >= stop_at.value + (1.0 if group else 0.0):
                break
        elif (counters[-1] if group else n) >= want:
            break
        t0 = time.perf_counter()
        msgs = cons.consume(num_messages=p.messages_per_batch, timeout=0.1)
        if not msgs:
            continue
        lat.append((time.perf_counter() - t0) * 1e6)
        got = 0
        for m in msgs:
            if m.error() is None:
                got += 1
        if e2e:
            now = time.time_ns() / 1000
            for k in range(0, len(msgs), every):
                v = msgs[k].value()
                if v:
                    e2e_lat.append(now - _U64.unpack_from(v, 0)[0])
        n += got
        nbytes += got * p.message_size
        counters[slot] = n
        if group:
            with counters.get_lock():
                counters[-1] += got
    cons.close()
    results.put(("consumer", j, n, nbytes, start, time.perf_counter(), lat, e2e_lat))
