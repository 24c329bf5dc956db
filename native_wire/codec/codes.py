"""Command codes, VSR operations, header commands and eviction reasons (Iggy's framing and
commands pages, https://iggy.apache.org/docs/0.9/binary-protocol/)."""

from __future__ import annotations

from enum import IntEnum


class Code(IntEnum):
    """Command codes (u32); same numbers in the classic protocol where they exist."""

    PING = 1
    GET_STATS = 10
    GET_SNAPSHOT_FILE = 11
    GET_CLUSTER_METADATA = 12
    DESCRIBE_OPTIONS = 13
    ATTACH_CONSUMER_SESSION = 14
    GET_ME = 20
    GET_CLIENT = 21
    GET_CLIENTS = 22
    GET_USER = 31
    GET_USERS = 32
    CREATE_USER = 33
    DELETE_USER = 34
    UPDATE_USER = 35
    UPDATE_PERMISSIONS = 36
    CHANGE_PASSWORD = 37
    LOGIN_USER = 38
    LOGOUT_USER = 39
    LOGIN_REGISTER = 40
    GET_PERSONAL_ACCESS_TOKENS = 41
    CREATE_PERSONAL_ACCESS_TOKEN = 42
    DELETE_PERSONAL_ACCESS_TOKEN = 43
    LOGIN_WITH_PERSONAL_ACCESS_TOKEN = 44
    LOGIN_REGISTER_WITH_PAT = 45
    POLL_MESSAGES = 100
    SEND_MESSAGES = 101
    FLUSH_UNSAVED_BUFFER = 102
    GET_POLL_ROUTING = 103
    POLL_MESSAGES_ON_PRIMARY = 104
    GET_CONSUMER_OFFSET = 120
    STORE_CONSUMER_OFFSET = 121
    DELETE_CONSUMER_OFFSET = 122
    GET_CONSUMER_OFFSET_ROUTING = 123
    GET_STREAM = 200
    GET_STREAMS = 201
    CREATE_STREAM = 202
    DELETE_STREAM = 203
    UPDATE_STREAM = 204
    PURGE_STREAM = 205
    GET_TOPIC = 300
    GET_TOPICS = 301
    CREATE_TOPIC = 302
    DELETE_TOPIC = 303
    UPDATE_TOPIC = 304
    PURGE_TOPIC = 305
    CREATE_PARTITIONS = 402
    DELETE_PARTITIONS = 403
    DELETE_SEGMENTS = 503
    GET_CONSUMER_GROUP = 600
    GET_CONSUMER_GROUPS = 601
    CREATE_CONSUMER_GROUP = 602
    DELETE_CONSUMER_GROUP = 603
    JOIN_CONSUMER_GROUP = 604
    LEAVE_CONSUMER_GROUP = 605
    SYNC_CONSUMER_GROUP = 606


# Codes the classic (0.8) protocol does not have (https://iggy.apache.org/docs/0.8/binary-protocol/commands/).
NOT_IN_CLASSIC = frozenset({13, 14, 40, 45, 103, 104, 123, 606})


class Operation(IntEnum):
    """The VSR ``operation`` byte (request header @176, reply header @208)."""

    RESERVED = 0
    REGISTER = 1
    NON_REPLICATED = 2
    LOGOUT = 3
    # 64..68 are internal (replica/journal only) and refused from clients.
    CREATE_STREAM = 128
    UPDATE_STREAM = 129
    DELETE_STREAM = 130
    PURGE_STREAM = 131
    CREATE_TOPIC = 132
    UPDATE_TOPIC = 133
    DELETE_TOPIC = 134
    PURGE_TOPIC = 135
    CREATE_PARTITIONS = 136
    DELETE_PARTITIONS = 137
    DELETE_SEGMENTS = 138
    CREATE_CONSUMER_GROUP = 139
    DELETE_CONSUMER_GROUP = 140
    CREATE_USER = 141
    UPDATE_USER = 142
    DELETE_USER = 143
    CHANGE_PASSWORD = 144
    UPDATE_PERMISSIONS = 145
    CREATE_PERSONAL_ACCESS_TOKEN = 146
    DELETE_PERSONAL_ACCESS_TOKEN = 147
    JOIN_CONSUMER_GROUP = 148
    LEAVE_CONSUMER_GROUP = 149
    SEND_MESSAGES = 160
    STORE_CONSUMER_OFFSET = 161
    DELETE_CONSUMER_OFFSET = 162


INTERNAL_OPERATIONS = range(64, 69)
METADATA_OPERATIONS = range(128, 150)
PARTITION_OPERATIONS = range(160, 163)

# The operation a 0.9 client sends for each replicated code (everything else is NonReplicated).
OPERATION_FOR_CODE: dict[int, int] = {
    Code.CREATE_STREAM: Operation.CREATE_STREAM,
    Code.UPDATE_STREAM: Operation.UPDATE_STREAM,
    Code.DELETE_STREAM: Operation.DELETE_STREAM,
    Code.PURGE_STREAM: Operation.PURGE_STREAM,
    Code.CREATE_TOPIC: Operation.CREATE_TOPIC,
    Code.UPDATE_TOPIC: Operation.UPDATE_TOPIC,
    Code.DELETE_TOPIC: Operation.DELETE_TOPIC,
    Code.PURGE_TOPIC: Operation.PURGE_TOPIC,
    Code.CREATE_PARTITIONS: Operation.CREATE_PARTITIONS,
    Code.DELETE_PARTITIONS: Operation.DELETE_PARTITIONS,
    Code.DELETE_SEGMENTS: Operation.DELETE_SEGMENTS,
    Code.CREATE_CONSUMER_GROUP: Operation.CREATE_CONSUMER_GROUP,
    Code.DELETE_CONSUMER_GROUP: Operation.DELETE_CONSUMER_GROUP,
    Code.CREATE_USER: Operation.CREATE_USER,
    Code.UPDATE_USER: Operation.UPDATE_USER,
    Code.DELETE_USER: Operation.DELETE_USER,
    Code.CHANGE_PASSWORD: Operation.CHANGE_PASSWORD,
    Code.UPDATE_PERMISSIONS: Operation.UPDATE_PERMISSIONS,
    Code.CREATE_PERSONAL_ACCESS_TOKEN: Operation.CREATE_PERSONAL_ACCESS_TOKEN,
    Code.DELETE_PERSONAL_ACCESS_TOKEN: Operation.DELETE_PERSONAL_ACCESS_TOKEN,
    Code.JOIN_CONSUMER_GROUP: Operation.JOIN_CONSUMER_GROUP,
    Code.LEAVE_CONSUMER_GROUP: Operation.LEAVE_CONSUMER_GROUP,
    Code.SEND_MESSAGES: Operation.SEND_MESSAGES,
    Code.STORE_CONSUMER_OFFSET: Operation.STORE_CONSUMER_OFFSET,
    Code.DELETE_CONSUMER_OFFSET: Operation.DELETE_CONSUMER_OFFSET,
    Code.LOGOUT_USER: Operation.LOGOUT,
    Code.LOGIN_REGISTER: Operation.REGISTER,
    Code.LOGIN_REGISTER_WITH_PAT: Operation.REGISTER,
}

# Inverse map for replicated operations. Register maps to LOGIN_REGISTER: the server cannot tell
# 40 from 45 and must try the username/password shape first, then the PAT shape.
CODE_FOR_OPERATION: dict[int, int] = {
    op: code for code, op in OPERATION_FOR_CODE.items() if code != Code.LOGIN_REGISTER_WITH_PAT
}


class HeaderCommand(IntEnum):
    """The VSR header ``command`` byte @60."""

    REQUEST = 5
    REPLY = 8
    EVICTION = 13


class EvictionReason(IntEnum):
    """Reason byte @255 of an eviction header."""

    NO_SESSION = 1
    CLIENT_RELEASE_TOO_LOW = 2
    CLIENT_RELEASE_TOO_HIGH = 3
    INVALID_REQUEST_OPERATION = 4
    INVALID_REQUEST_BODY = 5
    INVALID_REQUEST_BODY_SIZE = 6
    SESSION_TOO_LOW = 7
    SESSION_RELEASE_MISMATCH = 8
    INVALID_CREDENTIALS = 9
    INVALID_TOKEN = 10
    USER_INACTIVE = 11
    SESSION_ERROR = 12
    STALE_CLIENT = 13
    INCOMPATIBLE_PROTOCOL = 14
    MALFORMED_LOGIN = 15


def pack_version(major: int, minor: int, patch: int) -> int:
    """Packed protocol version: ``major<<20 | minor<<10 | patch`` (10 bits each)."""
    return (major << 20) | (minor << 10) | patch


PROTOCOL_VERSION = pack_version(0, 11, 0)  # 11264, what apache-iggy 0.9.0 sends
PROTOCOL_VERSION_MIN = PROTOCOL_VERSION & ~0x3FF  # patch zeroed


def is_protocol_compatible(client: int, server: int = PROTOCOL_VERSION) -> bool:
    """Accept ``client >= server with patch 0`` and the same or older ``major.minor``."""
    return client >= (server & ~0x3FF) and (client >> 10) <= (server >> 10)


# Message-level enums shared by requests.
CONSUMER = 1
CONSUMER_GROUP = 2

PARTITIONING_BALANCED = 1
PARTITIONING_PARTITION_ID = 2
PARTITIONING_MESSAGES_KEY = 3

POLL_OFFSET = 1
POLL_TIMESTAMP = 2
POLL_FIRST = 3
POLL_LAST = 4
POLL_NEXT = 5

RESYNC_REQUIRED_PARTITION = 0xFFFFFFFF  # poll reply partition_id that makes a client re-SYNC


class HeaderKind(IntEnum):
    """TLV kinds of user headers and options (values are little-endian)."""

    RAW = 1
    STRING = 2
    BOOL = 3
    INT8 = 4
    INT16 = 5
    INT32 = 6
    INT64 = 7
    INT128 = 8
    UINT8 = 9
    UINT16 = 10
    UINT32 = 11
    UINT64 = 12
    UINT128 = 13
    FLOAT32 = 14
    FLOAT64 = 15
