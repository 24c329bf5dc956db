"""Record what clients of a log saw and check it.

A `History` is filled by client threads while faults happen: every send (invoked, then `ok`
with the acknowledged offset, `fail` = definitely not written, or `info` = outcome unknown),
every poll (the (offset, value) pairs a consumer got, in order) and every consumer `seek`.
Values must be unique per key (a key is a (topic, partition) pair or any hashable).
`check` names the anomalies as Jepsen's Kafka workload does (jepsen-io/jepsen
`jepsen/src/jepsen/tests/kafka.clj`):

| anomaly | meaning |
|---|---|
| `lost-write` | acknowledged, never read, though reads went past it or a final read missed it |
| `unseen` | acknowledged, never read, and no read reached its offset (not a loss yet) |
| `inconsistent-offsets` | one offset seen holding two values (acks and reads together) |
| `duplicate` | one value at two offsets (an error when the producer is idempotent) |
| `nonmonotonic-send` | one producer's acknowledged offsets out of its send order |
| `nonmonotonic-poll` | one consumer read an offset not above the one before (no seek between) |
| `poll-skip` | one consumer jumped over an offset known to hold a value |
| `aborted-read` | a read of a value whose send definitely failed |
| `phantom-read` | a read of a value never sent (pyggy's name: Jepsen generates every value) |
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

ANOMALIES = ("lost-write", "inconsistent-offsets", "duplicate", "nonmonotonic-send",
             "nonmonotonic-poll", "poll-skip", "aborted-read", "phantom-read", "unseen")
BENIGN = frozenset({"unseen"})  # reported, but not a violation


@dataclass
class Send:
    process: str
    key: Hashable
    value: bytes
    status: str = "invoke"  # invoke | ok | fail | info
    offset: int | None = None  # None when acknowledged: the door does not say (Iggy's)
    acked_at: float | None = None  # time.monotonic() of the acknowledgement
    invoked_at: float = field(default_factory=time.monotonic)


@dataclass
class Report:
    anomalies: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not any(v for k, v in self.anomalies.items() if k not in BENIGN)

    def __str__(self) -> str:
        head = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        lines = [f"{'valid' if self.valid else 'INVALID'}: {head}"]
        for name, examples in self.anomalies.items():
            if examples:
                lines.append(f"  {name}: {len(examples)}, e.g. {examples[:3]}")
        return "\n".join(lines)


class History:
    """Thread-safe record of sends and polls (one lock; clients call it from their threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sends: list[Send] = []
        self.reads: list[tuple[str, Hashable, int, bytes] | tuple[str, Hashable, None, None]] = []
        self.finals: set[Hashable] = set()

    def invoke(self, process: str, key: Hashable, value: bytes) -> Send:
        op = Send(process, key, value)
        with self._lock:
            self.sends.append(op)
        return op

    def ok(self, op: Send, offset: int | None) -> None:
        op.status, op.offset, op.acked_at = "ok", offset, time.monotonic()

    def fail(self, op: Send) -> None:
        op.status = "fail"

    def info(self, op: Send) -> None:
        op.status = "info"

    def poll(self, process: str, key: Hashable, records: Iterable[tuple[int, bytes]]) -> None:
        with self._lock:
            self.reads.extend((process, key, o, v) for o, v in records)

    def final(self, key: Hashable, records: Iterable[tuple[int, bytes]]) -> None:
        """The whole key read from its start once writers stopped: it holds every ack."""
        self.seek("final", key)
        self.poll("final", key, records)
        with self._lock:
            self.finals.add(key)

    def first_ack_after(self, moment: float, key: Hashable | None = None) -> float | None:
        """Seconds from `moment` to the first acknowledgement of a send invoked after it (of
        `key`): a send in flight at `moment` may have committed before it."""
        times = [s.acked_at for s in self.sends if s.acked_at is not None
                 and s.invoked_at > moment and key in (None, s.key)]
        return min(times) - moment if times else None

    def seek(self, process: str, key: Hashable) -> None:
        """The consumer starts over (reassigned, restarted): its next read may go back."""
        with self._lock:
            self.reads.append((process, key, None, None))

    def acked(self, key: Hashable | None = None) -> dict[bytes, int]:
        return {s.value: s.offset for s in self.sends
                if s.status == "ok" and s.offset is not None and key in (None, s.key)}


def check(history: History, idempotent: bool = True) -> Report:
    """Every anomaly of the table above, with a few examples each."""
    found: dict[str, list[str]] = {name: [] for name in ANOMALIES}
    at: dict[Hashable, dict[int, set[bytes]]] = defaultdict(lambda: defaultdict(set))
    where: dict[Hashable, dict[bytes, set[int]]] = defaultdict(lambda: defaultdict(set))
    sent = {(s.key, s.value): s for s in history.sends}
    for s in history.sends:
        if s.status == "ok" and s.offset is not None:
            at[s.key][s.offset].add(s.value)
            where[s.key][s.value].add(s.offset)
    read_values: set[tuple[Hashable, bytes]] = set()
    max_read: dict[Hashable, int] = {}
    for _, key, offset, value in history.reads:
        if offset is None or value is None:
            continue
        at[key][offset].add(value)
        where[key][value].add(offset)
        read_values.add((key, value))
        max_read[key] = max(max_read.get(key, -1), offset)
        origin = sent.get((key, value))
        if origin is None:
            found["phantom-read"].append(f"{key}@{offset}={value!r}")
        elif origin.status == "fail":
            found["aborted-read"].append(f"{key}@{offset}={value!r}")
    for key, offsets in at.items():
        for offset, values in sorted(offsets.items()):
            if len(values) > 1:
                found["inconsistent-offsets"].append(f"{key}@{offset}: {sorted(values)}")
    if idempotent:
        for key, placed in where.items():
            for value, at_offsets in placed.items():
                if len(at_offsets) > 1:
                    found["duplicate"].append(f"{key} {value!r} at {sorted(at_offsets)}")
    for s in history.sends:
        if s.status != "ok" or (s.key, s.value) in read_values:
            continue
        reached = s.offset is not None and max_read.get(s.key, -1) > s.offset
        name = "lost-write" if reached or s.key in history.finals else "unseen"
        found[name].append(f"{s.key}@{s.offset}={s.value!r}")
    _order(history, at, found)
    counts = {"sends": len(history.sends),
              "acked": sum(s.status == "ok" for s in history.sends),
              "unknown": sum(s.status in ("info", "invoke") for s in history.sends),
              "reads": sum(o is not None for _, _, o, _ in history.reads)}
    return Report({k: v for k, v in found.items() if v}, counts)


def _order(history: History, at: dict[Hashable, dict[int, set[bytes]]],
           found: dict[str, list[str]]) -> None:
    last_send: dict[tuple[str, Hashable], int] = {}
    for s in history.sends:  # in invocation order, which is each producer's send order
        if s.status == "ok" and s.offset is not None:
            k = (s.process, s.key)
            if k in last_send and s.offset <= last_send[k]:
                found["nonmonotonic-send"].append(f"{s.process} {s.key}: {last_send[k]} then "
                                                  f"{s.offset}")
            last_send[k] = s.offset
    last_read: dict[tuple[str, Hashable], int] = {}
    for process, key, offset, _ in history.reads:
        k = (process, key)
        if offset is None:
            last_read.pop(k, None)
            continue
        prev = last_read.get(k)
        if prev is not None:
            if offset <= prev:
                found["nonmonotonic-poll"].append(f"{process} {key}: {prev} then {offset}")
            else:
                skipped = [o for o in range(prev + 1, offset) if o in at[key]]
                if skipped:
                    found["poll-skip"].append(f"{process} {key}: {prev} to {offset} over "
                                              f"{skipped[:5]}")
        last_read[k] = offset
