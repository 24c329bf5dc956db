"""Server assembly: the engine, the native listener, background maintenance, shutdown.

Contract used by `pyggy.cli` and the test fixtures:
- `run(config, root_credentials)` blocks until SIGTERM/SIGINT, then returns (exit code 0);
  the credentials are a (name, password) pair, None, or a `RootUser` already hashing them;
  the CLI has already installed the uvloop event loop policy.
- one INFO log line per listener: "tcp listening on HOST:PORT" (the fixtures wait for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import inspect
import logging
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pyggy.archiving import setup as setup_archiving
from pyggy.config import (
    ConfigError,
    KafkaConfig,
    ServerConfig,
    TcpConfig,
    TlsFiles,
    kafka_requires_auth,
    loopback_only,
    shard_count,
    split_address,
    tls_files,
)
from pyggy.core.auth import RootUser, ThreadHashPool, VerifiedPasswords
from pyggy.core.engine import LogEngine
from pyggy.core.logins import Audit, GuardSettings, LoginGuard, Logins
from pyggy.core.records import accel
from pyggy.diagnostics import Diagnostics
from pyggy.native_wire.context import NativeServer, NodeInfo
from pyggy.native_wire.listener import start_listener
from pyggy.telemetry import background
from pyggy.telemetry import setup as setup_telemetry
from pyggy.transport import Limits, Listener
from pyggy.transport.limits import raise_fd_limit

if TYPE_CHECKING:  # imported where used: a server without Kafka never loads the door
    from aiohttp import web

    from pyggy.cluster.runtime import ClusterRuntime
    from pyggy.kafka_wire.context import KafkaServer
    from pyggy.kafka_wire.groups import GroupCoordinator
    from pyggy.metrics import Metrics
    from pyggy.shards.runtime import ShardRuntime
    from pyggy.telemetry import Telemetry

log = logging.getLogger(__name__)


def _bound(listener: Listener) -> tuple[str, int]:
    """The (host, port) a started listener is bound to."""
    assert listener.server is not None  # start() made it
    return listener.server.sockets[0].getsockname()[:2]


async def _periodic(interval: float, action: Callable[[], object], name: str) -> None:
    """Run `action` (a function or a coroutine function) every `interval` seconds."""
    while True:
        await asyncio.sleep(interval)
        try:
            result = action()
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("%s failed", name)


TXN_TICK_S = 0.5  # how often transaction timeouts are checked


async def _clean(engine: LogEngine) -> None:
    """Retention, then a compaction pass over compacted topics (docs/compaction.md)."""
    removed = engine.clean()
    if removed:
        log.info("cleaner removed %d expired or oversized segments", removed)
    await engine.compact()


async def _clean_replicated(engine: LogEngine) -> None:
    removed = await engine.clean_replicated()
    if removed:
        log.info("cleaner removed %d expired or oversized segments (replicated)", removed)


def _tick_groups(coordinator: GroupCoordinator, telemetry: Telemetry | None = None) -> None:
    for e in coordinator.tick():
        if telemetry is not None:  # a span per eviction (it starts a rebalance)
            with telemetry.background("kafka.group.evict", **{
                    "messaging.system": "kafka", "messaging.consumer.group.name": e.group_id,
                    "kafka.member.id": e.member_id, "kafka.evict.reason": e.reason}):
                log.info("kafka group %s: evicted member %s: %s", e.group_id, e.member_id,
                         e.reason)
            continue
        log.info("kafka group %s: evicted member %s: %s", e.group_id, e.member_id, e.reason)


def _logins(config: ServerConfig, engine: LogEngine) -> Logins:
    """One login service for both doors: the same users, guard and audit."""
    c = config.login
    return Logins(engine, LoginGuard(GuardSettings(
        max_connection_failures=c.max_connection_failures,
        free_failures=c.free_failures, max_failures=c.max_failures,
        max_address_failures=c.max_address_failures, failure_window=c.failure_window,
        failure_delay=c.failure_delay, max_delay=c.max_delay)), Audit(),
        VerifiedPasswords(c.verified_cache_size, c.verified_cache_ttl))


def _kafka_authentication(config: ServerConfig) -> bool:
    """Decide (and log) whether Kafka clients must log in; warn about an open listener."""
    k = config.kafka
    host = split_address(k.address)[0]
    required = kafka_requires_auth(k)
    if k.authentication == "auto":
        why = f"auto: {host or '*'} is {'' if loopback_only(host) else 'not '}loopback-only"
    else:
        why = "[kafka] authentication"
    log.info("kafka authentication: %s (%s)", "sasl" if required else "none", why)
    if not required and not loopback_only(host):
        log.warning("kafka listener %s accepts anonymous clients with full access to every "
                    "stream ([kafka] authentication = \"none\"); anyone who can reach it can "
                    "read, write and delete", k.address)
    return required


def _limits(section: TcpConfig | KafkaConfig, idle_timeout: float = 0.0,
            reuse_port: bool = False) -> Limits:
    return Limits(max_connections=section.max_connections,
                  frame_read_timeout=section.frame_read_timeout, idle_timeout=idle_timeout,
                  auth_timeout=section.auth_timeout, reuse_port=reuse_port)


def _tls_contexts(config: ServerConfig) -> dict[str, ssl.SSLContext | None]:
    """The server TLS context of each listener with TLS on (None for the others), generating a
    self-signed certificate where one is asked for and missing; a ConfigError if one fails."""
    hosts = ["localhost", "127.0.0.1", "::1", socket.gethostname(),
             split_address(config.tcp.address)[0], split_address(config.kafka.address)[0],
             split_address(config.http.address)[0],
             config.kafka.advertised()[0]]
    hosts = list(dict.fromkeys(h for h in hosts if h not in ("", "0.0.0.0", "::")))
    contexts: dict[str, ssl.SSLContext | None] = {}
    for name in ("tcp", "kafka", "http"):
        section = getattr(config, name)
        contexts[name] = None
        if not (section.enabled and section.tls.enabled):
            continue
        contexts[name] = _server_tls(config, name, section.tls, hosts, section.tls.ca_file,
                                     section.tls.client_auth)
    return contexts


def _server_tls(config: ServerConfig, name: str, files: TlsFiles, hosts: list[str],
                ca_file: str = "", client_auth: str = "none") -> ssl.SSLContext:
    """The server context of one `[<name>.tls]` section, generating its self-signed
    certificate first where asked and missing; a ConfigError naming the section if it fails."""
    from pyggy.transport import tls

    cert, key = tls_files(config, files)
    try:
        if files.self_signed and tls.ensure_self_signed(cert, key, hosts):
            log.info("%s: generated a self-signed TLS certificate %s for %s (clients can "
                     "trust it as their CA file)", name, cert, ", ".join(hosts))
        return tls.server_context(cert, key, ca_file, client_auth)
    except tls.TlsError as e:
        raise ConfigError(f"{name}.tls: {e}") from None


def _check_fd_limit(config: ServerConfig) -> None:
    """Raise the open-file limit to fit max_connections (plus room for data files), or say
    that it cannot."""
    wanted = sum(s.max_connections for s in (config.tcp, config.kafka) if s.enabled) + 1024
    soft = raise_fd_limit(wanted)
    if soft < wanted:
        log.warning("open-file limit %d is below what max_connections needs (%d): connections "
                    "beyond it fail to be accepted; raise `ulimit -n` or lower max_connections",
                    soft, wanted)


def _import_doors(config: ServerConfig) -> None:
    """Import the Kafka and HTTP doors' modules, which load lazily (the Kafka codec at the
    first Kafka frame, each handler at its API's first request), before the cluster's
    replicas start ticking: on a loaded machine each of those imports stalled the loop for
    1.1-1.8 s (cluster/loopwatch.py logged them), close to the 2 s heartbeat timeout the
    tests use."""
    if config.kafka.enabled:
        import pyggy.kafka_wire.dispatch  # the registry, the schema codec
        import pyggy.kafka_wire.groups.coordinator
        import pyggy.kafka_wire.listener  # noqa: F401
        from pyggy.kafka_wire.registry import load_handlers

        load_handlers()  # every handler's module
    if config.http.enabled:
        import pyggy.http_api.app  # noqa: F401


async def _start_kafka(config: ServerConfig, engine: LogEngine, logins: Logins,
                       tasks: list[asyncio.Task[None]], tls: ssl.SSLContext | None,
                       telemetry: Telemetry | None = None, metrics: Metrics | None = None,
                       shards: ShardRuntime | None = None, port: int | None = None
                       ) -> tuple[Listener, KafkaServer]:
    from pyggy.kafka_wire.context import KafkaServer
    from pyggy.kafka_wire.group_configs import GROUP_CONFIGS
    from pyggy.kafka_wire.groups.store import FileOffsetStore
    from pyggy.kafka_wire.listener import start_listener as start_kafka
    from pyggy.kafka_wire.producer_ids import IdBlocks, ProducerIdFile
    from pyggy.kafka_wire.producers import (
        ID_BLOCK,
        OWN_RANGES,
        PRODUCER_ID_EXPIRATION_CHECK_S,
        ProducerStates,
    )
    from pyggy.kafka_wire.settings import KafkaSettings
    from pyggy.kafka_wire.topics import topic_id

    k = config.kafka
    host, configured_port = split_address(k.address)
    port = configured_port if port is None else port
    settings = KafkaSettings(default_stream=k.default_stream,
                             stream_separator=k.stream_separator,
                             auto_create_topics=k.auto_create_topics,
                             num_partitions=k.num_partitions, max_frame_size=k.max_frame_size,
                             requires_auth=_kafka_authentication(config),
                             reauth_ms=round(k.connections_max_reauth * 1000),
                             transactional_id_expiration_ms=round(
                                 k.transactional_id_expiration * 1000))
    # producer ids continue after a restart (kafka_wire/producers.py)
    # ... and each shard process hands out ids of its own range, from a file of its own
    shard = f".shard{shards.index}" if shards is not None and shards.index else ""
    ids = ProducerIdFile(Path(config.system.path) / "kafka" / f"producer_ids{shard}")
    first_id = (shards.index << 40 if shard and shards is not None else 0) + 1000
    if config.cluster.enabled:  # blocks granted by the metadata group (kafka_wire/replicated)
        settings.node_id = config.cluster.replica_id
        # ... and this replica's own range where it is not the metadata primary: above every
        # block and every id of the per-replica ranges (`replica_id << 40`) of older versions
        own = ProducerIdFile(Path(config.system.path) / "kafka" / "producer_ids_own")
        own_first = OWN_RANGES + (config.cluster.replica_id << 40)
        fallback = ProducerStates(max(own.load(own_first), own_first), own.store).new_id
        kafka = KafkaServer(engine, settings, producers=ProducerStates(
            blocks=True, fallback=fallback), id_blocks=IdBlocks(ids, first_id, ID_BLOCK),
            logins=logins)
    else:
        kafka = KafkaServer(engine, settings, producers=ProducerStates(
            max(ids.load(first_id), first_id), ids.store), logins=logins)
    kafka.telemetry = telemetry
    kafka.metrics = metrics
    if metrics is not None:
        metrics.kafka = kafka

    def partition_exists(topic: str, partition: int) -> bool:
        t = kafka.topics.resolve(topic)
        return t is not None and 0 <= partition < len(t.partitions)

    # Kafka group offsets: a store of their own, apart from Iggy consumer offsets (README)
    def log_start(topic: str, partition: int) -> int | None:
        t = kafka.topics.resolve(topic)
        if t is None or not 0 <= partition < len(t.partitions):
            return None
        return engine.data.watermarks(t, partition)[0]

    offsets = FileOffsetStore(Path(config.system.path) / "kafka" / f"offsets{shard}",
                              fsync=config.system.state.enforce_fsync, log_start=log_start,
                              lost_found=engine.lost_found)
    def consumer_topics() -> dict[str, tuple[bytes, int]]:
        """The topics KIP-848 groups subscribe to by name or regex (internal ones too: a
        regex naming `__consumer_offsets` gets it, as on Kafka)."""
        return {name: (topic_id(t), len(t.partitions)) for name, t in kafka.topics.all()}

    def consumer_timeouts(group_id: str) -> tuple[int, int]:
        """A KIP-848 group's session timeout and heartbeat interval: its group configs."""
        configs = engine.consumers.group_configs(group_id)
        return (int(configs.get("consumer.session.timeout.ms", GROUP_CONFIGS[
                    "consumer.session.timeout.ms"].default)),
                int(configs.get("consumer.heartbeat.interval.ms", GROUP_CONFIGS[
                    "consumer.heartbeat.interval.ms"].default)))

    def coordinator() -> GroupCoordinator:
        """The group coordinator, built (and its module imported) at the first group
        request: a client's first requests (ApiVersions, Metadata) do not wait for it."""
        from pyggy.kafka_wire.groups.coordinator import GroupCoordinator

        return GroupCoordinator(
            engine.clock, offsets, partition_exists=partition_exists,
            initial_rebalance_delay_ms=round(k.group_initial_rebalance_delay * 1000),
            consumer_topics=consumer_topics, consumer_timeouts=consumer_timeouts)

    kafka.coordinator_factory = coordinator
    # group offsets and producer ids a cluster's restart replayed before these stores existed
    engine.replicated.flush()

    def tick_groups() -> None:  # no groups before the coordinator is built
        if kafka.built_coordinator is not None:
            _tick_groups(kafka.built_coordinator, telemetry)

    tasks.append(asyncio.get_running_loop().create_task(_periodic(
        0.1, tick_groups, "kafka group timers")))
    # transaction timeouts, and transactions a restart found prepared (kafka_wire/transactions)
    tasks.append(asyncio.get_running_loop().create_task(_periodic(
        TXN_TICK_S, kafka.txn.tick, "kafka transaction timers")))
    tasks.append(asyncio.get_running_loop().create_task(_periodic(
        PRODUCER_ID_EXPIRATION_CHECK_S, kafka.expire_producers, "kafka producer expiry")))

    if shards is not None:
        from pyggy.shards.kafka import KafkaForward

        kafka.shards = KafkaForward(shards, kafka)
    listener = await start_kafka(kafka, host, port, _limits(k, k.connections_max_idle,
                                                            shards is not None), tls)
    bound = _bound(listener)
    settings.host, settings.port = k.advertised()
    if not k.advertised_port:
        settings.port = bound[1]
    if shards is not None and shards.kafka_ports:  # this shard as a broker of its own
        assert kafka.shards is not None
        shards.listeners.append(await start_kafka(
            kafka, host, shards.kafka_ports[shards.index],
            _limits(k, k.connections_max_idle, True), tls))
        settings.node_id = shards.index
        kafka.shards.brokers = [(i, settings.host, p)
                                for i, p in enumerate(shards.kafka_ports)]
        log.info("kafka shard %d listening on %s:%d as broker %d", shards.index, host,
                 shards.kafka_ports[shards.index], shards.index)
    log.info("kafka listening on %s:%d (advertised as %s:%d)%s", bound[0], bound[1],
             settings.host, settings.port, " with TLS" if tls is not None else "")
    return listener, kafka


async def _start_http(config: ServerConfig, native: NativeServer, logins: Logins,
                      tls: ssl.SSLContext | None, metrics: Metrics | None,
                      kafka: KafkaServer | None, telemetry: Telemetry | None) -> web.AppRunner:
    """The HTTP door (REST API, /metrics, console). Every route but /ping, the logins and
    /openapi.json needs a token on any address: no anonymous access to data, as Iggy."""
    from pyggy.http_api.app import start
    from pyggy.http_api.context import HttpServer
    from pyggy.http_api.tokens import Tokens

    h = config.http
    host, port = split_address(h.address)
    if not loopback_only(host) and tls is None:
        log.warning("http listener %s is reachable from the network without TLS: passwords "
                    "and tokens cross it in clear text ([http.tls] enabled = true)", h.address)
    server = HttpServer(native.engine, native, h, Tokens(h.jwt), logins, metrics=metrics,
                        kafka=kafka, telemetry=telemetry)
    runner, bound = await start(server, host, port, tls)
    native.node.http_port = bound
    log.info("http listening on %s:%d%s", host, bound, " with TLS" if tls is not None else "")
    return runner


async def _start_cluster(config: ServerConfig, engine: LogEngine) -> ClusterRuntime:
    """`[cluster] enabled`: this process becomes one replica (pyggy.cluster, imported only
    here). Returns the started ClusterRuntime."""
    from pyggy.cluster.roster import Node
    from pyggy.cluster.runtime import ClusterRuntime, ClusterSettings
    from pyggy.config import ticks
    from pyggy.consensus.options import Options

    c = config.cluster
    timing = Options(
        heartbeat_timeout=ticks(c.heartbeat_timeout),
        commit_interval=ticks(c.commit_broadcast_interval),
        prepare_retransmit=ticks(c.prepare_retransmit_interval),
        view_change_retransmit=ticks(c.view_change_retransmit_interval),
        view_change_status_timeout=ticks(c.view_change_status_timeout),
        request_start_view_interval=ticks(c.request_start_view_retransmit_interval),
        view_probe_attempts_max=c.view_probe_attempts_max,
        repair_interval=ticks(c.repair_retry_interval), repair_chunk_max=c.repair_chunk_max)
    nodes = tuple(Node(n.name, n.ip, n.replica_id, n.ports.tcp, n.ports.tcp_replica,
                       n.ports.kafka, n.ports.http) for n in c.nodes)
    server_tls = client_tls = None
    if c.tls.enabled:
        server_tls = _server_tls(config, "cluster", c.tls, [n.ip for n in c.nodes] + ["localhost"])
        client_tls = ssl.create_default_context(cafile=c.tls.ca_file or None)
        if not c.tls.ca_file:  # encrypted; the PSK handshake authenticates the peer
            client_tls.check_hostname = False
            client_tls.verify_mode = ssl.CERT_NONE
    runtime = ClusterRuntime(engine, ClusterSettings(
        name=c.name, replica_id=c.replica_id, nodes=nodes, timing=timing,
        key=c.auth.shared_secret.encode() if c.auth.enabled else b"",
        queue_capacity=c.peer_queue_capacity, reconnect_period=c.reconnect_period,
        message_size_max=c.max_message_size, server_tls=server_tls, client_tls=client_tls),
        Path(config.system.path) / "cluster")
    await runtime.start()
    return runtime


def _reap(native: NativeServer, interval: float) -> None:
    for s in native.reap_stale(time.monotonic(), interval):
        log.info("released stale client %d (%s) and its group memberships", s.client_id,
                 s.address)


async def serve(config: ServerConfig, root_credentials: tuple[str, str] | RootUser | None,
                repair_state: bool = False) -> str:
    """Open the engine, bind the enabled listeners and serve until SIGTERM/SIGINT (returns
    "") or until the cluster asks for a restart (returns why: pyggy.cli starts again).
    `CorruptFile` when metadata is damaged beyond repair (see pyggy.cli)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    restarting: list[str] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    shards = _shard_runtime(config)  # None with one shard: pyggy.shards is never imported
    if shards is not None:
        shards.stop = stop  # a shard process failing stops the server
    tls = _tls_contexts(config)  # first: a bad certificate stops the start before any data
    _check_fd_limit(config)
    telemetry = setup_telemetry(config.telemetry)  # None (no OpenTelemetry import) when off
    archiving = setup_archiving(config)  # None unless [data_maintenance.archiver] enabled
    if config.cluster.enabled:  # a metadata checkpoint fetched by state transfer, if staged
        from pyggy.cluster.metadata_transfer import install_pending

        install_pending(Path(config.system.path))
    engine = LogEngine(Path(config.system.path),
                       validate_checksum=config.system.partition.validate_checksum,
                       state_fsync=config.system.state.enforce_fsync,
                       remote=archiving.remote if archiving is not None else None,
                       hasher=ThreadHashPool(config.login.hash_workers))
    if archiving is not None:  # names of archive keys, to re-list a lost manifest
        archiving.store.names = lambda sid, tid: (engine.metadata.stream_name(sid),
                                                  engine.metadata.topic(sid, tid).name)
    if shards is not None:
        shards.prepare(engine)
    try:
        engine.open(root_credentials, repair_state=repair_state)
    except BaseException:
        if archiving is not None:
            archiving.close()
        if telemetry is not None:
            telemetry.shutdown()
        raise
    logins = _logins(config, engine)
    if telemetry is not None:
        engine.seal_listeners.append(telemetry.segment_sealed)
    if engine.generated_root_password:
        # Printed once, at the first start, as Iggy does; it is stored only as a hash.
        print(f"pyggy: generated root user 'iggy' with password: "
              f"{engine.generated_root_password}", file=sys.stderr, flush=True)
    metrics = None
    if config.http.enabled and config.http.metrics.enabled:
        from pyggy.metrics import Metrics

        metrics = Metrics(engine)
    cluster = None
    if config.cluster.enabled:
        try:
            _import_doors(config)
            cluster = await _start_cluster(config, engine)
        except BaseException:
            engine.close()
            raise
    listeners: list[Listener] = []
    host, port = split_address(config.tcp.address)
    kafka_port: int | None = None
    if shards is not None:
        port, kafka_port = await _start_shards(config, shards, engine)
    node = NodeInfo(tcp_host=host, tcp_port=port,
                    max_tokens_per_user=config.personal_access_token.max_tokens_per_user)
    if cluster is not None:
        node.cluster_name, node.node_name = config.cluster.name, config.cluster.node().name
        cluster.telemetry = telemetry

        def restart(why: str) -> None:
            restarting.append(why)
            stop.set()

        cluster.restart = restart
    native = NativeServer(engine, node, telemetry=telemetry, logins=logins,
                          snapshots=Diagnostics(config), metrics=metrics)
    if shards is not None:  # client ids k+1, k+1+N, …: group members are known everywhere
        native.number_sessions(shards.index + 1, shards.count)
        shards.native = native  # its clients count toward the whole server's `stats`
        if metrics is not None:  # /metrics shows every shard's forwarding and handoffs
            metrics.shards = shards
    if accel.WALKS is not None:
        log.info("batch walks: C extension")
    else:  # several times the CPU per GB on every produce and poll path (BENCHMARKS.md)
        log.warning("batch walks: pure Python, several times slower: %s", accel.WHY)
    if config.tcp.enabled:
        listener = await start_listener(native, host, port, config.tcp.max_frame_size,
                                        _limits(config.tcp, reuse_port=shards is not None),
                                        tls["tcp"])
        bound = _bound(listener)
        native.node.tcp_port = bound[1]
        listeners.append(listener)
        if shards is not None and config.system.sharding.native_handoff and tls["tcp"] is None:
            # docs/sharding.md: connections move to the shard owning their partitions
            shards.start_handoff(native, listener, config.tcp.max_frame_size)
        if metrics is not None:
            metrics.native = native
            metrics.listeners["iggy"] = listener
        log.info("tcp listening on %s:%d%s", bound[0], bound[1],
                 " with TLS" if tls["tcp"] is not None else "")
    tasks: list[asyncio.Task[None]] = []
    kafka = None
    if config.kafka.enabled:
        kafka_listener, kafka = await _start_kafka(config, engine, logins, tasks, tls["kafka"],
                                                   telemetry, metrics, shards, kafka_port)
        listeners.append(kafka_listener)
        if metrics is not None:
            metrics.listeners["kafka"] = kafka_listener
    if shards is not None:  # shard 0 says it once every shard listens
        await shards.listening()
    http_runner = None
    if config.http.enabled:
        http_runner = await _start_http(config, native, logins, tls["http"], metrics, kafka,
                                        telemetry)
    # repeats of logged logins and refusals are reported once their burst is over
    tasks.append(loop.create_task(_periodic(logins.audit.window, logins.audit.flush,
                                            "audit")))
    if archiving is not None:
        tasks.append(archiving.start(engine, telemetry))
        if metrics is not None:
            metrics.archiver = archiving.service
    if config.data_maintenance.messages.cleaner_enabled:
        clean: Callable[[], object] = functools.partial(
            _clean if cluster is None else _clean_replicated, engine)
        tasks.append(loop.create_task(_periodic(config.data_maintenance.messages.interval,
                                                background(telemetry, "cleaner", clean),
                                                "cleaner")))
    scrub = config.data_maintenance.scrub
    if scrub.enabled:
        from pyggy.scrub import background as scrubber

        tasks.append(loop.create_task(scrubber(engine, scrub.interval, scrub.rate)))
    pat_cleaner = config.personal_access_token.cleaner
    if pat_cleaner.enabled and (shards is None or shards.index == 0):
        tasks.append(loop.create_task(_periodic(
            pat_cleaner.interval,
            background(telemetry, "token_cleaner", engine.identity.expire_tokens),
            "token cleaner")))
    if config.heartbeat.enabled:
        interval = config.heartbeat.interval
        tasks.append(loop.create_task(_periodic(
            interval / 2, background(telemetry, "heartbeat.reap", lambda: _reap(native, interval)),
            "heartbeat")))
    _started()
    await stop.wait()
    log.info("shutting down")
    if shards is not None:
        listeners += shards.listeners
    for listener in listeners:
        listener.close()  # stop accepting, close every connection
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for listener in listeners:
        await listener.wait_closed()
    if shards is not None:
        log.info("shard %d of %d: stopping", shards.index, shards.count)
        await shards.close()
    if http_runner is not None:
        await http_runner.cleanup()
    if cluster is not None:
        await cluster.close()
    if archiving is not None:
        archiving.close()
    if metrics is not None:
        metrics.close()
    logins.audit.flush(force=True)
    engine.close()
    log.info("stopped")
    if telemetry is not None:
        telemetry.shutdown()
    if shards is not None and shards.failed:
        raise SystemExit(1)  # docs/sharding.md: a shard process failing stops the server
    return restarting[0] if restarting else ""


def _started() -> None:
    """The start is over. If `pyggy.cli` turned the garbage collector off for it (~60
    collections, ~8 % of its CPU): keep what the start built (modules, classes, config,
    metadata) out of every later collection (`gc.freeze`), turn the collector on. No
    collection first: it took 10-19 ms before the doors' first answers to free ~950 objects
    (~280 KB, mostly the classes `dataclass(slots=True)` replaces), which stay instead."""
    if gc.isenabled():  # a server run in another program's process: its collector, its call
        return
    gc.freeze()
    gc.enable()


def _shard_runtime(config: ServerConfig) -> ShardRuntime | None:
    """This process's shard runtime: a child's from its environment; shard 0's when
    `[system.sharding] shards` > 1; None (one process, nothing imported) otherwise."""
    import os

    count = shard_count(config)
    if count <= 1 and not os.environ.get("PYGGY_SHARD"):
        return None
    import tempfile

    from pyggy.shards.runtime import ShardRuntime

    child = ShardRuntime.from_env()
    if child is not None:
        return child[0]
    # a short path: a Unix socket name must fit in 108 bytes
    return ShardRuntime(0, count, Path(tempfile.mkdtemp(prefix="pyggy-shards-")))


async def _start_shards(config: ServerConfig, shards: ShardRuntime, engine: LogEngine
                        ) -> tuple[int, int]:
    """Connect this shard to the others (shard 0 starts them first, on ports it reserved,
    and waits until each opened its engine); the (tcp, kafka) ports every shard listens on."""
    from pyggy.shards.runtime import ShardRuntime, reserve_port

    shards.attach(engine)
    await shards.start()
    child = ShardRuntime.from_env()
    if child is not None:
        await shards.call(0, {"op": "ready", "shard": shards.index})
        log.info("shard %d of %d: ready", shards.index, shards.count)
        return child[1]
    reserved = [reserve_port(*split_address(a)) for a in (config.tcp.address,
                                                           config.kafka.address)]
    ports = (reserved[0].getsockname()[1], reserved[1].getsockname()[1])
    if config.kafka.enabled and config.system.sharding.kafka_broker_per_shard:
        host = split_address(config.kafka.address)[0]
        own = [reserve_port(host, 0) for _ in range(shards.count)]
        reserved += own
        shards.kafka_ports = [sock.getsockname()[1] for sock in own]
    try:
        await shards.spawn(ports)
    finally:
        for sock in reserved:  # every shard binds the ports with SO_REUSEPORT now
            sock.close()
    return ports


def run(config: ServerConfig, root_credentials: tuple[str, str] | RootUser | None,
        repair_state: bool = False) -> str:
    """Run the server until a shutdown signal arrives ("") or the cluster asks for a
    restart (why)."""
    return asyncio.run(serve(config, root_credentials, repair_state))
