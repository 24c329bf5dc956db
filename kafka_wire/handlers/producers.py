"""DescribeProducers (61, KIP-664): the idempotent and transactional producers a partition
knows (what `kafka-transactions describe-producers` shows, and what finds a hanging
transaction's producer)."""

from __future__ import annotations

from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire import routing
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.handlers.produce import stored_producer_batches
from pyggy.kafka_wire.protocol.errors import ErrorCode


def describe_producers(conn: Connection, req: dict, version: int) -> dict:
    server = conn.server
    topics = []
    for topic in req["topics"]:
        t = server.topics.resolve(topic["name"])
        denied = authz.topic_by_name(conn, topic["name"], t)
        parts = []
        for index in topic["partition_indexes"]:
            entry: dict = {"partition_index": index, "error_code": ErrorCode.NONE,
                           "error_message": None, "active_producers": []}
            parts.append(entry)
            if denied:
                entry["error_code"] = denied
                continue
            if t is None or not 0 <= index < len(t.partitions):
                entry["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            if error := routing.leader_error(conn, t, index):
                entry["error_code"] = error
                continue
            key = (t.stream_id, t.id, index)
            if key not in server.producers.restored:  # as a produce would, from the log
                server.producers.restore(key, stored_producer_batches(
                    server.engine.data.producer_batch_heads(t, index)), server.now_ms())
            for (pid, k), state in sorted(server.producers.partitions.items(),
                                          key=lambda item: item[0][0]):
                if k != key:
                    continue
                last = state.recent[-1][1] if state.recent else -1
                first = server.engine.txns.state.open_first(key, pid)
                entry["active_producers"].append({
                    "producer_id": pid, "producer_epoch": state.epoch, "last_sequence": last,
                    "last_timestamp": -1, "coordinator_epoch": -1,
                    "current_txn_start_offset": -1 if first is None else first})
        topics.append({"name": topic["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
