"""Configs: DescribeConfigs (32), AlterConfigs (33), IncrementalAlterConfigs (44).

Topic resources (type 2) list every config of `kafka_wire.topics.CONFIGS` with its real value:
source DYNAMIC_TOPIC_CONFIG when set on the topic (through Kafka, or through Iggy for the
mapped options), DEFAULT_CONFIG otherwise. Alter* change the topic's Iggy options through the
engine (`update_topic`), so both doors see the change; `segment.bytes` cannot change after
creation (Iggy's segment_size is fixed), which is refused with INVALID_CONFIG.
The broker resource (type 4) is described with this node's settings; of Kafka's dynamic broker
configs, those pyggy has no setting for are accepted and kept without effect
(`kafka_wire.broker_configs`), the others refused.
Group resources (type 32, KIP-848 group configs, `kafka_wire.group_configs`) are described
with source GROUP_CONFIG when set, DEFAULT_CONFIG otherwise, and altered incrementally
(SET/DELETE) through the engine's command log; the principal needs the group's permission.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from pyggy.core.model import Topic
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire.broker_configs import (
    DYNAMIC_BROKER_CONFIG,
    DYNAMIC_BROKER_CONFIGS,
    check_dynamic,
    validate_broker_configs,
)
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.group_configs import (
    GROUP_CONFIGS,
    check_group_name,
    check_intervals,
    validate_group_config,
)
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.topics import (
    BOOLEAN,
    CONFIGS,
    DEFAULT_CONFIG,
    DEFAULTS,
    DYNAMIC_TOPIC_CONFIG,
    INT,
    LIST,
    SHORT,
    STATIC_BROKER_CONFIG,
    STRING_TYPE,
    KafkaError,
    apply_update,
    check_name,
    dynamic_configs,
    list_items,
    topic_configs,
    validate_config,
)

TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP = 2, 4, 8, 16, 32
GROUP_CONFIG = 8  # DescribeConfigs config source of a group config (KIP-848)
SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


# -- DescribeConfigs ------------------------------------------------------------------------
def _entry(name: str, value: str | None, source: int, read_only: bool, typ: int,
           synonyms: list[dict]) -> dict:
    return {"name": name, "value": value, "read_only": read_only, "config_source": source,
            "is_default": source == DEFAULT_CONFIG, "is_sensitive": False,
            "synonyms": synonyms, "config_type": typ, "documentation": None}


def _topic(conn: Connection, name: str, keys: Collection[str] | None,
           synonyms: bool) -> list[dict]:
    t = _resolve(conn, name)
    out = []
    for cname, (value, default) in sorted(topic_configs(t).items()):
        if keys is not None and cname not in keys:
            continue
        d = CONFIGS[cname]
        syn = []
        if synonyms:
            if not default:
                syn.append({"name": cname, "value": value, "source": DYNAMIC_TOPIC_CONFIG})
            if d.synonym:
                syn.append({"name": d.synonym, "value": DEFAULTS[cname],
                            "source": DEFAULT_CONFIG})
        out.append(_entry(cname, value, DEFAULT_CONFIG if default else DYNAMIC_TOPIC_CONFIG,
                          False, d.type, syn))
    return out


def broker_configs(conn: Connection) -> list[tuple[str, str, int, int]]:
    """(name, value, source, type) of this node's broker configs."""
    server = conn.server
    s = server.settings
    listener = f"PLAINTEXT://{s.host}:{s.port}"
    rows = [
        ("advertised.listeners", listener, STATIC_BROKER_CONFIG, STRING_TYPE),
        ("auto.create.topics.enable", str(s.auto_create_topics).lower(), STATIC_BROKER_CONFIG,
         BOOLEAN),
        ("broker.id", str(s.node_id), STATIC_BROKER_CONFIG, INT),
        ("default.replication.factor", "1", DEFAULT_CONFIG, INT),
        ("delete.topic.enable", "true", DEFAULT_CONFIG, BOOLEAN),
        ("listeners", listener, STATIC_BROKER_CONFIG, STRING_TYPE),
        ("log.dirs", str(server.engine.root), STATIC_BROKER_CONFIG, STRING_TYPE),
        ("node.id", str(s.node_id), STATIC_BROKER_CONFIG, INT),
        ("num.partitions", str(s.num_partitions), STATIC_BROKER_CONFIG, INT),
        ("offsets.topic.replication.factor", "1", DEFAULT_CONFIG, SHORT),
        ("process.roles", "broker,controller", STATIC_BROKER_CONFIG, LIST),
        ("socket.request.max.bytes", str(s.max_frame_size), STATIC_BROKER_CONFIG, INT),
        ("transaction.state.log.min.isr", "1", DEFAULT_CONFIG, INT),
        ("transaction.state.log.replication.factor", "1", DEFAULT_CONFIG, SHORT),
    ]
    seen = {r[0] for r in rows}
    for cname, d in CONFIGS.items():
        if d.synonym and d.synonym not in seen:
            value = str(s.max_message_bytes) if d.synonym == "message.max.bytes" \
                else DEFAULTS[cname]
            rows.append((d.synonym, value, DEFAULT_CONFIG, d.type))
            seen.add(d.synonym)
    return sorted(rows)


def _broker(conn: Connection, name: str, keys: Collection[str] | None,
            synonyms: bool) -> list[dict]:
    _check_broker(conn, name)
    dynamic = conn.server.engine.consumers.broker_configs()
    rows = broker_configs(conn) + [(n, v, DYNAMIC_BROKER_CONFIG, DYNAMIC_BROKER_CONFIGS[n])
                                   for n, v in dynamic.items()]
    out = []
    for cname, value, source, typ in sorted(rows):
        if keys is not None and cname not in keys:
            continue
        syn = [{"name": cname, "value": value, "source": source}] if synonyms else []
        out.append(_entry(cname, value, source, source != DYNAMIC_BROKER_CONFIG, typ, syn))
    return out


def _group(conn: Connection, name: str, keys: Collection[str] | None,
           synonyms: bool) -> list[dict]:
    _check_group(conn, name)
    dynamic = conn.server.engine.consumers.group_configs(name)
    out = []
    for cname, d in sorted(GROUP_CONFIGS.items()):
        if keys is not None and cname not in keys:
            continue
        value = dynamic.get(cname, d.default)
        source = GROUP_CONFIG if cname in dynamic else DEFAULT_CONFIG
        syn = [{"name": cname, "value": value, "source": source}] if synonyms else []
        out.append(_entry(cname, value, source, False, d.type, syn))
    return out


def _check_group(conn: Connection, name: str) -> None:
    check_group_name(name)
    if denied := authz.group(conn, name):
        raise KafkaError(denied, "Group authorization failed.")


async def _alter_group(conn: Connection, r: dict, validate_only: bool) -> None:
    name = r["resource_name"]
    _check_group(conn, name)
    _duplicate_keys(r["configs"])
    desired = conn.server.engine.consumers.group_configs(name)
    for c in r["configs"]:
        cname, op, value = c["name"], c["config_operation"], c["value"]
        if op == DELETE:
            desired.pop(cname, None)
        elif op == SET and value is not None:
            desired[cname] = validate_group_config(cname, value)
        elif op in (APPEND, SUBTRACT):
            verb = "APPEND" if op == APPEND else "SUBTRACT"
            raise KafkaError(ErrorCode.INVALID_CONFIG,
                             f"Can't {verb} to key {cname} because its type is not LIST.")
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid operation {op} or null value "
                                                        f"for {cname}")
    check_intervals(desired)
    if not validate_only:
        await conn.server.engine.consumers.set_group_configs(name, desired)


def _check_broker(conn: Connection, name: str) -> None:
    node = conn.server.settings.node_id
    if name not in ("", str(node)):
        raise KafkaError(ErrorCode.INVALID_REQUEST,
                         f"Unexpected broker id, expected {node} or empty string, but received "
                         f"{name}")
    if denied := authz.cluster(conn):
        raise KafkaError(denied, "Cluster authorization failed.")


def describe_configs(conn: Connection, req: dict, version: int) -> dict:
    results = []
    for r in req["resources"]:
        rtype, name, keys = r["resource_type"], r["resource_name"], r["configuration_keys"]
        out = {"error_code": ErrorCode.NONE, "error_message": None, "resource_type": rtype,
               "resource_name": name, "configs": []}
        keys = set(keys) if keys else None  # null or empty: every config, as Kafka does
        try:
            if rtype == TOPIC:
                out["configs"] = _topic(conn, name, keys, req["include_synonyms"])
            elif rtype == BROKER:
                out["configs"] = _broker(conn, name, keys, req["include_synonyms"])
            elif rtype == GROUP:
                out["configs"] = _group(conn, name, keys, req["include_synonyms"])
            elif rtype == BROKER_LOGGER:
                _check_broker(conn, name)  # no logger levels are exposed: none to describe
            elif rtype == CLIENT_METRICS:  # no client metrics subscriptions: none to describe
                _check_broker(conn, "")
            else:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 f"Unsupported resource type: {rtype}")
        except KafkaError as e:
            out["error_code"], out["error_message"] = e.code, e.message or None
        results.append(out)
    return {"throttle_time_ms": 0, "results": results}


# -- AlterConfigs / IncrementalAlterConfigs -------------------------------------------------
def _duplicate_keys(configs: list[dict]) -> None:
    names = [c["name"] for c in configs]
    if len(set(names)) != len(names):
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Error due to duplicate config keys")


def _resolve(conn: Connection, name: str) -> Topic:
    """The topic, if the principal may do this API's operation on it."""
    check_name(name)
    t = conn.server.topics.resolve(name)
    if denied := authz.topic_by_name(conn, name, t):
        raise KafkaError(denied, "Topic authorization failed.")
    if t is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                         f"The topic '{name}' does not exist.")
    return t


def _not_topic(conn: Connection, r: dict) -> None:
    raise KafkaError(ErrorCode.INVALID_REQUEST,
                     f"Unsupported resource type: {r['resource_type']}")


async def _alter_broker(conn: Connection, r: dict, validate_only: bool,
                        incremental: bool) -> None:
    """Kafka's dynamic broker configs pyggy has no setting for (kafka_wire/broker_configs.py):
    AlterConfigs replaces them all, IncrementalAlterConfigs SETs / DELETEs."""
    _check_broker(conn, r["resource_name"])
    _duplicate_keys(r["configs"])
    engine = conn.server.engine
    desired = engine.consumers.broker_configs() if incremental else {}
    for c in r["configs"]:
        op = c["config_operation"] if incremental else SET
        if op == DELETE:
            desired.pop(c["name"], None)
        elif op == SET and c["value"] is not None:
            desired[c["name"]] = c["value"]
        elif op in (APPEND, SUBTRACT, SET):
            raise KafkaError(ErrorCode.INVALID_REQUEST if op == SET else ErrorCode.INVALID_CONFIG,
                             f"Cannot {'set a null value' if op == SET else 'append/subtract'} "
                             f"for {c['name']}")
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown operation type {op}")
    check_dynamic({c["name"] for c in r["configs"]})  # what Kafka (or pyggy) keeps fixed
    desired = validate_broker_configs(desired)
    if not validate_only and desired != engine.consumers.broker_configs():
        await engine.consumers.set_broker_configs(desired)


async def _alter_legacy(conn: Connection, r: dict, validate_only: bool) -> None:
    if r["resource_type"] == BROKER:
        return await _alter_broker(conn, r, validate_only, incremental=False)
    if r["resource_type"] != TOPIC:
        return _not_topic(conn, r)
    t = _resolve(conn, r["resource_name"])
    _duplicate_keys(r["configs"])
    desired: dict[str, str] = {}
    for c in r["configs"]:
        if c["value"] is None:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             f"Null value not supported for : {c['name']}")
        desired[c["name"]] = validate_config(c["name"], c["value"])
    await apply_update(conn.server.engine, t, desired, validate_only)
    return None


async def _alter_incremental(conn: Connection, r: dict, validate_only: bool) -> None:
    if r["resource_type"] == GROUP:
        return await _alter_group(conn, r, validate_only)
    if r["resource_type"] == BROKER:
        return await _alter_broker(conn, r, validate_only, incremental=True)
    if r["resource_type"] != TOPIC:
        return _not_topic(conn, r)
    t = _resolve(conn, r["resource_name"])
    _duplicate_keys(r["configs"])
    desired = dynamic_configs(t)
    for c in r["configs"]:
        name, op, value = c["name"], c["config_operation"], c["value"]
        if op == DELETE:  # deleting a config that does not exist is fine, as in Kafka
            desired.pop(name, None)
            continue
        if op not in (SET, APPEND, SUBTRACT):
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unknown operation type {op}")
        if value is None:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             f"Null value not supported for : {name}")
        validate_config(name, None)  # unknown names
        if op == SET:
            desired[name] = validate_config(name, value)
        else:
            verb = "APPEND" if op == APPEND else "SUBTRACT"
            if CONFIGS[name].type != LIST:
                raise KafkaError(ErrorCode.INVALID_CONFIG,
                                 f"Can't {verb} to key {name} because its type is not LIST.")
            items = list_items(desired.get(name, DEFAULTS[name]))
            change = list_items(value)
            if op == APPEND:
                items += [x for x in change if x not in items]
            else:
                items = [x for x in items if x not in change]
            desired[name] = validate_config(name, ",".join(items))
    await apply_update(conn.server.engine, t, desired, validate_only)
    return None


async def _alter(conn: Connection, req: dict,
                 one: Callable[[Connection, dict, bool], Awaitable[None]]) -> dict:
    responses = []
    for r in req["resources"]:
        out = {"error_code": ErrorCode.NONE, "error_message": None,
               "resource_type": r["resource_type"], "resource_name": r["resource_name"]}
        try:
            await one(conn, r, req["validate_only"])
        except KafkaError as e:
            out["error_code"], out["error_message"] = e.code, e.message or None
        responses.append(out)
    return {"throttle_time_ms": 0, "responses": responses}


async def alter_configs(conn: Connection, req: dict, version: int) -> dict:
    """Replace the whole dynamic config set of each topic (unlisted configs go back to their
    defaults)."""
    return await _alter(conn, req, _alter_legacy)


async def incremental_alter_configs(conn: Connection, req: dict, version: int) -> dict:
    """SET / DELETE / APPEND / SUBTRACT per config; APPEND/SUBTRACT on LIST configs only."""
    return await _alter(conn, req, _alter_incremental)
