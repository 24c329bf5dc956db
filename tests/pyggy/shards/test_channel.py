"""The inter-shard channel over a real Unix socket pair, in one event loop: replies matched
to requests, errors carried with their code, payloads as sent (several pieces too), APPLY
frames in order, and a malformed frame closing the channel and failing what waits on it."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest
from pyggy.core.errors import IggyError

from pyggy.shards.channel import Channel, ChannelClosed, Reply


async def _handle(meta: dict[str, Any], payload: memoryview) -> Reply:
    op = meta["op"]
    if op == "echo":
        payload[:1] = b"!"  # writable: an owner stamps a forwarded batch in place
        return {"n": len(payload)}, [payload[:3], payload[3:]]  # sent in pieces
    if op == "refuse":
        raise IggyError(2010, "stream not found")
    if op == "slow":
        await asyncio.sleep(float(meta["s"]))
        return {"slow": True}, b""
    raise RuntimeError("a bug")


async def _pair() -> tuple[Channel, Channel, list[dict], list[Channel]]:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    applied: list[dict] = []
    closed: list[Channel] = []
    _, left = await loop.create_unix_connection(
        lambda: Channel(_handle, applied.append, closed.append), sock=a)
    _, right = await loop.create_unix_connection(
        lambda: Channel(_handle, applied.append, closed.append), sock=b)
    return left, right, applied, closed


def test_requests_replies_errors_and_order() -> None:
    async def main() -> None:
        left, right, applied, _ = await _pair()
        big = bytes(range(256)) * 4096  # 1 MiB: many socket reads
        (meta, body), (slow, _), (meta2, body2) = await asyncio.gather(
            left.request({"op": "echo"}, big), left.request({"op": "slow", "s": 0.05}),
            right.request({"op": "echo"}, b"abcdef"))
        assert meta == {"n": len(big)} and bytes(body) == b"!" + big[1:]
        assert slow == {"slow": True}
        assert meta2 == {"n": 6} and bytes(body2) == b"!bcdef"
        with pytest.raises(IggyError) as refused:
            await left.request({"op": "refuse"})
        assert refused.value.code == 2010 and "stream not found" in str(refused.value)
        with pytest.raises(IggyError) as bug:
            await left.request({"op": "crash"})
        assert bug.value.code == 1 and "a bug" in str(bug.value)
        for seq in range(1, 6):
            left.send_apply({"seq": seq})
        await right.request({"op": "slow", "s": 0})  # after the APPLYs on the same socket
        assert [m["seq"] for m in applied] == [1, 2, 3, 4, 5]
        left.close()
        right.close()
    asyncio.run(main())


def test_a_malformed_frame_closes_the_channel() -> None:
    async def main() -> None:
        left, right, _, closed = await _pair()
        waiting = asyncio.ensure_future(left.request({"op": "slow", "s": 30}))
        assert right.transport is not None  # sent before or after the request: it fails
        right.transport.write(struct.pack(">IBII", 9, 77, 1, 0))  # an unknown kind
        with pytest.raises(ChannelClosed):
            await asyncio.wait_for(waiting, 10)
        assert left in closed
        with pytest.raises(ChannelClosed):
            await left.request({"op": "echo"}, b"x")
        right.close()
    asyncio.run(main())
