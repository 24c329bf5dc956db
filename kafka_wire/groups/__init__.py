"""Sans-I/O classic consumer-group coordinator for the Kafka listener (single broker).

The Kafka handlers decode a request, call the matching ``GroupCoordinator`` method, await the
future JoinGroup/SyncGroup return, and encode the result; the server calls ``tick()`` about
every 100 ms. Nothing here touches sockets or the codec.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# each name's module, imported at its first use (PEP 562): the offsets store a start opens
# (`groups.store`) does not load the coordinator, which a server builds at the first group
# request (pyggy/server.py)
_MODULES = {
    "GroupCoordinator": "coordinator", "OffsetCommitEntry": "coordinator",
    "Eviction": "results", "FetchedOffset": "results", "GroupDescription": "results",
    "GroupListing": "results", "JoinMember": "results", "JoinResult": "results",
    "MemberDescription": "results", "SyncResult": "results", "GroupState": "state",
    "CommittedOffset": "store", "FileOffsetStore": "store", "MemoryOffsetStore": "store",
    "OffsetStore": "store", "subscription_topics": "subscription",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
