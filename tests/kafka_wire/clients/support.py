"""Shared helpers for the real-Kafka-client tests (kafka-python, aiokafka, confluent-kafka,
kcat, kafkajs) against a pyggy server subprocess.

- `make_records`: a deterministic workload with null keys, tombstones (null values), empty and
  binary values, binary and repeated headers;
- `check_round_trip`: what the consumed records must satisfy given what the producer's
  acknowledgements said (count, no duplicates, byte-exact key/value/headers, per-partition
  order, offsets contiguous from 0, same key → same partition);
- `RawKafka`: a blocking Kafka client built on `kafka_wire.protocol`, for requests the real
  clients cannot be made to send (a retried duplicate Produce batch);
- `iggy_poll` / `iggy_send`: the other door, through the apache-iggy 0.9.0 SDK;
- `api_versions_used`: the (api, version) pairs a client picked, from the server's debug log.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pyggy.testing import PyggyServer

PARTITIONS = 3
Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class Rec:
    """A record as produced: what the consumer must give back byte for byte."""

    key: bytes | None
    value: bytes | None
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class Got:
    """A record as consumed (or as acknowledged, with key/value/headers of the sent record)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int = -1


def make_records(n: int, *, null_header_values: bool = True) -> list[Rec]:
    """`n` records covering the awkward cases, the same for every client.

    Keys repeat (97 distinct, some binary) so same-key → same-partition is checked; every 10th
    key is null. Every 13th value (with a key) is null (a tombstone), every 17th empty, the
    rest binary of varying length. Headers: none, binary values, repeated keys, empty values
    and (unless the client cannot send them) null values.
    """
    out = []
    for i in range(n):
        if i % 10 == 0:
            key = None
        elif i % 3 == 0:
            key = bytes([i % 97, 0, 255]) + b"\x80key"  # not UTF-8
        else:
            key = b"key-%d" % (i % 97)
        if i % 13 == 0 and key is not None:  # clients refuse a record with neither
            value = None
        elif i % 17 == 0:
            value = b""
        else:
            value = b"value-%d:" % i + bytes(range(i % 256)) + b"\x00\xff" * (i % 7)
        headers: list[tuple[str, bytes | None]] = []
        if i % 4:
            headers.append(("seq", b"%d" % i))
            headers.append(("bin", bytes([0, 255, i % 256])))
        if i % 7 == 0:
            headers += [("rep", b"first"), ("rep", b"second"), ("rep", b"first")]
        if i % 11 == 0:
            headers.append(("empty", b""))
        if null_header_values and i % 19 == 0:
            headers.append(("null", None))
        out.append(Rec(key, value, tuple(headers)))
    return out


def check_round_trip(sent: Sequence[Rec], acks: Sequence[tuple[int, int]],
                     got: Iterable[Got], *, partitions: int = PARTITIONS) -> None:
    """`acks[i]` = (partition, offset) the producer was told for `sent[i]`; `got` = every
    record consumed from the (fresh) topic. Raises AssertionError with a precise reason."""
    got = list(got)
    assert len(acks) == len(sent), f"{len(acks)} acks for {len(sent)} records"
    assert len(got) == len(sent), f"consumed {len(got)} records, produced {len(sent)}"
    by_position = {}
    for g in got:
        assert (g.partition, g.offset) not in by_position, f"duplicate {g.partition}/{g.offset}"
        by_position[g.partition, g.offset] = g
    per_partition: dict[int, list[int]] = defaultdict(list)
    key_partition: dict[bytes, int] = {}
    for i, (rec, (partition, offset)) in enumerate(zip(sent, acks, strict=True)):
        assert 0 <= partition < partitions, f"record {i}: partition {partition}"
        g = by_position.get((partition, offset))
        assert g is not None, f"record {i} acked at {partition}/{offset} was not consumed"
        assert g.key == rec.key, f"record {i}: key {g.key!r} != {rec.key!r}"
        assert g.value == rec.value, f"record {i}: value {g.value!r:.80} != {rec.value!r:.80}"
        assert g.headers == rec.headers, f"record {i}: headers {g.headers} != {rec.headers}"
        per_partition[partition].append(offset)
        if rec.key is not None:
            first = key_partition.setdefault(rec.key, partition)
            assert first == partition, f"key {rec.key!r} in partitions {first} and {partition}"
    for partition, offsets in per_partition.items():
        assert offsets == list(range(len(offsets))), (
            f"partition {partition}: offsets not contiguous from 0 in produce order: "
            f"{_first_break(offsets)}")


def _first_break(offsets: list[int]) -> str:
    for i, o in enumerate(offsets):
        if o != i:
            return f"position {i} has offset {o} (…{offsets[max(0, i - 3):i + 3]}…)"
    return "ok"


def normalize_headers(headers) -> Headers:
    """Headers as the clients return them (None, list of tuples, tuple of tuples)."""
    return tuple((k if isinstance(k, str) else k.decode(), None if v is None else bytes(v))
                 for k, v in headers or ())


# --- the server's debug log: API versions per client ---------------------------------------
_USES = re.compile(r"kafka client (?P<client>'[^']*'|None) from \S+ uses (?P<api>\w+) "
                   r"v(?P<version>\d+)")


def api_versions_used(server: PyggyServer) -> dict[str, dict[str, list[int]]]:
    """{client id: {api name: sorted versions}} (needs the server's `--log-level debug`)."""
    used: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for line in list(server.logs):
        m = _USES.search(line)
        if m:
            used[m["client"].strip("'")][m["api"]].add(int(m["version"]))
    return {client: {api: sorted(v) for api, v in sorted(apis.items())}
            for client, apis in sorted(used.items())}


def log_api_versions(server: PyggyServer) -> dict[str, dict[str, list[int]]]:
    """Print (pytest -s, or on failure) the API versions each client id used."""
    used = api_versions_used(server)
    for client, apis in used.items():
        print(f"API versions used by {client}: " + ", ".join(
            f"{api} v{'/'.join(map(str, v))}" for api, v in apis.items()))
    return used


# --- a raw Kafka client over kafka_wire.protocol -------------------------------------------
class RawKafka:
    """One blocking connection; `call(api_key, version, body)` → decoded response body."""

    def __init__(self, address: str, client_id: str = "pyggy-raw") -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.client_id = client_id
        self.correlation = 0

    def call(self, api_key: int, version: int, body: dict) -> dict:
        from pyggy.kafka_wire.protocol import decode_response, parse_response_header, request_frame

        self.correlation += 1
        self.sock.sendall(request_frame(api_key, version, self.correlation, self.client_id,
                                        body))
        size = struct.unpack(">i", self._read(4))[0]
        frame = self._read(size)
        correlation, pos = parse_response_header(frame, api_key, version)
        assert correlation == self.correlation
        return decode_response(api_key, version, frame[pos:])

    def _read(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawKafka:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def metadata(raw: RawKafka, topic: str) -> dict:
    """Metadata v4 of one topic, auto-creating it (as clients do before producing)."""
    response = raw.call(3, 4, {"topics": [{"name": topic}], "allow_auto_topic_creation": True})
    return response["topics"][0]


def produce_batch(raw: RawKafka, topic: str, partition: int, batch: bytes,
                  version: int = 9) -> dict:
    """One Produce (acks=all) of one partition → that partition's response entry."""
    response = raw.call(0, version, {
        "transactional_id": None, "acks": -1, "timeout_ms": 10_000,
        "topic_data": [{"name": topic, "partition_data": [
            {"index": partition, "records": batch}]}]})
    return response["responses"][0]["partition_responses"][0]


# --- the Iggy door -------------------------------------------------------------------------
def iggy_poll(server: PyggyServer, stream: str, topic: str, partition: int,
              count: int = 100_000) -> list:
    """Every message of a partition from offset 0, as apache-iggy 0.9.0 ReceiveMessages."""
    from apache_iggy import Consumer, IggyClient, PollingStrategy

    async def run() -> list:
        client = IggyClient(server.tcp_address)
        await client.connect()
        await client.login_user("iggy", "iggy")
        out: list = []
        while len(out) < count:
            batch = await client.poll_messages(
                stream, topic, partition_id=partition, consumer=Consumer.Single(1),
                polling_strategy=PollingStrategy.Offset(len(out)), count=1000, auto_commit=False)
            if not batch:
                break
            out += batch
        return out

    return asyncio.run(run())


def iggy_send(server: PyggyServer, stream: str, topic: str, partition: int,
              messages: list) -> None:
    """Send apache-iggy SendMessages to one partition."""
    from apache_iggy import IggyClient, Partitioning

    async def run() -> None:
        client = IggyClient(server.tcp_address)
        await client.connect()
        await client.login_user("iggy", "iggy")
        await client.send_messages(stream, topic, Partitioning.partition_id(partition), messages)

    asyncio.run(run())


def iggy_headers(message) -> dict:
    """A ReceiveMessage's user headers as {key: HeaderValue}, String keys as `str`."""
    return {k.value if "String(" in repr(k) else k: v
            for k, v in (message.user_headers() or {}).items()}


def fetch_raw(raw: RawKafka, topic: str, partition: int, offset: int = 0,
              max_bytes: int = 64 << 20) -> dict:
    """One Fetch v11 of one partition → that partition's response entry (records as bytes)."""
    response = raw.call(1, 11, {
        "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": max_bytes,
        "isolation_level": 0, "session_id": 0, "session_epoch": -1,
        "topics": [{"topic": topic, "partitions": [{
            "partition": partition, "current_leader_epoch": -1, "fetch_offset": offset,
            "log_start_offset": -1, "partition_max_bytes": max_bytes}]}],
        "forgotten_topics_data": [], "rack_id": ""})
    return response["responses"][0]["partitions"][0]


def stored_batches(server: PyggyServer, topic: str, partition: int) -> list[tuple[int, int]]:
    """(base offset, attributes) of every batch a Kafka fetch of the partition returns."""
    from pyggy.core.records import kafka_batch

    out = []
    with RawKafka(server.kafka_address) as raw:
        offset = 0
        while True:
            data = fetch_raw(raw, topic, partition, offset)["records"] or b""
            if not data:
                return out
            for a, b in kafka_batch.split_batches(memoryview(data)):
                fields = kafka_batch.batch_fields(memoryview(data)[a:b])
                out.append((fields[0], fields[5]))
                offset = fields[0] + fields[6] + 1


def stored_codecs(server: PyggyServer, topic: str, partition: int) -> set[str]:
    """The compression codecs of the partition's batches, as a consumer receives them."""
    from pyggy.core.records.compression import CODEC_NAMES

    return {CODEC_NAMES[attrs & 7] for _, attrs in stored_batches(server, topic, partition)}


# --- a proxy that loses Produce responses: real producer retries ---------------------------
class LosingProxy:
    """A TCP proxy in front of the Kafka door that, for the first `drops` Produce responses,
    closes the client's connection instead of delivering them: the batch is stored, the
    producer never hears so and sends it again (an idempotent producer with the same
    sequence numbers, which must get the original offsets back).

    The server must advertise the proxy's port (`[kafka] advertised_port`), or clients go
    around it after their first Metadata.
    """

    def __init__(self, drops: int = 1) -> None:
        self.drops = drops
        self.dropped: list[int] = []  # correlation ids of the lost responses
        self.upstream: tuple[str, int] | None = None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            assert self.upstream is not None
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [client, server]
            apis: dict[int, int] = {}
            threading.Thread(target=self._requests, args=(client, server, apis),
                             daemon=True).start()
            threading.Thread(target=self._responses, args=(server, client, apis),
                             daemon=True).start()

    @staticmethod
    def _frames(sock: socket.socket):
        buf = bytearray()
        while True:
            while len(buf) < 4 or len(buf) < 4 + struct.unpack_from(">i", buf)[0]:
                chunk = sock.recv(1 << 16)
                if not chunk:
                    return
                buf += chunk
            end = 4 + struct.unpack_from(">i", buf)[0]
            yield bytes(buf[:end])
            del buf[:end]

    def _requests(self, client: socket.socket, server: socket.socket,
                  apis: dict[int, int]) -> None:
        try:
            for frame in self._frames(client):
                api_key, _version, correlation = struct.unpack_from(">hhi", frame, 4)
                apis[correlation] = api_key
                server.sendall(frame)
        except OSError:
            pass
        self._close_pair(client, server)

    def _responses(self, server: socket.socket, client: socket.socket,
                   apis: dict[int, int]) -> None:
        try:
            for frame in self._frames(server):
                correlation = struct.unpack_from(">i", frame, 4)[0]
                with self.lock:
                    lose = apis.pop(correlation, None) == 0 and self.drops > 0
                    if lose:
                        self.drops -= 1
                        self.dropped.append(correlation)
                if lose:
                    break
                client.sendall(frame)
        except OSError:
            pass
        self._close_pair(client, server)

    @staticmethod
    def _close_pair(*socks: socket.socket) -> None:
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        with self.lock:
            self._close_pair(*self.sockets)


def check_iggy_view(server: PyggyServer, topic: str, sent: Sequence[Rec],
                    acks: Sequence[tuple[int, int]], partition: int) -> int:
    """What the Iggy door shows of Kafka-produced records (core/records/transcode.py):
    same offsets; payload = value (a null or empty value is the payload 00 with header
    `kafka.value` = null/empty); `kafka.key` = key; plain headers as they are. Returns the
    number of messages checked."""
    expected = {offset: rec for rec, (p, offset) in zip(sent, acks, strict=True)
                if p == partition}
    messages = iggy_poll(server, "kafka", topic, partition)
    assert [m.offset() for m in messages] == sorted(expected)
    for m in messages:
        rec = expected[m.offset()]
        heads = {k: v.value for k, v in iggy_headers(m).items()}
        if rec.value:
            assert m.payload() == rec.value, m.offset()
            assert "kafka.value" not in heads
        else:
            assert m.payload() == b"\x00"
            assert heads["kafka.value"] == ("null" if rec.value is None else "empty")
        if rec.key is not None and 0 < len(rec.key) <= 255:
            assert heads["kafka.key"] == rec.key, m.offset()
        else:
            assert "kafka.key" not in heads
        names = [k for k, _ in rec.headers]
        exact = any(v is None or not v or names.count(k) > 1 for k, v in rec.headers)
        assert ("kafka.exact.0" in heads) == exact, (m.offset(), rec.headers, heads)
        for k, v in rec.headers:
            if v and names.count(k) == 1:
                assert heads[k] == v
    return len(messages)
