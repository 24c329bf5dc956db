"""Consumer lag of both doors' consumers, read from the engine and the Kafka coordinator:
what `/metrics` exports and what the console's lag view shows (one computation for both)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from pyggy.core.engine.partitions import elsewhere
from pyggy.core.model import Topic
from pyggy.core.offsets import CONSUMER_GROUP

if TYPE_CHECKING:
    from pyggy.core.engine import LogEngine
    from pyggy.kafka_wire.context import KafkaServer


class Lag(NamedTuple):
    door: str  # "iggy" or "kafka"
    group: str  # Iggy consumer id / group name, or Kafka group id
    kind: str  # "consumer" or "group"
    stream: str
    topic: str
    partition: int
    next_offset: int  # the next offset this consumer reads
    end_offset: int  # the offset the next message gets

    @property
    def lag(self) -> int:
        return max(self.end_offset - self.next_offset, 0)


def iggy_lags(engine: LogEngine, t: Topic) -> Iterator[Lag]:
    """Iggy consumers and groups with a stored offset (the last consumed one)."""
    stream = engine.metadata.stream_name(t.stream_id)
    for p in t.partitions:
        if elsewhere(p.log):  # another shard process's (docs/sharding.md: left out)
            continue
        end = engine.data.watermarks(t, p.id)[1]
        offsets = engine.consumers.files.offsets_of(t, p.id)
        for (kind, key), stored in sorted(offsets.values.items(), key=str):
            group = kind == CONSUMER_GROUP
            name = t.groups[key].name if group and key in t.groups else str(key)
            yield Lag("iggy", name, "group" if group else "consumer", stream, t.name, p.id,
                      stored + 1, end)


def kafka_lags(engine: LogEngine, kafka: KafkaServer | None,
               only: Topic | None = None) -> Iterator[Lag]:
    """Kafka groups' committed offsets (the next offset to read, as Kafka commits them)."""
    if kafka is None or kafka.coordinator is None:
        return
    store = kafka.coordinator.offsets
    for group in store.groups():
        for (name, partition), committed in sorted(store.offsets(group).items()):
            t = kafka.topics.resolve(name)
            if t is None or not 0 <= partition < len(t.partitions):
                continue
            if only is not None and (t.stream_id, t.id) != (only.stream_id, only.id):
                continue
            end = engine.data.watermarks(t, partition)[1]
            yield Lag("kafka", group, "group", engine.metadata.stream_name(t.stream_id), t.name,
                      partition, committed.offset, end)


def kafka_members(kafka: KafkaServer | None, group_id: str) -> list[dict[str, str]]:
    """A Kafka group's members (client id and host), for the console."""
    coordinator = kafka.coordinator if kafka is not None else None
    if coordinator is None:
        return []
    group = coordinator.groups.get(group_id)  # classic
    members = group.members.values() if group is not None else ()
    consumer = coordinator.consumer.groups.get(group_id)  # KIP-848
    if consumer is not None:
        return [{"member_id": m.member_id, "client_id": m.client_id, "host": m.client_host}
                for m in consumer.members.values()]
    return [{"member_id": m.member_id, "client_id": m.client_id, "host": m.client_host}
            for m in members]
