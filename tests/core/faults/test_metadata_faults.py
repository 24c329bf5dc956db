"""Fault injection over every metadata file kind pyggy writes: the state log and its mirror,
Iggy consumer offsets, the producer-id mark, the log start floor, the archive manifest and
deletion queue, Kafka group offsets.

A data directory is prepared once (streams, topics, users, tokens, groups, messages, offsets,
a DeleteRecords floor, a tiered topic with archived segments, Kafka group offsets, producer
ids). Each case copies it, damages one file kind (seeded bit flips at many positions, 4 KiB
zeroed sectors, truncation at every byte of the last entry, or both copies at once), opens a
LogEngine and the Kafka stores in-process and ends in exactly one outcome (table.py):
repaired (everything as before), refused (a clear error or a safe fallback, nothing deleted)
or harmless (provably the same visible state). Never wrong metadata or offsets served, and
every segment file of the prepared directory is still there, in place or in lost+found.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
from pyggy.archiver.disk import DiskArchiver
from pyggy.archiver.service import ArchiverService, ServiceSettings
from pyggy.archiver.tiered import MANIFEST, PENDING_DELETES, TieredStore
from pyggy.core.engine import CONSUMER, CONSUMER_GROUP, NEXT, LogEngine
from pyggy.core.metadata.machine import permissions_to_dict
from pyggy.core.metadata.state_log import ENTRY_HEAD, CorruptState
from pyggy.core.model import GlobalPermissions, Permissions
from pyggy.core.records.iggy_batch import build_batch
from pyggy.core.small_file import HEAD
from pyggy.kafka_wire.groups.store import CommittedOffset, FileOffsetStore, _file_name
from pyggy.kafka_wire.producer_ids import ProducerIdFile

SEED = 20261207
FLIPS = 24  # seeded bit flips per copy of each file kind
GROUP_TP = ("s.t", 0)  # a Kafka group offset, of partition 0 of Iggy topic s/t


class Node:
    """Everything that reads metadata at start, opened in-process over one data directory."""

    def __init__(self, root: Path, archive: Path, repair_state: bool = False) -> None:
        self.root = root
        self.store = TieredStore(DiskArchiver(archive), root / "archiver", 1 << 20)
        self.engine = LogEngine(root, state_fsync=True, remote=self.store.remote_for)
        meta = self.engine.commands.meta
        self.store.names = lambda sid, tid: (meta.streams[sid].name,
                                             meta.streams[sid].topics[tid].name)
        try:
            self.engine.open(("iggy", "iggy"), repair_state=repair_state)
        except BaseException:
            self.store.close()
            raise
        self.kafka = FileOffsetStore(root / "kafka" / "offsets", log_start=self._log_start)
        self.ids = ProducerIdFile(root / "kafka" / "producer_ids")

    def _log_start(self, topic: str, partition: int) -> int | None:
        stream, _, name = topic.partition(".")
        t = self.engine.metadata.get_topic(stream, name)
        return None if t is None else t.partitions[partition].log.start_offset

    def observe(self) -> dict:
        """The visible state: what either door could serve."""
        e = self.engine
        streams = []
        for s in e.metadata.streams():
            topics = []
            for t in e.metadata.topics(s.id):
                parts = [(p.id, p.log.start_offset, p.log.next_offset, len(p.log.tiered),
                          p.log.floor, dict(e.files.offsets[(s.id, t.id, p.id)].values))
                         for p in t.partitions]
                manifest = [asdict(x) for p in t.partitions
                            for x in getattr(p.log.remote, "entries", {}).values()]
                topics.append((t.id, t.name, t.options.message_expiry, parts,
                               sorted(g.name for g in t.groups.values()), manifest))
            streams.append((s.id, s.name, topics))
        users = [(u.id, u.username, u.status, u.password_hash,
                  permissions_to_dict(u.permissions), sorted(u.tokens)) for u in e.identity.users()]
        return {"streams": streams, "users": users,
                "kafka": {g: self.kafka.offsets(g) for g in self.kafka.groups()},
                "kafka_fetch": self.kafka.get("g1", *GROUP_TP),
                "pending": list(self.store.pending_deletes)}

    def close(self) -> None:
        self.store.close()
        self.engine.close()


def send(e: LogEngine, stream: str, topic: str, n: int, pid: int = 0) -> None:
    msgs = [(i + 1, f"message-{i:05d}".encode().ljust(60, b"."), b"", 1000 + i)
            for i in range(n)]
    asyncio.run(e.data.append(stream, topic, (2, pid), build_batch(msgs), n))


def prepare(root: Path, archive: Path) -> tuple[dict, dict]:
    """Build the data directory; return the visible state before and after its last command."""
    node = Node(root, archive)
    e = node.engine
    full = Permissions(GlobalPermissions(*([True] * 10)))
    asyncio.run(e.identity.create_user("alice", "secret-a", 1, full))
    asyncio.run(e.identity.create_user("bob", "secret-b", 2, None))
    for i in range(16):  # the state log spans more than one 4 KiB sector
        asyncio.run(e.identity.create_token(e.identity.user("alice").id, f"token-{i:02d}", 0))
    asyncio.run(e.metadata.create_stream("s"))
    asyncio.run(e.metadata.create_stream("gone"))
    asyncio.run(e.metadata.create_topic("s", "t", 2,
                            [("message_expiry", 12, (3600 * 10**6).to_bytes(8, "little"))]))
    asyncio.run(e.metadata.create_topic("s", "tiered", 1))
    asyncio.run(e.metadata.create_topic("gone", "x", 1))
    asyncio.run(e.metadata.create_stream("s2"))
    asyncio.run(e.metadata.create_topic("s2", "u", 1))
    asyncio.run(e.consumers.create_group("s", "t", "workers"))
    asyncio.run(e.metadata.update_topic("s", "t", "t"))
    asyncio.run(e.metadata.delete_stream("gone"))
    for pid in (0, 1):
        send(e, "s", "t", 10, pid)
    send(e, "s2", "u", 5)
    asyncio.run(e.consumers.store_offset(CONSUMER, 1, "s", "t", 0, 6))
    asyncio.run(e.consumers.store_offset(CONSUMER_GROUP, "workers", "s", "t", 1, 3))
    asyncio.run(e.metadata.delete_records(e.metadata.topic("s", "t"), 0, 2))
    tiered = e.metadata.topic("s", "tiered")
    tiered.options.segment_size = 2000
    tiered.options.local_retention_segments = 1
    for _ in range(8):
        send(e, "s", "tiered", 10)
    service = ArchiverService(e, node.store, ServiceSettings(
        messages=True, interval=3600, staging_dir=root.parent / "staging"))
    assert asyncio.run(service._pass())
    assert tiered.partitions[0].log.tiered  # some segments are only in the archive now
    node.store.queue_delete(["streams/old/topics/x/partitions/0/00000000000000000000.log"])
    node.kafka.put("g1", {GROUP_TP: CommittedOffset(7, -1, "meta")})
    node.ids.store(5000)
    node.close()
    before_last = observed(root, archive)
    node = Node(root, archive)
    asyncio.run(node.engine.metadata.create_stream("last"))  # the state log's last entry
    node.close()
    return before_last, observed(root, archive)


def observed(root: Path, archive: Path, **kw) -> dict:
    node = Node(root, archive, **kw)
    try:
        return node.observe()
    finally:
        node.close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Prepared:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.archive = base / "archive"
        self.before_last, self.state = prepare(self.data, self.archive)
        assert (self.data / STATE).stat().st_size > 4096
        self.segments = {str(p.relative_to(self.data)): sha(p)
                         for p in self.data.glob("streams/**/*") if p.suffix in (".log", ".index")}
        assert len(self.segments) >= 8
        self.n = 0

    def copy(self, tmp: Path) -> Path:
        self.n += 1
        target = tmp / f"case{self.n}"
        shutil.copytree(self.data, target)
        return target

    def intact(self, root: Path) -> None:
        """Every segment file is still there, in place or in lost+found, byte for byte."""
        aside = {}
        for p in (root / "lost+found").glob("**/*"):
            if p.is_file():
                aside.setdefault(str(Path(*p.relative_to(root / "lost+found").parts[1:])),
                                 set()).add(sha(p))
        for rel, digest in self.segments.items():
            here = root / rel
            assert (here.exists() and sha(here) == digest) or digest in aside.get(rel, ()), rel


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Prepared:
    return Prepared(tmp_path_factory.mktemp("prepared"))


# -- damage ------------------------------------------------------------------------------------
def flip(path: Path, pos: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 1 << bit
    path.write_bytes(data)


def zero(path: Path, start: int) -> None:
    data = bytearray(path.read_bytes())
    end = min(start + 4096, len(data))
    data[start:end] = bytes(end - start)
    path.write_bytes(data)


def truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(size)


def entry_offsets(data: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(data):
        out.append(pos)
        pos += ENTRY_HEAD.size + ENTRY_HEAD.unpack_from(data, pos)[0]
    return out


def positions(size: int, rng: random.Random, n: int = FLIPS) -> list[tuple[int, int]]:
    return [(rng.randrange(size), rng.randrange(8)) for _ in range(n)]


# -- the state log -----------------------------------------------------------------------------
STATE = Path("state/state.log")
MIRROR = Path("state/state.log.copy")


def expect_repaired(prepared: Prepared, root: Path) -> str:
    assert observed(root, prepared.archive) == prepared.state
    prepared.intact(root)
    return "repaired"


def state_log_cases(prepared: Prepared) -> list[tuple[str, str, object]]:
    """(kind, case, damage(root)) of every state-log case."""
    rng = random.Random(SEED)
    data = (prepared.data / STATE).read_bytes()
    last = entry_offsets(data)[-1]
    cases: list[tuple[str, str, object]] = []
    for kind, rel in (("state log", STATE), ("state log mirror", MIRROR)):
        for pos, bit in positions(len(data), rng):
            cases.append((kind, "bit flip", lambda r, rel=rel, p=pos, b=bit: flip(r / rel, p, b)))
        for start in range(0, len(data), 4096):
            cases.append((kind, "zeroed 4 KiB sector",
                          lambda r, rel=rel, s=start: zero(r / rel, s)))
        for size in range(last, len(data)):
            cases.append((kind, "truncated in the last entry",
                          lambda r, rel=rel, n=size: truncate(r / rel, n)))
    return cases


def test_state_log_one_copy_damaged_is_repaired(prepared: Prepared, tmp_path: Path,
                                                fault_table) -> None:
    for kind, case, damage in state_log_cases(prepared):
        root = prepared.copy(tmp_path)
        damage(root)
        fault_table.record(kind, case, expect_repaired(prepared, root))
        shutil.rmtree(root)


def test_state_log_both_copies_damaged_refuses_and_repair_keeps_the_prefix(
        prepared: Prepared, tmp_path: Path, fault_table) -> None:
    data = (prepared.data / STATE).read_bytes()
    starts = entry_offsets(data)
    rng = random.Random(SEED + 1)
    for index in sorted({0, 1, len(starts) // 2, len(starts) - 1, *rng.sample(
            range(len(starts)), 4)}):
        root = prepared.copy(tmp_path)
        at = starts[index]
        flip(root / STATE, at + 9, 2)
        flip(root / MIRROR, at + 11, 5)
        damaged = {rel: sha(root / rel) for rel in (STATE, MIRROR)}
        with pytest.raises(CorruptState) as e:
            Node(root, prepared.archive)
        assert (e.value.index, e.value.offset) == (index, at)
        assert f"entry {index} at byte {at}" in str(e.value) and "--repair-state" in str(e.value)
        assert {rel: sha(root / rel) for rel in (STATE, MIRROR)} == damaged  # untouched
        prepared.intact(root)
        fault_table.record("state log + mirror", "same entry damaged in both", "refused")
        # --repair-state: the provable prefix, the rest (and its streams) in lost+found
        node = Node(root, prepared.archive, repair_state=True)
        assert node.engine.state.next_index == index + (index == 0)  # + the new root user
        node.close()
        prepared.intact(root)
        assert sorted(p.name for p in (root / "lost+found").glob("*/state/*")) == [
            "state.log", "state.log.copy"]
        shutil.rmtree(root)


def test_state_log_torn_in_both_copies_drops_only_the_unacknowledged_append(
        prepared: Prepared, tmp_path: Path, fault_table) -> None:
    """A crash tears the append in flight: the primary part-written, the mirror not yet."""
    data = (prepared.data / STATE).read_bytes()
    last = entry_offsets(data)[-1]
    for size in range(last, len(data)):
        root = prepared.copy(tmp_path)
        truncate(root / STATE, size)
        truncate(root / MIRROR, last)
        assert observed(root, prepared.archive) == prepared.before_last
        prepared.intact(root)
        fault_table.record("state log + mirror", "append torn by a crash", "harmless")
        shutil.rmtree(root)


# -- small files -------------------------------------------------------------------------------
OFFSET = Path("streams/0/topics/0/partitions/0/offsets/consumers/n1")
GROUP_OFFSET = Path("streams/0/topics/0/partitions/1/offsets/groups/n0")
IDS = Path("kafka/producer_ids")
FLOOR = Path("streams/0/topics/0/partitions/0/start_offset")
TIERED = Path("streams/0/topics/1/partitions/0")
PENDING = Path("archiver") / PENDING_DELETES
KAFKA = Path("kafka/offsets") / _file_name("g1")


def check_offset_lost(prepared: Prepared, root: Path, node: Node) -> None:
    values = node.engine.files.offsets[(0, 0, 0)].values
    assert (CONSUMER, 1) not in values  # never a wrong offset: none, so from the log start
    r = node.engine.data.poll("s", "t", 0, NEXT, 0, 100, CONSUMER, 1)
    assert r.count == 8 and r.chunks  # offsets 2..9: the floor is 2
    assert len(list((root / "lost+found").glob("*/" + str(OFFSET) + "*"))) == 2


def check_group_offset_lost(prepared: Prepared, root: Path, node: Node) -> None:
    assert (CONSUMER_GROUP, 0) not in node.engine.files.offsets[(0, 0, 1)].values


def check_ids_lost(prepared: Prepared, root: Path, node: Node) -> None:
    assert node.ids.load(1000) > 10**15  # far above 5000: no id handed out twice


def check_floor_lost(prepared: Prepared, root: Path, node: Node) -> None:
    log = node.engine.metadata.topic("s", "t").partitions[0].log
    assert log.floor == 0 and log.start_offset == 0 and log.next_offset == 10  # hides nothing


def check_manifest_relisted(prepared: Prepared, root: Path, node: Node) -> None:
    def strip(streams: list) -> list:  # log checksums are unknown until a log is read again
        return [(s[0], s[1], [(*t[:5], [{**x, "log_sha256": ""} for x in t[5]]) for t in s[2]])
                for s in streams]

    seen = node.observe()
    assert seen["streams"][0][2][1][5]  # the tiered topic has its archived segments back
    assert strip(seen["streams"]) == strip(prepared.state["streams"])
    assert {**seen, "streams": None} == {**prepared.state, "streams": None}


def check_pending_lost(prepared: Prepared, root: Path, node: Node) -> None:
    seen = node.observe()
    assert seen["pending"] == [] and {**seen, "pending": None} == {**prepared.state,
                                                                    "pending": None}


def check_kafka_lost(prepared: Prepared, root: Path, node: Node) -> None:
    assert node.kafka.offsets("g1") == {}
    # OffsetFetch answers the log start (2, the floor), never "none" (a client reset could skip)
    assert node.kafka.get("g1", *GROUP_TP) == CommittedOffset(2, -1, "")


SMALL = [  # kind, file, outcome and check when both copies are damaged
    ("Iggy consumer offset", OFFSET, "refused", check_offset_lost),
    ("Iggy group offset", GROUP_OFFSET, "refused", check_group_offset_lost),
    ("producer-id mark", IDS, "refused", check_ids_lost),
    ("log start floor", FLOOR, "refused", check_floor_lost),
    ("archive manifest", TIERED / MANIFEST, "repaired", check_manifest_relisted),
    ("archive deletion queue", PENDING, "harmless", check_pending_lost),
    ("Kafka group offsets", KAFKA, "refused", check_kafka_lost),
]


@pytest.mark.parametrize("kind,rel,both_outcome,check", SMALL, ids=[s[0] for s in SMALL])
def test_small_file(prepared: Prepared, tmp_path: Path, fault_table, kind: str, rel: Path,
                    both_outcome: str, check) -> None:
    rng = random.Random(f"{SEED}{kind}")
    size = (prepared.data / rel).stat().st_size
    copy = rel.with_name(rel.name + ".copy")
    assert (prepared.data / copy).stat().st_size == size
    one: list[tuple[str, object]] = []
    for target in (rel, copy):
        name = "primary" if target == rel else "copy"
        for pos, bit in positions(size, rng):
            one.append((f"bit flip ({name})", lambda r, t=target, p=pos, b=bit: flip(r / t, p, b)))
        one.append((f"zeroed 4 KiB sector ({name})", lambda r, t=target: zero(r / t, 0)))
        cuts = range(size) if size <= 64 else sorted(
            {*range(HEAD.size + 1), *rng.sample(range(size), 40)})
        for n in cuts:
            one.append((f"truncated ({name})", lambda r, t=target, n=n: truncate(r / t, n)))
    for case, damage in one:
        root = prepared.copy(tmp_path)
        damage(root)
        fault_table.record(kind, case, expect_repaired(prepared, root))
        shutil.rmtree(root)
    for pos, bit in positions(size, rng, 8):  # both copies: that kind's policy
        root = prepared.copy(tmp_path)
        flip(root / rel, pos, bit)
        zero(root / copy, 0)
        node = Node(root, prepared.archive)
        try:
            check(prepared, root, node)
            seen = node.observe()
        finally:
            node.close()
        for key in ("users",):  # whatever the kind, the rest of the metadata is untouched
            assert seen[key] == prepared.state[key]
        prepared.intact(root)
        fault_table.record(kind, "both copies damaged", both_outcome)
        shutil.rmtree(root)
