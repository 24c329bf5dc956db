"""The roster, group ids and the consensus options a node runs with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pyggy.consensus.options import Options

METADATA_GROUP = 1 << 63  # as Iggy numbers it
STREAM_BITS, TOPIC_BITS, PARTITION_BITS = 12, 12, 20  # Iggy's 20/12/20 split below bit 63


def partition_group(stream_id: int, topic_id: int, partition_id: int) -> int:
    """A partition's group id, packed as Iggy packs it: stream << 32 | topic << 20 | partition."""
    if not (0 <= stream_id < 1 << 20 and 0 <= topic_id < 1 << 12
            and 0 <= partition_id < 1 << 20):
        raise ValueError(f"ids out of range for a group: {stream_id}/{topic_id}/{partition_id}")
    return stream_id << 32 | topic_id << 20 | partition_id


def unpack_group(group: int) -> tuple[int, int, int]:
    """(stream, topic, partition) of a partition group id."""
    return group >> 32 & 0xFFFFF, group >> 20 & 0xFFF, group & 0xFFFFF


def cluster_id(name: str) -> bytes:
    """The 16-byte id every replica message carries: a hash of `[cluster] name` (a node of
    another cluster is refused at the handshake and its messages are ignored)."""
    return hashlib.blake2b(name.encode(), digest_size=16, person=b"pyggy-cluster").digest()


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    ip: str
    replica_id: int
    tcp: int = 0
    tcp_replica: int = 0
    kafka: int = 0
    http: int = 0


@dataclass(frozen=True, slots=True)
class Timing:
    """`[cluster]` timing in 10 ms ticks (pyggy.config.ticks rounds them)."""

    heartbeat_timeout: int = 500
    commit_interval: int = 50
    prepare_retransmit: int = 25
    view_change_retransmit: int = 50
    view_change_status_timeout: int = 500
    request_start_view_interval: int = 100
    view_probe_attempts_max: int = 5
    repair_interval: int = 100
    repair_chunk_max: int = 128


def options(timing: Timing, prepare_max: int) -> Options:
    """Consensus options of every group of a node."""
    return Options(heartbeat_timeout=timing.heartbeat_timeout,
                   commit_interval=timing.commit_interval,
                   prepare_retransmit=timing.prepare_retransmit,
                   view_change_retransmit=timing.view_change_retransmit,
                   view_change_status_timeout=timing.view_change_status_timeout,
                   request_start_view_interval=timing.request_start_view_interval,
                   view_probe_attempts_max=timing.view_probe_attempts_max,
                   repair_interval=timing.repair_interval,
                   repair_chunk_max=timing.repair_chunk_max,
                   prepare_max=prepare_max).validate()
