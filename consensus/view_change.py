"""The view change of `Replica`: StartViewChange, DoViewChange, StartView, RequestStartView.

A backup whose primary went silent votes to leave its view (StartViewChange with `EXIT`, from
normal status, for the view it is in) and moves to the next view only once a view-change
quorum, itself included, voted so: a replica cut off alone never changes its view, so it
cannot pull a healthy cluster into a view change when it comes back (TigerBeetle's
start_view_change in normal status). A replica that enters a view change (a quorum voted, or
it sees a newer view) persists the new view, broadcasts StartViewChange, and with a
view-change quorum of them sends its DoViewChange to the new primary. The new primary chooses
the log (`log_choice.merge`), fetches the bodies it lacks, persists the log as its `log_view`
and only then broadcasts StartView; backups install it, persist it, and acknowledge what they
hold. A view change that does not finish escalates to the next view only if a view-change
quorum took part in it (else the replica stays and retries), after a timeout that doubles with
each view passed since the last normal one (up to 8x), so slow disks or stalled peers get the
time a round needs instead of restarting it. A replica never re-runs the view change of a
view whose log it installed.
"""

from __future__ import annotations

from .log_choice import DoViewChange, Plan, merge
from .message import EXIT, ZERO16, Command, DecodeError, Message, header_list, prepare_header
from .replica_state import ReplicaState
from .status import NORMAL, RECOVERING, VIEW_CHANGE, Divergence


class ViewChangeMixin(ReplicaState):
    """StartViewChange / DoViewChange / StartView / RequestStartView handling for `Replica`."""

    def _init_view_change_state(self) -> None:
        self._svc_from: set[int] = set()
        self._dvcs: dict[int, DoViewChange] = {}
        self._dvc_ready = False
        self._installing = False  # log of `view` installed, waiting for the superblock
        self._want_start_view = False
        self._plan: Plan | None = None
        self._commit_anchor: Message | None = None  # an executed prepare at the plan's commit
        self._deadline_vc_send = self._deadline_vc_status = 0
        self._deadline_heartbeat = self._deadline_commit = self._deadline_prepare = 0
        self._rsv_sent_at = -(1 << 30)
        # votes to leave a view: replica -> (its view, tick received); own vote included
        self._exit_from: dict[int, tuple[int, int]] = {}
        self._deadline_exit = 0
        self._normal_view = self.log_view  # the last view this replica was normal in

    def _start_view_change(self, view: int) -> None:
        # A view whose log this replica installed has started: never run its view change again
        # (after a restart, its primary would otherwise prepare a second, different op there).
        view = max(view, self.log_view + 1)
        if view > self.view:
            self.view = view
            self.stats["view_changes"] += 1
        self.status = VIEW_CHANGE
        self._svc_from = {self.replica}
        self._dvcs = {}
        self._dvc_ready = self.q.view_change <= 1
        self._installing = False
        self._want_start_view = False
        self._plan = None
        self.pipeline = {}
        self._deadline_vc_send = self._now + self.options.view_change_retransmit
        self._deadline_vc_status = self._now + self._vc_status_timeout()
        self._persist()
        self._vc_send()

    def _vc_status_timeout(self) -> int:
        """The view change status timeout, doubled for each view passed since the last one
        this replica was normal in (up to 8x; TigerBeetle and Iggy back off too), plus up to
        half of it as jitter: a round that needs longer than the base (fsyncs on a loaded
        disk, a stalled peer) gets that time on a later attempt instead of restarting
        forever."""
        base = self.options.view_change_status_timeout
        timeout = base << min(max(self.view - self._normal_view - 1, 0), 3)
        return timeout + self.prng.randrange(timeout // 2 + 1)

    def _view_is_live(self) -> None:
        """In view change, normal traffic of this view's primary: the view has started and its
        primary is alive, so wait for its StartView rather than escalate (and pull the replicas
        already normal in it into another view change)."""
        self._deadline_vc_status = max(self._deadline_vc_status,
                                       self._now + self.options.view_change_status_timeout)

    # -- leaving a view: votes from normal status ---------------------------------------------

    def _suspect_primary(self, now: int) -> None:
        """Normal backup, primary silent past the heartbeat timeout: vote to leave this view
        (again every retransmit interval), and leave once a view-change quorum voted so."""
        if now < self._deadline_exit:
            return
        self._deadline_exit = now + self.options.view_change_retransmit
        if self.transferring:  # quorum-invisible
            return
        self._exit_from[self.replica] = (self.view, now)
        self._broadcast(self._msg(Command.START_VIEW_CHANGE, flags=EXIT))
        self._try_exit()

    def _exit_votes(self) -> set[int]:
        """Replicas that voted, within a heartbeat timeout, to leave the current view."""
        window = self.options.heartbeat_timeout
        return {r for r, (v, t) in self._exit_from.items()
                if v == self.view and self._now - t <= window}

    def _try_exit(self) -> None:
        votes = self._exit_votes()
        if self.replica in votes and len(votes) >= self.q.view_change:
            self._start_view_change(self.view + 1)

    def _on_exit_vote(self, m: Message) -> None:
        if m.view > self.view:  # the sender is normal in a newer view
            self._jump(m.view)
            return
        if m.view < self.view or self.status == RECOVERING:
            return
        self._exit_from[m.replica] = (m.view, self._now)
        if self.status == NORMAL:
            if self.is_primary:  # alive: the voter may only have missed heartbeats
                self._send(m.replica, self._commit_message())
            else:
                self._try_exit()
        elif not self._installing and self.log_view < self.view:
            self._request_start_view(self.primary_index)  # the view started without us

    def _jump(self, view: int) -> None:
        """Traffic of a newer, already normal view: join it and ask its primary for the log."""
        if self.status == RECOVERING:
            self._request_start_view(view % self.n)
            return
        self._start_view_change(view)
        self._want_start_view = True
        self._request_start_view(view % self.n)

    def _request_start_view(self, to: int) -> None:
        if self._now - self._rsv_sent_at < self.options.view_change_retransmit // 2:
            return
        self._rsv_sent_at = self._now
        self._send(to, self._msg(Command.REQUEST_START_VIEW, nonce=self.incarnation))

    def _tick_view_change(self, now: int) -> None:
        if now >= self._deadline_vc_status:
            # Escalate only with a view-change quorum in this view (in its view change, or
            # voting to leave it): a replica that hears nobody cannot win the next view either,
            # and climbing alone would pull the others into a view change when it returns.
            # Nor while installing: the view's log is chosen, only this replica's superblock
            # write is pending (a slow disk), and the others may already be normal in it.
            if not self._installing and \
                    len(self._svc_from | self._exit_votes()) >= self.q.view_change:
                self._start_view_change(self.view + 1)
            else:
                self._deadline_vc_status = now + self._vc_status_timeout()
        elif now >= self._deadline_vc_send:
            self._deadline_vc_send = now + self.options.view_change_retransmit
            self._vc_send()

    def _tick_recovering(self, now: int) -> None:
        if now < self._deadline_rsv:
            return
        # Probes count once a peer was heard: until then the links may simply not be up yet
        # (a restarted node dials and is dialled), and a view change started then would pull a
        # healthy primary into a new view; a replica that hears nobody cannot win one anyway.
        if self._heard_peer:
            self._probes += 1
        if self._probes > self.options.view_probe_attempts_max:
            self._start_view_change(self.view + 1)  # nobody leads: the whole cluster restarted
            return
        self._deadline_rsv = now + self.options.request_start_view_interval
        self._broadcast(self._msg(Command.REQUEST_START_VIEW, nonce=self.incarnation))

    def _vc_send(self) -> None:
        if (self.status != VIEW_CHANGE or self._installing or self.view_durable < self.view
                or self.transferring):
            return
        self._broadcast(self._msg(Command.START_VIEW_CHANGE))
        if self.is_primary:
            self._try_finish_view_change(request=True)
            return
        if self._dvc_ready:
            self._send_do_view_change()
        if self._want_start_view:
            self._request_start_view(self.primary_index)

    def _own_dvc(self) -> DoViewChange:
        commit = min(self.commit_max, self.op)
        headers = {k: h for k in range(commit, self.op + 1) if (h := self.log.get(k)) is not None}
        present = {k for k in headers if k > commit and self._present(k) is not None}
        nacks = {k for k, h in headers.items() if k > commit and not self.journal.durable(
            k, h.checksum) and self.faulty.get(k) != h.checksum}
        return DoViewChange(self.replica, self.log_view, self.op, commit, headers, present, nacks)

    def _send_do_view_change(self) -> None:
        if self.view_durable < self.view or self.transferring:
            return
        d = self._own_dvc()
        ops = sorted(d.headers, reverse=True)
        bits = sum(1 << i for i, k in enumerate(ops) if k in d.present)
        nacks = sum(1 << i for i, k in enumerate(ops) if k in d.nacks)
        self._send(self.primary_index, self._msg(
            Command.DO_VIEW_CHANGE, op=d.op, commit=d.commit, log_view=d.log_view,
            present=bits.to_bytes(16, "little"), nack=nacks.to_bytes(16, "little"),
            body=b"".join(prepare_header(d.headers[k]) for k in ops)))

    def _note_start_view_change(self, sender: int) -> None:
        self._svc_from.add(sender)
        if not self._dvc_ready and len(self._svc_from) >= self.q.view_change:
            self._dvc_ready = True
            if not self.is_primary:
                self._send_do_view_change()

    def _enter_view_change_from(self, view: int) -> bool:
        """Common view checks of SVC/DVC; True if the message should be processed further."""
        if view < self.view:
            return False
        if view == self.view and self.status == NORMAL:
            return False
        if view > self.view or self.status == RECOVERING:
            self._start_view_change(view)
        return self.status == VIEW_CHANGE and not self._installing

    def _on_start_view_change(self, m: Message) -> None:
        if m.flags & EXIT:
            self._on_exit_vote(m)
            return
        if m.view == self.view and self.status == NORMAL and self.is_primary:
            self._send_start_view(m.replica, ZERO16)
        if self._enter_view_change_from(m.view):
            self._note_start_view_change(m.replica)

    def _on_do_view_change(self, m: Message) -> None:
        if m.view == self.view and self.status == NORMAL and self.is_primary:
            self._send_start_view(m.replica, ZERO16)
        if not self._enter_view_change_from(m.view):
            return
        self._note_start_view_change(m.replica)
        if not self.is_primary:
            return
        headers = self._suffix_headers(m)
        if headers is None or m.log_view > m.view:
            return
        ops = [h.op for h in headers]
        bits, nack = int.from_bytes(m.present, "little"), int.from_bytes(m.nack, "little")
        present = {k for i, k in enumerate(ops) if bits >> i & 1 and k > m.commit}
        nacks = {k for i, k in enumerate(ops) if nack >> i & 1 and k > m.commit}
        self._dvcs[m.replica] = DoViewChange(m.replica, m.log_view, m.op, m.commit,
                                             {h.op: h for h in headers}, present, nacks)
        self._try_finish_view_change(request=False)

    def _suffix_headers(self, m: Message) -> list[Message] | None:
        """The headers of a DoViewChange / StartView, if they form a plausible log suffix:
        distinct ops, highest first, within [commit, op], no more than the pipeline allows."""
        try:
            headers = header_list(m)
        except DecodeError:
            return None
        ops = [h.op for h in headers]
        if (ops != sorted(set(ops), reverse=True) or m.commit > m.op
                or len(ops) > self.options.pipeline_max + 1
                or any(not m.commit <= k <= m.op for k in ops)):
            return None
        return headers

    def _try_finish_view_change(self, request: bool) -> None:
        if (self.status != VIEW_CHANGE or not self.is_primary or self._installing
                or self.view_durable < self.view or self.transferring):
            return
        dvcs = dict(self._dvcs)
        dvcs[self.replica] = self._own_dvc()
        if len(dvcs) < self.q.view_change:
            return
        first = self._plan is None
        plan = merge(dvcs, self.q.nack, self.cache,
                     truncate_on_any_nack=self.mutant == "ignore_nack_quorum")
        self._plan = plan
        if plan.op == plan.commit > self.commit_min and plan.commit not in plan.headers:
            # Nothing in the quorum vouches for the head (a committed op): installing the view
            # without its header would persist a log_view whose log ends in a hole. Ask a
            # replica that executed it (it answers with the COMMITTED flag).
            anchor = self._commit_anchor
            if anchor is None or anchor.op != plan.commit:
                if request or first:
                    self._send(self.prng.choice(self.others), self._msg(
                        Command.REQUEST_PREPARES, from_op=plan.commit, to_op=plan.commit,
                        prepare_checksum=ZERO16))
                return
            plan.headers[plan.commit] = anchor
        need = [k for k in range(plan.commit + 1, plan.op + 1)
                if (p := self.cache.get(k)) is None or p.checksum != plan.checksum(k)]
        if need:
            if request or first:
                self._request_plan(plan, need)
            return
        self._finalize(plan)

    def _request_plan(self, plan: Plan, need: list[int]) -> None:
        for k in need[:self.options.repair_chunk_max]:
            checksum = plan.checksum(k)
            if checksum is None:
                continue
            holders = [r for r in plan.holders.get(k, ()) if r >= 0 and r != self.replica]
            to = self.prng.choice(holders or self.others)
            self._send(to, self._msg(Command.REQUEST_PREPARES, from_op=k, to_op=k,
                                     prepare_checksum=checksum))

    def _finalize(self, plan: Plan) -> None:
        """Install the chosen log as this view's and persist it; StartView once durable."""
        for k in [k for k in self.log if k > plan.commit]:
            del self.log[k]
        for k in range(plan.commit + 1, plan.op + 1):
            self.log[k] = self.cache[k]
        anchor = plan.headers.get(plan.commit)
        if plan.op > plan.commit:
            self._verify_below(plan.commit + 1)
        elif anchor is not None and plan.commit > self.commit_min:
            self._set_log(plan.commit, anchor)
            self._verify_below(plan.commit)
        else:
            self._verify_below(plan.commit + 1)  # nothing vouches for our entries: drop them
        self.op = max(plan.op, self.commit_min)
        self.commit_max = max(self.commit_max, plan.commit)
        self.log_view = self.view
        self.pipeline = {k: set() for k in range(self.commit_max + 1, self.op + 1)}
        for k, acks in self.pipeline.items():
            if self.journal.durable(k, self.log[k].checksum):
                acks.add(self.replica)
            else:
                self._persist_prepare(k)
        self._last_timestamp = max([self._last_timestamp] +
                                   [h.timestamp for h in self.log.values()])
        self._installing = True
        self._plan = None
        self._persist()

    def _verify_below(self, top: int) -> None:
        """Keep log entries below `top` only while they hash-chain down from the canonical entry
        at `top` (all of them go if there is none)."""
        if top > self.commit_min and top not in self.log:
            for j in range(self.commit_min + 1, top):
                self.log.pop(j, None)
            return
        k = top - 1
        while k > self.commit_min:
            above = self.log.get(k + 1)
            if above is None:
                break
            cur = self.log.get(k)
            if cur is not None and cur.checksum == above.parent:
                k -= 1
                continue
            cached = self.cache.get(k)
            if cached is not None and cached.checksum == above.parent:
                self.log[k] = cached
                self._persist_prepare(k)
                k -= 1
                continue
            break
        if k > self.commit_min:
            for j in range(self.commit_min + 1, k + 1):
                self.log.pop(j, None)
        elif k == self.commit_min:
            above = self.log.get(k + 1)
            if above is not None and above.parent != self.log[k].checksum:
                raise Divergence(f"replica {self.replica}: new log forks below executed op {k}")

    def _send_start_view(self, to: int, nonce: bytes) -> None:
        ops = [k for k in range(self.op, self.commit_max - 1, -1) if k in self.log]
        self._send(to, self._msg(Command.START_VIEW, op=self.op, commit=self.commit_max,
                                 nonce=nonce,
                                 body=b"".join(prepare_header(self.log[k]) for k in ops)))

    def _on_request_start_view(self, m: Message) -> None:
        if self.status == NORMAL and self.is_primary and m.view <= self.view:
            self._send_start_view(m.replica, m.nonce)

    def _on_start_view(self, m: Message) -> None:
        if m.replica != m.view % self.n or m.view < self.view:
            return
        if m.view == self.view and self.status == NORMAL:
            return
        headers = self._suffix_headers(m)
        if headers is None:
            return
        ops = [h.op for h in headers]
        if (m.op > m.commit and (not ops or ops[0] != m.op)) or any(
                headers[i + 1].checksum != headers[i].parent
                for i in range(len(headers) - 1) if ops[i + 1] == ops[i] - 1):
            return
        if self.log_view == m.view:  # same log: only add what we lack
            for h in headers:
                cur = self.log.get(h.op)
                if cur is None:
                    if h.op > self.commit_min:
                        self._set_log(h.op, h)
                elif cur.checksum != h.checksum:
                    raise Divergence(f"replica {self.replica}: StartView differs at op {h.op}")
            self.op = max(self.op, m.op)
        else:
            if m.op < self.commit_min:
                raise Divergence(f"replica {self.replica}: StartView {m.op} below executed "
                                 f"{self.commit_min}")
            for k in [k for k in self.log if k > m.op]:
                del self.log[k]
            given = set(ops)
            for k in range(m.commit + 1, m.op + 1):
                if k not in given:
                    self.log.pop(k, None)
            for h in headers:
                if h.op == self.commit_min:
                    if self.log[h.op].checksum != h.checksum:
                        raise Divergence(f"replica {self.replica}: StartView forks at executed "
                                         f"op {h.op}")
                elif h.op > self.commit_min:
                    self._set_log(h.op, h)
            self._verify_below(min(ops) if ops else m.op + 1)
            self.op = m.op
        self.view = m.view
        self.log_view = m.view
        self.commit_max = max(self.commit_max, m.commit)
        for h in headers:
            self._persist_prepare(h.op)
            self._promote(h.op)
        self.status = VIEW_CHANGE
        self._installing = True
        self.pipeline = {}
        self._persist()
        self._on_durable_view()
        self._commit()

    def _on_durable_view(self) -> None:
        if self.status != VIEW_CHANGE:
            return
        if self._installing:
            if self.log_view_durable >= self.view and self.view_durable >= self.view:
                self._enter_normal()
        else:
            self._vc_send()

    def _enter_normal(self) -> None:
        self.status = NORMAL
        self._normal_view = self.view
        self.acked_op = {}  # acknowledgements count from this view on
        self._installing = False
        self._enter_normal_timers()
        if self.is_primary:
            for k, acks in self.pipeline.items():  # writes that completed while installing
                if self.journal.durable(k, self.log[k].checksum):
                    acks.add(self.replica)
            for r in self.others:
                self._send_start_view(r, ZERO16)
            self._retransmit_prepares()
            self._send_commit()
            self._try_commit_primary()
        else:
            for k in range(self.commit_max + 1, self.op + 1):
                h = self.log.get(k)
                if h is not None and self.journal.durable(k, h.checksum):
                    self._send_prepare_ok(k)
        self._commit()

    def _enter_normal_timers(self) -> None:
        self._heard_from_primary()
        self._deadline_commit = self._now + self.options.commit_interval
        self._deadline_prepare = self._now + self.options.prepare_retransmit
        self._deadline_repair = self._now + 1
