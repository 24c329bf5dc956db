"""Native-protocol workloads: the official SDK, or pyggy's own lean client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from pyggy.core.records.iggy_batch import build_batch
from pyggy.native_client import NativeClient


@dataclass(slots=True)
class Result:
    mode: str
    messages: int
    bytes: int
    seconds: float

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6


def native_send_poll(address: str, batches: int, batch_size: int, message_size: int,
                     stream: str = "bench", topic: str = "t",
                     phase: Callable[[str], object] | None = None) -> list[Result]:
    """Send `batches` prebuilt batches, then poll them all back, on one connection.
    ``phase`` is called with "send", "poll" and "end" as each phase begins and at the end
    (scripts/iggy_compare.py reads the server's CPU time there)."""
    mark = phase or (lambda _: None)
    c = NativeClient(address)
    c.login("iggy", "iggy")
    c.create_stream(stream)
    c.create_topic(stream, topic, 1)
    batch = build_batch([(i + 1, b"x" * message_size, b"", 1) for i in range(batch_size)])
    total = batches * batch_size
    mark("send")
    start = time.perf_counter()
    for _ in range(batches):
        c.send(stream, topic, 0, batch, batch_size)
    sent = Result("native send", total, total * message_size, time.perf_counter() - start)
    mark("poll")
    start = time.perf_counter()
    offset = 0
    while offset < total:
        n, _ = c.poll(stream, topic, 0, offset, batch_size)
        offset += n
    polled = Result("native poll", total, total * message_size, time.perf_counter() - start)
    mark("end")
    c.close()
    return [sent, polled]


def sdk_send_poll(address: str, batches: int, batch_size: int, message_size: int,
                  stream: str = "bench-sdk", topic: str = "t") -> list[Result]:
    """The same workload through the official apache-iggy SDK (one client)."""
    from apache_iggy import Consumer, IggyClient, PollingStrategy, SendMessage

    async def run() -> list[Result]:
        client = IggyClient(address)
        await client.connect()
        await client.login_user("iggy", "iggy")
        await client.create_stream(stream)
        await client.create_topic(stream, topic, 1)
        payload = b"x" * message_size
        messages = [SendMessage(payload) for _ in range(batch_size)]
        total = batches * batch_size
        start = time.perf_counter()
        for _ in range(batches):
            await client.send_messages(stream, topic, 0, messages)
        sent = Result("sdk send", total, total * message_size, time.perf_counter() - start)
        start = time.perf_counter()
        offset = 0
        while offset < total:
            got = await client.poll_messages(
                stream, topic, consumer=Consumer.Single(1), partition_id=0,
                polling_strategy=PollingStrategy.Offset(offset), count=batch_size,
                auto_commit=False)
            offset += len(got)
        polled = Result("sdk poll", total, total * message_size, time.perf_counter() - start)
        return [sent, polled]

    return asyncio.run(run())
