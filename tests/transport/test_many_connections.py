"""4,000 idle connections, half on each door, against a real server: they cost little memory
while open, give it back when they close, and a bystander client stays fast throughout. The
same, on a smaller scale, for connections over TLS."""

from __future__ import annotations

import asyncio
import os
import ssl
import time

from netclients import (
    Bystander,
    kafka_roundtrip,
    native_roundtrip,
    open_idle,
    p99,
    raise_open_files,
    rss_mib,
)

PER_DOOR = 2000


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(condition, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_4000_idle_connections_cost_little_and_leave_nothing_behind(
        pyggy_server_factory) -> None:
    raise_open_files(2 * PER_DOOR + 200)
    # natives that only ping are not logged in: give them longer than the test to do so
    server = pyggy_server_factory(env={"IGGY_TCP_AUTH_TIMEOUT": "10 m"})
    server.wait_for_log("kafka listening on")
    bystander = Bystander(server.tcp_port, server.kafka_port)
    time.sleep(1.0)  # the bystander's first requests settle the server's own allocations
    start_rss, start_files = rss_mib(server.pid), open_files(server.pid)

    async def story() -> tuple[float, float]:
        kafka = await open_idle(server.kafka_port, PER_DOOR, kafka_roundtrip)
        native = await open_idle(server.tcp_port, PER_DOOR, native_roundtrip)
        await asyncio.sleep(1.0)  # all of them idle for a while
        open_rss = rss_mib(server.pid)
        for writer in kafka + native:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in kafka + native),
                             return_exceptions=True)
        return open_rss, time.monotonic()

    open_rss, closed_at = asyncio.run(story())
    assert wait_until(lambda: open_files(server.pid) <= start_files + 5), "sockets kept open"
    wait_until(lambda: rss_mib(server.pid) <= start_rss + 10, 5.0)  # the heap trim, 1 s later
    final_rss = rss_mib(server.pid)
    latencies = bystander.stop()
    growth = open_rss - start_rss
    print(f"RSS {start_rss:.1f} MiB at start, {open_rss:.1f} MiB with {2 * PER_DOOR} idle "
          f"connections ({growth * 1024 / (2 * PER_DOOR):.1f} KiB each), {final_rss:.1f} MiB "
          f"{time.monotonic() - closed_at:.1f} s after they closed; bystander p99 "
          f"{p99(latencies):.1f} ms over {len(latencies)} requests")
    assert growth <= 150, f"RSS grew by {growth:.1f} MiB"
    assert growth * 1024 / (2 * PER_DOOR) <= 32, "more than 32 KiB per idle connection"
    assert final_rss <= start_rss + 20, f"RSS {final_rss:.1f} MiB after close (start {start_rss})"
    assert len(latencies) > 100 and p99(latencies) <= 50, f"bystander p99 {p99(latencies)} ms"
    assert "Traceback" not in server.format_logs(last=100000)


def test_idle_tls_connections_cost_at_most_32_kib_and_leave_nothing_behind(
        pyggy_server_factory) -> None:
    per_door = 500
    raise_open_files(2 * per_door + 200)
    server = pyggy_server_factory(env={"IGGY_TCP_AUTH_TIMEOUT": "10 m",
                                       "IGGY_TCP_TLS_ENABLED": "true",
                                       "IGGY_KAFKA_TLS_ENABLED": "true"})
    server.wait_for_log("kafka listening on")
    context = ssl.create_default_context(cafile=server.data_path / "certs" / "pyggy_cert.pem")

    async def warm_up() -> None:  # the server's first TLS handshakes allocate for good
        for w in await open_idle(server.kafka_port, 20, kafka_roundtrip, ssl=context):
            w.close()

    asyncio.run(warm_up())
    assert wait_until(lambda: open_files(server.pid) < 30)
    start_rss, start_files = rss_mib(server.pid), open_files(server.pid)

    async def story() -> float:
        kafka = await open_idle(server.kafka_port, per_door, kafka_roundtrip, ssl=context)
        native = await open_idle(server.tcp_port, per_door, native_roundtrip, ssl=context)
        await asyncio.sleep(1.0)
        open_rss = rss_mib(server.pid)
        for writer in kafka + native:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in kafka + native),
                             return_exceptions=True)
        return open_rss

    open_rss = asyncio.run(story())
    assert wait_until(lambda: open_files(server.pid) <= start_files + 5), "sockets kept open"
    wait_until(lambda: rss_mib(server.pid) <= start_rss + 10, 5.0)
    final_rss = rss_mib(server.pid)
    per_connection = (open_rss - start_rss) * 1024 / (2 * per_door)
    print(f"TLS: RSS {start_rss:.1f} MiB at start, {open_rss:.1f} MiB with {2 * per_door} idle "
          f"connections ({per_connection:.1f} KiB each), {final_rss:.1f} MiB after they closed")
    assert per_connection <= 32, f"{per_connection:.1f} KiB per idle TLS connection"
    assert final_rss <= start_rss + 20, f"RSS {final_rss:.1f} MiB after close (start {start_rss})"
