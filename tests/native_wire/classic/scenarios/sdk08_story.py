"""apache-iggy 0.8.0 (classic protocol) core story against a fresh server.

Login (explicit, connection string, bad password), ping, streams and topics (create, get by
name and id, missing, duplicate), sends by partition id in several batches, polls with every
strategy (offset, timestamp, first, last, next + auto commit), polls of missing things.
Usage: python sdk08_story.py HOST:PORT
"""

from __future__ import annotations

import datetime

from _common import Results, login, messages, run
from apache_iggy import IggyClient, PollingStrategy, SendMessage

STREAM = "classic-stream"
TOPIC = "orders"


def _stream(s) -> dict | None:
    if s is None:
        return None
    return {"id": s.id, "name": s.name, "topics_count": s.topics_count,
            "messages_count": s.messages_count}


def _topic(t) -> dict | None:
    if t is None:
        return None
    return {"id": t.id, "name": t.name, "partitions_count": t.partitions_count,
            "messages_count": t.messages_count}


async def main(address: str, _args: list[str]) -> dict:
    out = Results()
    client = await login(address)
    await out.step("ping", lambda: client.ping())

    async def bad_login():
        other = IggyClient(address)
        await other.connect()
        await other.login_user("iggy", "not-the-password")
        return "logged in"

    await out.step("bad_login", bad_login)

    # -- streams and topics
    await out.step("create_stream", lambda: client.create_stream(STREAM))
    await out.step("create_stream_again", lambda: client.create_stream(STREAM))
    await out.step("get_stream_by_name", lambda: _get_stream(client, STREAM))
    await out.step("get_stream_by_id", lambda: _get_stream(client, 0))
    await out.step("get_stream_missing", lambda: _get_stream(client, "no-such-stream"))
    await out.step("create_topic", lambda: client.create_topic(
        STREAM, TOPIC, 3, compression_algorithm="gzip", replication_factor=1,
        message_expiry=datetime.timedelta(hours=1), max_topic_size=1 << 30))
    await out.step("create_topic_default", lambda: client.create_topic(STREAM, "plain", 1))
    await out.step("get_topic_by_name", lambda: _get_topic(client, STREAM, TOPIC))
    await out.step("get_topic_by_id", lambda: _get_topic(client, 0, 1))
    await out.step("get_topic_missing", lambda: _get_topic(client, STREAM, "no-such-topic"))
    await out.step("get_stream_with_topics", lambda: _get_stream(client, STREAM))

    # -- sends by partition id: partition 0 gets two batches (distinct server timestamps)
    await out.step("send_p0_batch1", lambda: client.send_messages(
        STREAM, TOPIC, 0, [SendMessage("m0"), SendMessage("m1"), SendMessage(b"m2")]))
    first_batch = await client.poll_messages(STREAM, TOPIC, 0, PollingStrategy.First(), 1, False)
    await out.step("send_p0_batch2", lambda: client.send_messages(
        STREAM, TOPIC, 0, [SendMessage("m3"), SendMessage(b"\x00\xffbinary\n")]))
    await out.step("send_p1", lambda: client.send_messages(
        STREAM, TOPIC, 1, [SendMessage(f"p1-{i}") for i in range(3)]))
    await out.step("send_p2", lambda: client.send_messages(
        STREAM, TOPIC, 2, [SendMessage("p2-0"), SendMessage("p2-1")]))
    await out.step("send_missing_partition", lambda: client.send_messages(
        STREAM, TOPIC, 7, [SendMessage("lost")]))
    await out.step("send_missing_topic", lambda: client.send_messages(
        STREAM, "no-such-topic", 0, [SendMessage("lost")]))
    await out.step("get_topic_after_send", lambda: _get_topic(client, STREAM, TOPIC))
    await out.step("get_stream_after_send", lambda: _get_stream(client, STREAM))

    # -- polls (the SDK's default consumer)
    def poll(partition, strategy, count, auto_commit=False, stream=STREAM, topic=TOPIC):
        async def go():
            return messages(await client.poll_messages(stream, topic, partition, strategy, count,
                                                       auto_commit))
        return go

    await out.step("poll_first", poll(0, PollingStrategy.First(), 100))
    await out.step("poll_offset_2_count_2", poll(0, PollingStrategy.Offset(2), 2))
    await out.step("poll_offset_past_end", poll(0, PollingStrategy.Offset(50), 10))
    await out.step("poll_last_2", poll(0, PollingStrategy.Last(), 2))
    await out.step("poll_last_100", poll(0, PollingStrategy.Last(), 100))
    out["second_batch_timestamp"] = None
    if first_batch:
        second = await client.poll_messages(STREAM, TOPIC, 0, PollingStrategy.Offset(3), 1, False)
        out["first_batch_timestamp"] = first_batch[0].timestamp()
        out["second_batch_timestamp"] = second[0].timestamp() if second else None
        if second:
            await out.step("poll_timestamp_second_batch",
                           poll(0, PollingStrategy.Timestamp(second[0].timestamp()), 100))
    await out.step("poll_timestamp_zero", poll(0, PollingStrategy.Timestamp(0), 100))
    await out.step("poll_timestamp_future",
                   poll(0, PollingStrategy.Timestamp(1 << 62), 100))
    await out.step("poll_p1_first", poll(1, PollingStrategy.First(), 100))
    await out.step("poll_p2_first", poll(2, PollingStrategy.First(), 100))
    await out.step("poll_next_1", poll(0, PollingStrategy.Next(), 2, auto_commit=True))
    await out.step("poll_next_2", poll(0, PollingStrategy.Next(), 2, auto_commit=True))
    await out.step("poll_next_3", poll(0, PollingStrategy.Next(), 10, auto_commit=True))
    await out.step("poll_next_4", poll(0, PollingStrategy.Next(), 10, auto_commit=True))
    await out.step("poll_next_no_commit_p1", poll(1, PollingStrategy.Next(), 2))
    await out.step("poll_next_no_commit_p1_again", poll(1, PollingStrategy.Next(), 2))
    await out.step("poll_empty_topic", poll(0, PollingStrategy.First(), 10, topic="plain"))
    await out.step("poll_missing_partition", poll(9, PollingStrategy.First(), 10))
    await out.step("poll_missing_stream", poll(0, PollingStrategy.First(), 10,
                                                stream="no-such-stream"))

    # -- a connection string client logs in by itself
    async def connection_string():
        other = IggyClient.from_connection_string(f"iggy://iggy:iggy@{address}")
        await other.connect()
        return _stream(await other.get_stream(STREAM))

    await out.step("connection_string_get_stream", connection_string)
    return out


async def _get_stream(client, ident) -> dict | None:
    return _stream(await client.get_stream(ident))


async def _get_topic(client, stream, topic) -> dict | None:
    return _topic(await client.get_topic(stream, topic))


if __name__ == "__main__":
    run(main)
