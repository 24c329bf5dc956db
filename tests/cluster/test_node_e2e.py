"""Three pyggy nodes in one process on loopback (real engines, files and replica bus): the
metadata group creates and deletes topics — with their partition groups and files — on every
node; a backup refuses and names the leader; appends through the engine's data path are
stamped by the partition's primary and stored byte-identically everywhere."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import pytest
from pyggy.cluster import metadata_transfer as mxfer
from pyggy.cluster.metadata_transfer import install_pending
from pyggy.cluster.roster import METADATA_GROUP, Node, partition_group
from pyggy.cluster.runtime import ClusterRuntime, ClusterSettings
from pyggy.consensus.message import Command, Message
from pyggy.consensus.options import Options
from pyggy.core.engine import LogEngine
from pyggy.core.engine.cluster import FORWARD, NotLeader
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.records import kafka_batch
from test_bus import free_ports

FAST = Options(heartbeat_timeout=100, commit_interval=10, prepare_retransmit=5,
              view_change_retransmit=10, view_change_status_timeout=100,
              request_start_view_interval=10, view_probe_attempts_max=3, repair_interval=10,
              repair_chunk_max=8)


async def start_cluster(tmp_path: Path, n: int = 3,
                        timing: Options = FAST) -> list[ClusterRuntime]:
    ports = free_ports(n)
    nodes = tuple(Node(f"n{i}", "127.0.0.1", i, tcp_replica=p) for i, p in enumerate(ports))
    runtimes = []
    for i in range(n):
        rt = runtime(tmp_path, nodes, i, timing)
        await rt.start()
        runtimes.append(rt)
    return runtimes


def runtime(tmp_path: Path, nodes: tuple[Node, ...], i: int, timing: Options) -> ClusterRuntime:
    engine = LogEngine(tmp_path / f"n{i}")
    engine.open(("iggy", "iggy"))
    return ClusterRuntime(engine, ClusterSettings("test", i, nodes, timing, key=b"k" * 32,
                                                  reconnect_period=0.05),
                          tmp_path / f"n{i}" / "cluster")


async def leader(runtimes: list[ClusterRuntime], group: int = METADATA_GROUP,
                 timeout: float = 20.0) -> ClusterRuntime:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        seen = {rt.node.primary(group) for rt in runtimes}
        if len(seen) == 1 and None not in seen:
            return runtimes[seen.pop()]
        await asyncio.sleep(0.02)
    raise AssertionError("no leader")


async def converged(runtimes: list[ClusterRuntime], group: int, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        reps = [rt.node.groups[group].replica for rt in runtimes if group in rt.node.groups]
        if len(reps) == len(runtimes) and len({(r.commit_min, r.commit_max) for r in reps}) \
                == 1 and reps[0].commit_min == reps[0].commit_max:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("groups did not converge")


def kafka(i: int) -> tuple[bytearray, kafka_batch.KafkaBatchInfo]:
    batch = kafka_batch.build_batch([(1_700_000_000_000, b"k", b"v%d" % i, [])])
    return batch, kafka_batch.validate_batch(batch)


def test_a_topic_made_on_the_leader_exists_everywhere_with_identical_segments(
        tmp_path: Path) -> None:
    async def main() -> None:
        runtimes = await start_cluster(tmp_path)
        try:
            boss = await leader(runtimes)
            backup = next(rt for rt in runtimes if rt is not boss)
            with pytest.raises(NotLeader) as refused:
                await backup.engine.metadata.create_stream("nope")
            assert refused.value.leader == boss.replica_id
            assert refused.value.code == ErrorCode.TRANSIENT_NOT_ACCEPTED
            s = await boss.engine.metadata.create_stream("orders")
            t = await boss.engine.metadata.create_topic("orders", "eu", 2)
            with pytest.raises(IggyError) as exists:  # refused the same way everywhere
                await boss.engine.metadata.create_stream("orders")
            assert exists.value.code == ErrorCode.STREAM_NAME_ALREADY_EXISTS
            await converged(runtimes, METADATA_GROUP)
            for rt in runtimes:
                topic = rt.engine.metadata.topic("orders", "eu")
                assert (topic.stream_id, topic.id, len(topic.partitions)) == (s.id, t.id, 2)
                for pid in (0, 1):
                    assert partition_group(s.id, t.id, pid) in rt.node.groups
            group = partition_group(s.id, t.id, 1)
            p_leader = await leader(runtimes, group)
            topic = p_leader.engine.metadata.topic("orders", "eu")
            bases = []
            for i in range(12):
                batch, info = kafka(i)
                bases.append(await p_leader.engine.data.append_kafka(topic, 1, batch, info))
            assert bases == list(range(12))
            other = next(rt for rt in runtimes if rt is not p_leader)
            batch, info = kafka(99)
            with pytest.raises(NotLeader):
                await other.engine.data.append_kafka(other.engine.metadata.topic(
                    "orders", "eu"), 1, batch, info)
            lead = p_leader.partition(s.id, t.id, 1)
            assert lead.leader == p_leader.replica_id and lead.in_sync == (0, 1, 2)
            await converged(runtimes, group)
            files = []
            for rt in runtimes:
                log = rt.engine.metadata.topic("orders", "eu").partitions[1].log
                files.append({f.name: f.read_bytes() for f in log.path.iterdir()
                              if f.suffix in (".log", ".index")})
                assert log.next_offset == 12
            assert files[0] and files[0] == files[1] == files[2]
            await boss.engine.metadata.delete_topic("orders", "eu")
            await converged(runtimes, METADATA_GROUP)
            for rt in runtimes:
                assert rt.engine.metadata.get_topic("orders", "eu") is None
                assert group not in rt.node.groups and not rt.node.group_dir(group).exists()
        finally:
            for rt in runtimes:
                await rt.close()
                rt.engine.close()

    asyncio.run(main())


def test_retention_is_an_op_of_the_partition_group_applied_by_every_replica(
        tmp_path: Path) -> None:
    async def main() -> None:
        runtimes = await start_cluster(tmp_path)
        try:
            boss = await leader(runtimes)
            s = await boss.engine.metadata.create_stream("logs")
            t = await boss.engine.metadata.create_topic("logs", "app", 1)
            await converged(runtimes, METADATA_GROUP)
            group = partition_group(s.id, t.id, 0)
            p_leader = await leader(runtimes, group)
            logs = [rt.engine.metadata.topic("logs", "app").partitions[0].log for rt in runtimes]
            for log in logs:
                log.options.segment_size = 1  # every append seals the segment before it
            topic = p_leader.engine.metadata.topic("logs", "app")
            for i in range(6):
                batch, info = kafka(i)
                await p_leader.engine.data.append_kafka(topic, 0, batch, info)
            await converged(runtimes, group)
            assert all(len(log.segments) == 6 for log in logs)
            assert await p_leader.engine.clean_replicated() == 0  # nothing expires by default
            for rt in runtimes:  # as an update of the topic's options would do everywhere
                rt.engine.metadata.topic("logs", "app").options.message_expiry = 1
            backup = next(rt for rt in runtimes if rt is not p_leader)
            assert await backup.engine.clean_replicated() == 0  # only the leader proposes
            assert all(len(log.segments) == 6 for log in logs)
            assert await p_leader.engine.clean_replicated() == 5  # the active segment stays
            await converged(runtimes, group)
            files = []
            for log in logs:
                assert log.start_offset == 5 and log.next_offset == 6
                files.append({f.name: f.read_bytes() for f in log.path.iterdir()
                              if f.suffix in (".log", ".index")})
            assert files[0] and files[0] == files[1] == files[2]
        finally:
            for rt in runtimes:
                await rt.close()
                rt.engine.close()

    asyncio.run(main())


def test_a_disk_error_applying_a_metadata_command_fences_the_metadata_replica(
        tmp_path: Path) -> None:
    """A real disk error (the state log's descriptors swapped for read-only ones: EBADF where
    a failing disk gives EIO) while a backup applies a committed command: it fences its
    metadata replica (cluster/node.py) instead of answering differently from the others."""

    async def main() -> None:
        runtimes = await start_cluster(tmp_path)
        try:
            boss = await leader(runtimes)
            await boss.engine.metadata.create_stream("first")
            await converged(runtimes, METADATA_GROUP)
            sick = next(rt for rt in runtimes if rt is not boss)
            state = sick.engine.commands.state
            writable = state.fds
            state.fds = [os.open(p, os.O_RDONLY) for p in (state.path, state.mirror)]
            await boss.engine.metadata.create_stream("second")  # committed by the other two
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            group = sick.node.groups[METADATA_GROUP]
            while group.fenced is None and loop.time() < deadline:
                await asyncio.sleep(0.02)
            assert group.fenced is not None
            assert sick.node.primary(METADATA_GROUP) is None
            assert sick.engine.metadata.get_stream("second") is None  # not applied half-way
            others = [rt for rt in runtimes if rt is not sick]
            await converged(others, METADATA_GROUP)
            assert all(rt.engine.metadata.get_stream("second") is not None for rt in others)
            for fd in state.fds:
                os.close(fd)
            state.fds = writable
        finally:
            for rt in runtimes:
                await rt.close()
                rt.engine.close()

    asyncio.run(main())


def test_a_backup_forwards_the_writes_of_a_door_that_asks_to_the_primary(
        tmp_path: Path) -> None:
    """With `FORWARD` set (as the Iggy door sets it), a backup's metadata command, append and
    consumer-state change go to the primary over the bus; each answers once the op executed on
    the backup itself (its result readable there at once). Without it (the Kafka door), the
    backup still refuses with NotLeader; a barrier (`confirm`) is never forwarded."""

    async def main() -> None:
        runtimes = await start_cluster(tmp_path)
        try:
            boss = await leader(runtimes)
            backup = next(rt for rt in runtimes if rt is not boss)
            with pytest.raises(NotLeader):
                await backup.engine.metadata.create_stream("refused")
            token = FORWARD.set(True)
            try:
                s = await backup.engine.metadata.create_stream("orders")
                t = await backup.engine.metadata.create_topic("orders", "eu", 1)
                assert backup.engine.metadata.topic("orders", "eu").id == t.id
                with pytest.raises(IggyError) as exists:  # the command's own reply, forwarded
                    await backup.engine.metadata.create_stream("orders")
                assert exists.value.code == ErrorCode.STREAM_NAME_ALREADY_EXISTS
                group = partition_group(s.id, t.id, 0)
                p_leader = await leader(runtimes, group)
                p_backup = next(rt for rt in runtimes if rt is not p_leader)
                topic = p_backup.engine.metadata.topic("orders", "eu")
                bases = []
                for i in range(20):  # more sessions than one node keeps: they are reused
                    batch, info = kafka(i)
                    bases.append(await p_backup.engine.data.append_kafka(topic, 0, batch, info))
                    assert topic.partitions[0].log.next_offset == i + 1  # applied here first
                assert bases == list(range(20))
                results = await asyncio.gather(*(
                    p_backup.engine.data.append_kafka(topic, 0, *kafka(100 + i))
                    for i in range(12)))
                assert sorted(results) == list(range(20, 32))
                # a barrier is never forwarded: only the leader itself proves it leads
                await p_leader.confirm(s.id, t.id, 0)
                with pytest.raises(NotLeader):
                    await p_backup.confirm(s.id, t.id, 0)
            finally:
                FORWARD.reset(token)
            with pytest.raises(NotLeader):
                await p_backup.engine.data.append_kafka(topic, 0, *kafka(999))
            await converged(runtimes, group)
            files = []
            for rt in runtimes:
                log = rt.engine.metadata.topic("orders", "eu").partitions[0].log
                assert log.next_offset == 32
                files.append({f.name: f.read_bytes() for f in log.path.iterdir()
                              if f.suffix in (".log", ".index")})
            assert files[0] and files[0] == files[1] == files[2]
        finally:
            for rt in runtimes:
                await rt.close()
                rt.engine.close()

    asyncio.run(main())


def test_a_metadata_replica_behind_every_journal_catches_up_by_state_transfer(
        tmp_path: Path) -> None:
    """A node restarted after the others moved past their metadata journals (128 slots here)
    and stored consumer offsets fetches the metadata checkpoint (state log and consumer-state
    stores) instead of joining with a stale state: meanwhile it neither votes nor
    acknowledges (no primary seen there, nothing half-installed), the others and the node's
    partition groups go on; once it is staged the runtime asks for a restart, which installs
    it before the engine opens, and the node ends with the others' streams and offsets and
    applies what commits next."""

    async def main() -> None:
        timing = dataclasses.replace(FAST, journal_slots=128, checkpoint_interval=32,
                                     pipeline_max=8)
        runtimes = await start_cluster(tmp_path, timing=timing)
        try:
            boss = await leader(runtimes)
            s = await boss.engine.metadata.create_stream("orders")
            t = await boss.engine.metadata.create_topic("orders", "eu", 1)
            await converged(runtimes, METADATA_GROUP)
            group = partition_group(s.id, t.id, 0)
            p_leader = await leader(runtimes, group)
            topic = p_leader.engine.metadata.topic("orders", "eu")
            for i in range(3):
                await p_leader.engine.data.append_kafka(topic, 0, *kafka(i))
            away = next(i for i, rt in enumerate(runtimes) if rt is not boss)
            nodes = runtimes[away].settings.nodes
            await runtimes[away].close()
            runtimes[away].engine.close()
            for k in range(150):
                await boss.engine.metadata.create_stream(f"s{k}")
            for consumer in range(1, 6):
                await boss.engine.consumers.store_offset(1, consumer, "orders", "eu", 0,
                                                         consumer % 3)
            await boss.engine.metadata.delete_stream("s3")
            runtimes[away] = runtime(tmp_path, nodes, away, timing)
            back = runtimes[away]
            restarts: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            back.restart = restarts.set_result
            await back.start()
            why = await asyncio.wait_for(restarts, 30)
            assert "metadata checkpoint" in why
            # waiting for the restart: no votes, no acknowledgements, no requests admitted
            assert back.node.groups[METADATA_GROUP].fenced is not None
            assert back.node.primary(METADATA_GROUP) is None
            with pytest.raises(NotLeader):
                await back.engine.metadata.create_stream("refused")
            assert back.engine.metadata.get_stream("s0") is None  # nothing half-installed
            others = [rt for rt in runtimes if rt is not back]
            await boss.engine.metadata.create_stream("after")  # the other two go on
            await converged(others, METADATA_GROUP)
            await back.close()  # the restart the runtime asked for
            back.engine.close()
            assert install_pending(tmp_path / f"n{away}") is not None
            runtimes[away] = back = runtime(tmp_path, nodes, away, timing)
            await back.start()
            await boss.engine.metadata.create_stream("later")
            await converged(runtimes, METADATA_GROUP)
            names = {rt.replica_id: sorted(x.name for x in rt.engine.metadata.meta.streams
                                           .values()) for rt in runtimes}
            assert names[away] == names[boss.replica_id]
            assert "later" in names[away] and "s3" not in names[away]
            for consumer in range(1, 6):
                got = back.engine.consumers.get_offset(1, consumer, "orders", "eu", 0)
                assert got is not None and got[2] == consumer % 3
            assert back.node.primary(METADATA_GROUP) == boss.replica_id
            await converged(runtimes, group)  # its partition group went on throughout
            assert back.engine.metadata.topic("orders", "eu").partitions[0].log.next_offset == 3
        finally:
            for rt in runtimes:
                await rt.close()
                rt.engine.close()

    asyncio.run(main())


def test_the_metadata_state_is_served_from_links_with_its_reads_off_the_loop(
        tmp_path: Path) -> None:
    """The serving side of the metadata state transfer on a real node: a manifest request is
    answered BUILDING while a thread computes the manifest, then the manifest; a chunk is read
    on a thread and matches it; a request for a newer checkpoint drops the bundle (its hard
    links go) and snapshots again under a directory of its own; closing removes the rest.
    The node's answers are observed by wrapping its bus's `send`."""

    async def main() -> None:
        runtimes = await start_cluster(tmp_path)
        try:
            boss = await leader(runtimes)
            await boss.engine.metadata.create_stream("a")
            node = boss.node
            asker = next(rt.replica_id for rt in runtimes if rt is not boss)
            answers: list[Message] = []
            send = node.bus.send

            def observe(replica: int, m: Message) -> None:
                if m.command == Command.SEGMENT_CHUNK:
                    answers.append(m)
                else:
                    send(replica, m)

            node.bus.send = observe  # type: ignore[method-assign]

            def ask(checkpoint: int, segment: int = 0, entry: int = 0) -> None:
                node.on_message(Message(Command.REQUEST_SEGMENT, cluster=node.cluster,
                                        replica=asker, group=METADATA_GROUP,
                                        checkpoint_op=checkpoint, segment=segment,
                                        entry=entry))

            op = node.groups[METADATA_GROUP].replica.commit_min
            ask(op)
            assert answers[-1].flags == mxfer.BUILDING
            first = node.metadata_bundle
            assert first is not None and first.task is not None
            await first.task
            ask(op)
            assert answers[-1].flags == mxfer.MANIFEST
            manifest = mxfer.Manifest.decode(answers[-1].body)
            assert manifest.op == op and manifest.size > 0
            links = sorted((node.root / mxfer.SERVING).iterdir())
            assert len(links) == 1 and (links[0] / "state" / "state.log").exists()
            await boss.engine.metadata.create_stream("b")
            newer = node.groups[METADATA_GROUP].replica.commit_min
            assert newer > op
            ask(op, manifest.op, 0)  # a chunk read on a thread, and before it ends
            ask(newer)  # a newer checkpoint: the bundle is dropped and taken again
            assert answers[-1].flags == mxfer.BUILDING
            second = node.metadata_bundle
            assert second is not None and second is not first
            await asyncio.gather(*node._tasks)
            chunk = next(m for m in answers if m.segment == manifest.op)
            assert (chunk.flags, chunk.entry) == (0, 0)  # read before the links went
            assert mxfer.crc32c(chunk.body) == manifest.chunks[0]
            assert not links[0].exists()  # gone once nothing read them
            ask(newer)
            newest = mxfer.Manifest.decode(answers[-1].body)
            assert newest.op == newer
            ask(newer, newer, len(newest.chunks) - 1)  # the new links are intact
            await asyncio.gather(*node._tasks)
            assert answers[-1].flags == 0
            assert mxfer.crc32c(answers[-1].body) == newest.chunks[-1]
            ask(newer, op, 0)  # a chunk of the dropped bundle
            assert answers[-1].flags == mxfer.GONE
        finally:
            for rt in runtimes:
                await rt.close()
                rt.engine.close()
        assert not any((tmp_path / f"n{boss.replica_id}" / "cluster" / mxfer.SERVING).iterdir())

    asyncio.run(main())


def test_a_leader_cut_off_from_a_quorum_loses_its_lease_and_the_doors_stop_naming_it(
        tmp_path: Path) -> None:
    """The check-quorum lease (docs/cluster.md, Leadership.leased): a partition's primary
    whose two peers are gone still is the primary of its view (no view change can happen
    without them), but within the heartbeat timeout (1 s here) it no longer holds its lease,
    so the Kafka door stops naming it; a backup names no lease of its own."""
    async def main() -> None:
        runtimes = await start_cluster(tmp_path)
        stopped: list[ClusterRuntime] = []
        try:
            boss = await leader(runtimes)
            s = await boss.engine.metadata.create_stream("orders")
            t = await boss.engine.metadata.create_topic("orders", "eu", 1)
            await converged(runtimes, METADATA_GROUP)
            p_leader = await leader(runtimes, partition_group(s.id, t.id, 0))
            lead = p_leader.partition(s.id, t.id, 0)
            assert lead.leader == p_leader.replica_id and lead.leased and p_leader.leased()
            for rt in runtimes:
                if rt is not p_leader:
                    await rt.close()
                    stopped.append(rt)
            loop = asyncio.get_running_loop()
            cut_at = loop.time()
            while p_leader.leased():
                assert loop.time() < cut_at + 5.0, "the lease outlived the peers"
                await asyncio.sleep(0.02)
            assert loop.time() - cut_at >= 0.5  # not before the heartbeat timeout (1 s)
            lead = p_leader.partition(s.id, t.id, 0)
            assert lead.leader == p_leader.replica_id and not lead.leased
            assert not await p_leader.leaders_fence([(s.id, t.id, 0)], timeout=0.2)
        finally:
            for rt in runtimes:
                if rt not in stopped:
                    await rt.close()
                rt.engine.close()

    asyncio.run(main())
