"""Transactions (KIP-98, transaction.version 1): AddPartitionsToTxn (24), AddOffsetsToTxn (25),
EndTxn (26), TxnOffsetCommit (28), DescribeTransactions (65), ListTransactions (66).

The rules per state live in `kafka_wire.transactions` (the coordinator); these handlers
authorize, resolve names and shape the answers. PRODUCER_FENCED is sent as
INVALID_PRODUCER_EPOCH below v2 of AddPartitionsToTxn / AddOffsetsToTxn / EndTxn, as Kafka does.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pyggy.core.errors import IggyError
from pyggy.core.transactions import STATES
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.transactions import TxnError


def _fenced(version: int) -> int:
    return ErrorCode.PRODUCER_FENCED if version >= 2 else ErrorCode.INVALID_PRODUCER_EPOCH


def _topic_results(topics: list[dict], code_of: Callable[[str, int], int]) -> list[dict]:
    return [{"name": t["name"], "results_by_partition": [
        {"partition_index": p, "partition_error_code": code_of(t["name"], p)}
        for p in t["partitions"]]} for t in topics]


async def _add_one(conn: Connection, tid: str, pid: int, epoch: int, topics: list[dict],
                   fenced: int, verify_only: bool = False) -> list[dict]:
    """One transaction's partitions: every partition gets the same error, or the
    per-partition errors (UNKNOWN_TOPIC_OR_PARTITION / TOPIC_AUTHORIZATION_FAILED) with the
    others OPERATION_NOT_ATTEMPTED. `verify_only` (v4+): only check they are in it."""
    errors: dict[tuple[str, int], int] = {}
    keys: dict[tuple[int, int, int], tuple[str, int]] = {}  # partition -> (name, index)
    for item in topics:
        t = conn.server.topics.resolve(item["name"])
        denied = authz.topic_by_name(conn, item["name"], t)
        for p in item["partitions"]:
            if denied:
                errors[(item["name"], p)] = denied
            elif t is None or not 0 <= p < len(t.partitions):
                errors[(item["name"], p)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                keys[(t.stream_id, t.id, p)] = (item["name"], p)
    code = authz.transactional_id(conn, tid)
    if not code and not errors:
        try:
            if verify_only:
                missing = conn.server.txn.verify(tid, pid, epoch, list(keys))
                errors = {keys[k]: ErrorCode.INVALID_TXN_STATE for k in missing}
            else:
                await conn.server.txn.add_partitions(tid, pid, epoch, list(keys), fenced)
        except TxnError as e:
            code = e.code
    if errors and not code:
        default = ErrorCode.NONE if verify_only else ErrorCode.OPERATION_NOT_ATTEMPTED
        return _topic_results(topics, lambda n, p: errors.get((n, p), default))
    return _topic_results(topics, lambda n, p: code)


async def add_partitions_to_txn(conn: Connection, req: dict, version: int) -> dict:
    """v0–3: one transaction (a client's). v4+: a batch of transactions, optionally only
    verified (KIP-890 part 1: a broker asks before appending); Kafka lets only brokers
    (CLUSTER_ACTION) send it."""
    if version < 4:
        results = await _add_one(conn, req["v3_and_below_transactional_id"],
                                 req["v3_and_below_producer_id"],
                                 req["v3_and_below_producer_epoch"],
                                 req["v3_and_below_topics"], _fenced(version))
        return {"throttle_time_ms": 0, "results_by_topic_v3_and_below": results}
    if denied := authz.cluster(conn, authz.CLUSTER_ACTION):
        return {"throttle_time_ms": 0, "error_code": denied, "results_by_transaction": []}
    out = []
    for txn in req["transactions"]:
        results = await _add_one(conn, txn["transactional_id"], txn["producer_id"],
                                 txn["producer_epoch"], txn["topics"], ErrorCode.PRODUCER_FENCED,
                                 txn["verify_only"])
        out.append({"transactional_id": txn["transactional_id"], "topic_results": results})
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE, "results_by_transaction": out}


async def add_offsets_to_txn(conn: Connection, req: dict, version: int) -> dict:
    tid, group = req["transactional_id"], req["group_id"]
    code = authz.transactional_id(conn, tid) or authz.group(conn, group)
    if not code:
        try:
            await conn.server.txn.add_offsets(tid, req["producer_id"], req["producer_epoch"],
                                              group, _fenced(version))
        except TxnError as e:
            code = e.code
    return {"throttle_time_ms": 0, "error_code": code}


async def end_txn(conn: Connection, req: dict, version: int) -> dict:
    tid = req["transactional_id"]
    code = authz.transactional_id(conn, tid)
    if not code:
        try:
            await conn.server.txn.end(tid, req["producer_id"], req["producer_epoch"],
                                      req["committed"], _fenced(version))
        except TxnError as e:
            code = e.code
        except OSError:  # a marker could not be written: the client retries EndTxn
            code = ErrorCode.COORDINATOR_NOT_AVAILABLE
    return {"throttle_time_ms": 0, "error_code": code}


async def txn_offset_commit(conn: Connection, req: dict, version: int) -> dict:
    """Offsets staged in the transaction; the group sees them when it commits."""
    tid, group = req["transactional_id"], req["group_id"]
    server = conn.server
    code = authz.transactional_id(conn, tid) or authz.group(conn, group)
    errors: dict[tuple[str, int], int] = {}
    staged: dict[tuple[str, int], tuple[str, int, int, int, str]] = {}  # the last one wins
    for item in req["topics"]:
        t = server.topics.resolve(item["name"])
        denied = authz.topic_by_name(conn, item["name"], t)
        for p in item["partitions"]:
            index = p["partition_index"]
            if denied:
                errors[(item["name"], index)] = denied
            elif t is None or not 0 <= index < len(t.partitions):
                errors[(item["name"], index)] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                staged[(item["name"], index)] = (item["name"], index, p["committed_offset"],
                                                 p.get("committed_leader_epoch", -1),
                                                 p["committed_metadata"] or "")
    if not code and staged:
        try:
            await server.txn.stage_offsets(tid, req["producer_id"], req["producer_epoch"],
                                           group, list(staged.values()))
        except TxnError as e:
            code = e.code
        except IggyError:  # more than the state log takes in one command
            code = ErrorCode.INVALID_REQUEST
    return {"throttle_time_ms": 0, "topics": [
        {"name": item["name"], "partitions": [
            {"partition_index": p["partition_index"],
             "error_code": code or errors.get((item["name"], p["partition_index"]), 0)}
            for p in item["partitions"]]} for item in req["topics"]]}


def describe_transactions(conn: Connection, req: dict, version: int) -> dict:
    server = conn.server
    out = []
    for tid in req["transactional_ids"]:
        entry = {"error_code": ErrorCode.NONE, "transactional_id": tid, "transaction_state": "",
                 "transaction_timeout_ms": 0, "transaction_start_time_ms": -1,
                 "producer_id": -1, "producer_epoch": -1, "topics": []}
        t = server.engine.txns.get(tid)
        if code := authz.transactional_id(conn, tid):
            entry["error_code"] = code
        elif t is None:
            entry["error_code"] = ErrorCode.TRANSACTIONAL_ID_NOT_FOUND
        else:
            by_topic: dict[str, list[int]] = {}
            for stream_id, topic_id, p in sorted(t.partitions):
                topic = server.engine.metadata.get_topic(stream_id, topic_id)
                if topic is not None:
                    by_topic.setdefault(server.topics.name_of(topic), []).append(p)
            entry.update(transaction_state=t.state, transaction_timeout_ms=t.timeout_ms,
                         transaction_start_time_ms=t.started_ms, producer_id=t.producer_id,
                         producer_epoch=t.epoch, topics=[
                             {"topic": name, "partitions": parts}
                             for name, parts in by_topic.items()])
        out.append(entry)
    return {"throttle_time_ms": 0, "transaction_states": out}


def list_transactions(conn: Connection, req: dict, version: int) -> dict:
    states = set(req["state_filters"])
    pids = set(req["producer_id_filters"])
    duration = req.get("duration_filter", -1)
    pattern = req.get("transactional_id_pattern")
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error:
        return {"throttle_time_ms": 0, "error_code": ErrorCode.INVALID_REQUEST,
                "unknown_state_filters": [], "transaction_states": []}
    if not authz.transactional_id_allowed(conn.user):
        txns = []  # as Kafka: only the ids the principal may describe are listed
    else:
        txns = list(conn.server.engine.txns.state.txns.values())
    now_ms = conn.server.engine.clock.now_us() // 1000
    picked = [t for t in txns
              if (not states or t.state in states) and (not pids or t.producer_id in pids)
              and (duration < 0 or (t.started_ms >= 0 and now_ms - t.started_ms > duration))
              and (regex is None or regex.fullmatch(t.transactional_id))]
    return {"throttle_time_ms": 0, "error_code": ErrorCode.NONE,
            "unknown_state_filters": sorted(states - set(STATES)),
            "transaction_states": [{"transactional_id": t.transactional_id,
                                    "producer_id": t.producer_id,
                                    "transaction_state": t.state} for t in picked]}
