"""The Kafka door's consumer state as replicated changes (core/engine/replicated.py): committed
group offsets (OffsetCommit, TxnOffsetCommit at commit, OffsetDelete, DeleteGroups) and the
producer-id mark. On one node each applies at once; in a cluster the metadata group applies it
on every replica in op order, so the coordinator that follows a failover (the new metadata
primary) serves what the old one acknowledged.

The coordinator decides (membership, generations and state stay on the coordinator: members
rejoin a new one, as Kafka's do when theirs moves); the replicated bodies carry only the
outcome: `kafka_offsets` {group, offsets: [[topic, partition, offset, leader epoch,
metadata]]}, `kafka_offset_delete` {group, partitions: [[topic, partition]]},
`kafka_groups_delete` {groups}, `kafka_producer_ids` {floor} (the first id of the next block,
at least `floor`: the proposer's own mark, so a cluster that had per-replica ranges never hands
out an id twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from pyggy.core.engine.replicated import Body
from pyggy.core.errors import ErrorCode as IggyCode
from pyggy.core.errors import IggyError
from pyggy.kafka_wire.groups.store import CommittedOffset, TopicPartition
from pyggy.kafka_wire.producers import BLOCK_LOW, IdsExhausted
from pyggy.kafka_wire.protocol.errors import ErrorCode

if TYPE_CHECKING:
    from pyggy.kafka_wire.context import KafkaServer


def error_code(e: Exception) -> ErrorCode:
    """What a group request answers when its change could not be made: NOT_COORDINATOR when
    this broker is not the metadata primary (the client finds the coordinator again) or the
    disk refused (as Kafka answers a failed offsets-log write), REQUEST_TIMED_OUT when a view
    change left the outcome unknown (retriable)."""
    if isinstance(e, IggyError) and e.code == IggyCode.TRANSIENT_NOT_COMMITTED:
        return ErrorCode.REQUEST_TIMED_OUT
    return ErrorCode.NOT_COORDINATOR


def register(server: KafkaServer) -> None:
    """Handle the Kafka kinds on this node (KafkaServer does it as it is made)."""
    r = server.engine.replicated

    def offsets(body: Body) -> None:
        if server.coordinator is not None:
            server.coordinator.store_offsets(body["group"], {
                (t, p): CommittedOffset(o, e, m) for t, p, o, e, m in body["offsets"]})

    def offset_delete(body: Body) -> None:
        if server.coordinator is not None:
            server.coordinator.offsets.delete(body["group"],
                                              [(t, p) for t, p in body["partitions"]])

    def groups_delete(body: Body) -> None:
        if server.coordinator is not None:
            server.coordinator.forget_groups(body["groups"])

    r.register("kafka_offsets", offsets)
    r.register("kafka_offset_delete", offset_delete)
    r.register("kafka_groups_delete", groups_delete)
    if server.id_blocks is not None:
        r.register("kafka_producer_ids", server.id_blocks.apply)


async def ensure_producer_ids(server: KafkaServer) -> None:
    """In a cluster, before InitProducerId: a fresh block of ids when few are left (the metadata
    primary only; elsewhere NotLeader)."""
    blocks = server.id_blocks
    if blocks is None or server.producers.remaining() >= BLOCK_LOW:
        return
    start = await server.engine.replicated.run("kafka_producer_ids", {"floor": blocks.mark})
    if not isinstance(start, int):
        raise IdsExhausted("no producer id block granted")
    server.producers.take_block(start, blocks.size)


async def store_offsets(server: KafkaServer, group: str,
                        offsets: Mapping[TopicPartition, CommittedOffset]) -> None:
    await server.engine.replicated.run("kafka_offsets", {"group": group, "offsets": [
        [t, p, o.offset, o.leader_epoch, o.metadata] for (t, p), o in offsets.items()]})


async def delete_offsets(server: KafkaServer, group: str,
                         partitions: Iterable[TopicPartition]) -> None:
    await server.engine.replicated.run("kafka_offset_delete", {
        "group": group, "partitions": [[t, p] for t, p in partitions]})


async def delete_groups(server: KafkaServer, groups: list[str]) -> None:
    await server.engine.replicated.run("kafka_groups_delete", {"groups": groups})
