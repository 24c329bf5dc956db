"""State shared by all Kafka connections, and what a handler sees of its connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pyggy.core.engine import LogEngine
from pyggy.core.lean import lean
from pyggy.core.logins import Attempt, Logins, LoginState
from pyggy.core.model import Partition, Topic, User
from pyggy.kafka_wire import replicated
from pyggy.kafka_wire.producer_ids import IdBlocks
from pyggy.kafka_wire.producers import PRODUCER_ID_EXPIRATION_MS, ProducerStates
from pyggy.kafka_wire.settings import KafkaSettings
from pyggy.kafka_wire.topics import TopicMap
from pyggy.kafka_wire.transactions import TransactionCoordinator
from pyggy.transport.door import RequestMetrics

if TYPE_CHECKING:
    from pyggy.kafka_wire.groups import GroupCoordinator
    from pyggy.kafka_wire.registry import Api
    from pyggy.kafka_wire.scram import ScramExchange

# a decoded request or a response to encode (kafka_wire/protocol/codec.py)
Message = dict[str, Any]


class CloseConnection(Exception):
    """The request cannot be answered within the protocol: close this connection."""


log = logging.getLogger(__name__)


class RequestTelemetry(Protocol):
    """What the Kafka door asks of telemetry (pyggy/telemetry.py `Telemetry`, when on)."""

    async def kafka_request(self, conn: Connection, api: Api, version: int, request: Message,
                            call: Callable[[], Awaitable[Message | None]]) -> Message | None:
        """`call()`'s response, with a span around the call."""
        ...


class AppendWaiters:
    """Wakes long-polling fetches when a partition they wait on receives data."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[int, int, int], list[asyncio.Future[None]]] = {}

    def wait(self, keys: list[tuple[int, int, int]]) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key in keys:
            self._waiting.setdefault(key, []).append(fut)
        return fut

    def discard(self, keys: list[tuple[int, int, int]], fut: asyncio.Future[None]) -> None:
        for key in keys:
            futs = self._waiting.get(key)
            if futs and fut in futs:
                futs.remove(fut)
                if not futs:
                    del self._waiting[key]

    def appended(self, topic: Topic, partition_id: int) -> None:
        for fut in self._waiting.pop((topic.stream_id, topic.id, partition_id), ()):
            if not fut.done():
                fut.set_result(None)


class ShardForward(Protocol):
    """The Kafka door's requests for partitions another shard process owns, answered by that
    shard with the records as they travel (docs/sharding.md)."""

    # (node id, host, port) of each shard as a broker of its own; empty: this one broker
    brokers: list[tuple[int, str, int]]

    def remote(self, t: Topic, index: int) -> bool: ...

    def owner(self, t: Topic, index: int) -> int:
        """The shard (= broker node id) that owns the partition."""
        ...

    async def produce(self, t: Topic, index: int, records: bytes | memoryview) -> dict: ...

    async def fetch(self, t: Topic, partition: dict, budget: list[int], committed: bool
                    ) -> dict: ...

    async def lookup(self, t: Topic, index: int, timestamp: int, committed: bool
                     ) -> tuple[int, int]: ...

    async def end_offset(self, t: Topic, index: int) -> int: ...

    async def wait(self, keys: list[tuple[int, int, int]], local: asyncio.Future[None],
                   timeout: float) -> None:
        """Until `local` is done or one of `keys` another shard owns is appended to;
        TimeoutError after `timeout` seconds."""
        ...

    # whether this is shard 0, where transactions' timeouts are kept (and with a broker per
    # shard, every transaction's coordinator)
    first: bool

    async def caught_up(self) -> None:
        """Until this shard applied every metadata command shard 0 had applied when asked
        (transaction state included): the state a client was answered from is seen here."""
        ...


@lean
class KafkaServer:
    """State shared by every Kafka connection."""

    engine: LogEngine
    settings: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicMap = field(init=False)
    txn: TransactionCoordinator = field(init=False)
    producers: ProducerStates = field(default_factory=ProducerStates)
    # a cluster's replicated producer-id mark (kafka_wire/replicated.py); None on one node
    id_blocks: IdBlocks | None = None
    waiters: AppendWaiters = field(default_factory=AppendWaiters)
    # the group coordinator: set, or built by `coordinator_factory` at its first use (a
    # server builds it at the first group request: pyggy/server.py)
    built_coordinator: GroupCoordinator | None = None
    coordinator_factory: Callable[[], GroupCoordinator] | None = None
    telemetry: RequestTelemetry | None = None  # when [telemetry] is on
    metrics: RequestMetrics | None = None  # pyggy.metrics.Metrics when /metrics is served
    # shared with the Iggy door (server.py); None makes one in __post_init__, so every reader
    # sees a `Logins` (the ignore: a dataclass field cannot say "optional argument only")
    logins: Logins = None  # type: ignore[assignment]
    # per partition, the leader epoch its producer sequences were last used in (a cluster)
    leader_epochs: dict[tuple[int, int, int], int] = field(default_factory=dict)
    # a shard process: forwards partitions another shard owns (pyggy/shards/kafka.py)
    shards: ShardForward | None = None

    def __post_init__(self) -> None:
        if self.logins is None:
            self.logins = Logins(self.engine)
        self.topics = TopicMap(self.engine, self.settings)
        self.txn = TransactionCoordinator(self)
        replicated.register(self)  # the handlers find `coordinator` when they run
        self.engine.append_listeners.append(self.waiters.appended)
        self.engine.delete_listeners.append(self.forget_deleted)

    @property
    def coordinator(self) -> GroupCoordinator | None:
        """The group coordinator (None if there is none: some tests' servers)."""
        if self.built_coordinator is None and self.coordinator_factory is not None:
            self.built_coordinator = self.coordinator_factory()
        return self.built_coordinator

    @coordinator.setter
    def coordinator(self, value: GroupCoordinator | None) -> None:
        self.built_coordinator = value
        self.coordinator_factory = None

    def now_ms(self) -> int:
        return self.engine.clock.now_us() // 1000

    def expire_producers(self) -> int:
        """Forget idle producers' sequences after producer.id.expiration.ms (a dynamic broker
        config, Kafka's default 1 day), keeping the epochs of live transactional ids."""
        after_ms = int(self.engine.consumers.broker_configs().get(
            "producer.id.expiration.ms", PRODUCER_ID_EXPIRATION_MS))
        return self.producers.expire(self.now_ms(), after_ms,
                                     lambda pid: self.engine.txns.by_producer(pid) is not None)

    def forget_deleted(self, stream: str, topic: Topic,
                       partitions: Sequence[Partition]) -> None:
        """Partitions deleted through either door take their Kafka-side state with them:
        idempotent producers' sequences and the groups' committed offsets (as Kafka does; a
        topic created again under the same name starts without them)."""
        ids = {p.id for p in partitions}
        self.producers.forget_partitions(topic.stream_id, topic.id, ids)
        if self.coordinator is None:
            return
        name = self.topics.kafka_name(stream, topic.name)
        dropped = self.coordinator.forget_partitions(name, sorted(ids))
        if dropped:
            log.info("dropped %d committed Kafka group offsets of deleted topic %s", dropped,
                     name)


@dataclass(slots=True)
class Connection:
    """One client connection as handlers see it."""

    server: KafkaServer
    host: str
    client_id: str | None = None
    closed: bool = False  # the client went away (set by the listener)
    parked: asyncio.Future | None = None  # the long poll to wake when it does
    apis_used: set[tuple[int, int]] = field(default_factory=set)  # (api key, version), logged
    sasl: str = ""  # SASL state (kafka_wire.handlers.sasl): "", "v0", "v1" or "done"
    mechanism: str = ""  # the SASL mechanism of the handshake
    exchange: ScramExchange | None = None  # a SCRAM exchange in progress
    reauth: bool = False  # the SASL exchange in progress re-authenticates (KIP-368)
    expires: float | None = None  # monotonic end of the SASL session (KIP-368), None: never
    user: User | None = None  # the principal; None = anonymous (only if the listener allows)
    logins: LoginState = field(default_factory=LoginState)
    api_key: int = -1  # the API of the request being handled (kafka_wire.authorizer)
    close_after_reply: bool = False  # close once the current response is written

    def attempt(self) -> Attempt:
        """A login attempt of this connection (for `core.logins.Logins`)."""
        return Attempt(self.host, "kafka", self.logins)
