"""What crosses shards, counted per shard process (docs/sharding.md, "What an operator
sees"): requests forwarded to and from other shards by the door they came in on, and native
connections handed over, adopted or not.

Plain ints and dicts of fixed keys, bumped on the hot path without a lock (one event loop per
process) and without allocating; read by `/metrics` (pyggy/metrics.py), which gathers every
shard's with the statistics request (runtime.py `refresh_stats`).
"""

from __future__ import annotations

from typing import Any

# doors a forwarded request can come from: the transport listener's name ("tcp" is the Iggy
# door), the HTTP door, and "other" for anything no door started (none today)
DOORS = ("iggy", "kafka", "http", "other")
_DOOR_OF = {"tcp": "iggy", "kafka": "kafka", "http": "http"}
# why a handoff failed: the owner's socket full (peer_full) or missing (peer_gone), another
# send error (send_error); on the receiving shard, a malformed message (malformed) or a
# connection that could not be adopted (adopt_error)
FAILURES = ("peer_full", "peer_gone", "send_error", "malformed", "adopt_error")


def door_of(listener_name: str) -> str:
    """The door label of a transport listener's name (or "other")."""
    return _DOOR_OF.get(listener_name, "other")


class ShardCounters:
    __slots__ = ("forwarded_out", "forwarded_in", "handoffs_out", "handoffs_in",
                 "handoffs_failed", "adopted")

    def __init__(self) -> None:
        self.forwarded_out = dict.fromkeys(DOORS, 0)  # requests this shard sent to an owner
        self.forwarded_in = dict.fromkeys(DOORS, 0)  # requests other shards sent here
        self.handoffs_out = 0  # connections sent to another shard
        self.handoffs_in = 0  # connections received from another shard (adopted or not)
        self.handoffs_failed = dict.fromkeys(FAILURES, 0)
        self.adopted = 0  # received connections now served here

    def snapshot(self) -> dict[str, Any]:
        """A copy for the statistics reply (JSON)."""
        return {"forwarded_out": dict(self.forwarded_out),
                "forwarded_in": dict(self.forwarded_in),
                "handoffs_out": self.handoffs_out, "handoffs_in": self.handoffs_in,
                "handoffs_failed": dict(self.handoffs_failed), "adopted": self.adopted}
