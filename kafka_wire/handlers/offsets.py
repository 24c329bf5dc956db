"""Committed offsets of Kafka consumer groups: OffsetCommit (8), OffsetFetch (9), OffsetDelete (47).

Offsets live in the group coordinator's offset store (``<data>/kafka/offsets``), keyed by group
and by the topic name the client used. They are the Kafka "next offset to read" and are not
shared with Iggy consumer or consumer-group offsets (README, "Kafka consumer groups").
Each needs the group's right and, per topic, the topic's (kafka_wire/authorizer.py). Commits
and deletes are replicated changes (kafka_wire/replicated.py): in a cluster they are on every
replica before the answer; a broker that is not the metadata primary answers NOT_COORDINATOR.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pyggy.core.errors import IggyError
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire import replicated
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.groups import FetchedOffset
from pyggy.kafka_wire.handlers.groups import coordinator, not_here
from pyggy.kafka_wire.protocol.errors import ErrorCode

log = logging.getLogger(__name__)


def _by_topic(rows: list[tuple[str, dict]]) -> list[dict]:
    """``[{"name", "partitions"}]`` from (topic, partition entry) rows, topics in first-seen
    order."""
    topics: dict[str, list[dict]] = {}
    for topic, entry in rows:
        topics.setdefault(topic, []).append(entry)
    return [{"name": name, "partitions": parts} for name, parts in topics.items()]


def _topic_errors(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """The topics (of these names) the principal may not touch, with their error."""
    topics = conn.server.topics
    out = {}
    for name in dict.fromkeys(names):
        if denied := authz.topic_by_name(conn, name, topics.resolve(name)):
            out[name] = denied
    return out


async def offset_commit(conn: Connection, req: dict, version: int) -> dict:
    coord = coordinator(conn)
    entries = [(t["name"], p["partition_index"], p["committed_offset"],
                p["committed_leader_epoch"] if version >= 6 else -1, p["committed_metadata"])
               for t in req["topics"] for p in t["partitions"]]
    group_denied = authz.group(conn, req["group_id"])
    denied = {} if group_denied else _topic_errors(conn, (e[0] for e in entries))
    allowed = [e for e in entries if e[0] not in denied]
    if group_denied:
        codes = [group_denied] * len(entries)
    elif coord is None:
        codes = [not_here(conn)] * len(entries)
    else:
        checked, accepted = coord.check_commit(
            req["group_id"], req["generation_id_or_member_epoch"], req["member_id"],
            req["group_instance_id"] if version >= 7 else None, allowed, version) if allowed \
            else ([], {})
        if accepted:  # stored on every replica of a cluster before the answer
            try:
                await replicated.store_offsets(conn.server, req["group_id"], accepted)
            except (IggyError, OSError) as e:
                log.error("kafka group %s: offsets not stored: %s", req["group_id"], e)
                failed = replicated.error_code(e)
                checked = [failed if c == ErrorCode.NONE else c for c in checked]
        done = iter(checked)
        codes = [denied[e[0]] if e[0] in denied else next(done) for e in entries]
    return {"throttle_time_ms": 0, "topics": _by_topic([
        (topic, {"partition_index": partition, "error_code": int(code)})
        for (topic, partition, *_), code in zip(entries, codes, strict=True)])}


def _partition(f: FetchedOffset) -> dict:
    return {"partition_index": f.partition, "committed_offset": f.offset,
            "committed_leader_epoch": f.leader_epoch, "metadata": f.metadata,
            "error_code": int(f.error_code)}


def _fetch_group(conn: Connection, group_id: str, topics: list | None,
                 stable: bool = False, member: tuple[str | None, int] = (None, -1),
                 ) -> tuple[int, list[dict]]:
    """(group error, response topics) for one group; ``topics`` None asks for every
    committed partition. ``stable`` (require_stable, KIP-447): a partition with offsets
    staged by an open transaction answers UNSTABLE_OFFSET_COMMIT (retriable)."""
    coord = coordinator(conn)
    if coord is None:
        return not_here(conn), []
    if not group_id:
        return ErrorCode.INVALID_GROUP_ID, []
    if denied := authz.group(conn, group_id):
        return denied, []
    if error := coord.validate_fetch(group_id, *member):  # v9+: KIP-848 member epoch
        return error, []
    names = conn.server.topics
    if topics is None:  # every committed topic the principal may describe
        wanted = None
        fetched = [f for f in coord.fetch_offsets(group_id, None) if conn.user is None or (
            (t := names.resolve(f.topic)) is not None and authz.describable(conn, t))]
    else:
        refused = _topic_errors(conn, (t["name"] for t in topics))
        wanted = [(t["name"], t["partition_indexes"]) for t in topics
                  if t["name"] not in refused]
        fetched = coord.fetch_offsets(group_id, wanted) if wanted else []
        fetched += [FetchedOffset(t["name"], p, -1, -1, "", refused[t["name"]])
                    for t in topics if t["name"] in refused for p in t["partition_indexes"]]
    out = _by_topic([(f.topic, _partition(f)) for f in fetched])
    answered = {t["name"] for t in out}
    # a topic asked for with no partition is still answered
    out += [{"name": t["name"], "partitions": []} for t in topics or ()
            if t["name"] not in answered]
    pending = conn.server.engine.txns.state.pending_offsets(group_id) if stable else ()
    for entry in out if pending else ():
        for p in entry["partitions"]:
            if (entry["name"], p["partition_index"]) in pending:
                p.update(committed_offset=-1, error_code=ErrorCode.UNSTABLE_OFFSET_COMMIT)
    return ErrorCode.NONE, out


def offset_fetch(conn: Connection, req: dict, version: int) -> dict:
    """v1–7 fetch one group (v1: listed topics only, v2+: topics null = all committed); v8+
    fetch a batch of groups, each with its own error."""
    if version >= 8:
        groups = []
        for g in req["groups"]:
            error, topics = _fetch_group(
                conn, g["group_id"], g["topics"], req.get("require_stable", False),
                (g["member_id"], g["member_epoch"]) if version >= 9 else (None, -1))
            groups.append({"group_id": g["group_id"], "topics": topics,
                           "error_code": int(error)})
        return {"throttle_time_ms": 0, "groups": groups}
    error, topics = _fetch_group(conn, req["group_id"], req["topics"],
                                 req.get("require_stable", False))
    if error and version < 2:  # no top-level error code: report it per partition
        topics = [{"name": t["name"], "partitions": [
            {"partition_index": p, "committed_offset": -1, "committed_leader_epoch": -1,
             "metadata": "", "error_code": int(error)} for p in t["partition_indexes"]]}
            for t in req["topics"] or ()]
    return {"throttle_time_ms": 0, "topics": topics, "error_code": int(error)}


async def offset_delete(conn: Connection, req: dict, version: int) -> dict:
    coord = coordinator(conn)
    partitions = [(t["name"], p["partition_index"]) for t in req["topics"]
                  for p in t["partitions"]]
    if coord is None:
        return {"error_code": not_here(conn), "throttle_time_ms": 0, "topics": []}
    if denied := authz.group(conn, req["group_id"]):
        return {"error_code": denied, "throttle_time_ms": 0, "topics": []}
    refused = _topic_errors(conn, (topic for topic, _ in partitions))
    allowed = [tp for tp in partitions if tp[0] not in refused]
    error, done, doomed = coord.check_delete_offsets(req["group_id"], allowed)
    if doomed:
        try:
            await replicated.delete_offsets(conn.server, req["group_id"], doomed)
        except (IggyError, OSError) as e:
            error = replicated.error_code(e)
    if error:
        return {"error_code": int(error), "throttle_time_ms": 0, "topics": []}
    results = iter(done)
    codes = [refused[topic] if topic in refused else next(results) for topic, _ in partitions]
    return {"error_code": ErrorCode.NONE, "throttle_time_ms": 0, "topics": _by_topic([
        (topic, {"partition_index": partition, "error_code": int(code)})
        for (topic, partition), code in zip(partitions, codes, strict=True)])}
