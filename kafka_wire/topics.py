"""Kafka topic names ↔ Iggy streams/topics, and Kafka topic configs ↔ Iggy topic options.

The rule (documented in the README):
- A Kafka topic `orders` is the Iggy topic `orders` of the stream `[kafka] default_stream`
  (`kafka` by default), which is created on first use.
- A Kafka topic `<stream>.<topic>` (separator `[kafka] stream_separator`) reaches the Iggy
  topic `<topic>` of any other existing stream, so Kafka clients see every Iggy topic.
- Creating (CreateTopics or auto-creation) follows the same rule: `<stream>.<topic>` is created
  in the existing stream `<stream>`; a name whose prefix is no other stream goes, whole, to the
  default stream (where reading finds it first).
Partitions and offsets are the same through both doors.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterator
from typing import overload

from pyggy.core.engine import LogEngine
from pyggy.core.errors import STORAGE_ERRORS, IggyError
from pyggy.core.errors import ErrorCode as IggyCode
from pyggy.core.lean import lean_frozen
from pyggy.core.model import (
    MAX_PARTITIONS_PER_REQUEST,
    NEVER_EXPIRE,
    UNLIMITED_SIZE,
    Stream,
    Topic,
    TopicOptions,
)
from pyggy.core.options import MAX_SEGMENT, MIN_SEGMENT, topic_options
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.settings import KafkaSettings

LEGAL_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")
# Kafka's internal topics: created on the first FindCoordinator for a group / a transactional
# id, listed with is_internal=true, not writable by clients (Kafka's Topic.isInternal). pyggy
# keeps group offsets and transaction state in its metadata, so these topics stay empty.
OFFSETS_TOPIC, TRANSACTION_TOPIC = "__consumer_offsets", "__transaction_state"
INTERNAL_TOPICS = frozenset((OFFSETS_TOPIC, TRANSACTION_TOPIC))
STRING, BOOL, UINT64 = 2, 3, 12
NO_FLUSH = "9223372036854775807"  # Kafka's flush.messages default: the OS flushes
_U64 = struct.Struct("<Q")


class KafkaError(Exception):
    """A Kafka error code with a message, raised by handlers' helpers."""

    def __init__(self, code: int, message: str = "") -> None:
        self.code = int(code)
        self.message = message
        super().__init__(message or f"kafka error {code}")


def kafka_error(e: IggyError, default: int) -> KafkaError:
    """The Kafka error for an engine error: KAFKA_STORAGE_ERROR when the disk refused a
    write (ENOSPC, EIO); in a cluster NOT_CONTROLLER when the write was not admitted (no
    metadata primary, or this broker is a backup and the request was not forwarded: the admin
    client retries at the controller Metadata names) and REQUEST_TIMED_OUT when a view change
    left the outcome unknown; else `default`."""
    code = _CLUSTER_ERRORS.get(e.code)
    if code is None:
        code = ErrorCode.KAFKA_STORAGE_ERROR if e.code in STORAGE_ERRORS else default
    return KafkaError(code, str(e))


_CLUSTER_ERRORS: dict[int, int] = {  # by IggyError.code, an int
    IggyCode.TRANSIENT_NOT_ACCEPTED: ErrorCode.NOT_CONTROLLER,
    IggyCode.TRANSIENT_NOT_COMMITTED: ErrorCode.REQUEST_TIMED_OUT}


class TopicMap:
    def __init__(self, engine: LogEngine, settings: KafkaSettings) -> None:
        self.engine = engine
        self.settings = settings

    def resolve(self, name: str) -> Topic | None:
        engine, s = self.engine, self.settings
        metadata = engine.metadata
        t = metadata.get_topic(s.default_stream, name) if metadata.get_stream(s.default_stream) \
            else None
        if t is not None:
            return t
        stream, sep, topic = name.partition(s.stream_separator)
        if sep and stream != s.default_stream and engine.metadata.get_stream(stream):
            return engine.metadata.get_topic(stream, topic)
        return None

    def name_of(self, t: Topic) -> str:
        return self.kafka_name(self.engine.metadata.stream_name(t.stream_id), t.name)

    def kafka_name(self, stream: str, topic: str) -> str:
        """The Kafka name of Iggy topic `topic` of stream `stream`."""
        if stream == self.settings.default_stream:
            return topic
        return f"{stream}{self.settings.stream_separator}{topic}"

    def all(self) -> Iterator[tuple[str, Topic]]:
        for stream in self.engine.metadata.streams():
            for t in self.engine.metadata.topics(stream.id):
                name = self.name_of(t)
                if LEGAL_NAME.match(name):
                    yield name, t

    def target(self, name: str) -> tuple[Stream | None, str]:
        """Where the topic of this Kafka name is, or would be created: its stream (None: the
        default stream, not created yet) and its Iggy topic name."""
        engine, s = self.engine, self.settings
        default = engine.metadata.get_stream(s.default_stream)
        if default is not None and engine.metadata.get_topic(default.id, name) is not None:
            return default, name
        stream, sep, topic = name.partition(s.stream_separator)
        if sep and topic and stream != s.default_stream:
            other = engine.metadata.get_stream(stream)
            if other is not None:
                return other, topic
        return default, name

    async def create(self, name: str, partitions: int, configs: dict[str, str | None],
                     validate_only: bool = False) -> Topic | None:
        """Create a topic where `target` puts it (the default stream is made on first use);
        with `validate_only`, check everything and create nothing (None)."""
        check_name(name)
        if self.resolve(name) is not None:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        if partitions < 1:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                             "Number of partitions was set to an invalid non-positive value.")
        if partitions > MAX_PARTITIONS_PER_REQUEST:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS, f"pyggy creates at most "
                             f"{MAX_PARTITIONS_PER_REQUEST} partitions per request.")
        options = configs_to_options(configs)
        try:
            topic_options(options)  # what Iggy would refuse (segment sizes)
        except IggyError as e:
            raise KafkaError(ErrorCode.INVALID_CONFIG, str(e)) from None
        if validate_only:
            return None
        engine = self.engine
        stream, topic = self.target(name)
        try:
            if stream is None:
                stream = await engine.metadata.create_stream(self.settings.default_stream)
            return await engine.metadata.create_topic(stream.id, topic, partitions, options)
        except IggyError as e:
            raise kafka_error(e, ErrorCode.INVALID_CONFIG) from None

    async def ensure_internal(self, name: str) -> None:
        """Create internal topic `name` (one partition) unless it exists."""
        if self.resolve(name) is None:
            try:
                await self.create(name, 1, {})
            except KafkaError as e:
                if e.code != ErrorCode.TOPIC_ALREADY_EXISTS:  # created meanwhile: fine
                    raise

    async def delete(self, t: Topic) -> None:
        await self.engine.metadata.delete_topic(t.stream_id, t.id)

    def by_id(self, raw: bytes) -> tuple[str, Topic] | None:
        """The (Kafka name, topic) whose topic id is `raw`."""
        for name, t in self.all():
            if topic_id(t) == raw:
                return name, t
        return None


def check_name(name: str) -> None:
    """Kafka's topic name rules, with Kafka 4.1's messages."""
    why = None
    if not name:
        why = "the empty string is not allowed"
    elif name in (".", ".."):
        why = f"'{name}' is not allowed"
    elif len(name) > 249:
        why = f"the length of '{name}' is longer than the max allowed length 249"
    elif not LEGAL_NAME.match(name):
        why = (f"'{name}' contains one or more characters other than ASCII alphanumerics, "
               "'.', '_' and '-'")
    if why:
        raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name is invalid: {why}")


def topic_id(t: Topic) -> bytes:
    """A stable, non-zero 16-byte topic id (Kafka topic ids, KIP-516)."""
    raw = hashlib.sha256(f"pyggy:{t.stream_id}:{t.id}:{t.created_at}".encode()).digest()[:16]
    return raw if any(raw) else b"\x01" + raw[1:]


# -- configs ----------------------------------------------------------------------------------
# Kafka topic configs. Three map onto Iggy topic options (and so are enforced, and seen by
# the Iggy door): retention.ms → message_expiry, retention.bytes → max_topic_size (Iggy's
# limit is topic-wide, Kafka's is per partition), segment.bytes → segment_size (fixed at
# creation, as in Iggy). Every other one is kept as the option `kafka.<name>` (a string);
# the Kafka door enforces max.message.bytes and message.timestamp.type, the compactor reads
# cleanup.policy and its four settings (docs/compaction.md), the rest are stored and
# described but have no effect (a single node has no replicas).

# DescribeConfigs config types (v3+) and sources
BOOLEAN, STRING_TYPE, INT, SHORT, LONG, DOUBLE, LIST = 1, 2, 3, 4, 5, 6, 7
DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)


def _ms_to_expiry(v: str) -> bytes:
    ms = int(v)
    if ms < 0:
        return _U64.pack(NEVER_EXPIRE)
    return _U64.pack(max(ms * 1000, 1))  # Iggy reads 0 as "never"; Kafka's 0 is "at once"


def _expiry_to_ms(raw: bytes) -> str:
    us = _U64.unpack(raw)[0]
    return "-1" if us == NEVER_EXPIRE else str(us // 1000)


def _bytes_to_size(v: str) -> bytes:
    n = int(v)
    return _U64.pack(UNLIMITED_SIZE if n < 0 else max(n, 1))  # Iggy reads 0 as unlimited


def _size_to_bytes(raw: bytes) -> str:
    n = _U64.unpack(raw)[0]
    return "-1" if n == UNLIMITED_SIZE else str(n)


def _local_size_to_bytes(raw: bytes) -> str:
    n = _U64.unpack(raw)[0]
    return "-2" if n == UNLIMITED_SIZE else str(n)  # Kafka's -2: no local limit of its own


MAPPED = {  # Kafka config → (Iggy option, its kind, to option, from option)
    "retention.ms": ("message_expiry", UINT64, _ms_to_expiry, _expiry_to_ms),
    # tiered storage: bytes kept on local disk (older archived segments are read from the
    # archive); -1 and -2 mean no local limit
    "local.retention.bytes": ("local_retention_bytes", UINT64, _bytes_to_size,
                              _local_size_to_bytes),
    "retention.bytes": ("max_topic_size", UINT64, _bytes_to_size, _size_to_bytes),
    "segment.bytes": ("segment_size", UINT64, lambda v: _U64.pack(int(v)), lambda r: str(
        _U64.unpack(r)[0])),
    # fsync every append before acknowledging it (flush.messages=1), or leave it to the OS
    "flush.messages": ("enforce_fsync", BOOL, lambda v: b"\x01" if v == "1" else b"\x00",
                       lambda r: "1" if r == b"\x01" else NO_FLUSH),
}
NOT_ALTERABLE = {"segment.bytes"}  # Iggy's segment_size cannot change after creation


@lean_frozen
class ConfigDef:
    """A Kafka topic config: its default, type, broker synonym and allowed values."""

    default: str
    type: int
    synonym: str | None = None  # the broker config that supplies the default
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    item: str | None = None  # regex every LIST item must match
    hint: str = ""  # why a value is refused, when pyggy is stricter than Kafka


_THROTTLED = r"^(\*|\d+:\d+)$"
_THROTTLED_HINT = ("{name} must be the literal '*' or a list of replicas in the following "
                   "format: [partitionId]:[brokerId],[partitionId]:[brokerId],...")
_O = TopicOptions()
CONFIGS: dict[str, ConfigDef] = {
    "cleanup.policy": ConfigDef("delete", LIST, "log.cleanup.policy",
                                choices=("compact", "delete")),
    "compression.gzip.level": ConfigDef("-1", INT, "compression.gzip.level", -1, 9),
    "compression.lz4.level": ConfigDef("9", INT, "compression.lz4.level", 1, 17),
    "compression.type": ConfigDef("producer", STRING_TYPE, "compression.type", choices=(
        "uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")),
    "compression.zstd.level": ConfigDef("3", INT, "compression.zstd.level", -131072, 22),
    "delete.retention.ms": ConfigDef("86400000", LONG, "log.cleaner.delete.retention.ms", 0),
    "file.delete.delay.ms": ConfigDef("60000", LONG, "log.segment.delete.delay.ms", 0),
    "flush.messages": ConfigDef(NO_FLUSH, LONG, "log.flush.interval.messages", 1,
                                choices=("1", NO_FLUSH),
                                hint="pyggy fsyncs every append (1) or leaves flushing to "
                                     "the OS (the default); other intervals are not supported"),
    "flush.ms": ConfigDef("9223372036854775807", LONG, None, 0),  # log.flush.interval.ms
    # is unset in Kafka, so it is no synonym there either
    "follower.replication.throttled.replicas": ConfigDef("", LIST, None, item=_THROTTLED),
    "index.interval.bytes": ConfigDef("4096", INT, "log.index.interval.bytes", 0),
    "leader.replication.throttled.replicas": ConfigDef("", LIST, None, item=_THROTTLED),
    "local.retention.bytes": ConfigDef("-2", LONG, "log.local.retention.bytes", -2),
    "max.compaction.lag.ms": ConfigDef("9223372036854775807", LONG,
                                       "log.cleaner.max.compaction.lag.ms", 1),
    "max.message.bytes": ConfigDef("1048588", INT, "message.max.bytes", 0),
    "message.timestamp.after.max.ms": ConfigDef("9223372036854775807", LONG,
                                                "log.message.timestamp.after.max.ms", 0),
    "message.timestamp.before.max.ms": ConfigDef("9223372036854775807", LONG,
                                                 "log.message.timestamp.before.max.ms", 0),
    "message.timestamp.type": ConfigDef("CreateTime", STRING_TYPE, "log.message.timestamp.type",
                                        choices=("CreateTime", "LogAppendTime")),
    "min.cleanable.dirty.ratio": ConfigDef("0.5", DOUBLE, "log.cleaner.min.cleanable.ratio",
                                           0, 1),
    "min.compaction.lag.ms": ConfigDef("0", LONG, "log.cleaner.min.compaction.lag.ms", 0),
    "min.insync.replicas": ConfigDef("1", INT, "min.insync.replicas", 1),
    "preallocate": ConfigDef("false", BOOLEAN, "log.preallocate"),
    "retention.bytes": ConfigDef(_size_to_bytes(_U64.pack(_O.max_topic_size)), LONG,
                                 "log.retention.bytes"),
    "retention.ms": ConfigDef(_expiry_to_ms(_U64.pack(_O.message_expiry)), LONG,
                              "log.retention.ms", -1),
    "segment.bytes": ConfigDef(str(_O.segment_size), INT, "log.segment.bytes", MIN_SEGMENT,
                               MAX_SEGMENT, hint="pyggy needs a multiple of 512 between "
                               f"{MIN_SEGMENT} and {MAX_SEGMENT}"),
    "segment.index.bytes": ConfigDef("10485760", INT, "log.index.size.max.bytes", 4),
    "segment.jitter.ms": ConfigDef("0", LONG, "log.roll.jitter.ms", 0),
    "segment.ms": ConfigDef("604800000", LONG, "log.roll.ms", 1),
    "unclean.leader.election.enable": ConfigDef("false", BOOLEAN,
                                                "unclean.leader.election.enable"),
}
# Topic configs Kafka clients ask about, with this server's defaults (source DEFAULT_CONFIG).
DEFAULTS: dict[str, str] = {name: d.default for name, d in CONFIGS.items()}
_TYPE_NAMES = {INT: "INT", LONG: "LONG", DOUBLE: "DOUBLE"}


def _invalid(name: str, value: str, why: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_CONFIG,
                      f"Invalid value {value} for configuration {name}: {why}")


def list_items(value: str) -> list[str]:
    """The items of a LIST config value, trimmed, without blanks or repeats."""
    return list(dict.fromkeys(x.strip() for x in value.split(",") if x.strip()))


@overload
def validate_config(name: str, value: str) -> str: ...
@overload
def validate_config(name: str, value: None) -> None: ...
def validate_config(name: str, value: str | None) -> str | None:
    """Check a topic config value as Kafka would (plus pyggy's limits); the normalized value."""
    d = CONFIGS.get(name)
    if d is None:
        raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")
    if value is None:
        return None
    text = value.strip()
    if d.type == BOOLEAN:
        if text.lower() not in ("true", "false"):
            raise _invalid(name, value, "Expected value to be either true or false")
        return text.lower()
    if d.type == LIST:
        items = list_items(text)
        for x in items:
            if d.choices and x not in d.choices:
                raise _invalid(name, value, d.hint or f"String must be one of: "
                               f"{', '.join(d.choices)}")
            if d.item and not re.match(d.item, x):
                raise _invalid(name, f"[{', '.join(items)}]", _THROTTLED_HINT.format(name=name))
        if d.choices and not items:
            raise _invalid(name, value, "pyggy needs delete, compact or both (no empty "
                           "policy)")
        return ",".join(items)
    if d.type == STRING_TYPE:
        if d.choices and text not in d.choices:
            raise _invalid(name, value, f"String must be one of: {', '.join(d.choices)}")
        return text
    try:
        number: float = float(text) if d.type == DOUBLE else int(text)
        if number != number:  # NaN
            raise ValueError(text)
    except ValueError:
        raise _invalid(name, value, f"Not a number of type {_TYPE_NAMES[d.type]}") from None
    bounds = INT_RANGE if d.type == INT else LONG_RANGE if d.type == LONG else None
    if bounds is not None and not bounds[0] <= number <= bounds[1]:
        raise _invalid(name, value, f"Not a number of type {_TYPE_NAMES[d.type]}")
    if d.lo is not None and number < d.lo:
        raise _invalid(name, value, d.hint or f"Value must be at least {d.lo:g}")
    if d.hi is not None and number > d.hi:
        raise _invalid(name, value, d.hint or f"Value must be no more than {d.hi:g}")
    if name == "segment.bytes" and number % 512:
        raise _invalid(name, value, d.hint)
    if d.choices and str(number) not in d.choices:  # a number pyggy supports only some of
        raise _invalid(name, value, d.hint)
    if name == "compression.gzip.level" and number == 0:
        raise _invalid(name, value, "Value must be -1 or between 1 and 9")
    return text if d.type == DOUBLE else str(number)


def config_option(name: str, value: str) -> tuple[str, int, bytes]:
    """The Iggy option entry for a validated Kafka config value."""
    if name in MAPPED:
        option, kind, to_option, _ = MAPPED[name]
        return option, kind, to_option(value)
    return f"kafka.{name}", STRING, value.encode()


def option_key(name: str) -> str:
    return MAPPED[name][0] if name in MAPPED else f"kafka.{name}"


def configs_to_options(configs: dict[str, str | None]) -> list[tuple[str, int, bytes]]:
    options: list[tuple[str, int, bytes]] = []
    for name, value in configs.items():
        normalized = validate_config(name, value)
        if normalized is not None:
            options.append(config_option(name, normalized))
    return options


def options_configs(o: TopicOptions) -> dict[str, tuple[str, bool]]:
    """Every known config of topic options: name → (value, is_default)."""
    out = {name: (value, True) for name, value in DEFAULTS.items()}
    explicit = {k for k, _, _ in o.explicit}
    out["retention.ms"] = (_expiry_to_ms(_U64.pack(o.message_expiry)),
                           "message_expiry" not in explicit)
    out["retention.bytes"] = (_size_to_bytes(_U64.pack(o.max_topic_size)),
                              "max_topic_size" not in explicit)
    out["segment.bytes"] = (str(o.segment_size), "segment_size" not in explicit)
    out["local.retention.bytes"] = (_local_size_to_bytes(_U64.pack(o.local_retention_bytes)),
                                    "local_retention_bytes" not in explicit)
    out["flush.messages"] = ("1" if o.enforce_fsync else NO_FLUSH,
                             "enforce_fsync" not in explicit)
    for key, _kind, raw in o.explicit:
        if key.startswith("kafka.") and key[6:] in CONFIGS:
            out[key[6:]] = (raw.decode(errors="replace"), False)
    return out


def topic_configs(t: Topic) -> dict[str, tuple[str, bool]]:
    """Every known config of a topic: name → (value, is_default)."""
    return options_configs(t.options)


def topic_config(t: Topic, name: str) -> str:
    """One config's value (the Produce path asks for two per partition: kept cheap)."""
    if name in MAPPED:
        return topic_configs(t)[name][0]
    key = f"kafka.{name}"
    for k, _kind, raw in reversed(t.options.explicit):
        if k == key:
            return raw.decode(errors="replace")
    return DEFAULTS[name]


def dynamic_configs(t: Topic) -> dict[str, str]:
    """The topic's configs that are set on it (DYNAMIC_TOPIC_CONFIG), name → value."""
    return {name: value for name, (value, default) in topic_configs(t).items() if not default}


def plan_update(t: Topic, desired: dict[str, str]) -> tuple[list[tuple[str, int, bytes]],
                                                            list[str]]:
    """Option entries and resets that make `desired` (validated values) the topic's whole
    dynamic config set. Raises INVALID_CONFIG for changes Iggy cannot make."""
    effective = topic_configs(t)
    current = {n: v for n, (v, default) in effective.items() if not default}
    entries: list[tuple[str, int, bytes]] = []
    reset: list[str] = []
    for name in sorted(set(current) | set(desired)):
        if name in desired:
            value = desired[name]
            if current.get(name) == value:
                continue
            if name in NOT_ALTERABLE:
                if effective[name][0] == value:
                    continue
                raise KafkaError(ErrorCode.INVALID_CONFIG,
                                 f"{name} cannot be changed on an existing topic: pyggy (as "
                                 f"Iggy) fixes the segment size when the topic is created")
            entries.append(config_option(name, value))
        else:
            if name in NOT_ALTERABLE:
                if effective[name][0] == DEFAULTS[name]:
                    continue
                raise KafkaError(ErrorCode.INVALID_CONFIG,
                                 f"{name} cannot be changed on an existing topic: pyggy (as "
                                 f"Iggy) fixes the segment size when the topic is created")
            reset.append(option_key(name))
    return entries, reset


async def apply_update(engine: LogEngine, t: Topic, desired: dict[str, str],
                       validate_only: bool = False) -> None:
    """Make `desired` the topic's dynamic config set (or only check that it could be)."""
    entries, reset = plan_update(t, desired)
    try:
        topic_options(entries, base=t.options, update=True, reset=reset)
        if not validate_only and (entries or reset):
            await engine.metadata.update_topic(t.stream_id, t.id, t.name, entries, reset)
    except IggyError as e:
        raise kafka_error(e, ErrorCode.INVALID_CONFIG) from None
