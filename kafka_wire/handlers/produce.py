"""Produce (0): RecordBatch v2 validated (CRC-32C), stamped in place and stored as received.

Compressed batches are decompressed (bounded) to check their records, then stored as sent.
Idempotent producers get per-partition sequence checks; a retried duplicate batch is answered
with its original offset, and a retry arriving (on another connection) while its first attempt
is still being appended waits for that attempt's outcome. A partition's sequences are rebuilt
from its stored batches before its first idempotent batch after a start (producers retry into a
restarted server). In a cluster a refusal from the producer state (OUT_OF_ORDER_SEQUENCE_NUMBER,
INVALID_PRODUCER_EPOCH) is answered only once a barrier through the partition's group proved
this node still leads; a deposed leader that has not heard of the new view answers
NOT_LEADER_OR_FOLLOWER instead (docs/cluster.md, N-d). acks outside -1/0/1 is
INVALID_REQUIRED_ACKS; an acks=0 request that fails is answered by closing the connection, as
Kafka does (there is no response to carry it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from pyggy.core.errors import ErrorCode as IggyCode
from pyggy.core.errors import IggyError
from pyggy.core.model import Topic
from pyggy.core.records import kafka_batch
from pyggy.core.records.compression import DEFAULT_LIMIT
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire import routing
from pyggy.kafka_wire.context import CloseConnection, Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.topics import INTERNAL_TOPICS, topic_config

log = logging.getLogger(__name__)
# answers that only the producer state held here justifies
_STATE_REFUSALS = (ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, ErrorCode.INVALID_PRODUCER_EPOCH)


def _partition_result(index: int, error: int, base: int = -1, start: int = -1,
                      append_ms: int = -1, message: str | None = None) -> dict:
    return {"index": index, "error_code": error, "base_offset": base,
            "log_append_time_ms": append_ms, "log_start_offset": start, "record_errors": [],
            "error_message": message}


def stored_producer_batches(heads: Iterator[tuple[int, bytes]]
                             ) -> Iterator[tuple[int, int, int, int, int]]:
    """(base offset, producer id, epoch, base sequence, count) of the partition's recent
    stored Kafka batches (control batches skipped), from their headers alone."""
    for base, head in heads:
        if len(head) < kafka_batch.HEADER_SIZE:
            continue
        fields = kafka_batch.batch_fields(head)
        if not fields[5] & kafka_batch.CONTROL_MASK:
            yield base, fields[9], fields[10], fields[11], fields[6] + 1


def _keyless(view: memoryview, spans: list[tuple[int, int]],
             infos: list[kafka_batch.KafkaBatchInfo]) -> list[int]:
    """The positions (within their batch) of records without a key, which a compacted topic
    refuses as Kafka does; the records were checked (and decompressed) just before."""
    out: list[int] = []
    for (a, b), info in zip(spans, infos, strict=True):
        body = kafka_batch.records_region(view[a:b], DEFAULT_LIMIT)
        out += [delta for delta, key, *_ in kafka_batch.record_spans(
            body, info.record_count, info.last_offset_delta) if key is None]
    return out


def _keyless_result(index: int, partition: str, keyless: list[int]) -> dict:
    """INVALID_RECORD with one record error per keyless record (Produce v8+, KIP-467)."""
    message = f"Compacted topic cannot accept message without key in topic partition {partition}."
    result = _partition_result(index, ErrorCode.INVALID_RECORD, message=(
        f"One or more records have been rejected due to {len(keyless)} record errors in "
        f"total: {message}"))
    result["record_errors"] = [{"batch_index": i, "batch_index_error_message": message}
                               for i in keyless]
    return result


def _append_error(code: int) -> int:
    """The Kafka error of a refused append."""
    if code == IggyCode.TRANSIENT_NOT_ACCEPTED:  # the leader changed meanwhile
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    if code == IggyCode.TRANSIENT_NOT_COMMITTED:  # a view change: maybe stored, retry
        return ErrorCode.REQUEST_TIMED_OUT
    return ErrorCode.POLICY_VIOLATION if code == IggyCode.TOPIC_FULL \
        else ErrorCode.KAFKA_STORAGE_ERROR


async def _produce(conn: Connection, t: Topic | None, index: int,
                   records: bytes | memoryview | None) -> dict:
    server = conn.server
    if t is None or not 0 <= index < len(t.partitions):
        return _partition_result(index, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    data = server.engine.data
    not_leader = routing.leader_error(conn, t, index)
    if not not_leader and routing.unsettled(conn, t, index):
        not_leader = ErrorCode.NOT_LEADER_OR_FOLLOWER  # retriable, and nothing was admitted
    if not_leader:
        return _partition_result(index, not_leader)
    if records is None or len(records) == 0:
        return _partition_result(index, ErrorCode.CORRUPT_MESSAGE, message="no records")
    max_bytes = int(topic_config(t, "max.message.bytes"))
    log_append_time = topic_config(t, "message.timestamp.type") == "LogAppendTime"
    key = (t.stream_id, t.id, index)
    view = memoryview(records)
    if view.readonly:
        view = memoryview(bytearray(view))
    try:
        spans = kafka_batch.split_batches(view)
        # Records are checked inside compressed batches too (decompressed up to the limit the
        # read paths use), so what is stored can always be read back through both doors.
        infos = [kafka_batch.validate_batch(view[a:b], produce=True, max_size=max_bytes,
                                            decompress=True, limit=DEFAULT_LIMIT)
                 for a, b in spans]
    except kafka_batch.KafkaBatchError as e:
        return _partition_result(index, e.code, message=str(e))
    if "compact" in topic_config(t, "cleanup.policy"):
        keyless = _keyless(view, spans, infos)
        if keyless:
            return _keyless_result(index, f"{t.name}-{index}", keyless)
    epoch = routing.leader_epoch(conn, t, index)
    if server.leader_epochs.get(key, epoch) != epoch:
        # another broker led this partition since: its sequences are in the (replicated) log
        server.producers.forget_partitions(t.stream_id, t.id, {index})
    server.leader_epochs[key] = epoch
    if key not in server.producers.restored and any(i.producer_id >= 0 for i in infos):
        server.producers.restore(key, stored_producer_batches(
            data.producer_batch_heads(t, index)), server.now_ms())
    first_base = -1
    for (a, b), info in zip(spans, infos, strict=True):
        error, duplicate = server.producers.check(info.producer_id, info.producer_epoch,
                                                  info.base_sequence, info.record_count, key)
        if error in _STATE_REFUSALS and server.engine.cluster is not None:
            # only a leader that still leads may refuse from its producer state
            if not await routing.still_leads(conn, t, index):
                log.info("produce to %s-%d: not refused as %s, this node no longer leads "
                         "(view %d)", t.name, index, ErrorCode(error).name, epoch)
                return _partition_result(index, ErrorCode.NOT_LEADER_OR_FOLLOWER)
            error, duplicate = server.producers.check(  # with what committed meanwhile
                info.producer_id, info.producer_epoch, info.base_sequence, info.record_count,
                key)
        ours = (info.producer_id, key)
        attempt = server.producers.pending.get(ours) if info.producer_id >= 0 else None
        if not error and duplicate is None and attempt is not None and attempt[:2] == (
                info.base_sequence, info.base_sequence + info.record_count - 1):
            try:  # a retry (another connection) of a batch still being appended: its outcome
                base = await asyncio.shield(attempt[2])
            except IggyError as e:
                return _partition_result(index, _append_error(e.code), message=str(e))
            first_base = base if first_base < 0 else first_base
            continue
        if not error and info.is_transactional and duplicate is None:
            error = await server.txn.before_append(t, index, info.producer_id,
                                                   info.producer_epoch)
        if error:
            message = None
            if error in _STATE_REFUSALS:
                message = server.producers.explain(info.producer_id, info.producer_epoch,
                                                   info.base_sequence, key)
                log.debug("produce to %s-%d refused (leader epoch %d): %s", t.name, index,
                          epoch, message)
            return _partition_result(index, error, start=data.watermarks(t, index)[0],
                                     message=message)
        if duplicate is not None:
            base = duplicate
        else:
            outcome: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            if info.producer_id >= 0:
                server.producers.pending[ours] = (
                    info.base_sequence, info.base_sequence + info.record_count - 1, outcome)
            try:
                base = await data.append_kafka(t, index, view[a:b], info, log_append_time)
            except IggyError as e:
                outcome.set_exception(e)
                outcome.exception()  # retrieved: waiters, if any, answer with it too
                return _partition_result(index, _append_error(e.code), message=str(e))
            except BaseException:  # cut off (the connection closed): maybe stored, retry
                outcome.set_exception(IggyError(IggyCode.TRANSIENT_NOT_COMMITTED, "cut off"))
                outcome.exception()
                raise
            finally:
                if server.producers.pending.get(ours, (0, 0, None))[2] is outcome:
                    del server.producers.pending[ours]
            server.producers.record(info.producer_id, info.producer_epoch, info.base_sequence,
                                    info.record_count, key, base, server.now_ms())
            outcome.set_result(base)
        if first_base < 0:
            first_base = base
    append_ms = server.engine.clock.now_us() // 1000 if log_append_time else -1
    return _partition_result(index, ErrorCode.NONE, first_base, data.watermarks(t, index)[0],
                             append_ms)


async def _routed(conn: Connection, t: Topic | None, index: int,
                  records: bytes | memoryview | None) -> dict:
    """`_produce` here, or on the shard process that owns the partition (docs/sharding.md):
    one response however many shards the request spans."""
    shards = conn.server.shards
    if shards is not None and t is not None and records and shards.remote(t, index):
        return await shards.produce(t, index, records)
    return await _produce(conn, t, index, records)


async def handle(conn: Connection, req: dict, version: int) -> dict | None:
    acks = req["acks"]
    responses = []
    for td in req["topic_data"]:
        if acks not in (-1, 0, 1):
            parts = [_partition_result(pd["index"], ErrorCode.INVALID_REQUIRED_ACKS)
                     for pd in td["partition_data"]]
        else:
            t = conn.server.topics.resolve(td["name"])
            denied = authz.topic_by_name(conn, td["name"], t)
            if not denied and td["name"] in INTERNAL_TOPICS:  # Kafka: "Cannot append to
                denied = ErrorCode.INVALID_TOPIC_EXCEPTION  # internal topic"
            parts = [_partition_result(pd["index"], denied) if denied
                     else await _routed(conn, t, pd["index"], pd["records"])
                     for pd in td["partition_data"]]
        responses.append({"name": td["name"], "partition_responses": parts})
    if acks == 0:  # Kafka sends no response at all, and closes the connection on an error
        failed = [p for r in responses for p in r["partition_responses"] if p["error_code"]]
        if failed:
            raise CloseConnection(f"acks=0 produce failed with error {failed[0]['error_code']}"
                                  f": {failed[0]['error_message']}")
        return None
    return {"responses": responses, "throttle_time_ms": 0}
