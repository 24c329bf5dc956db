"""A user's data survives: clean restarts and kill -9 with fsync on (a corrupted segment:
test_corruption.py)."""

from __future__ import annotations

import asyncio
import signal
import threading

from apache_iggy import (
    Consumer,
    IggyClient,
    PollingStrategy,
    SendMessage,
    TcpConfig,
    TcpReconnectionConfig,
)

from pyggy.testing import PyggyServer


async def connect(server: PyggyServer, reconnect: bool = True) -> IggyClient:
    config = TcpConfig(server_address=server.tcp_address,
                       reconnection=TcpReconnectionConfig(enabled=reconnect))
    client = IggyClient(config)
    await client.connect()
    await client.login_user("iggy", "iggy")
    return client


def payload(partition: int, n: int, size: int = 100) -> bytes:
    return f"p{partition}-m{n:07d}-".encode().ljust(size, b"x")


async def read_all(client: IggyClient, stream: str, topic: str, partition: int,
                   batch: int = 5000) -> list:
    out: list = []
    while True:
        msgs = await client.poll_messages(
            stream, topic, consumer=Consumer.Single(1), partition_id=partition,
            polling_strategy=PollingStrategy.Offset(len(out)), count=batch, auto_commit=False)
        if not msgs:
            return out
        out.extend((m.offset(), m.payload(), m.timestamp(), m.id()) for m in msgs)


def test_100k_messages_over_3_partitions_survive_a_clean_restart(pyggy_server: PyggyServer
                                                                 ) -> None:
    async def produce_and_read() -> list:
        client = await connect(pyggy_server)
        await client.create_stream("orders")
        await client.create_topic("orders", "events", 3)
        for k in range(100):
            p = k % 3
            base = (k // 3) * 1000
            await client.send_messages("orders", "events", p, [
                SendMessage(payload(p, base + i), {"seq": str(base + i)}) for i in range(1000)])
        return [await read_all(client, "orders", "events", p) for p in range(3)]

    before = asyncio.run(produce_and_read())
    assert [len(x) for x in before] == [34_000, 33_000, 33_000]
    for p, msgs in enumerate(before):
        assert [m[0] for m in msgs] == list(range(len(msgs)))
        assert all(m[1] == payload(p, i) for i, m in enumerate(msgs))

    pyggy_server.restart(signal.SIGTERM)

    async def read_again() -> list:
        client = await connect(pyggy_server)
        return [await read_all(client, "orders", "events", p) for p in range(3)]

    assert asyncio.run(read_again()) == before


def test_kill_9_with_enforce_fsync_keeps_every_acknowledged_message(
        pyggy_server: PyggyServer) -> None:
    """Three producers send continuously; the server is SIGKILLed while sends are in flight."""
    acked: dict[int, list[int]] = {p: [] for p in range(3)}  # partition → acked message numbers
    killed = threading.Event()

    async def producer(p: int) -> None:
        try:  # another producer may have killed the server before this one logged in
            client = await connect(pyggy_server, reconnect=False)
        except RuntimeError:
            return
        n = 0
        while not killed.is_set():
            msgs = [SendMessage(payload(p, n + i)) for i in range(50)]
            try:
                await asyncio.wait_for(client.send_messages("s", "t", p, msgs), 5)
            except (TimeoutError, RuntimeError):
                return
            acked[p].extend(range(n, n + 50))
            n += 50
            if sum(len(a) for a in acked.values()) >= 6000 and not killed.is_set():
                killed.set()
                pyggy_server.kill()

    async def produce_until_killed() -> None:
        admin = await connect(pyggy_server)
        await admin.create_stream("s")
        await admin.create_topic("s", "t", 3, options={"enforce_fsync": "true"})
        await asyncio.gather(*(producer(p) for p in range(3)))

    asyncio.run(produce_until_killed())
    assert killed.is_set()
    pyggy_server.start()

    async def check() -> None:
        client = await connect(pyggy_server)
        for p in range(3):
            msgs = await read_all(client, "s", "t", p)
            assert [m[0] for m in msgs] == list(range(len(msgs)))
            assert all(m[1] == payload(p, i) for i, m in enumerate(msgs))
            assert len(msgs) >= len(acked[p]), f"partition {p} lost acknowledged messages"

    asyncio.run(check())
