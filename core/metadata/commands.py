"""The metadata commands: what the engine appends to the state log and the state machine applies.

Each command is a JSON object whose `type` names it; these TypedDicts are their shapes (the
state log stores them as JSON, so a tuple below comes back from a replay as a JSON array of the
same items). A key marked NotRequired is absent from logs written before it existed.
"""

# No `from __future__ import annotations` here: TypedDicts with string annotations compile a
# ForwardRef per key at import, and COMMAND_TYPES would have to evaluate them all again
# (≈ 10 ms of the server's start, BENCHMARKS.md issue 16 item 4).
from typing import Literal, NotRequired, TypedDict, get_args

# an option as the log keeps it: (key, kind, value as hex)
EncodedOption = tuple[str, int, str]
# a SCRAM credential by mechanism: (salt hex, iterations, stored key hex, server key hex)
EncodedScram = dict[str, tuple[str, int, str, str]]
# ids are ints in memory and strings once JSON has made them object keys
EncodedId = int | str


class TopicPermissionsDict(TypedDict):
    manage_topic: bool
    read_topic: bool
    poll_messages: bool
    send_messages: bool


class StreamFlagsDict(TypedDict):
    manage_stream: bool
    read_stream: bool
    manage_topics: bool
    read_topics: bool
    poll_messages: bool
    send_messages: bool


class StreamPermissionsDict(StreamFlagsDict):
    topics: NotRequired[dict[EncodedId, TopicPermissionsDict]]


class GlobalPermissionsDict(TypedDict):
    manage_servers: bool
    read_servers: bool
    manage_users: bool
    read_users: bool
    manage_streams: bool
    read_streams: bool
    manage_topics: bool
    read_topics: bool
    poll_messages: bool
    send_messages: bool


class PermissionsDict(TypedDict):
    """`dataclasses.asdict` of a `core.model.Permissions`."""

    global_: GlobalPermissionsDict
    streams: NotRequired[dict[EncodedId, StreamPermissionsDict]]


class Command(TypedDict):
    """What every command may carry besides its own fields."""

    # the metadata group's op number, stamped by a cluster node as the command commits
    # (cluster/metadata_sm.py); a restart resumes the group after the newest one logged
    op: NotRequired[int]


class CreateStream(Command):
    type: Literal["create_stream"]
    name: str
    created_at: int


class UpdateStream(Command):
    type: Literal["update_stream"]
    stream_id: int
    name: str


class DeleteStream(Command):
    type: Literal["delete_stream"]
    stream_id: int


class CreateTopic(Command):
    type: Literal["create_topic"]
    stream_id: int
    name: str
    partitions_count: int
    options: list[EncodedOption]
    created_at: int


class UpdateTopic(Command):
    type: Literal["update_topic"]
    stream_id: int
    topic_id: int
    name: str
    options: list[EncodedOption]
    reset: NotRequired[list[str]]  # option keys back to their defaults first


class DeleteTopic(Command):
    type: Literal["delete_topic"]
    stream_id: int
    topic_id: int


class CreatePartitions(Command):
    type: Literal["create_partitions"]
    stream_id: int
    topic_id: int
    count: int
    created_at: int


class DeletePartitions(Command):
    type: Literal["delete_partitions"]
    stream_id: int
    topic_id: int
    count: int


class CreateGroup(Command):
    type: Literal["create_group"]
    stream_id: int
    topic_id: int
    name: str


class DeleteGroup(Command):
    type: Literal["delete_group"]
    stream_id: int
    topic_id: int
    group_id: int


class CreateUser(Command):
    type: Literal["create_user"]
    username: str
    password_hash: str
    scram: NotRequired[EncodedScram | None]
    status: int
    permissions: PermissionsDict | None
    created_at: int


class UpdateUser(Command):
    type: Literal["update_user"]
    user_id: int
    username: str | None  # None: unchanged
    status: int | None  # None: unchanged


class DeleteUser(Command):
    type: Literal["delete_user"]
    user_id: int


class UpdatePermissions(Command):
    type: Literal["update_permissions"]
    user_id: int
    permissions: PermissionsDict | None


class ChangePassword(Command):
    type: Literal["change_password"]
    user_id: int
    password_hash: str
    scram: NotRequired[EncodedScram | None]


class SetScram(Command):
    type: Literal["set_scram"]
    user_id: int
    mechanism: str
    salt: str
    iterations: int
    stored_key: str
    server_key: str


class DeleteScram(Command):
    type: Literal["delete_scram"]
    user_id: int
    mechanism: str


class CreateToken(Command):
    type: Literal["create_token"]
    user_id: int
    name: str
    token_hash: str
    expiry_at: int


class DeleteToken(Command):
    type: Literal["delete_token"]
    user_id: int
    name: str


class SetGroupConfigs(Command):
    """A Kafka group's dynamic configs (KIP-848 group configs); empty removes them."""

    type: Literal["set_group_configs"]
    group: str
    configs: dict[str, str]


class SetBrokerConfigs(Command):
    """The Kafka door's dynamic broker configs pyggy keeps without an effect."""

    type: Literal["set_broker_configs"]
    configs: dict[str, str]


# Kafka transactions (core/transactions.py); a partition is [stream id, topic id, partition id]
class TxnInit(Command):
    type: Literal["txn_init"]
    transactional_id: str
    producer_id: int
    epoch: int
    timeout_ms: int
    now_ms: NotRequired[int]


class TxnAdd(Command):
    type: Literal["txn_add"]
    transactional_id: str
    partitions: NotRequired[list[list[int]]]
    groups: NotRequired[list[str]]
    now_ms: int


class TxnOffsets(Command):
    """Offsets staged by TxnOffsetCommit: (topic, partition, offset, leader epoch, metadata)."""

    type: Literal["txn_offsets"]
    transactional_id: str
    group: str
    offsets: list[tuple[str, int, int, int, str]]


class TxnFirstOffset(Command):
    type: Literal["txn_first_offset"]
    producer_id: int
    partition: list[int]
    offset: int


class TxnPrepare(Command):
    type: Literal["txn_prepare"]
    transactional_id: str
    commit: bool


class TxnComplete(Command):
    """Markers written: (partition, marker offset) each; `epoch` bumps the producer's."""

    type: Literal["txn_complete"]
    transactional_id: str
    markers: list[tuple[list[int], int]]
    epoch: NotRequired[int]
    now_ms: NotRequired[int]


class TxnExpire(Command):
    """Forget transactional ids idle since before `before_ms` (transactional.id.expiration.ms)."""

    type: Literal["txn_expire"]
    transactional_ids: list[str]
    before_ms: int


MetadataCommand = (
    CreateStream | UpdateStream | DeleteStream | CreateTopic | UpdateTopic | DeleteTopic
    | CreatePartitions | DeletePartitions | CreateGroup | DeleteGroup | CreateUser | UpdateUser
    | DeleteUser | UpdatePermissions | ChangePassword | SetScram | DeleteScram | CreateToken
    | DeleteToken | SetGroupConfigs | SetBrokerConfigs | TxnInit | TxnAdd | TxnOffsets
    | TxnFirstOffset | TxnPrepare | TxnComplete | TxnExpire
)

# every command's `type`, the names the state machine applies
COMMAND_TYPES: frozenset[str] = frozenset(
    get_args(command.__annotations__["type"])[0] for command in get_args(MetadataCommand))
