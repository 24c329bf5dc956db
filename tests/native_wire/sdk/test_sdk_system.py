"""System commands and the session life cycle, driven by the apache-iggy 0.9.0 SDK: connect,
ping, password login, logout, the unauthenticated refusals, get_stats and describe_options."""

from __future__ import annotations

import platform
import socket
import struct

import pytest
from apache_iggy import HeaderValue, IggyClient, PollingStrategy, SendMessage
from rawclient import REPLY, RawClient
from sdk_support import (
    INVALID_CREDENTIALS,
    UNAUTHENTICATED,
    connect,
    connect_anonymous,
    now_us,
    outcomes,
    poll,
)

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.asyncio


async def test_ping_works_before_and_after_login(pyggy_server: PyggyServer) -> None:
    client = await connect_anonymous(pyggy_server)  # connect() itself sends one PING
    await client.ping()
    await client.login_user("iggy", "iggy")
    await client.ping()
    assert [s.name for s in await client.get_streams()] == []


def _unauthenticated_calls(c: IggyClient) -> dict:
    """Every command of the SDK except ping and login, with harmless arguments."""
    return {
        "get_stats": lambda: c.get_stats(),
        "snapshot": lambda: c.send_binary_request(11, b"\x02\x01\x04"),
        "describe_options": lambda: c.describe_options("topic"),
        "get_user": lambda: c.get_user(0),
        "get_users": lambda: c.get_users(),
        "create_user": lambda: c.create_user("eve", "secret"),
        "update_user": lambda: c.update_user(0, username="eve"),
        "update_permissions": lambda: c.update_permissions(0, None),
        "change_password": lambda: c.change_password(0, "iggy", "other"),
        "delete_user": lambda: c.delete_user(0),
        "create_stream": lambda: c.create_stream("s"),
        "get_stream": lambda: c.get_stream(0),
        "get_streams": lambda: c.get_streams(),
        "update_stream": lambda: c.update_stream(0, "x"),
        "delete_stream": lambda: c.delete_stream(0),
        "purge_stream": lambda: c.purge_stream(0),
        "create_topic": lambda: c.create_topic(0, "t", 1),
        "get_topic": lambda: c.get_topic(0, 0),
        "get_topics": lambda: c.get_topics(0),
        "update_topic": lambda: c.update_topic(0, 0, "x"),
        "delete_topic": lambda: c.delete_topic(0, 0),
        "purge_topic": lambda: c.purge_topic(0, 0),
        "create_partitions": lambda: c.create_partitions(0, 0, 1),
        "delete_partitions": lambda: c.delete_partitions(0, 0, 1),
        "send_messages": lambda: c.send_messages(0, 0, 0, [SendMessage("x")]),
        "poll_messages": lambda: poll(c, 0, 0, PollingStrategy.First()),
        "create_consumer_group": lambda: c.create_consumer_group(0, 0, "g"),
        "get_consumer_group": lambda: c.get_consumer_group(0, 0, 0),
        "get_consumer_groups": lambda: c.get_consumer_groups(0, 0),
        "delete_consumer_group": lambda: c.delete_consumer_group(0, 0, 0),
        "join_consumer_group": lambda: c.join_consumer_group(0, 0, 0),
        "leave_consumer_group": lambda: c.leave_consumer_group(0, 0, 0),
        "get_personal_access_tokens": lambda: c.send_binary_request(41, b""),
        "get_me": lambda: c.send_binary_request(20, b""),
    }


async def _assert_all_refused(client: IggyClient) -> None:
    got = await outcomes(_unauthenticated_calls(client))
    assert got == {name: UNAUTHENTICATED for name in got}


async def test_every_command_but_ping_and_login_is_refused_before_login(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    # Something to find, so a "not found" could not hide a missing check.
    await root.create_stream("s")
    await root.create_topic("s", "t", 1)
    await root.create_consumer_group("s", "t", "g")
    await root.send_messages("s", "t", 0, [SendMessage("secret")])

    stranger = await connect_anonymous(pyggy_server)
    await _assert_all_refused(stranger)
    await stranger.ping()

    # Once logged in, the same client gets answers.
    await stranger.login_user("iggy", "iggy")
    assert [m.payload() for m in await poll(stranger, "s", "t")] == [b"secret"]


async def test_logout_ends_the_session_and_another_user_can_log_in(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_user("alice", "alice-pw")
    # A manual login: a client with AutoLogin would replay its credentials after the logout.
    client = await connect_anonymous(pyggy_server)
    await client.login_user("iggy", "iggy")
    assert len(await client.get_users()) == 2

    await client.logout_user()
    await _assert_all_refused(client)
    await client.ping()

    await client.login_user("alice", "alice-pw")
    me = await client.get_user("alice")  # one's own user needs no permission
    assert (me.id, me.username) == (1, "alice")
    await client.logout_user()
    await client.login_user("iggy", "iggy")
    assert [u.username for u in await client.get_users()] == ["iggy", "alice"]


async def test_bad_credentials_are_refused(root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_user("bob", "bob-pw")
    for username, password in [("iggy", "wrong"), ("bob", "iggy"), ("nobody", "whatever")]:
        client = await connect_anonymous(pyggy_server)
        with pytest.raises(RuntimeError, match=f"^{INVALID_CREDENTIALS}$"):
            await client.login_user(username, password)

    with pytest.raises(RuntimeError, match=f"^{INVALID_CREDENTIALS}$"):
        await connect(pyggy_server, "bob", "nope", reconnect=False)

    good = await connect_anonymous(pyggy_server)
    await good.login_user("bob", "bob-pw")
    await good.ping()


async def test_the_address_forms_the_sdk_accepts(pyggy_server: PyggyServer) -> None:
    plain = IggyClient(pyggy_server.tcp_address)
    await plain.connect()
    await plain.login_user("iggy", "iggy")
    await plain.create_stream("from-address")

    url = IggyClient.from_connection_string(f"iggy://iggy:iggy@{pyggy_server.tcp_address}")
    await url.connect()  # logs in with the credentials of the connection string
    assert [s.name for s in await url.get_streams()] == ["from-address"]


async def test_get_stats_describes_the_server_and_its_contents(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    before = await root.get_stats()
    assert before.process_id == pyggy_server.pid
    assert (before.streams_count, before.topics_count, before.partitions_count) == (0, 0, 0)
    assert (before.messages_count, before.messages_size_bytes) == (0, 0)
    assert before.consumer_groups_count == 0
    assert before.clients_count == 1
    assert before.iggy_server_version == "0.9.0"
    assert before.iggy_server_semver == 9000
    assert before.hostname == socket.gethostname()
    assert before.os_name == platform.system()
    assert before.kernel_version == platform.release()
    assert before.os_version
    assert 0 < before.memory_usage < before.total_memory
    assert 0 < before.available_memory <= before.total_memory
    assert 0 < before.free_disk_space <= before.total_disk_space
    assert before.threads_count >= 1
    assert before.cache_metrics == {}
    assert before.cpu_usage >= 0 and before.total_cpu_usage >= 0
    # the server started a moment ago, and it has been running since
    assert now_us() - 60_000_000 < before.start_time <= now_us()
    assert 0 <= before.run_time.total_seconds() < 60
    # both with whole-second precision, as the SDK documents them
    assert before.start_time % 1_000_000 == 0
    assert before.run_time.microseconds == 0

    await root.create_stream("s1")
    await root.create_stream("s2")
    await root.create_topic("s1", "t1", 3)
    await root.create_topic("s2", "t2", 2)
    await root.create_consumer_group("s1", "t1", "g")
    await root.send_messages("s1", "t1", 0, [SendMessage(b"x" * 100) for _ in range(3)])
    await root.send_messages("s2", "t2", 1, [SendMessage(b"y" * 100)])
    second = await connect(pyggy_server)
    await poll(second, "s1", "t1")

    after = await root.get_stats()
    assert (after.streams_count, after.topics_count, after.partitions_count) == (2, 2, 5)
    assert after.segments_count == 5  # one open segment per partition
    assert after.messages_count == 4
    assert after.messages_size_bytes > 400
    assert after.consumer_groups_count == 1
    assert after.clients_count == 2
    assert after.written_bytes > before.written_bytes
    assert after.read_bytes > before.read_bytes
    assert after.start_time == before.start_time
    assert after.run_time >= before.run_time


async def test_describe_options_lists_the_topic_catalog(root: IggyClient) -> None:
    topic = {o.key: o for o in await root.describe_options("topic")}
    assert sorted(topic) == [
        "compression_algorithm", "consumer_offset_durability", "durability", "enforce_fsync",
        "local_retention_bytes", "local_retention_segments",
        "max_topic_size", "message_expiry", "messages_required_to_save",
        "preallocate_segments", "segment_size", "size_of_messages_required_to_save",
    ]
    expected = {
        "compression_algorithm": ("string", HeaderValue.String("none")),
        "consumer_offset_durability": ("string", HeaderValue.String("replicated")),
        "durability": ("string", HeaderValue.String("replicated")),
        "enforce_fsync": ("bool", HeaderValue.Bool(False)),
        "local_retention_bytes": ("uint64", HeaderValue.UnsignedInt64(2**64 - 1)),
        "local_retention_segments": ("uint64", HeaderValue.UnsignedInt64(0)),
        "max_topic_size": ("uint64", HeaderValue.UnsignedInt64(2**64 - 1)),
        "message_expiry": ("uint64", HeaderValue.UnsignedInt64(2**64 - 1)),
        "messages_required_to_save": ("uint32", HeaderValue.UnsignedInt32(1024)),
        "preallocate_segments": ("bool", HeaderValue.Bool(False)),
        "segment_size": ("uint64", HeaderValue.UnsignedInt64(1 << 30)),
        "size_of_messages_required_to_save": ("uint64", HeaderValue.UnsignedInt64(1 << 20)),
    }
    assert {k: (o.kind, o.default_value) for k, o in topic.items()} == expected
    assert all(o.description for o in topic.values())

    # Streams and users have no option keys yet.
    assert await root.describe_options("stream") == []
    assert await root.describe_options("user") == []
    with pytest.raises(ValueError):
        await root.describe_options("partition")



def _ident(value: int | str) -> bytes:
    if isinstance(value, int):
        return struct.pack("<BBI", 1, 4, value)
    return bytes((2, len(value))) + value.encode()


def _name(value: str) -> bytes:
    return bytes((len(value),)) + value.encode()


async def test_the_server_itself_refuses_what_the_sdk_keeps_back_before_login(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    """Before login the SDK sends only non-replicated commands (and gets status 40); it holds
    metadata and partition operations back itself. A raw client shows the server refuses
    those too: with a made-up session (status 40) and with none (the connection drops)."""
    await root.create_stream("s")
    await root.create_topic("s", "t", 1)
    await root.create_consumer_group("s", "t", "g")
    s, t, g = _ident("s"), _ident("t"), _ident("g")
    replicated = {
        202: _name("evil"), 204: s + _name("evil"), 203: s, 205: s,
        302: s + struct.pack("<I", 1) + _name("evil"), 304: s + t + _name("evil"),
        303: s + t, 305: s + t, 402: s + t + struct.pack("<I", 1),
        403: s + t + struct.pack("<I", 1), 503: s + t + struct.pack("<II", 0, 1),
        602: s + t + _name("evil"), 603: s + t + g, 604: s + t + g, 605: s + t + g,
        33: _name("evil") + _name("password") + b"\x01\x00", 35: _ident(0) + b"\x00\x00",
        34: _ident(0), 37: _ident(0) + _name("iggy") + _name("other"), 36: _ident(0) + b"\x00",
        42: _name("evil") + bytes(8), 43: _name("evil"),
        121: b"\x01" + _ident(1) + s + t + struct.pack("<BIQB", 1, 0, 0, 1),
        122: b"\x01" + _ident(1) + s + t + struct.pack("<BIB", 1, 0, 1),
    }
    raw = RawClient(pyggy_server.tcp_address)
    try:
        assert raw.send(1).status == 0  # PING
        for code in (10, 11, 12, 13, 20, 21, 22, 31, 32, 41, 100, 120, 200, 201, 300, 301,
                     600, 601, 606):
            reply = raw.send(code, b"")
            assert (code, reply.command, reply.status, reply.body) == (code, REPLY, 40, b"")
        for code, body in replicated.items():
            reply = raw.send(code, body, session=7)
            assert (code, reply.command, reply.status, reply.body) == (code, REPLY, 40, b"")
        assert raw.send(202, _name("evil"), session=0) is None  # no session: dropped
    finally:
        raw.close()

    # nothing happened
    assert [x.name for x in await root.get_streams()] == ["s"]
    assert [x.name for x in await root.get_topics("s")] == ["t"]
    assert [x.name for x in await root.get_consumer_groups("s", "t")] == ["g"]
    assert [u.username for u in await root.get_users()] == ["iggy"]
    assert await root.send_binary_request(41, b"") == b""  # no tokens

    # the same raw client, logged in, is served (so the refusals above were not about format)
    raw = RawClient(pyggy_server.tcp_address)
    try:
        assert raw.login("iggy", "iggy").status == 0
        reply = raw.send(202, _name("made-raw"))
        assert (reply.command, reply.status, reply.body[:4]) == (REPLY, 0, b"\x00\x00\x00\x00")
    finally:
        raw.close()
    assert (await root.get_stream("made-raw")).id == 1
