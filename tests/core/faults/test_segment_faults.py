"""Fault injection over the segment file kinds (`.log`, `.index`): seeded bit flips at many
positions, zeroed 4 KiB sectors, and truncations at every byte of the last entry. Each case
opens the damaged copy of one prepared partition and reads every stored batch back; it must end
repaired, refused or harmless (table.py; a torn tail cut after a crash counts as harmless: it
was never durably acknowledged, and its bytes are kept in lost+found) — never with wrong bytes
served or an intact batch lost."""

from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path

import pytest
from archive_node import Node
from pyggy.core.storage.index import ENTRY_SIZE
from storage_support import Stored, fill, kept_aside, open_log, outcome

SEED = 20261207
FLIPS = 160
SECTORS = 12


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Stored, list[str]]:
    """A stopped partition of ~30 batches (both encodings) over several segments."""
    root = tmp_path_factory.mktemp("prepared")
    log = open_log(root / "p")
    stored = fill(log, 30)
    names = [s.log_path.name for s in log.segments]
    log.close()
    return root / "p", stored, names


def damaged_copy(prepared: Path, target: Path) -> Path:
    shutil.copytree(prepared, target)
    return target


def judge(path: Path, stored: Stored, *, clean: bool = True) -> tuple[str, list[str]]:
    if not clean:
        (path / ".clean").unlink(missing_ok=True)
    files = sorted(f.name for f in path.iterdir() if f.suffix in (".log", ".index"))
    log = open_log(path)
    got = outcome(log, stored)
    log.close()
    assert "WRONG" not in got, got
    for name in files:  # every segment file is still there, or moved aside, never deleted
        assert (path / name).exists() or kept_aside(path, name), name
    if "gone" in got:  # only a torn final batch may go, and only after an unclean stop
        assert got[:-1] == ["ok"] * (len(stored) - 1) and got[-1] == "gone", got
        assert kept_aside(path, "*.from-*"), "cut bytes not kept"
        return "torn tail cut", got  # recorded as harmless: never acknowledged durably
    if "refused" in got:
        return "refused", got
    return "harmless", got


def flip(path: Path, position: int, bit: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 1 << bit
    path.write_bytes(bytes(data))


def test_bit_flips_in_segment_logs(prepared, tmp_path: Path, fault_table) -> None:
    source, stored, names = prepared
    rng = random.Random(SEED)
    for n in range(FLIPS):
        work = damaged_copy(source, tmp_path / f"c{n}")
        name = rng.choice(names)
        size = (work / name).stat().st_size
        flip(work / name, rng.randrange(size), rng.randrange(8))
        verdict, got = judge(work, stored)
        assert got.count("refused") == 1, got  # exactly the batch that holds the byte
        fault_table.record("segment .log", "bit flip", verdict)
        shutil.rmtree(work)


def test_zeroed_sectors_in_segment_logs(prepared, tmp_path: Path, fault_table) -> None:
    source, stored, names = prepared
    rng = random.Random(SEED + 1)
    for n in range(SECTORS):
        work = damaged_copy(source, tmp_path / f"c{n}")
        name = rng.choice(names)
        with open(work / name, "r+b") as f:
            size = f.seek(0, 2)
            f.seek(rng.randrange(0, max(size - 4096, 1)))
            f.write(bytes(min(4096, size)))
        verdict, got = judge(work, stored, clean=bool(n % 2))
        assert verdict in ("refused", "torn tail cut"), got
        fault_table.record("segment .log", "zeroed 4 KiB sector",
                           "harmless" if verdict == "torn tail cut" else verdict)
        shutil.rmtree(work)


def test_truncations_of_the_last_batch_after_a_crash(prepared, tmp_path: Path, fault_table) -> None:
    source, stored, names = prepared
    last = source / names[-1]
    size = last.stat().st_size
    length = len(stored[-1][1])
    for cut in range(size - length + 1, size):  # every byte of it, but not its start
        work = damaged_copy(source, tmp_path / f"c{cut}")
        with open(work / names[-1], "r+b") as f:
            f.truncate(cut)
        verdict, _ = judge(work, stored, clean=False)
        assert verdict == "torn tail cut"  # cut, its bytes kept in lost+found
        fault_table.record("segment .log", "torn last batch (cut)", "harmless")
        shutil.rmtree(work)


def test_bit_flips_and_truncations_in_segment_indexes(prepared, tmp_path: Path,
                                                     fault_table) -> None:
    source, stored, names = prepared
    rng = random.Random(SEED + 2)
    indexes = [n.replace(".log", ".index") for n in names]
    for n in range(FLIPS):
        work = damaged_copy(source, tmp_path / f"c{n}")
        name = rng.choice(indexes)
        size = (work / name).stat().st_size
        flip(work / name, rng.randrange(size), rng.randrange(8))
        verdict, got = judge(work, stored)
        assert got == ["ok"] * len(stored), got  # the log is the authority: rebuilt
        fault_table.record("segment .index", "bit flip", "repaired")
        shutil.rmtree(work)
    last = source / indexes[-1]
    size = last.stat().st_size
    for cut in range(size - ENTRY_SIZE, size):
        work = damaged_copy(source, tmp_path / f"t{cut}")
        with open(work / indexes[-1], "r+b") as f:
            f.truncate(cut)
        verdict, got = judge(work, stored, clean=bool(cut % 2))
        assert got == ["ok"] * len(stored), got
        fault_table.record("segment .index", "truncated last entry", "repaired")
        shutil.rmtree(work)


def test_bit_flips_in_archived_segments_are_repaired(tmp_path: Path, fault_table) -> None:
    """With the segments archived, every flipped log byte is repaired from the archive."""
    async def prepare() -> tuple[list[Path], list]:
        node = Node(tmp_path / "node")
        await node.topic(local_segments=100)
        await node.produce(300)
        assert await node.service._pass()
        plog = node.engine.metadata.topic("s", "t").partitions[0].log
        sealed = [s.log_path for s in plog.segments[:-1]]
        node.close()
        return sealed, [p.read_bytes() for p in sealed]

    sealed, good = asyncio.run(prepare())
    rng = random.Random(SEED + 3)

    async def read_back() -> list:
        node = Node(tmp_path / "node")
        from archive_node import poll_all
        got = await poll_all(node.engine)
        node.close()
        return got

    from archive_node import expected
    for _ in range(40):
        k = rng.randrange(len(sealed))
        flip(sealed[k], rng.randrange(len(good[k])), rng.randrange(8))
        assert asyncio.run(read_back()) == expected(300)
        assert [p.read_bytes() for p in sealed] == good
        fault_table.record("segment .log (archived)", "bit flip", "repaired")
