"""Kafka group configs (KIP-848, resource type GROUP = 32 in DescribeConfigs and
IncrementalAlterConfigs): the names, defaults and bounds of Kafka 4.1's `GroupConfig`.

Values are kept per group id in the metadata state log (`engine.consumers.set_group_configs`),
so they survive restarts and are set for a group before it exists, as in Kafka. The bounds are
those of Kafka's default broker settings (`group.consumer.min.session.timeout.ms` … ). They
apply to KIP-848 groups: `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` to
consumer groups (kafka_wire/groups/consumer.py; share and streams groups are not offered);
classic groups ignore them, as in Kafka.
"""

from __future__ import annotations

from typing import NamedTuple

from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.topics import INT, STRING_TYPE, KafkaError


class GroupConfig(NamedTuple):
    default: str
    type: int
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()


_SESSION = ("45000", INT, 45_000, 60_000)
_HEARTBEAT = ("5000", INT, 5_000, 15_000)
GROUP_CONFIGS: dict[str, GroupConfig] = {
    "consumer.heartbeat.interval.ms": GroupConfig(*_HEARTBEAT),
    "consumer.session.timeout.ms": GroupConfig(*_SESSION),
    "share.auto.offset.reset": GroupConfig("latest", STRING_TYPE,
                                           choices=("latest", "earliest")),
    "share.heartbeat.interval.ms": GroupConfig(*_HEARTBEAT),
    "share.isolation.level": GroupConfig("read_uncommitted", STRING_TYPE,
                                         choices=("read_committed", "read_uncommitted")),
    "share.record.lock.duration.ms": GroupConfig("30000", INT, 15_000, 60_000),
    "share.session.timeout.ms": GroupConfig(*_SESSION),
    "streams.heartbeat.interval.ms": GroupConfig(*_HEARTBEAT),
    "streams.num.standby.replicas": GroupConfig("0", INT, 0, 2),
    "streams.session.timeout.ms": GroupConfig(*_SESSION),
}


def check_group_name(name: str) -> None:
    if not name:
        raise KafkaError(ErrorCode.INVALID_REQUEST, "Group name must not be empty")


def validate_group_config(name: str, value: str) -> str:
    """The normalized value, or INVALID_CONFIG as Kafka's GroupConfig.validate answers."""
    d = GROUP_CONFIGS.get(name)
    if d is None:
        raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown group config name: {name}")
    text = value.strip()
    if d.type == STRING_TYPE:
        ok = text in d.choices or (name == "share.auto.offset.reset"
                                   and text.startswith("by_duration:") and len(text) > 12)
        if not ok:
            raise KafkaError(ErrorCode.INVALID_CONFIG,
                             f"Invalid value {value} for configuration {name}")
        return text
    try:
        number = int(text)
    except ValueError:
        raise KafkaError(ErrorCode.INVALID_CONFIG, f"Invalid value {value} for configuration "
                                                   f"{name}: Not a number of type INT") from None
    if not d.low <= number <= d.high:
        raise KafkaError(ErrorCode.INVALID_CONFIG,
                         f"{name} must be between {d.low} and {d.high}, got {number}")
    return str(number)


def check_intervals(configs: dict[str, str]) -> None:
    """A heartbeat interval must be below its session timeout (Kafka's GroupConfig rule)."""
    for kind in ("consumer", "share", "streams"):
        hb = int(configs.get(f"{kind}.heartbeat.interval.ms",
                             GROUP_CONFIGS[f"{kind}.heartbeat.interval.ms"].default))
        session = int(configs.get(f"{kind}.session.timeout.ms",
                                  GROUP_CONFIGS[f"{kind}.session.timeout.ms"].default))
        if hb >= session:
            raise KafkaError(ErrorCode.INVALID_CONFIG,
                             f"{kind}.heartbeat.interval.ms must be less than "
                             f"{kind}.session.timeout.ms")
