"""Consumer state both doors change often and a cluster must not lose: Iggy consumer offsets,
Kafka committed group offsets, the Kafka producer-id mark. Each change is a small JSON body
with a `kind`; `run` applies it at once on one node and, in a cluster, replicates it through
the metadata group (`ClusterView.replicate`), which applies it on every replica in op order.

A handler makes the change to its store and returns the proposer's result; it must give the
same state on every replica from the same body (the proposer puts timestamps and resolved ids
in the body) and be safe to run again in order (a restart replays the ops above the last
checkpoint). The doors register their handlers as they start; ops a restart replays before a
door has registered wait in `backlog` for it (in order, at most `BACKLOG_MAX`).
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
        """Handle `kind` from now on; first run what a restart replayed before."""
        self.handlers[kind] = handler
        waiting = [b for b in self.backlog if b["kind"] == kind]
        if waiting:
            self.backlog = deque(b for b in self.backlog if b["kind"] != kind)
            for body in waiting:
                handler(body)

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
