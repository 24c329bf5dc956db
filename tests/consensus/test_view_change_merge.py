"""Choosing the new log from DoViewChanges: highest log_view wins; cut only on a nack quorum."""

from __future__ import annotations

import pytest
from pyggy.consensus.log_choice import DoViewChange, merge
from pyggy.consensus.message import Command, Message, encode
from pyggy.consensus.status import Divergence


def chain(ops: range, view: int, tag: bytes = b"", base: dict | None = None) -> dict[int, Message]:
    out = dict(base or {})
    parent = out[ops.start - 1].checksum if ops.start - 1 in out else bytes(16)
    for op in ops:
        m = Message(Command.PREPARE, cluster=bytes(16), view=view, op=op, parent=parent,
                    body=tag + bytes([op]))
        encode(m)
        out[op], parent = m, m.checksum
    return out


def dvc(replica: int, log_view: int, log: dict[int, Message], commit: int, op: int,
        present: bool = True, drop: tuple[int, ...] = ()) -> DoViewChange:
    headers = {k: h for k, h in log.items() if commit <= k <= op and k not in drop}
    return DoViewChange(replica, log_view, op, commit, headers,
                        {k for k in headers if k > commit} if present else set())


def test_the_highest_log_view_wins_over_a_longer_older_log():
    committed = chain(range(1, 6), view=1)
    old = chain(range(6, 11), view=1, tag=b"old", base=committed)
    new = chain(range(6, 8), view=2, tag=b"new", base=committed)
    plan = merge({0: dvc(0, 1, old, 5, 10), 1: dvc(1, 2, new, 5, 7)}, nack_quorum=2, known={})
    assert plan.log_view == 2 and plan.op == 7 and plan.commit == 5
    assert all(plan.headers[k].checksum == new[k].checksum for k in range(5, 8))


def test_an_op_nobody_holds_is_cut_only_with_a_nack_quorum():
    log = chain(range(1, 9), view=1)
    # replica 0 knows op 8's header but lost its body; 1 and 2 never had op 8
    holder = dvc(0, 1, log, 5, 8)
    holder.present.discard(8)
    others = {1: dvc(1, 1, log, 5, 7), 2: dvc(2, 1, log, 5, 7)}
    plan = merge({0: holder, **others}, nack_quorum=2, known={})
    assert plan.op == 7  # two nacks: op 8 never reached a replication quorum
    plan = merge({0: holder, 1: others[1]}, nack_quorum=2, known={})
    assert plan.op == 8 and plan.holders[8] == []  # one nack: it may be committed, repair it


def test_the_mutant_cuts_what_one_replica_lacks():
    log = chain(range(1, 9), view=1)
    plan = merge({0: dvc(0, 1, log, 5, 8), 1: dvc(1, 1, log, 5, 7)}, nack_quorum=2, known={},
                 truncate_on_any_nack=True)
    assert plan.op == 7


def test_a_hole_is_filled_by_checksum_from_any_sender():
    log = chain(range(1, 9), view=1)
    canonical = dvc(0, 2, log, 4, 8, drop=(6,))
    older = dvc(1, 1, log, 4, 6)
    plan = merge({0: canonical, 1: older}, nack_quorum=2, known={})
    assert plan.headers[6].checksum == log[6].checksum and 1 in plan.holders[6]
    plan = merge({0: canonical}, nack_quorum=2, known={})
    assert plan.expected[6] == log[6].checksum


def test_canonical_logs_that_disagree_are_a_divergence():
    committed = chain(range(1, 3), view=1)
    a = chain(range(3, 6), view=2, tag=b"a", base=committed)
    b = chain(range(3, 6), view=2, tag=b"b", base=committed)
    with pytest.raises(Divergence):
        merge({0: dvc(0, 2, a, 2, 5), 1: dvc(1, 2, b, 2, 5)}, nack_quorum=2, known={})


def test_the_commit_point_anchors_the_new_log():
    log = chain(range(1, 8), view=1)
    plan = merge({0: dvc(0, 1, log, 7, 7), 1: dvc(1, 1, log, 4, 7)}, nack_quorum=2, known={})
    assert plan.op == plan.commit == 7 and plan.headers[7].checksum == log[7].checksum


def test_a_header_learned_but_never_written_is_a_nack_a_rotten_one_is_not():
    log = chain(range(1, 9), view=1)
    learned = [dvc(r, 1, log, 5, 8) for r in (0, 1)]
    for d in learned:  # both know op 8 from a StartView only: neither ever acknowledged it
        d.present.discard(8)
        d.nacks.add(8)
    assert merge({0: learned[0], 1: learned[1]}, nack_quorum=2, known={}).op == 7
    rotten = dvc(1, 1, log, 5, 8)
    rotten.present.discard(8)  # held it durably, the disk damaged it: it may have acked it
    plan = merge({0: learned[0], 1: rotten}, nack_quorum=2, known={})
    assert plan.op == 8 and plan.holders[8] == []


def test_the_commit_header_comes_from_a_canonical_log_that_reaches_it():
    # seed 4021874: the only sender reporting commit 5 had lost that header; the canonical log
    # (highest log_view) still reaches op 5 and must supply it
    log = chain(range(1, 9), view=1)
    knows_commit = dvc(1, 1, log, 5, 8, drop=(5,))
    canonical = dvc(2, 2, log, 3, 5)
    stale = dvc(3, 1, chain(range(4, 6), view=1, tag=b"stale", base=log), 3, 5)
    plan = merge({1: knows_commit, 2: canonical, 3: stale}, nack_quorum=2, known={})
    assert plan.op == plan.commit == 5
    assert plan.headers[5].checksum == log[5].checksum


def test_no_sender_vouching_for_the_commit_header_leaves_it_unknown():
    # the new primary then fetches the committed prepare instead of installing a hole
    log = chain(range(1, 9), view=1)
    plan = merge({1: dvc(1, 1, log, 5, 8, drop=(5,)), 2: dvc(2, 2, log, 3, 5, drop=(5,))},
                 nack_quorum=2, known={})
    assert plan.op == plan.commit == 5 and 5 not in plan.headers
