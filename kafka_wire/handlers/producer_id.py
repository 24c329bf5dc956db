"""InitProducerId (22): producer ids and epochs for idempotent producers; the principal must
be allowed to write somewhere (IDEMPOTENT_WRITE, implied by WRITE as in KIP-679)."""

from __future__ import annotations

import logging

from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode

log = logging.getLogger(__name__)


def handle(conn: Connection, req: dict, version: int) -> dict:
    denied = authz.cluster(conn)
    if denied:
        return {"throttle_time_ms": 0, "error_code": denied, "producer_id": -1,
                "producer_epoch": -1}
    try:
        error, pid, epoch = conn.server.producers.init(
            req.get("transactional_id"), req.get("producer_id", -1),
            req.get("producer_epoch", -1))
    except OSError as e:  # the next block of ids could not be reserved (disk full)
        log.error("producer ids: could not reserve the next block: %s", e)
        error, pid, epoch = ErrorCode.KAFKA_STORAGE_ERROR, -1, -1
    return {"throttle_time_ms": 0, "error_code": error, "producer_id": pid,
            "producer_epoch": epoch}
