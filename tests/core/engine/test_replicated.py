"""ReplicatedState (core/engine/replicated.py): on one node a change runs its handler at once
and returns its result; a change replayed before its door's handler exists waits, in order,
until `flush`; in a cluster `run` hands the body to the metadata group instead."""

from __future__ import annotations

import asyncio

from pyggy.core.engine.replicated import ReplicatedState


def test_one_node_runs_the_handler_at_once() -> None:
    r = ReplicatedState()
    seen: list[dict] = []
    r.register("k", lambda body: seen.append(body) or len(seen))
    assert asyncio.run(r.run("k", {"x": 1})) == 1
    assert seen == [{"kind": "k", "x": 1}]


def test_changes_without_a_handler_wait_in_order_until_flushed() -> None:
    r = ReplicatedState()
    seen: list[int] = []
    r.register("mine", lambda body: seen.append(-body["n"]))
    for n in range(3):  # a restart replays the door's changes before the door exists
        assert r.apply({"kind": "door", "n": n}) is None
    r.apply({"kind": "mine", "n": 9})
    assert seen == [-9]
    r.register("door", lambda body: seen.append(body["n"]))
    assert seen == [-9]  # registering alone runs nothing: the stores may not exist yet
    r.flush()
    assert seen == [-9, 0, 1, 2] and not r.backlog
    r.flush()
    assert seen == [-9, 0, 1, 2]


def test_a_cluster_replicates_instead_of_applying() -> None:
    class Cluster:
        bodies: list[dict] = []

        async def replicate(self, body: dict) -> object:
            self.bodies.append(body)
            return "committed"

    r = ReplicatedState()
    r.register("k", lambda body: (_ for _ in ()).throw(AssertionError("applied locally")))
    cluster = Cluster()
    r.cluster = cluster  # type: ignore[assignment]
    assert asyncio.run(r.run("k", {"x": 2})) == "committed"
    assert cluster.bodies == [{"kind": "k", "x": 2}]
