"""Classic-protocol commands apache-iggy 0.8.0's Python API cannot send, byte-level.

`classic_wire.ClassicClient` encodes/decodes with the layouts of iggy tag server-0.8.0 (it is
independent of pyggy's codec). Needs no 0.8.0 venv: it runs in .venv, next to the 0.9.0 SDK
used for cross-protocol checks of user headers.
"""

from __future__ import annotations

import asyncio
import struct
import uuid

import pytest
import xxhash
from apache_iggy import Consumer, IggyClient, PollingStrategy, SendMessage
from classic_wire import (
    BALANCED,
    CONSUMER,
    CONSUMER_GROUP,
    FIRST,
    MESSAGES_KEY,
    NEXT,
    OFFSET,
    PARTITION_ID,
    ClassicClient,
    ClassicError,
    identifier,
    name,
    parse_tlv,
    tlv,
)

from pyggy.testing import PyggyServer

STRING, UINT8, RAW = 2, 9, 1


@pytest.fixture
def raw(pyggy_server: PyggyServer):
    with ClassicClient(pyggy_server.tcp_address) as client:
        yield client


def test_login_logout_and_users(raw: ClassicClient, pyggy_server: PyggyServer) -> None:
    with pytest.raises(ClassicError) as e:
        raw.get_streams()
    assert e.value.code == 40  # Unauthenticated
    raw.ping()  # allowed before login
    with pytest.raises(ClassicError) as e:
        raw.login("iggy", "wrong")
    assert e.value.code == 42  # InvalidCredentials
    assert raw.login() == 0

    root = raw.get_user(0)
    assert root["username"] == "iggy" and root["status"] == 1 and root["trailing"] == 0
    assert raw.get_user("iggy") == root
    assert raw.get_user("nobody") is None
    alice = raw.create_user("alice", "secret-1", status=1)
    assert (alice["id"], alice["username"], alice["status"], alice["permissions"]) == (
        1, "alice", 1, None)
    with pytest.raises(ClassicError) as e:
        raw.create_user("alice", "secret-2")
    assert e.value.code == 46  # UserAlreadyExists
    assert [(u["id"], u["username"]) for u in raw.get_users()] == [(0, "iggy"), (1, "alice")]

    raw.logout()
    with pytest.raises(ClassicError) as e:
        raw.get_users()
    assert e.value.code == 40
    assert raw.login("alice", "secret-1") == 1  # same connection, another user
    with pytest.raises(ClassicError) as e:
        raw.get_users()
    assert e.value.code == 41  # Unauthorized: no permissions
    assert raw.get_user(1)["username"] == "alice"  # but oneself is readable


def test_personal_access_tokens(raw: ClassicClient, pyggy_server: PyggyServer) -> None:
    raw.login()
    body = raw.request(42, name("ci") + struct.pack("<Q", 0))  # Name token
    token = body[1:1 + body[0]].decode()
    assert len(body) == 1 + body[0] and token
    listed = raw.request(41)
    assert listed == name("ci") + struct.pack("<Q", 0)  # Name, u64 expiry_at (0 = never)
    with ClassicClient(pyggy_server.tcp_address) as other:
        assert struct.unpack("<I", other.request(44, name(token)))[0] == 0  # user id
        assert [s["name"] for s in other.get_streams()] == []
    assert raw.request(43, name("ci")) == b""
    with ClassicClient(pyggy_server.tcp_address) as other, pytest.raises(ClassicError) as e:
        other.request(44, name(token))
    assert e.value.code == 20  # ResourceNotFound, as 0.8 reports an unknown token


def test_streams_and_topics(raw: ClassicClient) -> None:
    raw.login()
    assert raw.get_streams() == []
    s = raw.create_stream("s")
    assert (s["id"], s["name"], s["topics_count"], s["topics"]) == (0, "s", 0, [])
    raw.create_stream("s2")
    t = raw.create_topic("s", "t", 2, compression=2, expiry=3_600_000_000, max_size=1 << 30,
                         replication_factor=1)
    fixed = {"id": 0, "name": "t", "partitions_count": 2, "message_expiry": 3_600_000_000,
             "compression_algorithm": 2, "max_topic_size": 1 << 30, "replication_factor": 1,
             "size_bytes": 0, "messages_count": 0}
    assert {k: t[k] for k in fixed} == fixed
    assert [p["id"] for p in t["partitions"]] == [0, 1]
    defaults = raw.create_topic("s", "defaults", 1)  # 0 = server default for expiry / size
    assert (defaults["message_expiry"], defaults["max_topic_size"],
            defaults["compression_algorithm"]) == ((1 << 64) - 1, (1 << 64) - 1, 1)

    assert [(x["id"], x["name"], x["topics_count"]) for x in raw.get_streams()] == [
        (0, "s", 2), (1, "s2", 0)]
    assert [x["name"] for x in raw.get_topics("s")] == ["t", "defaults"]
    assert [x["name"] for x in raw.get_stream("s")["topics"]] == ["t", "defaults"]
    assert raw.get_topics(1) == []
    # the 0.8 server answers these reads with an empty body when something is missing
    assert raw.get_stream("missing") is None
    assert raw.get_topic("s", "missing") is None
    assert raw.get_topics("missing") == []
    assert raw.get_groups("s", "missing") == []
    assert raw.get_group("s", "t", "missing") is None
    assert raw.get_offset((CONSUMER, 1), "missing", "t", 0) is None
    with pytest.raises(ClassicError) as e:
        raw.create_stream("s")
    assert e.value.code == 1012  # StreamNameAlreadyExists


def test_partitioning_and_frames(raw: ClassicClient) -> None:
    raw.login()
    raw.create_stream("s")
    raw.create_topic("s", "t", 3)
    for i in range(4):
        assert raw.send("s", "t", (BALANCED, None), [(0, b"b%d" % i, b"")]) == b""  # empty reply
    key = b"user-42"
    expected = xxhash.xxh32_intdigest(key) % 3
    for i in range(2):
        raw.send("s", "t", (MESSAGES_KEY, key), [(100 + i, b"k%d" % i, b"")])
    raw.send("s", "t", (PARTITION_ID, 1), [(7, b"explicit", b"")], origin_timestamp=123)

    polled = {p: raw.poll((CONSUMER, 1), "s", "t", p, FIRST) for p in range(3)}
    payloads = {p: [m["payload"] for m in r["messages"]] for p, r in polled.items()}
    balanced = {p: [x for x in v if x.startswith(b"b")] for p, v in payloads.items()}
    assert balanced == {0: [b"b0", b"b3"], 1: [b"b1"], 2: [b"b2"]}  # round-robin
    assert [x for x in payloads[expected] if x.startswith(b"k")] == [b"k0", b"k1"]
    assert payloads[1][-1] == b"explicit"
    explicit = polled[1]["messages"][-1]
    assert (explicit["id"], explicit["origin_timestamp"]) == (7, 123)
    for p, r in polled.items():
        assert r["partition_id"] == p and r["count"] == len(r["messages"])
        assert r["current_offset"] == len(r["messages"]) - 1
        for i, m in enumerate(r["messages"]):
            assert m["offset"] == i and m["reserved"] == 0 and m["timestamp"] > 0
            # checksum = xxh3_64 of the 64-byte-header frame after the checksum field
            assert m["checksum"] == xxhash.xxh3_64_intdigest(m["frame"][8:])


def test_ids_0_become_uuid4_and_given_ids_stay(raw: ClassicClient) -> None:
    """One batch mixing a client's ids and ids 0 (as the 0.8 server: a UUIDv4 for each 0);
    the server fetches random bytes only for the ids 0 (core/records/iggy_batch.py)."""
    raw.login()
    raw.create_stream("ids")
    raw.create_topic("ids", "t", 1)
    given = [(5, b"a", b""), (0, b"b", b""), (2**127 + 3, b"c", b""), (0, b"d", b"")]
    raw.send("ids", "t", (PARTITION_ID, 0), given)
    raw.send("ids", "t", (PARTITION_ID, 0), [(0, b"e", b"")])
    ids = [m["id"] for m in raw.poll((CONSUMER, 1), "ids", "t", 0, FIRST)["messages"]]
    assert ids[0] == 5 and ids[2] == 2**127 + 3
    made = [ids[1], ids[3], ids[4]]
    assert all(uuid.UUID(int=i).version == 4 and uuid.UUID(int=i).variant == uuid.RFC_4122
               for i in made)
    assert len(set(made)) == 3


def test_flush_unsaved_buffer(raw: ClassicClient) -> None:
    """0.8 flushes a partition's buffer; pyggy has none, so it checks the target and says OK."""
    raw.login()
    raw.create_stream("s")
    raw.create_topic("s", "t", 1)
    raw.send("s", "t", (PARTITION_ID, 0), [(0, b"x", b"")])
    for fsync in (0, 1):
        assert raw.request(102, identifier("s") + identifier("t")
                           + struct.pack("<IB", 0, fsync)) == b""
    with pytest.raises(ClassicError) as e:
        raw.request(102, identifier("s") + identifier("t") + struct.pack("<IB", 5, 0))
    assert e.value.code == 3007  # PartitionNotFound


def test_consumer_offsets(raw: ClassicClient) -> None:
    raw.login()
    raw.create_stream("s")
    raw.create_topic("s", "t", 2)
    raw.send("s", "t", (PARTITION_ID, 0), [(0, b"m%d" % i, b"") for i in range(5)])
    consumer = (CONSUMER, "reader")
    assert raw.get_offset(consumer, "s", "t", 0) is None
    assert raw.store_offset(consumer, "s", "t", 0, 2) == b""  # no ack byte in classic
    assert raw.get_offset(consumer, "s", "t", 0) == {
        "partition_id": 0, "current_offset": 4, "stored_offset": 2, "length": 20}
    assert [m["offset"] for m in raw.poll(consumer, "s", "t", 0, NEXT)["messages"]] == [3, 4]
    assert raw.get_offset(consumer, "s", "t", 1) is None
    for partition, offset in ((0, 5), (1, 0)):  # past the newest offset; never-written partition
        with pytest.raises(ClassicError) as e:
            raw.store_offset(consumer, "s", "t", partition, offset)
        assert e.value.code == 4100  # InvalidOffset
    assert raw.get_offset(consumer, "s", "t", 0)["stored_offset"] == 2
    assert raw.delete_offset(consumer, "s", "t", 0) == b""
    assert raw.get_offset(consumer, "s", "t", 0) is None
    raw.poll(consumer, "s", "t", 0, NEXT, count=2, auto_commit=True)
    assert raw.get_offset(consumer, "s", "t", 0)["stored_offset"] == 1


def test_consumer_groups(raw: ClassicClient) -> None:
    raw.login()
    raw.create_stream("s")
    raw.create_topic("s", "t", 2)
    for p in range(2):
        raw.send("s", "t", (PARTITION_ID, p), [(0, b"p%d" % p, b"")])
    g = raw.create_group("s", "t", "g")
    assert (g["id"], g["name"], g["partitions_count"], g["members"]) == (0, "g", 2, [])
    group = (CONSUMER_GROUP, "g")
    with pytest.raises(ClassicError) as e:
        raw.poll(group, "s", "t", None, NEXT)
    assert e.value.code == 5006  # ConsumerGroupMemberNotFound
    raw.join_group("s", "t", "g")
    members = raw.get_group("s", "t", "g")["members"]
    assert len(members) == 1 and members[0]["partitions"] == [0, 1]
    # no partition in the request: the member's partitions in turn
    polls = [raw.poll(group, "s", "t", None, NEXT, auto_commit=True) for _ in range(3)]
    assert [(r["partition_id"], [m["payload"] for m in r["messages"]]) for r in polls] == [
        (0, [b"p0"]), (1, [b"p1"]), (0, [])]
    assert raw.get_offset(group, "s", "t", 1)["stored_offset"] == 0
    raw.leave_group("s", "t", "g")
    assert raw.get_group("s", "t", "g")["members"] == []
    with pytest.raises(ClassicError) as e:  # offsets of a group are written by its members
        raw.store_offset(group, "s", "t", 0, 0)
    assert e.value.code == 5006
    assert raw.get_offset(group, "s", "t", 1)["stored_offset"] == 0  # but readable by anyone
    assert [x["name"] for x in raw.get_groups("s", "t")] == ["g"]


def test_user_headers_cross_protocol(raw: ClassicClient, pyggy_server: PyggyServer) -> None:
    """Headers sent over classic frames reach the 0.9 SDK and vice versa, byte for byte."""
    raw.login()
    raw.create_stream("h")
    raw.create_topic("h", "t", 2)
    headers = tlv([(STRING, b"k", STRING, b"v"), (STRING, b"n", UINT8, b"\x05"),
                   (STRING, b"bin", RAW, b"\x01\x02")])
    raw.send("h", "t", (PARTITION_ID, 0), [(9, b"classic", headers), (10, b"bare", b"")])

    async def sdk09():
        client = IggyClient(pyggy_server.tcp_address)
        await client.connect()
        await client.login_user("iggy", "iggy")
        await client.send_messages("h", "t", 1, [
            SendMessage(b"vsr", user_headers={"k": "v", "n": 5}, id=11)])
        return await client.poll_messages("h", "t", consumer=Consumer.Single(0),
                                          polling_strategy=PollingStrategy.First(), count=10,
                                          auto_commit=False, partition_id=0)

    polled = asyncio.run(sdk09())
    assert [(m.id(), m.payload()) for m in polled] == [(9, b"classic"), (10, b"bare")]
    assert polled[0].user_headers().to_scalar_dict() == {"k": "v", "n": 5, "bin": b"\x01\x02"}
    assert polled[1].user_headers() is None

    (m,) = raw.poll((CONSUMER, 1), "h", "t", 1, FIRST)["messages"]
    assert (m["id"], m["payload"]) == (11, b"vsr")
    assert sorted(parse_tlv(m["user_headers"])) == sorted(
        [(STRING, b"k", STRING, b"v"), (STRING, b"n", UINT8, b"\x05")])
    assert raw.poll((CONSUMER, 1), "h", "t", 0, FIRST)["messages"][0]["user_headers"] == headers


# -- large polls: whole stored batches streamed, converted chunk by chunk (core/storage/streamed.py)
PER_BATCH, BATCHES = 200, 30  # ~1 KB messages: ~210 KB batches, ~6 MB: several chunks


def _big(i: int) -> bytes:
    return b"m%07d" % i + bytes([i % 251]) * 1000


def _fill_big(raw: ClassicClient) -> None:
    raw.login()
    raw.create_stream("s")
    raw.create_topic("s", "t", 1)
    for k in range(BATCHES):
        raw.send("s", "t", (PARTITION_ID, 0),
                 [(k * PER_BATCH + i + 1, _big(k * PER_BATCH + i), b"h" * (i % 3))
                  for i in range(PER_BATCH)])


def test_a_large_classic_poll_returns_every_message_intact(raw: ClassicClient) -> None:
    _fill_big(raw)
    total = PER_BATCH * BATCHES
    got = raw.poll((CONSUMER, 1), "s", "t", 0, FIRST, count=total)
    msgs = got["messages"]
    assert got["count"] == total and [m["offset"] for m in msgs] == list(range(total))
    assert [m["payload"] for m in msgs] == [_big(i) for i in range(total)]
    assert [m["id"] for m in msgs] == [i + 1 for i in range(total)]
    assert [m["user_headers"] for m in msgs] == [b"h" * (i % PER_BATCH % 3) for i in range(total)]
    assert all(m["checksum"] == xxhash.xxh3_64_intdigest(m["frame"][8:]) for m in msgs)
    # from a batch's first offset, whole batches, then one cut by the count (read whole)
    start = 7 * PER_BATCH
    got = raw.poll((CONSUMER, 1), "s", "t", 0, OFFSET, start, count=10 * PER_BATCH + 13)
    assert [m["offset"] for m in got["messages"]] == list(range(start, start + 10 * PER_BATCH + 13))
    assert [m["payload"] for m in got["messages"]] == [_big(i) for i in range(start, start + 2013)]


def test_a_batch_rotting_on_disk_is_never_delivered_classic(
        raw: ClassicClient, pyggy_server: PyggyServer) -> None:
    _fill_big(raw)
    [path] = [p for p in pyggy_server.data_path.rglob("partitions/0/*.log")
              if p.stat().st_size > 1 << 20]
    good = path.read_bytes()
    size = len(good) // BATCHES  # batches are of one size: the 21st is chunks into the reply
    pos = 20 * size + size // 2
    with open(path, "r+b") as f:  # a bit rots under the running server
        f.seek(pos)
        f.write(bytes([good[pos] ^ 0x04]))
    with pytest.raises(ConnectionError):  # the head went out: the connection is closed
        raw.poll((CONSUMER, 1), "s", "t", 0, FIRST, count=PER_BATCH * BATCHES)
    with ClassicClient(pyggy_server.tcp_address) as again:  # the next poll stops before it
        again.login()
        got = again.poll((CONSUMER, 1), "s", "t", 0, FIRST, count=PER_BATCH * BATCHES)
        assert [m["offset"] for m in got["messages"]] == list(range(20 * PER_BATCH))
