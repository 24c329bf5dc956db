"""Choosing the new view's log from a quorum of DoViewChange messages (pure, no I/O).

Each DoViewChange states the sender's `log_view` (last view it was normal in), head `op`,
`commit` (min of what it knows committed and its head) and the headers of its log suffix
[commit, op], with two bits each: it holds the body (`present`), and it never durably held that
prepare, so it never acknowledged it (`nack`: a header it only learned from a StartView or a
hash chain). An op missing from a sender's suffix is a nack too. An op whose prepare the sender
did hold but lost to a damaged disk is *not* a nack: it may have acknowledged it.

Rules (VRR §4.2 with TigerBeetle's protocol-aware recovery):
- canonical = the messages with the highest log_view; their logs agree where they overlap, and
  the highest canonical head is the new head (every op committed in any earlier view is in it);
- commit = the highest commit reported; the header at the commit point comes from a canonical
  log that reaches it, else from a sender reporting that commit, else (`Plan.headers` lacks it)
  the new primary fetches the committed prepare from a replica that executed it;
- a hole in the canonical suffix is filled from any sender holding a prepare with the checksum
  the next header's `parent` names;
- an op whose body nobody in the quorum holds may be truncated (with everything after it) only
  when a nack quorum proves it never reached a replication quorum; otherwise the new primary
  must repair it first (it might be committed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .message import Message
from .status import Divergence


@dataclass
class DoViewChange:
    replica: int
    log_view: int
    op: int
    commit: int
    headers: dict[int, Message]
    present: set[int] = field(default_factory=set)
    nacks: set[int] = field(default_factory=set)

    def lists(self, op: int, checksum: bytes | None) -> bool:
        h = self.headers.get(op)
        return h is not None and (checksum is None or h.checksum == checksum)

    def may_have_acked(self, op: int, checksum: bytes | None) -> bool:
        return op <= self.commit or (self.lists(op, checksum) and op not in self.nacks)


@dataclass
class Plan:
    log_view: int
    op: int
    commit: int
    headers: dict[int, Message]  # canonical headers of [commit, op] that are known
    expected: dict[int, bytes]  # ops of (commit, op] known only by checksum
    holders: dict[int, list[int]]  # op -> senders holding its body

    def checksum(self, op: int) -> bytes | None:
        h = self.headers.get(op)
        return h.checksum if h is not None else self.expected.get(op)


def merge(dvcs: Mapping[int, DoViewChange], nack_quorum: int, known: Mapping[int, Message],
          truncate_on_any_nack: bool = False) -> Plan:
    """The new log; `known` are prepares the new primary already holds (fills holes)."""
    log_view = max(d.log_view for d in dvcs.values())
    canonical = [d for d in dvcs.values() if d.log_view == log_view]
    commit = max(d.commit for d in dvcs.values())
    head = max(max(d.op for d in canonical), commit)
    headers: dict[int, Message] = {}
    for d in canonical:
        for op, h in d.headers.items():
            if op >= commit:  # the canonical log holds every op committed before its view
                seen = headers.setdefault(op, h)
                if seen.checksum != h.checksum:
                    raise Divergence(f"canonical logs disagree at op {op}")
    if commit not in headers:  # else from a sender that knows it committed (it may not)
        for d in dvcs.values():
            if d.commit == commit and commit in d.headers:
                headers[commit] = d.headers[commit]
                break
    index = {(op, h.checksum): h for d in dvcs.values() for op, h in d.headers.items()}
    expected: dict[int, bytes] = {}
    for op in range(head - 1, commit, -1):
        above = headers.get(op + 1)
        if above is None:
            continue
        here = headers.get(op)
        if here is None:
            k = known.get(op)
            here = k if k is not None and k.checksum == above.parent else index.get(
                (op, above.parent))
            if here is None:
                expected[op] = above.parent
                continue
            headers[op] = here
        elif here.checksum != above.parent:
            raise Divergence(f"canonical hash chain broken at op {op}")
    anchor, above = headers.get(commit), headers.get(commit + 1)
    if anchor is not None and above is not None and anchor.checksum != above.parent:
        raise Divergence(f"log above the commit point {commit} does not chain to it")
    plan = Plan(log_view, head, commit, headers, expected, {})
    for op in range(commit + 1, head + 1):
        checksum = plan.checksum(op)
        plan.holders[op] = [d.replica for d in dvcs.values()
                            if checksum is not None and op in d.present and d.lists(op, checksum)]
        if checksum is not None and op in known and known[op].checksum == checksum:
            plan.holders[op].append(-1)  # the new primary itself
    for op in range(commit + 1, head + 1):
        if truncate_on_any_nack:
            nacks = sum(1 for d in dvcs.values() if not d.may_have_acked(op, None))
            if nacks:
                _truncate(plan, op)
                break
            continue
        if plan.holders[op]:
            continue
        checksum = plan.checksum(op)
        nacks = sum(1 for d in dvcs.values() if not d.may_have_acked(op, checksum))
        if nacks >= nack_quorum:
            _truncate(plan, op)
            break
    return plan


def _truncate(plan: Plan, op: int) -> None:
    plan.op = op - 1
    for k in range(op, max(plan.headers, default=0) + 1):
        plan.headers.pop(k, None)
        plan.expected.pop(k, None)
        plan.holders.pop(k, None)
    for k in list(plan.expected):
        if k > plan.op:
            del plan.expected[k]
