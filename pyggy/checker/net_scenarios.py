"""The network-namespace scenarios N1, N2, N3 and N5 (vsr.md §4.5 of the design notes;
docs/cluster.md, "Network-namespace scenarios"): each node of a three-node cluster in its own
namespace (`netns.Network`), the clients of `workload.Workload` in the root namespace reaching
them over a bridge, and the links cut instead of the processes killed. Each run is checked as
the P scenarios are (`scenarios.Scenario.finish`: the history, metadata linearizability,
byte-identical segments, `views_problems`).

- `n1`: isolate the partition's leader (both directions): a new leader, acks resume; healed,
  the old leader follows the new view and holds the same bytes.
- `n2`: isolate a backup while more ops commit than a partition journal keeps (128); healed,
  it catches up byte-identical (by a segment transfer, or from the prepares the TCP buffers
  kept for it).
- `n3`: asymmetric: the leader receives nothing but can send (`direction="in"`), or the
  reverse (`"out"`; seeded when None): the others make progress, no two primaries of a view.
- `n5`: flapping: for `seconds`, a seeded schedule heals for 0.2–0.8 s, then isolates or
  half-cuts a random node for 0.2–0.8 s (one cut in three for 1–2 heartbeat timeouts, so
  that views change); after it stops, progress and byte-identical segments.

The Kafka producers' request timeout is 5 s here: a request sent to a node the network
dropped gets no answer and no reset, and an idempotent producer waits for it before it sends
the same sequence to the new leader (librdkafka's default would be 30 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pyggy.checker.netns import Network
from pyggy.checker.scenarios import (
    HEARTBEAT,
    TOPIC,
    Outcome,
    Scenario,
    wait_identical,
    wait_log_after,
)
from pyggy.checker.workload import kafka_key, wait_leader

CLIENTS = ("librdkafka", "kafka-python", "iggy", "consumer")
REQUEST_TIMEOUT_MS = 5000


def _scenario(workdir: Path, name: str, seed: int, net: Network, clients: tuple[str, ...],
              rate: float) -> Scenario:
    sc = Scenario(workdir, name, seed, clients, rate=rate, network=net)
    sc.load.request_timeout_ms = REQUEST_TIMEOUT_MS
    sc.start()
    try:  # every writer running before the fault: kafka-python gives up for good when its
        # first request (InitProducerId) times out, so a fault during its start kills it
        writers = {c for c in clients if c in ("librdkafka", "kafka-python", "iggy")}
        deadline = time.monotonic() + 60
        while missing := writers - {s.process for s in sc.load.history.sends
                                    if s.status == "ok"}:
            if time.monotonic() > deadline:
                raise AssertionError(f"writers without an ack within 60 s: {sorted(missing)}")
            time.sleep(0.1)
    except BaseException:
        sc.close()
        raise
    return sc


def _rejoin(sc: Scenario, node: int | None, mark: int, healed: float) -> None:
    """After a heal: every node names one leader, `node` (if any) logged a view it does not
    lead after `mark`, and the segments end byte-identical (writers held meanwhile)."""
    leader = wait_leader(sc.cluster, TOPIC, timeout=40)
    sc.figures["heal -> all nodes agree on the leader"] = time.monotonic() - healed
    if node is not None and leader != node:
        sc.expect(wait_log_after(sc.server(node), mark, f"primary is replica {leader}", 20),
                  f"node {node} did not log the view of leader {leader} after the heal")
    sc.load.pause()
    differ = wait_identical(sc.cluster, 60.0)
    sc.expect(differ is None, f"node {node} did not catch up after the heal: {differ}")
    sc.figures["heal -> byte-identical"] = time.monotonic() - healed
    sc.load.resume()


def _leader_fault(sc: Scenario, net: Network, seconds: float, label: str,
                  cut: Callable[[int], None], what: str) -> None:
    """At a seeded moment `cut(leader)`; a new leader and the first acknowledgements follow;
    the fault holds `seconds` more, then heals, and the old leader rejoins (`_rejoin`)."""
    time.sleep(sc.rng.uniform(0.5, 2.0))
    victim = wait_leader(sc.cluster, TOPIC)  # now: it may have moved since the start
    mark = len(sc.server(victim).logs)
    cut(victim)
    at = time.monotonic()  # once the qdiscs are in place (each `tc` takes a while)
    new = wait_leader(sc.cluster, TOPIC, timeout=HEARTBEAT + 40, avoid=victim, skip={victim})
    sc.figures[f"{label} -> new leader named"] = time.monotonic() - at
    sc.failover(at, label)
    time.sleep(seconds)
    sc.expect(new != victim, f"the {what} node is still named leader")
    healed = time.monotonic()
    net.heal()
    _rejoin(sc, victim, mark, healed)
    time.sleep(1.0)


def n1(workdir: Path, seed: int, seconds: float = 2.0) -> Outcome:
    """N1: the leader isolated both ways at a seeded moment, for `seconds` past the failover."""
    with Network(3) as net:
        sc = _scenario(workdir, "n1", seed, net, CLIENTS, rate=5.0)
        try:
            _leader_fault(sc, net, seconds, "isolation", net.isolate, "isolated")
        except BaseException:
            sc.close()
            raise
        return sc.finish()


def n2(workdir: Path, seed: int, seconds: float = 2.0) -> Outcome:
    """N2: a backup isolated while 100 ops/s commit for `seconds` + 2 s (past the journal)."""
    with Network(3) as net:
        sc = _scenario(workdir, "n2", seed, net, ("librdkafka",), rate=100.0)
        try:
            backup = sc.rng.choice([i for i in range(3) if i != sc.leader])
            mark = len(sc.server(backup).logs)
            net.isolate(backup)
            cut = time.monotonic()
            time.sleep(seconds + 2.0)
            key = kafka_key(TOPIC)
            passed = sum(1 for s in sc.load.history.sends
                         if s.key == key and s.acked_at is not None and s.invoked_at > cut)
            sc.expect(passed > 128, f"only {passed} ops acknowledged while the backup was "
                      "cut off: not past the partition journal (128)")
            healed = time.monotonic()
            net.heal()
            _rejoin(sc, None, mark, healed)  # a backup that rejoins may log no new view
            # It rejoins by a segment transfer when the link lost what the primary sent
            # meanwhile; a backup that kept its view while cut off (docs/cluster.md, N-c) may
            # instead get every prepare from the TCP buffers once healed (4 s of this load fit
            # in them). Either way it ended byte-identical above.
        except BaseException:
            sc.close()
            raise
        return sc.finish()


def n3(workdir: Path, seed: int, seconds: float = 2.0, direction: str | None = None
       ) -> Outcome:
    """N3: the leader's inbound (`"in"`: it can send, not receive) or outbound link cut."""
    with Network(3) as net:
        sc = _scenario(workdir, "n3", seed, net, CLIENTS, rate=5.0)
        try:
            way = direction or sc.rng.choice(("in", "out"))
            _leader_fault(sc, net, seconds, f"cut {way}",
                          lambda node: net.cut(node, inbound=way == "in", outbound=way == "out"),
                          "half-cut")
        except BaseException:
            sc.close()
            raise
        return sc.finish()


def n5(workdir: Path, seed: int, seconds: float = 8.0) -> Outcome:
    """N5: `seconds` of a seeded schedule of isolations and half-cuts (module docstring)."""
    with Network(3) as net:
        sc = _scenario(workdir, "n5", seed, net, CLIENTS, rate=5.0)
        try:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                net.heal()
                time.sleep(sc.rng.uniform(0.2, 0.8))
                node = sc.rng.choice((0, 1, 2))
                how = sc.rng.choice(("both", "in", "out"))
                net.cut(node, inbound=how != "out", outbound=how != "in")
                # most cuts are shorter than the heartbeat timeout, one in three longer
                long = sc.rng.random() < 1 / 3
                time.sleep(sc.rng.uniform(HEARTBEAT, 2 * HEARTBEAT) if long
                           else sc.rng.uniform(0.2, 0.8))
            healed = time.monotonic()
            net.heal()
            sc.failover(healed, "end of flapping")
            _rejoin(sc, None, 0, healed)
            time.sleep(1.0)
        except BaseException:
            sc.close()
            raise
        return sc.finish()


NET_SCENARIOS: dict[str, Callable[..., Outcome]] = {"n1": n1, "n2": n2, "n3": n3, "n5": n5}
