"""4,000 idle connections, half on each door, against a real server: they cost little memory
while open, give it back when they close, and a bystander client stays fast throughout."""

from __future__ import annotations

import asyncio
import os
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
