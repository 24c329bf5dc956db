"""The log history checker (pyggy/checker/history.py): a clean history passes, and each
Jepsen anomaly is named when it is planted (a checker must be shown to fail)."""

from __future__ import annotations

from pyggy.checker.history import History, check

K = ("t", 0)


def clean(n: int = 5) -> History:
    h = History()
    for i in range(n):
        h.ok(h.invoke("p", K, b"v%d" % i), i)
    h.poll("c", K, [(i, b"v%d" % i) for i in range(n)])
    return h


def test_a_clean_history_is_valid() -> None:
    report = check(clean())
    assert report.valid and not report.anomalies, report
    assert report.counts == {"sends": 5, "acked": 5, "unknown": 0, "reads": 5}


def test_lost_write() -> None:
    h = clean()
    h.ok(h.invoke("p", K, b"lost"), 2)  # acknowledged at 2, readers went past 2 without it
    h.reads = [r for r in h.reads if r[3] != b"v2"]  # and nobody read 2's value
    h.sends = [s for s in h.sends if s.value != b"v2"]
    report = check(h)
    assert not report.valid and "lost-write" in report.anomalies


def test_unseen_is_not_a_violation() -> None:
    h = clean()
    h.ok(h.invoke("p", K, b"late"), 5)
    report = check(h)
    assert report.valid and report.anomalies == {"unseen": [f"{K}@5=b'late'"]}


def test_inconsistent_offsets() -> None:
    h = clean()
    h.poll("c2", K, [(3, b"other")])
    h.ok(h.invoke("q", K, b"other"), 3)
    assert "inconsistent-offsets" in check(h).anomalies


def test_duplicate_only_under_idempotence() -> None:
    h = clean()
    h.poll("c2", K, [(5, b"v1")])
    assert "duplicate" in check(h).anomalies
    assert "duplicate" not in check(h, idempotent=False).anomalies


def test_nonmonotonic_send() -> None:
    h = History()
    h.ok(h.invoke("p", K, b"a"), 1)
    h.ok(h.invoke("p", K, b"b"), 0)
    assert "nonmonotonic-send" in check(h).anomalies


def test_nonmonotonic_poll_and_seek() -> None:
    h = clean()
    h.poll("c", K, [(1, b"v1")])
    assert "nonmonotonic-poll" in check(h).anomalies
    h = clean()
    h.seek("c", K)
    h.poll("c", K, [(1, b"v1")])
    assert check(h).valid


def test_poll_skip() -> None:
    h = clean()
    h.poll("c2", K, [(0, b"v0"), (3, b"v3")])  # 1 and 2 hold values
    assert "poll-skip" in check(h).anomalies


def test_aborted_and_phantom_reads() -> None:
    h = clean()
    h.fail(h.invoke("p", K, b"refused"))
    h.poll("c2", K, [(5, b"refused"), (6, b"never-sent")])
    anomalies = check(h).anomalies
    assert "aborted-read" in anomalies and "phantom-read" in anomalies


def test_unknown_outcome_may_or_may_not_appear() -> None:
    h = clean()
    h.info(h.invoke("p", K, b"maybe"))
    h.invoke("p", K, b"never-answered")
    assert check(h).valid
    h.poll("c2", K, [(5, b"maybe")])
    assert check(h).valid


def test_a_final_read_missing_an_ack_without_offset_is_a_lost_write() -> None:
    h = clean()
    h.ok(h.invoke("iggy", K, b"no-offset"), None)
    assert check(h).anomalies == {"unseen": [f"{K}@None=b'no-offset'"]}
    h.final(K, [(i, b"v%d" % i) for i in range(5)])
    assert "lost-write" in check(h).anomalies
    h.final(K, [(i, b"v%d" % i) for i in range(5)] + [(5, b"no-offset")])
    assert check(h).valid


def test_first_ack_after() -> None:
    h = clean()
    first, invoked = h.sends[0].acked_at, h.sends[0].invoked_at
    assert abs(h.first_ack_after(invoked - 1.0) - (first - invoked + 1.0)) < 1e-6
    assert h.first_ack_after(10 ** 9) is None
    late = h.invoke("p", K, b"in flight")
    h.ok(late, 5)
    assert h.first_ack_after(late.invoked_at + 0.001) is None  # invoked before the moment
