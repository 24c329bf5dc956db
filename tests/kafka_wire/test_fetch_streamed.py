"""Large Fetch responses are streamed (core/storage/streamed.py, transport `Stream`), against a
real server process over a socket: the bytes are those of the stored log; a batch that rots
on disk after the response began never reaches the client (the connection closes, the next
fetch stops before the batch, the one at it answers KAFKA_STORAGE_ERROR); and a client that
reads slowly does not make the server hold the whole response in memory."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest
from pyggy.core.records import kafka_batch
from pyggy.kafka_wire.protocol import decode_response, parse_response_header, request_frame
from pyggy.kafka_wire.protocol.errors import ErrorCode

from pyggy.testing import PyggyServer

PRODUCE, FETCH, METADATA = 0, 1, 3
RECORDS = 250  # records of 1000 B a batch: batches of ~256 KB, four to a streamed chunk
BIG, ROT = "streamed-big", "streamed-rot"
BIG_BATCHES, ROT_BATCHES = 96, 24  # ~24 MB and ~6 MB
_SIZE = struct.Struct(">i")


class Client:
    def __init__(self, port: int, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.corr = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, key: int, version: int, body: dict) -> int:
        self.corr += 1
        self.sock.sendall(request_frame(key, version, self.corr, "streamed", body))
        return self.corr

    def read_until_eof_or(self, n: int) -> bytes:
        """Up to `n` bytes; fewer if the server closes first."""
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(min(n - len(out), 1 << 20))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def recv(self, key: int, version: int, corr: int) -> dict:
        size = _SIZE.unpack(self.read_until_eof_or(4))[0]
        frame = self.read_until_eof_or(size)
        assert len(frame) == size, "connection closed mid-response"
        got, pos = parse_response_header(frame, key, version)
        assert got == corr
        return decode_response(key, version, memoryview(frame)[pos:], strict=True)

    def call(self, key: int, version: int, body: dict) -> dict:
        return self.recv(key, version, self.send(key, version, body))


def fetch_body(topic: str, offset: int, partition_max: int = 64 << 20) -> dict:
    return {"max_wait_ms": 0, "min_bytes": 0, "max_bytes": 64 << 20, "isolation_level": 0,
            "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
            "topics": [{"topic": topic, "partitions": [
                {"partition": 0, "fetch_offset": offset, "partition_max_bytes": partition_max,
                 "current_leader_epoch": -1, "last_fetched_epoch": -1,
                 "log_start_offset": -1}]}]}


def fetch(c: Client, topic: str, offset: int, partition_max: int = 64 << 20) -> dict:
    return c.call(FETCH, 12, fetch_body(topic, offset, partition_max))["responses"][0][
        "partitions"][0]


def produce(c: Client, topic: str, batches: int, fill: bytes) -> None:
    for k in range(batches):
        b = kafka_batch.build_batch([(1_700_000_000_000 + i, b"key-%03d" % i,
                                      fill * 1000, []) for i in range(RECORDS)])
        resp = c.call(PRODUCE, 9, {
            "transactional_id": None, "acks": -1, "timeout_ms": 5000, "topic_data": [
                {"name": topic, "partition_data": [{"index": 0, "records": bytes(b)}]}]})
        p = resp["responses"][0]["partition_responses"][0]
        assert p["error_code"] == 0 and p["base_offset"] == k * RECORDS, p


def log_file(server: PyggyServer, fill: bytes) -> Path:
    """The segment file of the topic whose values are `fill` bytes (one segment each)."""
    for path in server.data_path.rglob("partitions/0/*.log"):
        with open(path, "rb") as f:
            if fill * 1000 in f.read(4096):
                return path
    raise AssertionError(f"no log file holds {fill!r} values")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def started(path: Path, topics: dict[str, tuple[int, bytes]]) -> PyggyServer:
    """A server holding `topics` (name: batches, value byte)."""
    srv = PyggyServer(path).start()
    srv.wait_for_log("kafka listening on")
    c = Client(srv.kafka_port)
    found = c.call(METADATA, 12, {"topics": [{"name": t, "topic_id": None} for t in topics],
                                  "allow_auto_topic_creation": True,
                                  "include_topic_authorized_operations": False})["topics"]
    assert [t["error_code"] for t in found] == [0] * len(topics), found
    for name, (batches, fill) in topics.items():
        produce(c, name, batches, fill)
    c.close()
    return srv


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = started(tmp_path_factory.mktemp("streamed"), {BIG: (BIG_BATCHES, b"b"),
                                                         ROT: (ROT_BATCHES, b"r")})
    yield srv
    assert srv.running, "the server died"
    assert srv.stop() == 0


def test_a_streamed_fetch_serves_the_stored_bytes(server: PyggyServer) -> None:
    stored = log_file(server, b"b").read_bytes()
    c = Client(server.kafka_port)
    try:
        whole = fetch(c, BIG, 0)
        assert whole["error_code"] == 0
        assert bytes(whole["records"]) == stored  # ~24 MB: far more than one chunk
        # the same bytes as one-batch fetches, which are answered whole (not streamed)
        one_by_one = b"".join(bytes(fetch(c, BIG, k * RECORDS, 1)["records"])
                              for k in range(BIG_BATCHES))
        assert one_by_one == stored
        assert bytes(fetch(c, BIG, 10 * RECORDS + 7)["records"]) == \
            stored[len(one_by_one) // BIG_BATCHES * 10:]  # from inside a batch: that batch on
    finally:
        c.close()


def test_a_batch_that_rots_mid_stream_never_reaches_the_client(server: PyggyServer) -> None:
    path = log_file(server, b"r")
    good = path.read_bytes()
    batch_len = len(good) // ROT_BATCHES
    bad = 17  # several chunks after the head
    pos = bad * batch_len + batch_len // 2
    with open(path, "r+b") as f:  # a bit rots under the running server
        f.seek(pos)
        f.write(bytes([good[pos] ^ 0x08]))
    c = Client(server.kafka_port)
    try:
        c.send(FETCH, 12, fetch_body(ROT, 0))
        got = c.read_until_eof_or(len(good) + 4096)  # the server closes mid-response
    finally:
        c.close()
    assert len(got) > 4 and _SIZE.unpack_from(got)[0] > len(got) - 4, "not cut short"
    start = got.index(good[:64])  # where the records begin in the response
    records = got[start:]
    assert records == good[:len(records)]  # only verified, intact bytes were sent ...
    assert len(records) <= bad * batch_len  # ... none of the rotten batch
    server.wait_for_log("marked damaged")
    c = Client(server.kafka_port)
    try:
        before = fetch(c, ROT, 0)  # the client's retry: everything before the batch
        assert before["error_code"] == 0
        assert bytes(before["records"]) == good[:bad * batch_len]
        at = fetch(c, ROT, bad * RECORDS)  # and the batch itself is refused, not served
        assert at["error_code"] == ErrorCode.KAFKA_STORAGE_ERROR
        after = fetch(c, ROT, (bad + 1) * RECORDS)
        assert bytes(after["records"]) == good[(bad + 1) * batch_len:]
    finally:
        c.close()


def test_a_slow_reader_does_not_make_the_server_hold_the_response(tmp_path: Path) -> None:
    # a server of its own: no large read before this one (the allocator keeps what it freed)
    server = started(tmp_path, {BIG: (BIG_BATCHES, b"b")})
    try:
        pid = server.pid
        assert pid is not None
        size = log_file(server, b"b").stat().st_size
        base = rss_kib(pid)
        slow = Client(server.kafka_port, rcvbuf=64 << 10)
        try:
            slow.send(FETCH, 12, fetch_body(BIG, 0))
            got, peak = 0, 0
            while got < size:  # read 64 KiB at a time, watching the server's memory
                chunk = slow.sock.recv(64 << 10)
                assert chunk, "closed"
                got += len(chunk)
                peak = max(peak, rss_kib(pid) - base)
                if got < 1 << 20:  # early on: another connection is served meanwhile
                    other = Client(server.kafka_port)
                    assert fetch(other, BIG, 0, 1)["error_code"] == 0
                    other.close()
        finally:
            slow.close()
        assert size > 20 << 20
        assert peak < 12 << 10, f"server memory grew by {peak} KiB for a {size >> 10} KiB reply"
    finally:
        assert server.stop() == 0
