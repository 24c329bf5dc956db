"""apache-iggy 0.8.0, unmodified, talking the classic protocol to a real pyggy server.

0.8.0 conflicts with the 0.9.0 installed in .venv, so each scenario under `scenarios/` is a
script run by the python of the separate 0.8.0 venv (fixture `iggy08_python`: fails under
CI=true when that venv is missing, skips otherwise). A script prints one JSON object; these
tests assert on it (payloads, offsets, ids, counts) and cross-check the server's state with the
raw classic client (`classic_wire`) and the 0.9.0 SDK.

The 0.8.0 Python API covers: login (explicit / connection string), ping, create/get stream,
create/get topic, send by partition id, poll (offset, timestamp, first, last, next; auto
commit) with the default consumer, and IggyConsumer (consumer groups: create, join, poll,
store/delete offset). Commands it cannot send are covered by test_classic_wire.py.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from apache_iggy import Consumer, IggyClient, PollingStrategy, SendMessage
from classic_wire import CONSUMER, CONSUMER_GROUP, ClassicClient

from pyggy.testing import PyggyServer

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def run_scenario(python: Path, script: str, server: PyggyServer, *args: str) -> dict[str, Any]:
    """Run `scenarios/<script>` with the 0.8.0 venv's python; return its JSON output."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run([str(python), str(SCENARIOS / script), server.tcp_address, *args],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, f"{script} {args} crashed:\n{proc.stderr}\n{proc.stdout}"
    out = json.loads(proc.stdout)
    assert out.pop("sdk_version") == "0.8.0"
    return out


def ok(out: dict[str, Any], step: str) -> Any:
    value = out[step]
    assert not (isinstance(value, dict) and "error" in value), f"{step}: {value['error']}"
    return value


def error(out: dict[str, Any], step: str) -> str:
    value = out[step]
    assert isinstance(value, dict) and "error" in value, f"{step} should fail, got {value!r}"
    return value["error"]


def brief(msgs: list[dict]) -> list[tuple[int, int, bytes]]:
    """(partition, offset, payload) of each polled message."""
    return [(m["partition_id"], m["offset"], bytes.fromhex(m["payload"])) for m in msgs]


def offsets(msgs: list[dict]) -> list[int]:
    return [m["offset"] for m in msgs]


P0 = [b"m0", b"m1", b"m2", b"m3", b"\x00\xffbinary\n"]


def test_story(pyggy_server: PyggyServer, iggy08_python: Path) -> None:
    out = run_scenario(iggy08_python, "sdk08_story.py", pyggy_server)

    ok(out, "ping")
    assert "InvalidCredentials" in error(out, "bad_login")

    # streams and topics
    ok(out, "create_stream")
    assert "StreamNameAlreadyExists" in error(out, "create_stream_again")
    stream = {"id": 0, "name": "classic-stream", "topics_count": 0, "messages_count": 0}
    assert ok(out, "get_stream_by_name") == stream
    assert ok(out, "get_stream_by_id") == stream
    assert ok(out, "get_stream_missing") is None
    ok(out, "create_topic")
    ok(out, "create_topic_default")
    assert ok(out, "get_topic_by_name") == {"id": 0, "name": "orders", "partitions_count": 3,
                                            "messages_count": 0}
    assert ok(out, "get_topic_by_id") == {"id": 1, "name": "plain", "partitions_count": 1,
                                          "messages_count": 0}
    assert ok(out, "get_topic_missing") is None
    assert ok(out, "get_stream_with_topics")["topics_count"] == 2

    # sends by partition id
    for step in ("send_p0_batch1", "send_p0_batch2", "send_p1", "send_p2"):
        ok(out, step)
    assert "PartitionNotFound" in error(out, "send_missing_partition")
    assert "TopicNameNotFound" in error(out, "send_missing_topic")
    assert ok(out, "get_topic_after_send")["messages_count"] == 10
    assert ok(out, "get_stream_after_send") == {**stream, "topics_count": 2,
                                                "messages_count": 10}

    # poll: first / offset / last
    first = ok(out, "poll_first")
    assert brief(first) == [(0, i, p) for i, p in enumerate(P0)]
    assert all(m["length"] == len(bytes.fromhex(m["payload"])) for m in first)
    ids = [m["id"] for m in first]
    assert all(ids) and len(set(ids)) == 5  # the server minted ids for the 0.8 client's id 0
    t1, t2 = out["first_batch_timestamp"], out["second_batch_timestamp"]
    assert 0 < t1 < t2
    assert [m["timestamp"] for m in first] == [t1, t1, t1, t2, t2]  # append time per batch
    assert ok(out, "poll_last_100") == first
    assert ok(out, "poll_offset_2_count_2") == first[2:4]
    assert ok(out, "poll_offset_past_end") == []
    assert ok(out, "poll_last_2") == first[3:]

    # poll: timestamp
    assert ok(out, "poll_timestamp_second_batch") == first[3:]
    assert ok(out, "poll_timestamp_zero") == first
    assert ok(out, "poll_timestamp_future") == []

    # other partitions
    assert brief(ok(out, "poll_p1_first")) == [(1, i, f"p1-{i}".encode()) for i in range(3)]
    assert brief(ok(out, "poll_p2_first")) == [(2, i, f"p2-{i}".encode()) for i in range(2)]

    # poll: next with auto commit advances; without auto commit it does not
    assert ok(out, "poll_next_1") == first[0:2]
    assert ok(out, "poll_next_2") == first[2:4]
    assert ok(out, "poll_next_3") == first[4:]
    assert ok(out, "poll_next_4") == []
    assert offsets(ok(out, "poll_next_no_commit_p1")) == [0, 1]
    assert offsets(ok(out, "poll_next_no_commit_p1_again")) == [0, 1]

    assert ok(out, "poll_empty_topic") == []
    assert "PartitionNotFound" in error(out, "poll_missing_partition")
    assert "StreamNameNotFound" in error(out, "poll_missing_stream")
    assert ok(out, "connection_string_get_stream") == {**stream, "topics_count": 2,
                                                       "messages_count": 10}

    # the auto commits above were stored for the 0.8 SDK's default consumer (kind 1, id 0)
    with ClassicClient(pyggy_server.tcp_address) as raw:
        raw.login()
        assert raw.get_offset((CONSUMER, 0), "classic-stream", "orders", 0) == {
            "partition_id": 0, "current_offset": 4, "stored_offset": 4, "length": 20}
        assert raw.get_offset((CONSUMER, 0), "classic-stream", "orders", 1) is None


def test_consumer_groups(pyggy_server: PyggyServer, iggy08_python: Path) -> None:
    out = run_scenario(iggy08_python, "sdk08_groups.py", pyggy_server, "first")
    everything = ([(0, i, f"p0-{i}".encode()) for i in range(5)]
                  + [(1, i, f"p1-{i}".encode()) for i in range(3)]
                  + [(2, i, f"p2-{i}".encode()) for i in range(2)])
    assert (out["manual_name"], out["manual_stream"], out["manual_topic"]) == (
        "cg-manual", "groups", "t")
    # 0.8 polls a group without a partition: the server serves the member's partitions in
    # turn (one batch each), so one member reads all three partitions, each in order
    assert brief(ok(out, "manual_read")) == everything
    for step in ("manual_store_p0", "manual_store_p1", "manual_store_p2", "manual_delete_p2"):
        ok(out, step)
    assert out["manual_last_stored"] == [2, 2, 1]  # the SDK's own bookkeeping
    assert out["manual_last_consumed"] == [4, 2, 1]
    assert ok(out, "manual_extra") == []
    assert brief(ok(out, "auto_read")) == everything
    assert ok(out, "auto_extra") == []
    assert brief(ok(out, "p1_read")) == everything[5:8]
    assert "StreamNameNotFound" in error(out, "missing_stream")
    assert "ConsumerGroupNameNotFound" in error(out, "missing_group")

    with ClassicClient(pyggy_server.tcp_address) as raw:  # offsets as the server stored them
        raw.login()

        def stored(group: str) -> list[int | None]:
            found = [raw.get_offset((CONSUMER_GROUP, group), "groups", "t", p) for p in range(3)]
            return [f and f["stored_offset"] for f in found]

        assert stored("cg-manual") == [2, 2, None]  # explicit stores; p2's was deleted
        assert stored("cg-auto") == [4, 2, 1]  # auto commit on every poll
        groups = {g["name"]: g for g in raw.get_groups("groups", "t")}
        assert set(groups) == {"cg-manual", "cg-auto", "cg-p1"}
        # the first process exited: its connections, hence the members, are gone
        assert all(g["members_count"] == 0 for g in groups.values())

    out = run_scenario(iggy08_python, "sdk08_groups.py", pyggy_server, "resume")
    ok(out, "send_late")
    assert brief(ok(out, "manual_read")) == [(0, 3, b"p0-3"), (0, 4, b"p0-4"), (0, 5, b"late"),
                                             (2, 0, b"p2-0"), (2, 1, b"p2-1")]
    assert ok(out, "manual_extra") == []
    assert brief(ok(out, "auto_read")) == [(0, 5, b"late")]
    assert ok(out, "auto_extra") == []
    # two members of one group: disjoint partitions, every message read exactly once
    pair = ok(out, "pair_read")
    a, b = brief(pair["a"]), brief(pair["b"])
    assert a and b
    assert not {p for p, _, _ in a} & {p for p, _, _ in b}
    assert sorted(a + b) == sorted(everything + [(0, 5, b"late")])


async def _mixed_09_side(address: str) -> tuple[IggyClient, list[dict[str, Any]]]:
    client = IggyClient(address)
    await client.connect()
    await client.login_user("iggy", "iggy")
    await client.create_stream("mixed")
    await client.create_topic("mixed", "t", 2)
    sent = [
        {"id": 42, "payload": b"from-0.9 #0", "headers": {"k": "v", "n": 5}},
        {"id": 0, "payload": b"from-0.9 #1", "headers": None},
        {"id": (1 << 128) - 1, "payload": b"\x00" * 100_000, "headers": {"bin": b"\x01\x02"}},
    ]
    for batch in (sent[:2], sent[2:]):
        await client.send_messages("mixed", "t", 1, [
            SendMessage(m["payload"], user_headers=m["headers"], id=m["id"] or None)
            for m in batch])
    return client, sent


async def _mixed_09_after(client: IggyClient) -> tuple[list[Any], list[Any], Any, Any]:
    async def poll(partition: int) -> list[Any]:
        return await client.poll_messages("mixed", "t", consumer=Consumer.Single(0),
                                          polling_strategy=PollingStrategy.First(), count=100,
                                          auto_commit=False, partition_id=partition)

    return (await poll(0), await poll(1), await client.get_topic("mixed", "from08"),
            await client.get_topic("mixed", "t"))


def test_mixed_with_09_sdk(pyggy_server: PyggyServer, iggy08_python: Path) -> None:
    """0.9 → 0.8 and 0.8 → 0.9: the same offsets, ids, payloads and timestamps either way."""
    loop = asyncio.new_event_loop()
    try:
        client, sent = loop.run_until_complete(_mixed_09_side(pyggy_server.tcp_address))
        out = run_scenario(iggy08_python, "sdk08_mixed.py", pyggy_server)
        p0, p1, topic, mixed = loop.run_until_complete(_mixed_09_after(client))
    finally:
        loop.close()

    def view(m: Any) -> dict[str, Any]:
        return {"offset": m.offset(), "id": m.id(), "payload": m.payload().hex(),
                "timestamp": m.timestamp(), "partition_id": m.partition_id(),
                "length": m.length()}

    def strip(msgs: list[dict]) -> list[dict]:
        return [{k: v for k, v in m.items() if k != "checksum"} for m in msgs]

    # 0.9 → 0.8: partition 1 as the 0.8 client polled it equals what 0.9 polls
    polled_by_08 = ok(out, "poll_p1")
    assert strip(polled_by_08) == [view(m) for m in p1]
    assert [bytes.fromhex(m["payload"]) for m in polled_by_08] == [m["payload"] for m in sent]
    assert offsets(polled_by_08) == [0, 1, 2]
    assert polled_by_08[0]["id"] == 42 and polled_by_08[2]["id"] == (1 << 128) - 1
    assert polled_by_08[1]["id"] != 0
    assert [m.user_headers() and m.user_headers().to_scalar_dict() for m in p1] == [
        {"k": "v", "n": 5}, None, {"bin": b"\x01\x02"}]

    # 0.8 → 0.9: partition 0, sent by the 0.8 client, polled by both
    for step in ("create_topic", "send_0", "send_1"):
        ok(out, step)
    sent_by_08 = ok(out, "poll_p0")
    assert strip(sent_by_08) == [view(m) for m in p0]
    assert [m.payload() for m in p0] == [b"from-0.8 #0", "from-0.8 #1 \u00e9".encode(),
                                         b"\x00\x01\x02\xff", b"z" * 70_000]
    assert [m.offset() for m in p0] == [0, 1, 2, 3]
    assert all(m.user_headers() is None for m in p0)
    assert len({m.id() for m in p0}) == 4 and all(m.id() for m in p0)
    assert ok(out, "get_topic") == {"id": 0, "name": "t", "partitions_count": 2,
                                    "messages_count": 7}
    assert mixed.messages_count == 7

    # a topic created with the classic fixed fields, as 0.9 sees it
    assert topic.partitions_count == 2
    assert topic.compression_algorithm == "gzip"
    assert topic.max_topic_size.bytes == 5 << 30
    assert topic.message_expiry.duration == datetime.timedelta(minutes=90)


def test_large_poll_streamed(pyggy_server: PyggyServer, iggy08_python: Path) -> None:
    """A poll of ~6 MB of whole batches (the server streams it, converting chunk by chunk):
    every message back in order and intact through the unmodified 0.8.0 SDK."""
    per_batch, batches = 200, 30

    def payload(i: int) -> bytes:
        return b"m%07d" % i + bytes([i % 251]) * 1000

    out = run_scenario(iggy08_python, "sdk08_large_poll.py", pyggy_server, str(per_batch),
                       str(batches))
    for step, start, count in (("all", 0, per_batch * batches),
                               ("from_batch_7", 7 * per_batch, 10 * per_batch + 13)):
        got = ok(out, step)
        assert got["offsets"] == list(range(start, start + count))
        assert got["payloads_sha256"] == hashlib.sha256(
            b"".join(payload(i) for i in range(start, start + count))).hexdigest()
