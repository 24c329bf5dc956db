"""The deterministic metadata state machine.

`apply(command)` validates a command against the current state and mutates it; applying the
same commands in the same order always yields the same state (ids, names, timestamps come from
the command or from the state). It never touches files: the engine does the data effects.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import asdict, fields
from typing import Protocol, TypeVar, cast

from pyggy.core.auth import SCRAM_HASHES, scram_from_dict
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.metadata.commands import (
    COMMAND_TYPES,
    ChangePassword,
    CreateGroup,
    CreatePartitions,
    CreateStream,
    CreateToken,
    CreateTopic,
    CreateUser,
    DeleteGroup,
    DeletePartitions,
    DeleteScram,
    DeleteStream,
    DeleteToken,
    DeleteTopic,
    DeleteUser,
    EncodedOption,
    MetadataCommand,
    PermissionsDict,
    SetBrokerConfigs,
    SetGroupConfigs,
    SetScram,
    StreamFlagsDict,
    TxnAdd,
    TxnComplete,
    TxnExpire,
    TxnFirstOffset,
    TxnInit,
    TxnOffsets,
    TxnPrepare,
    UpdatePermissions,
    UpdateStream,
    UpdateTopic,
    UpdateUser,
)
from pyggy.core.model import (
    MAX_PARTITIONS_PER_REQUEST,
    ConsumerGroup,
    GlobalPermissions,
    Identifier,
    Partition,
    Permissions,
    PersonalAccessToken,
    ScramCredential,
    Stream,
    StreamPermissions,
    Topic,
    TopicOptions,
    TopicPermissions,
    User,
)
from pyggy.core.options import topic_options
from pyggy.core.transactions import TransactionState, Txn

MAX_PARTITIONS = 100_000


class _Named(Protocol):
    id: int
    name: str


Named = TypeVar("Named", bound=_Named)


def permissions_to_dict(p: Permissions | None) -> PermissionsDict | None:
    return None if p is None else cast(PermissionsDict, asdict(p))


def permissions_from_dict(d: PermissionsDict | None) -> Permissions | None:
    if d is None:
        return None
    streams = {}
    for sid, sp in d.get("streams", {}).items():
        topics = {int(tid): TopicPermissions(**tp) for tid, tp in sp.pop("topics", {}).items()}
        flags: StreamFlagsDict = sp  # without its topics now
        streams[int(sid)] = StreamPermissions(**flags, topics=topics)
    return Permissions(GlobalPermissions(**d["global_"]), streams)


def encode_options(entries: Sequence[tuple[str, int, bytes]]) -> list[EncodedOption]:
    return [(k, kind, raw.hex()) for k, kind, raw in entries]


def decode_options(items: Sequence[EncodedOption]) -> list[tuple[str, int, bytes]]:
    return [(k, kind, bytes.fromhex(raw)) for k, kind, raw in items]


def check_name(name: str, code: ErrorCode) -> None:
    if not 1 <= len(name.encode()) <= 255:
        raise IggyError(code, "name must be 1 to 255 bytes")


def free_id(taken: Container[int]) -> int:
    """The smallest id not in use (Iggy recycles 0-based ids)."""
    i = 0
    while i in taken:
        i += 1
    return i


_NAMED_MAX = 4096  # names `_find` remembers at most (then it starts over)


class MetadataStateMachine:
    """Streams, topics, partitions, consumer groups, users and tokens."""

    def __init__(self) -> None:
        self.streams: dict[int, Stream] = {}
        # (id of the dict searched, name) -> the id found there: `_find`'s shortcut
        self._named: dict[tuple[int, str], int] = {}
        self.users: dict[int, User] = {}
        # dynamic configs of Kafka consumer groups (KIP-848 group configs), by group id
        self.group_configs: dict[str, dict[str, str]] = {}
        self.txns = TransactionState()  # Kafka transactions: `txn_*` commands
        self.broker_configs: dict[str, str] = {}  # Kafka dynamic broker configs (no effect)

    # -- lookups ---------------------------------------------------------------------------
    def _find(self, items: dict[int, Named], ident: Identifier, what: str, id_code: ErrorCode,
              name_code: ErrorCode) -> Named:
        """The entity with this id, or this exact name (Iggy's Identifier), else its error."""
        if isinstance(ident, int):
            found = items.get(ident)
        else:
            # a name's id as last found (every poll names its stream and topic, as iggy-bench
            # does): names are unique among siblings, so an entity under that id that still
            # has that name is the answer; a rename, delete or re-create fails the check
            key = (id(items), ident)
            found = items.get(self._named.get(key, -1))
            if found is None or found.name != ident:
                found = next((e for e in items.values() if e.name == ident), None)
                if found is not None:
                    if len(self._named) >= _NAMED_MAX:
                        self._named.clear()
                    self._named[key] = found.id
        if found is None:
            code = id_code if isinstance(ident, int) else name_code
            raise IggyError(code, f"{what} {ident} not found")
        return found

    def stream(self, ident: Identifier) -> Stream:
        return self._find(self.streams, ident, "stream", ErrorCode.STREAM_ID_NOT_FOUND,
                          ErrorCode.STREAM_NAME_NOT_FOUND)

    def topic(self, stream: Identifier, ident: Identifier) -> Topic:
        if type(stream) is int and type(ident) is int:  # by ids (every poll's engine step)
            s = self.streams.get(stream)
            t = s.topics.get(ident) if s is not None else None
            if t is not None:
                return t
        return self._find(self.stream(stream).topics, ident, "topic",
                          ErrorCode.TOPIC_ID_NOT_FOUND, ErrorCode.TOPIC_NAME_NOT_FOUND)

    def group(self, stream: Identifier, topic: Identifier, ident: Identifier) -> ConsumerGroup:
        return self._find(self.topic(stream, topic).groups, ident, "group",
                          ErrorCode.CONSUMER_GROUP_ID_NOT_FOUND,
                          ErrorCode.CONSUMER_GROUP_NAME_NOT_FOUND)

    def user(self, ident: Identifier) -> User:
        if isinstance(ident, int):
            u = self.users.get(ident)
        else:
            u = next((u for u in self.users.values() if u.username == ident), None)
        if u is None:
            raise IggyError(ErrorCode.RESOURCE_NOT_FOUND, f"user {ident} not found")
        return u

    # -- apply -----------------------------------------------------------------------------
    def apply(self, cmd: MetadataCommand) -> object:
        """Apply a command of any type (a replay); the engine calls the typed method itself."""
        if cmd["type"] not in COMMAND_TYPES:
            raise IggyError(ErrorCode.INVALID_COMMAND, f"unknown state command {cmd['type']}")
        handler = getattr(self, cmd["type"])
        return handler(cmd)

    def create_stream(self, c: CreateStream) -> Stream:
        check_name(c["name"], ErrorCode.INVALID_STREAM_NAME)
        if any(s.name == c["name"] for s in self.streams.values()):
            raise IggyError(ErrorCode.STREAM_NAME_ALREADY_EXISTS, "stream name already exists")
        s = Stream(free_id(self.streams), c["name"], c["created_at"])
        self.streams[s.id] = s
        return s

    def update_stream(self, c: UpdateStream) -> None:
        s = self.stream(c["stream_id"])
        check_name(c["name"], ErrorCode.INVALID_STREAM_NAME)
        if any(o.name == c["name"] and o.id != s.id for o in self.streams.values()):
            raise IggyError(ErrorCode.STREAM_NAME_ALREADY_EXISTS, "stream name already exists")
        s.name = c["name"]

    def delete_stream(self, c: DeleteStream) -> Stream:
        s = self.streams.pop(self.stream(c["stream_id"]).id)
        for tid in s.topics:
            self.txns.forget(s.id, tid, None)
        return s

    def create_topic(self, c: CreateTopic) -> Topic:
        s = self.stream(c["stream_id"])
        check_name(c["name"], ErrorCode.INVALID_TOPIC_NAME)
        if any(t.name == c["name"] for t in s.topics.values()):
            raise IggyError(ErrorCode.TOPIC_NAME_ALREADY_EXISTS, "topic name already exists")
        count = c["partitions_count"]
        if count > MAX_PARTITIONS_PER_REQUEST:
            raise IggyError(ErrorCode.TOO_MANY_PARTITIONS, "too many partitions")
        opts = topic_options(decode_options(c["options"]))
        t = Topic(free_id(s.topics), s.id, c["name"], c["created_at"], opts)
        t.partitions = [Partition(i, c["created_at"]) for i in range(count)]
        s.topics[t.id] = t
        return t

    def update_topic(self, c: UpdateTopic) -> Topic:
        t = self.topic(c["stream_id"], c["topic_id"])
        check_name(c["name"], ErrorCode.INVALID_TOPIC_NAME)
        s = self.streams[t.stream_id]
        if any(o.name == c["name"] and o.id != t.id for o in s.topics.values()):
            raise IggyError(ErrorCode.TOPIC_NAME_ALREADY_EXISTS, "topic name already exists")
        new = topic_options(decode_options(c["options"]), base=t.options, update=True,
                            reset=c.get("reset", ()))
        t.name = c["name"]
        # Mutate in place: partition logs hold a reference to the options object.
        for f in fields(TopicOptions):
            setattr(t.options, f.name, getattr(new, f.name))
        return t

    def delete_topic(self, c: DeleteTopic) -> Topic:
        t = self.topic(c["stream_id"], c["topic_id"])
        self.txns.forget(t.stream_id, t.id, None)
        return self.streams[t.stream_id].topics.pop(t.id)

    def create_partitions(self, c: CreatePartitions) -> list[Partition]:
        t = self.topic(c["stream_id"], c["topic_id"])
        count = c["count"]
        if count < 1 or count > MAX_PARTITIONS_PER_REQUEST:
            raise IggyError(ErrorCode.INVALID_PARTITIONS_COUNT, "invalid partitions count")
        if len(t.partitions) + count > MAX_PARTITIONS:
            raise IggyError(ErrorCode.TOO_MANY_PARTITIONS, "too many partitions")
        start = len(t.partitions)
        new = [Partition(start + i, c["created_at"]) for i in range(count)]
        t.partitions.extend(new)
        return new

    def delete_partitions(self, c: DeletePartitions) -> list[Partition]:
        t = self.topic(c["stream_id"], c["topic_id"])
        count = c["count"]
        if count < 1 or count > len(t.partitions):
            raise IggyError(ErrorCode.INVALID_PARTITIONS_COUNT, "invalid partitions count")
        gone = t.partitions[-count:]
        del t.partitions[-count:]
        self.txns.forget(t.stream_id, t.id, {p.id for p in gone})
        return gone

    def create_group(self, c: CreateGroup) -> ConsumerGroup:
        t = self.topic(c["stream_id"], c["topic_id"])
        check_name(c["name"], ErrorCode.INVALID_CONSUMER_GROUP_NAME)
        if any(g.name == c["name"] for g in t.groups.values()):
            raise IggyError(ErrorCode.CONSUMER_GROUP_NAME_ALREADY_EXISTS, "group already exists")
        g = ConsumerGroup(free_id(t.groups), c["name"])
        t.groups[g.id] = g
        return g

    def delete_group(self, c: DeleteGroup) -> ConsumerGroup:
        g = self.group(c["stream_id"], c["topic_id"], c["group_id"])
        return self.topic(c["stream_id"], c["topic_id"]).groups.pop(g.id)

    def set_group_configs(self, c: SetGroupConfigs) -> None:
        """Replace a Kafka group's dynamic configs (an empty set removes them)."""
        if c["configs"]:
            self.group_configs[c["group"]] = dict(c["configs"])
        else:
            self.group_configs.pop(c["group"], None)

    def set_broker_configs(self, c: SetBrokerConfigs) -> None:
        """Replace the Kafka door's dynamic broker configs."""
        self.broker_configs = dict(c["configs"])

    # Kafka transactions: their state is `self.txns` (core/transactions.py)
    def txn_init(self, c: TxnInit) -> Txn:
        return self.txns.init(c)

    def txn_add(self, c: TxnAdd) -> Txn:
        return self.txns.add(c)

    def txn_offsets(self, c: TxnOffsets) -> None:
        self.txns.stage(c)

    def txn_first_offset(self, c: TxnFirstOffset) -> None:
        self.txns.first_offset(c)

    def txn_prepare(self, c: TxnPrepare) -> Txn:
        return self.txns.prepare(c)

    def txn_complete(self, c: TxnComplete) -> Txn:
        return self.txns.complete(c)

    def txn_expire(self, c: TxnExpire) -> list[str]:
        return self.txns.expire(c)

    def create_user(self, c: CreateUser) -> User:
        check_name(c["username"], ErrorCode.INVALID_USERNAME)
        if any(u.username == c["username"] for u in self.users.values()):
            raise IggyError(ErrorCode.USER_ALREADY_EXISTS, "user already exists")
        if c["status"] not in (1, 2):
            raise IggyError(ErrorCode.INVALID_USER_STATUS, "invalid user status")
        u = User(free_id(self.users), c["username"], c["password_hash"], c["status"],
                 c["created_at"], permissions_from_dict(c["permissions"]),
                 scram=scram_from_dict(c.get("scram")))
        self.users[u.id] = u
        return u

    def update_user(self, c: UpdateUser) -> User:
        u = self.user(c["user_id"])
        name, status = c.get("username"), c.get("status")
        if name is not None:
            check_name(name, ErrorCode.INVALID_USERNAME)
            if any(o.username == name and o.id != u.id for o in self.users.values()):
                raise IggyError(ErrorCode.USER_ALREADY_EXISTS, "user already exists")
        if status is not None and status not in (1, 2):
            raise IggyError(ErrorCode.INVALID_USER_STATUS, "invalid user status")
        if status is not None and u.is_root and status != 1:
            raise IggyError(ErrorCode.CANNOT_CHANGE_PERMISSIONS, "root stays active")
        u.username = name if name is not None else u.username
        u.status = status if status is not None else u.status
        return u

    def delete_user(self, c: DeleteUser) -> User:
        u = self.user(c["user_id"])
        if u.is_root:
            raise IggyError(ErrorCode.CANNOT_DELETE_USER, "the root user cannot be deleted")
        return self.users.pop(u.id)

    def update_permissions(self, c: UpdatePermissions) -> None:
        u = self.user(c["user_id"])
        if u.is_root:
            raise IggyError(ErrorCode.CANNOT_CHANGE_PERMISSIONS, "root permissions are fixed")
        u.permissions = permissions_from_dict(c["permissions"])

    def change_password(self, c: ChangePassword) -> None:
        u = self.user(c["user_id"])
        u.password_hash = c["password_hash"]
        # credentials derived from the old password go with it (logs older than SCRAM
        # support carry none: such a user is left with PLAIN only)
        u.scram = scram_from_dict(c.get("scram"))

    def set_scram(self, c: SetScram) -> None:
        """Add or replace one SCRAM credential (Kafka's AlterUserScramCredentials)."""
        u = self.user(c["user_id"])
        if c["mechanism"] not in SCRAM_HASHES:
            raise IggyError(ErrorCode.INVALID_COMMAND, f"unknown mechanism {c['mechanism']}")
        u.scram[c["mechanism"]] = ScramCredential(
            bytes.fromhex(c["salt"]), c["iterations"], bytes.fromhex(c["stored_key"]),
            bytes.fromhex(c["server_key"]))

    def delete_scram(self, c: DeleteScram) -> None:
        u = self.user(c["user_id"])
        if u.scram.pop(c["mechanism"], None) is None:
            raise IggyError(ErrorCode.RESOURCE_NOT_FOUND, "no such SCRAM credential")

    def create_token(self, c: CreateToken) -> None:
        u = self.user(c["user_id"])
        check_name(c["name"], ErrorCode.INVALID_PAT_NAME)
        if c["name"] in u.tokens:
            raise IggyError(ErrorCode.PAT_ALREADY_EXISTS, "token already exists")
        u.tokens[c["name"]] = PersonalAccessToken(c["name"], c["token_hash"], c["expiry_at"])

    def delete_token(self, c: DeleteToken) -> None:
        u = self.user(c["user_id"])
        if u.tokens.pop(c["name"], None) is None:
            raise IggyError(ErrorCode.RESOURCE_NOT_FOUND, "token not found")
