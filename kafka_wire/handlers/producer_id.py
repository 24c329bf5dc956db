"""InitProducerId (22): producer ids and epochs for idempotent producers; the principal must
be allowed to write somewhere (IDEMPOTENT_WRITE, implied by WRITE as in KIP-679). With a
transactional id the transaction coordinator answers (epoch bump, fencing the previous
instance, aborting its open transaction); the principal must be allowed the transactional id
(TRANSACTIONAL_ID_AUTHORIZATION_FAILED otherwise). PRODUCER_FENCED is INVALID_PRODUCER_EPOCH
below v4, as in Kafka. Without a transactional id the answer is always a new producer id at
epoch 0, even for a request naming the producer's id and epoch (KIP-360's bump), as Kafka's
coordinator answers it. In a cluster ids come from blocks the metadata group grants
(kafka_wire/replicated.py) on the metadata primary, from each replica's own range elsewhere."""

from __future__ import annotations

import logging

from pyggy.core.engine.cluster import NotLeader
from pyggy.core.errors import IggyError
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire import replicated
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.transactions import TxnError

log = logging.getLogger(__name__)


def _answer(error: int, pid: int = -1, epoch: int = -1) -> dict:
    return {"throttle_time_ms": 0, "error_code": error, "producer_id": pid,
            "producer_epoch": epoch}


async def _ids(conn: Connection, transactional: bool) -> int:
    """In a cluster, a block of ids from the metadata group when few are left: NONE, or the
    error to answer. A node that is not the metadata primary answers a transactional producer
    NOT_COORDINATOR (it asks the coordinator FindCoordinator names), an idempotent one from
    its own range: librdkafka sends that InitProducerId to a broker of its choice and retries
    it there, so every broker must answer it."""
    try:
        await replicated.ensure_producer_ids(conn.server)
    except (IggyError, OSError) as e:
        if not transactional and isinstance(e, NotLeader):
            return ErrorCode.NONE
        log.warning("producer ids: no block granted here: %s", e)
        return replicated.error_code(e)
    return ErrorCode.NONE


async def handle(conn: Connection, req: dict, version: int) -> dict:
    tid = req.get("transactional_id")
    if tid:
        if denied := authz.transactional_id(conn, tid):
            return _answer(denied)
        if error := await _ids(conn, True):
            return _answer(error)
        fenced = ErrorCode.PRODUCER_FENCED if version >= 4 else ErrorCode.INVALID_PRODUCER_EPOCH
        try:
            pid, epoch = await conn.server.txn.init(
                tid, req["transaction_timeout_ms"], req.get("producer_id", -1),
                req.get("producer_epoch", -1), fenced)
        except TxnError as e:
            return _answer(e.code)
        except OSError as e:
            log.error("producer ids: could not reserve the next block: %s", e)
            return _answer(ErrorCode.KAFKA_STORAGE_ERROR)
        return _answer(ErrorCode.NONE, pid, epoch)
    denied = authz.cluster(conn)
    if denied:
        return _answer(denied)
    if error := await _ids(conn, False):
        return _answer(error)
    try:
        error, pid, epoch = conn.server.producers.init()
    except OSError as e:  # the next block of ids could not be reserved (disk full)
        log.error("producer ids: could not reserve the next block: %s", e)
        error, pid, epoch = ErrorCode.KAFKA_STORAGE_ERROR, -1, -1
    return _answer(error, pid, epoch)
