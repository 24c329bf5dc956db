"""Reply payload encoders for the VSR (0.9) and classic (0.8) protocols (Iggy's commands page,
https://iggy.apache.org/docs/0.9/binary-protocol/commands/).

Every function returns the typed payload only: wrap it with ``frames.result_ok`` for
result-framed operations and with a reply/classic header to send it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import field

from pyggy.core.lean import lean
from pyggy.core.model import (
    ConsumerGroup,
    Partition,
    PersonalAccessToken,
    Stream,
    Topic,
    TopicOptions,
    User,
)
from pyggy.native_wire.codec.codes import HeaderKind
from pyggy.native_wire.codec.primitives import (
    Option,
    encode_name,
    encode_options_block,
    encode_response_permissions,
)

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_STREAM = struct.Struct("<IQIQQ")  # 32 B, then Name (+ options block in 0.9)
_TOPIC = struct.Struct("<IQIQBQQQ")  # 49 B, then Name + 2 options blocks
_TOPIC_CLASSIC = struct.Struct("<IQIQBQBQQ")  # 50 B (+ replication_factor), then Name
_PARTITION = struct.Struct("<IQIQQQ")  # 40 B
_USER = struct.Struct("<IQB")  # 13 B, then Name (+ options block in 0.9)
_GROUP = struct.Struct("<III")
_MEMBER = struct.Struct("<II")
_SYNC = struct.Struct("<QI")
_POLL_PREFIX = struct.Struct("<IQI")  # 16 B
_OFFSET = struct.Struct("<IQQ")  # 20 B
_CONFIRMATION = struct.Struct("<IIIQ")  # 20 B
_LOGIN = struct.Struct("<IQI")
_PAT_EXPIRY = _U64
_CLIENT = struct.Struct("<IIB")
_CLIENT_GROUP = struct.Struct("<III")
_NODE_TAIL = struct.Struct("<HHHHBB")
_STATS = struct.Struct("<IffQQQQQQQQIIIIQII")  # 108 B
_CACHE_METRIC = struct.Struct("<IIIQQf")  # 32 B
_STATS_TAIL = struct.Struct("<IQQ")
_EMPTY_BLOCK = b"\x00\x00\x00\x00"


def _long_str(s: str) -> bytes:
    raw = s.encode()
    return _U32.pack(len(raw)) + raw


def _u32s(values: Sequence[int]) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


# ---------------------------------------------------------------- streams


def encode_stream(stream: Stream) -> bytes:
    """StreamResponse: fixed 32 B, Name, ``u32 len + options`` (stream options are empty)."""
    return (
        _STREAM.pack(stream.id, stream.created_at, len(stream.topics), stream.size_bytes,
                     stream.messages_count)
        + encode_name(stream.name) + _EMPTY_BLOCK
    )


def encode_streams(streams: Iterable[Stream]) -> bytes:
    """GET_STREAMS: StreamResponse* (no count prefix)."""
    return b"".join(encode_stream(s) for s in streams)


def _sorted_topics(stream: Stream) -> list[Topic]:
    return [stream.topics[k] for k in sorted(stream.topics)]


def encode_stream_details(stream: Stream) -> bytes:
    """GET_STREAM / CREATE_STREAM: StreamResponse + one TopicHeader per topic (by id)."""
    return encode_stream(stream) + b"".join(
        encode_topic_header(t) for t in _sorted_topics(stream)
    )


# ---------------------------------------------------------------- topics

_COMPRESSION_NAMES = {1: b"none", 2: b"gzip"}


def _bool(v: bool) -> bytes:
    return b"\x01" if v else b"\x00"


def effective_topic_options(options: TopicOptions) -> list[Option]:
    """Every catalog key with its effective value, in canonical kinds, sorted by key."""
    return [
        ("compression_algorithm", HeaderKind.STRING,
         _COMPRESSION_NAMES.get(options.compression_algorithm, b"none")),
        ("consumer_offset_durability", HeaderKind.STRING,
         options.consumer_offset_durability.encode()),
        ("durability", HeaderKind.STRING, options.durability.encode()),
        ("enforce_fsync", HeaderKind.BOOL, _bool(options.enforce_fsync)),
        ("local_retention_bytes", HeaderKind.UINT64, _U64.pack(options.local_retention_bytes)),
        ("local_retention_segments", HeaderKind.UINT64,
         _U64.pack(options.local_retention_segments)),
        ("max_topic_size", HeaderKind.UINT64, _U64.pack(options.max_topic_size)),
        ("message_expiry", HeaderKind.UINT64, _U64.pack(options.message_expiry)),
        ("messages_required_to_save", HeaderKind.UINT32,
         _U32.pack(options.messages_required_to_save)),
        ("preallocate_segments", HeaderKind.BOOL, _bool(options.preallocate_segments)),
        ("segment_size", HeaderKind.UINT64, _U64.pack(options.segment_size)),
        ("size_of_messages_required_to_save", HeaderKind.UINT64,
         _U64.pack(options.size_of_messages_required_to_save)),
    ]


def topic_option_blocks(options: TopicOptions) -> tuple[bytes, bytes]:
    """(explicit, derived) response blocks, each ``u32 len`` + TLV.

    Explicit = the entries the user sent, as received; derived = the effective value of every
    other catalog key (what the real server stores at admission).
    """
    explicit = options.explicit
    given = {k for k, _, _ in explicit}
    derived = [o for o in effective_topic_options(options) if o[0] not in given]
    return encode_options_block(explicit), encode_options_block(derived)


def encode_topic_header(topic: Topic) -> bytes:
    """TopicHeader: fixed 49 B, Name, explicit options block, derived options block."""
    o = topic.options
    explicit, derived = topic_option_blocks(o)
    return (
        _TOPIC.pack(topic.id, topic.created_at, len(topic.partitions), o.message_expiry,
                    o.compression_algorithm, o.max_topic_size, topic.size_bytes,
                    topic.messages_count)
        + encode_name(topic.name) + explicit + derived
    )


def encode_partition(partition: Partition) -> bytes:
    """PartitionResponse (40 B)."""
    return _PARTITION.pack(partition.id, partition.created_at, partition.segments_count,
                           partition.current_offset, partition.size_bytes,
                           partition.messages_count)


def encode_topic_details(topic: Topic) -> bytes:
    """GET_TOPIC / CREATE_TOPIC: TopicHeader + PartitionResponse per partition."""
    return encode_topic_header(topic) + b"".join(encode_partition(p) for p in topic.partitions)


def encode_topics(topics: Sequence[Topic]) -> bytes:
    """GET_TOPICS: ``u32 count`` + TopicHeader* (the only 0.9 list with a count)."""
    return _U32.pack(len(topics)) + b"".join(encode_topic_header(t) for t in topics)


# ---------------------------------------------------------------- users and tokens


def encode_user(user: User) -> bytes:
    """UserResponse: id, created_at, status, Name, ``u32 len + options`` (empty)."""
    return (_USER.pack(user.id, user.created_at, user.status) + encode_name(user.username)
            + _EMPTY_BLOCK)


def encode_users(users: Iterable[User]) -> bytes:
    return b"".join(encode_user(u) for u in users)


def encode_user_details(user: User) -> bytes:
    """GET_USER / CREATE_USER: UserResponse + permissions (``u32 0`` or ``1, len, perms``)."""
    return encode_user(user) + encode_response_permissions(user.permissions)


def encode_pats(tokens: Iterable[PersonalAccessToken]) -> bytes:
    """GET_PATS: ``{Name name, u64 expiry_at}``*."""
    return b"".join(encode_name(t.name) + _PAT_EXPIRY.pack(t.expiry_at) for t in tokens)


def encode_raw_token(token: str) -> bytes:
    """CREATE_PAT reply: the raw token as a Name."""
    return encode_name(token)


def encode_login_register(
    user_id: int, session: int, protocol_version: int, server_version: str
) -> bytes:
    """Register success payload (wrap in ``result_ok``)."""
    return _LOGIN.pack(user_id, session, protocol_version) + encode_name(server_version)


def encode_identity(user_id: int) -> bytes:
    """Classic LOGIN_USER / LOGIN_WITH_PAT reply."""
    return _U32.pack(user_id)


# ---------------------------------------------------------------- consumer groups and offsets


def encode_consumer_group(group: ConsumerGroup, partitions_count: int) -> bytes:
    """ConsumerGroupResponse: id, partitions_count (of the topic), members_count, Name."""
    return _GROUP.pack(group.id, partitions_count, len(group.members)) + encode_name(group.name)


def encode_consumer_groups(groups: Iterable[ConsumerGroup], partitions_count: int) -> bytes:
    return b"".join(encode_consumer_group(g, partitions_count) for g in groups)


def encode_consumer_group_details(group: ConsumerGroup, partitions_count: int) -> bytes:
    """GET/CREATE_CONSUMER_GROUP: group + ``{id, n, partition_id × n}`` per member."""
    parts = [encode_consumer_group(group, partitions_count)]
    for member in group.members.values():
        parts.append(_MEMBER.pack(member.id, len(member.partitions)))
        parts.append(_u32s(member.partitions))
    return b"".join(parts)


def encode_sync(generation: int, partitions: Sequence[int]) -> bytes:
    """SYNC_CONSUMER_GROUP: ``generation u64, n u32, partition_id u32 × n``."""
    return _SYNC.pack(generation, len(partitions)) + _u32s(partitions)


def encode_consumer_offset(partition_id: int, current_offset: int, stored_offset: int) -> bytes:
    """GET_CONSUMER_OFFSET (20 B)."""
    return _OFFSET.pack(partition_id, current_offset, stored_offset)


# ---------------------------------------------------------------- messages


def encode_poll_prefix(partition_id: int, current_offset: int, count: int) -> bytes:
    """The 16-byte poll reply prefix (both protocols); batch records / frames follow."""
    return _POLL_PREFIX.pack(partition_id, current_offset, count)


def encode_send_confirmation(stream_id: int, topic_id: int, partition_id: int,
                             base_offset: int) -> bytes:
    """SEND_MESSAGES reply with one confirmation."""
    return b"\x01\x00\x00\x00" + _CONFIRMATION.pack(stream_id, topic_id, partition_id,
                                                    base_offset)


def encode_send_confirmations(confirmations: Sequence[tuple[int, int, int, int]]) -> bytes:
    """``u32 count`` + ``{stream, topic, partition u32, base_offset u64}``*."""
    return _U32.pack(len(confirmations)) + b"".join(
        _CONFIRMATION.pack(*c) for c in confirmations
    )


# ---------------------------------------------------------------- system


@lean
class Stats:
    """Values of a GET_STATS reply (commands page). ``cache_metrics``: (stream, topic, partition,
    hits, misses, hit_ratio)."""

    process_id: int = 0
    cpu_usage: float = 0.0
    total_cpu_usage: float = 0.0
    memory_usage: int = 0
    total_memory: int = 0
    available_memory: int = 0
    run_time: int = 0
    start_time: int = 0
    read_bytes: int = 0
    written_bytes: int = 0
    messages_size_bytes: int = 0
    streams_count: int = 0
    topics_count: int = 0
    partitions_count: int = 0
    segments_count: int = 0
    messages_count: int = 0
    clients_count: int = 0
    consumer_groups_count: int = 0
    hostname: str = ""
    os_name: str = ""
    os_version: str = ""
    kernel_version: str = ""
    iggy_server_version: str = ""
    iggy_server_semver: int = 0
    cache_metrics: list[tuple[int, int, int, int, int, float]] = field(default_factory=list)
    threads_count: int = 0
    free_disk_space: int = 0
    total_disk_space: int = 0


def semver_number(major: int, minor: int, patch: int) -> int:
    """``iggy_server_semver``: MAJOR‖3-digit minor‖3-digit patch (0.9.0 → 9000)."""
    return major * 1_000_000 + minor * 1_000 + patch


def encode_stats(s: Stats) -> bytes:
    parts = [
        _STATS.pack(s.process_id, s.cpu_usage, s.total_cpu_usage, s.memory_usage,
                    s.total_memory, s.available_memory, s.run_time, s.start_time,
                    s.read_bytes, s.written_bytes, s.messages_size_bytes, s.streams_count,
                    s.topics_count, s.partitions_count, s.segments_count, s.messages_count,
                    s.clients_count, s.consumer_groups_count),
        _long_str(s.hostname), _long_str(s.os_name), _long_str(s.os_version),
        _long_str(s.kernel_version), _long_str(s.iggy_server_version),
        _U32.pack(s.iggy_server_semver), _U32.pack(len(s.cache_metrics)),
    ]
    parts += [_CACHE_METRIC.pack(*m) for m in s.cache_metrics]
    parts.append(_STATS_TAIL.pack(s.threads_count, s.free_disk_space, s.total_disk_space))
    return b"".join(parts)


def encode_cluster_metadata(
    cluster_name: str, node_name: str, ip: str, tcp_port: int, quic_port: int = 0,
    http_port: int = 0, websocket_port: int = 0, role: int = 0, status: int = 0,
) -> bytes:
    """GET_CLUSTER_METADATA with one node (role 0 Leader, status 0 Healthy)."""
    return encode_cluster_nodes(cluster_name, [(node_name, ip, tcp_port, quic_port, http_port,
                                                websocket_port, role, status)])


def encode_cluster_nodes(cluster_name: str,
                         nodes: Sequence[tuple[str, str, int, int, int, int, int, int]]) -> bytes:
    """GET_CLUSTER_METADATA: the cluster name, then ``u32 count`` and per node (name, ip,
    ports tcp/quic/http/websocket, role 0 Leader / 1 Follower, status 0 Healthy)."""
    parts = [_long_str(cluster_name), _U32.pack(len(nodes))]
    parts.extend(encode_cluster_node(*n) for n in nodes)
    return b"".join(parts)


def encode_cluster_node(name: str, ip: str, tcp: int, quic: int, http: int, websocket: int,
                        role: int, status: int) -> bytes:
    """One node as GET_CLUSTER_METADATA lists it (also the tail of a poll route)."""
    return _long_str(name) + _long_str(ip) + _NODE_TAIL.pack(tcp, quic, http, websocket, role,
                                                             status)


def encode_describe_options(entries: Sequence[tuple[str, int, bytes, str]]) -> bytes:
    """DESCRIBE_OPTIONS: ``u32 count`` + ``{Name key, u8 kind, u32 len + default, u32 len +
    description}`` per (key, kind, default_bytes, description)."""
    parts = [_U32.pack(len(entries))]
    for key, kind, default, description in entries:
        parts.append(encode_name(key) + bytes((kind,)) + _U32.pack(len(default)) + default
                     + _long_str(description))
    return b"".join(parts)


def encode_client(client_id: int, user_id: int, transport: int, address: str,
                  groups_count: int = 0) -> bytes:
    """ClientResponse (GET_CLIENTS element); transport 1 TCP, 2 QUIC, 4 WebSocket."""
    return _CLIENT.pack(client_id, user_id, transport) + _long_str(address) + _U32.pack(
        groups_count)


def encode_client_details(client_id: int, user_id: int, transport: int, address: str,
                          groups: Sequence[tuple[int, int, int]] = ()) -> bytes:
    """GET_ME / GET_CLIENT: ClientResponse + ``{stream, topic, group}`` per group."""
    return encode_client(client_id, user_id, transport, address, len(groups)) + b"".join(
        _CLIENT_GROUP.pack(*g) for g in groups)


# ---------------------------------------------------------------- classic (0.8) variants


def encode_stream_classic(stream: Stream) -> bytes:
    """Classic StreamResponse: no options block."""
    return (_STREAM.pack(stream.id, stream.created_at, len(stream.topics), stream.size_bytes,
                         stream.messages_count) + encode_name(stream.name))


def encode_streams_classic(streams: Iterable[Stream]) -> bytes:
    return b"".join(encode_stream_classic(s) for s in streams)


def encode_topic_header_classic(topic: Topic, replication_factor: int = 1) -> bytes:
    """Classic TopicHeader: 50 fixed bytes (with ``replication_factor`` @33) + Name."""
    o = topic.options
    return (
        _TOPIC_CLASSIC.pack(topic.id, topic.created_at, len(topic.partitions), o.message_expiry,
                            o.compression_algorithm, o.max_topic_size, replication_factor,
                            topic.size_bytes, topic.messages_count)
        + encode_name(topic.name)
    )


def encode_stream_details_classic(stream: Stream) -> bytes:
    """The 0.8 client checks ``topics_count`` against the topic headers it decodes."""
    return encode_stream_classic(stream) + b"".join(
        encode_topic_header_classic(t) for t in _sorted_topics(stream))


def encode_topic_details_classic(topic: Topic) -> bytes:
    """The 0.8 client checks ``partitions_count`` against the partitions it decodes."""
    return encode_topic_header_classic(topic) + b"".join(
        encode_partition(p) for p in topic.partitions)


def encode_topics_classic(topics: Iterable[Topic]) -> bytes:
    """Classic GET_TOPICS: TopicHeader* with no count prefix."""
    return b"".join(encode_topic_header_classic(t) for t in topics)


def encode_user_classic(user: User) -> bytes:
    """Classic UserResponse: no options block."""
    return _USER.pack(user.id, user.created_at, user.status) + encode_name(user.username)


def encode_users_classic(users: Iterable[User]) -> bytes:
    return b"".join(encode_user_classic(u) for u in users)


def encode_user_details_classic(user: User) -> bytes:
    return encode_user_classic(user) + encode_response_permissions(user.permissions)
