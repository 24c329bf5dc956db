"""OffsetCommit/OffsetFetch/OffsetDelete, the file store, the subscription parser."""

from __future__ import annotations

import pytest
from groups_support import Harness, done, subscription
from kafka.protocol.consumer.metadata import ConsumerProtocolSubscription
from pyggy.core.records.kafka_errors import ErrorCode
from pyggy.kafka_wire.groups import (
    CommittedOffset,
    FileOffsetStore,
    MemoryOffsetStore,
    subscription_topics,
)
from pyggy.kafka_wire.groups.store import _file_name, decode_group_file, encode_group_file

E = ErrorCode


def test_standalone_commit_and_fetch_all(h: Harness) -> None:
    codes = h.coord.commit_offsets("solo", -1, "", None, [
        ("t", 1, 10, 3, "m1"), ("t", 0, 5, -1, None), ("u", 0, 7, -1, "x" * 4097)])
    assert codes == [E.NONE, E.NONE, E.OFFSET_METADATA_TOO_LARGE]
    assert h.coord.describe("solo").state == "Empty"
    assert [tuple(f) for f in h.coord.fetch_offsets("solo", None)] == [
        ("t", 0, 5, -1, "", 0), ("t", 1, 10, 3, "m1", 0)]
    assert h.coord.fetch_offsets("unknown", None) == []
    assert [tuple(f) for f in h.coord.fetch_offsets("unknown", [("t", [0])])] == [
        ("t", 0, -1, -1, "", 0)]
    # a later commit overwrites, metadata and leader epoch included
    h.coord.commit_offsets("solo", -1, "", None, [("t", 1, 11, 4, "m2")])
    assert tuple(h.coord.fetch_offsets("solo", [("t", [1])])[0]) == ("t", 1, 11, 4, "m2", 0)


def test_commit_checks_partitions_when_told_how() -> None:
    h = Harness(partition_exists=lambda topic, partition: topic == "t" and partition < 2)
    assert h.coord.commit_offsets("g", -1, "", None, [
        ("t", 0, 1, -1, ""), ("t", 2, 1, -1, ""), ("zz", 0, 1, -1, "")]) == [
        E.NONE, E.UNKNOWN_TOPIC_OR_PARTITION, E.UNKNOWN_TOPIC_OR_PARTITION]


def test_delete_offsets(h: Harness) -> None:
    entries = [("t", 0, 1, -1, ""), ("other", 0, 2, -1, "")]
    assert h.coord.delete_offsets("nope", [("t", 0)]) == (E.GROUP_ID_NOT_FOUND, [])
    (a,) = h.stable_group(1)  # subscribes to "t"
    h.coord.commit_offsets("g", 1, a, None, entries)
    assert h.coord.delete_offsets("g", [("t", 0), ("other", 0), ("other", 9)]) == (
        E.NONE, [E.GROUP_SUBSCRIBED_TO_TOPIC, E.NONE, E.NONE])
    assert [(f.topic, f.offset) for f in h.coord.fetch_offsets("g", None)] == [("t", 1)]
    h.coord.leave("g", [(a, None, None)])
    assert h.coord.delete_offsets("g", [("t", 0)]) == (E.NONE, [E.NONE])
    assert h.coord.fetch_offsets("g", None) == []


def test_delete_offsets_non_consumer_or_unreadable_groups(h: Harness) -> None:
    done(h.join_new(group="conn", protocol_type="connect", protocols=[("v1", b"\x01")]))
    h.coord.commit_offsets("conn", -1, "", None, [("t", 0, 1, -1, "")])  # not Empty: refused
    assert h.coord.delete_offsets("conn", [("t", 0)]) == (E.NON_EMPTY_GROUP, [])
    done(h.join_new(group="odd", protocols=[("range", b"\x00")]))
    assert h.coord.delete_offsets("odd", [("anything", 0)]) == (
        E.NONE, [E.GROUP_SUBSCRIBED_TO_TOPIC])


def test_file_store_survives_a_restart(tmp_path) -> None:
    h = Harness(FileOffsetStore(tmp_path / "offsets"))
    (a,) = h.stable_group(1, group="grp/ü")
    h.coord.commit_offsets("grp/ü", 1, a, None, [("t", 0, 42, 5, "meta ü"),
                                                  ("t", 1, 43, -1, None)])
    h.coord.commit_offsets("solo", -1, "", None, [("u", 3, 7, -1, "")])
    (tmp_path / "offsets" / "junk.offsets").write_bytes(b"PGOF garbage")
    (tmp_path / "offsets" / "left.offsets.tmp").write_bytes(b"half")

    again = Harness(FileOffsetStore(tmp_path / "offsets"))
    assert [tuple(f) for f in again.coord.fetch_offsets("grp/ü", None)] == [
        ("t", 0, 42, 5, "meta ü", 0), ("t", 1, 43, -1, "", 0)]
    assert {(g.group_id, g.state) for g in again.coord.list_groups()} == {
        ("grp/ü", "Empty"), ("solo", "Empty")}
    assert not (tmp_path / "offsets" / "left.offsets.tmp").exists()

    assert again.coord.delete_offsets("solo", [("u", 3)]) == (E.NONE, [E.NONE])
    assert again.coord.delete_groups(["grp/ü"]) == [("grp/ü", E.NONE)]
    third = FileOffsetStore(tmp_path / "offsets")
    assert third.groups() == []
    # the unreadable file stays (a lost group's marker) and was copied to lost+found once
    assert sorted(p.name for p in (tmp_path / "offsets").glob("*.offsets*")) == ["junk.offsets"]
    assert [p.name for p in (tmp_path / "offsets").rglob("lost+found/*/*")] == ["junk.offsets"]


def test_group_file_checksum() -> None:
    data = encode_group_file("g", {("t", 0): CommittedOffset(1, 2, "m")})
    assert decode_group_file(data) == ("g", {("t", 0): CommittedOffset(1, 2, "m")})
    flipped = data[:-3] + bytes([data[-3] ^ 1]) + data[-2:]
    for bad in (flipped, data[:-1], data[:5], b"XXXX" + data[4:]):
        with pytest.raises(ValueError):
            decode_group_file(bad)


def test_memory_store_interface() -> None:
    s = MemoryOffsetStore()
    s.put("g", {("t", 0): CommittedOffset(1, -1, "")})
    s.delete("g", [("t", 0), ("t", 1)])
    s.delete("nope", [("t", 0)])
    assert (s.groups(), s.get("g", "t", 0)) == ([], None)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_subscription_topics_from_client_bytes(version: int) -> None:
    sub = ConsumerProtocolSubscription
    kwargs = {"version": version, "topics": ["a", "bb"], "user_data": b"xy"}
    if version >= 1:
        kwargs["owned_partitions"] = [sub.TopicPartition(topic="a", partitions=[0, 1])]
    assert subscription_topics(bytes(sub(**kwargs).encode())) == ["a", "bb"]


def test_subscription_parser_is_bounded() -> None:
    good = subscription("abc")
    assert subscription_topics(good) == ["abc"]
    for bad in (b"", good[:5], good[:8], b"\xff\xff" + good[2:],
                b"\x00\x00\x7f\xff\xff\xff", b"\x00\x00\x00\x00\x00\x01\xff\xff",
                b"\x00\x00\x00\x00\x00\x01\x00\x01\xff"):
        assert subscription_topics(bad) is None


def test_forget_partitions_drops_every_groups_offsets_of_them(h: Harness) -> None:
    h.coord.commit_offsets("a", -1, "", None, [("t", 0, 1, -1, ""), ("t", 1, 2, -1, ""),
                                              ("u", 0, 3, -1, "")])
    h.coord.commit_offsets("b", -1, "", None, [("t", 1, 4, -1, "")])
    assert h.coord.forget_partitions("t", [1, 2]) == 2
    assert {g: sorted(h.store.offsets(g)) for g in h.store.groups()} == {
        "a": [("t", 0), ("u", 0)]}
    assert h.coord.forget_partitions("t", [0]) == 1
    assert h.coord.forget_partitions("nope", [0]) == 0
    assert [tuple(f)[:3] for f in h.coord.fetch_offsets("a", None)] == [("u", 0, 3)]


def test_old_single_files_load_and_a_lost_group_reads_from_the_log_start(tmp_path) -> None:
    d = tmp_path / "offsets"
    d.mkdir()
    old = encode_group_file("old", {("t", 0): CommittedOffset(5, -1, "")})
    (d / _file_name("old")).write_bytes(old)  # the format before two copies
    lost = d / _file_name("lost")
    store = FileOffsetStore(d, log_start=lambda topic, p: {("t", 0): 3}.get((topic, p)))
    store.put("lost", {("t", 0): CommittedOffset(9, -1, "")})
    assert FileOffsetStore(d).offsets("old") == {("t", 0): CommittedOffset(5, -1, "")}
    assert (d / (_file_name("old") + ".copy")).exists()  # upgraded
    for p in (lost, lost.with_name(lost.name + ".copy")):
        p.write_bytes(b"\0" * p.stat().st_size)
    again = FileOffsetStore(d, log_start=lambda topic, p: {("t", 0): 3}.get((topic, p)))
    # lost: OffsetFetch gets the log start, never "no offset" (a reset to latest would skip)
    assert again.get("lost", "t", 0) == CommittedOffset(3, -1, "")
    assert again.get("lost", "other", 0) is None and again.get("old", "t", 1) is None
    third = FileOffsetStore(d, log_start=lambda topic, p: 0)
    assert third.get("lost", "t", 0) == CommittedOffset(0, -1, "")  # remembered across starts
    third.put("lost", {("t", 0): CommittedOffset(11, -1, "")})
    assert FileOffsetStore(d).get("lost", "t", 0) == CommittedOffset(11, -1, "")
    third.delete_group("lost")
    assert FileOffsetStore(d, log_start=lambda topic, p: 0).get("lost", "t", 0) is None
