"""Helpers for the transport scenario tests: raw requests of both doors, many idle connections
opened by a bounded asyncio client, and a bystander process that keeps timing requests.

The bystander runs in its own process so that the test's own work (opening thousands of
connections) cannot delay it: its latencies are the server's.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path

from pyggy.native_wire.codec import frames
from pyggy.native_wire.codec.codes import Code

_SIZE = struct.Struct(">i")


def kafka_api_versions(correlation: int = 1) -> bytes:
    """An ApiVersions v0 request frame (header v1, client id "t")."""
    body = struct.pack(">hhih", 18, 0, correlation, 1) + b"t"
    return _SIZE.pack(len(body)) + body


def native_ping() -> bytes:
    """A VSR ping (allowed before login)."""
    return bytes(frames.build_request(Code.PING, b"", client=uuid.uuid4().int or 1, request=1,
                                      session=0))


async def kafka_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(kafka_api_versions())
    size = _SIZE.unpack(await reader.readexactly(4))[0]
    await reader.readexactly(size)


async def native_roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(native_ping())
    _, size, status = frames.parse_reply_header(await reader.readexactly(frames.HEADER_SIZE))
    await reader.readexactly(size - frames.HEADER_SIZE)
    assert status == 0, status


async def open_idle(port: int, count: int, roundtrip, concurrency: int = 64,
                    ssl=None) -> list[asyncio.StreamWriter]:
    """`count` connections that each made one request and then stay idle."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> asyncio.StreamWriter:
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl)
            await roundtrip(reader, writer)
            return writer

    return list(await asyncio.gather(*(one() for _ in range(count))))


def raise_open_files(wanted: int) -> None:
    """Let this process hold `wanted` sockets (up to the hard limit); fail if it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= wanted, \
        f"open-file hard limit {hard} < {wanted}: raise it (ulimit -Hn) to run this test"


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closed `sock` (EOF or reset), dropping any replies; an
    AssertionError if it is still open after `seconds`."""
    start = time.monotonic()
    try:
        while (remaining := start + seconds - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(65536):
                return time.monotonic() - start
    except TimeoutError:
        pass
    except OSError:  # reset
        return time.monotonic() - start
    raise AssertionError(f"still open after {seconds} s")


_BYSTANDER = r"""
import json, socket, struct, sys, threading, time
sys.path.insert(0, sys.argv[3])
from netclients import kafka_api_versions
from pyggy.native_client import NativeClient
from pyggy.native_wire.codec.codes import Code
native = NativeClient(f"127.0.0.1:{sys.argv[1]}", timeout=10)
native.login("iggy", "iggy")
kafka = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10)
kafka.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
latencies = []
print("ready", flush=True)
while not stop.is_set() or len(latencies) < 200:
    t = time.perf_counter()
    native.call(Code.PING)
    kafka.sendall(kafka_api_versions())
    exact(kafka, struct.unpack(">i", exact(kafka, 4))[0])
    latencies.append((time.perf_counter() - t) * 1000 / 2)
    time.sleep(0.005)
print(json.dumps(latencies), flush=True)
"""


class Bystander:
    """A process alternating a native ping (logged in as iggy) and a Kafka ApiVersions on two
    connections, timing each; `stop()` returns the latencies in ms (each the mean of one ping
    and one ApiVersions), at least 200 of them, so that p99 is not just the worst one."""

    def __init__(self, tcp_port: int, kafka_port: int) -> None:
        here = str(Path(__file__).parent)
        self.proc = subprocess.Popen([sys.executable, "-c", _BYSTANDER, str(tcp_port),
                                      str(kafka_port), here], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> list[float]:
        out, _ = self.proc.communicate("", timeout=60)
        assert self.proc.returncode == 0, "the bystander lost its connection"
        return json.loads(out.strip().splitlines()[-1])


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
