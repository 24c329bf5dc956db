"""What the doors may ask of a cluster (`engine.cluster`; None on a single node): a narrow
query service plus the replicated write path. pyggy.cluster implements it; the doors never
import that package.

Errors: `NotLeader` (never admitted here: Kafka NOT_LEADER_OR_FOLLOWER / LEADER_NOT_AVAILABLE
/ NOT_CONTROLLER, Iggy TransientNotAccepted 58) and `OutcomeUnknown` (admitted, reply lost to
a view change: Kafka REQUEST_TIMED_OUT, Iggy TransientNotCommitted 57).

`FORWARD`: a door that sets it (the Iggy door, for each request it serves; the Kafka door for
its admin requests that change metadata, `forwarded`) has its replicated writes reaching a
backup forwarded to the group's primary instead of refused with `NotLeader` (Iggy clients do
not know partition leaders; Kafka clients do, and re-route their data requests themselves).

`read_fence`: a metadata read on a node that knows it is behind waits, bounded, for the commit
it has heard of (docs/cluster.md, "A node behind on metadata").
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.lean import lean_frozen

FORWARD: ContextVar[bool] = ContextVar("pyggy_cluster_forward", default=False)
_P = ParamSpec("_P")
_R = TypeVar("_R")
# seconds a metadata read on a node that knows it is behind waits for it to catch up (a read
# fence; docs/cluster.md, "A node behind on metadata"): well below every client's request
# timeout (librdkafka 60 s, the Java client 30 s, kafka-python 30 s)
READ_FENCE = 2.0


class NotLeader(IggyError):
    """`leader` = the replica id to go to, None while the group has no primary."""

    def __init__(self, leader: int | None, what: str = "") -> None:
        self.leader = leader
        super().__init__(ErrorCode.TRANSIENT_NOT_ACCEPTED, what or (
            f"not the leader: replica {leader} is" if leader is not None
            else "no leader: a view change is in progress"))


class OutcomeUnknown(IggyError):
    def __init__(self, what: str) -> None:
        super().__init__(ErrorCode.TRANSIENT_NOT_COMMITTED, what)


@lean_frozen
class ClusterNode:
    """One node of the cluster as the engine reports it."""

    replica_id: int
    name: str
    host: str
    tcp: int
    kafka: int
    http: int


@dataclass(frozen=True, slots=True)  # built per partition per request in a cluster: kept
class Leadership:
    """A group as this node sees it: `leader` None unless the group is in normal status;
    `epoch` = its view; `in_sync` = replicas caught up to the commit point; `settled` (on the
    leader) = it has executed every op it took over from an older view, so its state (the
    Kafka producer sequences rebuilt from the log) includes what the previous leader may have
    acknowledged. `leased` (on the leader) = it heard from a quorum, itself included, within
    the heartbeat timeout: one that has not is probably cut off and deposed without knowing
    it, and the doors stop naming it leader (a check-quorum lease, docs/cluster.md; only what
    the doors advertise, consensus never looks at it)."""

    leader: int | None
    epoch: int
    in_sync: tuple[int, ...]
    settled: bool = True
    leased: bool = True


class ClusterView(Protocol):
    replica_id: int

    def nodes(self) -> list[ClusterNode]: ...

    def metadata_leader(self) -> int | None: ...

    def metadata_current(self) -> bool:
        """This node's metadata replica knows of no committed op it has not executed (normal
        status, not transferring or restarting, executed up to the commit it heard of)."""
        ...

    async def metadata_fence(self, timeout: float = READ_FENCE) -> bool:
        """Wait at most `timeout` s until `metadata_current`; whether it is."""
        ...

    async def leaders_fence(self, partitions: Sequence[tuple[int, int, int]],
                            timeout: float = READ_FENCE) -> bool:
        """Wait at most `timeout` s until every (stream, topic, partition) named has a leader
        as this node sees it (its group in normal status here); whether they have."""
        ...

    def partition(self, stream_id: int, topic_id: int, partition_id: int) -> Leadership: ...

    async def append(self, stream_id: int, topic_id: int, partition_id: int, operation: int,
                     body: bytes) -> int:
        """Replicate one append (a body made by `append_body`); its base offset once
        committed and applied here."""
        ...

    async def confirm(self, stream_id: int, topic_id: int, partition_id: int) -> None:
        """Commit a no-op through the partition's group: returns once this node, as its
        primary, committed it, so it still led after the call began and has executed every
        op before it (`NotLeader` / `OutcomeUnknown` otherwise). A door checks this before a
        refusal that only the leader's state justifies: a deposed leader that has not heard
        of the new view yet still believes it leads."""
        ...

    async def delete_records(self, stream_id: int, topic_id: int, partition_id: int,
                             offset: int) -> int | None:
        """The partition's new log start offset, None if `offset` is past its end."""
        ...

    async def purge(self, stream_id: int, topic_id: int, partition_id: int) -> None: ...

    async def archived(self, stream_id: int, topic_id: int, partition_id: int,
                       record: bytes) -> None:
        """Replicate the archive manifest entry of a segment this node (the partition's
        leader) uploaded, so every replica records it (`RemoteSegments.confirm`)."""
        ...

    async def retention(self, stream_id: int, topic_id: int, partition_id: int,
                        expiry_us: int, max_bytes: int | None) -> int:
        """Enforce retention as an op of the partition's group; segments removed here."""
        ...

    async def delete_segments(self, stream_id: int, topic_id: int, partition_id: int,
                              count: int) -> int: ...

    def append_body(self, encoding: int, batch: bytes | bytearray | memoryview, count: int,
                    max_timestamp_ms: int = 0, log_append_time: bool = False
                    ) -> tuple[int, bytes]:
        """(operation, request body) of an append of either encoding."""
        ...

    async def replicate(self, body: dict[str, Any]) -> object:
        """Replicate one consumer-state change (core/engine/replicated.py) through the
        metadata group; the result of its handler here once committed and applied."""
        ...


async def read_fence(cluster: ClusterView | None) -> bool:
    """Before a metadata read: on a node that knows it is behind, wait (at most `READ_FENCE`
    s) for the commit it has heard of. Whether the read then sees current state (always on a
    single node)."""
    if cluster is None or cluster.metadata_current():
        return True
    return await cluster.metadata_fence()


def forwarded(handler: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
    """`handler` with `FORWARD` set while it runs (and reset after: a connection's other
    requests are not forwarded): the Kafka door's admin requests reaching a backup go to the
    metadata primary."""

    @functools.wraps(handler)
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        token = FORWARD.set(True)
        try:
            return await handler(*args, **kwargs)
        finally:
            FORWARD.reset(token)

    return run
