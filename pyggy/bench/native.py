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
                     phase: Callable[[str], object] | None = None,
                     in_flight: int = 1) -> list[Result]:
    """Send `batches` prebuilt batches, then poll them all back, on one connection.
    ``phase`` is called with "send", "poll" and "end" as each phase begins and at the end
    (scripts/iggy_compare.py reads the server's CPU time there). ``in_flight`` > 1 keeps that
    many requests on the wire before reading a reply (1: lockstep, as the SDKs do), so the
    client's work overlaps the server's."""
    mark = phase or (lambda _: None)
    c = NativeClient(address)
    c.login("iggy", "iggy")
    c.create_stream(stream)
    c.create_topic(stream, topic, 1)
    batch = build_batch([(i + 1, b"x" * message_size, b"", 1) for i in range(batch_size)])
    total = batches * batch_size
    window = max(1, in_flight)
    mark("send")
    start = time.perf_counter()
    for i in range(batches):
        if i >= window:
            c.read_send_reply()
        c.write_send(stream, topic, 0, batch, batch_size)
    for _ in range(min(window, batches)):
        c.read_send_reply()
    sent = Result("native send", total, total * message_size, time.perf_counter() - start)
    mark("poll")
    start = time.perf_counter()
    if window == 1:
        offset = 0
        while offset < total:
            n, _ = c.poll(stream, topic, 0, offset, batch_size)
            offset += n
    else:  # every batch holds batch_size messages: the offsets are known ahead
        got = 0
        for i in range(batches):
            if i >= window:
                got += c.read_poll_reply()[0]
            c.write_poll(stream, topic, 0, i * batch_size, batch_size)
        for _ in range(min(window, batches)):
            got += c.read_poll_reply()[0]
        if got != total:
            raise RuntimeError(f"polled {got} messages of {total}")
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
