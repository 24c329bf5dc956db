"""apache-iggy 0.8.0 (classic protocol), run by test_handoff.py with the 0.8.0 venv's python.

Usage: python sdk08_handoff.py HOST:PORT BATCHES. Logs in, prints {"ready": true}, reads the
partition to use from stdin, sends BATCHES batches of 3 messages to it (stream `shop`, topic
`events`), polls them back, prints the payloads and offsets, and exits on the next stdin line.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import sys

from apache_iggy import IggyClient, PollingStrategy, SendMessage


async def main(address: str, batches: int) -> None:
    client = IggyClient(address)
    await client.connect()
    await client.login_user("iggy", "iggy")
    print(json.dumps({"ready": True}), flush=True)
    partition = int(await asyncio.to_thread(sys.stdin.readline))
    for i in range(batches):
        await client.send_messages("shop", "events", partition,
                                   [SendMessage(f"c{i}-{j}") for j in range(3)])
    got = await client.poll_messages("shop", "events", partition, PollingStrategy.Offset(0),
                                     1000, False)
    print(json.dumps({"sdk_version": importlib.metadata.version("apache-iggy"),
                      "payloads": [m.payload().decode() for m in got],
                      "offsets": [m.offset() for m in got]}), flush=True)
    await asyncio.to_thread(sys.stdin.readline)


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
