"""The codec's exceptions; Kafka's error codes are re-exported from their one table
(`pyggy.core.records.kafka_errors`)."""

from __future__ import annotations

from pyggy.core.records.kafka_errors import RETRIABLE, ErrorCode

__all__ = ["RETRIABLE", "ErrorCode", "FrameError", "KafkaDecodeError", "KafkaEncodeError",
           "UnsupportedVersionError"]


class KafkaDecodeError(Exception):
    """Malformed, truncated or oversized input; the only exception a decode raises."""


class UnsupportedVersionError(KafkaDecodeError):
    """An API key or version this codec has no schema for."""


class FrameError(KafkaDecodeError):
    """A frame size prefix that is negative or larger than allowed: close the connection."""


class KafkaEncodeError(ValueError):
    """A value that cannot be encoded with the schema (wrong type, out of range, too long)."""
