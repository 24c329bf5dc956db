"""InitProducerId (22): producer ids and epochs for idempotent producers; the principal must
be allowed to write somewhere (IDEMPOTENT_WRITE, implied by WRITE as in KIP-679)."""

from __future__ import annotations

from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire.context import Connection


def handle(conn: Connection, req: dict, version: int) -> dict:
    denied = authz.cluster(conn)
    if denied:
        return {"throttle_time_ms": 0, "error_code": denied, "producer_id": -1,
                "producer_epoch": -1}
    error, pid, epoch = conn.server.producers.init(
        req.get("transactional_id"), req.get("producer_id", -1), req.get("producer_epoch", -1))
    return {"throttle_time_ms": 0, "error_code": error, "producer_id": pid,
            "producer_epoch": epoch}
