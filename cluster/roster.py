"""The roster, group ids and the consensus options a node runs with."""

from __future__ import annotations

import dataclasses
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


METADATA_PREPARE_MAX = 1 << 20
PARTITION_PREPARE_MAX = 8 << 20  # the largest batch a partition group replicates, header incl.


def group_options(timing: Options) -> tuple[Options, Options]:
    """(metadata, partition) group options from `[cluster]`'s timing (in ticks, in `timing`):
    a partition group's prepares hold batches (up to 8 MiB) and its journal 128 of them."""
    metadata = dataclasses.replace(timing, prepare_max=METADATA_PREPARE_MAX).validate()
    partition = dataclasses.replace(timing, prepare_max=PARTITION_PREPARE_MAX,
                                    journal_slots=128, checkpoint_interval=64).validate()
    return metadata, partition
