"""The archive manifest and deletion queue on disk: old one-copy JSON files still load, and a
manifest lost in both copies is rebuilt from the archive, or refuses when it cannot be."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.archiver.disk import DiskArchiver
from pyggy.archiver.faulty import FaultyArchiver
from pyggy.archiver.tiered import MANIFEST, PENDING_DELETES, Entry, TieredStore
from pyggy.core.small_file import CorruptFile, decode


def store(tmp_path: Path, down: bool = False) -> TieredStore:
    archiver = FaultyArchiver(DiskArchiver(tmp_path / "archive"))
    archiver.down = down
    s = TieredStore(archiver, tmp_path / "data" / "archiver", 1 << 20)
    s.names = lambda sid, tid: ("s", "t")
    return s


def partition(s: TieredStore, path: Path):
    return s.remote_for(SimpleNamespace(stream_id=0, id=0), SimpleNamespace(id=0), path)


def test_old_json_files_load_and_are_upgraded(tmp_path: Path) -> None:
    state = tmp_path / "data" / "archiver"
    state.mkdir(parents=True)
    (state / PENDING_DELETES).write_text(json.dumps(["a.log", "a.index"]))
    p = tmp_path / "data" / "p"
    p.mkdir()
    entry = {"start": 0, "next": 10, "size": 100, "first_ts": 1, "last_ts": 2, "max_ts": 2,
             "log_key": "k.log", "log_sha256": "x", "index_key": "k.index", "index_size": 48,
             "index_sha256": "y"}
    (p / MANIFEST).write_text(json.dumps({"version": 1, "segments": [entry]}))
    s = store(tmp_path)
    assert s.pending_deletes == ["a.log", "a.index"]
    tp = partition(s, p)
    assert tp.keys(0) == ("k.log", "k.index")
    assert decode((p / MANIFEST).read_bytes()) == decode((p / (MANIFEST + ".copy")).read_bytes())
    s.close()


def test_a_lost_manifest_with_an_unreachable_archive_refuses(tmp_path: Path) -> None:
    p = tmp_path / "data" / "p"
    p.mkdir(parents=True)
    (p / MANIFEST).write_bytes(b"PGSF\x01 garbage")
    (p / (MANIFEST + ".copy")).write_bytes(b"")
    s = store(tmp_path, down=True)
    with pytest.raises(CorruptFile) as e:
        partition(s, p)
    assert "cannot be listed" in str(e.value) and "refusing to start" in str(e.value)
    assert (p / MANIFEST).exists()  # kept: the next start refuses again, never forgets
    s.close()


ENTRY = Entry(0, 10, 4096, 1, 2, 3, log_key="s/t/0/00.log", log_sha256="ab" * 32,
              index_key="s/t/0/00.index", index_size=160, index_sha256="cd" * 32)


def test_a_manifest_entry_survives_the_record_a_cluster_replicates() -> None:
    assert Entry.parse(ENTRY.record()) == ENTRY


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=600), st.builds(
    lambda cut, flip: bytearray(ENTRY.record())[:cut] + bytes([flip]),
    st.integers(0, 400), st.integers(0, 255))))
def test_a_malformed_archived_record_is_refused_not_raised(data: bytes) -> None:
    # an ARCHIVED op's body (cluster/partition_sm.py): every replica parses the same bytes
    entry = Entry.parse(bytes(data))
    assert entry is None or Entry.parse(entry.record()) == entry


def test_a_record_with_a_wrong_field_or_type_is_refused() -> None:
    doc = json.loads(ENTRY.record())
    assert Entry.parse(json.dumps({**doc, "size": "4096"}).encode()) is None
    assert Entry.parse(json.dumps({**doc, "extra": 1}).encode()) is None
    assert Entry.parse(json.dumps({k: v for k, v in doc.items() if k != "max_ts"}).encode()) \
        is None
    assert Entry.parse(b"[1, 2]") is None and Entry.parse(b"\xff") is None
