"""Normal operation of `Replica`: the primary prepares, backups accept and acknowledge.

The primary admits a request (client table and pipeline first: a retry of an executed request
gets its cached reply, a retry of a prepared one waits), lets the state machine stamp it,
chains it to the previous prepare, journals it and sends it to every backup (star; or to its
successor along a chain, `Options.replication`). Backups take prepares of their view from its
primary, journal them and acknowledge once durable; the primary commits in op order once a
replication quorum, itself included, holds an op, and retransmits to whoever has not
acknowledged.
"""

from __future__ import annotations

from .message import HEADER_SIZE, ZERO16, Command, Message, encode
from .replica_state import ReplicaState
from .state_machine import OPERATION_MIN, REGISTER
from .status import NORMAL, RECOVERING, REPLY, VIEW_CHANGE, Divergence

C = Command


class NormalMixin(ReplicaState):
    # -- normal operation: primary ----------------------------------------------------------------

    def _on_request(self, m: Message) -> None:
        if (self.status != NORMAL or not self.is_primary or self.transferring
                or self.log_view_durable < self.view or self.commit_min != self.commit_max):
            return
        forget = self.mutant == "forget_client_table"
        entry = self.client_table.get(m.client)
        in_pipeline = [self.log[k] for k in self.pipeline if self.log[k].client == m.client]
        if m.operation == REGISTER:
            if any(p.operation == REGISTER for p in in_pipeline):
                return
            if entry is not None and entry.request == 0 and entry.operation == REGISTER:
                # A retried registration is answered from the table, but not while another
                # client's registration is still in the pipeline: it may evict this session
                # when it commits (a replica ahead of this one may already have told the client
                # so), and a stale session would let the client reuse its request numbers.
                if any(self.log[k].operation == REGISTER for k in self.pipeline):
                    return
                self._send_reply_from_table(m.client, entry)
                return
        elif m.operation < OPERATION_MIN:
            return
        else:
            if entry is None or entry.session != m.session:
                if not any(p.operation == REGISTER for p in in_pipeline):
                    self._out.append((REPLY, m.client, self._msg(
                        C.EVICTION, client=m.client, session=m.session)))
                return
            if not forget:
                if m.request <= entry.request:
                    if m.request == entry.request:
                        self._send_reply_from_table(m.client, entry)
                    return
                if any(p.request == m.request and p.session == m.session for p in in_pipeline):
                    return
        self._prepare(m)

    def _prepare(self, m: Message) -> None:
        op = self.op + 1
        if (op - self.commit_max > self.options.pipeline_max
                or op - self.slots > self.checkpoint[0]):
            return  # full: the client retries
        body = b""
        if m.operation != REGISTER:
            pending = [(p.operation, p.body) for k in range(self.commit_min + 1, op)
                       if (p := self.cache.get(k)) is not None and p.operation >= OPERATION_MIN]
            stamped = self.sm.stamp(m.operation, m.body, pending)
            if stamped is None:
                return
            body = stamped
        if HEADER_SIZE + len(body) > self.options.prepare_max:
            return
        self._last_timestamp = max(self._last_timestamp + 1, self.clock.now())
        p = self._msg(C.PREPARE, client=m.client, parent=self.log[self.op].checksum,
                      session=m.session, op=op, commit=self.commit_max,
                      timestamp=self._last_timestamp, request=m.request, operation=m.operation,
                      body=body)
        raw = encode(p)
        self.op = op
        self.log[op] = self.cache[op] = p
        self.pipeline[op] = set()
        self.journal.write(op, raw, p.checksum)
        if self.options.replication == "chain":
            if self.n > 1:
                self._send((self.replica + 1) % self.n, p)
        else:
            self._broadcast(p)

    def _on_prepare_ok(self, m: Message) -> None:
        if m.view > self.view:
            self._jump(m.view)
            return
        if m.view < self.view or self.status != NORMAL or not self.is_primary:
            return
        acks = self.pipeline.get(m.op)
        if acks is not None and self.log[m.op].checksum == m.prepare_checksum:
            acks.add(m.replica)
        if m.op > self.acked_op.get(m.replica, -1) and (
                (h := self.log.get(m.op)) is not None and h.checksum == m.prepare_checksum):
            self.acked_op[m.replica] = m.op  # late ones too (after the commit): who keeps up
        if m.commit > self.commit_max and m.commit <= self.op:
            self.commit_max = m.commit  # the acker executed these: they are committed
        self._try_commit_primary()

    def _try_commit_primary(self) -> None:
        need = 0 if self.mutant == "commit_before_quorum" else self.q.replication
        while True:
            acks = self.pipeline.get(self.commit_max + 1)
            if acks is None or len(acks) < need:
                break
            self.commit_max += 1
        self._commit()

    def _send_commit(self) -> None:
        self._broadcast(self._commit_message())

    def _commit_message(self) -> Message:
        h = self.log.get(self.commit_max)
        return self._msg(C.COMMIT, commit=self.commit_max,
                         commit_checksum=h.checksum if h is not None else ZERO16)

    def _retransmit_prepares(self) -> None:
        for op, acks in self.pipeline.items():
            p = self.cache.get(op)
            if p is None:
                continue
            for r in self.others:
                if r not in acks:
                    self._send_prepare(r, p)

    def _send_prepare(self, to: int, p: Message) -> None:
        if p.view == self.view:
            self._send(to, p)
        else:  # adopted from an older view: vouch for it as this view's primary
            self._send(to, self._msg(C.REPAIR_PREPARE, flags=2, body=p.raw))

    # -- normal operation: backup -----------------------------------------------------------------

    def _on_prepare(self, m: Message) -> None:
        if m.view > self.view:
            if m.replica == m.view % self.n:
                self._jump(m.view)
            return
        if m.view < self.view or m.replica != self.primary_index:
            return
        if self.status == RECOVERING:
            self._request_start_view(m.replica)
            return
        if self.status == VIEW_CHANGE:
            self._view_is_live()
            if self.log_view < self.view and not self._installing:
                self._request_start_view(m.replica)
            return
        self._heard_from_primary()
        if self.transferring:
            return
        if m.op <= self.commit_min:
            self._ack_executed(m)
            return
        new = m.op not in self.log
        if self._accept_canonical(m, ack=True) and new and self.options.replication == "chain":
            successor = (self.replica + 1) % self.n
            if successor != self.primary_index:
                self._send(successor, m)
        self._commit()

    def _on_commit(self, m: Message) -> None:
        if m.view > self.view:
            if m.replica == m.view % self.n:
                self._jump(m.view)
            return
        if m.view < self.view or m.replica != self.primary_index or self.is_primary:
            return
        if self.status != NORMAL:
            if self.status == VIEW_CHANGE:
                self._view_is_live()
            if self.status == RECOVERING or (self.log_view < self.view and not self._installing):
                self._request_start_view(m.replica)
            return
        self._heard_from_primary()
        h = self.log.get(m.commit)
        if h is not None and m.commit_checksum != ZERO16 and h.checksum != m.commit_checksum:
            raise Divergence(f"replica {self.replica}: commit {m.commit} checksum differs")
        self.commit_max = max(self.commit_max, m.commit)
        self._commit()

    def _heard_from_primary(self) -> None:
        self._exit_from.pop(self.replica, None)  # withdraw a vote to leave the view
        self._deadline_heartbeat = self._now + self.options.heartbeat_timeout + \
            self.prng.randrange(self.options.heartbeat_timeout // 2 + 1)

    def _accept_canonical(self, p: Message, ack: bool) -> bool:
        """Take `p` into the log as canonical for the current log; False if out of reach."""
        op = p.op
        if op <= self.commit_min or op > self.commit_min + 2 * self.slots:
            return False
        h = self.log.get(op)
        if h is not None and h.checksum != p.checksum:
            raise Divergence(f"replica {self.replica}: op {op} differs from the canonical log")
        below, above = self.log.get(op - 1), self.log.get(op + 1)
        if below is not None and below.checksum != p.parent:
            raise Divergence(f"replica {self.replica}: op {op} does not chain to op {op - 1}")
        if above is not None and above.parent != p.checksum:
            raise Divergence(f"replica {self.replica}: op {op + 1} does not chain to op {op}")
        self.log[op] = self.cache[op] = p
        if op > self.op:
            self.op = op
        self.commit_max = max(self.commit_max, p.commit)
        if ack and self.mutant == "ack_not_durable":
            self._send_prepare_ok(op)
        elif ack and self.journal.durable(op, p.checksum):
            self._send_prepare_ok(op)
        self._persist_prepare(op)
        self._promote(op)
        return True

    def _persist_prepare(self, op: int) -> None:
        p = self.cache.get(op)
        h = self.log.get(op)
        if p is None or h is None or p.checksum != h.checksum or op <= self.commit_min:
            return
        if self.journal.durable(op, p.checksum) or self.journal.pending(op, p.checksum):
            return
        if op - self.slots > self.checkpoint[0]:
            self._deferred.add(op)
            return
        self.journal.write(op, encode(p), p.checksum)

    def _on_prepare_durable(self, op: int, checksum: bytes) -> None:
        h = self.log.get(op)
        if h is None or h.checksum != checksum or self.status != NORMAL:
            return
        if self.is_primary:
            acks = self.pipeline.get(op)
            if acks is not None:
                acks.add(self.replica)
                self._try_commit_primary()
        elif self.mutant != "ack_not_durable":
            self._send_prepare_ok(op)

    def _ack_executed(self, p: Message) -> None:
        """A retransmitted prepare we already executed: acknowledge it if it is durable here
        (the primary may have missed our first PrepareOk)."""
        if self.committed_ring.get(p.op % self.slots) == (p.op, p.checksum) and \
                self.journal.durable(p.op, p.checksum):
            self._send(self.primary_index, self._msg(
                C.PREPARE_OK, parent=p.parent, prepare_checksum=p.checksum, op=p.op,
                commit=self.commit_min))

    def _send_prepare_ok(self, op: int) -> None:
        if self.status != NORMAL or self.is_primary or self.transferring or op <= self.commit_min:
            return
        h = self.log[op]
        self._send(self.primary_index, self._msg(C.PREPARE_OK, parent=h.parent,
                                                 prepare_checksum=h.checksum, op=op,
                                                 commit=self.commit_min))
