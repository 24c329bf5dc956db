"""InitProducerId (22): producer ids and epochs for idempotent producers."""

from __future__ import annotations

from pyggy.kafka_wire.context import Connection


def handle(conn: Connection, req: dict, version: int) -> dict:
    error, pid, epoch = conn.server.producers.init(
        req.get("transactional_id"), req.get("producer_id", -1), req.get("producer_epoch", -1))
    return {"throttle_time_ms": 0, "error_code": error, "producer_id": pid,
            "producer_epoch": epoch}
