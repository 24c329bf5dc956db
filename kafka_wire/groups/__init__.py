"""Sans-I/O classic consumer-group coordinator for the Kafka listener (single broker).

The Kafka handlers decode a request, call the matching ``GroupCoordinator`` method, await the
future JoinGroup/SyncGroup return, and encode the result; the server calls ``tick()`` about
every 100 ms. Nothing here touches sockets or the codec.
"""

from pyggy.kafka_wire.groups.coordinator import GroupCoordinator, OffsetCommitEntry
from pyggy.kafka_wire.groups.results import (
    Eviction,
    FetchedOffset,
    GroupDescription,
    GroupListing,
    JoinMember,
    JoinResult,
    MemberDescription,
    SyncResult,
)
from pyggy.kafka_wire.groups.state import GroupState
from pyggy.kafka_wire.groups.store import (
    CommittedOffset,
    FileOffsetStore,
    MemoryOffsetStore,
    OffsetStore,
)
from pyggy.kafka_wire.groups.subscription import subscription_topics

__all__ = [
    "CommittedOffset",
    "Eviction",
    "FetchedOffset",
    "FileOffsetStore",
    "GroupCoordinator",
    "GroupDescription",
    "GroupListing",
    "GroupState",
    "JoinMember",
    "JoinResult",
    "MemberDescription",
    "MemoryOffsetStore",
    "OffsetCommitEntry",
    "OffsetStore",
    "SyncResult",
    "subscription_topics",
]
