"""apache-iggy 0.8.0 (classic protocol): one large poll of whole stored batches (several MB,
streamed by the server chunk by chunk: native_wire/handlers/messages.py `ClassicDeferred`).
Usage: python sdk08_large_poll.py HOST:PORT PER_BATCH BATCHES
"""

from __future__ import annotations

import hashlib

from _common import Results, login, run
from apache_iggy import PollingStrategy, SendMessage


def payload(i: int) -> bytes:
    return b"m%07d" % i + bytes([i % 251]) * 1000


async def main(address: str, args: list[str]) -> dict:
    per_batch, batches = int(args[0]), int(args[1])
    out = Results()
    client = await login(address)
    await client.create_stream("big")
    await client.create_topic("big", "t", 1)
    for k in range(batches):
        await client.send_messages("big", "t", 0, [SendMessage(payload(k * per_batch + i))
                                                   for i in range(per_batch)])

    async def poll(start: int, count: int) -> dict:
        got = await client.poll_messages("big", "t", 0, PollingStrategy.Offset(start), count,
                                         False)
        return {"offsets": [m.offset() for m in got],
                "payloads_sha256": hashlib.sha256(b"".join(m.payload() for m in got)).hexdigest()}

    await out.step("all", lambda: poll(0, per_batch * batches))
    await out.step("from_batch_7", lambda: poll(7 * per_batch, 10 * per_batch + 13))
    return dict(out)


run(main)
