"""Fetch (1): long poll on max_wait/min_bytes, max_bytes and partition max_bytes.

Every requested partition is answered. A large read of stored Kafka batches is streamed: its
first chunk is verified here, the rest (a `Deferred` of known length) while the response is
written (kafka_wire/listener.py, core/storage/streamed.py). A fetch offset inside a batch
returns that whole batch (the client skips the records before its offset). Kafka batches are
served as stored; Iggy batches are transcoded. There are no fetch sessions: the response's
session id is 0, so clients keep sending full fetches. Offsets in archived (tiered) segments
are read from the archive without blocking the event loop; if the archive cannot be read, or a
stored batch fails its checksum and no verified copy repairs it, that partition answers
KAFKA_STORAGE_ERROR (retriable) — corrupt bytes are never sent.

With isolation_level read_committed (1) a partition is read only up to its last stable offset
(the first offset of its oldest open transaction) and lists the aborted transactions that
overlap what it returns, so the client drops their records; read_uncommitted reads up to the
high watermark. Both get the last stable offset.

`max_bytes` bounds the whole response: only the first non-empty partition may exceed it (by its
first batch, so a record larger than the limit can still be read); a later partition whose
first batch does not fit in what remains is answered without records, as Kafka does (Kafka
sends a truncated batch there; clients drop it and fetch that partition again).
"""

from __future__ import annotations

import asyncio

from pyggy.core.engine.data import Deferred
from pyggy.core.errors import CorruptBatch, RemoteReadError
from pyggy.core.model import Topic
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire import routing
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.protocol.primitives import RecordParts

READ_COMMITTED = 1  # isolation_level: read only below the last stable offset (KIP-98)

async def _partition(conn: Connection, t: Topic | None, denied: int, p: dict,
                     budget: list[int], committed: bool, stream: bool = True) -> dict:
    """One partition's answer; with `stream` false its records are read whole (a shard process
    answering for another one: pyggy/shards/kafka.py)."""
    index = p["partition"]
    out = {"partition_index": index, "error_code": ErrorCode.NONE, "high_watermark": -1,
           "last_stable_offset": -1, "log_start_offset": -1, "aborted_transactions": [],
           "preferred_read_replica": -1, "records": b""}
    if denied:
        out["error_code"] = denied
        return out
    if t is None or not 0 <= index < len(t.partitions):
        out["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return out
    not_leader = routing.leader_error(conn, t, index, p.get("current_leader_epoch", -1))
    if not_leader:
        out["error_code"] = not_leader
        return out
    shards = conn.server.shards
    if shards is not None and shards.remote(t, index):  # its shard process answers
        return await shards.fetch(t, p, budget, committed)
    engine = conn.server.engine
    start, hw = engine.data.watermarks(t, index)
    offset = p["fetch_offset"]
    if offset > hw and routing.unsettled(conn, t, index):
        # a new leader still executing what it took over: its end is not yet the committed
        # end a consumer may have read up to from the old one (retriable; N5, docs/cluster.md)
        out["error_code"] = ErrorCode.NOT_LEADER_OR_FOLLOWER
        return out
    if offset < start or offset > hw:  # Kafka leaves the watermarks at -1 with this error
        out["error_code"] = ErrorCode.OFFSET_OUT_OF_RANGE
        return out
    lso = engine.txns.last_stable(t, index, hw)
    out.update(high_watermark=hw, last_stable_offset=lso, log_start_offset=start)
    end = lso if committed else hw
    if offset >= end or budget[0] <= 0:
        out["records"] = b""
        return out
    if committed:
        out["aborted_transactions"] = [{"producer_id": pid, "first_offset": first} for
                                       pid, first in engine.txns.aborted(t, index, offset, end)]
    limit = min(p["partition_max_bytes"], budget[0])
    try:
        read = engine.data.read_kafka_streamed if stream else engine.data.read_kafka_async
        chunks = await read(t, index, offset, max(limit, 1), end - offset)
    except (RemoteReadError, CorruptBatch):  # archive unreachable, or a damaged stored batch
        out["error_code"] = ErrorCode.KAFKA_STORAGE_ERROR
        return out
    # written uncopied; a Deferred tail is read and verified while it is written
    data = chunks[0] if len(chunks) == 1 and type(chunks[0]) is not Deferred else \
        RecordParts(chunks)
    if budget[1] and len(data) > limit:  # only the first non-empty partition may exceed
        return out
    budget[1] = 1
    budget[0] -= len(data)
    out["records"] = data
    return out


async def _respond(conn: Connection, req: dict, resolved: list) -> tuple[dict, int]:
    budget = [req.get("max_bytes", 0x7FFFFFFF), 0]  # bytes left, whether any were taken
    committed = req.get("isolation_level", 0) == READ_COMMITTED
    responses = []
    total = 0
    for topic, t, denied in resolved:
        parts = [await _partition(conn, t, denied, p, budget, committed)
                 for p in topic["partitions"]]
        total += sum(len(p["records"] or b"") for p in parts)
        responses.append({"topic": topic["topic"], "partitions": parts})
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "session_id": 0,
            "responses": responses}, total


async def handle(conn: Connection, req: dict, version: int) -> dict:
    server = conn.server
    resolved = []
    for topic in req["topics"]:
        t = server.topics.resolve(topic["topic"])
        denied = authz.topic_by_name(conn, topic["topic"], t)
        resolved.append((topic, None if denied else t, denied))
    response, total = await _respond(conn, req, resolved)
    wait_ms = req["max_wait_ms"]
    if total >= max(req["min_bytes"], 1) or wait_ms <= 0:
        return response
    keys = list(dict.fromkeys((t.stream_id, t.id, p["partition"]) for topic, t, _ in resolved
                              if t is not None for p in topic["partitions"]))
    if not keys:
        return response
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_ms / 1000
    while total < max(req["min_bytes"], 1):
        remaining = deadline - loop.time()
        if remaining <= 0 or conn.closed:
            break
        fut = server.waiters.wait(keys)
        conn.parked = fut
        try:
            if server.shards is not None:  # appends on other shards wake it too
                await server.shards.wait(keys, fut, remaining)
            else:
                await asyncio.wait_for(fut, remaining)
        except TimeoutError:
            break
        finally:
            conn.parked = None
            server.waiters.discard(keys, fut)
        if conn.closed:
            break
        response, total = await _respond(conn, req, resolved)
    return response
