"""The metadata linearizability checker (pyggy/checker/linear.py) on histories whose answer is
known: it accepts the linearizable ones and, as a checker must, rejects the others."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from pyggy.checker.linear import Op, check

INF = math.inf


def op(p: str, f: str, key: str, call: float, ret: float, result: object) -> Op:
    return Op(p, f, key, call, ret, result)


def test_a_sequential_history_is_linearizable() -> None:
    h = [op("a", "create", "t", 0, 1, "ok"), op("a", "read", "t", 2, 3, True),
         op("a", "create", "t", 4, 5, "exists"), op("a", "delete", "t", 6, 7, "ok"),
         op("a", "read", "t", 8, 9, False), op("a", "delete", "t", 10, 11, "missing")]
    assert check(h).ok


def test_two_concurrent_creates_one_wins() -> None:
    assert check([op("a", "create", "t", 0, 5, "ok"), op("b", "create", "t", 1, 4, "exists")]).ok
    # the loser answered before the winner began: it saw a topic nobody had created yet
    bad = check([op("a", "create", "t", 3, 5, "ok"), op("b", "create", "t", 0, 2, "exists")])
    assert not bad.ok and bad.key == "t"


def test_both_creates_succeeding_is_not_linearizable() -> None:
    assert not check([op("a", "create", "t", 0, 5, "ok"), op("b", "create", "t", 1, 4, "ok")]).ok


def test_a_stale_read_after_an_acknowledged_create_is_caught() -> None:
    res = check([op("a", "create", "t", 0, 1, "ok"), op("b", "read", "t", 2, 3, False)])
    assert not res.ok
    assert "not linearizable (t)" in str(res)


def test_a_read_concurrent_with_the_create_may_see_either() -> None:
    for seen in (True, False):
        assert check([op("a", "create", "t", 0, 4, "ok"), op("b", "read", "t", 1, 2, seen)]).ok


def test_an_unknown_outcome_may_take_effect_late_or_never() -> None:
    unknown = op("a", "create", "t", 0, INF, None)
    assert check([unknown, op("b", "read", "t", 5, 6, False), op("b", "read", "t", 7, 8, True)]).ok
    assert check([unknown, op("b", "read", "t", 5, 6, False)]).ok  # never
    # but once seen it cannot be unseen
    assert not check([unknown, op("b", "read", "t", 5, 6, True),
                      op("b", "read", "t", 7, 8, False)]).ok


def test_a_delete_resurrected_is_caught() -> None:
    h = [op("a", "create", "t", 0, 1, "ok"), op("a", "delete", "t", 2, 3, "ok"),
         op("b", "create", "t", 4, 5, "exists")]
    assert not check(h).ok


def test_list_is_checked_across_names() -> None:
    h = [op("a", "create", "x", 0, 1, "ok"), op("b", "create", "y", 0, 1, "ok"),
         op("c", "list", "*", 2, 3, frozenset({"x", "y"}))]
    assert check(h).ok
    h[-1] = op("c", "list", "*", 2, 3, frozenset({"x"}))
    assert not check(h).ok


@st.composite
def sequential(draw):
    """A history run one op at a time on a real set, answers from the set itself."""
    state: set[str] = set()
    ops = []
    for i in range(draw(st.integers(1, 25))):
        f = draw(st.sampled_from(["create", "delete", "read"]))
        key = draw(st.sampled_from(["a", "b"]))
        if f == "create":
            result = "exists" if key in state else "ok"
            state.add(key)
        elif f == "delete":
            result = "ok" if key in state else "missing"
            state.discard(key)
        else:
            result = key in state
        ops.append(op(f"p{i % 3}", f, key, 2 * i, 2 * i + 1, result))
    return ops


@settings(deadline=None)  # a loaded CI machine stalls single calls
@given(sequential())
def test_every_sequential_history_is_linearizable(ops) -> None:
    assert check(ops).ok


@settings(deadline=None)
@given(sequential(), st.data())
def test_one_wrong_answer_in_a_sequential_history_is_caught(ops, data) -> None:
    i = data.draw(st.integers(0, len(ops) - 1))
    o = ops[i]
    flip = {"ok": "exists" if o.f == "create" else "missing", "exists": "ok", "missing": "ok",
            True: False, False: True}
    ops[i] = op(o.process, o.f, o.key, o.call, o.ret, flip[o.result])
    assert not check(ops).ok
