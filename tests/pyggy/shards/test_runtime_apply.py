"""A shard other than 0 applying shard 0's numbered broadcast (pyggy/shards/runtime.py) in
one process, without the channel: metadata commands and Iggy group memberships in one order,
waiters for an entry (several may wait for the same one) woken once it is applied, and a gap
in the numbers stopping the shard. The processes: test_sharded_server.py, test_sharded_groups.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyggy.core.engine import LogEngine

from pyggy.shards.runtime import ShardRuntime


def _shards(root: Path) -> tuple[LogEngine, LogEngine, ShardRuntime]:
    """Shard 0's engine (applying by hand what it would broadcast: it makes the
    directories) and shard 1's, with its runtime."""
    leader = LogEngine(root, state_fsync=False)
    leader.files.owns = ShardRuntime(0, 2, root).owns
    leader.open(("iggy", "iggy"))
    rt = ShardRuntime(1, 2, root / "sockets")
    engine = LogEngine(root, state_fsync=False)
    rt.prepare(engine)
    engine.open(None)
    rt.attach(engine)
    return leader, engine, rt


def test_memberships_apply_in_order_with_metadata_and_wake_every_waiter(tmp_path: Path
                                                                       ) -> None:
    leader, engine, rt = _shards(tmp_path)
    assert engine.consumers.route is rt and engine.consumers.owners is rt

    def command(seq: int, cmd: dict) -> None:
        leader.commands.applier(dict(cmd))
        rt._apply({"seq": seq, "cmd": cmd})

    async def run() -> None:
        command(1, {"type": "create_stream", "name": "s", "created_at": 1})
        command(2, {"type": "create_topic", "stream_id": 0, "name": "t",
                    "partitions_count": 3, "options": [], "created_at": 2})
        command(3, {"type": "create_group", "stream_id": 0, "topic_id": 0, "name": "g"})
        # two requests answered with the same entry number wait for it together
        waiters = [asyncio.ensure_future(rt._applied(4)) for _ in range(2)]
        await asyncio.sleep(0)
        assert not any(w.done() for w in waiters)
        rt._apply({"seq": 4, "members": [0, 0, 0, 5, [[1, [0, 2]], [4, [1]]]]})
        assert await asyncio.wait_for(asyncio.gather(*waiters), 5) == [None, None]
        g = engine.consumers.group(0, 0, "g")
        assert {m.id: m.partitions for m in g.members.values()} == {1: [0, 2], 4: [1]}
        assert g.generation == 5
        # a metadata command after it rebalances the same members here as on shard 0
        command(5, {"type": "create_partitions", "stream_id": 0, "topic_id": 0, "count": 1,
                    "created_at": 3})
        assert {m.id: m.partitions for m in g.members.values()} == {1: [0, 2], 4: [1, 3]}
        assert g.generation == 6
        topic = await asyncio.wait_for(rt._applied(2), 1)  # applied before: at once
        assert getattr(topic, "name", None) == "t"
        # a membership of a group deleted meanwhile is ignored
        rt._apply({"seq": 6, "members": [0, 0, 9, 1, [[1, [0]]]]})
        assert not rt.failed
        # a gap stops the shard
        rt._apply({"seq": 8, "members": [0, 0, 0, 7, []]})
        assert rt.failed and rt.stop.is_set()

    asyncio.run(run())
    engine.close()
    leader.close()
