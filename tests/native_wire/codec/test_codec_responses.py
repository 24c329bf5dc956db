"""Reply encoders (payloads of Iggy's commands page):
decoded back with readers mirroring the SDK decoders."""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyggy.core.model import (
    ConsumerGroup,
    GlobalPermissions,
    GroupMember,
    Partition,
    Permissions,
    PersonalAccessToken,
    Stream,
    Topic,
    TopicOptions,
    User,
)
from pyggy.native_wire.codec import responses as rs
from pyggy.native_wire.codec.primitives import decode_options_block, decode_response_permissions
from pyggy.native_wire.codec.reader import Reader


def partition(pid: int, next_offset: int = 0) -> Partition:
    log = SimpleNamespace(segments_count=1, next_offset=next_offset, size_bytes=100 * next_offset,
                          messages_count=next_offset)
    return Partition(pid, 1_000 + pid, log)  # type: ignore[arg-type]


def topic(tid: int = 0, n: int = 2, explicit: list | None = None) -> Topic:
    opts = TopicOptions(compression_algorithm=2, message_expiry=5_000_000,
                        explicit=explicit or [])
    return Topic(tid, 0, f"t{tid}", 2_000, opts, [partition(i, 3 * i) for i in range(n)])


def stream() -> Stream:
    return Stream(4, "s1", 3_000, {1: topic(1), 0: topic(0, 1)})


# ---- decoders mirroring core/binary_protocol/src/responses (0.9) ----


def read_stream(r: Reader, classic: bool = False) -> dict[str, Any]:
    d = dict(id=r.u32(), created_at=r.u64(), topics_count=r.u32(), size_bytes=r.u64(),
             messages_count=r.u64(), name=r.name())
    if not classic:
        d["options"] = decode_options_block(r)
    return d


def read_topic(r: Reader, classic: bool = False) -> dict[str, Any]:
    d = dict(id=r.u32(), created_at=r.u64(), partitions_count=r.u32(), message_expiry=r.u64(),
             compression=r.u8(), max_topic_size=r.u64())
    if classic:
        d["replication_factor"] = r.u8()
    d.update(size_bytes=r.u64(), messages_count=r.u64(), name=r.name())
    if not classic:
        d["options"] = decode_options_block(r)
        d["derived"] = decode_options_block(r)
    return d


def read_partition(r: Reader) -> tuple[int, ...]:
    return (r.u32(), r.u64(), r.u32(), r.u64(), r.u64(), r.u64())


def test_stream_and_details() -> None:
    s = stream()
    r = Reader(rs.encode_stream_details(s))
    head = read_stream(r)
    assert head == dict(id=4, created_at=3_000, topics_count=2, size_bytes=300,
                        messages_count=3, name="s1", options=[])
    assert [read_topic(r)["id"] for _ in range(head["topics_count"])] == [0, 1]
    r.done()
    r = Reader(rs.encode_streams([s, s]))
    read_stream(r)
    read_stream(r)
    r.done()


def test_topic_header_layout_and_options() -> None:
    explicit = [("compression_algorithm", 2, b"gzip"), ("durability", 2, b"replicated")]
    t = topic(7, 3, explicit)
    raw = rs.encode_topic_header(t)
    assert raw[49] == 2 and raw[50:52] == b"t7"  # fixed part is 49 B + Name
    r = Reader(raw)
    d = read_topic(r)
    r.done()
    assert d["partitions_count"] == 3 and d["compression"] == 2
    assert d["message_expiry"] == 5_000_000 and d["max_topic_size"] == 2**64 - 1
    assert d["size_bytes"] == 900 and d["messages_count"] == 9
    assert d["options"] == explicit
    derived = {k: (kind, v) for k, kind, v in d["derived"]}
    assert set(derived).isdisjoint({"compression_algorithm", "durability"})
    assert derived["message_expiry"] == (12, struct.pack("<Q", 5_000_000))
    assert derived["segment_size"] == (12, struct.pack("<Q", 1 << 30))
    assert derived["messages_required_to_save"] == (11, struct.pack("<I", 1024))
    assert derived["enforce_fsync"] == (3, b"\x00")
    assert derived["consumer_offset_durability"] == (2, b"replicated")
    assert [k for k, _, _ in d["derived"]] == sorted(derived)
    full = rs.effective_topic_options(TopicOptions())
    assert len(full) == 12 and full[0] == ("compression_algorithm", 2, b"none")


def test_topic_details_and_list() -> None:
    t = topic(1, 3)
    r = Reader(rs.encode_topic_details(t))
    assert read_topic(r)["partitions_count"] == 3
    parts = [read_partition(r) for _ in range(3)]
    r.done()
    assert parts[2] == (2, 1002, 1, 5, 600, 6)
    assert parts[0][3] == 0  # current_offset of an empty partition
    assert len(rs.encode_partition(t.partitions[0])) == 40
    r = Reader(rs.encode_topics([t, topic(2)]))
    assert r.u32() == 2
    read_topic(r)
    read_topic(r)
    r.done()


def user(perms: Permissions | None = None) -> User:
    return User(3, "bob", "h", 1, 9_000, perms)


def test_user_encoders() -> None:
    raw = rs.encode_user(user())
    assert raw == struct.pack("<IQB", 3, 9_000, 1) + b"\x03bob" + b"\x00" * 4
    assert rs.encode_user_details(user()) == raw + b"\x00" * 4
    perms = Permissions(GlobalPermissions(read_users=True))
    r = Reader(rs.encode_user_details(user(perms))[len(raw):])
    assert decode_response_permissions(r) == perms
    r.done()
    assert rs.encode_users([user(), user()]) == raw * 2


def test_tokens_login_identity() -> None:
    toks = [PersonalAccessToken("a", "h", 0), PersonalAccessToken("bb", "h", 7)]
    assert rs.encode_pats(toks) == b"\x01a" + bytes(8) + b"\x02bb" + struct.pack("<Q", 7)
    assert rs.encode_raw_token("tok") == b"\x03tok"
    assert rs.encode_login_register(0, 7, 11264, "0.9.0") == (
        struct.pack("<IQI", 0, 7, 11264) + b"\x050.9.0")
    assert rs.encode_identity(5) == struct.pack("<I", 5)


def test_consumer_groups() -> None:
    g = ConsumerGroup(2, "g1", {10: GroupMember(10, [0, 2]), 11: GroupMember(11, [])})
    head = struct.pack("<III", 2, 3, 2) + b"\x02g1"
    assert rs.encode_consumer_group(g, 3) == head
    assert rs.encode_consumer_groups([g, g], 3) == head * 2
    assert rs.encode_consumer_group_details(g, 3) == (
        head + struct.pack("<IIII", 10, 2, 0, 2) + struct.pack("<II", 11, 0))
    assert rs.encode_sync(5, [1, 4]) == struct.pack("<QIII", 5, 2, 1, 4)
    assert rs.encode_sync(0, []) == struct.pack("<QI", 0, 0)
    assert rs.encode_consumer_offset(1, 9, 4) == struct.pack("<IQQ", 1, 9, 4)


def test_messages_replies() -> None:
    assert rs.encode_poll_prefix(1, 99, 3) == struct.pack("<IQI", 1, 99, 3)
    assert len(rs.encode_poll_prefix(0, 0, 0)) == 16
    one = rs.encode_send_confirmation(0, 1, 2, 30)
    assert one == struct.pack("<IIIIQ", 1, 0, 1, 2, 30)
    assert rs.encode_send_confirmations([(0, 1, 2, 30)]) == one
    assert rs.encode_send_confirmations([]) == bytes(4)


def test_stats_layout() -> None:
    s = rs.Stats(process_id=1, cpu_usage=0.5, messages_count=7, consumer_groups_count=9,
                 hostname="h", iggy_server_version="0.9.0",
                 iggy_server_semver=rs.semver_number(0, 9, 0),
                 cache_metrics=[(1, 2, 3, 4, 5, 0.25)], threads_count=8, total_disk_space=99)
    raw = rs.encode_stats(s)
    r = Reader(raw)
    assert r.u32() == 1 and r.f32() == 0.5
    r.skip(4 + 8 * 8 + 4 * 4)
    assert r.u64() == 7
    r.u32()
    assert r.u32() == 9 and r.pos == 108
    assert [r.long_string() for _ in range(5)] == ["h", "", "", "", "0.9.0"]
    assert r.u32() == 9000
    assert r.u32() == 1
    assert (r.u32(), r.u32(), r.u32(), r.u64(), r.u64(), r.f32()) == (1, 2, 3, 4, 5, 0.25)
    assert (r.u32(), r.u64(), r.u64()) == (8, 0, 99)
    r.done()


def test_cluster_metadata() -> None:
    r = Reader(rs.encode_cluster_metadata("c", "n1", "127.0.0.1", 8090, 8080, 3000, 8092))
    assert r.long_string() == "c" and r.u32() == 1
    assert r.long_string() == "n1" and r.long_string() == "127.0.0.1"
    assert (r.u16(), r.u16(), r.u16(), r.u16(), r.u8(), r.u8()) == (8090, 8080, 3000, 8092, 0, 0)
    r.done()


_NODE = st.tuples(st.text(max_size=20), st.sampled_from(["127.0.0.1", "10.0.0.1", "::1"]),
                  *[st.integers(0, 65535)] * 4, st.integers(0, 1), st.just(0))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30), st.lists(_NODE, max_size=6))
def test_cluster_metadata_of_a_roster(name: str, nodes: list) -> None:
    """A cluster's GET_CLUSTER_METADATA: every node, in order, with its role."""
    r = Reader(rs.encode_cluster_nodes(name, nodes))
    assert r.long_string() == name and r.u32() == len(nodes)
    for node in nodes:
        assert (r.long_string(), r.long_string(), r.u16(), r.u16(), r.u16(), r.u16(), r.u8(),
                r.u8()) == node
    r.done()


def test_describe_options() -> None:
    raw = rs.encode_describe_options([("enforce_fsync", 3, b"\x00", "fsync"),
                                      ("x", 2, b"", "")])
    r = Reader(raw)
    assert r.u32() == 2
    assert (r.name(), r.u8(), bytes(r.long_bytes()), r.long_string()) == (
        "enforce_fsync", 3, b"\x00", "fsync")
    assert (r.name(), r.u8(), bytes(r.long_bytes()), r.long_string()) == ("x", 2, b"", "")
    r.done()
    assert rs.encode_describe_options([]) == bytes(4)


def test_clients() -> None:
    base = rs.encode_client(5, 0, 1, "1.2.3.4:5", 1)
    assert base == struct.pack("<IIBI", 5, 0, 1, 9) + b"1.2.3.4:5" + struct.pack("<I", 1)
    assert rs.encode_client_details(5, 0, 1, "1.2.3.4:5", [(1, 2, 3)]) == (
        base + struct.pack("<III", 1, 2, 3))


def test_classic_variants() -> None:
    t = topic(1, 2)
    raw = rs.encode_topic_header_classic(t)
    assert len(raw) == 51 + 2 and raw[33] == 1 and raw[50] == 2
    r = Reader(rs.encode_topic_details_classic(t))
    d = read_topic(r, classic=True)
    assert d["replication_factor"] == 1 and d["messages_count"] == 3 and d["name"] == "t1"
    [read_partition(r) for _ in range(2)]
    r.done()
    s = stream()
    r = Reader(rs.encode_stream_details_classic(s))
    assert read_stream(r, classic=True)["topics_count"] == 2
    read_topic(r, classic=True)
    read_topic(r, classic=True)
    r.done()
    assert rs.encode_streams_classic([s]) == rs.encode_stream_classic(s)
    assert rs.encode_topics_classic([t, t]) == raw * 2
    u = rs.encode_user_classic(user())
    assert u == struct.pack("<IQB", 3, 9_000, 1) + b"\x03bob"
    assert rs.encode_users_classic([user()]) == u
    assert rs.encode_user_details_classic(user()) == u + bytes(4)
