"""A pyggy node as one replica of a cluster: the engine's metadata and partitions on their
groups, the replica bus, and the query service the doors use (`engine.cluster`).

`ClusterRuntime.start()` opens the metadata group and one group per existing partition,
replaces `CommandLog.propose` by a submit to the metadata group, routes the data path's
replicated writes (appends, DeleteRecords, purge, segment deletion) to the partitions' groups,
and listens on the replica port. The doors see it only as `core.engine.cluster.ClusterView`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pyggy.consensus.message import Message
from pyggy.consensus.options import Options
from pyggy.core.engine import LogEngine
from pyggy.core.engine import cluster as view
from pyggy.core.metadata.commands import MetadataCommand
from pyggy.core.model import Partition, Topic
from pyggy.core.records.encoding import ENCODING_IGGY

from . import metadata_transfer as mxfer
from . import node as node_mod
from . import partition_sm as psm
from .bus import Bus, BusSettings
from .metadata_sm import COMMAND, STATE, MetadataMachine, reply_result
from .node import TICK, Node
from .roster import (
    METADATA_GROUP,
    PARTITION_PREPARE_MAX,
    cluster_id,
    group_options,
    partition_group,
)
from .roster import Node as RosterNode


class ViewTelemetry(Protocol):
    def view_changed(self, replica: int, group: int, view: int, primary: int,
                     started_ns: int) -> None: ...


log = logging.getLogger(__name__)
_Q = struct.Struct("<Q")
_QQ = struct.Struct("<QQ")


@dataclass(slots=True)
class ClusterSettings:
    name: str
    replica_id: int
    nodes: tuple[RosterNode, ...]
    timing: Options  # consensus timing in ticks; sizes are set per group (roster.group_options)
    key: bytes = b""
    queue_capacity: int = 256
    reconnect_period: float = 1.0
    message_size_max: int = 64 << 20
    server_tls: ssl.SSLContext | None = None
    client_tls: ssl.SSLContext | None = None


class ClusterRuntime:
    """Implements `ClusterView` (core/engine/cluster.py) for the doors."""

    def __init__(self, engine: LogEngine, settings: ClusterSettings, root: Path) -> None:
        self.engine = engine
        self.settings = settings
        self.replica_id = settings.replica_id
        self.cluster = cluster_id(settings.name)
        me = next(n for n in settings.nodes if n.replica_id == settings.replica_id)
        self.me = me
        self.bus = Bus(BusSettings(
            cluster=self.cluster, me=me.replica_id, nodes=settings.nodes, key=settings.key,
            queue_capacity=settings.queue_capacity, reconnect_period=settings.reconnect_period,
            message_size_max=max(settings.message_size_max, PARTITION_PREPARE_MAX + 4096),
            server_tls=settings.server_tls, client_tls=settings.client_tls,
            # the keepalive: a PING each commit broadcast interval; a link silent for half the
            # heartbeat timeout is redialled, well before the backups suspect the primary
            ping_interval=settings.timing.commit_interval * TICK,
            silence_timeout=settings.timing.heartbeat_timeout * TICK / 2),
            self._deliver)
        self._metadata_options, self._partition_options = group_options(settings.timing)
        self.node = Node(cluster=self.cluster, replica=me.replica_id,
                         replica_count=len(settings.nodes), root=root, bus=self.bus,
                         options=self._options)
        self.metadata_machine = MetadataMachine(engine, mxfer.installed_op(root))
        self.node.on_view = self._view_changed
        # a fetched metadata checkpoint is installed by a restart (the server sets this: it
        # stops cleanly and starts again, installing before the engine opens); None: the
        # metadata replica is fenced instead
        self.restart: Callable[[str], None] | None = None
        self.node.on_metadata_staged = self._metadata_staged
        self._leaderless: dict[int, int] = {}  # group -> when it was first seen without one
        self.telemetry: ViewTelemetry | None = None  # pyggy.telemetry.Telemetry, when on
        self._caught_up: asyncio.Task[None] | None = None

    def _view_changed(self, group: int, view: int, primary: int | None) -> None:
        if primary is None:  # a view change began (or goes on): time it from the first sight
            self._leaderless.setdefault(group, time.time_ns())
        started = self._leaderless.pop(group, None) if primary is not None else None
        took = "" if started is None else f" after {(time.time_ns() - started) / 1e6:.0f} ms"
        if group == METADATA_GROUP:
            if primary is None:
                log.info("cluster: metadata group in view %d has no primary yet", view)
            else:
                log.info("cluster: metadata primary is replica %d (view %d)%s", primary, view,
                         took)
        elif primary is not None:  # rare: a partition's leader changed
            log.info("cluster: partition group %#x primary is replica %d (view %d)%s", group,
                     primary, view, took)
        if started is not None and primary is not None and self.telemetry is not None:
            self.telemetry.view_changed(self.replica_id, group, view, primary, started)

    def _metadata_staged(self, op: int) -> None:
        why = (f"a metadata checkpoint at op {op} was fetched from a peer; restarting to "
               "install it before the engine opens (docs/cluster.md, State transfer)")
        if self.restart is None:
            log.error("cluster: %s, but this process cannot restart itself: restart it", why)
            return
        log.warning("cluster: %s", why)
        self.restart(why)

    def _options(self, group: int) -> Options:
        return self._metadata_options if group == METADATA_GROUP else self._partition_options

    def _deliver(self, m: Message) -> None:
        self.node.on_message(m)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> int:
        """Open every group, take over the engine's write paths, listen; the bound port."""
        e = self.engine
        self.node.add_group(METADATA_GROUP, self.metadata_machine, fsync=True)
        for t in e.metadata.all_topics():
            self._created(t, t.partitions)
        e.metadata.create_listeners.append(self._created)
        e.metadata.delete_listeners.append(self._deleted)
        e.commands.consensus = self._propose
        e.cluster = self
        e.data.cluster = self
        e.metadata.cluster = self
        e.replicated.cluster = self
        port = await self.bus.start(self.me.ip, self.me.tcp_replica)
        self.node.start()
        self._caught_up = asyncio.get_running_loop().create_task(self._log_caught_up())
        log.info("cluster %r: replica %d of %d, replica port %s:%d", self.settings.name,
                 self.replica_id, len(self.settings.nodes), self.me.ip, port)
        return port

    async def _log_caught_up(self) -> None:
        """Log once how long after the start the metadata replica was first current (until
        then both doors' metadata reads wait for the read fence)."""
        started = time.monotonic()
        await self.node.wait_current(METADATA_GROUP, None)
        r = self.node.groups[METADATA_GROUP].replica
        log.info("cluster: metadata current at op %d, %.2f s after the start", r.commit_min,
                 time.monotonic() - started)

    async def close(self) -> None:
        if self._caught_up is not None:
            self._caught_up.cancel()
        self._log_lateness()
        await self.bus.close()
        await self.node.close()

    def _log_lateness(self) -> None:
        """How late the 10 ms ticks came: a stalled loop delays heartbeats and timeouts alike,
        so a stall near `heartbeat_timeout` would fake a dead primary."""
        late = self.node.lateness_ms()
        if late:
            log.info("cluster: tick lateness over %d ticks: p50 %.2f ms, p99 %.2f ms, "
                     "p99.9 %.2f ms, max %.2f ms", late["ticks"], late["p50"], late["p99"],
                     late["p999"], late["max"])

    # -- groups follow metadata --------------------------------------------------------------
    def _created(self, t: Topic, parts: Sequence[Partition]) -> None:
        for p in parts:
            self._add_partition(t, p)

    def _add_partition(self, t: Topic, p: Partition) -> None:
        group = partition_group(t.stream_id, t.id, p.id)
        fsync = bool(t.options.enforce_fsync)
        listeners = self.engine.data.append_listeners

        def appended(base: int, count: int, t: Topic = t, pid: int = p.id) -> None:
            for listener in listeners:
                listener(t, pid)

        self.node.add_group(group, psm.PartitionMachine(p.log, fsync, appended), fsync)

    def _deleted(self, stream_name: str, t: Topic, parts: Sequence[Partition]) -> None:
        for p in parts:
            self.node.remove_group(partition_group(t.stream_id, t.id, p.id))

    # -- writes ----------------------------------------------------------------------------
    async def _submit(self, group: int, operation: int, body: bytes,
                      forward: bool | None = None) -> bytes:
        try:
            return await self.node.submit(group, operation, body,
                                          view.FORWARD.get() if forward is None else forward)
        except node_mod.NotPrimary as e:
            raise view.NotLeader(e.primary) from None
        except node_mod.OutcomeUnknown as e:
            raise view.OutcomeUnknown(str(e)) from None

    async def _propose(self, cmd: MetadataCommand) -> object:
        reply = await self._submit(METADATA_GROUP, COMMAND,
                                   json.dumps(cmd, separators=(",", ":")).encode())
        return reply_result(self.metadata_machine, reply)

    async def replicate(self, body: dict[str, Any]) -> object:
        reply = await self._submit(METADATA_GROUP, STATE,
                                   json.dumps(body, separators=(",", ":")).encode())
        return reply_result(self.metadata_machine, reply)

    async def _partition_op(self, stream_id: int, topic_id: int, partition_id: int,
                            operation: int, body: bytes) -> tuple[int, int]:
        reply = await self._submit(partition_group(stream_id, topic_id, partition_id),
                                   operation, body)
        return psm.parse_reply(reply)

    def append_body(self, encoding: int, batch: bytes | bytearray | memoryview, count: int,
                    max_timestamp_ms: int = 0,
                    log_append_time: bool = False) -> tuple[int, bytes]:
        operation = psm.APPEND_IGGY if encoding == ENCODING_IGGY else psm.APPEND_KAFKA
        return operation, psm.append_body(operation, batch, count, max_timestamp_ms,
                                          log_append_time)

    async def append(self, stream_id: int, topic_id: int, partition_id: int, operation: int,
                     body: bytes) -> int:
        return (await self._partition_op(stream_id, topic_id, partition_id, operation,
                                         body))[1]

    async def confirm(self, stream_id: int, topic_id: int, partition_id: int) -> None:
        # never forwarded: a backup's barrier committed by the primary would prove nothing
        await self._submit(partition_group(stream_id, topic_id, partition_id), psm.BARRIER,
                           b"", forward=False)

    async def delete_records(self, stream_id: int, topic_id: int, partition_id: int,
                             offset: int) -> int | None:
        """The new log start offset, None when `offset` is past the end."""
        status, start = await self._partition_op(stream_id, topic_id, partition_id,
                                                 psm.DELETE_RECORDS, _Q.pack(offset))
        return start if status == psm.OK else None

    async def purge(self, stream_id: int, topic_id: int, partition_id: int) -> None:
        await self._partition_op(stream_id, topic_id, partition_id, psm.PURGE, b"")

    async def archived(self, stream_id: int, topic_id: int, partition_id: int,
                       record: bytes) -> None:
        await self._partition_op(stream_id, topic_id, partition_id, psm.ARCHIVED, record)

    async def retention(self, stream_id: int, topic_id: int, partition_id: int,
                        expiry_us: int, max_bytes: int | None) -> int:
        return (await self._partition_op(stream_id, topic_id, partition_id, psm.RETENTION,
                                         _QQ.pack(expiry_us, max_bytes or 0)))[1]

    async def delete_segments(self, stream_id: int, topic_id: int, partition_id: int,
                              count: int) -> int:
        return (await self._partition_op(stream_id, topic_id, partition_id,
                                         psm.DELETE_SEGMENTS, _Q.pack(count)))[1]

    # -- queries ---------------------------------------------------------------------------
    def nodes(self) -> list[view.ClusterNode]:
        return [view.ClusterNode(n.replica_id, n.name, n.ip, n.tcp, n.kafka, n.http)
                for n in self.settings.nodes]

    def metadata_leader(self) -> int | None:
        return self.node.primary(METADATA_GROUP)

    def metadata_current(self) -> bool:
        return self.node.current(METADATA_GROUP)

    async def metadata_fence(self, timeout: float = view.READ_FENCE) -> bool:
        return await self.node.wait_current(METADATA_GROUP, timeout)

    async def leaders_fence(self, partitions: Sequence[tuple[int, int, int]],
                            timeout: float = view.READ_FENCE) -> bool:
        groups = [partition_group(*key) for key in partitions]
        primary, me = self.node.primary, self.replica_id
        return await self.node.wait_until(
            lambda: all((p := primary(g)) is not None and (p != me or self.leased())
                        for g in groups), timeout)

    def leased(self) -> bool:
        """A quorum, this node included, heard within the heartbeat timeout (through the bus
        keepalive every link hears something each commit broadcast interval): a primary
        without it is probably cut off, and the doors stop naming it (Leadership.leased)."""
        heard = len(self.bus.heard(self.settings.timing.heartbeat_timeout * TICK)) + 1
        return heard > len(self.settings.nodes) // 2

    def partition(self, stream_id: int, topic_id: int, partition_id: int) -> view.Leadership:
        group = partition_group(stream_id, topic_id, partition_id)
        rt = self.node.groups.get(group)
        if rt is None:
            return view.Leadership(None, 0, ())
        leader = self.node.primary(group)
        # VSR has no ISR (any quorum commits); for admin tools: on the leader, the backups
        # that acknowledged within a pipeline of the commit point in this view, and those
        # linked that had nothing to acknowledge yet; elsewhere the live links as seen here
        r = rt.replica
        linked = set(self.bus.linked())
        if leader == self.replica_id:
            in_sync = r.caught_up(r.options.pipeline_max) | (linked - set(r.acked_op))
        else:
            in_sync = {self.replica_id, *linked}
        if leader is not None:
            in_sync.add(leader)
        return view.Leadership(leader, r.view, tuple(sorted(in_sync)), r.settled,
                               leader != self.replica_id or self.leased())

    def lateness_ms(self) -> dict[str, float]:
        return self.node.lateness_ms()
