"""Kafka topic names ↔ Iggy streams/topics, and Kafka topic configs ↔ Iggy topic options.

The rule (documented in the README):
- A Kafka topic `orders` is the Iggy topic `orders` of the stream `[kafka] default_stream`
  (`kafka` by default); topics created through Kafka (CreateTopics or auto-creation) go there,
  and the stream is created on first use.
- A Kafka topic `<stream>.<topic>` (separator `[kafka] stream_separator`) reaches the Iggy
  topic `<topic>` of any other stream, so Kafka clients see every Iggy topic.
Partitions and offsets are the same through both doors.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterator

from core.engine import LogEngine
from core.errors import IggyError
from core.model import NEVER_EXPIRE, UNLIMITED_SIZE, Topic
from kafka_wire.protocol.errors import ErrorCode
from kafka_wire.settings import KafkaSettings

LEGAL_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
STRING, UINT64 = 2, 12
_U64 = struct.Struct("<Q")


class KafkaError(Exception):
    """A Kafka error code with a message, raised by handlers' helpers."""

    def __init__(self, code: int, message: str = "") -> None:
        self.code = int(code)
        self.message = message
        super().__init__(message or f"kafka error {code}")


class TopicMap:
    def __init__(self, engine: LogEngine, settings: KafkaSettings) -> None:
        self.engine = engine
        self.settings = settings

    def resolve(self, name: str) -> Topic | None:
        engine, s = self.engine, self.settings
        t = engine.get_topic(s.default_stream, name) if engine.get_stream(s.default_stream) \
            else None
        if t is not None:
            return t
        stream, sep, topic = name.partition(s.stream_separator)
        if sep and stream != s.default_stream and engine.get_stream(stream):
            return engine.get_topic(stream, topic)
        return None

    def name_of(self, t: Topic) -> str:
        stream = self.engine.meta.streams[t.stream_id]
        if stream.name == self.settings.default_stream:
            return t.name
        return f"{stream.name}{self.settings.stream_separator}{t.name}"

    def all(self) -> Iterator[tuple[str, Topic]]:
        for stream in self.engine.streams():
            for t in self.engine.topics(stream.id):
                name = self.name_of(t)
                if LEGAL_NAME.match(name):
                    yield name, t

    def create(self, name: str, partitions: int, configs: dict[str, str | None]) -> Topic:
        """Create a topic in the default stream (made on first use)."""
        check_name(name)
        if self.resolve(name) is not None:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        if partitions < 1:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be > 0.")
        options = configs_to_options(configs)
        engine = self.engine
        if engine.get_stream(self.settings.default_stream) is None:
            engine.create_stream(self.settings.default_stream)
        try:
            return engine.create_topic(self.settings.default_stream, name, partitions, options)
        except IggyError as e:
            raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from None


def check_name(name: str) -> None:
    if not LEGAL_NAME.match(name) or name in (".", ".."):
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                         f"Topic name '{name}' is illegal")


def topic_id(t: Topic) -> bytes:
    """A stable, non-zero 16-byte topic id (Kafka topic ids, KIP-516)."""
    raw = hashlib.sha256(f"pyggy:{t.stream_id}:{t.id}:{t.created_at}".encode()).digest()[:16]
    return raw if any(raw) else b"\x01" + raw[1:]


# -- configs ----------------------------------------------------------------------------------
# Kafka config → (Iggy option, to-option, from-option). Others are kept as `kafka.<name>`.
def _ms_to_expiry(v: str) -> bytes:
    ms = int(v)
    return _U64.pack(NEVER_EXPIRE if ms < 0 else ms * 1000)


def _expiry_to_ms(raw: bytes) -> str:
    us = _U64.unpack(raw)[0]
    return "-1" if us == NEVER_EXPIRE else str(us // 1000)


def _bytes_to_size(v: str) -> bytes:
    n = int(v)
    return _U64.pack(UNLIMITED_SIZE if n < 0 else n)


def _size_to_bytes(raw: bytes) -> str:
    n = _U64.unpack(raw)[0]
    return "-1" if n == UNLIMITED_SIZE else str(n)


MAPPED = {
    "retention.ms": ("message_expiry", _ms_to_expiry, _expiry_to_ms),
    "retention.bytes": ("max_topic_size", _bytes_to_size, _size_to_bytes),
    "segment.bytes": ("segment_size", lambda v: _U64.pack(int(v)), lambda r: str(
        _U64.unpack(r)[0])),
}

# Topic configs Kafka clients ask about, with Kafka's defaults (source DEFAULT_CONFIG).
DEFAULTS: dict[str, str] = {
    "cleanup.policy": "delete",
    "compression.type": "producer",
    "delete.retention.ms": "86400000",
    "file.delete.delay.ms": "60000",
    "flush.messages": "9223372036854775807",
    "flush.ms": "9223372036854775807",
    "index.interval.bytes": "4096",
    "max.compaction.lag.ms": "9223372036854775807",
    "max.message.bytes": "1048588",
    "message.timestamp.after.max.ms": "9223372036854775807",
    "message.timestamp.before.max.ms": "9223372036854775807",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.5",
    "min.compaction.lag.ms": "0",
    "min.insync.replicas": "1",
    "preallocate": "false",
    "retention.bytes": "-1",
    "retention.ms": "604800000",
    "segment.bytes": "1073741824",
    "segment.index.bytes": "10485760",
    "segment.jitter.ms": "0",
    "segment.ms": "604800000",
    "unclean.leader.election.enable": "false",
}
CHOICES = {
    "cleanup.policy": {"delete"},
    "compression.type": {"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"},
    "message.timestamp.type": {"CreateTime", "LogAppendTime"},
}


def validate_config(name: str, value: str | None) -> None:
    if name not in DEFAULTS:
        raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")
    if value is None:
        return
    if name in CHOICES:
        if value not in CHOICES[name]:
            raise KafkaError(ErrorCode.INVALID_CONFIG,
                             f"Invalid value {value} for configuration {name}")
        return
    if DEFAULTS[name] in ("true", "false"):
        if value not in ("true", "false"):
            raise KafkaError(ErrorCode.INVALID_CONFIG,
                             f"Invalid value {value} for configuration {name}")
        return
    try:
        float(value) if "." in DEFAULTS[name] else int(value)
    except ValueError:
        raise KafkaError(ErrorCode.INVALID_CONFIG,
                         f"Invalid value {value} for configuration {name}") from None


def configs_to_options(configs: dict[str, str | None]) -> list[tuple[str, int, bytes]]:
    options: list[tuple[str, int, bytes]] = []
    for name, value in configs.items():
        validate_config(name, value)
        if value is None:
            continue
        if name in MAPPED:
            option, to_option, _ = MAPPED[name]
            options.append((option, UINT64, to_option(value)))
        else:
            options.append((f"kafka.{name}", STRING, value.encode()))
    return options


def topic_configs(t: Topic) -> dict[str, tuple[str, bool]]:
    """Every known config of a topic: name → (value, is_default)."""
    out = {name: (value, True) for name, value in DEFAULTS.items()}
    o = t.options
    explicit = {k for k, _, _ in o.explicit}
    out["retention.ms"] = (_expiry_to_ms(_U64.pack(o.message_expiry)),
                           "message_expiry" not in explicit)
    out["retention.bytes"] = (_size_to_bytes(_U64.pack(o.max_topic_size)),
                              "max_topic_size" not in explicit)
    out["segment.bytes"] = (str(o.segment_size), "segment_size" not in explicit)
    for key, _kind, raw in o.explicit:
        if key.startswith("kafka."):
            out[key[6:]] = (raw.decode(errors="replace"), False)
    return out


def topic_config(t: Topic, name: str) -> str:
    return topic_configs(t)[name][0]
