"""Three pyggy nodes in one process: real engines and files, an in-memory replica bus."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyggy.cluster.node import Node
from pyggy.cluster.partition_sm import PartitionMachine
from pyggy.cluster.roster import METADATA_GROUP, partition_group
from pyggy.consensus.message import decode, encode
from pyggy.consensus.options import Options
from pyggy.core.engine import LogEngine

CLUSTER = bytes(range(16))
FAST = Options(pipeline_max=8, journal_slots=64, checkpoint_interval=16, prepare_max=1 << 20,
               commit_interval=5, heartbeat_timeout=60, prepare_retransmit=5,
               view_change_retransmit=5, view_change_status_timeout=40,
               request_start_view_interval=10, view_probe_attempts_max=3, repair_interval=10,
               repair_chunk_max=8)


class MemoryBus:
    """Delivers encoded messages on the next loop turn; `down` replicas send and get nothing."""

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}
        self.down: set[int] = set()

    def for_replica(self, me: int) -> Sender:
        return Sender(self, me)


class Sender:
    def __init__(self, bus: MemoryBus, me: int) -> None:
        self.bus, self.me = bus, me

    def send(self, replica: int, m) -> None:
        if self.me in self.bus.down or replica in self.bus.down:
            return
        raw = encode(m)
        asyncio.get_running_loop().call_soon(self._deliver, replica, raw)

    def _deliver(self, replica: int, raw: bytes) -> None:
        node = self.bus.nodes.get(replica)
        if node is not None and replica not in self.bus.down:
            node.on_message(decode(raw, 2 << 20))


class Member:
    """One node: its engine (one topic, `partitions` partitions) and its cluster runtime."""

    def __init__(self, root: Path, index: int, bus: MemoryBus, n: int = 3,
                 options: Options = FAST) -> None:
        self.root, self.index, self.bus, self.n = root, index, bus, n
        self.options = options

    async def start(self, partitions: int = 1, segment_size: int | None = None) -> Member:
        self.engine = LogEngine(self.root)
        self.engine.open(("iggy", "iggy"))
        if self.engine.metadata.get_stream("s") is None:
            await self.engine.metadata.create_stream("s")
            options = [] if segment_size is None else [
                ("segment_size", 12, segment_size.to_bytes(8, "little"))]
            await self.engine.metadata.create_topic("s", "t", partitions, options)
        self.topic = self.engine.metadata.topic("s", "t")
        self.node = Node(cluster=CLUSTER, replica=self.index, replica_count=self.n,
                         root=self.root / "cluster", bus=self.bus.for_replica(self.index),
                         options=lambda g: self.options)
        self.bus.nodes[self.index] = self.node
        for p in self.topic.partitions:
            group = partition_group(self.topic.stream_id, self.topic.id, p.id)
            self.node.add_group(group, PartitionMachine(p.log, False), False)
        self.node.start()
        return self

    def log(self, partition: int = 0):
        return self.topic.partitions[partition].log

    def replica(self, group: int):
        return self.node.groups[group].replica

    async def stop(self) -> None:
        await self.node.close()
        self.bus.nodes.pop(self.index, None)
        self.engine.close()


async def primary_of(members: list[Member], group: int, timeout: float = 20.0,
                     exclude: int | None = None) -> Member:
    """The member that is the group's primary in normal status, once the others agree."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        live = [m for m in members if m.index not in m.bus.down and m.index != exclude]
        views = {m.node.primary(group) for m in live}
        if len(views) == 1 and None not in views:
            (p,) = views
            for m in live:
                if m.index == p:
                    return m
        await asyncio.sleep(0.02)
    raise AssertionError(f"no primary for group {group:#x} within {timeout} s")


async def quiesce(members: list[Member], group: int, timeout: float = 20.0) -> int:
    """Wait until every live member executed the same op; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        live = [m for m in members if m.index not in m.bus.down]
        ops = {m.replica(group).commit_min for m in live}
        heads = {m.replica(group).commit_max for m in live}
        if len(ops) == 1 and ops == heads:
            return ops.pop()
        await asyncio.sleep(0.02)
    raise AssertionError("replicas did not converge")


def segment_files(member: Member, partition: int = 0) -> dict[str, bytes]:
    path = member.log(partition).path
    return {f.name: f.read_bytes() for f in sorted(path.iterdir())
            if f.suffix in (".log", ".index")}


__all__ = ["CLUSTER", "FAST", "METADATA_GROUP", "MemoryBus", "Member", "primary_of", "quiesce",
           "segment_files"]
