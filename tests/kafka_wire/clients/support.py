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
        from kafka_wire.protocol import decode_response, parse_response_header, request_frame

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
