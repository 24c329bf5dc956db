"""Metadata entities shared by the engine and both wire packages.

Ids are 0-based and recycled after delete, as in Iggy 0.9. Timestamps are µs since the epoch.
"""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, cast

from pyggy.core.lean import lean, lean_frozen

if TYPE_CHECKING:
    from pyggy.core.storage.partition_log import PartitionLog

U64_MAX = 2**64 - 1
NEVER_EXPIRE = U64_MAX
UNLIMITED_SIZE = U64_MAX
MAX_PARTITIONS_PER_REQUEST = 1000

Identifier = int | str
"""A numeric id or an exact name, as in Iggy's wire Identifier."""


@lean
class TopicOptions:
    """Per-topic settings (Iggy 0.9 option catalog). Sizes in bytes, durations in µs."""

    compression_algorithm: int = 1  # 1 none, 2 gzip (a placeholder, as in Iggy)
    message_expiry: int = NEVER_EXPIRE
    max_topic_size: int = UNLIMITED_SIZE
    segment_size: int = 1 << 30
    enforce_fsync: bool = False
    messages_required_to_save: int = 1024
    size_of_messages_required_to_save: int = 1 << 20
    preallocate_segments: bool = False
    durability: str = "replicated"
    consumer_offset_durability: str = "replicated"
    # Tiered storage: newest bytes / segments kept on local disk once older ones are archived
    # (UNLIMITED_SIZE / 0 = keep everything local).
    local_retention_bytes: int = UNLIMITED_SIZE
    local_retention_segments: int = 0
    # Raw option entries the user set explicitly, in the order received: (key, kind, value bytes).
    explicit: list[tuple[str, int, bytes]] = field(default_factory=list)


@lean
class GlobalPermissions:
    """A user's server-wide permissions (Iggy's global permissions)."""

    manage_servers: bool = False
    read_servers: bool = False
    manage_users: bool = False
    read_users: bool = False
    manage_streams: bool = False
    read_streams: bool = False
    manage_topics: bool = False
    read_topics: bool = False
    poll_messages: bool = False
    send_messages: bool = False


@lean
class TopicPermissions:
    """A user's permissions on one topic."""

    manage_topic: bool = False
    read_topic: bool = False
    poll_messages: bool = False
    send_messages: bool = False


@lean
class StreamPermissions:
    """A user's permissions on one stream and, by id, its topics."""

    manage_stream: bool = False
    read_stream: bool = False
    manage_topics: bool = False
    read_topics: bool = False
    poll_messages: bool = False
    send_messages: bool = False
    topics: dict[int, TopicPermissions] = field(default_factory=dict)


@lean
class Permissions:
    """A user's global and per-stream permissions."""

    global_: GlobalPermissions = field(default_factory=GlobalPermissions)
    streams: dict[int, StreamPermissions] = field(default_factory=dict)


@lean_frozen
class ScramCredential:
    """A SCRAM credential (RFC 5802 §3): what the server keeps instead of the password."""

    salt: bytes
    iterations: int
    stored_key: bytes  # H(ClientKey)
    server_key: bytes  # HMAC(SaltedPassword, "Server Key")


@lean
class PersonalAccessToken:
    """A user's named token, stored as a hash."""

    name: str
    token_hash: str
    expiry_at: int  # µs since epoch; 0 = never


@lean
class User:
    """A user: the password's hash, permissions, tokens and SCRAM credentials."""

    id: int
    username: str
    password_hash: str
    status: int  # 1 active, 2 inactive
    created_at: int
    permissions: Permissions | None = None
    tokens: dict[str, PersonalAccessToken] = field(default_factory=dict)
    # SCRAM credentials by mechanism ("SCRAM-SHA-256", "SCRAM-SHA-512"); empty for users
    # whose password was last set before pyggy stored them (they can still use PLAIN)
    scram: dict[str, ScramCredential] = field(default_factory=dict)

    @property
    def is_root(self) -> bool:
        return self.id == 0


@lean
class GroupMember:
    """A live member of an Iggy consumer group (runtime only, tied to a client session)."""

    id: int  # the client id the server gave the session
    partitions: list[int] = field(default_factory=list)


@lean
class ConsumerGroup:
    """An Iggy consumer group of a topic."""

    id: int
    name: str
    members: dict[int, GroupMember] = field(default_factory=dict)
    generation: int = 0


@lean
class Partition:
    """A topic's partition and its log."""

    id: int
    created_at: int
    # None only from the state machine making the partition until the engine attaches its files
    # (or when creating them failed): typed as a log so the paths that serve it need no check
    log: PartitionLog = cast("PartitionLog", None)

    @property
    def current_offset(self) -> int:
        """The newest offset in the partition (0 when empty, as Iggy reports it)."""
        return max(self.log.next_offset - 1, 0)

    @property
    def segments_count(self) -> int:
        return self.log.segments_count

    @property
    def size_bytes(self) -> int:
        return self.log.size_bytes

    @property
    def messages_count(self) -> int:
        return self.log.messages_count


@lean
class Topic:
    """A topic: its options, partitions and consumer groups."""

    id: int
    stream_id: int
    name: str
    created_at: int
    options: TopicOptions
    partitions: list[Partition] = field(default_factory=list)
    groups: dict[int, ConsumerGroup] = field(default_factory=dict)
    # Round-robin cursor for Balanced partitioning (runtime only).
    next_partition: int = 0

    @property
    def size_bytes(self) -> int:
        return sum(p.size_bytes for p in self.partitions)

    @property
    def messages_count(self) -> int:
        return sum(p.messages_count for p in self.partitions)


@lean
class Stream:
    """A stream and its topics."""

    id: int
    name: str
    created_at: int
    topics: dict[int, Topic] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return sum(t.size_bytes for t in self.topics.values())

    @property
    def messages_count(self) -> int:
        return sum(t.messages_count for t in self.topics.values())
