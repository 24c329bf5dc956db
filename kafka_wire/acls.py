"""Iggy permissions seen as Kafka ACL bindings, and Kafka ACL changes made as permission
updates (DescribeAcls 29, CreateAcls 30, DeleteAcls 31).

Every permission flag a user holds is shown as the ALLOW bindings it grants, principal
`User:<name>`, host `*`:

- global `manage_streams` / `manage_topics`: TOPIC `*` (LITERAL), every topic operation; and
  CLUSTER `kafka-cluster` CREATE;
- global `read_streams` / `read_topics`: TOPIC `*` READ, DESCRIBE, DESCRIBE_CONFIGS;
- global `poll_messages` / `send_messages`: TOPIC `*` READ / WRITE;
- global `manage_servers`: CLUSTER ALTER, ALTER_CONFIGS, CLUSTER_ACTION, DESCRIBE,
  DESCRIBE_CONFIGS; `read_servers`: CLUSTER DESCRIBE, DESCRIBE_CONFIGS;
- a stream's flags: the same topic operations on TOPIC `<stream>.` (PREFIXED);
- a topic's flags: on TOPIC `<kafka name>` (LITERAL); `manage_topic` without CREATE.

The default stream's topics have no prefix: its stream permissions are shown per topic. Root
(and the anonymous client of a listener without authentication) holds ALL on the cluster, on
every topic and on every group; those cannot change. `manage_users` / `read_users` have no
Kafka resource and are not shown. Consumer-group rights follow the topic rights (see
kafka_wire/authorizer.py), so GROUP bindings cannot be created.

CreateAcls sets the one flag a binding maps to (READ → poll_messages, WRITE → send_messages,
DESCRIBE / DESCRIBE_CONFIGS → read_topic(s) — which in Iggy also allows polling — and the
other topic operations → manage_topic(s); CLUSTER DESCRIBE(_CONFIGS) → read_servers, ALTER,
ALTER_CONFIGS, CLUSTER_ACTION → manage_servers, CREATE → manage_topics). What Iggy cannot
express is INVALID_REQUEST with a message: DENY, a host other than `*`, an unknown user,
a topic that does not exist, a prefix that is not `<existing stream>.`, GROUP and other
resources. DeleteAcls clears every flag that grants a binding matching the filter.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

from pyggy.core.errors import IggyError
from pyggy.core.model import Permissions, StreamPermissions, TopicPermissions, User
from pyggy.kafka_wire.authorizer import (
    ALL,
    ALTER,
    ALTER_CONFIGS,
    CLUSTER,
    CLUSTER_ACTION,
    CREATE,
    DELETE,
    DESCRIBE,
    DESCRIBE_CONFIGS,
    GROUP,
    IDEMPOTENT_WRITE,
    READ,
    TOPIC,
    WRITE,
)
from pyggy.kafka_wire.context import KafkaServer
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.topics import KafkaError

ANY = 1
MATCH, LITERAL, PREFIXED = 2, 3, 4  # PatternType
DENY, ALLOW = 2, 3  # AclPermissionType
CLUSTER_NAME = "kafka-cluster"
WILDCARD = "*"
ANONYMOUS = "User:ANONYMOUS"

READS = (READ, DESCRIBE, DESCRIBE_CONFIGS)
MANAGE = (READ, WRITE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS)
TOPIC_FLAG_OPS = {
    "manage_streams": (CREATE, *MANAGE), "manage_stream": (CREATE, *MANAGE),
    "manage_topics": (CREATE, *MANAGE), "manage_topic": MANAGE,
    "read_streams": READS, "read_stream": READS, "read_topics": READS, "read_topic": READS,
    "poll_messages": (READ,), "send_messages": (WRITE,),
}
CLUSTER_FLAG_OPS = {
    "manage_servers": (ALTER, ALTER_CONFIGS, CLUSTER_ACTION, DESCRIBE, DESCRIBE_CONFIGS),
    "read_servers": (DESCRIBE, DESCRIBE_CONFIGS),
    "manage_streams": (CREATE,), "manage_topics": (CREATE,),
}
_READ_FLAG = {"global": "read_topics", "stream": "read_topics", "topic": "read_topic"}
_MANAGE_FLAG = {"global": "manage_topics", "stream": "manage_topics", "topic": "manage_topic"}


@dataclass(frozen=True, slots=True)
class Binding:
    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission_type: int

    def as_dict(self) -> dict:
        return {"resource_type": self.resource_type, "resource_name": self.resource_name,
                "pattern_type": self.pattern_type, "principal": self.principal,
                "host": self.host, "operation": self.operation,
                "permission_type": self.permission_type}


@dataclass(frozen=True, slots=True)
class Grant:
    """One permission flag of one user: scope ("global",), ("stream", id), ("topic", s, t)."""

    user_id: int
    scope: tuple
    flag: str


def principal(user: User) -> str:
    return f"User:{user.username}"


def _allow(rtype: int, name: str, pattern: int, who: str, op: int) -> Binding:
    return Binding(rtype, name, pattern, who, WILDCARD, op, ALLOW)


def _set_flags(obj: object, table: dict) -> Iterator[tuple[str, tuple[int, ...]]]:
    for flag, ops in table.items():
        if getattr(obj, flag, False):
            yield flag, ops


def bindings(server: KafkaServer) -> Iterator[tuple[Binding, Grant | None]]:
    """Every binding in force, with the flag granting it (None: fixed, root or anonymous)."""
    fixed = [] if server.settings.requires_auth else [ANONYMOUS]
    engine, topics = server.engine, server.topics
    for u in engine.identity.users():
        if u.is_root:
            fixed.append(principal(u))
            continue
        who, p = principal(u), u.permissions or Permissions()
        for flag, ops in _set_flags(p.global_, TOPIC_FLAG_OPS):
            for op in ops:
                yield _allow(TOPIC, WILDCARD, LITERAL, who, op), Grant(u.id, ("global",), flag)
        for flag, ops in _set_flags(p.global_, CLUSTER_FLAG_OPS):
            for op in ops:
                yield (_allow(CLUSTER, CLUSTER_NAME, LITERAL, who, op),
                       Grant(u.id, ("global",), flag))
        for sid, sp in sorted(p.streams.items()):
            stream = engine.metadata.get_stream(sid)
            if stream is None:
                continue
            if stream.name == server.settings.default_stream:
                names = [(t.name, LITERAL) for t in engine.metadata.topics(sid)]
            else:
                names = [(stream.name + server.settings.stream_separator, PREFIXED)]
            for flag, ops in _set_flags(sp, TOPIC_FLAG_OPS):
                for name, pattern in names:
                    for op in ops:
                        yield _allow(TOPIC, name, pattern, who, op), Grant(u.id, ("stream", sid),
                                                                          flag)
            for tid, tp in sorted(sp.topics.items()):
                t = stream.topics.get(tid)
                if t is None:
                    continue
                name = topics.name_of(t)
                for flag, ops in _set_flags(tp, TOPIC_FLAG_OPS):
                    for op in ops:
                        yield (_allow(TOPIC, name, LITERAL, who, op),
                               Grant(u.id, ("topic", sid, tid), flag))
    for who in fixed:
        for rtype, name in ((CLUSTER, CLUSTER_NAME), (TOPIC, WILDCARD), (GROUP, WILDCARD)):
            yield _allow(rtype, name, LITERAL, who, ALL), None


def matches(b: Binding, f: dict) -> bool:
    """Kafka's AclBindingFilter: ANY / null match everything; MATCH applies the patterns."""
    if f["resource_type_filter"] not in (ANY, b.resource_type):
        return False
    name, pattern = f["resource_name_filter"], f["pattern_type_filter"]
    if pattern == MATCH:
        if name is not None and not (
                (b.pattern_type == LITERAL and b.resource_name in (name, WILDCARD))
                or (b.pattern_type == PREFIXED and name.startswith(b.resource_name))):
            return False
    elif pattern != ANY and pattern != b.pattern_type:
        return False
    elif name is not None and name != b.resource_name:
        return False
    return (f["principal_filter"] in (None, b.principal) and f["host_filter"] in (None, b.host)
            and f["operation"] in (ANY, b.operation)
            and f["permission_type"] in (ANY, b.permission_type))


def _invalid(message: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_REQUEST, message)


def grant_for(server: KafkaServer, c: dict) -> Grant:
    """The flag a CreateAcls binding maps to; KafkaError(INVALID_REQUEST) when Iggy's model
    cannot express it."""
    if c["permission_type"] != ALLOW:
        raise _invalid("pyggy permissions only allow: Iggy has no DENY rules")
    if c["host"] != WILDCARD:
        raise _invalid("pyggy permissions apply from every host: use host '*'")
    who = c["principal"]
    name = who[5:] if who.startswith("User:") else None
    user = server.engine.identity.get_user(name) if name else None
    if user is None:
        raise _invalid(f"{who} is no pyggy user (create users through the Iggy door)")
    if user.is_root:
        raise _invalid("the root user's permissions are fixed")
    op, rtype, rname, pattern = c["operation"], c["resource_type"], c["resource_name"], \
        c["resource_pattern_type"]
    if rtype == CLUSTER:
        if rname != CLUSTER_NAME or pattern != LITERAL:
            raise _invalid(f"the cluster resource is LITERAL '{CLUSTER_NAME}'")
        if op in (DESCRIBE, DESCRIBE_CONFIGS):
            return Grant(user.id, ("global",), "read_servers")
        if op in (ALTER, ALTER_CONFIGS, CLUSTER_ACTION, ALL):
            return Grant(user.id, ("global",), "manage_servers")
        if op == CREATE:
            return Grant(user.id, ("global",), "manage_topics")
        if op == IDEMPOTENT_WRITE:
            raise _invalid("IDEMPOTENT_WRITE comes with WRITE on any topic (KIP-679)")
        raise _invalid(f"operation {op} does not apply to the cluster")
    if rtype == GROUP:
        raise _invalid("pyggy derives consumer-group rights from topic rights (poll on "
                       "every topic of the group): grant READ on the topics instead")
    if rtype != TOPIC:
        raise _invalid(f"resource type {rtype} has no pyggy permission")
    scope = _topic_scope(server, rname, pattern)
    if op == READ:
        flag = "poll_messages"
    elif op == WRITE:
        flag = "send_messages"
    elif op in (DESCRIBE, DESCRIBE_CONFIGS):
        flag = _READ_FLAG[scope[0]]
    elif op == CREATE and scope[0] == "topic":
        raise _invalid("CREATE is a stream right: grant it on PREFIXED '<stream>.' or on '*'")
    elif op in (CREATE, DELETE, ALTER, ALTER_CONFIGS, ALL):
        flag = _MANAGE_FLAG[scope[0]]
    else:
        raise _invalid(f"operation {op} does not apply to topics")
    return Grant(user.id, scope, flag)


def _topic_scope(server: KafkaServer, name: str, pattern: int) -> tuple:
    s = server.settings
    if pattern == LITERAL and name == WILDCARD:
        return ("global",)
    if pattern == LITERAL:
        t = server.topics.resolve(name)
        if t is None:
            raise _invalid(f"topic '{name}' does not exist: Iggy grants rights on existing "
                           f"topics (or on a stream: PREFIXED '<stream>{s.stream_separator}')")
        return ("topic", t.stream_id, t.id)
    if pattern == PREFIXED:
        stream = server.engine.metadata.get_stream(name[:-len(s.stream_separator)]) \
            if name.endswith(s.stream_separator) else None
        if stream is None or stream.name == s.default_stream:
            raise _invalid(f"prefix '{name}' is not '<stream>{s.stream_separator}' of a stream "
                           f"other than '{s.default_stream}': Iggy grants prefixes only as "
                           f"stream rights")
        return ("stream", stream.id)
    raise _invalid("pattern type must be LITERAL or PREFIXED")


async def change(server: KafkaServer, grants: list[Grant], value: bool) -> None:
    """Set (or clear) flags, one permission update per user."""
    engine = server.engine
    for user_id in dict.fromkeys(g.user_id for g in grants):
        user = engine.identity.get_user(user_id)
        if user is None:
            continue
        p = copy.deepcopy(user.permissions) or Permissions()
        for g in grants:
            if g.user_id != user_id:
                continue
            target: object = p.global_
            if g.scope[0] != "global":
                sp = p.streams.setdefault(g.scope[1], StreamPermissions())
                target = sp if g.scope[0] == "stream" else sp.topics.setdefault(
                    g.scope[2], TopicPermissions())
            setattr(target, g.flag, value)
        try:
            await engine.identity.update_permissions(user.id, p)
        except IggyError as e:
            raise KafkaError(ErrorCode.INVALID_REQUEST, str(e)) from None

