"""Which shard owns a partition: a stable rule every shard computes alone.

The partitions of one topic go round-robin over the shards, from a start the topic's ids hash
to, so a topic of at least N partitions spreads over all N shards and topics of one partition
do not all land on shard 0. All shards share one data directory, so changing the shard count
moves no files: a partition's files are opened by whichever shard owns it now.
"""

from __future__ import annotations

import struct

import xxhash

_IDS = struct.Struct(">II")


def owner(stream_id: int, topic_id: int, partition_id: int, shards: int) -> int:
    """The shard (0..shards-1) that owns partition `partition_id` of the topic."""
    if shards <= 1:
        return 0
    start = xxhash.xxh32_intdigest(_IDS.pack(stream_id, topic_id))
    return (start + partition_id) % shards
