"""Iggy consumer offsets on disk: two checksummed copies, the old 8-byte files still load."""

from __future__ import annotations

import struct
from pathlib import Path

from pyggy.core.offsets import CONSUMER, CONSUMER_GROUP, ConsumerOffsets
from pyggy.core.small_file import decode


def test_store_load_delete(tmp_path: Path) -> None:
    offsets = ConsumerOffsets(tmp_path)
    offsets.store(CONSUMER, 7, 41)
    offsets.store(CONSUMER, "named", 3)
    offsets.store(CONSUMER_GROUP, 0, 9)
    offsets.store(CONSUMER, 7, 42)
    again = ConsumerOffsets(tmp_path)
    assert again.values == {(CONSUMER, 7): 42, (CONSUMER, "named"): 3, (CONSUMER_GROUP, 0): 9}
    assert again.delete(CONSUMER, 7) and not again.delete(CONSUMER, 7)
    assert not list((tmp_path / "offsets" / "consumers").glob("n7*"))
    assert ConsumerOffsets(tmp_path).get(CONSUMER, 7) is None


def test_old_eight_byte_files_load_and_are_upgraded(tmp_path: Path) -> None:
    d = tmp_path / "offsets" / "consumers"
    d.mkdir(parents=True)
    (d / "n5").write_bytes(struct.pack("<Q", 1234))
    (d / "n6").write_bytes(b"short")  # neither format: refused, set aside
    offsets = ConsumerOffsets(tmp_path)
    assert offsets.values == {(CONSUMER, 5): 1234}
    assert decode((d / "n5").read_bytes()) == decode((d / "n5.copy").read_bytes())
    assert not (d / "n6").exists()
    offsets.store(CONSUMER, 5, 1235)
    assert ConsumerOffsets(tmp_path).get(CONSUMER, 5) == 1235
