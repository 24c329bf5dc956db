"""Large polls through the apache-iggy 0.9.0 SDK, which pyggy streams (whole stored batches:
core/engine/data.py, core/storage/streamed.py): every message comes back in order and intact,
and a batch that rots on disk is never delivered — the poll that meets it mid-stream fails
(the connection closes), the next one stops before it."""

from __future__ import annotations

import asyncio

import pytest
from apache_iggy import IggyClient, Partitioning, PollingStrategy, SendMessage
from sdk_support import connect, offsets, payloads, poll

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.asyncio

PER_BATCH, BATCHES = 200, 30  # ~1 KB messages: ~210 KB batches, ~6 MB (several chunks)
TOTAL = PER_BATCH * BATCHES


def payload(i: int) -> bytes:
    return b"m%07d" % i + bytes([i % 251]) * 1000


async def fill(root: IggyClient) -> None:
    await root.create_stream("s")
    await root.create_topic("s", "t", 1)
    for k in range(BATCHES):
        await root.send_messages("s", "t", Partitioning.partition_id(0),
                                 [SendMessage(payload(k * PER_BATCH + i))
                                  for i in range(PER_BATCH)])


async def test_a_large_poll_returns_every_message_intact(root: IggyClient) -> None:
    await fill(root)
    got = await poll(root, "s", "t", count=TOTAL)
    assert offsets(got) == list(range(TOTAL))
    assert payloads(got) == [payload(i) for i in range(TOTAL)]
    # from a batch's first offset, whole batches; then one cut by the count (read whole)
    start = 7 * PER_BATCH
    got = await poll(root, "s", "t", PollingStrategy.Offset(start), count=10 * PER_BATCH + 13)
    assert offsets(got) == list(range(start, start + 10 * PER_BATCH + 13))
    assert payloads(got) == [payload(i) for i in offsets(got)]


async def test_a_batch_rotting_on_disk_is_never_delivered(pyggy_server: PyggyServer) -> None:
    root = await connect(pyggy_server, reconnect=False)
    await fill(root)
    [path] = [p for p in pyggy_server.data_path.rglob("partitions/0/*.log")
              if p.stat().st_size > 1 << 20]
    good = path.read_bytes()
    bad = 20  # batches are of one size: the 21st is several chunks into the response
    size = len(good) // BATCHES
    pos = bad * size + size // 2
    with open(path, "r+b") as f:  # a bit rots under the running server
        f.seek(pos)
        f.write(bytes([good[pos] ^ 0x04]))
    with pytest.raises(Exception):  # noqa: B017 - the SDK reports the closed connection
        await asyncio.wait_for(poll(root, "s", "t", count=TOTAL), 30)
    pyggy_server.wait_for_log("while being streamed; marked damaged")
    again = await connect(pyggy_server, reconnect=False)
    got = await asyncio.wait_for(poll(again, "s", "t", count=TOTAL), 30)
    assert offsets(got) == list(range(bad * PER_BATCH))  # up to the batch, not past it
    assert payloads(got) == [payload(i) for i in range(bad * PER_BATCH)]
    after = await poll(again, "s", "t", PollingStrategy.Offset((bad + 1) * PER_BATCH),
                       count=TOTAL)
    assert offsets(after) == list(range((bad + 1) * PER_BATCH, TOTAL))
