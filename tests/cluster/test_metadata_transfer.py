"""State transfer of the metadata group (cluster/metadata_transfer.py) on real data
directories: a peer's engine (state log, Iggy consumer offsets) and Kafka stores (committed
group offsets, producer-id mark) bundled, fetched chunk by chunk into a node with an older
state, verified, staged and installed; the installed directory opens as the peer's state.
Corrupt, truncated and padded chunks and bad manifests are refused (and fetched again); an
install cut off after any rename completes at the next start; an unfinished fetch installs
nothing. The state log is served from hard links as it was at the snapshot, outside the
small files' memory cap; a peer still building its manifest is asked again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyggy.cluster import metadata_transfer as mx
from pyggy.cluster.metadata_sm import STATE, MetadataMachine, RestartToInstall
from pyggy.consensus.message import Command, Message
from pyggy.consensus.status import Divergence
from pyggy.core.engine import CONSUMER, LogEngine
from pyggy.kafka_wire.groups.store import CommittedOffset, FileOffsetStore
from pyggy.kafka_wire.producer_ids import ProducerIdFile

GROUP = 1 << 63
CHUNK = 512  # small, so a bundle is many chunks
CHECKPOINT = 7


def engine(root: Path) -> LogEngine:
    e = LogEngine(root)
    e.open(("iggy", "iggy"))
    return e


def make_state(root: Path, streams: int, offset: int, mark: int) -> None:
    """A data directory with `streams` streams (a topic each), a consumer offset on each, a
    committed Kafka group offset and a producer-id mark: every store a transfer carries."""
    async def fill() -> None:
        e = engine(root)
        try:
            for k in range(streams):
                await e.metadata.create_stream(f"s{k}")
                await e.metadata.create_topic(f"s{k}", "t", 1)
                await e.consumers.store_offset(CONSUMER, 1, f"s{k}",
                                               "t", 0, 0)
        finally:
            e.close()

    asyncio.run(fill())
    FileOffsetStore(root / "kafka" / "offsets").put(
        "g", {("t", 0): CommittedOffset(offset, -1, "")})
    ProducerIdFile(root / "kafka" / "producer_ids").store(mark)


def answer(bundle: mx.Bundle, req: Message, replica: int = 1) -> Message:
    """What a serving node answers (node.py `_on_metadata_transfer`, the bundle built)."""
    if req.segment == 0:
        flags, body = mx.MANIFEST, bundle.manifest.encode()
    else:
        flags, body = mx.serve(bundle, req)
    return Message(Command.SEGMENT_CHUNK, cluster=b"\0" * 16, replica=replica, group=GROUP,
                   checkpoint_op=req.checkpoint_op, segment=req.segment, entry=req.entry,
                   flags=flags, body=body)


def run_fetch(fetch: mx.MetadataFetch, bundle: mx.Bundle, mangle=None) -> int:
    """Drive `fetch` to done against `bundle`; `mangle(message) -> message` is the wire.
    Returns how many answers were refused."""
    refused = 0
    for _ in range(10_000):
        if fetch.complete:
            fetch.stage()  # the node runs it on a thread
            assert fetch.done
            return refused
        m = answer(bundle, fetch.request(b"\0" * 16, 0, 0), fetch.target)
        if mangle is not None:
            m = mangle(m)
        assert fetch.expects(m)
        try:
            fetch.on_chunk(m)
        except mx.Refused:
            refused += 1
            assert not fetch.failed()
    raise AssertionError("fetch did not finish")


@pytest.fixture
def peer_and_node(tmp_path: Path) -> tuple[Path, Path]:
    peer, node = tmp_path / "peer", tmp_path / "node"
    make_state(peer, streams=12, offset=40, mark=7000)
    make_state(node, streams=2, offset=5, mark=1000)
    # the node holds a consumer offset the peer's history deleted
    stale = node / "streams/2/topics/1/partitions/0/offsets/consumers"
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "99").write_bytes(b"old")
    return peer, node


def expected(peer: Path) -> dict[str, bytes]:
    return {rel: (peer / rel).read_bytes() for rel in mx.state_files(peer)}


def assert_installed_as(node: Path, peer: Path, op: int, files_only: bool = False) -> None:
    assert {rel: (node / rel).read_bytes() for rel in mx.state_files(node)} == expected(peer)
    assert mx.installed_op(node / "cluster") == op
    assert not (node / "cluster" / mx.STAGING).exists()
    if files_only:
        return
    e = engine(node)
    try:
        assert sorted(s.name for s in e.metadata.meta.streams.values()) == \
            sorted(f"s{k}" for k in range(12))
        got = e.consumers.get_offset(CONSUMER, 1, "s11",
                                     "t", 0)
        assert got is not None and got[2] == 0
    finally:
        e.close()
    assert FileOffsetStore(node / "kafka" / "offsets").get("g", "t", 0) == \
        CommittedOffset(40, -1, "")
    assert ProducerIdFile(node / "kafka" / "producer_ids").load(0) == 7000
    lost = list((node / "lost+found").rglob("*"))
    assert any(p.name == "99" for p in lost)  # not in the checkpoint: moved aside, kept
    assert any(p.name == "state.log" for p in lost)  # the replaced state log, kept


def test_fetch_stage_and_install_give_the_peers_state(peer_and_node: tuple[Path, Path]) -> None:
    peer, node = peer_and_node
    bundle = mx.build(peer, 42, CHUNK)
    assert len(bundle.manifest.chunks) > 3
    assert not any("producer_ids_own" in f[0] for f in bundle.manifest.files)
    fetch = mx.MetadataFetch(node / "cluster", GROUP, CHECKPOINT, [1, 2])
    assert run_fetch(fetch, bundle) == 0
    assert (node / "cluster" / mx.STAGING / mx.READY).exists()
    assert mx.install_pending(node) == 42
    assert_installed_as(node, peer, 42)
    assert mx.install_pending(node) is None  # nothing left to install


@pytest.mark.parametrize("how", ["flip", "truncate", "pad", "other chunk"])
def test_a_bad_chunk_is_refused_and_fetched_again(peer_and_node: tuple[Path, Path],
                                                  how: str) -> None:
    peer, node = peer_and_node
    bundle = mx.build(peer, 42, CHUNK)
    spoiled = []

    def mangle(m: Message) -> Message:
        if m.segment and m.entry == 2 and not spoiled:
            spoiled.append(m.entry)
            body = bytearray(m.body)
            if how == "flip":
                body[len(body) // 2] ^= 0x10
            elif how == "truncate":
                del body[-1:]
            elif how == "pad":
                body += b"\0"
            else:
                body = bytearray(bundle.chunk(3))
            return Message(Command.SEGMENT_CHUNK, cluster=m.cluster, replica=m.replica,
                           group=m.group, checkpoint_op=m.checkpoint_op, segment=m.segment,
                           entry=m.entry, flags=m.flags, body=bytes(body))
        return m

    fetch = mx.MetadataFetch(node / "cluster", GROUP, CHECKPOINT, [1, 2])
    assert run_fetch(fetch, bundle, mangle) == 1
    assert fetch.peer == 1  # the refusal moved to the next peer, which served it all
    mx.install_pending(node)
    assert_installed_as(node, peer, 42)


def test_gone_and_stale_bundles_are_refused(peer_and_node: tuple[Path, Path]) -> None:
    peer, node = peer_and_node
    fetch = mx.MetadataFetch(node / "cluster", GROUP, CHECKPOINT, [1, 2])
    old = mx.build(peer, CHECKPOINT - 1, CHUNK)  # below the checkpoint it was sent
    with pytest.raises(mx.Refused, match="below the checkpoint"):
        fetch.on_chunk(answer(old, fetch.request(b"\0" * 16, 0, 0)))
    gone = Message(Command.SEGMENT_CHUNK, replica=1, group=GROUP, checkpoint_op=CHECKPOINT,
                   flags=mx.GONE)
    assert fetch.expects(gone)
    with pytest.raises(mx.Refused, match="cannot serve"):
        fetch.on_chunk(gone)
    bundle = mx.build(peer, 42, CHUNK)
    fetch.on_chunk(answer(bundle, fetch.request(b"\0" * 16, 0, 0)))
    req = fetch.request(b"\0" * 16, 0, 0)
    assert mx.serve(bundle, Message(Command.REQUEST_SEGMENT, segment=41, entry=0))[0] == mx.GONE
    assert mx.serve(bundle, Message(Command.REQUEST_SEGMENT, segment=42, entry=10**6))[0] == \
        mx.GONE
    assert req.segment == 42 and req.entry == 0


@pytest.mark.parametrize("path", ["../etc/passwd", "state/../../x", "streams/1/topics/1/x",
                                  "kafka/producer_ids_own", "/state/state.log",
                                  "cluster/metadata-installed", "lost+found/state/x"])
def test_a_manifest_naming_another_file_is_refused(path: str) -> None:
    m = mx.Manifest(9, ((path, 1, 0),), CHUNK, (0,))
    with pytest.raises(ValueError):
        mx.Manifest.decode(m.encode())


def test_a_deeply_nested_manifest_is_refused() -> None:
    with pytest.raises(ValueError):
        mx.Manifest.decode(b"[" * 100_000)


@given(st.binary(max_size=300))
def test_manifest_decode_refuses_malformed_bytes(data: bytes) -> None:
    try:
        m = mx.Manifest.decode(data)
    except ValueError:
        return
    assert mx.Manifest.decode(m.encode()) == m


@given(st.lists(st.tuples(st.sampled_from(["state/state.log", "kafka/producer_ids",
                                           "kafka/offsets/g", "kafka/offsets/h"]),
                          st.integers(0, 5000), st.integers(0, 2**32 - 1)),
                unique_by=lambda f: f[0]),
       st.integers(0, 2**63), st.integers(1, 4096))
def test_manifest_round_trips(files, op: int, chunk: int) -> None:
    size = sum(f[1] for f in files)
    m = mx.Manifest(op, tuple(files), chunk, tuple(range(-(-size // chunk))))
    assert mx.Manifest.decode(m.encode()) == m


class Crash(Exception):
    pass


def test_an_install_cut_off_after_any_rename_completes_at_the_next_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash cannot be provoked between two renames of a real process reliably: `os.rename`
    and `os.replace` (what lost+found moves and installs use) raise after k calls, for every
    k, and the next start (an unpatched `install_pending`) must end with the peer's files."""
    peer, node = tmp_path / "peer", tmp_path / "node"
    make_state(peer, streams=3, offset=40, mark=7000)
    make_state(node, streams=1, offset=5, mark=1000)
    bundle = mx.build(peer, 42, CHUNK)
    pristine = tmp_path / "pristine"
    os.rename(node, pristine)
    real_rename, real_replace = os.rename, os.replace
    k = 0
    while True:
        shutil.rmtree(node, ignore_errors=True)
        shutil.copytree(pristine, node)
        fetch = mx.MetadataFetch(node / "cluster", GROUP, CHECKPOINT, [1])
        run_fetch(fetch, bundle)
        calls = [0]

        def counted(real, calls: list[int] = calls, k: int = k):
            def go(a, b):
                if calls[0] == k:
                    raise Crash
                calls[0] += 1
                return real(a, b)
            return go

        monkeypatch.setattr(os, "rename", counted(real_rename))
        monkeypatch.setattr(os, "replace", counted(real_replace))
        try:
            mx.install_pending(node)
            finished = True
        except Crash:
            finished = False
        monkeypatch.setattr(os, "rename", real_rename)
        monkeypatch.setattr(os, "replace", real_replace)
        if not finished:
            assert (node / "cluster" / mx.STAGING / mx.READY).exists()
            assert mx.installed_op(node / "cluster") == 0  # the marker comes last
            assert mx.install_pending(node) == 42
        assert_installed_as(node, peer, 42, files_only=True)
        if finished:
            break
        k += 1
    assert k > 5  # every rename of the install was a crash point once


def test_an_unfinished_fetch_installs_nothing(peer_and_node: tuple[Path, Path]) -> None:
    peer, node = peer_and_node
    before = expected(node)
    bundle = mx.build(peer, 42, CHUNK)
    fetch = mx.MetadataFetch(node / "cluster", GROUP, CHECKPOINT, [1])
    for _ in range(3):  # the manifest and two chunks, then the node stops
        fetch.on_chunk(answer(bundle, fetch.request(b"\0" * 16, 0, 0)))
    assert mx.install_pending(node) is None
    assert expected(node) == before
    assert not (node / "cluster" / mx.STAGING).exists()


def test_ops_up_to_the_installed_one_are_skipped(tmp_path: Path) -> None:
    e = engine(tmp_path)
    try:
        machine = MetadataMachine(e, installed=10)
        store = b'{"kind":"iggy_offset","stream_id":1,"topic_id":1,"partition_id":0,' \
                b'"consumer_kind":1,"key":1,"offset":3}'
        assert machine.apply(10, STATE, store, 0) == b'{"op": 10}'  # not even parsed
        reply = machine.apply(11, STATE, b"not json", 0)
        assert b"malformed" in reply  # above it: executed
        ahead = struct.pack("<Q", e.commands.last_op + 50)
        assert machine.missing(ahead)
        with pytest.raises(Divergence):
            machine.restore(ahead)
        machine.staged = 99  # a bundle covering that checkpoint is staged: restore takes it,
        machine.restore(ahead)
        with pytest.raises(RestartToInstall):  # and nothing more executes on this engine
            machine.apply(12, STATE, store, 0)
    finally:
        e.close()


@given(st.binary(max_size=2 * CHUNK), st.integers(0, 3))
def test_any_chunk_body_but_the_right_one_is_refused(body: bytes, flags: int) -> None:
    files = (("state/state.log", 3 * CHUNK, 0),)
    right = bytes(range(256)) * 2
    m = mx.Manifest(50, files, CHUNK, (mx.crc32c(right),) * 3)
    where = Path(tempfile.mkdtemp())
    fetch = mx.MetadataFetch(where / "cluster", GROUP, CHECKPOINT, [1])
    fetch.manifest, fetch.crcs = m, [0]
    chunk = Message(Command.SEGMENT_CHUNK, replica=1, group=GROUP, checkpoint_op=CHECKPOINT,
                    segment=50, entry=0, flags=flags & mx.GONE, body=body)
    try:
        if body == right and not flags & mx.GONE:
            fetch.on_chunk(chunk)
            assert fetch.next == 1
        else:
            with pytest.raises(mx.Refused):
                fetch.on_chunk(chunk)
            assert fetch.next == 0 and fetch.received == 0
            assert not (where / "cluster" / mx.STAGING / "files").exists()
    finally:
        shutil.rmtree(where)


def test_the_state_log_is_served_as_it_was_at_the_snapshot_outside_the_memory_cap(
        peer_and_node: tuple[Path, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The snapshot (one step of the serving loop) links the append-only state log and reads
    the small files; commands appended after it are not in the bundle, and only the small
    files count against SMALL_MAX (no cap on the state log: 64 MiB before)."""
    peer, node = peer_and_node
    log_size = (peer / "state" / "state.log").stat().st_size
    small = sum(len((peer / rel).read_bytes()) for rel in mx.state_files(peer)
                if not rel.startswith("state/"))
    assert small < log_size
    monkeypatch.setattr(mx, "SMALL_MAX", small)
    with pytest.raises(ValueError, match="exceed"):  # every file read: over the cap
        mx.build(peer, 42, CHUNK)
    links = tmp_path / "serving"
    bundle = mx.snapshot(peer, 42, CHUNK, links)
    assert (links / "state" / "state.log").stat().st_ino == \
        (peer / "state" / "state.log").stat().st_ino
    want = expected(peer)

    async def later() -> None:  # the serving node goes on after the snapshot
        e = engine(peer)
        try:
            await e.metadata.create_stream("after-the-snapshot")
        finally:
            e.close()

    asyncio.run(later())
    assert (peer / "state" / "state.log").stat().st_size > log_size
    bundle.describe()
    fetch = mx.MetadataFetch(node / "cluster", GROUP, CHECKPOINT, [1])
    run_fetch(fetch, bundle)
    bundle.close()
    assert not links.exists()
    assert mx.install_pending(node) == 42
    assert {rel: (node / rel).read_bytes() for rel in mx.state_files(node)} == want
    e = engine(node)
    try:
        assert e.metadata.get_stream("after-the-snapshot") is None
        assert e.metadata.get_stream("s11") is not None
    finally:
        e.close()


def test_a_peer_building_its_manifest_is_asked_again(tmp_path: Path) -> None:
    fetch = mx.MetadataFetch(tmp_path / "cluster", GROUP, CHECKPOINT, [1, 2])
    building = Message(Command.SEGMENT_CHUNK, replica=1, group=GROUP, checkpoint_op=CHECKPOINT,
                       flags=mx.BUILDING)
    for _ in range(mx.BUILDING_MAX):
        assert fetch.expects(building)
        assert fetch.on_chunk(building) is False and fetch.ask_again
        assert fetch.request(b"\0" * 16, 0, 0).segment == 0  # the manifest, again
    with pytest.raises(mx.Refused, match="still building"):
        fetch.on_chunk(building)
    assert not fetch.failed() and fetch.target == 2 and fetch.building == 0
