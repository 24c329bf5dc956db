"""Recovery recognises stored Iggy and Kafka batches by structure, offset and checksum."""

from __future__ import annotations

import os
from pathlib import Path

from pyggy.core.clock import SystemClock
from pyggy.core.model import TopicOptions
from pyggy.core.records import iggy_batch as ib
from pyggy.core.records import kafka_batch as kb
from pyggy.core.records.encoding import (
    ENCODING_IGGY,
    ENCODING_KAFKA,
    StoredBatch,
    encoding_of,
    peek_length,
    recognise,
)
from pyggy.core.storage.fsync import GroupCommitter
from pyggy.core.storage.partition_log import PartitionLog
from pyggy.core.storage.segment import Segment

T_MS = 1_795_717_532_295


def _kafka(base: int, n: int = 3, **kwargs: object) -> bytearray:
    data = kb.build_batch([(T_MS + i, b"k", b"v%d" % i, [("h", b"x")]) for i in range(n)],
                          **kwargs)  # type: ignore[arg-type]
    kb.stamp_batch(data, base)
    return data


def _iggy(base: int, n: int = 2) -> bytearray:
    data = ib.build_batch([(i + 1, b"payload", b"", 1000 + i) for i in range(n)])
    ib.stamp_batch(data, 1, base, 5_000_000)
    return data


def test_recognise_kafka() -> None:
    data = _kafka(10, 3)
    mv = memoryview(bytes(data) + b"trailing")
    assert encoding_of(mv) == ENCODING_KAFKA
    assert peek_length(mv) == len(data)
    ts = (T_MS + 2) * 1000
    assert recognise(mv, 10) == StoredBatch(ENCODING_KAFKA, len(data), 3, ts, ts)
    assert recognise(mv, 11) is None  # not the expected offset
    bad = bytearray(data)
    bad[-1] ^= 1
    assert recognise(memoryview(bad), 10) is None  # CRC
    assert recognise(memoryview(bad), 10, verify=False) is not None
    assert recognise(memoryview(bytes(data[:-1])), 10) is None  # torn
    assert recognise(memoryview(bytes(data[:40])), 10) is None


def test_recognise_kafka_compressed_and_log_append_time() -> None:
    data = _kafka(0, 50, compression=4)
    kb.stamp_batch(data, 7, log_append_time_ms=T_MS + 10_000)
    found = recognise(memoryview(data), 7)
    assert found is not None and found.record_count == 50
    assert found.max_timestamp == (T_MS + 10_000) * 1000


def test_recognise_iggy_unchanged() -> None:
    data = _iggy(4, 2)
    mv = memoryview(bytes(data))
    assert encoding_of(mv) == ENCODING_IGGY
    assert peek_length(mv) == len(data)
    assert recognise(mv, 4) == StoredBatch(ENCODING_IGGY, len(data), 2, 5_000_000, 5_000_000)
    assert recognise(mv, 5) is None


def test_a_kafka_batch_never_looks_like_iggy() -> None:
    # recordsCount (bytes 57..61) is ≥ 1, inside Iggy's reserved-zero area 52..256
    data = _kafka(0, 30)
    assert len(data) > 256 and encoding_of(memoryview(data)) == ENCODING_KAFKA
    assert encoding_of(memoryview(bytes(100))) is None
    assert peek_length(memoryview(b"\x00" * 16 + b"\x02")) is None  # too short for Kafka


def _open(path: Path) -> PartitionLog:
    log = PartitionLog(path, 1, TopicOptions(), GroupCommitter(), SystemClock())
    log.open()
    return log


def test_partition_log_recovers_mixed_batches(tmp_path: Path) -> None:
    seg = Segment(tmp_path, 0)
    batches = [(_kafka(0, 3), 3, ENCODING_KAFKA), (_iggy(3, 2), 2, ENCODING_IGGY),
               (_kafka(5, 4, compression=2), 4, ENCODING_KAFKA)]
    offset = 0
    for data, count, enc in batches:
        seg.append([data], len(data), offset, count, 0, 0, enc)
        offset += count
    size = seg.size
    torn = _kafka(9, 2)
    os.pwrite(seg.fd, bytes(torn[:-5]), size)  # a torn tail
    seg.close()
    (tmp_path / "00000000000000000000.index").write_bytes(b"")  # force a full rebuild
    log = _open(tmp_path)
    assert log.next_offset == 9
    assert os.path.getsize(tmp_path / "00000000000000000000.log") == size
    refs = log.read(0, 100)
    assert [(r.encoding, r.base_offset, r.record_count) for r in refs] == [
        (ENCODING_KAFKA, 0, 3), (ENCODING_IGGY, 3, 2), (ENCODING_KAFKA, 5, 4)]
    assert [bytes(r.data) for r in refs] == [bytes(b[0]) for b in batches]
    log.close()


def test_partition_log_cuts_a_kafka_batch_with_a_wrong_offset(tmp_path: Path) -> None:
    seg = Segment(tmp_path, 0)
    first, wrong = _kafka(0, 3), _kafka(4, 1)  # should be 3
    seg.append([first], len(first), 0, 3, 0, 0, ENCODING_KAFKA)
    os.pwrite(seg.fd, bytes(wrong), seg.size)
    seg.close()
    log = _open(tmp_path)
    assert log.next_offset == 3
    log.close()
