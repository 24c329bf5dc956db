"""Topic administration: CreateTopics (19), DeleteTopics (20), CreatePartitions (37),
DeleteRecords (21).

Topics created here go where kafka_wire/topics.py's naming rule puts them: `<stream>.<topic>`
into the existing stream `<stream>`, any other name into `[kafka] default_stream`; each needs
the principal's right on the stream or topic (kafka_wire/authorizer.py). One broker:
a replication factor of 1 (or -1, the default) is all there is. Every change is applied before
the response is sent, so Metadata shows it at once.
"""

from __future__ import annotations

from uuid import UUID

from pyggy.core.errors import IggyError
from pyggy.core.model import MAX_PARTITIONS_PER_REQUEST, Topic
from pyggy.core.options import topic_options
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire import routing
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.topics import (
    DEFAULT_CONFIG,
    DYNAMIC_TOPIC_CONFIG,
    KafkaError,
    check_name,
    configs_to_options,
    kafka_error,
    options_configs,
    topic_configs,
    topic_id,
)

ZERO_ID = bytes(16)
HIGH_WATERMARK = -1
UNKNOWN_TOPIC = "This server does not host this topic-partition."
UNKNOWN_ID = "This server does not host this topic ID."
AUTHORIZATION_FAILED = "Topic authorization failed."


def _uuid_bytes(value: UUID | bytes | None) -> bytes:
    if isinstance(value, UUID):
        return value.bytes
    return bytes(value or ZERO_ID)


def _duplicates(names: list[str]) -> set[str]:
    seen: set[str] = set()
    dupes: set[str] = set()
    for n in names:
        if n in seen:
            dupes.add(n)
        seen.add(n)
    return dupes


def _check_replicas(brokers: list[int], node: int) -> None:
    """A manual assignment can only name this broker, once (Kafka's messages)."""
    for b in brokers:
        if b != node:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"The manual partition "
                             f"assignment includes broker {b}, but no such broker is "
                             f"registered.")
    if len(brokers) > 1:
        raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"The manual partition "
                         f"assignment includes the broker {node} more than once.")
    if not brokers:
        raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                         "The manual partition assignment includes an empty replica list.")


# -- CreateTopics ---------------------------------------------------------------------------
async def _create_one(conn: Connection, item: dict, validate_only: bool, version: int) -> dict:
    server = conn.server
    node = server.settings.node_id
    name = item["name"]
    partitions, rf = item["num_partitions"], item["replication_factor"]
    assignments = item["assignments"] or []
    check_name(name)
    if authz.missing_topic(conn, name):  # CREATE where the name puts it, existing or not
        raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED, AUTHORIZATION_FAILED)
    if server.topics.resolve(name) is not None:
        raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
    if assignments:
        for field, value in (("numPartitions", partitions), ("replicationFactor", rf)):
            if value != -1:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"A manual partition assignment "
                                 f"was specified, but {field} was not set to -1.")
        indexes = sorted(a["partition_index"] for a in assignments)
        if indexes != list(range(len(assignments))):
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             "partitions should be a consecutive 0-based integer sequence")
        for a in assignments:
            _check_replicas(list(a["broker_ids"]), node)
        partitions, rf = len(assignments), 1
    if partitions == -1:
        partitions = server.settings.num_partitions
    if rf == -1:
        rf = 1
    if partitions <= 0:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                         "Number of partitions was set to an invalid non-positive value.")
    if rf <= 0:
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                         "Replication factor must be larger than 0, or -1 to use the default "
                         "value.")
    brokers = len(routing.brokers(conn))  # a cluster replicates every partition on all
    if rf > brokers:
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                         f"Unable to replicate the partition {rf} time(s): The target "
                         f"replication factor of {rf} cannot be reached because only "
                         f"{brokers} broker(s) are registered.")
    configs: dict[str, str | None] = {}
    for c in item["configs"] or []:
        if c["value"] is None:
            raise KafkaError(ErrorCode.INVALID_CONFIG,
                             f"Null value not supported for topic configs: {c['name']}")
        configs[c["name"]] = c["value"]
    t = await server.topics.create(name, partitions, configs, validate_only=validate_only)
    result = {"num_partitions": partitions, "replication_factor": rf}
    if t is not None:
        result["topic_id"] = topic_id(t)
        described = topic_configs(t)
    else:  # validate_only: the configs the topic would have
        described = options_configs(topic_options(configs_to_options(configs)))
    if version >= 5:
        result["configs"] = [
            {"name": n, "value": v, "read_only": False, "is_sensitive": False,
             "config_source": DEFAULT_CONFIG if default else DYNAMIC_TOPIC_CONFIG}
            for n, (v, default) in sorted(described.items())]
    return result


def _once(items: list[dict]) -> tuple[list[dict], set[str]]:
    """The items with one entry per name (the first), and the names given more than once."""
    dupes = _duplicates([i["name"] for i in items])
    firsts: dict[str, dict] = {}
    for i in items:
        firsts.setdefault(i["name"], i)
    return list(firsts.values()), dupes


async def create_topics(conn: Connection, req: dict, version: int) -> dict:
    items, dupes = _once(req["topics"])
    results = []
    for item in items:
        out = {"name": item["name"], "topic_id": ZERO_ID, "error_code": ErrorCode.NONE,
               "error_message": None, "topic_config_error_code": ErrorCode.NONE,
               "num_partitions": -1, "replication_factor": -1, "configs": []}
        if item["name"] in dupes:
            out["error_code"] = ErrorCode.INVALID_REQUEST
            out["error_message"] = "Duplicate topic name."
        else:
            try:
                out.update(await _create_one(conn, item, req["validate_only"], version))
            except KafkaError as e:
                out["error_code"], out["error_message"] = e.code, e.message or None
        results.append(out)
    return {"throttle_time_ms": 0, "topics": results}


# -- DeleteTopics ---------------------------------------------------------------------------
async def _forget(conn: Connection, name: str, t: Topic, out: dict) -> None:
    """Delete a topic. What the Kafka door keeps about it (idempotent producers' sequences,
    the groups' committed offsets) goes with it through the engine's delete listener, which
    serves a delete through either door. A refused delete is written into `out`."""
    try:
        await conn.server.topics.delete(t)
    except IggyError as e:
        error = kafka_error(e, ErrorCode.UNKNOWN_SERVER_ERROR)
        out["error_code"], out["error_message"] = error.code, error.message


async def delete_topics(conn: Connection, req: dict, version: int) -> dict:
    topics = conn.server.topics
    wanted = (req["topics"] if version >= 6
              else [{"name": n, "topic_id": ZERO_ID} for n in req["topic_names"]])
    responses = []
    for item in wanted:
        name, raw_id = item["name"], _uuid_bytes(item["topic_id"])
        out = {"name": name, "topic_id": raw_id, "error_code": ErrorCode.NONE,
               "error_message": None}
        if name is not None and raw_id != ZERO_ID:
            out["error_code"] = ErrorCode.INVALID_REQUEST
            out["error_message"] = "You may not specify both topic name and topic id."
        elif name is None and raw_id == ZERO_ID:
            out["error_code"] = ErrorCode.INVALID_REQUEST
            out["error_message"] = "Neither topic name nor id were specified."
        elif name is None:
            found = topics.by_id(raw_id)
            if found is None or not authz.describable(conn, found[1]):
                out["error_code"], out["error_message"] = ErrorCode.UNKNOWN_TOPIC_ID, UNKNOWN_ID
            elif denied := authz.topic(conn, found[1], found[0]):
                out["error_code"], out["error_message"] = denied, AUTHORIZATION_FAILED
            else:
                out["name"] = found[0]
                await _forget(conn, found[0], found[1], out)
        else:
            t = topics.resolve(name)
            if t is None:
                denied = authz.missing_topic(conn, name, authz.DESCRIBE)
                out["error_code"] = denied or ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                out["error_message"] = AUTHORIZATION_FAILED if denied else UNKNOWN_TOPIC
            elif denied := authz.topic(conn, t, name):
                out["error_code"], out["error_message"] = denied, AUTHORIZATION_FAILED
            else:
                out["topic_id"] = topic_id(t)
                await _forget(conn, name, t, out)
        if version < 6:
            out["topic_id"] = ZERO_ID
        if version < 5:
            out["error_message"] = None
        responses.append(out)
    return {"throttle_time_ms": 0, "responses": responses}


# -- CreatePartitions -----------------------------------------------------------------------
async def _grow(conn: Connection, item: dict, validate_only: bool) -> None:
    server = conn.server
    name, count = item["name"], item["count"]
    t = server.topics.resolve(name)
    denied = authz.topic_by_name(conn, name, t)
    if denied:
        raise KafkaError(denied, AUTHORIZATION_FAILED)
    if t is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    current = len(t.partitions)
    if count == current:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} "
                         f"partition(s).")
    if count < current:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                         f"The topic {name} currently has {current} partition(s); {count} "
                         f"would not be an increase.")
    if count - current > MAX_PARTITIONS_PER_REQUEST:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS, f"pyggy adds at most "
                         f"{MAX_PARTITIONS_PER_REQUEST} partitions per request.")
    assignments = item["assignments"]
    if assignments is not None:
        if len(assignments) != count - current:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             f"Attempted to add {count - current} additional partition(s), but "
                             f"only {len(assignments)} assignment(s) were specified.")
        for a in assignments:
            _check_replicas(list(a["broker_ids"]), server.settings.node_id)
    if validate_only:
        return
    try:
        await server.engine.metadata.create_partitions(t.stream_id, t.id, count - current)
    except IggyError as e:
        raise kafka_error(e, ErrorCode.INVALID_PARTITIONS) from None


async def create_partitions(conn: Connection, req: dict, version: int) -> dict:
    items, dupes = _once(req["topics"])
    results = []
    for item in items:
        out = {"name": item["name"], "error_code": ErrorCode.NONE, "error_message": None}
        if item["name"] in dupes:
            out["error_code"] = ErrorCode.INVALID_REQUEST
            out["error_message"] = "Duplicate topic name."
        else:
            try:
                await _grow(conn, item, req["validate_only"])
            except KafkaError as e:
                out["error_code"], out["error_message"] = e.code, e.message or None
        results.append(out)
    return {"throttle_time_ms": 0, "results": results}


# -- DeleteRecords --------------------------------------------------------------------------
async def delete_records(conn: Connection, req: dict, version: int) -> dict:
    """Raise each partition's log start offset to the requested offset (-1: the high
    watermark). Records below it are gone for both doors; whole sealed segments below it are
    deleted from disk at once, the rest when their segment rolls."""
    server = conn.server
    topics = []
    for topic in req["topics"]:
        t = server.topics.resolve(topic["name"])
        denied = authz.topic_by_name(conn, topic["name"], t)
        parts = []
        wanted = {p["partition_index"]: p["offset"] for p in topic["partitions"]}  # last wins
        for index, offset in wanted.items():
            out = {"partition_index": index, "low_watermark": -1,
                   "error_code": ErrorCode.NONE}
            if denied:
                out["error_code"] = denied
            elif t is None or not 0 <= index < len(t.partitions):
                out["error_code"] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                shards = server.shards  # another shard's partition: its owner's watermark
                hw = (await shards.end_offset(t, index) if shards is not None
                      and shards.remote(t, index) else server.engine.data.watermarks(t, index)[1])
                if offset == HIGH_WATERMARK:
                    offset = hw
                if not 0 <= offset <= hw:
                    out["error_code"] = ErrorCode.OFFSET_OUT_OF_RANGE
                else:
                    try:
                        out["low_watermark"] = await server.engine.metadata.delete_records(
                            t, index, offset)
                    except IggyError as e:
                        out["error_code"] = kafka_error(e, ErrorCode.UNKNOWN_SERVER_ERROR).code
            parts.append(out)
        topics.append({"name": topic["name"], "partitions": parts})
    return {"throttle_time_ms": 0, "topics": topics}
