"""Shard processes of one server (docs/sharding.md).

Shard 0 is the process `pyggy-server` started: it holds the data-directory lock, owns the
metadata (the state log) and starts shards 1..N-1 as child processes (`pyggy.shards.child`).
Every shard opens only the partitions `rule.owner` gives it and listens on the same ports
(SO_REUSEPORT). Shards talk over Unix sockets (`channel.Channel`):

- a request for another shard's partition is forwarded to its owner with the batch as it
  arrived, and answered from the owner's reply (`OPS` names every forwarded operation);
- a metadata command proposed on shard k > 0 is sent to shard 0, which logs and applies it
  and broadcasts it (APPLY, numbered) to every other shard, which applies it in that order;
  the proposer answers once it applied its own command;
- Iggy consumer-group membership is shard 0's too: a join or leave on shard k > 0 is done
  there, and the group's new membership goes to every shard in the same numbered broadcast,
  so a membership is seen in the same order as the metadata commands that rebalance it;
- a consumer-offset request for another shard's partition is done by its owner;
- a native connection whose data requests keep going to one other shard is handed to that
  shard, socket and session (handoff.py);
- a shard exiting, or a channel to shard 0 closing, stops the whole server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pyggy.core.engine import LogEngine, PollResult
from pyggy.core.engine.consumers import OffsetAnswer
from pyggy.core.engine.partitions import elsewhere
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.metadata.commands import MetadataCommand
from pyggy.core.model import ConsumerGroup, Identifier, Topic
from pyggy.core.records import kafka_batch
from pyggy.native_wire.context import ROUTE
from pyggy.native_wire.handlers.system import process_memory
from pyggy.transport.connection import DOOR

from . import rule
from .channel import Channel, Reply, connect
from .child import SHARD_ENV
from .counters import ShardCounters, door_of
from .frames import Buffer

if TYPE_CHECKING:
    from pyggy.kafka_wire.context import KafkaServer
    from pyggy.native_wire.context import NativeServer
    from pyggy.transport import Listener

    from .handoff import Handoff

log = logging.getLogger(__name__)

STOP_TIMEOUT = 15.0  # seconds a child has to stop after SIGTERM before it is killed
RECENT = 1024  # applied metadata results kept for proposers whose reply came after the APPLY


class ShardRuntime:
    """This process's place among the shards: `index` of `count`, channels to the others."""

    def __init__(self, index: int, count: int, socket_dir: Path) -> None:
        self.index, self.count, self.socket_dir = index, count, socket_dir
        self.engine: LogEngine | None = None
        self.kafka: KafkaServer | None = None
        self.out: dict[int, Channel] = {}  # channels this shard opened, by peer
        self.connecting: dict[int, asyncio.Task[Channel]] = {}
        self.incoming: set[Channel] = set()
        self.server: asyncio.AbstractServer | None = None
        self.stop = asyncio.Event()
        self.failed = False
        # metadata: shard 0 numbers the commands it broadcasts; the others apply them in order
        self.seq = 0
        self.results: collections.OrderedDict[int, object] = collections.OrderedDict()
        self.waiting: dict[int, asyncio.Future[object]] = {}
        self.background: set[asyncio.Task[None]] = set()  # group leaves of ended sessions
        # shard 0: the children, and the barrier their `ready` requests wait at
        self.children: list[asyncio.subprocess.Process] = []
        self.ready: set[int] = set()
        self.all_ready = asyncio.Event()
        # each shard's own Kafka port (kafka_broker_per_shard), by shard; empty when off
        self.kafka_ports: list[int] = []
        self.listeners: list[Listener] = []  # this shard's own Kafka listener
        self.serving: set[int] = set()
        self.all_serving = asyncio.Event()
        self.handoff: Handoff | None = None  # native connections moving to their owner
        self.native: NativeServer | None = None  # its sessions: `stats`' clients count
        self.counters = ShardCounters()  # what crosses shards, counted here (counters.py)
        # every other shard's counters, by shard, as the last statistics request got them
        self.peer_counters: dict[int, dict[str, Any]] = {}

    @classmethod
    def from_env(cls) -> tuple[ShardRuntime, tuple[int, int]] | None:
        """A child's runtime and the (tcp, kafka) ports shard 0 bound, from its environment."""
        spec = os.environ.get(SHARD_ENV)
        if not spec:
            return None
        index, count, rest = spec.split("/", 2)
        directory, tcp, kafka, own = rest.rsplit("/", 3)
        rt = cls(int(index), int(count), Path(directory))
        rt.kafka_ports = [int(p) for p in own.split(",") if p]
        return rt, (int(tcp), int(kafka))

    def owns(self, stream_id: int, topic_id: int, partition_id: int) -> bool:
        return rule.owner(stream_id, topic_id, partition_id, self.count) == self.index

    def path(self, index: int) -> str:
        return str(self.socket_dir / f"shard-{index}.sock")

    def handoff_path(self, index: int) -> str:
        return str(self.socket_dir / f"shard-{index}.handoff")

    def start_handoff(self, native: NativeServer, listener: Listener, max_frame: int) -> None:
        """Native connections of `listener` move to the shard owning their partitions
        (handoff.py); this shard adopts those the others send."""
        from .handoff import Handoff
        self.handoff = Handoff(self.index, [self.handoff_path(i) for i in range(self.count)],
                               native, listener, max_frame, self.counters)
        native.handoff = self.handoff

    # -- wiring ----------------------------------------------------------------------------
    def prepare(self, engine: LogEngine) -> None:
        """Before `engine.open`: open only owned partitions; shards > 0 log nothing."""
        self.engine = engine
        engine.files.owns = self.owns
        if self.index:
            engine.files.manages_dirs = False
            engine.commands.logged = False

    def attach(self, engine: LogEngine) -> None:
        """After `engine.open`: forward what another shard owns, route metadata via shard 0."""
        engine.data.shards = engine.consumers.owners = engine.metadata.shards = self
        if self.index == 0:
            apply = engine.commands.applier

            def apply_and_broadcast(cmd: MetadataCommand) -> object:
                result = apply(cmd)
                self.broadcast({"cmd": cmd})
                return result
            engine.commands.applier = apply_and_broadcast
            engine.consumers.changed = self._members_changed
        else:
            engine.commands.consensus = self._propose
            engine.consumers.route = self

    def broadcast(self, entry: dict[str, Any]) -> None:
        """Shard 0: the next numbered entry to every other shard (they apply it in order)."""
        self.seq += 1
        for channel in self.out.values():
            channel.send_apply({"seq": self.seq, **entry})

    async def start(self) -> None:
        """Listen on this shard's socket (the directory exists: shard 0 made it)."""
        self.server = await asyncio.get_running_loop().create_unix_server(
            self._accept, self.path(self.index))

    def _accept(self) -> Channel:
        channel = Channel(self.handle, self._apply, self._lost)
        self.incoming.add(channel)
        return channel

    def _lost(self, channel: Channel) -> None:
        self.incoming.discard(channel)
        for peer, c in list(self.out.items()):
            if c is channel:
                del self.out[peer]
        if not self.stop.is_set():
            log.error("shard %d: its channel to another shard closed (that shard process "
                      "exited?): stopping the server", self.index)
            self.failed = True
            self.stop.set()

    async def channel(self, peer: int) -> Channel:
        """The channel to shard `peer` (opened on first use)."""
        c = self.out.get(peer)
        if c is not None:
            return c
        task = self.connecting.get(peer)
        if task is None:
            task = self.connecting[peer] = asyncio.get_running_loop().create_task(
                self._connect(peer))
        try:
            return await task
        finally:
            self.connecting.pop(peer, None)

    async def _connect(self, peer: int) -> Channel:
        c = self.out[peer] = await connect(self.path(peer), self.handle, self._apply,
                                           self._lost)
        return c

    async def call(self, peer: int, meta: dict[str, Any], payload: Buffer = b""
                   ) -> tuple[dict[str, Any], memoryview]:
        return await (await self.channel(peer)).request(meta, payload)

    async def owner_call(self, t: Topic, partition_id: int, meta: dict[str, Any],
                         payload: Buffer = b"") -> tuple[dict[str, Any], memoryview]:
        door = door_of(DOOR.get())
        meta.update(stream=t.stream_id, topic=t.id, partition=partition_id, door=door)
        self.counters.forwarded_out[door] += 1
        peer = rule.owner(t.stream_id, t.id, partition_id, self.count)
        route = ROUTE.get()
        if route is not None:  # a native request: where its data went (handoff.py)
            route[1] = peer
        return await self.call(peer, meta, payload)

    # -- metadata --------------------------------------------------------------------------
    async def _propose(self, cmd: MetadataCommand) -> object:
        """Shard k > 0: shard 0 logs and broadcasts `cmd`; the result of applying it here."""
        reply, _ = await self.call(0, {"op": "propose", "cmd": cmd})
        return await self._applied(int(reply["seq"]))

    async def _applied(self, seq: int) -> object:
        """Shard k > 0: once broadcast entry `seq` is applied here, its result (raised if an
        IggyError)."""
        if seq <= self.seq and seq not in self.results:
            return None  # applied, its result dropped or none: a membership entry
        if seq in self.results:
            result = self.results[seq]
        else:
            fut = self.waiting.get(seq)  # several may wait for one entry (a no-op change)
            if fut is None:
                fut = self.waiting[seq] = asyncio.get_running_loop().create_future()
            result = await asyncio.shield(fut)
        if isinstance(result, IggyError):
            raise result
        return result

    def _apply(self, meta: dict[str, Any]) -> None:
        """Shard k > 0: one command of shard 0's broadcast, in order."""
        assert self.engine is not None
        seq = int(meta["seq"])
        if seq != self.seq + 1:
            log.error("shard %d: metadata entry %d after %d: stopping", self.index, seq,
                      self.seq)
            self.failed = True
            self.stop.set()
            return
        self.seq = seq
        result: object = None
        try:
            if "cmd" in meta:
                result = self.engine.commands.applier(cast(MetadataCommand, meta["cmd"]))
            else:
                s, t, g, generation, members = meta["members"]
                self.engine.consumers.set_members(int(s), int(t), int(g), int(generation),
                                                  [(int(m), parts) for m, parts in members])
        except IggyError as e:  # shard 0 applied it to the same state: this is a bug
            log.error("shard %d: metadata entry %d failed here: %s", self.index, seq, e)
            result = e
        fut = self.waiting.pop(seq, None)
        if fut is not None:
            fut.set_result(result)
        else:
            self.results[seq] = result
            while len(self.results) > RECENT:
                self.results.popitem(last=False)

    # -- Iggy consumer groups and offsets (core/engine/consumers.py GroupRoute) --------------
    def _members_changed(self, t: Topic, g: ConsumerGroup) -> None:
        """Shard 0 changed a group's membership: every shard takes it, in order."""
        self.broadcast({"members": [t.stream_id, t.id, g.id, g.generation,
                                    [[m.id, m.partitions] for m in g.members.values()]]})

    async def members(self, op: str, t: Topic, group_id: int, member_id: int) -> None:
        reply, _ = await self.call(0, {"op": "iggy_members", "change": op, "stream": t.stream_id,
                                       "topic": t.id, "group": group_id, "member": member_id})
        await self._applied(int(reply["seq"]))

    def gone(self, member_id: int) -> None:
        async def leave() -> None:
            with contextlib.suppress(IggyError):  # the server is stopping
                await self.call(0, {"op": "iggy_members", "change": "gone",
                                    "member": member_id})
        task = asyncio.get_running_loop().create_task(leave())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def offset(self, t: Topic, partition_id: int, op: str, kind: int,
                     consumer: Identifier, args: dict[str, Any]) -> OffsetAnswer:
        reply, _ = await self.owner_call(t, partition_id, {
            "op": "iggy_offset", "do": op, "kind": kind, "consumer": consumer, **args})
        found = reply.get("found")
        return None if found is None else (int(found[0]), int(found[1]), int(found[2]))

    async def append_kafka(self, t: Topic, partition_id: int, batch: Buffer,
                           log_append_time: bool) -> int:
        reply, _ = await self.owner_call(t, partition_id, {
            "op": "kafka_append", "log_append_time": log_append_time}, batch)
        return int(reply["base"])

    async def caught_up(self) -> None:
        """Shard k > 0: until every broadcast entry shard 0 had sent when asked is applied."""
        if self.index:
            reply, _ = await self.call(0, {"op": "seq"})
            await self._applied(int(reply["seq"]))

    # -- maintenance and statistics of partitions (core/engine/metadata.py, data.py) ---------
    async def maintain(self, t: Topic, partition_id: int, op: str, arg: int = 0) -> int:
        reply, _ = await self.owner_call(t, partition_id, {"op": "iggy_maintain", "do": op,
                                                           "arg": arg})
        return int(reply["result"])

    async def refresh_stats(self, t: Topic | None) -> None:
        """Every other shard's figures of the partitions it owns (of `t`, or all) into their
        stand-ins here: one request per shard, asked at once."""
        assert self.engine is not None
        ask: dict[str, Any] = {"op": "stats"}
        if t is not None:
            ask.update(stream=t.stream_id, topic=t.id)
        peers = [peer for peer in range(self.count) if peer != self.index]
        replies = await asyncio.gather(*(self.call(peer, dict(ask)) for peer in peers))
        read = written = clients = memory = threads = 0
        for peer, (reply, _) in zip(peers, replies, strict=True):
            read, written = read + int(reply["read"]), written + int(reply["written"])
            if t is None:  # the whole server's: its processes and their counters too
                clients += int(reply["clients"])
                memory += int(reply["memory"])
                threads += int(reply["threads"])
                self.peer_counters[peer] = reply["counters"]
            for s, tid, pid, *figures in reply["parts"]:
                topic = self.engine.metadata.get_topic(int(s), int(tid))
                if topic is None or not 0 <= pid < len(topic.partitions):
                    continue  # deleted meanwhile
                plog = topic.partitions[pid].log
                if elsewhere(plog):
                    (plog.next_offset, plog.start_offset, plog.size_bytes,
                     plog.messages_count, plog.segments_count) = figures
        stats = self.engine.data.stats
        stats.elsewhere_read, stats.elsewhere_written = read, written
        if t is None:
            stats.elsewhere_clients, stats.elsewhere_memory = clients, memory
            stats.elsewhere_threads = threads

    def all_counters(self) -> list[tuple[int, dict[str, Any]]]:
        """(shard, counters) of every shard: this one's now, the others' as last asked
        (`refresh_stats`), in shard order."""
        rows = {**self.peer_counters, self.index: self.counters.snapshot()}
        return sorted(rows.items())

    # -- requests from other shards --------------------------------------------------------
    async def handle(self, meta: dict[str, Any], payload: memoryview) -> Reply:
        op = OPS.get(str(meta.get("op")))
        if op is None:
            raise IggyError(ErrorCode.INVALID_COMMAND, f"unknown shard op {meta.get('op')}")
        door = meta.get("door")  # a request for a partition of this shard's (owner_call)
        if door is not None:
            forwarded_in = self.counters.forwarded_in
            if door in forwarded_in:
                forwarded_in[door] += 1
        return await op(self, meta, payload)

    def topic(self, meta: dict[str, Any]) -> Topic:
        assert self.engine is not None
        t = self.engine.metadata.topic(int(meta["stream"]), int(meta["topic"]))
        pid = int(meta["partition"])
        if not 0 <= pid < len(t.partitions) or elsewhere(t.partitions[pid].log):
            raise IggyError(ErrorCode.PARTITION_NOT_FOUND, f"partition {pid} not on shard "
                            f"{self.index}")
        return t

    # -- the Iggy door's data path (core/engine/data.py ShardRoute) -------------------------
    async def append_iggy(self, t: Topic, partition_id: int, batch: Buffer,
                          messages_count: int | None) -> int:
        reply, _ = await self.owner_call(t, partition_id, {"op": "iggy_append",
                                                           "count": messages_count}, batch)
        return int(reply["base"])

    async def poll(self, t: Topic, partition_id: int, strategy: int, value: int, count: int,
                   consumer_kind: int, consumer_id: Identifier, auto_commit: bool
                   ) -> PollResult:
        reply, body = await self.owner_call(t, partition_id, {
            "op": "iggy_poll", "strategy": strategy, "value": value, "count": count,
            "kind": consumer_kind, "consumer": consumer_id, "auto_commit": auto_commit})
        return PollResult(partition_id, int(reply["current"]), int(reply["count"]),
                          [body] if len(body) else [])

    # -- processes (shard 0) ---------------------------------------------------------------
    async def spawn(self, ports: tuple[int, int]) -> None:
        """Start shards 1..N-1 with this process's arguments; return once each opened its
        engine and connected (they start listening then)."""
        for index in range(1, self.count):
            env = dict(os.environ)
            own = ",".join(map(str, self.kafka_ports))
            env[SHARD_ENV] = (f"{index}/{self.count}/{self.socket_dir}/{ports[0]}/{ports[1]}"
                              f"/{own}")
            # a session of its own: a terminal's Ctrl-C reaches shard 0, which stops them
            self.children.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "pyggy.shards.child", *sys.argv[1:], env=env,
                start_new_session=True))
        waits = [asyncio.ensure_future(p.wait()) for p in self.children]
        barrier = asyncio.ensure_future(self.all_ready.wait())
        done, _ = await asyncio.wait([barrier, *waits], return_when=asyncio.FIRST_COMPLETED)
        if barrier not in done:
            barrier.cancel()
            await self.close()  # the others too
            raise IggyError(ErrorCode.ERROR, "a shard process exited while starting")
        for index, p in enumerate(self.children, 1):
            asyncio.get_running_loop().create_task(self._watch(index, p))

    async def listening(self) -> None:
        """This shard's listeners are up: a child tells shard 0; shard 0 waits for all (or
        a failure) and logs that the server is serving."""
        if self.index:
            await self.call(0, {"op": "listening", "shard": self.index})
            return
        waits = [asyncio.ensure_future(e.wait()) for e in (self.all_serving, self.stop)]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        if self.all_serving.is_set():
            log.info("shards: %d processes serving (docs/sharding.md)", self.count)

    async def _watch(self, index: int, proc: asyncio.subprocess.Process) -> None:
        code = await proc.wait()
        if not self.stop.is_set():
            log.error("shard %d (pid %d) exited with code %s: stopping the server", index,
                      proc.pid, code)
            self.failed = True
            self.stop.set()

    async def close(self) -> None:
        """Stop the children (shard 0), close the channels and the socket."""
        self.stop.set()
        for p in self.children:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for p in self.children:
            try:
                await asyncio.wait_for(p.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.error("shard process %d did not stop: killing it", p.pid)
                p.kill()
                await p.wait()
        if self.handoff is not None:
            self.handoff.close()
        for c in [*self.out.values(), *self.incoming]:
            c.close()
        if self.server is not None:
            self.server.close()
        # each shard removes its socket, the last one the directory; shard 0, whose children
        # have exited by now, also what a killed one left (and if shard 0 is killed, its
        # own socket is gone already: removed once every child had connected)
        for index in range(self.count) if self.index == 0 else (self.index,):
            for path in (self.path(index), self.handoff_path(index)):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(self.socket_dir)


# -- operations one shard asks of another ----------------------------------------------------
async def _ready(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    """Shard 0: a child opened its engine; all wait here until every child has."""
    index = int(meta["shard"])
    rt.ready.add(index)
    if len(rt.ready) == rt.count - 1:
        for peer in rt.ready:
            await rt.channel(peer)  # the broadcast goes over these, from the first command
        rt.all_ready.set()
        with contextlib.suppress(OSError):  # every child is connected: nobody opens it again
            os.unlink(rt.path(0))
    await rt.all_ready.wait()
    return {}, b""


async def _listening(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    rt.serving.add(int(meta["shard"]))
    if len(rt.serving) == rt.count - 1:
        rt.all_serving.set()
    return {}, b""


async def _propose(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    assert rt.engine is not None and rt.index == 0
    await rt.engine.commands.propose(cast(MetadataCommand, meta["cmd"]))
    return {"seq": rt.seq}, b""


async def _iggy_append(rt: ShardRuntime, meta: dict[str, Any], payload: memoryview) -> Reply:
    assert rt.engine is not None
    t = rt.topic(meta)
    count = meta.get("count")
    _, _, _, base = await rt.engine.data.append(  # stamped in place: the view is writable
        t.stream_id, t.id, (2, int(meta["partition"])), payload,  # 2: PARTITION_ID
        None if count is None else int(count))
    return {"base": base}, b""


async def _iggy_poll(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    assert rt.engine is not None
    t = rt.topic(meta)
    result = await rt.engine.data.poll_async(
        t.stream_id, t.id, int(meta["partition"]), int(meta["strategy"]), int(meta["value"]),
        int(meta["count"]), int(meta["kind"]), meta["consumer"], bool(meta["auto_commit"]))
    return {"current": result.current_offset, "count": result.count}, result.chunks


async def _iggy_members(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    """Shard 0: a group membership change asked by another shard (broadcast on change)."""
    assert rt.engine is not None and rt.index == 0
    consumers, member = rt.engine.consumers, int(meta["member"])
    change = meta["change"]
    if change == "gone":
        consumers.member_gone(member)
    else:
        stream, topic, group = int(meta["stream"]), int(meta["topic"]), int(meta["group"])
        if change == "join":
            consumers.join_group(stream, topic, group, member)
        else:
            consumers.leave_group(stream, topic, group, member)
    return {"seq": rt.seq}, b""


async def _iggy_offset(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    """The owner of a partition: a consumer-offset request another shard received."""
    assert rt.engine is not None
    t = rt.topic(meta)
    consumers, pid = rt.engine.consumers, int(meta["partition"])
    kind, consumer, op = int(meta["kind"]), meta["consumer"], meta["do"]
    if op == "get":
        return {"found": consumers.get_offset(kind, consumer, t.stream_id, t.id, pid)}, b""
    if op == "store":
        await consumers.store_offset(kind, consumer, t.stream_id, t.id, pid,
                                     int(meta["offset"]), bool(meta["require_messages"]))
    else:
        await consumers.delete_offset(kind, consumer, t.stream_id, t.id, pid)
    return {}, b""


async def _iggy_maintain(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    """The owner of a partition: purge, delete segments or records, or fsync it."""
    assert rt.engine is not None
    t = rt.topic(meta)
    pid, op, arg, result = int(meta["partition"]), meta["do"], int(meta["arg"]), 0
    if op == "purge":
        rt.engine.files.purge_partition(t, pid)
    elif op == "delete_segments":
        await rt.engine.metadata.delete_segments(t.stream_id, t.id, pid, arg)
    elif op == "delete_records":
        result = await rt.engine.metadata.delete_records(t, pid, arg)
    elif op == "flush":
        rt.engine.data.flush(t, pid)
    else:
        raise IggyError(ErrorCode.INVALID_COMMAND, f"unknown maintenance {op}")
    return {"result": result}, b""


async def _stats(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    """This shard's figures of the partitions it owns (of one topic, or all): next offset,
    start offset, bytes, messages, segments; and the bytes it read and wrote."""
    assert rt.engine is not None
    metadata = rt.engine.metadata
    if "topic" in meta:
        one = metadata.get_topic(int(meta["stream"]), int(meta["topic"]))
        topics = [] if one is None else [one]
    else:
        topics = metadata.all_topics()
    parts = [[t.stream_id, t.id, p.id, p.log.next_offset, p.log.start_offset,
              p.log.size_bytes, p.log.messages_count, p.log.segments_count]
             for t in topics for p in t.partitions if not elsewhere(p.log)]
    stats = rt.engine.data.stats
    reply: dict[str, Any] = {"parts": parts, "read": stats.read_bytes,
                             "written": stats.written_bytes}
    if "topic" not in meta:  # the whole server's statistics: this process's part too
        reply.update(clients=0 if rt.native is None else len(rt.native.sessions),
                     memory=process_memory(), threads=threading.active_count(),
                     counters=rt.counters.snapshot())
    return reply, b""


async def _seq(rt: ShardRuntime, meta: dict[str, Any], _: memoryview) -> Reply:
    """Shard 0: the number of the last entry it broadcast."""
    return {"seq": rt.seq}, b""


async def _kafka_append(rt: ShardRuntime, meta: dict[str, Any], payload: memoryview) -> Reply:
    """The owner of a partition: a Kafka batch another shard made (a transaction marker),
    checked here as any batch is, then stored."""
    assert rt.engine is not None
    t = rt.topic(meta)
    try:
        info = kafka_batch.validate_batch(payload)
    except kafka_batch.KafkaBatchError as e:
        raise IggyError(ErrorCode.INVALID_FORMAT, str(e)) from None
    base = await rt.engine.data.append_kafka(t, int(meta["partition"]), payload, info,
                                             bool(meta["log_append_time"]))
    return {"base": base}, b""


Op = Callable[[ShardRuntime, dict[str, Any], memoryview], Awaitable[Reply]]
OPS: dict[str, Op] = {
    "ready": _ready,
    "listening": _listening,
    "propose": _propose,
    "iggy_append": _iggy_append,
    "iggy_poll": _iggy_poll,
    "iggy_members": _iggy_members,
    "iggy_offset": _iggy_offset,
    "iggy_maintain": _iggy_maintain,
    "stats": _stats,
    "seq": _seq,
    "kafka_append": _kafka_append,
}


def reserve_port(host: str, port: int) -> socket.socket:
    """A bound, not listening SO_REUSEPORT socket holding (host, port) (port 0: a free one)
    while the shards start; every shard then listens on its port with SO_REUSEPORT."""
    family, kind, proto, _, address = socket.getaddrinfo(host or None, port,
                                                         type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock
