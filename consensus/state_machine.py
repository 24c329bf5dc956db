"""What a group replicates: the narrow interface the replica drives at prepare and commit time.

The metadata plane and each partition plug their own machine in (the simulator's models in
`pyggy.consensus.sim.models`; pyggy's engine in the cluster issue). Operations below
`OPERATION_MIN` belong to the replica itself (session registration).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

REGISTER = 1
OPERATION_MIN = 16


class StateMachine(Protocol):
    def stamp(self, operation: int, body: bytes,
              pending: Sequence[tuple[int, bytes]]) -> bytes | None:
        """Primary only: the body to replicate for a request, given the prepared but not yet
        executed ops ahead of it as (operation, body), oldest first (a partition assigns the base
        offset here, so every replica stores the same bytes). None rejects the request."""
        ...

    def apply(self, op: int, operation: int, body: bytes, timestamp: int) -> bytes:
        """Execute a committed op (same result on every replica); returns the reply body."""
        ...

    def read(self, query: bytes) -> bytes:
        """Answer a query from executed (committed) state only."""
        ...

    def snapshot(self) -> bytes | None:
        """Deterministic bytes of the executed state (checkpoints and state transfer): the
        same on every replica at one op. None when the machine cannot describe the state at
        the op it last executed (a partition replaying ops after a restart whose files already
        hold a later op's removal): the replica skips that checkpoint, as it skips one while
        the previous is still being written."""
        ...

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot's."""
        ...

    def missing(self, data: bytes) -> bool:
        """State transfer: True when restoring this snapshot needs data it does not carry
        (a partition's segments). The replica then asks its driver to fetch that data from
        the peer (a FETCH_STATE action) and installs the snapshot once the driver calls
        `Replica.on_state_fetched(True)`."""
        ...


class UncommittedReads(Protocol):
    """A state machine that can also answer from prepared, not yet committed ops: only the
    simulator's partition model, for the `serve_uncommitted_reads` mutant (tests only)."""

    def read_uncommitted(self, query: bytes, pending: Sequence[tuple[int, bytes]]) -> bytes: ...
