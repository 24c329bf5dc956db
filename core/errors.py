"""Iggy error codes (u32 on the wire) and the exception that carries one."""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    ERROR = 1
    INVALID_CONFIGURATION = 2
    INVALID_COMMAND = 3
    INVALID_FORMAT = 4
    FEATURE_UNAVAILABLE = 5
    INVALID_IDENTIFIER = 6
    INVALID_VERSION = 7
    RESOURCE_NOT_FOUND = 20
    STALE_CLIENT = 30
    UNAUTHENTICATED = 40
    UNAUTHORIZED = 41
    INVALID_CREDENTIALS = 42
    INVALID_USERNAME = 43
    INVALID_PASSWORD = 44
    INVALID_USER_STATUS = 45
    USER_ALREADY_EXISTS = 46
    USER_INACTIVE = 47
    CANNOT_DELETE_USER = 48
    CANNOT_CHANGE_PERMISSIONS = 49
    INVALID_PAT_NAME = 50
    PAT_ALREADY_EXISTS = 51
    PATS_LIMIT_REACHED = 52
    INVALID_PAT = 53
    PAT_EXPIRED = 54
    USERS_LIMIT_REACHED = 55
    INVALID_PAT_EXPIRY = 56
    # a cluster (Iggy's codes): the outcome is unknown (retry with the same request), and
    # the request was never admitted here (not the primary, or a view change runs)
    TRANSIENT_NOT_COMMITTED = 57
    TRANSIENT_NOT_ACCEPTED = 58
    ACCESS_TOKEN_MISSING = 77
    INVALID_ACCESS_TOKEN = 78
    INVALID_SIZE_BYTES = 80
    INVALID_UTF8 = 81
    CLIENT_NOT_FOUND = 100
    STREAM_ID_NOT_FOUND = 1009
    STREAM_NAME_NOT_FOUND = 1010
    STREAM_NAME_ALREADY_EXISTS = 1012
    INVALID_STREAM_NAME = 1013
    INVALID_STREAM_ID = 1014
    INVALID_TOPIC_SIZE = 1019
    TOO_MANY_STREAMS = 1020
    TOPIC_ID_NOT_FOUND = 2010
    TOPIC_NAME_NOT_FOUND = 2011
    TOPIC_NAME_ALREADY_EXISTS = 2013
    INVALID_TOPIC_NAME = 2014
    TOO_MANY_PARTITIONS = 2015
    INVALID_TOPIC_ID = 2016
    INVALID_PARTITIONS_COUNT = 2019
    TOO_MANY_TOPICS = 2021
    PARTITION_NOT_FOUND = 3007
    NO_PARTITIONS = 3008
    TOPIC_FULL = 3009
    CONSUMER_OFFSET_NOT_FOUND = 3021
    SEGMENT_NOT_FOUND = 4000
    CANNOT_SAVE_MESSAGES_TO_SEGMENT = 4006
    INVALID_SEGMENT_SIZE = 4002
    INVALID_MESSAGES_COUNT = 4009
    CANNOT_READ_MESSAGE = 4011
    TOO_BIG_USER_HEADERS = 4017
    TOO_BIG_MESSAGE_PAYLOAD = 4022
    TOO_MANY_MESSAGES = 4023
    EMPTY_MESSAGE_PAYLOAD = 4024
    INVALID_MESSAGE_PAYLOAD_LENGTH = 4025
    INVALID_MESSAGE_CHECKSUM = 4027
    COMMAND_LENGTH_ERROR = 4029
    INVALID_MESSAGE_TIMESTAMP_DELTA = 4038
    INVALID_BATCH_CHECKSUM = 4039
    INVALID_HEADER_KIND = 4040
    UNSUPPORTED_OPTION_KEY = 4041
    INVALID_OPTION_VALUE = 4042
    OPTIONS_BLOCK_TOO_LARGE = 4043
    INVALID_OFFSET = 4100
    INVALID_RESERVED_FIELD = 4101
    CONSUMER_GROUP_ID_NOT_FOUND = 5000
    CONSUMER_GROUP_NAME_NOT_FOUND = 5003
    CONSUMER_GROUP_NAME_ALREADY_EXISTS = 5004
    INVALID_CONSUMER_GROUP_NAME = 5005
    CONSUMER_GROUP_MEMBER_NOT_FOUND = 5006
    CONSUMER_GROUP_PARTITION_NOT_OWNED = 5009
    # Iggy's file errors: a write the disk refused (ENOSPC, EIO); the Kafka door answers it
    # as KAFKA_STORAGE_ERROR
    SNAPSHOT_FILE_COMPLETION_FAILED = 9000
    CANNOT_WRITE_TO_FILE = 10006
    ALREADY_AUTHENTICATED = 14000
    INVALID_SESSION = 14001
    INCOMPATIBLE_PROTOCOL_VERSION = 14003


STORAGE_ERRORS = frozenset({ErrorCode.CANNOT_WRITE_TO_FILE,
                            ErrorCode.CANNOT_SAVE_MESSAGES_TO_SEGMENT,
                            ErrorCode.CANNOT_READ_MESSAGE})


class IggyError(Exception):
    """A business error with its Iggy code; the wire layer turns it into a status."""

    def __init__(self, code: ErrorCode | int, detail: str = "") -> None:
        self.code = int(code)
        super().__init__(detail or f"iggy error {self.code}")


class RemoteReadError(IggyError):
    """An archived segment could not be read (archive down, object missing or corrupt)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.ERROR, message)


class CorruptBatch(IggyError):
    """A stored batch failed verification and no verified copy could replace it: refused,
    never served (the Kafka door answers KAFKA_STORAGE_ERROR)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.CANNOT_READ_MESSAGE, message)
