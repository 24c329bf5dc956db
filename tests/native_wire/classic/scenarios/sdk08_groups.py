"""apache-iggy 0.8.0 consumer groups (IggyConsumer) against the server, in two processes.

`first`: create stream/topic (3 partitions), send 5/3/2 messages to partitions 0/1/2, then
  - "cg-manual" (Next, no auto commit) reads all 10 — 0.8 polls a group WITHOUT a partition,
    the server picks the member's partitions in turn — then stores offsets explicitly
    (p0 → 2, p1 → 2, p2 → 1 then deleted);
  - "cg-auto" (Next, auto commit when polling) reads all 10;
  - "cg-p1" (explicit partition 1, First) reads partition 1 only;
  - a group on a missing stream, and a missing group without auto-create, fail at init.
`resume` (a new process: the first one's members are gone): send "late" to partition 0, then
  - "cg-manual" resumes from the stored offsets, "cg-auto" from the auto-committed ones;
  - two members of "cg-pair" split the partitions and read every message once.
Usage: python sdk08_groups.py HOST:PORT first|resume
"""

from __future__ import annotations

import asyncio
import datetime

from _common import Results, login, message, run
from apache_iggy import AutoCommit, AutoCommitWhen, PollingStrategy, SendMessage

STREAM = "groups"
TOPIC = "t"
COUNTS = (5, 3, 2)
POLL_INTERVAL = datetime.timedelta(milliseconds=5)


async def take(consumer, n: int, timeout: float = 5.0) -> list[dict]:
    """The next `n` messages of a consumer (each must arrive within `timeout`)."""
    it = consumer.iter_messages()
    return [message(await asyncio.wait_for(it.__anext__(), timeout)) for _ in range(n)]


async def extra(consumer, wait: float = 0.4) -> list[dict]:
    """Messages beyond the expected ones arriving within `wait` (the consumer's last use)."""
    it = consumer.iter_messages()
    try:
        return [message(await asyncio.wait_for(it.__anext__(), wait))]
    except TimeoutError:
        return []


def group(client, name: str, strategy=None, auto_commit=None, **kwargs):
    return client.consumer_group(
        name, STREAM, TOPIC, polling_strategy=strategy or PollingStrategy.Next(),
        batch_length=10, auto_commit=auto_commit or AutoCommit.Disabled(),
        poll_interval=POLL_INTERVAL, **kwargs)


async def first(address: str) -> dict:
    out = Results()
    client = await login(address)
    await client.create_stream(STREAM)
    await client.create_topic(STREAM, TOPIC, len(COUNTS))
    for pid, n in enumerate(COUNTS):
        await client.send_messages(STREAM, TOPIC, pid,
                                   [SendMessage(f"p{pid}-{i}") for i in range(n)])

    manual = await group(client, "cg-manual")
    out["manual_name"] = manual.name()
    out["manual_stream"] = manual.stream()
    out["manual_topic"] = manual.topic()
    await out.step("manual_read", lambda: take(manual, sum(COUNTS)))
    await out.step("manual_store_p0", lambda: manual.store_offset(2, 0))
    await out.step("manual_store_p1", lambda: manual.store_offset(2, 1))
    await out.step("manual_store_p2", lambda: manual.store_offset(1, 2))
    await out.step("manual_delete_p2", lambda: manual.delete_offset(2))
    out["manual_last_stored"] = [manual.get_last_stored_offset(p) for p in range(3)]
    out["manual_last_consumed"] = [manual.get_last_consumed_offset(p) for p in range(3)]
    await out.step("manual_extra", lambda: extra(manual))

    auto = await group(client, "cg-auto",
                       auto_commit=AutoCommit.When(AutoCommitWhen.PollingMessages()))
    await out.step("auto_read", lambda: take(auto, sum(COUNTS)))
    await out.step("auto_extra", lambda: extra(auto))

    p1 = await group(client, "cg-p1", strategy=PollingStrategy.First(), partition_id=1)
    await out.step("p1_read", lambda: take(p1, COUNTS[1]))

    async def missing_stream():
        await client.consumer_group("cg-x", "no-such-stream", TOPIC)
        return "initialized"

    await out.step("missing_stream", missing_stream)

    async def missing_group():
        await client.consumer_group("cg-missing", STREAM, TOPIC,
                                    create_consumer_group_if_not_exists=False)
        return "initialized"

    await out.step("missing_group", missing_group)
    return out


async def resume(address: str) -> dict:
    out = Results()
    client = await login(address)
    await out.step("send_late", lambda: client.send_messages(STREAM, TOPIC, 0,
                                                             [SendMessage("late")]))
    manual = await group(client, "cg-manual")
    await out.step("manual_read", lambda: take(manual, 5))
    await out.step("manual_extra", lambda: extra(manual))
    auto = await group(client, "cg-auto",
                       auto_commit=AutoCommit.When(AutoCommitWhen.PollingMessages()))
    await out.step("auto_read", lambda: take(auto, 1))
    await out.step("auto_extra", lambda: extra(auto))

    # two members (two connections) of one group: each reads only its own partitions
    other = await login(address)
    commit = AutoCommit.When(AutoCommitWhen.PollingMessages())
    a = await group(client, "cg-pair", auto_commit=commit)
    b = await group(other, "cg-pair", auto_commit=commit)
    total = sum(COUNTS) + 1
    seen: dict[str, list[dict]] = {"a": [], "b": []}

    async def drain(name: str, consumer) -> None:
        it = consumer.iter_messages()
        while len(seen["a"]) + len(seen["b"]) < total:
            try:
                seen[name].append(message(await asyncio.wait_for(it.__anext__(), 0.5)))
            except TimeoutError:
                return

    async def pair():
        await asyncio.wait_for(asyncio.gather(drain("a", a), drain("b", b)), 10)
        return seen

    await out.step("pair_read", pair)
    return out


async def main(address: str, args: list[str]) -> dict:
    return await {"first": first, "resume": resume}[args[0]](address)


if __name__ == "__main__":
    run(main)
