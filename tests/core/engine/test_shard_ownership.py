"""The engine's part of sharding (docs/sharding.md): a process opens only the partitions it
owns (the others get an ElsewhereLog stand-in), and a shard other than 0 applies metadata
without writing the state log or touching directories. The processes, forwarding and the
broadcast: tests/pyggy/shards."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pyggy.core.engine import LogEngine
from pyggy.core.engine.partitions import elsewhere
from pyggy.core.errors import ErrorCode, IggyError


def _engine(root: Path, shard: int) -> LogEngine:
    e = LogEngine(root, state_fsync=False)
    e.files.owns = lambda s, t, p: p % 2 == shard  # a stand-in for pyggy/shards/rule.py
    if shard:
        e.files.manages_dirs = False
        e.commands.logged = False
    return e


def test_only_owned_partitions_are_opened_and_the_others_are_refused(tmp_path: Path) -> None:
    e = _engine(tmp_path, 0)
    e.open(("iggy", "iggy"))
    t = asyncio.run(e.metadata.create_topic(
        asyncio.run(e.metadata.create_stream("s")).id, "t", 4))
    assert [elsewhere(p.log) for p in t.partitions] == [False, True, False, True]
    # shard 0 makes every partition's directory: the owner opens it
    assert all(e.files.path(t.stream_id, t.id, p).is_dir() for p in range(4))
    assert [plog for _, plog in e.files.logs(e.commands.meta.streams)] == \
        [t.partitions[0].log, t.partitions[2].log]
    assert e.counts()["partitions"] == 4 and e.clean() == 0  # maintenance skips them
    with pytest.raises(IggyError) as refused:
        e.data.flush(t, 1)  # not forwarded: refused, not a false "synced"
    assert refused.value.code == ErrorCode.PARTITION_NOT_FOUND
    with pytest.raises(IggyError) as no_offsets:
        e.files.offsets_of(t, 3)
    assert no_offsets.value.code == ErrorCode.PARTITION_NOT_FOUND
    e.close()


def test_a_follower_shard_applies_without_logging_or_making_directories(tmp_path: Path
                                                                        ) -> None:
    leader = _engine(tmp_path, 0)
    leader.open(("iggy", "iggy"))
    follower = _engine(tmp_path, 1)
    follower.open(None)  # replays what shard 0 logged, root user included
    assert follower.generated_root_password is None
    assert [u.username for u in follower.commands.meta.users.values()] == ["iggy"]
    size = leader.state.size
    cmd = {"type": "create_stream", "name": "s", "created_at": 1}
    leader.commands.applier(dict(cmd))  # logged, then broadcast: applied on the follower
    follower.commands.applier(dict(cmd))
    tcmd = {"type": "create_topic", "stream_id": 0, "name": "t", "partitions_count": 2,
            "options": [], "created_at": 2}
    leader_topic = leader.commands.applier(dict(tcmd))
    topic = follower.commands.applier(dict(tcmd))
    assert leader.state.size > size and follower.state.size == size  # follower logs nothing
    assert [elsewhere(p.log) for p in topic.partitions] == [True, False]
    assert [elsewhere(p.log) for p in leader_topic.partitions] == [False, True]
    # deleting: the follower closes what it owns and leaves the directories to shard 0
    follower.commands.applier({"type": "delete_topic", "stream_id": 0, "topic_id": 0})
    assert leader.files.path(0, 0, 0).is_dir()
    leader.commands.applier({"type": "delete_topic", "stream_id": 0, "topic_id": 0})
    assert not leader.files.path(0, 0, 0).exists()
    follower.close()
    leader.close()
