"""Kafka authorization by Iggy permissions: one table (api key → the operation each resource
it touches needs) and one mapping (Kafka operation → Iggy permission check).

The principal is the connection's user (`Connection.user`); None is the anonymous client of a
listener that does not require authentication, which may do everything (as before pyggy had
users on this door). Root may do everything. Otherwise:

- topics: READ = poll_messages, WRITE = send_messages, DESCRIBE = any of them or read_topic,
  DESCRIBE_CONFIGS = read_topic, CREATE = manage_topics of the stream the topic goes to,
  DELETE / ALTER / ALTER_CONFIGS = manage_topic (each with Iggy's cascade global → stream →
  topic, manage ⊃ read ⊃ poll);
- consumer groups (no Iggy entity): a group's topics are the ones its members subscribe to
  and the ones it has committed offsets for; READ / DESCRIBE / DELETE on a group need poll on
  every one of them that exists, and a group with none needs poll on at least one topic;
- the cluster: DESCRIBE / DESCRIBE_CONFIGS = read_servers, ALTER / ALTER_CONFIGS /
  CLUSTER_ACTION = manage_servers, CREATE = manage_topics (global), IDEMPOTENT_WRITE = send
  on at least one topic (KIP-679: WRITE implies it). As in Kafka, DescribeCluster (like
  Metadata's broker list) is answered to every principal; only its bitset depends on them;
- users (ACLs, SCRAM credentials): DESCRIBE = read_users, ALTER = manage_users;
- transactional ids (no Iggy entity): WRITE / DESCRIBE = send on at least one topic (the
  transaction's partitions are then checked for WRITE one by one).

Refusals are Kafka's codes (TOPIC_/GROUP_/CLUSTER_AUTHORIZATION_FAILED) and are logged once
per burst through the shared audit (core/logins.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from pyggy.core import permissions as perm
from pyggy.core.model import Permissions, Topic, User
from pyggy.kafka_wire.context import Connection
from pyggy.kafka_wire.protocol.errors import ErrorCode

# AclOperation codes (Kafka's org.apache.kafka.common.acl.AclOperation)
ALL, READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 2, 3, 4, 5, 6, 7, 8
CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE = 9, 10, 11, 12
# ResourceType codes; USERS is pyggy's: the users behind ACLs and SCRAM credentials, which
# Kafka guards with ALTER / DESCRIBE on the cluster
TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID, USERS = 2, 3, 4, 5, -1
NO_SUCH = -1  # stream / topic id of something that does not exist (only global rights apply)
NOT_REQUESTED = -2147483648  # INT32_MIN: authorized operations not asked for

# api key -> {resource type: operation}: what every Kafka API needs, in one place
RULES: dict[int, dict[int, int]] = {
    0: {TOPIC: WRITE},  # Produce
    1: {TOPIC: READ},  # Fetch
    2: {TOPIC: READ},  # ListOffsets
    3: {TOPIC: DESCRIBE},  # Metadata (auto-creation also needs CREATE)
    8: {GROUP: READ, TOPIC: READ},  # OffsetCommit
    9: {GROUP: DESCRIBE, TOPIC: DESCRIBE},  # OffsetFetch
    10: {GROUP: DESCRIBE},  # FindCoordinator
    11: {GROUP: READ},  # JoinGroup
    12: {GROUP: READ},  # Heartbeat
    13: {GROUP: READ},  # LeaveGroup
    14: {GROUP: READ},  # SyncGroup
    15: {GROUP: DESCRIBE},  # DescribeGroups
    16: {GROUP: DESCRIBE},  # ListGroups (lists the groups the principal may describe)
    17: {},  # SaslHandshake: before authentication
    18: {},  # ApiVersions: before authentication
    19: {TOPIC: CREATE},  # CreateTopics
    20: {TOPIC: DELETE},  # DeleteTopics
    21: {TOPIC: DELETE},  # DeleteRecords
    22: {CLUSTER: IDEMPOTENT_WRITE, TRANSACTIONAL_ID: WRITE},  # InitProducerId
    24: {TRANSACTIONAL_ID: WRITE, TOPIC: WRITE},  # AddPartitionsToTxn
    25: {TRANSACTIONAL_ID: WRITE, GROUP: READ},  # AddOffsetsToTxn
    26: {TRANSACTIONAL_ID: WRITE},  # EndTxn
    28: {TRANSACTIONAL_ID: WRITE, GROUP: READ, TOPIC: READ},  # TxnOffsetCommit
    23: {TOPIC: DESCRIBE},  # OffsetForLeaderEpoch
    29: {USERS: DESCRIBE},  # DescribeAcls
    30: {USERS: ALTER},  # CreateAcls
    31: {USERS: ALTER},  # DeleteAcls
    32: {TOPIC: DESCRIBE_CONFIGS, CLUSTER: DESCRIBE_CONFIGS,  # DescribeConfigs
         GROUP: DESCRIBE_CONFIGS},
    33: {TOPIC: ALTER_CONFIGS, CLUSTER: ALTER_CONFIGS},  # AlterConfigs
    36: {},  # SaslAuthenticate: before authentication
    37: {TOPIC: ALTER},  # CreatePartitions
    42: {GROUP: DELETE},  # DeleteGroups
    44: {TOPIC: ALTER_CONFIGS, CLUSTER: ALTER_CONFIGS,  # IncrementalAlterConfigs
         GROUP: ALTER_CONFIGS},
    47: {GROUP: DELETE, TOPIC: READ},  # OffsetDelete
    48: {CLUSTER: DESCRIBE_CONFIGS},  # DescribeClientQuotas
    50: {USERS: DESCRIBE},  # DescribeUserScramCredentials
    51: {USERS: ALTER},  # AlterUserScramCredentials
    61: {TOPIC: READ},  # DescribeProducers (KIP-664)
    60: {},  # DescribeCluster: any principal, as in Kafka (the bitset tells what it may do)
    65: {TRANSACTIONAL_ID: DESCRIBE},  # DescribeTransactions
    66: {TRANSACTIONAL_ID: DESCRIBE},  # ListTransactions (lists what may be described)
    68: {GROUP: READ, TOPIC: READ},  # ConsumerGroupHeartbeat (regex matches: readable only)
    69: {GROUP: DESCRIBE},  # ConsumerGroupDescribe
}
REFUSED = {TOPIC: ErrorCode.TOPIC_AUTHORIZATION_FAILED,
           GROUP: ErrorCode.GROUP_AUTHORIZATION_FAILED,
           CLUSTER: ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
           TRANSACTIONAL_ID: ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
           USERS: ErrorCode.CLUSTER_AUTHORIZATION_FAILED}

TopicCheck = Callable[[User, int, int], bool]


def _describe(u: User, s: int, t: int) -> bool:
    return perm.poll_messages(u, s, t) or perm.send_messages(u, s, t)


# Kafka operation -> Iggy permission check, per resource type
TOPIC_OPERATIONS: dict[int, TopicCheck] = {
    READ: perm.poll_messages,
    WRITE: perm.send_messages,
    DESCRIBE: _describe,
    DESCRIBE_CONFIGS: perm.read_topic,
    CREATE: lambda u, s, t: perm.create_topic(u, s),
    DELETE: perm.manage_topic,
    ALTER: perm.manage_topic,
    ALTER_CONFIGS: perm.manage_topic,
}


def _anywhere(u: User, flag: str) -> bool:
    """The user holds `flag` globally, on some stream or on some topic."""
    p = u.permissions or Permissions()
    return getattr(p.global_, flag) or any(
        getattr(s, flag) or any(getattr(t, flag) for t in s.topics.values())
        for s in p.streams.values())


def _sends_anywhere(u: User) -> bool:
    p = u.permissions or Permissions()
    g = p.global_
    return (u.is_root or g.manage_streams or g.manage_topics or _anywhere(u, "send_messages")
            or any(s.manage_stream or s.manage_topics
                   or any(t.manage_topic for t in s.topics.values())
                   for s in p.streams.values()))


def polls_anywhere(u: User) -> bool:
    """The user may poll at least one topic (now or once it exists)."""
    p = u.permissions or Permissions()
    g = p.global_
    return (u.is_root or g.manage_streams or g.read_streams or g.manage_topics or g.read_topics
            or g.poll_messages or any(
                s.manage_stream or s.read_stream or s.manage_topics or s.read_topics
                or s.poll_messages or any(t.manage_topic or t.read_topic or t.poll_messages
                                          for t in s.topics.values())
                for s in p.streams.values()))


CLUSTER_OPERATIONS: dict[int, Callable[[User], bool]] = {
    DESCRIBE: perm.read_servers,
    DESCRIBE_CONFIGS: perm.read_servers,
    ALTER: perm.manage_servers,
    ALTER_CONFIGS: perm.manage_servers,
    CLUSTER_ACTION: perm.manage_servers,
    CREATE: lambda u: perm.create_topic(u, NO_SUCH),
    IDEMPOTENT_WRITE: _sends_anywhere,
}
USER_OPERATIONS: dict[int, Callable[[User], bool]] = {
    DESCRIBE: perm.read_users,
    ALTER: perm.manage_users,
}
GROUP_OPERATIONS = (READ, DESCRIBE, DELETE)


# -- checks -----------------------------------------------------------------------------------
def _rule(conn: Connection, resource: int, op: int | None) -> int:
    if op is not None:
        return op
    return RULES[conn.api_key][resource]


def _refused(conn: Connection, what: str) -> None:
    from pyggy.kafka_wire.registry import REGISTRY  # the registry imports the handlers

    api = REGISTRY.get(conn.api_key)
    user = conn.user
    conn.server.logins.audit.refused(user.username if user else None, conn.host, "kafka",
                                     f"{api.name if api else conn.api_key} {what}")


def topic_allowed(user: User | None, op: int, stream_id: int, topic_id: int) -> bool:
    return user is None or TOPIC_OPERATIONS[op](user, stream_id, topic_id)


def topic(conn: Connection, t: Topic, name: str, op: int | None = None) -> int:
    """NONE, or TOPIC_AUTHORIZATION_FAILED (logged) for an existing topic."""
    if topic_allowed(conn.user, _rule(conn, TOPIC, op), t.stream_id, t.id):
        return ErrorCode.NONE
    _refused(conn, f"topic {name!r}")
    return ErrorCode.TOPIC_AUTHORIZATION_FAILED


def missing_topic(conn: Connection, name: str, op: int | None = None) -> int:
    """For a name that resolves to no topic: NONE if the principal may `op` (default: the
    API's) a topic of that name where it would be created, else TOPIC_AUTHORIZATION_FAILED —
    so a refused principal cannot tell whether the topic exists."""
    stream, _ = conn.server.topics.target(name)
    sid = stream.id if stream is not None else NO_SUCH
    if topic_allowed(conn.user, _rule(conn, TOPIC, op), sid, NO_SUCH):
        return ErrorCode.NONE
    _refused(conn, f"topic {name!r}")
    return ErrorCode.TOPIC_AUTHORIZATION_FAILED


def topic_by_name(conn: Connection, name: str, t: Topic | None, op: int | None = None) -> int:
    return topic(conn, t, name, op) if t is not None else missing_topic(conn, name, op)


def describable(conn: Connection, t: Topic) -> bool:
    """Whether the topic may be listed (Metadata, by-id lookups); not a refusal."""
    return topic_allowed(conn.user, DESCRIBE, t.stream_id, t.id)


def _check(conn: Connection, resource: int, op: int, allowed: bool, what: str) -> int:
    if allowed:
        return ErrorCode.NONE
    _refused(conn, what)
    return REFUSED[resource]


def cluster(conn: Connection, op: int | None = None) -> int:
    """NONE or CLUSTER_AUTHORIZATION_FAILED."""
    op = _rule(conn, CLUSTER, op)
    user = conn.user
    return _check(conn, CLUSTER, op, user is None or CLUSTER_OPERATIONS[op](user), "cluster")


def users(conn: Connection) -> int:
    """NONE or CLUSTER_AUTHORIZATION_FAILED for the users' ACLs and SCRAM credentials."""
    op = _rule(conn, USERS, None)
    user = conn.user
    return _check(conn, USERS, op, user is None or USER_OPERATIONS[op](user), "users")


def transactional_id_allowed(user: User | None) -> bool:
    """Transactional ids are not Iggy resources: a principal that may send messages somewhere
    may use (and describe) any transactional id; its writes are still checked per topic."""
    return user is None or _sends_anywhere(user)


def transactional_id(conn: Connection, tid: str) -> int:
    """NONE or TRANSACTIONAL_ID_AUTHORIZATION_FAILED."""
    return _check(conn, TRANSACTIONAL_ID, _rule(conn, TRANSACTIONAL_ID, None),
                  transactional_id_allowed(conn.user), f"transactional id {tid!r}")


def group_topics(conn: Connection, group_id: str) -> set[str]:
    coordinator = conn.server.coordinator
    if coordinator is None:
        return set()
    return coordinator.group_topics(group_id)


def group_allowed(conn: Connection, group_id: str, extra: Iterable[str] = ()) -> bool:
    user = conn.user
    if user is None or user.is_root:
        return True
    topics = conn.server.topics
    found = [t for t in map(topics.resolve, group_topics(conn, group_id) | set(extra))
             if t is not None]
    if not found:
        return polls_anywhere(user)
    return all(perm.poll_messages(user, t.stream_id, t.id) for t in found)


def group(conn: Connection, group_id: str, extra: Iterable[str] = ()) -> int:
    """NONE or GROUP_AUTHORIZATION_FAILED; `extra`: topics a joining member subscribes to."""
    return _check(conn, GROUP, _rule(conn, GROUP, None), group_allowed(conn, group_id, extra),
                  f"group {group_id!r}")


# -- authorized-operations bitsets (KIP-430) --------------------------------------------------
def _bits(ops: Iterable[int]) -> int:
    return sum(1 << op for op in set(ops))


def topic_operations(conn: Connection, t: Topic) -> int:
    return _bits(op for op in TOPIC_OPERATIONS
                 if topic_allowed(conn.user, op, t.stream_id, t.id))


def cluster_operations(conn: Connection) -> int:
    user = conn.user
    return _bits(op for op, check in CLUSTER_OPERATIONS.items() if user is None or check(user))


def group_operations(conn: Connection, group_id: str) -> int:
    return _bits(GROUP_OPERATIONS) if group_allowed(conn, group_id) else 0
