"""Safety invariants S1–S10 (docs/consensus.md), checked on every event and tick; a breach raises
Violation.

The checker trusts nothing a replica says about itself where ground truth exists: durability is
read from the simulated disks (what reached them, either copy of a journal slot; the superblock
bytes), commits are compared across replicas, and reads and acknowledgements are compared with
the canonical committed log it builds from every replica's commits.

| id | what fails |
|---|---|
| S1 | a replica's executed op (commit_min) or durable checkpoint goes back |
| S2 | view or log_view goes back, log_view > view, or a view-scoped message advertises a view the
       superblock on disk does not hold yet |
| S3 | two different prepares committed at one op, or a committed op not chained to its parent, or
       committed before a replication quorum held it durably |
| S4 | replicas' checkpoints at one op differ; after quiescence, executed states differ |
| S5 | an acknowledged request is not in the committed log (or with other bytes/offset), or a
       request executed twice |
| S6 | a committed op that no client requested |
| S7 | a Prepare from a replica that is not primary of its view, or two prepares for one
       (view, op) |
| S8 | PrepareOk / StartViewChange / DoViewChange from a recovering or transferring replica; a
       PrepareOk for a prepare that is not durable on its sender |
| S9 | after quiescence a replica ahead of its primary |
| S10 | a read returned a record that is not committed (or other bytes) |
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

import xxhash

from ..journal import FRAME, HEADERS, PREPARES
from ..message import Command, Message
from ..state_machine import REGISTER
from ..status import RECOVERING
from ..storage import snapshot_zone
from . import models

if TYPE_CHECKING:
    from ..replica import Replica
    from ..superblock import Superblock
    from .disk import Disk

_OP_AT = 168  # offset of `op` in a prepare header
_VIEW_SCOPED = frozenset({Command.START_VIEW_CHANGE, Command.DO_VIEW_CHANGE,
                          Command.START_VIEW, Command.PREPARE_OK, Command.COMMIT,
                          Command.PREPARE})
_QUORUM_VISIBLE = frozenset({Command.PREPARE_OK, Command.START_VIEW_CHANGE,
                             Command.DO_VIEW_CHANGE})
_SNAPSHOT_ZONES = (snapshot_zone(0), snapshot_zone(1))


class Violation(AssertionError):
    pass


class Checker:
    def __init__(self, replicas: int, replication_quorum: int) -> None:
        self.n, self.q = replicas, replication_quorum
        self.canonical: dict[int, dict[int, Message]] = {}
        self.durable: dict[tuple[int, int], set[tuple[int, bytes]]] = {}
        self.prepares: dict[tuple[int, int, int], bytes] = {}
        self.executed: dict[tuple[int, bytes, int, int], int] = {}
        self.requests: dict[tuple[bytes, int, int], tuple[int, bytes]] = {}
        self.records: dict[int, dict[int, bytes]] = {}
        self.checkpoints: dict[tuple[int, int], bytes] = {}
        self.seen: dict[tuple[int, int], list[int]] = {}  # commit_min, view, log_view, cp
        self.advertised: dict[tuple[int, int], list[int]] = {}  # max view, max log_view sent
        self.sb_view: dict[tuple[int, int], int] = {}
        self.superblocks: dict[tuple[int, int], tuple[Superblock, Disk]] = {}  # per replica
        self.reads = self.acks = 0

    def fail(self, inv: str, text: str) -> None:
        raise Violation(f"{inv}: {text}")

    # -- ground truth from the disks ------------------------------------------------------------

    def on_durable(self, node: int, group: int, zone: str, offset: int, data: bytes) -> None:
        if zone == PREPARES or zone == HEADERS:
            op = struct.unpack_from("<Q", data, FRAME + _OP_AT)[0]
            self.durable.setdefault((node, group), set()).add((op, data[8:24]))
        elif zone in _SNAPSHOT_ZONES:
            op = struct.unpack_from("<Q", data, _OP_AT)[0]
            digest = xxhash.xxh3_128_digest(data)
            seen = self.checkpoints.setdefault((group, op), digest)
            if seen != digest:
                self.fail("S4", f"group {group}: replica {node}'s checkpoint at op {op} differs")

    def _durable_view(self, node: int, group: int) -> int:
        sb, disk = self.superblocks[(node, group)]
        best = (-1, 0)
        for copy in range(4):
            buf = disk.zones.get("superblock", b"")
            got = sb.decode(bytes(buf[copy * sb.copy_size:(copy + 1) * sb.copy_size]))
            if got is not None and got[0] > best[0]:
                best = (got[0], got[1].view)
        self.sb_view[(node, group)] = best[1]
        return best[1]

    # -- messages -----------------------------------------------------------------------------

    def on_send(self, node: int, group: int, replica: Replica, m: Message) -> None:
        cmd = m.command
        if cmd in _QUORUM_VISIBLE and (replica.status == RECOVERING or replica.transferring):
            state = "transferring" if replica.transferring else replica.status
            self.fail("S8", f"replica {node} sent {Command(cmd).name} while {state}")
        if cmd in _VIEW_SCOPED:
            view = replica.view if cmd == Command.PREPARE else m.view
            key = (node, group)
            if view > self.sb_view.get(key, -1) and view > self._durable_view(node, group):
                self.fail("S2", f"replica {node} sent {Command(cmd).name} in view {view} but its "
                                f"superblock holds view {self.sb_view[key]}")
            adv = self.advertised.setdefault(key, [0, 0])
            adv[0] = max(adv[0], view)
            log_view = m.log_view if cmd == Command.DO_VIEW_CHANGE else view if cmd in (
                Command.PREPARE, Command.PREPARE_OK, Command.COMMIT, Command.START_VIEW) else 0
            adv[1] = max(adv[1], log_view)
        if cmd == Command.PREPARE:
            if m.replica != m.view % self.n:
                self.fail("S7", f"replica {m.replica} sent a prepare of view {m.view}")
            seen = self.prepares.setdefault((group, m.view, m.op), m.checksum)
            if seen != m.checksum:
                self.fail("S7", f"two prepares for view {m.view} op {m.op}")
        elif cmd == Command.PREPARE_OK:
            if (m.op, m.prepare_checksum) not in self.durable.get((node, group), ()):
                self.fail("S8", f"replica {node} acknowledged op {m.op} before it was durable")

    def on_request(self, client: bytes, session: int, number: int, operation: int,
                   body: bytes) -> None:
        self.requests[(client, session, number)] = (operation, body)

    def on_commit(self, node: int, group: int, op: int, p: Message, applied: bool) -> None:
        log = self.canonical.setdefault(group, {})
        seen = log.get(op)
        if seen is not None:
            if seen.checksum != p.checksum:
                self.fail("S3", f"group {group} op {op}: replica {node} committed another "
                                f"prepare")
            return
        log[op] = p
        below, above = log.get(op - 1), log.get(op + 1)
        if (below is not None and below.checksum != p.parent) or (
                above is not None and above.parent != p.checksum):
            self.fail("S3", f"group {group} op {op} does not chain to its neighbours")
        holders = sum(1 for r in range(self.n)
                      if (op, p.checksum) in self.durable.get((r, group), ()))
        if holders < self.q:
            self.fail("S3", f"group {group} op {op} committed while durable on {holders} "
                            f"replicas (quorum {self.q})")
        if p.operation != REGISTER:
            sent = self.requests.get((p.client, p.session, p.request))
            body = p.body[:0] + bytes(8) + p.body[8:] if p.operation == models.APPEND else p.body
            if sent is None or sent != (p.operation, body):
                self.fail("S6", f"group {group} op {op} was never requested")
        if applied and p.operation != REGISTER:
            key = (group, p.client, p.session, p.request)
            first = self.executed.setdefault(key, op)
            if first != op:
                self.fail("S5", f"group {group}: request {p.request} executed at ops {first} "
                                f"and {op}")
            if p.operation == models.APPEND:
                base, records = models.batch_records(p.body)
                stored = self.records.setdefault(group, {})
                for i, record in enumerate(records):
                    if stored.setdefault(base + i, record) != record:
                        self.fail("S5", f"group {group}: offset {base + i} reused")

    def on_ack(self, group: int, client: bytes, operation: int, number: int, body: bytes,
               m: Message) -> None:
        self.acks += 1
        p = self.canonical.get(group, {}).get(m.op)
        if p is None or p.client != client or p.request != number or p.operation != operation:
            self.fail("S5", f"group {group}: acknowledged op {m.op} is not the committed one")
        if operation == models.APPEND:
            base = struct.unpack_from("<Q", m.body)[0]
            stored = self.records.get(group, {})
            for i, record in enumerate(models.batch_records(body)[1]):
                if stored.get(base + i) != record:
                    self.fail("S5", f"group {group}: acknowledged offset {base + i} holds "
                                    f"other bytes")

    def on_read(self, node: int, group: int, answer: bytes) -> None:
        self.reads += 1
        stored = self.records.get(group, {})
        for offset, record in models.parse_read(answer)[2]:
            if stored.get(offset) != record:
                self.fail("S10", f"replica {node} served offset {offset} of group {group}, "
                                 f"which is not committed")

    # -- per tick -----------------------------------------------------------------------------

    def on_tick(self, node: int, group: int, r: Replica) -> None:
        key = (node, group)
        seen = self.seen.get(key)
        now = [r.commit_min, r.view, r.log_view, r.checkpoint[0]]
        if r.log_view > r.view:
            self.fail("S2", f"replica {node} log_view {r.log_view} > view {r.view}")
        if seen is not None:
            if now[0] < seen[0]:
                self.fail("S1", f"replica {node} group {group} commit went {seen[0]} -> {now[0]}")
            if now[1] < seen[1] or now[2] < seen[2]:
                self.fail("S2", f"replica {node} group {group} view/log_view went back")
            if now[3] < seen[3]:
                self.fail("S1", f"replica {node} group {group} checkpoint went back")
        self.seen[key] = now

    def on_restart(self, node: int, group: int, r: Replica) -> None:
        """Across a restart: the checkpoint persists (executed ops replay from it), and so does
        every view and log_view the replica ever advertised (what it only held in memory may
        be lost)."""
        key = (node, group)
        seen = self.seen.get(key)
        if seen is not None:
            if r.checkpoint[0] < seen[3]:
                self.fail("S1", f"replica {node} group {group} restarted below its checkpoint")
            view, log_view = self.advertised.get(key, (0, 0))
            if r.view < view or r.log_view < log_view:
                self.fail("S2", f"replica {node} group {group} restarted in view {r.view} / "
                                f"log_view {r.log_view} below what it advertised ({view} / "
                                f"{log_view})")
            self.seen[key] = [r.commit_min, r.view, r.log_view, r.checkpoint[0]]
        self.on_tick(node, group, r)

    def quiesced(self, group: int, replicas: list[Replica]) -> None:
        """S4/S9 once the group is idle: same state everywhere, nobody ahead of the primary."""
        primary = next(r for r in replicas if r.is_primary)
        for r in replicas:
            if r.sm.snapshot() is None:
                self.fail("S4", f"group {group}: replica {r.replica} cannot describe its state "
                                f"at op {r.commit_min}")
            if r.commit_min > primary.commit_min or r.op > primary.op:
                self.fail("S9", f"group {group}: replica {r.replica} ahead of primary")
            if r.sm.snapshot() != primary.sm.snapshot() or \
                    r.client_table.encode() != primary.client_table.encode():
                self.fail("S4", f"group {group}: replica {r.replica}'s state differs from the "
                                f"primary's at op {r.commit_min}")
