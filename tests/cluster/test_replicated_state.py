"""Consumer state in a cluster (core/engine/replicated.py, kafka_wire/replicated.py): three
in-process nodes on loopback (real engines, files, replica bus, Kafka group coordinators and
handlers) — Iggy consumer offsets and groups, Kafka group offsets, OffsetDelete, DeleteGroups,
producer-id blocks and a prepared transaction are on every replica, a backup refuses them, and
the leader after a failover serves and continues them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pyggy.cluster.roster import METADATA_GROUP, partition_group
from pyggy.cluster.runtime import ClusterRuntime
from pyggy.core.engine import CONSUMER, CONSUMER_GROUP, NEXT, LogEngine
from pyggy.core.engine.cluster import NotLeader
from pyggy.core.errors import ErrorCode as IggyCode
from pyggy.core.errors import IggyError
from pyggy.core.records import kafka_batch
from pyggy.core.transactions import COMPLETE_COMMIT, PREPARE_COMMIT
from pyggy.kafka_wire.context import Connection, KafkaServer
from pyggy.kafka_wire.groups import FileOffsetStore, GroupCoordinator
from pyggy.kafka_wire.handlers import groups as group_handlers
from pyggy.kafka_wire.handlers import offsets as offset_handlers
from pyggy.kafka_wire.handlers import producer_id
from pyggy.kafka_wire.producer_ids import IdBlocks, ProducerIdFile
from pyggy.kafka_wire.producers import ID_BLOCK, OWN_RANGES, ProducerStates
from pyggy.kafka_wire.protocol.errors import ErrorCode
from pyggy.kafka_wire.settings import KafkaSettings
from pyggy.kafka_wire.transactions import TxnError
from test_node_e2e import converged, leader, start_cluster


def kafka_door(rt: ClusterRuntime, root: Path) -> KafkaServer:
    """The Kafka door's state of one node, as server.py builds it for a cluster."""
    engine = rt.engine
    own = ProducerIdFile(root / "kafka" / "producer_ids_own")
    own_first = OWN_RANGES + (rt.replica_id << 40)
    fallback = ProducerStates(max(own.load(own_first), own_first), own.store).new_id
    kafka = KafkaServer(engine, KafkaSettings(), producers=ProducerStates(
        blocks=True, fallback=fallback), id_blocks=IdBlocks(
            ProducerIdFile(root / "kafka" / "producer_ids"), 1000, ID_BLOCK))

    def partition_exists(topic: str, partition: int) -> bool:
        t = kafka.topics.resolve(topic)
        return t is not None and 0 <= partition < len(t.partitions)

    kafka.coordinator = GroupCoordinator(engine.clock, FileOffsetStore(root / "kafka" / "offsets"),
                                         partition_exists=partition_exists)
    engine.replicated.flush()
    return kafka


OFFSET_COMMIT, INIT_PRODUCER_ID, DELETE_GROUPS, OFFSET_DELETE = 8, 22, 42, 47


def connect(door: KafkaServer, api_key: int) -> Connection:
    """A connection of this door in the middle of a request of `api_key`."""
    return Connection(door, "127.0.0.1", api_key=api_key)


def commit_req(group: str, rows: list[tuple[str, int, int]]) -> dict:
    return {"group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
            "group_instance_id": None, "topics": [
                {"name": t, "partitions": [{"partition_index": p, "committed_offset": o,
                                            "committed_leader_epoch": -1,
                                            "committed_metadata": "m"}]}
                for t, p, o in rows]}


def codes(answer: dict) -> list[int]:
    return [p["error_code"] for t in answer["topics"] for p in t["partitions"]]


async def fill(rt: ClusterRuntime, partition: int, count: int) -> None:
    topic = rt.engine.metadata.topic("orders", "eu")
    for i in range(count):
        batch = kafka_batch.build_batch([(1_700_000_000_000, b"k", b"v%d" % i, [])])
        await rt.engine.data.append_kafka(topic, partition, batch,
                                          kafka_batch.validate_batch(batch))


async def heir_of(live: list[ClusterRuntime], timeout: float = 30.0) -> ClusterRuntime:
    """The metadata primary the live nodes agree on (`leader` indexes a full roster)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        seen = {rt.node.primary(METADATA_GROUP) for rt in live}
        if len(seen) == 1 and None not in seen:
            (primary,) = seen
            found = [rt for rt in live if rt.replica_id == primary]
            if found:
                return found[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no metadata primary among the live nodes")


async def restart(tmp_path: Path, old: ClusterRuntime, index: int) -> ClusterRuntime:
    """Node `index` started again on its files, with the roster it had."""
    engine = LogEngine(tmp_path / f"n{index}")
    engine.open(("iggy", "iggy"))
    rt = ClusterRuntime(engine, old.settings, tmp_path / f"n{index}" / "cluster")
    await rt.start()
    return rt


async def close(runtimes: list[ClusterRuntime]) -> None:
    for rt in runtimes:
        await rt.close()
        rt.engine.close()


def test_iggy_offsets_and_groups_are_on_every_replica_and_survive_a_failover(
        tmp_path: Path) -> None:
    async def main() -> None:
        runtimes = await start_cluster(tmp_path)
        live = list(runtimes)
        try:
            boss = await leader(runtimes)
            s = await boss.engine.metadata.create_stream("orders")
            t = await boss.engine.metadata.create_topic("orders", "eu", 2)
            await converged(runtimes, METADATA_GROUP)
            p_lead = await leader(runtimes, partition_group(s.id, t.id, 0))
            assert p_lead is boss  # every group starts in view 0, led by replica 0
            await fill(boss, 0, 10)
            c = boss.engine.consumers
            backup = next(rt for rt in runtimes if rt is not boss)
            with pytest.raises(NotLeader) as refused:
                await backup.engine.consumers.store_offset(CONSUMER, "alice", "orders", "eu",
                                                           0, 3)
            assert refused.value.leader == boss.replica_id
            await c.store_offset(CONSUMER, "alice", "orders", "eu", 0, 5)
            await c.store_offset(CONSUMER, 42, "orders", "eu", 0, 2)
            with pytest.raises(IggyError) as past:  # checked by the proposer, as Iggy does
                await c.store_offset(CONSUMER, "alice", "orders", "eu", 0, 11)
            assert past.value.code == IggyCode.INVALID_OFFSET
            g = await c.create_group("orders", "eu", "g")
            await c.store_offset(CONSUMER_GROUP, "g", "orders", "eu", 0, 7)
            # an auto-commit poll stores where it read up to, on every replica
            polled = await boss.engine.data.poll_async("orders", "eu", 0, NEXT, 0, 4,
                                                       CONSUMER, "bob", True)
            assert polled.count == 4
            await c.store_offset(CONSUMER, "gone", "orders", "eu", 0, 1)
            await c.delete_offset(CONSUMER, "gone", "orders", "eu", 0)
            with pytest.raises(IggyError) as missing:
                await c.delete_offset(CONSUMER, "gone", "orders", "eu", 0)
            assert missing.value.code == IggyCode.CONSUMER_OFFSET_NOT_FOUND
            await converged(runtimes, METADATA_GROUP)
            for rt in runtimes:
                mine = rt.engine.consumers
                assert mine.get_offset(CONSUMER, "alice", "orders", "eu", 0)[2] == 5
                assert mine.get_offset(CONSUMER, 42, "orders", "eu", 0)[2] == 2
                assert mine.get_offset(CONSUMER, "bob", "orders", "eu", 0)[2] == 3
                assert mine.get_offset(CONSUMER_GROUP, "g", "orders", "eu", 0)[2] == 7
                assert mine.get_offset(CONSUMER, "gone", "orders", "eu", 0) is None

            # a backup restarted replays what it had applied and catches up with the rest
            index = backup.replica_id
            await backup.close()
            backup.engine.close()
            live.remove(backup)
            await c.store_offset(CONSUMER, "alice", "orders", "eu", 0, 6)
            again = await restart(tmp_path, backup, index)
            live.append(again)
            await converged(live, METADATA_GROUP)
            assert again.engine.consumers.get_offset(CONSUMER, "alice", "orders", "eu",
                                                     0)[2] == 6
            assert again.engine.consumers.get_offset(CONSUMER_GROUP, "g", "orders", "eu",
                                                     0)[2] == 7

            # the leader dies: the next one serves every offset and takes new ones
            await boss.close()
            boss.engine.close()
            live.remove(boss)
            heir = await heir_of(live)
            assert heir is not boss
            h = heir.engine.consumers
            assert h.get_offset(CONSUMER, "alice", "orders", "eu", 0)[2] == 6
            assert h.get_offset(CONSUMER_GROUP, "g", "orders", "eu", 0)[2] == 7
            await h.store_offset(CONSUMER, "alice", "orders", "eu", 0, 8)
            await h.delete_group("orders", "eu", "g")
            await converged(live, METADATA_GROUP)
            for rt in live:
                mine = rt.engine.consumers
                assert mine.get_offset(CONSUMER, "alice", "orders", "eu", 0)[2] == 8
                assert mine.get_group("orders", "eu", "g") is None
                offsets = rt.engine.files.offsets_of(rt.engine.metadata.topic("orders", "eu"), 0)
                assert offsets.get(CONSUMER_GROUP, g.id) is None
                assert not any((offsets.root / "groups").glob("*"))
        finally:
            await close(live)

    asyncio.run(main())


def test_kafka_group_offsets_and_producer_ids_are_replicated_and_survive_a_failover(
        tmp_path: Path) -> None:
    async def main() -> None:
        runtimes = await start_cluster(tmp_path)
        doors = [kafka_door(rt, tmp_path / f"n{i}") for i, rt in enumerate(runtimes)]
        live = list(runtimes)
        try:
            boss = await leader(runtimes)
            await boss.engine.metadata.create_stream("kafka")  # the default stream
            await boss.engine.metadata.create_topic("kafka", "orders", 2)
            await converged(runtimes, METADATA_GROUP)
            door = doors[boss.replica_id]
            backup = next(rt for rt in runtimes if rt is not boss)
            conn = connect(door, OFFSET_COMMIT)
            refused = await offset_handlers.offset_commit(
                connect(doors[backup.replica_id], OFFSET_COMMIT),
                commit_req("g", [("orders", 0, 1)]), 8)
            assert codes(refused) == [ErrorCode.NOT_COORDINATOR]
            answer = await offset_handlers.offset_commit(
                conn, commit_req("g", [("orders", 0, 11), ("orders", 1, 22), ("nope", 0, 1)]), 8)
            assert codes(answer) == [0, 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
            await offset_handlers.offset_commit(conn, commit_req("h", [("orders", 0, 5)]), 8)
            await offset_handlers.offset_commit(conn, commit_req("x", [("orders", 1, 9)]), 8)
            deleted = await offset_handlers.offset_delete(connect(door, OFFSET_DELETE), {
                "group_id": "g", "topics": [{"name": "orders",
                                             "partitions": [{"partition_index": 1}]}]}, 0)
            assert deleted["error_code"] == 0 and codes(deleted) == [0]
            gone = await group_handlers.delete_groups(connect(door, DELETE_GROUPS),
                                                      {"groups_names": ["x", "y"]}, 2)
            assert [r["error_code"] for r in gone["results"]] == [
                0, ErrorCode.GROUP_ID_NOT_FOUND]
            # producer ids: blocks from the metadata group, only on its primary
            init = {"transactional_id": None, "transaction_timeout_ms": 60000,
                    "producer_id": -1, "producer_epoch": -1}
            first = await producer_id.handle(connect(door, INIT_PRODUCER_ID), init, 4)
            assert first["error_code"] == 0
            assert first["producer_id"] == 1000  # the first block
            # elsewhere: an idempotent producer from the replica's own range (clients send
            # it to any broker), a transactional one is sent to the coordinator
            own = await producer_id.handle(connect(doors[backup.replica_id], INIT_PRODUCER_ID),
                                           init, 4)
            assert own["error_code"] == 0
            assert own["producer_id"] == OWN_RANGES + (backup.replica_id << 40)
            no = await producer_id.handle(connect(doors[backup.replica_id], INIT_PRODUCER_ID),
                                          {**init, "transactional_id": "tx"}, 4)
            assert no["error_code"] == ErrorCode.NOT_COORDINATOR
            await converged(runtimes, METADATA_GROUP)
            for d in doors:
                coord = d.coordinator
                assert coord is not None
                assert [(f.topic, f.partition, f.offset) for f in coord.fetch_offsets("g", None)
                        ] == [("orders", 0, 11)]
                assert [f.offset for f in coord.fetch_offsets("h", None)] == [5]
                assert coord.fetch_offsets("x", None) == []
                assert "x" not in coord.groups and {"g", "h"} <= set(coord.groups)
                assert d.id_blocks is not None and d.id_blocks.mark == first["producer_id"] \
                    + ID_BLOCK

            await boss.close()
            boss.engine.close()
            live.remove(boss)
            heir = await heir_of(live)
            heir_door = doors[heir.replica_id]
            hconn = connect(heir_door, OFFSET_COMMIT)
            fetched = heir_door.coordinator.fetch_offsets("g", [("orders", [0, 1])])
            assert [(f.partition, f.offset) for f in fetched] == [(0, 11), (1, -1)]
            assert codes(await offset_handlers.offset_commit(
                hconn, commit_req("g", [("orders", 1, 30)]), 8)) == [0]
            again = await producer_id.handle(connect(heir_door, INIT_PRODUCER_ID), init, 4)
            assert again["error_code"] == 0
            assert again["producer_id"] >= first["producer_id"] + ID_BLOCK  # never reused
            await converged(live, METADATA_GROUP)
            for rt in live:
                coord = doors[rt.replica_id].coordinator
                assert coord.offsets.get("g", "orders", 1).offset == 30
        finally:
            await close(live)

    asyncio.run(main())


def test_a_transaction_prepared_by_the_old_coordinator_is_finished_by_the_new_one(
        tmp_path: Path) -> None:
    """Transaction state is metadata commands; only the metadata primary runs the transaction
    timers, so the coordinator after a failover completes what its predecessor prepared and
    makes the transaction's group offsets visible on every replica. (No partition in it: its
    markers would need the new coordinator to lead that partition too, docs/cluster.md.)"""
    async def main() -> None:
        runtimes = await start_cluster(tmp_path)
        doors = [kafka_door(rt, tmp_path / f"n{i}") for i, rt in enumerate(runtimes)]
        live = list(runtimes)
        try:
            boss = await leader(runtimes)
            await boss.engine.metadata.create_stream("kafka")
            await boss.engine.metadata.create_topic("kafka", "orders", 1)
            door = doors[boss.replica_id]
            init = {"transactional_id": "tx", "transaction_timeout_ms": 60000,
                    "producer_id": -1, "producer_epoch": -1}
            answer = await producer_id.handle(connect(door, INIT_PRODUCER_ID), init, 4)
            assert answer["error_code"] == 0
            pid, epoch = answer["producer_id"], answer["producer_epoch"]
            backup = next(rt for rt in runtimes if rt is not boss)
            with pytest.raises(TxnError) as refused:
                await doors[backup.replica_id].txn.add_offsets("tx", pid, epoch, "tg",
                                                               ErrorCode.PRODUCER_FENCED)
            assert refused.value.code == ErrorCode.NOT_COORDINATOR
            await door.txn.add_offsets("tx", pid, epoch, "tg", ErrorCode.PRODUCER_FENCED)
            await door.txn.stage_offsets("tx", pid, epoch, "tg", [("orders", 0, 7, -1, "")])
            # the old coordinator prepares the commit, then dies before completing it
            await boss.engine.commands.propose({"type": "txn_prepare", "transactional_id": "tx",
                                                "commit": True})
            await converged(runtimes, METADATA_GROUP)
            for rt in runtimes:
                t = rt.engine.txns.get("tx")
                assert t is not None and t.state == PREPARE_COMMIT
            await boss.close()
            boss.engine.close()
            live.remove(boss)
            heir = await heir_of(live)
            other = next(rt for rt in live if rt is not heir)
            assert await doors[other.replica_id].txn.tick() == 0  # only the coordinator acts
            assert await doors[heir.replica_id].txn.tick() == 1
            await converged(live, METADATA_GROUP)
            for rt in live:
                t = rt.engine.txns.get("tx")
                assert t is not None and t.state == COMPLETE_COMMIT
                assert doors[rt.replica_id].coordinator.offsets.get("tg", "orders", 0).offset \
                    == 7
        finally:
            await close(live)

    asyncio.run(main())
