"""Server configuration: Iggy's TOML section/key names, `IGGY_<SECTION>_<KEY>` overrides.

Precedence: defaults < TOML file (`--config` or `IGGY_CONFIG_PATH`) < environment < CLI flags
(applied by `pyggy.cli`). Durations are stored as float seconds and accept Iggy's humantime
strings ("30 s"); sizes are int bytes and accept "64 MiB". An unknown key or `IGGY_*` variable
is a startup error when it is security-relevant (see `SECURITY_WORDS`), else a warning.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import ipaddress
import logging
import os
import socket
import sys
import typing
from collections.abc import Iterator, Mapping
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any

from pyggy.core.lean import lean, lean_frozen
from pyggy.core.units import parse_duration, parse_size

log = logging.getLogger(__name__)

DURATION = "duration"
SIZE = "size"
Duration = Annotated[float, DURATION]  # seconds
Size = Annotated[int, SIZE]  # bytes

MiB = 1024 * 1024
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error")
# IGGY_* variables that are not config keys (never reported as unknown).
NON_KEY_ENV = frozenset({"IGGY_CONFIG_PATH", "IGGY_ROOT_USERNAME", "IGGY_ROOT_PASSWORD"})


class _Section:
    """A config section: a `lean` data class (pyggy/core/lean.py), whose `__init__`,
    `__repr__` and `__eq__` read its fields when called instead of being generated and
    compiled for each of the ~35 sections at import (BENCHMARKS.md, issue 16 item 4)."""

    __slots__ = ()


_T = typing.TypeVar("_T")


@typing.dataclass_transform(field_specifiers=(field,))
def _section(cls: type[_T]) -> type[_T]:
    cls.__doc__ = cls.__doc__ or f"`{cls.__name__}`: a config section."
    return lean(cls)


class ConfigError(ValueError):
    """An invalid config file, value or override."""


@_section
class PartitionConfig(_Section):
    validate_checksum: bool = True


@_section
class StateConfig(_Section):
    enforce_fsync: bool = True


@_section
class LoggingConfig(_Section):
    level: str = "info"


@_section
class ShardingConfig(_Section):
    """`[system.sharding]`: shard processes of one server (docs/sharding.md). 1 = one process;
    0 = auto, the default (1 on a machine with at most 2 cores, else one per core)."""

    shards: int = 0
    # each shard also listens on a Kafka port of its own and Metadata names it as a broker
    # leading the partitions it owns, so Kafka clients send each request to the owner and
    # groups to shard 0; off: one broker, every shard forwards (docs/sharding.md)
    kafka_broker_per_shard: bool = True
    # an Iggy (native TCP, not TLS) connection whose data requests keep going to one other
    # shard is handed to that shard, socket and session (docs/sharding.md); off: forwarded
    native_handoff: bool = True


@_section
class SystemConfig(_Section):
    path: str = "local_data"
    partition: PartitionConfig = field(default_factory=PartitionConfig)
    state: StateConfig = field(default_factory=StateConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    sharding: ShardingConfig = field(default_factory=ShardingConfig)


MAX_SHARDS = 256


def shard_count(config: ServerConfig, cores: int | None = None) -> int:
    """How many shard processes serve: `[system.sharding] shards`, or with 0 (auto) one per
    core on a machine with more than 2 cores, else 1 (docs/sharding.md says why)."""
    n = config.system.sharding.shards
    if n:
        return n
    if config.cluster.enabled or config.data_maintenance.archiver.enabled:
        return 1  # sharding is refused with a cluster or the archiver for now
    cores = cores if cores is not None else (os.cpu_count() or 1)
    return 1 if cores <= 2 else min(cores, MAX_SHARDS)


@_section
class TlsFiles(_Section):
    """The keys every TLS section has: on or off, and the server's certificate and key. Empty
    file names mean `<system.path>/certs/pyggy_cert.pem` and `pyggy_key.pem`."""

    enabled: bool = False
    self_signed: bool = True  # generate a certificate when cert_file does not exist
    cert_file: str = ""
    key_file: str = ""


@_section
class TlsConfig(TlsFiles):
    """Iggy's `[tcp.tls]` keys, also used as `[kafka.tls]` and `[http.tls]`."""

    # mutual TLS (pyggy's; Kafka's ssl.client.auth): "none", "requested" or "required", with
    # the CAs that sign client certificates; a certificate's CN names the user it logs in
    client_auth: str = "none"
    ca_file: str = ""


@_section
class TcpConfig(_Section):
    enabled: bool = True
    address: str = "127.0.0.1:8090"
    max_frame_size: Size = 64 * MiB
    # pyggy's own limits (pyggy/transport): see README "Connections and TLS"
    max_connections: int = 10_000
    frame_read_timeout: Duration = 30.0
    auth_timeout: Duration = 10.0
    tls: TlsConfig = field(default_factory=TlsConfig)


@_section
class HttpCorsConfig(_Section):
    """Iggy's `[http.cors]`: which browser origins may call the REST API."""

    enabled: bool = True
    allowed_methods: list[str] = field(default_factory=lambda: ["GET", "POST", "PUT", "DELETE"])
    allowed_origins: list[str] = field(default_factory=lambda: ["*"])
    allowed_headers: list[str] = field(default_factory=lambda: ["content-type", "authorization"])
    exposed_headers: list[str] = field(default_factory=list)
    allow_credentials: bool = False
    allow_private_network: bool = False


@_section
class HttpJwtConfig(_Section):
    """Iggy's `[http.jwt]`: HS256 access tokens. Empty secrets = a random one per start (tokens
    then end with the process)."""

    algorithm: str = "HS256"
    issuer: str = "iggy.apache.org"
    audience: str = "iggy.apache.org"
    access_token_expiry: Duration = 3600.0
    clock_skew: Duration = 5.0
    not_before: Duration = 0.0
    encoding_secret: str = ""
    decoding_secret: str = ""
    use_base64_secret: bool = False


@_section
class HttpMetricsConfig(_Section):
    enabled: bool = True
    endpoint: str = "/metrics"


@_section
class HttpConfig(_Section):
    """Iggy's HTTP REST transport (pyggy/http_api): the REST API, `/metrics`, the console."""

    enabled: bool = False
    address: str = "127.0.0.1:3000"
    max_request_size: Size = 2_000_000  # Iggy's "2 MB"
    web_ui: bool = True  # the console at /console (static files in the package)
    cors: HttpCorsConfig = field(default_factory=HttpCorsConfig)
    jwt: HttpJwtConfig = field(default_factory=HttpJwtConfig)
    metrics: HttpMetricsConfig = field(default_factory=HttpMetricsConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)


@_section
class KafkaConfig(_Section):
    enabled: bool = True
    address: str = "127.0.0.1:9092"
    advertised_host: str = ""  # "" = host of `address` (machine hostname if wildcard)
    advertised_port: int = 0  # 0 = port of `address`
    auto_create_topics: bool = True
    default_stream: str = "kafka"  # the Iggy stream of topics created through Kafka
    stream_separator: str = "."  # Kafka "<stream>.<topic>" reaches other streams' topics
    num_partitions: int = 1  # partitions of an auto-created topic
    max_frame_size: Size = 100 * MiB
    # an empty consumer group waits this long for more members before its first assignment
    group_initial_rebalance_delay: Duration = 0.5
    # "sasl": only ApiVersions and SASL before a successful SASL login; "none": anonymous
    # clients get full access; "auto": "none" on a loopback-only address, else "sasl"
    authentication: str = "auto"
    # KIP-368: SASL sessions last this long, then the client re-authenticates; 0 = forever
    connections_max_reauth: Duration = 0.0
    max_connections: int = 10_000
    frame_read_timeout: Duration = 30.0
    connections_max_idle: Duration = 600.0  # Kafka's connections.max.idle.ms (10 min)
    auth_timeout: Duration = 10.0  # only while the Kafka door requires authentication
    # Kafka's transactional.id.expiration.ms (7 days): idle transactional ids are forgotten
    transactional_id_expiration: Duration = 604_800.0
    tls: TlsConfig = field(default_factory=TlsConfig)

    def advertised(self) -> tuple[str, int]:
        """The (host, port) announced to Kafka clients in Metadata responses."""
        host, port = split_address(self.address)
        if not self.advertised_host and host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        return self.advertised_host or host, self.advertised_port or port


@_section
class LoginConfig(_Section):
    """Both doors' logins (core/logins.py): hashing pool, backoff and lockout."""

    hash_workers: int = 1  # threads hashing passwords (scrypt, SCRAM), off the event loop
    max_connection_failures: int = 3  # failed logins before a connection is closed
    free_failures: int = 5  # failed logins per address and user name before delays start
    max_failures: int = 20  # then that name is refused from that address for a while
    max_address_failures: int = 100  # per address, any names: then the address is refused
    failure_window: Duration = 60.0  # how long a failed login counts against its address
    failure_delay: Duration = 0.1  # first delay; doubles with each further failure
    max_delay: Duration = 2.0
    verified_cache_size: int = 1024  # passwords verified lately (HMAC tags); 0 = scrypt always
    verified_cache_ttl: Duration = 300.0  # how long a verified password skips scrypt


@_section
class HeartbeatConfig(_Section):
    enabled: bool = True
    interval: Duration = 30.0


@_section
class ConsumerGroupConfig(_Section):
    rebalancing_timeout: Duration = 30.0


@_section
class MessagesMaintenanceConfig(_Section):
    cleaner_enabled: bool = True
    interval: Duration = 60.0
    archiver_enabled: bool = False  # archive sealed segments (needs [data_maintenance.archiver])


@_section
class StateMaintenanceConfig(_Section):
    archiver_enabled: bool = False  # archive the metadata state log
    overwrite: bool = True  # one object state/state.log, else one per change
    interval: Duration = 60.0


@_section
class DiskArchiverConfig(_Section):
    path: str = "local_data/archive"


@_section
class S3ArchiverConfig(_Section):
    key_id: str = "123"
    key_secret: str = "secret"
    bucket: str = "iggy"
    endpoint: str = "http://localhost:9000"
    region: str = "eu-west-1"
    tmp_upload_dir: str = "local_data/s3_tmp"


@_section
class ArchiverConfig(_Section):
    """Iggy 0.4/0.5's archiver keys (`kind` = "disk" or "s3"), plus pyggy's read cache."""

    enabled: bool = False
    kind: str = "disk"
    cache_size: Size = 64 * MiB  # pyggy's own: archived bytes cached for tiered reads
    disk: DiskArchiverConfig = field(default_factory=DiskArchiverConfig)
    s3: S3ArchiverConfig = field(default_factory=S3ArchiverConfig)


@_section
class ScrubConfig(_Section):
    """pyggy's own: re-read and verify every stored batch in the background, at a bounded rate
    (repairs from the archive as reads do; `pyggy-scrub` does the same offline)."""

    enabled: bool = False
    interval: Duration = 24 * 3600.0  # from the start of one pass to the next
    rate: Size = 32 * MiB  # bytes verified per second at most


@_section
class DataMaintenanceConfig(_Section):
    messages: MessagesMaintenanceConfig = field(default_factory=MessagesMaintenanceConfig)
    archiver: ArchiverConfig = field(default_factory=ArchiverConfig)
    state: StateMaintenanceConfig = field(default_factory=StateMaintenanceConfig)
    scrub: ScrubConfig = field(default_factory=ScrubConfig)


@_section
class TokenCleanerConfig(_Section):
    enabled: bool = True
    interval: Duration = 60.0


@_section
class PersonalAccessTokenConfig(_Section):
    max_tokens_per_user: int = 100
    cleaner: TokenCleanerConfig = field(default_factory=TokenCleanerConfig)


@_section
class TelemetryExporterConfig(_Section):
    transport: str = "grpc"  # "grpc" or "http"
    endpoint: str = ""


@_section
class TelemetryConfig(_Section):
    """OpenTelemetry logs and traces over OTLP (pyggy/telemetry.py); needs pyggy[telemetry]."""

    enabled: bool = False
    service_name: str = "pyggy"
    # pyggy's own: spans / log records queued per signal (beyond that they are dropped), and
    # how long one export may take (an unreachable receiver costs this, in the exporter thread)
    max_queue_size: int = 2048
    export_timeout: Duration = 5.0
    logs: TelemetryExporterConfig = field(
        default_factory=lambda: TelemetryExporterConfig(endpoint="http://localhost:7281/v1/logs")
    )
    traces: TelemetryExporterConfig = field(
        default_factory=lambda: TelemetryExporterConfig(endpoint="http://localhost:7281/v1/traces")
    )


@_section
class ClusterPorts(_Section):
    """A roster node's ports (`kafka` is pyggy's; 0 = that door is off on the node)."""

    tcp: int = 0
    tcp_replica: int = 0
    kafka: int = 0
    http: int = 0


@_section
class ClusterNode(_Section):
    """One `[[cluster.nodes]]` entry (Iggy's roster), identical in every node's config."""

    name: str = ""
    ip: str = ""
    replica_id: int = -1
    ports: ClusterPorts = field(default_factory=ClusterPorts)


@_section
class ClusterAuthConfig(_Section):
    """Replicas authenticate each other with a pre-shared key (cluster/handshake.py)."""

    enabled: bool = False
    shared_secret: str = ""


@_section
class ClusterTlsConfig(TlsFiles):
    """TLS on the replica port (Iggy's `[cluster.tls]`); `ca_file` verifies peers. Not
    `TlsConfig`: replicas authenticate each other with `[cluster.auth]`, not certificates, so
    there is no `client_auth` here."""

    ca_file: str = ""


@_section
class ClusterConfig(_Section):
    """Iggy's `[cluster]`: off = one node (nothing of pyggy.cluster is imported). Timing keys
    are rounded down to whole 10 ms ticks (`ticks`)."""

    enabled: bool = False
    name: str = "iggy-cluster"
    replica_id: int = 0  # which roster node this process is (`--replica-id N`)
    heartbeat_timeout: Duration = 5.0
    commit_broadcast_interval: Duration = 0.5
    prepare_retransmit_interval: Duration = 0.25
    view_change_retransmit_interval: Duration = 0.5
    view_change_status_timeout: Duration = 5.0
    request_start_view_retransmit_interval: Duration = 1.0
    view_probe_attempts_max: int = 5
    repair_retry_interval: Duration = 1.0
    repair_chunk_max: int = 128
    # Iggy's [message_bus] keys, kept with the cluster they serve
    peer_queue_capacity: int = 256
    reconnect_period: Duration = 1.0
    max_message_size: Size = 64 * MiB
    auth: ClusterAuthConfig = field(default_factory=ClusterAuthConfig)
    tls: ClusterTlsConfig = field(default_factory=ClusterTlsConfig)
    nodes: list[ClusterNode] = field(default_factory=list, metadata={"table_array": True})

    def node(self, replica_id: int | None = None) -> ClusterNode:
        rid = self.replica_id if replica_id is None else replica_id
        return next(n for n in self.nodes if n.replica_id == rid)


TICK = 0.01  # the consensus clock: one tick is 10 ms


def ticks(seconds: float) -> int:
    """A duration in whole 10 ms ticks, rounded down (under one tick: 1), as Iggy does."""
    return max(1, int(round(seconds * 1000)) // 10)


@_section
class ServerConfig(_Section):
    system: SystemConfig = field(default_factory=SystemConfig)
    tcp: TcpConfig = field(default_factory=TcpConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    login: LoginConfig = field(default_factory=LoginConfig)
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    consumer_group: ConsumerGroupConfig = field(default_factory=ConsumerGroupConfig)
    data_maintenance: DataMaintenanceConfig = field(default_factory=DataMaintenanceConfig)
    personal_access_token: PersonalAccessTokenConfig = field(
        default_factory=PersonalAccessTokenConfig
    )
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)


# --- addresses --------------------------------------------------------------------------------


def split_address(address: str) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port" into (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"invalid address {address!r}: expected HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ConfigError(f"invalid address {address!r}: write IPv6 hosts as [HOST]:PORT")
    return host, int(port)


def loopback_only(host: str) -> bool:
    """Whether a listener bound to `host` serves this machine only (127.0.0.0/8, ::1, or a
    name that resolves to those alone); wildcards and other addresses do not."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    if host in ("", "*"):
        return False
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def kafka_requires_auth(kafka: KafkaConfig) -> bool:
    """The `[kafka] authentication` decision: must clients log in with SASL?"""
    if kafka.authentication == "auto":
        return not loopback_only(split_address(kafka.address)[0])
    return kafka.authentication == "sasl"


# --- schema walking ---------------------------------------------------------------------------


@lean_frozen
class Setting:
    """One leaf key: its TOML path, env var, type hint and default."""

    path: tuple[str, ...]
    hint: Any
    default: Any

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return "IGGY_" + "_".join(self.path).upper()

    @property
    def kind(self) -> str:
        """One of "bool", "int", "float", "str", "duration", "size"."""
        if typing.get_origin(self.hint) is Annotated:
            return self.hint.__metadata__[0]
        if typing.get_origin(self.hint) is list:
            return "list"
        return self.hint.__name__


_HINTS: dict[type, dict[str, Any]] = {}
_EVALUATED: dict[tuple[str, str], Any] = {}  # (module, annotation text) -> its value


def _hints(cls: type) -> dict[str, Any]:
    """The resolved annotations of a config section, cached (the schema never changes): what
    `typing.get_type_hints(cls, include_extras=True)` gives, with each distinct annotation text
    evaluated once (the ~200 settings share ~30; get_type_hints compiled each of them, ~10 % of
    reading the config at a start)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = {}
        for base in reversed(cls.__mro__):
            for name, annotation in base.__dict__.get("__annotations__", {}).items():
                if isinstance(annotation, str):
                    key = (base.__module__, annotation)
                    if key not in _EVALUATED:
                        _EVALUATED[key] = eval(annotation, vars(sys.modules[base.__module__]))
                    annotation = _EVALUATED[key]
                hints[name] = annotation
        _HINTS[cls] = hints
    return hints


def _is_section(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def iter_settings(obj: Any = None, prefix: tuple[str, ...] = ()) -> Iterator[Setting]:
    """Every leaf key of the config schema with its default, in declaration order."""
    obj = ServerConfig() if obj is None else obj
    for f in dataclasses.fields(obj):
        if f.metadata.get("table_array"):  # [[cluster.nodes]]: documented on its own
            continue
        hint = _hints(type(obj))[f.name]
        value = getattr(obj, f.name)
        if _is_section(hint):
            yield from iter_settings(value, prefix + (f.name,))
        else:
            yield Setting(prefix + (f.name,), hint, value)


@functools.cache
def env_settings() -> dict[str, Setting]:
    """Map of `IGGY_<SECTION>_<KEY>` name to its setting."""
    settings = list(iter_settings())  # once: every start builds this table
    table = {s.env: s for s in settings}
    assert len(table) == len(settings), "ambiguous env override names"
    return table


# --- coercion ---------------------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce(value: Any, hint: Any, key: str) -> Any:
    """Convert a TOML or environment value to the type of `hint`; raise ConfigError."""
    kind = Setting((key,), hint, None).kind
    try:
        if kind == DURATION:
            return parse_duration(value)
        if kind == SIZE:
            return parse_size(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
        elif kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str):
                return int(value.strip().replace("_", ""))
        elif kind == "float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                return float(value)
        elif kind == "str":
            if isinstance(value, str):
                return value
        elif kind == "list":  # of strings: a TOML array, or comma-separated in the environment
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return list(value)
    except ValueError as e:
        raise ConfigError(f"{key}: {e}") from None
    raise ConfigError(f"{key}: expected {kind}, got {value!r}")


# --- loading ----------------------------------------------------------------------------------


# An unknown setting whose path has one of these words as a section or key (or as the start of a
# key, e.g. a misspelt `auth_timout`) is security-relevant: a typo there must not leave TLS or
# authentication silently off, so it stops the server (unless its section says enabled = false).
SECURITY_WORDS = frozenset({"tls", "ssl", "auth", "authentication", "sasl"})


def _security_index(parts: list[str]) -> int:
    """Index of the first security-relevant part of a setting's path, -1 if none."""
    for i, part in enumerate(parts):
        word = part.lower()
        if word in SECURITY_WORDS or word.split("_", 1)[0] in SECURITY_WORDS:
            return i
    return -1


def _leaves(value: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    if isinstance(value, Mapping) and value:
        for name, sub in value.items():
            yield from _leaves(sub, path + (name,))
    else:
        yield path


def _switched_off(data: Mapping[str, Any], section: tuple[str, ...]) -> bool:
    table: Any = data
    for part in section:
        table = table.get(part) if isinstance(table, Mapping) else None
    return isinstance(table, Mapping) and table.get("enabled") is False


def _unknown_security_keys(data: Mapping[str, Any], obj: Any = None,
                           path: tuple[str, ...] = ()) -> Iterator[str]:
    """Dotted names of unknown, security-relevant keys in a TOML document (see SECURITY_WORDS)."""
    obj = ServerConfig() if obj is None else obj
    table: Any = data
    for part in path:
        table = table[part]
    hints = _hints(type(obj))
    for name, value in table.items():
        hint = hints.get(name)
        if hint is not None:
            if _is_section(hint) and isinstance(value, Mapping):
                yield from _unknown_security_keys(data, getattr(obj, name), path + (name,))
            continue
        for leaf in _leaves(value, path + (name,)):
            i = _security_index(list(leaf))
            if i >= 0 and not (i < len(leaf) - 1 and _switched_off(data, leaf[:i + 1])):
                yield ".".join(leaf)


def _unknown_security_env(env: Mapping[str, str]) -> Iterator[str]:
    """Unknown `IGGY_*` variables that are security-relevant (see SECURITY_WORDS)."""
    known = env_settings()
    for name in env:
        if not name.startswith("IGGY_") or name in known or name in NON_KEY_ENV:
            continue
        tokens = name[len("IGGY_"):].split("_")
        i = _security_index(tokens)
        if i < 0:
            continue
        switch = "IGGY_" + "_".join(tokens[:i + 1]) + "_ENABLED"
        if env.get(switch, "").strip().lower() not in _FALSE:
            yield name


def _refuse_unknown_security(names: list[str]) -> None:
    if names:
        raise ConfigError(
            f"unknown security setting{'s' if len(names) > 1 else ''} {', '.join(names)}: "
            "pyggy does not have it, and will not start without what it asks for (remove it, "
            "or set its section's enabled = false)")


def _apply_table(obj: Any, table: Mapping[str, Any], prefix: str = "") -> None:
    hints = _hints(type(obj))
    for name, value in table.items():
        key = prefix + name
        hint = hints.get(name)
        if hint is None:
            log.warning("unknown config key %r ignored", key)
        elif name == "nodes" and isinstance(obj, ClusterConfig):
            obj.nodes = _nodes(value)
        elif _is_section(hint):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{key}: expected a [{key}] table, got {value!r}")
            _apply_table(getattr(obj, name), value, key + ".")
        elif isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a value, got a table")
        else:
            setattr(obj, name, coerce(value, hint, key))


def _nodes(value: Any) -> list[ClusterNode]:
    """The `[[cluster.nodes]]` array of tables."""
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ConfigError("cluster.nodes: expected [[cluster.nodes]] tables")
    nodes = []
    for i, table in enumerate(value):
        node = ClusterNode()
        _apply_table(node, table, f"cluster.nodes[{i}].")
        nodes.append(node)
    return nodes


def set_value(config: ServerConfig, path: tuple[str, ...], value: Any) -> None:
    """Set one leaf by path, coercing `value` (used for env overrides and CLI flags)."""
    obj = config
    for part in path[:-1]:
        obj = getattr(obj, part)
    setattr(obj, path[-1], coerce(value, _hints(type(obj))[path[-1]], ".".join(path)))


def _apply_env(config: ServerConfig, env: Mapping[str, str]) -> None:
    table = env_settings()
    _refuse_unknown_security(sorted(_unknown_security_env(env)))
    for name, value in env.items():
        setting = table.get(name)
        if setting is not None:
            try:
                set_value(config, setting.path, value)
            except ConfigError as e:
                raise ConfigError(f"{name}: {e}") from None
        elif name.startswith("IGGY_") and name not in NON_KEY_ENV:
            log.warning("environment variable %s is not a pyggy setting; ignored", name)


def validate(config: ServerConfig) -> None:
    """Check cross-field and range constraints; raise ConfigError."""
    for name in ("tcp", "http", "kafka"):
        try:
            split_address(getattr(config, name).address)
        except ConfigError as e:
            raise ConfigError(f"{name}.address: {e}") from None
    if not config.system.path:
        raise ConfigError("system.path must not be empty")
    if config.tcp.max_frame_size < 1024:
        raise ConfigError("tcp.max_frame_size must be at least 1 KiB")
    if config.system.logging.level.lower() not in LOG_LEVELS:
        raise ConfigError(f"system.logging.level must be one of {', '.join(LOG_LEVELS)}")
    if not 0 <= config.kafka.advertised_port <= 65535:
        raise ConfigError("kafka.advertised_port must be 0..65535")
    if config.kafka.group_initial_rebalance_delay < 0:
        raise ConfigError("kafka.group_initial_rebalance_delay must not be negative")
    if config.kafka.authentication not in ("auto", "sasl", "none"):
        raise ConfigError('kafka.authentication must be "auto", "sasl" or "none"')
    if config.kafka.connections_max_reauth < 0:
        raise ConfigError("kafka.connections_max_reauth must not be negative")
    if config.kafka.transactional_id_expiration <= 0:
        raise ConfigError("kafka.transactional_id_expiration must be positive")
    login = config.login
    for key in ("hash_workers", "max_connection_failures", "max_failures",
                "max_address_failures"):
        if getattr(login, key) < 1:
            raise ConfigError(f"login.{key} must be at least 1")
    if login.free_failures < 0:
        raise ConfigError("login.free_failures must not be negative")
    if login.failure_window <= 0 or login.failure_delay < 0 or login.max_delay < 0:
        raise ConfigError("login.failure_window must be positive and the delays not negative")
    if login.verified_cache_size < 0 or login.verified_cache_ttl < 0:
        raise ConfigError("login.verified_cache_size and verified_cache_ttl must not be negative")
    for key, seconds in (
        ("heartbeat.interval", config.heartbeat.interval),
        ("data_maintenance.messages.interval", config.data_maintenance.messages.interval),
        ("personal_access_token.cleaner.interval", config.personal_access_token.cleaner.interval),
        ("data_maintenance.state.interval", config.data_maintenance.state.interval),
        ("data_maintenance.scrub.interval", config.data_maintenance.scrub.interval),
        ("data_maintenance.scrub.rate", config.data_maintenance.scrub.rate),
    ):
        if seconds <= 0:
            raise ConfigError(f"{key} must be positive")
    archiver = config.data_maintenance.archiver
    if archiver.kind not in ("disk", "s3"):
        raise ConfigError('data_maintenance.archiver.kind must be "disk" or "s3"')
    if archiver.enabled and archiver.kind == "s3" and not archiver.s3.bucket:
        raise ConfigError("data_maintenance.archiver.s3.bucket must not be empty")
    if archiver.enabled and archiver.kind == "s3" and importlib.util.find_spec("boto3") is None:
        raise ConfigError('data_maintenance.archiver.kind = "s3" needs boto3: '
                          "pip install 'pyggy[s3]'")
    if archiver.enabled and archiver.kind == "disk" and not archiver.disk.path:
        raise ConfigError("data_maintenance.archiver.disk.path must not be empty")
    if archiver.s3.endpoint and not archiver.s3.endpoint.startswith(("http://", "https://")):
        raise ConfigError("data_maintenance.archiver.s3.endpoint must be an http:// or https:// "
                          "URL (or empty for AWS)")
    for name in ("tcp", "kafka"):
        _validate_listener(name, getattr(config, name))
    _validate_http(config.http)
    if config.telemetry.max_queue_size < 1:
        raise ConfigError("telemetry.max_queue_size must be at least 1")
    if config.telemetry.export_timeout <= 0:
        raise ConfigError("telemetry.export_timeout must be positive")
    for exporter in (config.telemetry.logs, config.telemetry.traces):
        if exporter.transport not in ("grpc", "http"):
            raise ConfigError('telemetry transport must be "grpc" or "http"')
    if config.cluster.enabled:
        validate_cluster(config.cluster)
    _validate_sharding(config)


def _validate_sharding(config: ServerConfig) -> None:
    shards = config.system.sharding.shards
    if not 0 <= shards <= MAX_SHARDS:
        raise ConfigError(f"system.sharding.shards must be 0 (auto)..{MAX_SHARDS}")
    if shards <= 1:
        return
    # not yet: docs/sharding.md "Left out"
    for on, what in ((config.cluster.enabled, "[cluster] enabled (a partition's consensus "
                      "group will live on its shard; not built yet)"),
                     (config.data_maintenance.archiver.enabled,
                      "[data_maintenance.archiver] enabled")):
        if on:
            raise ConfigError(f"system.sharding.shards > 1 is not supported with {what}")


SECRET_MIN = 32  # bytes of [cluster.auth] shared_secret, as Iggy requires


def validate_cluster(c: ClusterConfig) -> None:
    """Iggy's rules for `[cluster]` (each timing value must be a nonzero whole tick count)."""
    if not c.name:
        raise ConfigError("cluster.name must not be empty")
    hb, commit = ticks(c.heartbeat_timeout), ticks(c.commit_broadcast_interval)
    if c.heartbeat_timeout < 2.0 or hb < 4 * commit:
        raise ConfigError("cluster.heartbeat_timeout must be at least 2 s and at least 4 x "
                          "commit_broadcast_interval")
    for key in ("commit_broadcast_interval", "prepare_retransmit_interval",
                "view_change_retransmit_interval", "request_start_view_retransmit_interval",
                "repair_retry_interval", "reconnect_period"):
        if getattr(c, key) <= 0:
            raise ConfigError(f"cluster.{key} must be positive")
    if ticks(c.view_change_status_timeout) < 4 * ticks(c.view_change_retransmit_interval):
        raise ConfigError("cluster.view_change_status_timeout must be at least 4 x "
                          "view_change_retransmit_interval")
    if c.reconnect_period >= c.heartbeat_timeout:
        raise ConfigError("cluster.reconnect_period must be shorter than heartbeat_timeout "
                          "(a lost connection must come back before the failure detector fires)")
    if not 1 <= c.view_probe_attempts_max <= 100:
        raise ConfigError("cluster.view_probe_attempts_max must be 1..100")
    if not 1 <= c.repair_chunk_max <= 1024 or c.repair_chunk_max >= c.peer_queue_capacity:
        raise ConfigError("cluster.repair_chunk_max must be 1..1024 and below "
                          "peer_queue_capacity")
    if c.max_message_size < 1 * MiB:
        raise ConfigError("cluster.max_message_size must be at least 1 MiB")
    _validate_roster(c)
    auth = c.auth
    if auth.enabled and len(auth.shared_secret.encode()) < SECRET_MIN:
        raise ConfigError(f"cluster.auth.shared_secret must be at least {SECRET_MIN} bytes "
                          "(IGGY_CLUSTER_AUTH_SHARED_SECRET), the same on every node")
    if not auth.enabled and not all(ipaddress.ip_address(n.ip).is_loopback for n in c.nodes):
        # Without it, anyone who reaches a replica port can forge prepares and votes: only
        # processes of this machine reach a loopback-only roster.
        raise ConfigError("cluster.auth: a roster beyond loopback needs [cluster.auth] enabled "
                          "with a shared_secret (anyone reaching the replica port could "
                          "otherwise join the cluster)")
    if c.tls.enabled and not auth.enabled:
        raise ConfigError("cluster.tls needs [cluster.auth] enabled, as Iggy's does")


def _validate_roster(c: ClusterConfig) -> None:
    ids = sorted(n.replica_id for n in c.nodes)
    if not c.nodes:
        raise ConfigError("cluster.nodes: the roster is empty ([[cluster.nodes]] tables)")
    if ids != list(range(len(ids))):
        raise ConfigError("cluster.nodes: replica_id values must be unique and contiguous "
                          "from 0")
    if len(ids) > 6:
        raise ConfigError("cluster.nodes: at most 6 replicas")
    if c.replica_id not in ids:
        raise ConfigError(f"cluster.replica_id {c.replica_id} is not in the roster "
                          "(--replica-id N / IGGY_CLUSTER_REPLICA_ID)")
    names = [n.name for n in c.nodes]
    if "" in names or len(set(names)) != len(names):
        raise ConfigError("cluster.nodes: every node needs a unique name")
    for n in c.nodes:
        try:
            ipaddress.ip_address(n.ip)
        except ValueError:
            raise ConfigError(f"cluster.nodes {n.name}: ip must be a literal IP address, "
                              f"got {n.ip!r}") from None
        ports = (n.ports.tcp, n.ports.tcp_replica, n.ports.kafka, n.ports.http)
        if not all(0 <= p <= 65535 for p in ports) or not n.ports.tcp_replica:
            raise ConfigError(f"cluster.nodes {n.name}: ports.tcp_replica is mandatory and "
                              "every port must be 0..65535")


def _validate_listener(name: str, section: TcpConfig | KafkaConfig) -> None:
    if section.max_connections < 1:
        raise ConfigError(f"{name}.max_connections must be at least 1")
    for key in ("frame_read_timeout", "auth_timeout", "connections_max_idle"):
        if getattr(section, key, 0) < 0:
            raise ConfigError(f"{name}.{key} must not be negative (0 turns it off)")
    _validate_tls(name, section.tls)


def _validate_tls(name: str, tls: TlsConfig) -> None:
    if tls.enabled and not tls.self_signed and not (tls.cert_file and tls.key_file):
        raise ConfigError(f"{name}.tls: set cert_file and key_file, or self_signed = true")
    if tls.enabled and bool(tls.cert_file) != bool(tls.key_file):
        raise ConfigError(f"{name}.tls: set both cert_file and key_file, or neither")
    if tls.client_auth not in ("none", "requested", "required"):
        raise ConfigError(f'{name}.tls.client_auth must be "none", "requested" or "required"')
    if tls.enabled and tls.client_auth != "none" and not tls.ca_file:
        raise ConfigError(f"{name}.tls: client_auth = {tls.client_auth!r} needs ca_file (the "
                          f"CAs that sign client certificates)")


def _validate_http(http: HttpConfig) -> None:
    if http.max_request_size < 1024:
        raise ConfigError("http.max_request_size must be at least 1 KiB")
    if http.jwt.algorithm != "HS256":
        raise ConfigError('http.jwt.algorithm: only "HS256" is supported')
    if http.jwt.access_token_expiry <= 0:
        raise ConfigError("http.jwt.access_token_expiry must be positive")
    if bool(http.jwt.encoding_secret) != bool(http.jwt.decoding_secret):
        raise ConfigError("http.jwt: set both encoding_secret and decoding_secret, or neither")
    if not http.metrics.endpoint.startswith("/"):
        raise ConfigError('http.metrics.endpoint must start with "/"')
    _validate_tls("http", http.tls)


def tls_files(config: ServerConfig, tls: TlsFiles) -> tuple[str, str]:
    """The (certificate, key) paths of a `[*.tls]` section; empty = under `[system] path`."""
    if tls.cert_file:
        return tls.cert_file, tls.key_file
    certs = Path(config.system.path) / "certs"
    return str(certs / "pyggy_cert.pem"), str(certs / "pyggy_key.pem")


def config_path(argv_config_path: str | None, env: Mapping[str, str]) -> str | None:
    """The config file to read: `--config`, else `IGGY_CONFIG_PATH`, else none."""
    return argv_config_path or env.get("IGGY_CONFIG_PATH") or None


def load_config(argv_config_path: str | None, env: Mapping[str, str], *,
                document: Mapping[str, Any] | None = None) -> ServerConfig:
    """Build the config from defaults, the TOML file (if any) and `IGGY_*` overrides.
    `document`: that file as already parsed (`pyggy-server` reads it once, before it binds:
    pyggy/prebind.py)."""
    config = ServerConfig()
    path = config_path(argv_config_path, env)
    if path is not None:
        if document is not None:
            data = document
        else:
            import tomllib  # only with a config file: its parser compiles regexes at import

            try:
                with open(path, "rb") as fh:
                    data = tomllib.load(fh)
            except FileNotFoundError:
                raise ConfigError(f"config file not found: {path}") from None
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise ConfigError(f"cannot read config file {path}: {e}") from None
        _refuse_unknown_security(list(_unknown_security_keys(data)))
        _apply_table(config, data)
    _apply_env(config, env)
    validate(config)
    return config
