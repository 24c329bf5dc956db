"""The engine's metadata on disk: nothing it cannot account for is deleted (lost+found),
commands are logged before they change memory, and a full disk fails them cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from pathlib import Path

import pytest
from pyggy.core.engine import CONSUMER, NEXT, LogEngine
from pyggy.core.errors import ErrorCode, IggyError
from pyggy.core.records.iggy_batch import build_batch

from pyggy.testing import fill_disk


def opened(root: Path, **kw) -> LogEngine:
    e = LogEngine(root, state_fsync=kw.pop("state_fsync", False), **kw)
    e.open(("iggy", "iggy"))
    return e


def send(e: LogEngine, n: int, stream="s", topic="t") -> None:
    msgs = [(i + 1, b"x" * 20, b"", 1000 + i) for i in range(n)]
    asyncio.run(e.data.append(stream, topic, (2, 0), build_batch(msgs), n))


def lost(root: Path) -> list[str]:
    """Files in lost+found, as paths relative to their stamp folder."""
    return sorted("/".join(p.relative_to(root / "lost+found").parts[1:])
                  for p in (root / "lost+found").rglob("*") if p.is_file())


def test_directories_unknown_to_the_metadata_go_to_lost_found(tmp_path: Path, caplog) -> None:
    root = tmp_path / "data"
    e = opened(root)
    asyncio.run(e.metadata.create_stream("s"))
    asyncio.run(e.metadata.create_topic("s", "t", 1))
    send(e, 3)
    e.close()
    seg = "streams/0/topics/0/partitions/0/00000000000000000000.log"
    # an unknown stream, an unknown topic and a partition past the topic's count
    for unknown in ("streams/7/topics/0/partitions/0", "streams/0/topics/5/partitions/0",
                    "streams/0/topics/0/partitions/3"):
        (root / unknown).mkdir(parents=True)
        (root / unknown / "00000000000000000000.log").write_bytes(b"data")
    (root / "streams/9/topics/0/partitions/0").mkdir(parents=True)  # empty: just removed
    with caplog.at_level(logging.WARNING):
        again = opened(root)
    assert lost(root) == ["streams/0/topics/0/partitions/3/00000000000000000000.log",
                          "streams/0/topics/5/partitions/0/00000000000000000000.log",
                          "streams/7/topics/0/partitions/0/00000000000000000000.log"]
    assert (root / seg).exists() and not (root / "streams/9").exists()
    assert caplog.text.count("not in the metadata") == 3
    again.close()


def test_a_leftover_under_a_recycled_id_goes_to_lost_found(tmp_path: Path) -> None:
    root = tmp_path / "data"
    e = opened(root)
    asyncio.run(e.metadata.create_stream("s"))
    asyncio.run(e.metadata.create_topic("s", "old", 1))
    asyncio.run(e.metadata.delete_topic("s", "old"))
    leftover = root / "streams/0/topics/0/partitions/0"
    leftover.mkdir(parents=True)
    (leftover / "00000000000000000000.log").write_bytes(b"left over")
    asyncio.run(e.metadata.create_topic("s", "t", 1))  # takes topic id 0 again
    assert lost(root) == ["streams/0/topics/0/partitions/0/00000000000000000000.log"]
    assert e.metadata.topic("s", "t").partitions[0].log.next_offset == 0
    e.close()


def test_a_refused_command_leaves_no_trace_in_the_log(tmp_path: Path) -> None:
    root = tmp_path / "data"
    e = opened(root)
    asyncio.run(e.metadata.create_stream("s"))
    size = e.state.size
    with pytest.raises(IggyError) as err:
        asyncio.run(e.metadata.create_stream("s"))
    assert err.value.code == ErrorCode.STREAM_NAME_ALREADY_EXISTS
    with pytest.raises(IggyError):
        # an invalid name: its partition directory is not left behind
        asyncio.run(e.metadata.create_topic("s", "", 1))
    assert e.state.size == size and not (root / "streams/0/topics/0").exists()
    e.close()
    assert (root / "state/state.log").stat().st_size == size


def test_a_consumer_offset_lost_in_both_copies_restarts_from_the_log_start(
        tmp_path: Path, caplog) -> None:
    root = tmp_path / "data"
    e = opened(root)
    asyncio.run(e.metadata.create_stream("s"))
    asyncio.run(e.metadata.create_topic("s", "t", 1))
    send(e, 10)
    asyncio.run(e.consumers.store_offset(CONSUMER, 1, "s", "t", 0, 6))
    asyncio.run(e.consumers.store_offset(CONSUMER, 2, "s", "t", 0, 4))
    e.close()
    path = root / "streams/0/topics/0/partitions/0/offsets/consumers/n1"
    for p in (path, path.with_name("n1.copy")):
        p.write_bytes(b"\0" * p.stat().st_size)
    with caplog.at_level(logging.ERROR):
        again = opened(root)
    assert "consumer offset refused" in caplog.text
    assert again.consumers.get_offset(CONSUMER, 1, "s", "t", 0) is None
    assert again.data.poll("s", "t", 0, NEXT, 0, 100, CONSUMER, 1).count == 10  # from the start
    assert again.consumers.get_offset(CONSUMER, 2, "s", "t", 0)[2] == 4
    assert lost(root) == [f"streams/0/topics/0/partitions/0/offsets/consumers/{n}"
                          for n in ("n1", "n1.copy")]
    again.close()


def until_refused(attempt) -> tuple[list[int], int]:
    """Call attempt(i) for i = 0, 1, ... until the disk refuses one (appends inside the last
    page of a file may still fit): the ones that succeeded, and the refused one."""
    done = []
    for i in range(500):
        try:
            attempt(i)
        except IggyError as err:
            assert err.code == ErrorCode.CANNOT_WRITE_TO_FILE, err
            assert "No space left on device" in str(err)
            return done, i
        done.append(i)
    raise AssertionError("the disk never filled up")


def test_a_full_disk_fails_metadata_commands_cleanly(small_tmpfs, caplog) -> None:
    root = small_tmpfs(1 << 20) / "data"
    e = opened(root, state_fsync=True)
    asyncio.run(e.metadata.create_stream("s"))
    asyncio.run(e.metadata.create_topic("s", "t", 1))
    send(e, 5)
    filler = fill_disk(root.parent)
    with caplog.at_level(logging.WARNING):
        streams, no_stream = until_refused(
            lambda i: asyncio.run(e.metadata.create_stream(f"s{i:03d}" + "n" * 200)))
        topics, no_topic = until_refused(lambda i: asyncio.run(
            e.metadata.create_topic("s", f"t{i}", 2)))
        users, no_user = until_refused(lambda i: asyncio.run(
            e.identity.create_user(f"u{i}", "pw1", 1, None)))
        offsets, _ = until_refused(
            lambda i: asyncio.run(e.consumers.store_offset(CONSUMER, i + 10, "s", "t", 0, 3)))
        # what was refused is nowhere: not in memory, not on disk
        assert e.metadata.get_stream(f"s{no_stream:03d}" + "n" * 200) is None
        assert e.metadata.get_topic("s", f"t{no_topic}") is None
        assert e.identity.get_user(f"u{no_user}") is None
        assert sorted(p.name for p in (root / "streams/0/topics").iterdir()) == [
            str(i) for i in range(len(topics) + 1)]
        assert caplog.text.count("metadata cannot be written") == 1  # then once a minute
        assert caplog.text.count("consumer offsets cannot be written") == 1
        filler.unlink()
        asyncio.run(e.metadata.create_stream("after"))
        asyncio.run(e.consumers.store_offset(CONSUMER, 1, "s", "t", 0, 4))
    assert caplog.text.count("can be written again") == 2
    e.close()
    again = opened(root)  # exactly what was acknowledged, nothing refused
    assert [s.name for s in again.metadata.streams()] == (
        ["s"] + [f"s{i:03d}" + "n" * 200 for i in streams] + ["after"])
    assert [t.name for t in again.metadata.topics("s")] == ["t"] + [f"t{i}" for i in topics]
    assert sorted(u.username for u in again.identity.users()) == sorted(
        ["iggy"] + [f"u{i}" for i in users])
    assert again.consumers.get_offset(CONSUMER, 1, "s", "t", 0)[2] == 4
    assert again.state.path.read_bytes() == again.state.mirror.read_bytes()
    again.close()


def test_no_inode_for_the_segment_files_undoes_the_topic(small_tmpfs) -> None:
    """The partition directories could be made, the segment files not (no inode left): the
    command is undone by its inverse and fails with the storage error."""
    mount = small_tmpfs(1 << 20)
    subprocess.run(["mount", "-o", "remount,nr_inodes=400", str(mount)], check=True)
    root = mount / "data"
    e = opened(root, state_fsync=True)
    asyncio.run(e.metadata.create_stream("s"))
    asyncio.run(e.metadata.create_topic("s", "t", 1))
    n = 0
    while os.statvfs(mount).f_ffree > 3:  # left: topics/1, its partitions/ and partitions/0
        (mount / f"inode{n}").touch()
        n += 1
    with pytest.raises(IggyError) as err:
        asyncio.run(e.metadata.create_topic("s", "t2", 1))
    assert err.value.code == ErrorCode.CANNOT_WRITE_TO_FILE
    assert e.metadata.get_topic("s", "t2") is None
    assert not (root / "streams/0/topics/1/partitions/0").exists()
    # logged, then undone by its inverse (not refused before the log: the directories fit)
    assert b'"delete_topic"' in (root / "state/state.log").read_bytes()
    for i in range(n):
        (mount / f"inode{i}").unlink()
    asyncio.run(e.metadata.create_topic("s", "t3", 1))  # id 1 again, on a clean directory
    send(e, 2, topic="t3")
    e.close()
    again = opened(root)
    assert [t.name for t in again.metadata.topics("s")] == ["t", "t3"]
    assert again.metadata.topic("s", "t3").partitions[0].log.next_offset == 2
    again.close()


def test_lookups_by_name_follow_renames_deletes_and_re_creates(tmp_path: Path) -> None:
    """`_find` remembers the id a name was found under (core/metadata/machine.py): a rename,
    a delete or a re-create under another id must never answer with what it remembered."""
    e = opened(tmp_path / "data")
    md = e.metadata
    asyncio.run(md.create_stream("s"))
    asyncio.run(md.create_topic("s", "a", 1))
    asyncio.run(md.create_topic("s", "b", 1))
    first = md.topic("s", "a")
    assert md.topic("s", "a") is first  # remembered, and still right
    asyncio.run(md.update_topic("s", "a", "renamed"))
    with pytest.raises(IggyError) as err:
        md.topic("s", "a")
    assert err.value.code == ErrorCode.TOPIC_NAME_NOT_FOUND
    assert md.topic("s", "renamed") is first
    asyncio.run(md.update_topic("s", "b", "a"))  # the name now belongs to another topic
    assert md.topic("s", "a").id == md.topic(0, 1).id != first.id
    asyncio.run(md.delete_topic("s", "a"))
    asyncio.run(md.delete_topic("s", "renamed"))
    asyncio.run(md.create_topic("s", "x", 1))  # takes id 0, where "a" was first found
    asyncio.run(md.create_topic("s", "a", 1))
    assert md.topic("s", "a").id == 1 and md.topic("s", "a").name == "a"
    with pytest.raises(IggyError) as err:
        md.stream("t")
    assert err.value.code == ErrorCode.STREAM_NAME_NOT_FOUND
    asyncio.run(md.update_stream("s", "s2"))
    with pytest.raises(IggyError) as err:
        md.topic("s", "a")
    assert err.value.code == ErrorCode.STREAM_NAME_NOT_FOUND
    assert md.topic("s2", "a").name == "a"
    e.close()
