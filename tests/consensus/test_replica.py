"""Replica stories on a hand-driven three-replica cluster (real codec, in-memory storage)."""

from __future__ import annotations

from pyggy.consensus.journal import FRAME, PREPARES
from pyggy.consensus.message import Command
from pyggy.consensus.sim import models
from vsr_harness import SMALL, Harness

A, B, C, D, E = (bytes([i]) * 16 for i in range(1, 6))


def backups(h: Harness) -> list[int]:
    return [r.replica for r in h.replicas if r is not None and not r.is_primary]


def test_a_request_is_replied_to_once_a_quorum_holds_it_and_every_replica_executes_it():
    h = Harness(3)
    session = h.register(A)
    assert h.append(A, session, 1, [b"x1", b"x2"]).body == (0).to_bytes(8, "little")
    h.run(20)
    states = {r.sm.snapshot() for r in h.replicas}
    assert len(states) == 1 and all(r.commit_min == 2 for r in h.replicas)


def test_a_retried_request_gets_its_cached_reply_and_is_not_executed_twice():
    h = Harness(3)
    session = h.register(A)
    h.append(A, session, 1, [b"once"])
    h.replies.clear()
    assert h.append(A, session, 1, [b"once"]).op == 2  # a retry: answered from the table
    h.run(20)
    assert h.primary().sm.records == [b"once"]
    assert h.primary().op == 2


def test_a_backup_acknowledges_a_prepare_only_once_it_is_durable():
    h = Harness(3)
    session = h.register(A)
    b, other = backups(h)
    h.crash(other)  # the primary now needs b's acknowledgement to commit
    h.hold_writes = {b}
    h.send_request(A, session, 1, models.APPEND, models.append_body([b"r"]))
    h.run(10)

    def acked() -> bool:
        return any(src == b and m.command == Command.PREPARE_OK and m.op == 2
                   for src, _, m in h.sent)

    assert not acked() and h.reply_for(A, 1) is None
    h.hold_writes = set()
    h.run(3)
    assert acked() and h.reply_for(A, 1) is not None


def test_the_primary_crashes_and_the_new_view_keeps_every_committed_op():
    h = Harness(3)
    session = h.register(A)
    for n in range(1, 4):
        h.append(A, session, n, [b"r%d" % n])
    old = h.primary()
    h.crash(old.replica)
    h.until(lambda: any(r is not None and r.status == "normal" and r.is_primary
                        and r.view > old.view for r in h.replicas))
    new = h.primary()
    h.append(A, session, 4, [b"r4"])
    assert new.sm.records == [b"r1", b"r2", b"r3", b"r4"]


def test_no_view_change_message_leaves_before_the_view_is_durable():
    h = Harness(3)
    h.register(A)
    b = backups(h)[0]
    view = h.primary().view
    h.hold_writes = {b}
    h.crash(h.primary().replica)
    h.until(lambda: h.replicas[b].view > view)
    h.run(30)
    early = [m for src, _, m in h.sent if src == b and m.command in (
        Command.START_VIEW_CHANGE, Command.DO_VIEW_CHANGE) and m.view > view]
    assert early == []
    h.hold_writes = set()
    h.until(lambda: any(src == b and m.command == Command.START_VIEW_CHANGE and m.view > view
                        for src, _, m in h.sent))


def test_a_restarted_backup_asks_for_the_view_and_catches_up():
    h = Harness(3)
    session = h.register(A)
    b = backups(h)[0]
    h.crash(b)
    for n in range(1, 4):
        h.append(A, session, n, [b"r%d" % n])
    r = h.restart(b)
    assert r.status == "recovering"
    h.until(lambda: r.status == "normal" and r.commit_min == h.primary().commit_min)
    assert any(src == b and m.command == Command.REQUEST_START_VIEW for src, _, m in h.sent)
    assert r.sm.records == [b"r1", b"r2", b"r3"]


def test_a_backup_restarted_before_its_links_are_up_waits_for_the_view_not_a_new_one():
    """Quorum lost (both backups crashed), one backup restarts but hears nobody for longer than
    its probes last (the links come up after the node starts): it keeps probing instead of
    starting a view change, so once linked it joins the lone primary's view and commits resume
    there; a new view would only have pulled the primary after it (finding 2 of
    docs/cluster.md: acks came back ~28 s after the restart, or never)."""
    h = Harness(3)
    session = h.register(A)
    h.append(A, session, 1, [b"r1"])
    primary = h.primary()
    view = primary.view
    b, other = backups(h)
    h.crash(b)
    h.crash(other)
    h.send_request(A, session, 2, models.APPEND, models.append_body([b"r2"]))  # cannot commit
    h.run(20)
    h.drop = lambda src, dst, m: b in (src, dst)  # b's links are not up yet
    r = h.restart(b)
    h.run(20 * SMALL.request_start_view_interval * SMALL.view_probe_attempts_max)
    assert r.status == "recovering" and r.view == view
    h.drop = lambda src, dst, m: False
    assert h.append(A, session, 2, [b"r2"]).command == Command.REPLY
    assert primary.view == view and r.view == view and r.status == "normal"
    assert primary.sm.records == [b"r1", b"r2"]


def test_a_new_primary_is_settled_once_the_ops_it_adopted_are_executed():
    """An op the old primary prepared but did not commit is adopted by the new view; until it
    is executed the new primary is not `settled` (the Kafka door admits no produce then)."""
    h = Harness(3)
    session = h.register(A)
    h.append(A, session, 1, [b"r1"])
    old = h.primary()
    assert old.settled and not any(r.settled for r in h.replicas if r is not old)
    b, other = backups(h)
    h.drop = lambda src, dst, m: m.command == Command.PREPARE_OK  # prepared, never committed
    h.send_request(A, session, 2, models.APPEND, models.append_body([b"r2"]), to=old.replica)
    h.until(lambda: all(r.op == 3 for r in h.replicas))
    h.crash(old.replica)
    h.drop = lambda src, dst, m: m.command == Command.PREPARE_OK and dst != old.replica
    h.until(lambda: h.has_primary())
    new = h.primary()
    assert new.view > old.view and new.op == 3 and new.commit_min == 2 and not new.settled
    h.drop = lambda src, dst, m: False
    h.until(lambda: new.commit_min == 3)
    assert new.settled and new.sm.records == [b"r1", b"r2"]


def test_a_replica_behind_the_journal_gets_a_state_transfer():
    h = Harness(3)
    session = h.register(A)
    b = backups(h)[0]
    h.crash(b)
    for n in range(1, SMALL.journal_slots + 8):
        h.append(A, session, n, [b"r%d" % n])
    r = h.restart(b)
    h.until(lambda: r.status == "normal" and not r.transferring
            and r.commit_min == h.primary().commit_min, steps=4000)
    assert r.stats["transfers"] >= 1 and r.stats["transfer_bytes"] > 0
    assert r.sm.snapshot() == h.primary().sm.snapshot()


class NeedsData(models.PartitionModel):
    """A model whose snapshot names data it does not carry (as a pyggy partition's manifest
    names segments): `missing` until the test has "fetched" it."""

    fetched = False

    def missing(self, data: bytes) -> bool:
        return not self.fetched


def test_data_a_snapshot_lacks_is_fetched_by_the_driver_before_it_is_installed():
    h = Harness(3, machine=NeedsData)
    session = h.register(A)
    b = backups(h)[0]
    h.crash(b)
    for n in range(1, SMALL.journal_slots + 8):
        h.append(A, session, n, [b"r%d" % n])
    r = h.restart(b)
    h.until(lambda: bool(h.fetches), steps=4000)
    (who, peer, state), = h.fetches
    assert who == b and peer != b
    named = models.PartitionModel()
    named.restore(state)  # the machine's part of the peer's checkpoint: a prefix of its log
    assert len(named.records) > len(r.sm.records)
    assert h.replicas[peer].sm.records[:len(named.records)] == named.records
    assert r.transferring and r.fetching_checkpoint > r.commit_min
    # while the driver fetches, it neither acknowledges nor votes, and executes nothing
    commit, sent = r.commit_min, len(h.sent)
    h.append(A, session, SMALL.journal_slots + 8, [b"more"])
    h.run(30)
    assert r.commit_min == commit and r.transferring
    assert not [m for src, _, m in h.sent[sent:] if src == b and m.command in (
        Command.PREPARE_OK, Command.START_VIEW_CHANGE, Command.DO_VIEW_CHANGE)]
    # the driver gives up: the snapshot is dropped, and the next RangeEvicted starts over
    h._take(b, r.on_state_fetched(False))
    assert not r.transferring and r.commit_min == commit
    h.until(lambda: len(h.fetches) == 2, steps=4000)
    r.sm.fetched = True  # the driver got the data this time
    h._take(b, r.on_state_fetched(True))
    h.until(lambda: r.status == "normal" and not r.transferring
            and r.commit_min == h.primary().commit_min, steps=4000)
    assert r.stats["transfer_fetches"] == 2


def test_an_interior_corrupt_prepare_is_repaired_from_a_peer_not_truncated():
    h = Harness(3)
    session = h.register(A)
    for n in range(1, 4):
        h.append(A, session, n, [b"r%d" % n])
    b = backups(h)[0]
    h.crash(b)
    slot_size = FRAME + SMALL.prepare_max
    h.storages[b].zones[PREPARES][2 * slot_size + FRAME + 256] ^= 0xFF  # op 2's body rots
    restarted = h.restart(b)
    h.run(60)
    assert restarted.sm.records == [b"r1", b"r2", b"r3"]
    assert restarted.journal.read(2) is not None  # written again, intact


def test_a_solo_replica_cuts_a_torn_tail_and_keeps_the_rest():
    h = Harness(1)
    session = h.register(A)
    h.append(A, session, 1, [b"kept"])
    h.hold_writes = {0}
    h.send_request(A, session, 2, models.APPEND, models.append_body([b"torn"]))
    h.run(3)
    assert h.replicas[0].op == 3 and h.reply_for(A, 2) is None
    storage = h.storages[0]
    slot_size = FRAME + SMALL.prepare_max
    storage.zones[PREPARES][3 * slot_size + FRAME + 256] ^= 0xFF  # the write was torn
    h.crash(0)
    r = h.restart(0)
    assert r.op == 2 and r.commit_min == 2 and r.sm.records == [b"kept"]


def test_a_full_client_table_evicts_the_oldest_session():
    h = Harness(3)
    sessions = {c: h.register(c) for c in (A, B, C, D)}
    h.register(E)  # clients_max is 4: A, the least recently active, is evicted
    assert h.append(A, sessions[A], 1, [b"late"]).command == Command.EVICTION
    h.run(10)
    assert h.primary().sm.records == []


def test_reads_never_see_prepared_but_uncommitted_records():
    h = Harness(3)
    session = h.register(A)
    h.append(A, session, 1, [b"committed"])
    backups = [r.replica for r in h.replicas if not r.is_primary]
    for b in backups:
        h.crash(b)  # no quorum: the next append is prepared but cannot commit
    p = h.primary()
    h.send_request(A, session, 2, models.APPEND, models.append_body([b"pending"]), to=p.replica)
    h.run(10)
    assert p.op == 3 and p.commit_min == 2
    _, answer = p.read(models.read_query(0, 10))
    assert [r for _, r in models.parse_read(answer)[2]] == [b"committed"]


def test_the_primary_knows_which_backups_keep_up_and_which_lag():
    h = Harness(3)
    session = h.register(A)
    p = h.primary()
    lagging, keeping_up = backups(h)
    h.run(5)  # the last acknowledgement lands after the reply
    assert p.caught_up(SMALL.pipeline_max) == {p.replica, lagging, keeping_up}
    h.drop = lambda src, dst, m: dst == lagging  # it hears nothing (its link looks fine)
    for n in range(1, 2 * SMALL.pipeline_max + 2):
        h.append(A, session, n, [b"r%d" % n])
    assert p.caught_up(SMALL.pipeline_max) == {p.replica, keeping_up}
    assert h.replicas[lagging].caught_up(SMALL.pipeline_max) == set()  # only a primary knows
    h.drop = lambda src, dst, m: False
    h.until(lambda: h.replicas[lagging].commit_min == p.commit_min)
    h.append(A, session, 99, [b"again"])
    h.run(5)
    assert p.caught_up(SMALL.pipeline_max) == {p.replica, lagging, keeping_up}
