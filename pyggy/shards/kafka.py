"""The Kafka door across shard processes (kafka_wire/context.py ShardForward): a Produce,
Fetch, ListOffsets or OffsetForLeaderEpoch entry for a partition another shard owns is
answered by that shard's own handler code, the records travelling as they arrived or as
stored; the asking shard puts the answers of every shard into one response.

The owner runs the entry with a stand-in connection (`_Owner`): authorization happened on the
asking shard, with the same users and ACLs (metadata is on every shard)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from pyggy.core.engine.partitions import elsewhere
from pyggy.core.model import Topic
from pyggy.kafka_wire.context import Connection, KafkaServer
from pyggy.kafka_wire.handlers import fetch, list_offsets, produce

from . import rule
from .channel import Reply
from .runtime import OPS, ShardRuntime


class _Owner:
    """What the per-partition handler functions read of a connection."""

    def __init__(self, server: KafkaServer) -> None:
        self.server = server
        self.closed = False


# what fetch._partition reads of a request's partition entry
_FETCH_FIELDS = ("partition", "fetch_offset", "partition_max_bytes", "current_leader_epoch")


class KafkaForward:
    def __init__(self, rt: ShardRuntime, server: KafkaServer) -> None:
        self.rt, self.server = rt, server
        self.brokers: list[tuple[int, str, int]] = []
        self.first = rt.index == 0
        rt.kafka = server

    async def caught_up(self) -> None:
        await self.rt.caught_up()

    def remote(self, t: Topic, index: int) -> bool:
        return 0 <= index < len(t.partitions) and elsewhere(t.partitions[index].log)

    def owner(self, t: Topic, index: int) -> int:
        return rule.owner(t.stream_id, t.id, index, self.rt.count)

    async def produce(self, t: Topic, index: int, records: bytes | memoryview) -> dict:
        reply, _ = await self.rt.owner_call(t, index, {"op": "kafka_produce"}, records)
        return reply

    async def fetch(self, t: Topic, partition: dict, budget: list[int], committed: bool
                    ) -> dict:
        reply, body = await self.rt.owner_call(t, partition["partition"], {
            "op": "kafka_fetch", "p": {k: partition[k] for k in _FETCH_FIELDS if k in partition},
            "budget": budget, "committed": committed})
        budget[:] = reply.pop("budget")
        reply["records"] = body
        return reply

    async def lookup(self, t: Topic, index: int, timestamp: int, committed: bool
                     ) -> tuple[int, int]:
        reply, _ = await self.rt.owner_call(t, index, {
            "op": "kafka_lookup", "timestamp": timestamp, "committed": committed})
        return int(reply["timestamp"]), int(reply["offset"])

    async def end_offset(self, t: Topic, index: int) -> int:
        reply, _ = await self.rt.owner_call(t, index, {"op": "kafka_end_offset"})
        return int(reply["offset"])

    async def wait(self, keys: list[tuple[int, int, int]], local: asyncio.Future[None],
                   timeout: float) -> None:
        by_owner: dict[int, list[tuple[int, int, int]]] = {}
        for key in keys:
            peer = rule.owner(*key, self.rt.count)
            if peer != self.rt.index:
                by_owner.setdefault(peer, []).append(key)
        waits = [asyncio.ensure_future(self.rt.call(peer, {
            "op": "kafka_wait", "keys": owned, "timeout": timeout}))
            for peer, owned in by_owner.items()]
        futures: list[asyncio.Future[Any]] = [local, *waits]
        try:
            done, _ = await asyncio.wait(futures, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
                with contextlib.suppress(BaseException):
                    await w
        if not done:
            raise TimeoutError


def _conn(rt: ShardRuntime) -> Connection:
    assert rt.kafka is not None
    return cast(Connection, _Owner(rt.kafka))


async def _produce(rt: ShardRuntime, meta: dict[str, Any], payload: memoryview) -> Reply:
    t = rt.topic(meta)
    return await produce._produce(_conn(rt), t, int(meta["partition"]), payload), b""


async def _fetch(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    t = rt.topic(meta)
    budget = [int(b) for b in meta["budget"]]
    out = await fetch._partition(_conn(rt), t, 0, meta["p"], budget, bool(meta["committed"]),
                                 stream=False)  # the records travel whole over the channel
    records = out.pop("records") or b""
    out["budget"] = budget
    if not isinstance(records, bytes | bytearray | memoryview):  # RecordParts: sent in pieces
        return out, records.parts
    return out, records


async def _lookup(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    t = rt.topic(meta)
    ts, offset = await list_offsets._lookup(_conn(rt), t, int(meta["partition"]),
                                            int(meta["timestamp"]), bool(meta["committed"]))
    return {"timestamp": ts, "offset": offset}, b""


async def _end_offset(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    assert rt.engine is not None
    t = rt.topic(meta)
    return {"offset": rt.engine.data.watermarks(t, int(meta["partition"]))[1]}, b""


async def _wait(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    assert rt.kafka is not None
    waiters = rt.kafka.waiters
    keys = [(int(s), int(t), int(p)) for s, t, p in meta["keys"]]
    fut = waiters.wait(keys)
    try:
        await asyncio.wait_for(fut, float(meta["timeout"]))
    except TimeoutError:
        pass
    finally:
        waiters.discard(keys, fut)
    return {}, b""


OPS.update(kafka_produce=_produce, kafka_fetch=_fetch, kafka_lookup=_lookup,
           kafka_end_offset=_end_offset, kafka_wait=_wait)
