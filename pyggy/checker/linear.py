"""Linearizability of metadata commands over a set of names (topics, streams, users).

An `Op` is one client command with its real-time interval: `call` when it was sent, `ret`
when the answer came (infinity when the outcome is unknown: it may take effect at any time
later, or never). The model is a set of names:

| f | result | legal when | next state |
|---|---|---|---|
| `create` | `"ok"` / `"exists"` / `None` (unknown) | absent / present / always | present |
| `delete` | `"ok"` / `"missing"` / `None` | present / absent / always | absent |
| `read` | `True` / `False` (is the name there?) | equals the state | unchanged |
| `list` | a frozenset of every name | equals the state | unchanged |

A definite failure that changed nothing (refused, not the controller) is left out of the
history by the recorder. `check` searches for a linearization as Wing & Gong's algorithm does
(with Lowe's memo of visited (linearized set, state) pairs, as Porcupine): an op can come next
if no other pending op returned before it was called. Histories without `list` are checked per
name (a set is the product of independent per-name registers), which keeps the search small.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

State = frozenset[str]


@dataclass
class Op:
    process: str
    f: str  # create | delete | read | list
    key: str
    call: float
    ret: float = math.inf
    result: object = None


@dataclass
class Result:
    ok: bool
    key: str | None = None  # the name whose history is not linearizable
    longest: list[Op] = field(default_factory=list)  # the longest legal prefix found

    def __str__(self) -> str:
        if self.ok:
            return "linearizable"
        steps = ", ".join(f"{o.process}:{o.f}({o.key})={o.result!r}" for o in self.longest)
        return f"not linearizable ({self.key}): longest legal order: {steps}"


def step(state: State, op: Op) -> State | None:
    """The state after `op`, or None if `op` with its result is illegal in `state`."""
    present = op.key in state
    if op.f == "create":
        if op.result not in (None, "ok" if not present else "exists"):
            return None
        return state | {op.key}
    if op.f == "delete":
        if op.result not in (None, "ok" if present else "missing"):
            return None
        return state - {op.key}
    if op.f == "read":
        return state if op.result == present else None
    if op.f == "list":
        return state if op.result == state else None
    raise ValueError(f"unknown op {op.f!r}")


def check(ops: Sequence[Op], initial: State = frozenset()) -> Result:
    """Is there a linearization of `ops` from `initial`? Per name unless a `list` is there."""
    if any(o.f == "list" for o in ops):
        return _search(list(ops), initial, None)
    by_key: dict[str, list[Op]] = defaultdict(list)
    for o in ops:
        by_key[o.key].append(o)
    for key, part in sorted(by_key.items()):
        result = _search(part, initial & {key}, key)
        if not result.ok:
            return result
    return Result(True)


def _search(ops: list[Op], initial: State, key: str | None) -> Result:
    ops = sorted(ops, key=lambda o: o.call)
    n = len(ops)
    full = (1 << n) - 1
    seen: set[tuple[int, State]] = set()
    stack: list[tuple[int, State, tuple[int, ...]]] = [(0, initial, ())]
    longest: tuple[int, ...] = ()
    while stack:
        done, state, order = stack.pop()
        if done == full:
            return Result(True)
        if (done, state) in seen:
            continue
        seen.add((done, state))
        if len(order) > len(longest):
            longest = order
        pending = [i for i in range(n) if not done >> i & 1]
        horizon = min(ops[i].ret for i in pending)
        for i in pending:
            if ops[i].call > horizon:  # some pending op returned before this one was called
                break  # sorted by call: so did every later one
            nxt = step(state, ops[i])
            if nxt is not None:
                stack.append((done | 1 << i, nxt, (*order, i)))
    return Result(False, key, [ops[i] for i in longest])


class Recorder:
    """Thread-safe: `begin` before sending a command, `end` with its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ops: list[Op] = []

    def begin(self, process: str, f: str, key: str) -> Op:
        return Op(process, f, key, time.monotonic())

    def end(self, op: Op, result: object) -> None:
        """`result` None: unknown outcome (the op stays open for ever)."""
        op.result = result
        op.ret = math.inf if result is None else time.monotonic()
        with self._lock:
            self.ops.append(op)

    def drop(self, op: Op) -> None:
        """A definite failure that changed nothing: not part of the history."""
