"""apache-iggy 0.8.0 half of the mixed-SDK exchange (the 0.9.0 half runs in pytest).

Expects stream "mixed" with topic "t" (2 partitions) whose partition 1 the 0.9 SDK filled.
Creates topic "from08" with classic fixed-field settings, sends two batches to partition 0,
then polls both partitions (First) so pytest can compare them with what 0.9 polls.
Usage: python sdk08_mixed.py HOST:PORT
"""

from __future__ import annotations

import datetime

from _common import Results, login, messages, run
from apache_iggy import PollingStrategy, SendMessage

STREAM = "mixed"
TOPIC = "t"
BATCHES = ([b"from-0.8 #0", "from-0.8 #1 \u00e9"], [b"\x00\x01\x02\xff", b"z" * 70_000])


async def main(address: str, _args: list[str]) -> dict:
    out = Results()
    client = await login(address)
    await out.step("create_topic", lambda: client.create_topic(
        STREAM, "from08", 2, compression_algorithm="gzip",
        message_expiry=datetime.timedelta(minutes=90), max_topic_size=5 << 30))
    for i, batch in enumerate(BATCHES):
        await out.step(f"send_{i}", lambda b=batch: client.send_messages(
            STREAM, TOPIC, 0, [SendMessage(x) for x in b]))
    for pid in (0, 1):
        async def poll(pid=pid):
            return messages(await client.poll_messages(STREAM, TOPIC, pid,
                                                       PollingStrategy.First(), 100, False))
        await out.step(f"poll_p{pid}", poll)

    async def topic():
        t = await client.get_topic(STREAM, TOPIC)
        return {"id": t.id, "name": t.name, "partitions_count": t.partitions_count,
                "messages_count": t.messages_count}

    await out.step("get_topic", topic)
    return out


if __name__ == "__main__":
    run(main)
