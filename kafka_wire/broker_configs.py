"""Broker configs Kafka lets AlterConfigs / IncrementalAlterConfigs change on a running broker
(Kafka's dynamic broker configs) that pyggy has no setting for: listener security, thread pools,
connection limits, the log cleaner. pyggy accepts and keeps them (the metadata state log), and
DescribeConfigs shows them with source DYNAMIC_BROKER_CONFIG, so tools and tests that set them
work as on Kafka; they change nothing in pyggy, whose equivalents come from its config file
(README, Configuration), except `producer.id.expiration.ms`, which bounds how long idle
idempotent producers are remembered (`KafkaServer.expire_producers`). Dynamic broker configs
that pyggy does have, such as `log.*` defaults or `message.max.bytes`, are refused as before:
set them in pyggy's config. So are secrets (passwords, `sasl.jaas.config`): pyggy keeps no
secret that way.
"""

from __future__ import annotations

from collections.abc import Iterable

from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.topics import DOUBLE, INT, LIST, LONG, STRING_TYPE, KafkaError

DYNAMIC_BROKER_CONFIG = 2  # DescribeConfigs config source: set on this broker at runtime

_INT = ("background.threads", "log.cleaner.io.buffer.size", "log.cleaner.threads",
        "max.connection.creation.rate", "max.connections", "max.connections.per.ip",
        "num.io.threads", "num.network.threads", "num.recovery.threads.per.data.dir",
        "num.replica.fetchers", "remote.log.reader.threads")
_LONG = ("connections.max.reauth.ms", "log.cleaner.backoff.ms",
         "log.cleaner.dedupe.buffer.size", "producer.id.expiration.ms",
         "sasl.kerberos.min.time.before.relogin")
_DOUBLE = ("log.cleaner.io.buffer.load.factor", "log.cleaner.io.max.bytes.per.second",
           "sasl.kerberos.ticket.renew.jitter", "sasl.kerberos.ticket.renew.window.factor")
_LIST = ("metric.reporters", "sasl.enabled.mechanisms", "ssl.cipher.suites",
         "ssl.enabled.protocols")
_STRING = ("max.connections.per.ip.overrides", "sasl.kerberos.kinit.cmd",
           "sasl.kerberos.service.name", "ssl.client.auth",
           "ssl.endpoint.identification.algorithm", "ssl.keymanager.algorithm",
           "ssl.keystore.location", "ssl.keystore.type", "ssl.protocol", "ssl.provider",
           "ssl.trustmanager.algorithm", "ssl.truststore.location", "ssl.truststore.type")
DYNAMIC_BROKER_CONFIGS: dict[str, int] = {
    **dict.fromkeys(_INT, INT), **dict.fromkeys(_LONG, LONG),
    **dict.fromkeys(_DOUBLE, DOUBLE), **dict.fromkeys(_LIST, LIST),
    **dict.fromkeys(_STRING, STRING_TYPE)}


def check_dynamic(names: Iterable[str]) -> None:
    """INVALID_REQUEST naming what Kafka would not change at runtime (or what pyggy sets in
    its own config)."""
    fixed = sorted(n for n in names if n not in DYNAMIC_BROKER_CONFIGS)
    if fixed:
        raise KafkaError(ErrorCode.INVALID_REQUEST,
                         f"Cannot update these configs dynamically: Set({', '.join(fixed)})")


def validate_broker_configs(configs: dict[str, str]) -> dict[str, str]:
    """The normalized values (INVALID_CONFIG for a malformed number)."""
    check_dynamic(configs)
    out = {}
    for name, value in configs.items():
        text = value.strip()
        typ = DYNAMIC_BROKER_CONFIGS[name]
        try:
            if typ in (INT, LONG):
                text = str(int(text))
            elif typ == DOUBLE:
                text = repr(float(text))
        except ValueError:
            raise KafkaError(ErrorCode.INVALID_CONFIG,
                             f"Invalid value {value} for configuration {name}") from None
        out[name] = text
    return out
