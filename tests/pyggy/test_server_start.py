"""What a start loads (issue 16): with the default config the optional parts of the server stay
unimported until configured. (The root password's hash at a first start only: tests/core.)

The servers are real processes run with `PYTHONPROFILEIMPORTTIME=1`: the interpreter writes an
`import time: ... | <module>` line to stderr for each module it imports, which the fixture
collects with the logs. Timings of the start are benchmarks (BENCHMARKS.md), not asserted here.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
from collections.abc import Callable

from pyggy.kafka_wire.registry import REGISTRY

from pyggy.testing import PyggyServer

_IMPORT = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$")
IMPORT_TRACE = {"PYTHONPROFILEIMPORTTIME": "1"}

# imported only when configured: [data_maintenance.archiver] (boto3 for S3), [telemetry],
# [http] (aiohttp, JWT, Prometheus metrics), [cluster], [system.sharding] shards > 1,
# [data_maintenance.scrub], TLS certificate generation; and what no start needs: the crc32c
# package (the tests' reference CRC-32C; pyggy's is fastcrc's), importlib.metadata, the
# compression codecs, ctypes (the heap trimmer), the Kafka door's request handlers and schema
# codec (construct), loaded by its first request; uuid (it imports platform, nine regexes: at
# the first Kafka codec or group member id)
NOT_AT_START = ("boto3", "botocore", "opentelemetry", "aiohttp", "jwt", "prometheus_client",
                "uuid", "platform", "cryptography", "pyggy.archiver", "pyggy.http_api",
                "pyggy.metrics", "pyggy.cluster", "pyggy.consensus", "pyggy.shards", "pyggy.scrub",
                "pyggy.core.storage.scrub",
                "importlib.metadata", "crc32c", "cramjam", "ctypes", "construct",
                "pyggy.kafka_wire.dispatch", "pyggy.kafka_wire.handlers",
                "pyggy.kafka_wire.protocol.codec",
                # and (BENCHMARKS.md, "first answer"): the TOML parser without a config file,
                # the Kafka group coordinator (at the first group request), the compactor (at
                # the first cleaner pass), the TLS helpers (at the first TLS connection)
                "tomllib", "pyggy.kafka_wire.groups.coordinator",
                "pyggy.kafka_wire.groups.consumer", "pyggy.core.storage.compaction",
                "pyggy.transport.tls", "datetime")
# what a Kafka client's first request, ApiVersions, loads besides the codec: its own handler
# (and SASL's, which the dispatcher consults for every request), no other
FIRST_KAFKA_ANSWER = {"pyggy.kafka_wire.handlers", "pyggy.kafka_wire.handlers.api_versions",
                      "pyggy.kafka_wire.handlers.sasl"}


def imported(server: PyggyServer) -> set[str]:
    return {m.group(1) for line in server.logs if (m := _IMPORT.match(line))}


def loaded(modules: set[str], package: str) -> set[str]:
    return {m for m in modules if m == package or m.startswith(package + ".")}


def test_a_default_start_leaves_the_optional_parts_unimported(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    server = pyggy_server_factory(env=IMPORT_TRACE)
    server.wait_for_log("kafka listening on")
    modules = imported(server)
    # the trace works: the server and both doors were imported
    assert {"pyggy.server", "pyggy.native_wire.listener", "pyggy.kafka_wire.listener"} <= modules
    found = {name: sorted(loaded(modules, name)) for name in NOT_AT_START}
    assert {name: mods for name, mods in found.items() if mods} == {}


def test_the_first_kafka_request_loads_the_handlers(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    from confluent_kafka.admin import AdminClient

    server = pyggy_server_factory(env=IMPORT_TRACE)
    server.wait_for_log("kafka listening on")
    assert "pyggy.kafka_wire.dispatch" not in imported(server)
    brokers = AdminClient({"bootstrap.servers": server.kafka_address}).list_topics(
        timeout=20).brokers  # ApiVersions, then Metadata: answered by the handlers just loaded
    assert [b.port for b in brokers.values()] == [server.kafka_port]
    # the trace line was written before the answer; the fixture's reader may still be behind
    server.wait_for_log("pyggy.kafka_wire.dispatch", timeout=10)
    assert {"pyggy.kafka_wire.dispatch", "construct"} <= imported(server)


def test_an_api_versions_request_loads_only_its_own_handler(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    server = pyggy_server_factory(env=IMPORT_TRACE)
    server.wait_for_log("kafka listening on")
    with socket.create_connection(("127.0.0.1", server.kafka_port), timeout=30) as kafka:
        kafka.sendall(struct.pack(">ihhih", 10, 18, 0, 7, -1))  # ApiVersions v0, id 7
        size, correlation, error = struct.unpack(">iih", _read(kafka, 10))
        assert (correlation, error) == (7, 0)
        count = struct.unpack(">i", _read(kafka, 4))[0]  # the offered APIs: key, min, max
        offered = [struct.unpack(">hhh", _read(kafka, 6)) for _ in range(count)]
    assert offered == [(k, a.min_version, a.max_version) for k, a in sorted(REGISTRY.items())]
    # dispatch's line is the last of what the first request imports (-X importtime writes a
    # module's line once its own imports are done: the handlers' lines come before it)
    server.wait_for_log("pyggy.kafka_wire.dispatch", timeout=10)
    modules = imported(server)
    assert "pyggy.kafka_wire.dispatch" in modules
    assert loaded(modules, "pyggy.kafka_wire.handlers") == FIRST_KAFKA_ANSWER
    assert not loaded(modules, "pyggy.kafka_wire.groups.coordinator")


def test_a_configured_archiver_is_imported(
        pyggy_server_factory: Callable[..., PyggyServer], tmp_path) -> None:
    server = pyggy_server_factory(env={
        **IMPORT_TRACE, "IGGY_DATA_MAINTENANCE_ARCHIVER_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_DISK_PATH": str(tmp_path / "archive"),
        "IGGY_DATA_MAINTENANCE_MESSAGES_ARCHIVER_ENABLED": "true"})
    modules = imported(server)
    assert "pyggy.archiver.disk" in modules and "pyggy.archiver.service" in modules
    assert not loaded(modules, "boto3")  # the disk archiver needs no S3 client


def test_the_doors_listen_before_the_server_is_imported(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    """pyggy/prebind.py: the CLI opens both ports as soon as the config is read; the server's
    modules (and the engine, and the doors) come after (the trace and the log share stderr)."""
    server = pyggy_server_factory(env=IMPORT_TRACE)
    server.wait_for_log("kafka listening on")
    opened = next(i for i, line in enumerate(server.logs) if "ports open" in line)
    assert f"tcp 127.0.0.1:{server.tcp_port}, kafka 127.0.0.1:{server.kafka_port}" in \
        server.logs[opened]
    server_import = next(i for i, line in enumerate(server.logs)
                         if (m := _IMPORT.match(line)) and m.group(1) == "pyggy.server")
    assert opened < server_import


def test_a_connection_made_while_the_server_starts_is_answered(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    """What "accepting" means before the doors serve: the kernel completes the connection
    while the process does nothing (stopped here with SIGSTOP as soon as the ports are open);
    the requests wait in the socket and are answered once the server has started."""
    server = pyggy_server_factory(start=False)
    server.start(wait=False)
    assert server.pid is not None
    server.wait_for_log("ports open")
    os.kill(server.pid, signal.SIGSTOP)
    try:
        native = socket.create_connection(("127.0.0.1", server.tcp_port), timeout=30)
        kafka = socket.create_connection(("127.0.0.1", server.kafka_port), timeout=30)
        native.sendall(struct.pack("<II", 4, 1))  # Ping
        kafka.sendall(struct.pack(">ihhih", 10, 18, 0, 7, -1))  # ApiVersions v0, id 7
    finally:
        os.kill(server.pid, signal.SIGCONT)
    with native, kafka:
        assert struct.unpack("<II", _read(native, 8)) == (0, 0)  # status ok, empty body
        size, correlation, error = struct.unpack(">iih", _read(kafka, 10))
        assert (correlation, error) == (7, 0) and size > 6


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"closed after {len(data)} of {n} bytes"
        data += chunk
    return data
