"""ListOffsets (2): earliest (-2), latest (-1), max timestamp (-3) and by timestamp; reads of
archived segments are awaited, never blocking the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pyggy.core.model import Topic
from pyggy.core.records import kafka_batch
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire import routing
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode

EARLIEST, LATEST, MAX_TIMESTAMP = -2, -1, -3


async def _records(conn: Connection, t: Topic, index: int,
                   offset: int) -> AsyncIterator[tuple[int, int]]:
    """(offset, timestamp ms) of the Kafka view of records from the batch holding `offset`."""
    data = conn.server.engine.data
    hw = data.watermarks(t, index)[1]
    while offset < hw:
        chunks = await data.read_kafka_async(t, index, offset, 1 << 20)
        if not chunks:
            return
        for chunk in chunks:
            for rec in kafka_batch.iter_records(chunk):
                if rec[0] >= offset:
                    yield rec[0], rec[1]
            fields = kafka_batch.batch_fields(chunk)
            offset = max(offset, fields[0] + fields[6] + 1)


async def _lookup(conn: Connection, t: Topic, index: int, timestamp: int,
                  committed: bool) -> tuple[int, int]:
    shards = conn.server.shards
    if shards is not None and shards.remote(t, index):  # its shard process answers
        return await shards.lookup(t, index, timestamp, committed)
    data = conn.server.engine.data
    start, end = data.watermarks(t, index)
    if timestamp == EARLIEST:
        return -1, start
    if timestamp == LATEST:  # read_committed: the last stable offset
        return -1, conn.server.engine.txns.last_stable(t, index, end) if committed else end
    if timestamp == MAX_TIMESTAMP:
        best = (-1, -1)
        async for off, ts in _records(conn, t, index, start):
            if ts > best[0]:
                best = (ts, off)
        return best
    first = await data.offset_for_timestamp(t, index, timestamp * 1000, use_max=True)
    if first is None:
        return -1, -1
    async for off, ts in _records(conn, t, index, first):
        if ts >= timestamp:
            return ts, off
    return -1, -1


async def handle(conn: Connection, req: dict, version: int) -> dict:
    topics = []
    # A lookup can read a whole partition (max timestamp): a request naming one partition
    # many times does it once, not once per mention.
    done: dict[tuple[int, int, int, int], tuple[int, int]] = {}
    committed = req.get("isolation_level", 0) == 1
    for topic in req["topics"]:
        t = conn.server.topics.resolve(topic["name"])
        denied = authz.topic_by_name(conn, topic["name"], t)
        parts = []
        for p in topic["partitions"]:
            index = p["partition_index"]
            entry = {"partition_index": index, "error_code": ErrorCode.NONE, "timestamp": -1,
                     "offset": -1, "leader_epoch": 0, "old_style_offsets": []}
            if denied:
                entry["error_code"] = denied
            elif t is None or not 0 <= index < len(t.partitions):
                entry["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif error := routing.leader_error(conn, t, index,
                                               p.get("current_leader_epoch", -1)):
                entry["error_code"] = error
            else:
                entry["leader_epoch"] = routing.leader_epoch(conn, t, index)
                key = (t.stream_id, t.id, index, p["timestamp"])
                if key not in done:
                    done[key] = await _lookup(conn, t, index, p["timestamp"], committed)
                entry["timestamp"], entry["offset"] = done[key]
            parts.append(entry)
        topics.append({"name": topic["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
