"""What the parts of a `Replica` share: its state and the operations they call on each other.

`Replica` (replica.py) is assembled from parts that each own one concern: normal operation
(normal.py), the view change (view_change.py), repair and state transfer (repair.py), with setup,
sending, persistence and execution in replica.py itself. They all act on one replica's state,
declared here once with its types; `ReplicaState` holds no code and sets nothing (replica.py
`_open` and each part's `_init_*_state` assign the values). The methods below the
`TYPE_CHECKING` guard are the ones a part calls on another: declared for the type checker only,
so at run time every call resolves to the part that implements it, and the checker verifies each
implementation against its declaration here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

from .client_table import ClientTable, Session
from .journal import Journal
from .log_choice import DoViewChange, Plan
from .message import Message
from .options import Options
from .quorums import Quorums
from .state_machine import StateMachine
from .storage import Storage
from .superblock import Superblock

if TYPE_CHECKING:
    from .repair import Transfer


class Clock(Protocol):
    def now(self) -> int:
        """Wall time in nanoseconds (stamped into prepares; never used for timeouts)."""
        ...


# What an input returns: (SEND, replica, message), (REPLY, client id, message),
# (COMMITTED, op, prepare, applied) and (FETCH_STATE, peer, state machine snapshot) — see
# replica.py and repair.py.
Action = (tuple[Literal[0], int, Message] | tuple[Literal[1], bytes, Message]
          | tuple[Literal[2], int, Message, bool] | tuple[Literal[3], int, bytes])
# A durable checkpoint: (op, snapshot area, snapshot size, snapshot checksum, prepare header)
Checkpoint = tuple[int, int, int, bytes, bytes]
# One being written: the same and whether its snapshot is durable yet
PendingCheckpoint = tuple[int, int, int, bytes, bytes, bool]
Status = Literal["normal", "view_change", "recovering"]


class ReplicaState:
    # -- identity and wiring (Replica.__init__) ---------------------------------------------------
    cluster: bytes
    replica: int  # this replica's index in the roster
    n: int  # replica count
    group: int
    storage: Storage
    sm: StateMachine
    options: Options
    prng: random.Random
    clock: Clock
    mutant: str | None
    q: Quorums
    slots: int  # journal slots
    journal: Journal
    superblock: Superblock
    client_table: ClientTable
    incarnation: bytes
    others: list[int]  # every other replica index
    root: Message  # op 0
    stats: dict[str, int]
    _out: list[Action]
    _now: int  # ticks
    _handlers: dict[int, Callable[[Message], None]]

    # -- views, the log and execution (Replica._open) ---------------------------------------------
    status: Status
    view: int
    view_durable: int
    log_view: int
    log_view_durable: int
    checkpoint: Checkpoint
    _cp_pending: PendingCheckpoint | None
    op: int
    commit_min: int  # executed
    commit_max: int  # known committed
    log: dict[int, Message]  # canonical headers (or prepares) by op
    cache: dict[int, Message]  # prepares with bodies, ops > commit_min
    committed_ring: dict[int, tuple[int, bytes]]  # slot -> (op, checksum) executed
    _deferred: set[int]
    faulty: dict[int, bytes]
    pipeline: dict[int, set[int]]  # primary: op -> replicas that acknowledged it
    acked_op: dict[int, int]
    _last_timestamp: int
    _probes: int
    _heard_peer: bool  # a message of a peer arrived since the start (probes count from then)
    _deadline_rsv: int

    # -- view change (view_change.py) -------------------------------------------------------------
    _svc_from: set[int]
    _dvcs: dict[int, DoViewChange]
    _dvc_ready: bool
    _installing: bool
    _want_start_view: bool
    _plan: Plan | None
    _commit_anchor: Message | None
    _deadline_vc_send: int
    _deadline_vc_status: int
    _deadline_heartbeat: int
    _deadline_commit: int
    _deadline_prepare: int
    _rsv_sent_at: int
    _exit_from: dict[int, tuple[int, int]]
    _deadline_exit: int
    _normal_view: int

    # -- repair and state transfer (repair.py) ----------------------------------------------------
    _transfer: Transfer | None
    _transfer_installing: bool
    _transfer_fetching: tuple[bytes, int, bytes] | None
    _transfer_deadline: int
    _deadline_repair: int
    _blob_cache: tuple[int, bytes] | None

    if TYPE_CHECKING:
        # replica.py
        @property
        def primary_index(self) -> int: ...
        @property
        def is_primary(self) -> bool: ...
        @property
        def transferring(self) -> bool: ...
        def _msg(self, command: int, **fields: object) -> Message: ...
        def _send(self, to: int, m: Message) -> None: ...
        def _broadcast(self, m: Message) -> None: ...
        def _persist(self) -> None: ...
        def _present(self, op: int) -> Message | None: ...
        def _commit(self) -> None: ...
        def _set_log(self, op: int, header: Message) -> None: ...
        def _send_reply_from_table(self, client: bytes, entry: Session) -> None: ...
        def _restore_blob(self, blob: bytes, checksum: bytes) -> Message: ...
        def _sm_state(self, blob: bytes) -> bytes: ...
        def _write_checkpoint(self, op: int, blob: bytes) -> None: ...

        # normal.py
        def _try_commit_primary(self) -> None: ...
        def _send_commit(self) -> None: ...
        def _commit_message(self) -> Message: ...
        def _retransmit_prepares(self) -> None: ...
        def _heard_from_primary(self) -> None: ...
        def _accept_canonical(self, p: Message, ack: bool) -> bool: ...
        def _persist_prepare(self, op: int) -> None: ...
        def _on_prepare_durable(self, op: int, checksum: bytes) -> None: ...
        def _ack_executed(self, p: Message) -> None: ...
        def _send_prepare_ok(self, op: int) -> None: ...

        # view_change.py
        def _start_view_change(self, view: int) -> None: ...
        def _jump(self, view: int) -> None: ...
        def _request_start_view(self, to: int) -> None: ...
        def _tick_view_change(self, now: int) -> None: ...
        def _suspect_primary(self, now: int) -> None: ...
        def _view_is_live(self) -> None: ...
        def _tick_recovering(self, now: int) -> None: ...
        def _try_finish_view_change(self, request: bool) -> None: ...
        def _on_durable_view(self) -> None: ...
        def _enter_normal_timers(self) -> None: ...

        # repair.py
        def _repair(self) -> None: ...
        def _promote(self, op: int) -> None: ...
        def _transfer_retry(self) -> None: ...
