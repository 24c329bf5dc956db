"""Bad input on the Kafka port: every registered API and version fuzzed, bad frames, bad batches.

Against a real server subprocess. The server must answer with the API's error code or close
that one connection — never crash, hang or grow without bound — while a bystander connection
keeps being served, and records acknowledged before the run must come back intact after it.
(Named apart from tests/native_wire/test_bad_input.py: test modules share one namespace.)
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import time
import zlib
from pathlib import Path

import cramjam
import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyggy.core.records import kafka_batch
from pyggy.kafka_wire.protocol import (
    MAX_REQUEST_ELEMENTS,
    ErrorCode,
    KafkaDecodeError,
    decode_request,
    decode_response,
    encode_request,
    encode_request_header,
    parse_response_header,
    request_frame,
)
from pyggy.kafka_wire.protocol.schemas import by_api_key
from pyggy.kafka_wire.registry import REGISTRY

from pyggy.native_client import NativeClient
from pyggy.testing import PyggyServer

sys.path.insert(0, str(Path(__file__).parent / "protocol"))
from strategies import message_strategy  # noqa: E402

PRODUCE, FETCH, LIST_OFFSETS, METADATA, API_VERSIONS = 0, 1, 2, 3, 18
JOIN_GROUP, SYNC_GROUP = 11, 14  # answered when the rebalance gets there
# SASL: a refused handshake or authentication is answered, then the connection closed (as
# Kafka does); after a v0 handshake the next frame is a bare token, so the probe closes it too
SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36
MAX_FRAME = 100 * 1024 * 1024  # [kafka] max_frame_size default
MAX_MESSAGE_BYTES = 1_048_588  # max.message.bytes default
KEEP = "acknowledged-before-fuzz"  # longer than any topic name the strategies generate
TARGET = "corrupt-batches-target"
PARKING = "always-empty-topic"
REPLY_TIMEOUT = 10.0
_SIZE = struct.Struct(">i")
CASES = [(key, v) for key, api in sorted(REGISTRY.items())
         for v in range(api.min_version, api.max_version + 1)]
CASE_IDS = [f"{REGISTRY[k].name}-v{v}" for k, v in CASES]
EXAMPLES = int(os.environ.get("PYGGY_KAFKA_FUZZ_EXAMPLES", "6"))  # per API version and test
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                database=None)


class Closed(Exception):
    """The server closed the connection."""


class RawKafka:
    """A minimal Kafka client over a socket, built on the codec."""

    def __init__(self, port: int, timeout: float = REPLY_TIMEOUT) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.corr = 0

    def close(self) -> None:
        self.sock.close()

    def next_corr(self) -> int:
        self.corr += 1
        return self.corr

    def send(self, key: int, version: int, value: dict) -> int:
        corr = self.next_corr()
        self.sock.sendall(request_frame(key, version, corr, "bad-input", value))
        return corr

    def send_body(self, key: int, version: int, body: bytes) -> int:
        """A request with a correct header and an arbitrary body."""
        corr = self.next_corr()
        head = encode_request_header(key, version, corr, "bad-input")
        self.sock.sendall(_SIZE.pack(len(head) + len(body)) + head + body)
        return corr

    def _exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            try:
                chunk = self.sock.recv(n - len(out))
            except TimeoutError:
                raise
            except OSError as e:  # reset
                raise Closed(str(e)) from None
            if not chunk:
                raise Closed("EOF")
            out += chunk
        return bytes(out)

    def recv_frame(self) -> bytes:
        size = _SIZE.unpack(self._exact(4))[0]
        assert 0 <= size < 256 * 1024 * 1024, size
        return self._exact(size)

    def recv(self, key: int, version: int, corr: int) -> dict:
        frame = self.recv_frame()
        got, pos = parse_response_header(frame, key, version)
        assert got == corr, f"response for correlation id {got}, expected {corr}"
        if key == API_VERSIONS and len(frame) >= pos + 2 and frame[pos:pos + 2] == b"\x00\x23":
            version = 0  # UNSUPPORTED_VERSION is answered with a v0 body
        return decode_response(key, version, memoryview(frame)[pos:], strict=True)

    def call(self, key: int, version: int, value: dict) -> dict:
        return self.recv(key, version, self.send(key, version, value))

    def assert_eof(self, within: float = 5.0) -> None:
        """The server closes without answering (anything it sends first fails the test)."""
        self.sock.settimeout(within)
        try:
            data = self.sock.recv(1)
        except TimeoutError:
            raise AssertionError(f"connection still open after {within} s") from None
        except OSError:
            return
        assert data == b"", f"expected EOF, got {data!r}"


def produce(c: RawKafka, topic: str, batches: list[tuple[int, bytes | None]], *,
            version: int = 9, acks: int = -1) -> list[dict]:
    """One Produce request, (partition, records) per entry; the partition responses."""
    resp = c.call(PRODUCE, version, {
        "transactional_id": None, "acks": acks, "timeout_ms": 5000,
        "topic_data": [{"name": topic, "partition_data": [
            {"index": p, "records": r} for p, r in batches]}]})
    return resp["responses"][0]["partition_responses"]


def fetch(c: RawKafka, topic: str, offset: int = 0, partition: int = 0) -> tuple[int, bytes]:
    """(high watermark, records bytes) of one partition, without waiting."""
    resp = c.call(FETCH, 12, {
        "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 64 << 20, "isolation_level": 0,
        "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
        "topics": [{"topic": topic, "partitions": [
            {"partition": partition, "fetch_offset": offset, "partition_max_bytes": 64 << 20,
             "current_leader_epoch": -1, "last_fetched_epoch": -1, "log_start_offset": -1}]}]})
    p = resp["responses"][0]["partitions"][0]
    assert p["error_code"] == 0, p
    return p["high_watermark"], bytes(p["records"] or b"")


def metadata(c: RawKafka, topics: list[str], version: int = 12) -> dict:
    return c.call(METADATA, version, {
        "topics": [{"name": t, "topic_id": None} for t in topics],
        "allow_auto_topic_creation": True, "include_topic_authorized_operations": False})


def api_versions(c: RawKafka, version: int = 3) -> dict:
    return c.call(API_VERSIONS, version, {"client_software_name": "bad-input",
                                          "client_software_version": "1"})


def batch(*values: bytes, compression: int = 0, **kw) -> bytearray:
    return kafka_batch.build_batch([(1_700_000_000_000 + i, b"k%d" % i, v, [("h", b"x")])
                                    for i, v in enumerate(values)], compression=compression,
                                   **kw)


def recrc(b: bytearray) -> bytearray:
    struct.pack_into(">I", b, kafka_batch.CRC_OFFSET,
                     crc32c(memoryview(b)[kafka_batch.ATTRIBUTES_OFFSET:]))
    return b


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


# --- fixtures ------------------------------------------------------------------------------

SEEDED = [batch(b"first", b"second"), batch(b"third" * 50, compression=1),
          batch(b"fourth", b"fifth", b"sixth", compression=3)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = PyggyServer(tmp_path_factory.mktemp("kafka-fuzz")).start()
    srv.wait_for_log("kafka listening on")
    c = RawKafka(srv.kafka_port)
    topics = metadata(c, [KEEP, TARGET, PARKING, "valid-crc-fuzz"])["topics"]
    assert [t["error_code"] for t in topics] == [0, 0, 0, 0], topics
    for b in SEEDED:
        (p,) = produce(c, KEEP, [(0, bytes(b))], acks=-1)
        assert p["error_code"] == 0, p
    c.close()
    yield srv
    assert srv.running, "the server died during the fuzz run"
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def bystander(server: PyggyServer):
    """A second client that must stay served whatever the fuzzed clients send."""
    c = RawKafka(server.kafka_port)
    yield c
    c.close()


def assert_served(bystander: RawKafka) -> None:
    keys = {k["api_key"]: (k["min_version"], k["max_version"])
            for k in api_versions(bystander)["api_keys"]}
    assert keys[METADATA] == (REGISTRY[METADATA].min_version, REGISTRY[METADATA].max_version)
    topics = metadata(bystander, [KEEP], version=1)["topics"]
    assert topics[0]["error_code"] == 0 and topics[0]["name"] == KEEP


def exchange(server: PyggyServer, key: int, version: int, body: bytes) -> str:
    """Send one request (then an ApiVersions probe) on a new connection.

    'reply': the request was answered (or, for acks=0, not) and the probe too; 'closed': the
    server closed the connection, possibly after answering; 'parked': a long poll that may
    legitimately still be waiting (a Fetch with its max_wait_ms over 1 s, a JoinGroup or a
    SyncGroup waiting for its rebalance). A reply with the wrong correlation id, one that does
    not decode, or silence is a failure.
    """
    c = RawKafka(server.kafka_port)
    try:
        corr = c.send_body(key, version, body)
        probe = c.send(API_VERSIONS, 0, {})
        wait = REPLY_TIMEOUT
        try:
            request = decode_request(key, version, body)
        except KafkaDecodeError:
            request = None
        silent = key == PRODUCE and request is not None and request["acks"] == 0
        if key == FETCH and request is not None and request["max_wait_ms"] > 1000:
            wait = 1.5
        elif key in (JOIN_GROUP, SYNC_GROUP) and request is not None:
            wait = 1.5
        c.sock.settimeout(wait)
        try:
            if not silent:
                c.recv(key, version, corr)
            c.recv(API_VERSIONS, 0, probe)
        except Closed:
            return "closed"
        except TimeoutError:
            if wait < REPLY_TIMEOUT:
                return "parked"
            raise AssertionError(f"api {key} v{version}: neither answered nor closed "
                                 f"within {wait} s") from None
        return "reply"
    finally:
        c.close()


# --- fuzzed requests for every registered API and version -------------------------------


@pytest.mark.parametrize(("key", "version"), CASES, ids=CASE_IDS)
@FUZZ
@given(body=st.binary(max_size=300))
def test_random_bodies(server, bystander, key: int, version: int, body: bytes) -> None:
    assert exchange(server, key, version, body) in ("reply", "closed", "parked")
    assert_served(bystander)


@pytest.mark.parametrize(("key", "version"), CASES, ids=CASE_IDS)
@FUZZ
@given(data=st.data())
def test_valid_encodings_intact_truncated_or_flipped(server, bystander, key: int,
                                                     version: int, data) -> None:
    value = data.draw(message_strategy(by_api_key()[key][0], version), label="request")
    raw = bytearray(encode_request(key, version, value))
    how = data.draw(st.sampled_from(["intact", "truncated", "flipped"]), label="how")
    if how == "truncated":
        del raw[data.draw(st.integers(0, max(len(raw) - 1, 0)), label="cut"):]
    elif how == "flipped" and raw:
        for _ in range(data.draw(st.integers(1, 4), label="flips")):
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at] ^= data.draw(st.integers(1, 255))
    outcome = exchange(server, key, version, bytes(raw))
    if how == "intact" and not (key == PRODUCE and value["acks"] == 0) \
            and key not in (SASL_HANDSHAKE, SASL_AUTHENTICATE):
        # (a failed acks=0 produce is answered by closing the connection)
        assert outcome in ("reply", "parked"), "a valid request closed the connection"
    else:
        assert outcome in ("reply", "closed", "parked")
    assert_served(bystander)


# --- framing ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck),
          database=None)
@given(pieces=st.lists(st.binary(min_size=1, max_size=300) | st.sampled_from([
    request_frame(API_VERSIONS, 3, 1, "g", {"client_software_name": "g",
                                            "client_software_version": "1"}),
    request_frame(METADATA, 12, 2, None, {"topics": [{"name": KEEP}]}),
    _SIZE.pack(20) + encode_request_header(METADATA, 12, 3, "g")]), min_size=1, max_size=6))
def test_garbage_streams_close_only_that_connection(server, bystander,
                                                    pieces: list[bytes]) -> None:
    """Random bytes, alone or around valid (or cut) frames; then the client half-closes."""
    s = socket.create_connection(("127.0.0.1", server.kafka_port), timeout=REPLY_TIMEOUT)
    try:
        s.sendall(b"".join(pieces))
        s.shutdown(socket.SHUT_WR)
        try:
            while s.recv(65536):
                pass
        except TimeoutError:
            raise AssertionError("the server kept a half-closed garbage connection") from None
        except OSError:
            pass
    finally:
        s.close()
    assert_served(bystander)


@pytest.mark.parametrize("size", [-1, -(2**31), MAX_FRAME + 1, 2**31 - 1],
                         ids=["minus-one", "int32-min", "max-plus-one", "int32-max"])
def test_bad_size_prefix_closes_before_any_body(server, bystander, size: int) -> None:
    c = RawKafka(server.kafka_port)
    c.sock.sendall(_SIZE.pack(size))  # only the 4 bytes: the server must not wait for more
    c.assert_eof(within=5.0)
    c.close()
    assert_served(bystander)


@pytest.mark.parametrize("sent", [0, 3, 12, 40])
def test_truncated_frame_then_client_closes(server, bystander, sent: int) -> None:
    body = request_frame(METADATA, 1, 7, "trunc", {"topics": [{"name": KEEP}]})[4:]
    c = RawKafka(server.kafka_port)
    c.sock.sendall(_SIZE.pack(len(body) + 100) + body[:sent])
    time.sleep(0.05)
    c.close()
    assert_served(bystander)


def test_large_declared_frames_do_not_allocate_up_front(server, bystander) -> None:
    """Frames that declare (almost) the maximum but send little cost little memory."""
    before = rss_kib(server.pid)
    conns = []
    for _ in range(8):
        c = RawKafka(server.kafka_port)
        c.sock.sendall(_SIZE.pack(MAX_FRAME) + encode_request_header(PRODUCE, 9, 1, "big")
                       + bytes(300_000))
        conns.append(c)
    time.sleep(0.5)
    assert_served(bystander)
    grown = rss_kib(server.pid) - before
    for c in conns:
        c.close()
    assert grown < 64 * 1024, f"RSS grew by {grown} KiB for 8 declared-100-MiB frames"
    assert_served(bystander)


def test_requests_unfolding_into_millions_of_objects_are_refused(server, bystander) -> None:
    """A 10 MB Metadata request of 5 million empty topic names fits its bytes but would be
    5 million dicts (GBs, and a minute of one core): the decoder's element cap closes that
    connection at once; a request just under the cap is answered."""
    head = encode_request_header(METADATA, 1, 1, "unfold")
    before = rss_kib(server.pid)
    for n in (5_000_000, MAX_REQUEST_ELEMENTS + 1):
        body = struct.pack(">i", n) + b"\x00\x00" * n
        c = RawKafka(server.kafka_port)
        started = time.monotonic()
        c.sock.sendall(_SIZE.pack(len(head) + len(body)) + head + body)
        c.assert_eof(within=5.0)
        assert time.monotonic() - started < 5.0
        c.close()
        assert_served(bystander)
    assert rss_kib(server.pid) - before < 200 * 1024
    n = MAX_REQUEST_ELEMENTS
    c = RawKafka(server.kafka_port)
    c.sock.sendall(_SIZE.pack(len(head) + 4 + 2 * n) + head + struct.pack(">i", n)
                   + b"\x00\x00" * n)
    topics = c.recv(METADATA, 1, 1)["topics"]
    assert len(topics) == n and all(t["error_code"] == ErrorCode.INVALID_TOPIC_EXCEPTION
                                    for t in topics[:10])
    c.close()
    assert_served(bystander)


def test_parked_fetches_of_clients_that_left_are_dropped(server, bystander) -> None:
    """A long poll naming one partition 40 000 times, from a client that then goes away,
    neither stalls the server nor stays in memory until its max_wait_ms (24 days)."""
    parts = [{"partition": 0, "fetch_offset": 0, "partition_max_bytes": 1024,
              "current_leader_epoch": -1, "last_fetched_epoch": -1,
              "log_start_offset": -1}] * 40_000
    request = {"max_wait_ms": 2**31 - 1, "min_bytes": 1, "max_bytes": 1 << 20,
               "isolation_level": 0, "session_id": 0, "session_epoch": -1,
               "forgotten_topics_data": [], "rack_id": "",
               "topics": [{"topic": PARKING, "partitions": parts}]}
    before = rss_kib(server.pid)
    for _ in range(6):
        c = RawKafka(server.kafka_port)
        c.send(FETCH, 12, request)
        time.sleep(0.4)  # read, decoded, answered once (empty) and parked
        c.close()
        assert_served(bystander)
    grown = rss_kib(server.pid) - before
    assert grown < 100 * 1024, f"RSS grew by {grown} KiB: parked fetches were kept"
    hw, data = fetch(bystander, PARKING)
    assert (hw, data) == (0, b"")


def test_a_partition_named_many_times_is_looked_up_once(server, bystander) -> None:
    """ListOffsets max-timestamp reads a whole partition: ~100 000 mentions of it in one
    request (as many as a request may hold) must not mean 100 000 scans (that stalled every
    connection for ~20 s)."""
    parts = [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -3}] * (
        MAX_REQUEST_ELEMENTS - 1)  # + the topic
    c = RawKafka(server.kafka_port, timeout=60)
    try:
        started = time.monotonic()
        resp = c.call(LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0,
                                        "topics": [{"name": KEEP, "partitions": parts}]})
        took = time.monotonic() - started
    finally:
        c.close()
    answers = {(p["error_code"], p["offset"]) for p in resp["topics"][0]["partitions"]}
    assert answers == {(0, 5)}  # the last seeded record has the largest timestamp
    assert took < 10, f"{took:.1f} s"
    assert_served(bystander)


def test_a_client_that_never_reads_costs_bounded_memory(server, bystander) -> None:
    """Pipelined requests whose answers are never read: the server stops answering when the
    socket backs up, then stops reading once 64 MiB of requests wait; the bystander is
    served meanwhile."""
    before = rss_kib(server.pid)
    c = RawKafka(server.kafka_port)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = request_frame(FETCH, 12, 1, "hog", {
        "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 64 << 20, "isolation_level": 0,
        "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
        "topics": [{"topic": KEEP, "partitions": [
            {"partition": 0, "fetch_offset": 0, "partition_max_bytes": 64 << 20,
             "current_leader_epoch": -1, "last_fetched_epoch": -1, "log_start_offset": -1}
        ] * 50}]})  # ~20 KiB of answer per 2 KiB request
    c.sock.settimeout(0.5)
    sent = 0
    try:
        for _ in range(100_000):  # up to 200 MiB of requests, more than is queued
            c.sock.sendall(request)
            sent += 1
    except TimeoutError:
        pass  # the server stopped reading: fine
    time.sleep(0.5)
    assert_served(bystander)
    grown = rss_kib(server.pid) - before
    c.close()
    assert grown < 160 * 1024, f"RSS grew by {grown} KiB after {sent} unread requests"
    assert_served(bystander)


def test_zero_size_and_tiny_frames_close(server, bystander) -> None:
    for frame in (_SIZE.pack(0), _SIZE.pack(3) + b"\x00\x12\x00"):
        c = RawKafka(server.kafka_port)
        c.sock.sendall(frame)
        c.assert_eof()
        c.close()
    assert_served(bystander)


# --- unsupported versions ----------------------------------------------------------------


@pytest.mark.parametrize("version", [REGISTRY[API_VERSIONS].max_version + 1, 100, 32767, -1])
def test_api_versions_at_unsupported_version_gets_a_v0_body(server, version: int) -> None:
    c = RawKafka(server.kafka_port)
    try:
        # The body of an unknown version is never parsed: send something odd.
        corr = c.send_body(API_VERSIONS, version, b"\x07garbage")
        resp = c.recv(API_VERSIONS, version, corr)
        assert resp["error_code"] == ErrorCode.UNSUPPORTED_VERSION == 35
        ranges = {k["api_key"]: (k["min_version"], k["max_version"]) for k in resp["api_keys"]}
        assert ranges == {k: (a.min_version, a.max_version) for k, a in REGISTRY.items()}
        # and the connection goes on, at a supported version
        assert api_versions(c)["error_code"] == 0
    finally:
        c.close()


def _unsupported() -> list[tuple[int, int]]:
    out = [(k, a.max_version + 1) for k, a in sorted(REGISTRY.items()) if k != API_VERSIONS]
    out += [(k, a.min_version - 1) for k, a in sorted(REGISTRY.items()) if a.min_version > 0]
    missing = next(k for k in range(100) if k not in REGISTRY)
    return out + [(k, -1) for k in (PRODUCE, METADATA)] + [(missing, 0), (-1, 0), (1000, 0)]


@pytest.mark.parametrize(("key", "version"), _unsupported())
def test_other_api_at_unsupported_version_closes_the_connection(server, bystander, key: int,
                                                                version: int) -> None:
    c = RawKafka(server.kafka_port)
    c.send_body(key, version, b"\x00" * 16)
    c.assert_eof()
    c.close()
    assert_served(bystander)


# --- Produce with bad record batches ----------------------------------------------------


def _corrupt_batches() -> dict[str, tuple[bytes | None, set[int]]]:
    good = batch(b"v1", b"v2", b"v3")
    out: dict[str, tuple[bytes | None, set[int]]] = {}

    def case(name: str, data, *codes: int) -> None:
        out[name] = (None if data is None else bytes(data), set(codes))

    b = bytearray(good)
    b[-1] ^= 0xFF
    case("bad-crc", b, 2)
    for magic in (0, 1, 3, 0xFF):
        b = bytearray(good)
        b[kafka_batch.MAGIC_OFFSET] = magic
        case(f"magic-{magic}", b, 2, 87)
    case("truncated-header", good[:40], 2, 87)
    case("truncated-records", good[:-5], 2, 87)
    case("only-12-bytes", good[:12], 2, 87)
    case("trailing-garbage", good + b"\x00\x01\x02", 2, 87)
    b = bytearray(good)
    struct.pack_into(">i", b, kafka_batch.LENGTH_OFFSET, len(good))  # says 12 more
    case("length-too-long", b, 2, 87)
    b = bytearray(good)
    struct.pack_into(">i", b, kafka_batch.LENGTH_OFFSET, len(good) - 12 - 9)
    case("length-too-short", b, 2, 87)
    for n in (-1, 2**31 - 1, 0):
        b = bytearray(good)
        struct.pack_into(">i", b, kafka_batch.LENGTH_OFFSET, n)
        case(f"length-{n}", b, 2, 87)
    b = bytearray(good)
    struct.pack_into(">i", b, kafka_batch.RECORDS_COUNT_OFFSET, 2**31 - 1)
    case("records-count-lies", recrc(b), 87)
    b = bytearray(good)
    struct.pack_into(">ii", b, kafka_batch.LAST_OFFSET_DELTA_OFFSET, 2**31 - 2, 2**31 - 1)
    struct.pack_into(">i", b, kafka_batch.RECORDS_COUNT_OFFSET, 2**31 - 1)
    case("both-counts-lie", recrc(b), 87)
    b = bytearray(good)
    b[kafka_batch.RECORDS_OFFSET] = 0x7E  # first record's length varint: 63 (too long)
    case("record-length-lies", recrc(b), 87)
    b = bytearray(good)
    b[kafka_batch.RECORDS_OFFSET:kafka_batch.RECORDS_OFFSET + 1] = b"\xff" * 11
    struct.pack_into(">i", b, kafka_batch.LENGTH_OFFSET, len(b) - 12)
    case("record-varint-overlong", recrc(b), 87)
    b = bytearray(good)
    b[kafka_batch.ATTRIBUTES_OFFSET + 1] |= 0x20  # control batch from a client
    case("control-batch", recrc(b), 87)
    b = bytearray(good)
    struct.pack_into(">q", b, kafka_batch.PRODUCER_ID_OFFSET, 5)  # idempotent, baseSequence -1
    case("pid-without-sequence", recrc(b), 87)
    for codec in (5, 6, 7):
        b = bytearray(good)
        b[kafka_batch.ATTRIBUTES_OFFSET + 1] = (b[kafka_batch.ATTRIBUTES_OFFSET + 1] & ~7) | codec
        case(f"codec-{codec}", recrc(b), 76)
    garbage = bytes(range(7, 250)) * 3
    for codec, name in ((1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd")):
        b = bytearray(good[:kafka_batch.RECORDS_OFFSET]) + garbage
        b[kafka_batch.ATTRIBUTES_OFFSET + 1] |= codec
        struct.pack_into(">i", b, kafka_batch.LENGTH_OFFSET, len(b) - 12)
        case(f"{name}-garbage", recrc(b), 2, 87)
    # Compressed streams that are valid but hold no valid records.
    zeros = bytes(4096)
    for codec, blob in ((1, zlib.compress(zeros, wbits=31)),
                        (4, bytes(cramjam.zstd.compress(zeros)))):
        b = bytearray(good[:kafka_batch.RECORDS_OFFSET]) + blob
        b[kafka_batch.ATTRIBUTES_OFFSET + 1] |= codec
        struct.pack_into(">i", b, kafka_batch.LENGTH_OFFSET, len(b) - 12)
        case(f"codec-{codec}-not-records", recrc(b), 2, 87)
    # Zip bombs: small batches that decompress to 256 MiB (gzip members, zstd frames).
    zobj = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    gz = b"".join([zobj.compress(chunk) for _ in range(64)] + [zobj.flush()])
    zst = bytes(cramjam.zstd.compress(bytes(64 << 20)))
    for codec, blob, name in ((1, gz * 4, "gzip"), (4, zst * 4, "zstd")):
        b = bytearray(good[:kafka_batch.RECORDS_OFFSET]) + blob
        b[kafka_batch.ATTRIBUTES_OFFSET + 1] |= codec
        struct.pack_into(">i", b, kafka_batch.LENGTH_OFFSET, len(b) - 12)
        case(f"{name}-bomb", recrc(b), 2, 10, 87)
    case("null-records", None, 2, 87)
    case("empty-records", b"", 2, 87)
    return out


CORRUPT = _corrupt_batches()


@pytest.fixture(scope="module")
def producer(server: PyggyServer):
    c = RawKafka(server.kafka_port)
    yield c
    c.close()


@pytest.mark.parametrize("name", sorted(CORRUPT))
@pytest.mark.parametrize("version", [3, 9, 12])
def test_corrupt_batch_is_refused_and_nothing_is_stored(server, producer, name: str,
                                                        version: int) -> None:
    records, codes = CORRUPT[name]
    hw_before, _ = fetch(producer, TARGET)
    before = rss_kib(server.pid)
    (p,) = produce(producer, TARGET, [(0, records)], version=version)
    assert p["error_code"] in codes, (name, p)
    assert p["base_offset"] == -1
    assert rss_kib(server.pid) - before < 256 * 1024, "decompression was not bounded"
    hw_after, data = fetch(producer, TARGET)
    assert hw_after == hw_before and data == b""
    assert api_versions(producer)["error_code"] == 0  # the connection stays usable


def test_a_corrupt_partition_does_not_spoil_its_neighbours(server, producer) -> None:
    t = "neighbour-target"
    metadata(producer, [t])
    good = bytes(batch(b"neighbour"))
    bad = bytearray(good)
    bad[-1] ^= 1
    resp = producer.call(PRODUCE, 9, {
        "transactional_id": None, "acks": 1, "timeout_ms": 5000, "topic_data": [
            {"name": t, "partition_data": [{"index": 0, "records": good}]},
            {"name": TARGET, "partition_data": [{"index": 0, "records": bytes(bad)}]},
            {"name": "no-such-topic-here", "partition_data": [{"index": 0, "records": good}]},
            {"name": t, "partition_data": [{"index": 7, "records": good}]}]})
    codes = [r["partition_responses"][0]["error_code"] for r in resp["responses"]]
    assert codes == [0, 2, 3, 3]
    hw, data = fetch(producer, t)
    assert hw == 1 and data[kafka_batch.ATTRIBUTES_OFFSET:] == good[kafka_batch.ATTRIBUTES_OFFSET:]
    assert fetch(producer, TARGET) == (0, b"")


def test_oversized_batch_is_message_too_large(server, producer) -> None:
    big = batch(bytes(MAX_MESSAGE_BYTES))
    assert len(big) > MAX_MESSAGE_BYTES
    (p,) = produce(producer, TARGET, [(0, bytes(big))])
    assert p["error_code"] == ErrorCode.MESSAGE_TOO_LARGE == 10
    assert fetch(producer, TARGET) == (0, b"")
    # the limit is on the batch as sent: compressed below it, the same records are accepted
    small = batch(bytes(MAX_MESSAGE_BYTES), compression=4)
    assert len(small) < MAX_MESSAGE_BYTES
    metadata(producer, ["compressed-big-ok"])
    (p,) = produce(producer, "compressed-big-ok", [(0, bytes(small))])
    assert p["error_code"] == 0 and p["base_offset"] == 0


def test_acks_zero_answers_nothing_but_closes_on_error(server) -> None:
    c = RawKafka(server.kafka_port)
    try:
        t = "acks-zero-target"
        metadata(c, [t])
        c.send(PRODUCE, 9, {"transactional_id": None, "acks": 0, "timeout_ms": 1000,
                            "topic_data": [{"name": t, "partition_data": [
                                {"index": 0, "records": bytes(batch(b"quiet"))}]}]})
        assert api_versions(c)["error_code"] == 0  # the next reply is the probe's
        assert fetch(c, t)[0] == 1
        bad = bytearray(batch(b"quiet"))
        bad[-1] ^= 1
        c.send(PRODUCE, 9, {"transactional_id": None, "acks": 0, "timeout_ms": 1000,
                            "topic_data": [{"name": t, "partition_data": [
                                {"index": 0, "records": bytes(bad)}]}]})
        c.assert_eof()  # Kafka: an acks=0 produce that fails closes the connection
    finally:
        c.close()
    c = RawKafka(server.kafka_port)
    assert fetch(c, "acks-zero-target")[0] == 1
    c.close()


def test_extreme_timestamps_are_stored_and_spoil_nothing(server, producer) -> None:
    """Kafka accepts any timestamp by default; one past the log index's µs range was an
    overflow that left the partition refusing every later batch."""
    t = "extreme-timestamps"
    metadata(producer, [t])
    sent = []
    for ts in (2**62, 2**63 - 1, -(2**63), -5, 1_700_000_000_000):
        b = kafka_batch.build_batch([(ts, b"k", b"v", [])])
        (p,) = produce(producer, t, [(0, bytes(b))])
        assert p["error_code"] == 0, (ts, p)
        sent.append(b)
    hw, data = fetch(producer, t)
    assert hw == len(sent)
    pos = 0
    for b in sent:
        n = kafka_batch.peek_length(memoryview(data)[pos:])
        assert data[pos + kafka_batch.MAGIC_OFFSET:pos + n] == bytes(b[kafka_batch.MAGIC_OFFSET:])
        pos += n
    resp = producer.call(LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": t, "partitions": [{"partition_index": 0, "timestamp": -3}]}]})
    assert resp["topics"][0]["partitions"][0]["offset"] == 1  # the largest: 2**63 - 1


_REFUSALS = {2, 10, 32, 45, 46, 47, 48, 49, 59, 76, 87, 90}  # what a batch can earn
_records = st.lists(st.tuples(
    st.integers(0, 2**41), st.none() | st.binary(max_size=16), st.none() | st.binary(max_size=40),
    st.lists(st.tuples(st.text(max_size=4), st.none() | st.binary(max_size=4)), max_size=2)),
    min_size=1, max_size=4)


@settings(max_examples=max(40, EXAMPLES), deadline=None,
          suppress_health_check=list(HealthCheck), database=None)
@given(records=_records, compression=st.integers(0, 4),
       producer_ids=st.just((-1, -1, -1)) | st.tuples(st.integers(-2, 2**63 - 1),
                                                    st.integers(-2, 32767),
                                                    st.integers(-2, 2**31 - 1)),
       transactional=st.booleans(),
       pokes=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3))
def test_fuzzed_batches_with_valid_crc(server, producer, records, compression, producer_ids,
                                       transactional, pokes) -> None:
    """Batches built from random records and producer fields, maybe with a few bytes poked
    (CRC recomputed): each is stored exactly as sent or refused with a batch error code."""
    pid, epoch, seq = producer_ids
    b = kafka_batch.build_batch([(ts, k, v, h) for ts, k, v, h in records],
                                compression=compression, producer_id=pid,
                                producer_epoch=epoch, base_sequence=seq,
                                transactional=transactional)
    for at, value in pokes:
        if kafka_batch.ATTRIBUTES_OFFSET <= at < len(b):  # (earlier bytes are not CRC'd)
            b[at] = value
    recrc(b)
    (p,) = produce(producer, "valid-crc-fuzz", [(0, bytes(b))])
    if p["error_code"]:
        assert p["error_code"] in _REFUSALS, p
        return
    hw, data = fetch(producer, "valid-crc-fuzz", p["base_offset"])
    stored = data[:kafka_batch.peek_length(data)]
    assert struct.unpack_from(">q", stored)[0] == p["base_offset"]
    if stored[kafka_batch.MAGIC_OFFSET:] != bytes(b[kafka_batch.MAGIC_OFFSET:]):
        # an idempotent retry (same producer, epoch, sequences) is answered with the offset
        # of the batch stored first, whatever its contents
        fields, mine = kafka_batch.batch_fields(stored), kafka_batch.batch_fields(b)
        assert pid >= 0 and fields[6] == mine[6] and fields[9:12] == mine[9:12]


@pytest.mark.parametrize("acks", [2, -2, 5, 32767])
def test_invalid_acks(server, producer, acks: int) -> None:
    (p,) = produce(producer, TARGET, [(0, bytes(batch(b"x")))], acks=acks)
    assert p["error_code"] == ErrorCode.INVALID_REQUIRED_ACKS == 21
    assert fetch(producer, TARGET) == (0, b"")


# --- at the end ----------------------------------------------------------------------------


def test_zz_acknowledged_data_is_intact_memory_bounded_and_no_internal_errors(
        server, bystander) -> None:
    hw, data = fetch(bystander, KEEP)
    offset, pos, got = 0, 0, []
    while pos < len(data):
        n = kafka_batch.peek_length(memoryview(data)[pos:])
        got.append(data[pos:pos + n])
        pos += n
    assert len(got) == len(SEEDED) and hw == 2 + 1 + 3
    for sent, stored in zip(SEEDED, got, strict=True):
        assert struct.unpack_from(">q", stored)[0] == offset
        # everything but baseOffset and partitionLeaderEpoch comes back byte for byte
        assert stored[kafka_batch.MAGIC_OFFSET:] == bytes(sent[kafka_batch.MAGIC_OFFSET:])
        assert stored[8:12] == bytes(sent[8:12])
        offset += struct.unpack_from(">i", stored, kafka_batch.RECORDS_COUNT_OFFSET)[0]
    assert_served(bystander)
    # everything the Kafka door accepted reads back through the native door too
    native = NativeClient(server.tcp_address, timeout=REPLY_TIMEOUT)
    native.login("iggy", "iggy")
    for topic in (KEEP, "valid-crc-fuzz", "extreme-timestamps", "compressed-big-ok",
                  "neighbour-target", "acks-zero-target"):
        hw, _ = fetch(bystander, topic)
        count, _ = native.poll("kafka", topic, 0, 0, 1_000_000)
        assert count == hw, (topic, count, hw)
    native.close()
    pid = server.pid
    assert pid and rss_kib(pid) < 512 * 1024, f"server RSS {rss_kib(pid)} KiB"
    logs = server.format_logs(last=1_000_000)
    assert "internal error" not in logs and "Traceback" not in logs, logs[-5000:]
