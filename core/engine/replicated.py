"""Consumer state both doors change often and a cluster must not lose: Iggy consumer offsets,
Kafka committed group offsets, the Kafka producer-id mark. Each change is a small JSON body
with a `kind`; `run` applies it at once on one node and, in a cluster, replicates it through
the metadata group (`ClusterView.replicate`), which applies it on every replica in op order.

A handler makes the change to its store and returns the proposer's result; it must give the
same state on every replica from the same body (the proposer puts timestamps and resolved ids
in the body) and be safe to run again in order (a restart replays the ops above the last
checkpoint). The doors register their handlers as they are made; ops a restart replays before
a door's stores exist wait in `backlog` until its server calls `flush` (in order, at most
`BACKLOG_MAX`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from .cluster import ClusterView

log = logging.getLogger(__name__)
BACKLOG_MAX = 100_000
Body = dict[str, Any]
Handler = Callable[[Body], object]


class ReplicatedState:
    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.cluster: ClusterView | None = None
        self.backlog: deque[Body] = deque()

    def register(self, kind: str, handler: Handler) -> None:
        """Handle `kind` from now on (`flush` runs what waited for it)."""
        self.handlers[kind] = handler

    def flush(self) -> None:
        """Run the waiting changes that have a handler now, in order (once a door's stores
        exist)."""
        waiting, self.backlog = self.backlog, deque()
        for body in waiting:
            self.apply(body)

    async def run(self, kind: str, body: Body) -> object:
        """Make the change (replicated first in a cluster) and return the handler's result."""
        body = {"kind": kind, **body}
        if self.cluster is not None:
            return await self.cluster.replicate(body)
        return self.apply(body)

    def apply(self, body: Body) -> object:
        """Run a committed change here (the metadata state machine calls this on every
        replica); a kind nobody handles yet waits for its handler."""
        handler = self.handlers.get(body["kind"])
        if handler is None:
            if len(self.backlog) >= BACKLOG_MAX:
                log.error("replicated %s dropped: no handler on this node (is the door that "
                          "makes it disabled here?)", self.backlog.popleft()["kind"])
            self.backlog.append(body)
            return None
        return handler(body)
