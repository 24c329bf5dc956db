"""Repair of missing or corrupt prepares, and state transfer for a replica behind the journal.

Repair (`RequestPrepares` → `RepairPrepare`*): a backup asks the primary for a range (the primary
vouches for what is in its log: FROM_PRIMARY; anyone vouches for what it executed: COMMITTED),
and asks any peer for the chain below a prepare whose checksum it knows (anchored: the answer
must match the checksum its successor's `parent` names). A prepare that cannot be verified yet
waits in the cache until the chain reaches it. Nothing is ever truncated to "fix" a checksum
failure: a corrupt prepare is fetched again.

State transfer (`RequestSnapshot` → `SnapshotChunk`*): when a peer answers `RangeEvicted` (the
ops we need are older than its checkpoint and gone from its journal), we fetch its latest durable
checkpoint in chunks, one in flight, verify the whole snapshot's checksum, install it, persist it
as our own checkpoint, and only then take part in quorums again. A state machine whose snapshot
names data it does not carry (`missing`: a partition's segments) gets it first: the replica
returns a FETCH_STATE action (peer, the machine's snapshot), the driver fetches the data and calls
`on_state_fetched`, and only then is the snapshot installed (until then the replica stays
`transferring`: no acks, no votes).
"""

from __future__ import annotations

import xxhash

from .message import COMMITTED, FROM_PRIMARY, ZERO16, Command, Message, encode
from .replica_state import Action, ReplicaState
from .status import FETCH_STATE, NORMAL, RECOVERING, VIEW_CHANGE, Divergence
from .storage import snapshot_zone


class Transfer:
    __slots__ = ("peer", "checkpoint_op", "total", "checksum", "parts", "received", "attempts")

    def __init__(self, peer: int) -> None:
        self.peer = peer
        self.checkpoint_op = self.total = self.received = self.attempts = 0
        self.checksum = ZERO16
        self.parts: list[bytes] = []


class RepairMixin(ReplicaState):
    def _init_repair_state(self) -> None:
        self._transfer: Transfer | None = None
        self._transfer_installing = False
        self._transfer_fetching = None
        self._transfer_deadline = 0
        self._deadline_repair = self._now + self.options.repair_interval
        self._blob_cache: tuple[int, bytes] | None = None

    # -- asking -----------------------------------------------------------------------------------

    def _repair(self) -> None:
        if self.transferring or self.status == RECOVERING or not self.others:
            return
        if self.status == VIEW_CHANGE:
            if self._plan is not None and self.is_primary:
                self._try_finish_view_change(request=True)
            return
        top = max(self.op, self.commit_max)
        first = next((k for k in range(self.commit_min + 1, top + 1)
                      if self._present(k) is None), None)
        if first is None:
            return
        chunk = self.options.repair_chunk_max
        ranged = self._msg(Command.REQUEST_PREPARES, from_op=first,
                           to_op=min(top, first + chunk - 1))
        peer = self.prng.choice(self.others)
        self._send(peer, ranged)  # anyone serves what it executed (the primary's copy may rot)
        if not self.is_primary and peer != self.primary_index:
            self._send(self.primary_index, ranged)
        for k in range(top, first - 1, -1):
            if self._present(k) is not None:
                continue
            h, above = self.log.get(k), self.log.get(k + 1)
            checksum = h.checksum if h is not None else above.parent if above else None
            if checksum is not None:
                self._send(self.prng.choice(self.others), self._msg(
                    Command.REQUEST_PREPARES, from_op=max(first, k - chunk + 1), to_op=k,
                    prepare_checksum=checksum))
                break

    # -- answering --------------------------------------------------------------------------------

    def _find(self, op: int, checksum: bytes) -> Message | None:
        p = self.cache.get(op)
        if p is not None and p.checksum == checksum:
            return p
        h = self.log.get(op)
        if h is not None and h.raw is not None and h.checksum == checksum:
            return h
        p = self.journal.read(op)
        return p if p is not None and p.checksum == checksum else None

    def _find_committed(self, op: int) -> Message | None:
        ring = self.committed_ring.get(op % self.slots)
        if ring is None or ring[0] != op:
            return None
        return self._find(op, ring[1])

    def _on_request_prepares(self, m: Message) -> None:
        chunk = self.options.repair_chunk_max
        if m.prepare_checksum != ZERO16:
            op, p = m.to_op, self._find(m.to_op, m.prepare_checksum)
            if p is None:
                self._maybe_evicted(m.replica, op)
            sent = 0
            while p is not None and op >= m.from_op and sent < chunk:
                committed = op <= self.commit_min and self._find_committed(op) is p
                self._send_repair(m.replica, p, COMMITTED if committed else 0)
                sent += 1
                op -= 1
                p = self._find(op, p.parent) if op >= m.from_op and op > 0 else None
            return
        for op in range(m.from_op, min(m.to_op, m.from_op + chunk - 1) + 1):
            if op <= self.commit_min:
                p = self._find_committed(op)
                if p is None:  # evicted (then say so), or damaged here: serve the rest
                    if op <= self.checkpoint[0]:
                        self._maybe_evicted(m.replica, op)
                        return
                    continue
                self._send_repair(m.replica, p, COMMITTED)
            elif self.status == NORMAL and self.is_primary and m.view == self.view:
                p = self._present(op)
                if p is not None:
                    self._send_repair(m.replica, p, FROM_PRIMARY)
            else:
                return

    def _maybe_evicted(self, to: int, op: int) -> None:
        if 0 < op <= self.checkpoint[0]:
            self._send(to, self._msg(Command.RANGE_EVICTED, op=op,
                                     checkpoint_op=self.checkpoint[0]))

    def _send_repair(self, to: int, p: Message, flags: int) -> None:
        self._send(to, self._msg(Command.REPAIR_PREPARE, flags=flags, body=encode(p)))

    # -- receiving --------------------------------------------------------------------------------

    def _on_repair_prepare(self, m: Message) -> None:
        p = m.inner
        op = p.op
        if self.status == RECOVERING or self.transferring or op > self.commit_min + 2 * self.slots:
            return
        if op <= self.commit_min:
            if m.flags & FROM_PRIMARY and self.status == NORMAL and m.view == self.view:
                self._ack_executed(p)
            return
        normal = self.status == NORMAL
        if (not normal and m.flags & COMMITTED and self._plan is not None
                and op == self._plan.commit):
            self._commit_anchor = p  # executed by its sender: the only prepare op can be
            self._try_finish_view_change(request=False)
            return
        h = self.log.get(op)
        if h is not None:
            if h.checksum != p.checksum:
                if normal and m.flags & COMMITTED:
                    if m.view > self.view:  # our view's log was superseded: ours is stale
                        self._jump(m.view)
                        return
                    raise Divergence(f"replica {self.replica}: committed op {op} differs")
                return
            if self._present(op) is None:
                self._took_repair(p)
            if normal:
                self._accept_canonical(p, ack=not self.is_primary)
                self._commit()
            else:
                self.cache[op] = self.log[op] = p
                self._persist_prepare(op)
            return
        above = self.log.get(op + 1)
        vouched = m.flags & COMMITTED or (m.flags & FROM_PRIMARY and m.view == self.view
                                          and m.replica == self.primary_index)
        if normal and ((above is not None and above.parent == p.checksum) or vouched):
            self._took_repair(p)
            self._accept_canonical(p, ack=not self.is_primary)
            if m.flags & COMMITTED:
                self.commit_max = max(self.commit_max, op)
            self._commit()
            return
        cached = self.cache.get(op)
        if cached is None or cached.checksum != p.checksum:
            self._took_repair(p)
            self.cache[op] = p
        if self._plan is not None:
            self._try_finish_view_change(request=False)

    def _took_repair(self, p: Message) -> None:
        self.stats["repaired"] += 1
        self.stats["repair_bytes"] += p.size

    def _promote(self, op: int) -> None:
        """Move cached prepares into the log while they chain down from `op`."""
        while True:
            h = self.log.get(op)
            below = op - 1
            if h is None or below <= self.commit_min or below in self.log:
                return
            cached = self.cache.get(below)
            if cached is None or cached.checksum != h.parent:
                return
            self.log[below] = cached
            self._persist_prepare(below)
            op = below

    # -- state transfer ---------------------------------------------------------------------------

    def _on_range_evicted(self, m: Message) -> None:
        if (self.transferring or self.status != NORMAL or self._cp_pending is not None
                or m.checkpoint_op <= self.commit_min):
            return
        self.stats["transfers"] += 1
        self._transfer = Transfer(m.replica)
        self._transfer_request()

    def _transfer_request(self) -> None:
        t = self._transfer
        assert t is not None
        self._transfer_deadline = self._now + self.options.repair_interval
        self._send(t.peer, self._msg(Command.REQUEST_SNAPSHOT, offset=t.received,
                                     checkpoint_op=t.checkpoint_op))

    def _transfer_retry(self) -> None:
        t = self._transfer
        assert t is not None
        t.attempts += 1
        if t.attempts > 4:
            self._transfer = Transfer(self.prng.choice(self.others))
        self._transfer_request()

    def _durable_blob(self) -> bytes | None:
        cp, area, size, checksum, _ = self.checkpoint
        if self._blob_cache is not None and self._blob_cache[0] == cp:
            return self._blob_cache[1]
        blob = self.storage.read(snapshot_zone(area), 0, size)
        if xxhash.xxh3_128_digest(blob) != checksum:
            return None
        self._blob_cache = (cp, blob)
        return blob

    def _on_request_snapshot(self, m: Message) -> None:
        cp, _, _, checksum, _ = self.checkpoint
        blob = self._durable_blob() if cp else None
        if blob is None:
            return
        offset = m.offset if m.checkpoint_op == cp and m.offset < len(blob) else 0
        self._send(m.replica, self._msg(
            Command.SNAPSHOT_CHUNK, offset=offset, checkpoint_op=cp, total_size=len(blob),
            snapshot_checksum=checksum, body=blob[offset:offset + self.options.snapshot_chunk]))

    def _on_snapshot_chunk(self, m: Message) -> None:
        t = self._transfer
        if t is None or m.replica != t.peer:
            return
        if m.checkpoint_op != t.checkpoint_op:
            if m.offset != 0:
                return
            t.checkpoint_op, t.total, t.checksum = m.checkpoint_op, m.total_size, \
                m.snapshot_checksum
            t.parts, t.received = [], 0
        if m.offset != t.received or m.total_size != t.total or not m.body:
            return
        t.parts.append(m.body)
        t.received += len(m.body)
        t.attempts = 0
        self.stats["transfer_bytes"] += len(m.body)
        if t.received < t.total:
            self._transfer_request()
            return
        blob = b"".join(t.parts)
        self._transfer = None
        if xxhash.xxh3_128_digest(blob) != t.checksum or t.checkpoint_op <= self.commit_min:
            return
        state = self._sm_state(blob)
        if self.sm.missing(state):
            self.stats["transfer_fetches"] += 1
            self._transfer_fetching = (blob, t.checkpoint_op, t.checksum)
            self._out.append((FETCH_STATE, t.peer, state))
            return
        self._install_snapshot(blob, t.checkpoint_op, t.checksum)

    @property
    def fetching_checkpoint(self) -> int:
        """The checkpoint op whose state machine data a FETCH_STATE asked for (0: none)."""
        return self._transfer_fetching[1] if self._transfer_fetching is not None else 0

    def on_state_fetched(self, done: bool) -> list[Action]:
        """The driver fetched (`done`) or gave up fetching the data a FETCH_STATE named. On
        failure the transfer starts again at the next RangeEvicted (maybe from a newer
        checkpoint: a peer's retention may have removed what this one named)."""
        pending, self._transfer_fetching = self._transfer_fetching, None
        if pending is not None and done and pending[1] > self.commit_min:
            self._install_snapshot(*pending)
        out, self._out = self._out, []
        return out

    def _install_snapshot(self, blob: bytes, cp: int, checksum: bytes) -> None:
        header = self._restore_blob(blob, checksum)
        if header.op != cp:
            raise Divergence("snapshot header does not match its checkpoint op")
        cur = self.log.get(cp)
        if cur is not None and cur.checksum != header.checksum:
            raise Divergence(f"replica {self.replica}: checkpoint {cp} differs from our log")
        self.commit_min = cp
        self.commit_max = max(self.commit_max, cp)
        self.op = max(self.op, cp)
        for k in [k for k in self.log if k < cp]:
            del self.log[k]
        for k in [k for k in self.cache if k <= cp]:
            del self.cache[k]
        self.log[cp] = header
        above = self.log.get(cp + 1)
        if above is not None and above.parent != header.checksum:
            raise Divergence(f"replica {self.replica}: log does not chain to checkpoint {cp}")
        self.committed_ring[cp % self.slots] = (cp, header.checksum)
        for k in [k for k in self.pipeline if k <= cp]:
            del self.pipeline[k]
        self._deferred = {k for k in self._deferred if k > cp}
        self._transfer_installing = True
        self._write_checkpoint(cp, blob)
