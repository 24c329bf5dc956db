"""A Viewstamped Replication replica of one group, sans I/O.

Inputs: `on_message(msg)`, `tick()` (one 10 ms step of its clock) and `on_write_done(token)`
(a storage write became durable). Each returns the actions to carry out, as tuples:
`(SEND, replica, msg)`, `(REPLY, client, msg)` and `(COMMITTED, op, prepare, applied)` (an op
executed here; `applied` is False when the op was a retry of an executed request and was
skipped).
Persistence goes through the injected storage (journal, superblock, snapshot areas).

Status: NORMAL (primary = view % n prepares, backups acknowledge), VIEW_CHANGE, RECOVERING (after
a restart, until the current primary's StartView arrives; quorum-invisible). State transfer is
orthogonal: while `transferring` a replica neither acknowledges nor votes.

Durability rules (see docs/consensus.md): nothing view-scoped leaves before the superblock holds
that view (and, in normal status, that log_view); a PrepareOk only after the prepare is durable;
the log suffix claimed for `log_view` is in the superblock before the view starts.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Hashable
from typing import cast

import xxhash

from . import normal, repair, view_change
from .client_table import ClientTable, Session
from .journal import Journal
from .message import (
    HEADER_SIZE,
    Command,
    Message,
    decode_header,
    prepare_header,
    root_prepare,
)
from .options import Options
from .quorums import quorums
from .replica_state import Action, Clock
from .state_machine import REGISTER, StateMachine, UncommittedReads
from .status import COMMITTED, NORMAL, RECOVERING, REPLY, SEND, VIEW_CHANGE, Divergence
from .storage import Storage, snapshot_zone
from .superblock import Superblock, SuperblockState

C = Command
# Deliberately broken variants, for proving the simulator's checker can fail (tests only).
MUTANTS = frozenset({"commit_before_quorum", "ack_not_durable", "advertise_undurable_view",
                     "ignore_nack_quorum", "serve_uncommitted_reads", "forget_client_table"})
_U64 = struct.Struct("<Q")
_SNAP_HEAD = struct.Struct("<I")
# Messages that speak for a view: sent only once that view (and for normal traffic, that
# log_view) is durable.
_VIEW_SCOPED = frozenset({C.START_VIEW_CHANGE, C.DO_VIEW_CHANGE})
_NORMAL_SCOPED = frozenset({C.PREPARE, C.PREPARE_OK, C.COMMIT, C.START_VIEW})


class Replica(normal.NormalMixin, view_change.ViewChangeMixin, repair.RepairMixin):
    def __init__(self, *, cluster: bytes, replica: int, replica_count: int, group: int,
                 storage: Storage, state_machine: StateMachine, options: Options,
                 prng: random.Random, clock: Clock, mutant: str | None = None) -> None:
        if mutant is not None and mutant not in MUTANTS:
            raise ValueError(f"unknown mutant {mutant!r}")
        if not 0 <= replica < replica_count:
            raise ValueError("replica index outside the roster")
        self.cluster, self.replica, self.n, self.group = cluster, replica, replica_count, group
        self.storage, self.sm, self.options = storage, state_machine, options.validate()
        self.prng, self.clock, self.mutant = prng, clock, mutant
        self.q = quorums(replica_count)
        self.slots = options.journal_slots
        self.journal = Journal(storage, options.journal_slots, options.prepare_max)
        self.superblock = Superblock(storage, cluster=cluster, group=group, replica=replica,
                                     replica_count=replica_count, vh_max=options.pipeline_max + 1)
        self.client_table = ClientTable(options.clients_max)
        self.incarnation = prng.randbytes(16)
        self.others = [r for r in range(replica_count) if r != replica]
        self.root = root_prepare(cluster, group)
        self._out = []
        self._now = 0
        self._handlers = {
            C.REQUEST: self._on_request, C.PREPARE: self._on_prepare,
            C.PREPARE_OK: self._on_prepare_ok, C.COMMIT: self._on_commit,
            C.START_VIEW_CHANGE: self._on_start_view_change,
            C.DO_VIEW_CHANGE: self._on_do_view_change, C.START_VIEW: self._on_start_view,
            C.REQUEST_START_VIEW: self._on_request_start_view,
            C.REQUEST_PREPARES: self._on_request_prepares,
            C.REPAIR_PREPARE: self._on_repair_prepare, C.RANGE_EVICTED: self._on_range_evicted,
            C.REQUEST_SNAPSHOT: self._on_request_snapshot,
            C.SNAPSHOT_CHUNK: self._on_snapshot_chunk,
        }
        self.stats = {"view_changes": 0, "repaired": 0, "repair_bytes": 0, "transfers": 0,
                      "transfer_bytes": 0, "transfer_fetches": 0}
        self.acked_op: dict[int, int] = {}  # primary: the highest op each backup acknowledged
        self._open()

    # -- setup and recovery -----------------------------------------------------------------------

    @staticmethod
    def format(storage: Storage, *, cluster: bytes, replica: int, replica_count: int, group: int,
               options: Options) -> None:
        """Write the initial superblock of a new group (the driver completes the writes)."""
        root = root_prepare(cluster, group)
        Superblock(storage, cluster=cluster, group=group, replica=replica,
                   replica_count=replica_count, vh_max=options.pipeline_max + 1).format(
            SuperblockState(checkpoint_header=prepare_header(root)))

    def _open(self) -> None:
        self.status = RECOVERING
        sb = self.superblock.open()
        self.view = self.view_durable = sb.view
        self.log_view = self.log_view_durable = sb.log_view
        cp = sb.checkpoint_op
        self.checkpoint = (cp, sb.snapshot_area, sb.snapshot_size, sb.snapshot_checksum,
                           sb.checkpoint_header)
        self._cp_pending = None  # checkpoint whose snapshot is being persisted
        cp_header = decode_header(sb.checkpoint_header) if cp else self.root
        if cp:
            blob = self.storage.read(snapshot_zone(sb.snapshot_area), 0, sb.snapshot_size)
            self._restore_blob(blob, sb.snapshot_checksum)
        self.commit_min = cp
        self.log: dict[int, Message] = {cp: cp_header}
        self.cache: dict[int, Message] = {}  # prepares with bodies, ops > commit_min
        self.committed_ring: dict[int, tuple[int, bytes]] = {
            cp % self.slots: (cp, cp_header.checksum)}
        self._deferred: set[int] = set()  # canonical prepares waiting for the journal window
        found = self.journal.recover()
        # ops whose prepare was durable here but is damaged now: never nacked (maybe acked)
        self.faulty: dict[int, bytes] = {}
        for op, rec in found.items():
            if op > cp and rec.prepare is not None:
                self.cache[op] = rec.prepare
            elif op > cp:
                self.faulty[op] = rec.header.checksum
        for raw in sb.view_headers:
            h = decode_header(raw)
            if h.op > cp:
                self._set_log(h.op, h)
        for op, rec in found.items():
            if op > sb.op and op > cp and rec.header.view == self.log_view:
                self._set_log(op, rec.header)
        self.op = max(self.log)
        for op in range(self.op - 1, cp, -1):
            above = self.log.get(op + 1)
            if above is not None and op not in self.log:
                got = found.get(op)
                if got is not None and got.header.checksum == above.parent:
                    self._set_log(op, got.header)
        self.commit_max = max([sb.commit_max, cp] + [h.commit for h in self.log.values()])
        self.pipeline: dict[int, set[int]] = {}
        self._last_timestamp = max(h.timestamp for h in self.log.values())
        self._init_view_change_state()
        self._init_repair_state()
        self._heard_peer = False
        self._commit()
        if self.n == 1:
            self._truncate_torn_tail()
            self._become_solo_primary()
        else:
            self.status = RECOVERING
            # The superblock as read may be in the page cache only (a process restart keeps
            # it; a power loss would not): speak for its view once it is written again.
            self.view_durable = self.log_view_durable = -1
            self._persist()
            self._probes = 0
            self._deadline_rsv = self._now + 1 + self.prng.randrange(
                self.options.request_start_view_interval)

    def _set_log(self, op: int, header: Message) -> None:
        """Record `header` as the canonical entry at `op`, with its body if cached."""
        cached = self.cache.get(op)
        self.log[op] = cached if cached is not None and cached.checksum == header.checksum \
            else header

    def _restore_blob(self, blob: bytes, checksum: bytes) -> Message:
        if xxhash.xxh3_128_digest(blob) != checksum:
            raise Divergence("checkpoint snapshot does not match its checksum")
        header = decode_header(blob[:HEADER_SIZE])
        (size,) = _SNAP_HEAD.unpack_from(blob, HEADER_SIZE)
        pos = HEADER_SIZE + _SNAP_HEAD.size
        self.client_table.restore(blob[pos:pos + size])
        self.sm.restore(blob[pos + size:])
        return header

    def _sm_state(self, blob: bytes) -> bytes:
        """The state machine's part of a (verified) checkpoint snapshot."""
        (size,) = _SNAP_HEAD.unpack_from(blob, HEADER_SIZE)
        return blob[HEADER_SIZE + _SNAP_HEAD.size + size:]

    def _truncate_torn_tail(self) -> None:
        """Solo: an op above the commit whose prepare did not survive was never durable (a
        crash tore its write), so it was never acknowledged: cut it and what follows."""
        for k in range(self.commit_max + 1, self.op + 1):
            if self._present(k) is None:
                for j in range(k, self.op + 1):
                    self.log.pop(j, None)
                self.op = k - 1
                return

    def _become_solo_primary(self) -> None:
        """Solo: every boot starts a new view, so what it prepares after cutting a torn tail never
        shares a (view, op) with a prepare it made before the crash (the superblock's view
        headers may still name those); requests wait until that view is durable."""
        self.view += 1
        self.log_view = self.view
        self._persist()
        self.status = NORMAL
        self.pipeline = {k: set() for k in range(self.commit_max + 1, self.op + 1)}
        for k, acks in self.pipeline.items():
            h = self.log.get(k)
            if h is not None and self.journal.durable(k, h.checksum):
                acks.add(self.replica)
        self._try_commit_primary()
        self._enter_normal_timers()

    # -- driver interface -------------------------------------------------------------------------

    @property
    def primary_index(self) -> int:
        return self.view % self.n

    @property
    def is_primary(self) -> bool:
        return self.view % self.n == self.replica

    @property
    def settled(self) -> bool:
        """Primary in normal status with no op of an older view left unexecuted: its state
        machine then holds everything a previous primary may have acknowledged (a door that
        checks requests against that state, as Kafka's producer sequences, waits for this)."""
        return self.status == NORMAL and self.is_primary and all(
            (h := self.log.get(k)) is not None and h.view == self.view
            for k in range(self.commit_min + 1, self.op + 1))

    @property
    def transferring(self) -> bool:
        return (self._transfer is not None or self._transfer_fetching is not None
                or self._transfer_installing)

    def caught_up(self, lag: int) -> set[int]:
        """On a primary in normal status: itself and the backups that acknowledged an op at
        most `lag` below the commit point in this view (Kafka's ISR, as far as VSR knows it:
        any quorum commits, this only says who is keeping up). Empty elsewhere."""
        if self.status != NORMAL or not self.is_primary:
            return set()
        floor = self.commit_max - lag
        return {self.replica} | {r for r, op in self.acked_op.items() if op >= floor}

    def drain(self) -> list[Action]:
        """Actions produced outside an input (by recovery in the constructor)."""
        out, self._out = self._out, []
        return out

    def on_message(self, m: Message) -> list[Action]:
        if m.cluster == self.cluster and m.group == self.group and (
                m.command in (C.REQUEST,) or (m.replica < self.n and m.replica != self.replica)):
            handler = self._handlers.get(m.command)
            if m.command != C.REQUEST:
                self._heard_peer = True
            if handler is not None:
                handler(m)
        out, self._out = self._out, []
        return out

    def on_write_done(self, token: Hashable) -> list[Action]:
        if isinstance(token, tuple):  # the replica's tokens: (kind, ...)
            kind = token[0]
            if kind == "j":
                got = self.journal.on_write_done(token)
                if got is not None:
                    self._on_prepare_durable(*got)
            elif kind == "sb":
                state = self.superblock.on_write_done(token)
                if state is not None:
                    self._on_superblock_durable(state)
            elif kind == "snap":
                self._on_snapshot_durable(token)
        out, self._out = self._out, []
        return out

    def tick(self) -> list[Action]:
        self._now = now = self._now + 1
        if self.status == NORMAL:
            if self.is_primary:
                if now >= self._deadline_commit:
                    self._deadline_commit = now + self.options.commit_interval
                    self._send_commit()
                if now >= self._deadline_prepare:
                    self._deadline_prepare = now + self.options.prepare_retransmit
                    self._retransmit_prepares()
            elif now >= self._deadline_heartbeat:
                self._suspect_primary(now)
        elif self.status == VIEW_CHANGE:
            self._tick_view_change(now)
        else:
            self._tick_recovering(now)
        if now >= self._deadline_repair:
            self._deadline_repair = now + self.options.repair_interval
            self._repair()
        if self._transfer is not None and now >= self._transfer_deadline:
            self._transfer_retry()
        out, self._out = self._out, []
        return out

    def send_commit(self) -> list[Action]:
        """The primary broadcasts Commit now rather than at its next idle heartbeat (a backup
        that forwarded a request waits to execute it)."""
        if self.status == NORMAL and self.is_primary:
            self._send_commit()
        out, self._out = self._out, []
        return out

    def read(self, query: bytes) -> tuple[int, bytes] | None:
        """(commit_min, answer) from executed state; None while recovering or transferring."""
        if self.status == RECOVERING or self.transferring:
            return None
        if self.mutant == "serve_uncommitted_reads":
            pending = [(p.operation, p.body) for k in range(self.commit_min + 1, self.op + 1)
                       if (p := self._present(k)) is not None]
            mutant_sm = cast(UncommittedReads, self.sm)  # the mutant runs on partition models
            return self.commit_min, mutant_sm.read_uncommitted(query, pending)
        return self.commit_min, self.sm.read(query)

    # -- sending ----------------------------------------------------------------------------------

    def _msg(self, command: int, **fields: object) -> Message:
        return Message(command, cluster=self.cluster, view=self.view, replica=self.replica,
                       group=self.group, **fields)

    def _send(self, to: int, m: Message) -> None:
        if self.mutant != "advertise_undurable_view":
            if m.command in _NORMAL_SCOPED or (m.command == C.REPAIR_PREPARE and m.flags & 2):
                if self.log_view_durable < self.view or self.view_durable < self.view:
                    return
            elif m.command in _VIEW_SCOPED and self.view_durable < self.view:
                return
        self._out.append((SEND, to, m))

    def _broadcast(self, m: Message) -> None:
        for r in self.others:
            self._send(r, m)

    def _persist(self) -> None:
        """Write the superblock with the current view, log_view, suffix and checkpoint."""
        pending = self._cp_pending
        cp, area, size, checksum, header = (pending if pending is not None and pending[5]
                                            else self.checkpoint)[:5]
        low = min(self.commit_max, self.op)
        vh = tuple(prepare_header(self.log[k]) for k in range(self.op, low - 1, -1)
                   if k in self.log)
        if len(vh) > self.options.pipeline_max + 1:
            raise Divergence(f"log suffix of {len(vh)} headers exceeds the pipeline")
        self.superblock.write(SuperblockState(
            view=self.view, log_view=self.log_view, commit_max=self.commit_max, op=self.op,
            checkpoint_op=cp, checkpoint_header=header, snapshot_area=area, snapshot_size=size,
            snapshot_checksum=checksum, view_headers=vh))
        if self.mutant == "advertise_undurable_view":  # pretend the write already completed
            self.view_durable, self.log_view_durable = self.view, self.log_view

    def _on_superblock_durable(self, state: SuperblockState) -> None:
        self.view_durable = max(self.view_durable, state.view)
        self.log_view_durable = max(self.log_view_durable, state.log_view)
        pending = self._cp_pending
        if pending is not None and pending[5] and state.checkpoint_op == pending[0]:
            self.checkpoint = pending[:5]
            self._cp_pending = None
            self._transfer_installing = False
            for k in sorted(self._deferred):
                self._deferred.discard(k)
                self._persist_prepare(k)
            self._commit()
        self._on_durable_view()

    # -- execution --------------------------------------------------------------------------------

    def _present(self, op: int) -> Message | None:
        p = self.cache.get(op)
        h = self.log.get(op)
        return p if p is not None and h is not None and p.checksum == h.checksum else None

    def _commit(self) -> None:
        while self.commit_min < self.commit_max and not self.transferring:
            op = self.commit_min + 1
            p = self._present(op)
            if p is None:
                return
            if p.parent != self.log[self.commit_min].checksum:
                raise Divergence(f"replica {self.replica}: op {op} does not chain to the "
                                 f"executed op {self.commit_min}")
            self._apply(p)

    def _apply(self, p: Message) -> None:
        """Execute a committed op. A retry of an executed request is skipped (its cached reply
        answers it); a request whose session was evicted after it was prepared still executes,
        since the primary already stamped the ops after it (its client hears Eviction: outcome
        unknown)."""
        op = p.op
        forget = self.mutant == "forget_client_table"
        entry = self.client_table.get(p.client)
        own = entry if entry is not None and entry.session == p.session else None
        reply: bytes | None = None
        if p.operation == REGISTER:
            if forget or not (entry is not None and entry.request == 0
                              and entry.operation == REGISTER):
                reply = _U64.pack(op)
                self.client_table.register(p.client, op, REGISTER, reply)
        elif forget or own is None or p.request > own.request:
            reply = self.sm.apply(op, p.operation, p.body, p.timestamp)
            if own is not None:
                self.client_table.record(p.client, p.request, op, p.operation, reply)
        self.commit_min = op
        self.committed_ring[op % self.slots] = (op, p.checksum)
        self.log.pop(op - 1, None)
        self.cache.pop(op, None)
        self.pipeline.pop(op, None)
        self._out.append((COMMITTED, op, p, reply is not None))
        if self.status == NORMAL and self.is_primary:
            entry = self.client_table.get(p.client)
            if entry is None or entry.session != p.session and p.operation != REGISTER:
                self._out.append((REPLY, p.client, self._msg(
                    C.EVICTION, client=p.client, session=p.session)))
            elif reply is not None:
                self._send_reply(p, reply)
            elif entry.request == p.request:
                self._send_reply_from_table(p.client, entry)
        if op % self.options.checkpoint_interval == 0:
            self._checkpoint(p)

    def _send_reply(self, p: Message, reply: bytes) -> None:
        self._out.append((REPLY, p.client, self._msg(
            C.REPLY, client=p.client, session=p.session, request=p.request, op=p.op,
            commit=self.commit_min, operation=p.operation, body=reply)))

    def _send_reply_from_table(self, client: bytes, entry: Session) -> None:
        self._out.append((REPLY, client, self._msg(
            C.REPLY, client=client, session=entry.session, request=entry.request, op=entry.op,
            commit=self.commit_min, operation=entry.operation, body=entry.reply)))

    # -- checkpoints ------------------------------------------------------------------------------

    def _checkpoint(self, p: Message) -> None:
        if self._cp_pending is not None or self.transferring:
            return
        state = self.sm.snapshot()
        if state is None:  # the machine cannot describe this op's state: the next checkpoint
            return
        table = self.client_table.encode()
        blob = prepare_header(p) + _SNAP_HEAD.pack(len(table)) + table + state
        self._write_checkpoint(p.op, blob)

    def _write_checkpoint(self, op: int, blob: bytes) -> None:
        area = 1 - self.checkpoint[1]
        self._cp_pending = (op, area, len(blob), xxhash.xxh3_128_digest(blob),
                            blob[:HEADER_SIZE], False)
        self.storage.write(snapshot_zone(area), 0, blob, ("snap", op, area))

    def _on_snapshot_durable(self, token: tuple[object, ...]) -> None:
        pending = self._cp_pending
        if pending is None or (pending[0], pending[1]) != (token[1], token[2]):
            return
        self._cp_pending = pending[:5] + (True,)
        self._persist()
