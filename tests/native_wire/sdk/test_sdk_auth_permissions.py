"""Personal access tokens and permissions with the apache-iggy 0.9.0 SDK.

PATs cannot be created from the SDK's typed API: they are created, listed and deleted with
`IggyClient.send_binary_request` (codes 42/41/43) and used with the SDK's own
`AutoLogin.personal_access_token` (LOGIN_REGISTER_WITH_PAT). A user lacking a permission gets
status 41, which the SDK shows as RuntimeError("Unauthorized").
"""

from __future__ import annotations

import pytest
from apache_iggy import (
    Consumer,
    GlobalPermissions,
    IggyClient,
    Permissions,
    PollingStrategy,
    SendMessage,
    StreamPermissions,
    TopicPermissions,
    UserStatus,
)
from sdk_support import (
    CONSUMER,
    INVALID_PAT,
    UNAUTHORIZED,
    connect,
    connect_with_token,
    create_pat,
    delete_pat,
    get_consumer_offset,
    list_pats,
    now_us,
    outcomes,
    poll,
)

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.asyncio
HOUR_US = 3600 * 1_000_000


async def test_a_personal_access_token_logs_in_as_its_user(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_user("bot", "bot-password", permissions=Permissions(
        GlobalPermissions(read_streams=True)))
    bot = await connect(pyggy_server, "bot", "bot-password")
    before = now_us()
    forever = await create_pat(bot, "ci-forever")
    hourly = await create_pat(bot, "ci-hourly", HOUR_US)
    assert forever != hourly and len(forever) >= 32
    tokens = dict(await list_pats(bot))
    assert sorted(tokens) == ["ci-forever", "ci-hourly"]
    assert tokens["ci-forever"] == 0  # never expires
    assert before + HOUR_US <= tokens["ci-hourly"] <= now_us() + HOUR_US
    assert await list_pats(root) == []  # tokens belong to their user
    with pytest.raises(RuntimeError):
        await create_pat(bot, "ci-forever")  # names are unique per user

    # the token logs in as bot, with bot's permissions
    via_token = await connect_with_token(pyggy_server, forever)
    assert [s.name for s in await via_token.get_streams()] == ["s"]
    me = await via_token.get_user("bot")
    assert me.id == 1
    with pytest.raises(RuntimeError, match=f"^{UNAUTHORIZED}$"):
        await via_token.create_stream("not-allowed")
    assert dict(await list_pats(via_token)).keys() == {"ci-forever", "ci-hourly"}

    # a deleted token no longer logs in; the other one still does
    await delete_pat(bot, "ci-forever")
    assert [name for name, _ in await list_pats(bot)] == ["ci-hourly"]
    with pytest.raises(RuntimeError, match=f"^{INVALID_PAT}$"):
        await connect_with_token(pyggy_server, forever, reconnect=False)
    await (await connect_with_token(pyggy_server, hourly)).ping()
    with pytest.raises(RuntimeError):
        await delete_pat(bot, "ci-forever")

    # garbage and expired tokens are refused
    with pytest.raises(RuntimeError, match=f"^{INVALID_PAT}$"):
        await connect_with_token(pyggy_server, "not-a-token", reconnect=False)
    expired = await create_pat(bot, "short-lived", 1)  # 1 µs
    with pytest.raises(RuntimeError, match=f"^{INVALID_PAT}$"):
        await connect_with_token(pyggy_server, expired, reconnect=False)

    # the tokens of a deactivated user do not log in; deleting the user drops them
    await root.update_user("bot", status=UserStatus.Inactive)
    with pytest.raises(RuntimeError):
        await connect_with_token(pyggy_server, hourly, reconnect=False)
    await root.update_user("bot", status=UserStatus.Active)
    await (await connect_with_token(pyggy_server, hourly)).ping()
    await root.delete_user("bot")
    with pytest.raises(RuntimeError, match=f"^{INVALID_PAT}$"):
        await connect_with_token(pyggy_server, hourly, reconnect=False)


async def _fixture(root: IggyClient) -> None:
    """Streams 0 "s0" (topics 0 "t0", 1 "t1") and 1 "s1" (topic 0 "u0"), a message in each
    topic, and a consumer group "g" on s0/t0."""
    await root.create_stream("s0")
    await root.create_stream("s1")
    await root.create_topic("s0", "t0", 1)
    await root.create_topic("s0", "t1", 1)
    await root.create_topic("s1", "u0", 1)
    for stream, topic in (("s0", "t0"), ("s0", "t1"), ("s1", "u0")):
        await root.send_messages(stream, topic, 0, [SendMessage(f"{stream}/{topic}")])
    await root.create_consumer_group("s0", "t0", "g")


def _everything(c: IggyClient) -> dict:
    """One call of each kind that needs a permission, on stream 0 / topic 0."""
    return {
        "get_stats": lambda: c.get_stats(),
        "snapshot": lambda: c.send_binary_request(11, b"\x02\x01\x04"),  # deflated "test"
        "get_users": lambda: c.get_users(),
        "get_user(root)": lambda: c.get_user(0),
        "create_user": lambda: c.create_user("mallory", "secret"),
        "update_user": lambda: c.update_user(0, username="mallory"),
        "update_permissions": lambda: c.update_permissions(0, None),
        "change_password(root)": lambda: c.change_password(0, "iggy", "hacked"),
        "delete_user": lambda: c.delete_user(0),
        "create_stream": lambda: c.create_stream("x"),
        "get_streams": lambda: c.get_streams(),
        "get_stream": lambda: c.get_stream("s0"),
        "update_stream": lambda: c.update_stream("s0", "x"),
        "purge_stream": lambda: c.purge_stream("s0"),
        "delete_stream": lambda: c.delete_stream("s0"),
        "create_topic": lambda: c.create_topic("s0", "x", 1),
        "get_topics": lambda: c.get_topics("s0"),
        "get_topic": lambda: c.get_topic("s0", "t0"),
        "update_topic": lambda: c.update_topic("s0", "t0", "x"),
        "purge_topic": lambda: c.purge_topic("s0", "t0"),
        "delete_topic": lambda: c.delete_topic("s0", "t0"),
        "create_partitions": lambda: c.create_partitions("s0", "t0", 1),
        "delete_partitions": lambda: c.delete_partitions("s0", "t0", 1),
        "send_messages": lambda: c.send_messages("s0", "t0", 0, [SendMessage("x")]),
        "poll_messages": lambda: poll(c, "s0", "t0"),
        "get_consumer_offset": lambda: get_consumer_offset(c, CONSUMER, "me", "s0", "t0", 0),
        "create_consumer_group": lambda: c.create_consumer_group("s0", "t0", "x"),
        "get_consumer_group": lambda: c.get_consumer_group("s0", "t0", "g"),
        "get_consumer_groups": lambda: c.get_consumer_groups("s0", "t0"),
        "join_consumer_group": lambda: c.join_consumer_group("s0", "t0", "g"),
        "delete_consumer_group": lambda: c.delete_consumer_group("s0", "t0", "g"),
    }


async def test_a_user_without_permissions_is_refused_everything_but_itself(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await _fixture(root)
    await root.create_user("nobody", "nobody-pw")
    nobody = await connect(pyggy_server, "nobody", "nobody-pw")

    got = await outcomes(_everything(nobody))
    assert got == {name: UNAUTHORIZED for name in got}

    # what needs no permission: ping, the option catalog, oneself, one's own password/tokens
    await nobody.ping()
    assert len(await nobody.describe_options("topic")) == 12
    assert (await nobody.get_user("nobody")).username == "nobody"
    await nobody.change_password("nobody", "nobody-pw", "nobody-pw2")
    token = await create_pat(nobody, "mine")
    assert [n for n, _ in await list_pats(nobody)] == ["mine"]
    await (await connect_with_token(pyggy_server, token)).ping()

    # nothing was changed by the refused calls
    assert [s.name for s in await root.get_streams()] == ["s0", "s1"]
    assert [t.name for t in await root.get_topics("s0")] == ["t0", "t1"]
    assert [u.username for u in await root.get_users()] == ["iggy", "nobody"]
    assert [g.name for g in await root.get_consumer_groups("s0", "t0")] == ["g"]
    assert (await root.get_topic("s0", "t0")).messages_count == 1
    assert (await root.get_user(0)).username == "iggy"


async def test_global_permissions(root: IggyClient, pyggy_server: PyggyServer) -> None:
    await _fixture(root)
    await root.create_user("reader", "reader-pw", permissions=Permissions(
        GlobalPermissions(read_streams=True, read_servers=True)))
    reader = await connect(pyggy_server, "reader", "reader-pw")
    got = await outcomes(_everything(reader))
    allowed = {"get_stats", "snapshot", "get_streams", "get_stream", "get_topics", "get_topic",
               "poll_messages", "get_consumer_offset", "create_consumer_group",
               "get_consumer_group", "get_consumer_groups", "join_consumer_group",
               "delete_consumer_group"}  # read_streams includes read_topics (and groups)
    assert got == {name: "ok" if name in allowed else UNAUTHORIZED for name in got}
    assert payloads_of(await poll(reader, "s1", "u0")) == [b"s1/u0"]

    await root.create_user("sender", "sender-pw", permissions=Permissions(
        GlobalPermissions(send_messages=True, poll_messages=True)))
    sender = await connect(pyggy_server, "sender", "sender-pw")
    got = await outcomes(_everything(sender))
    allowed = {"send_messages", "poll_messages", "get_consumer_offset"}
    assert got == {name: "ok" if name in allowed else UNAUTHORIZED for name in got}

    await root.create_user("admin", "admin-pw", permissions=Permissions(
        GlobalPermissions(manage_users=True)))
    admin = await connect(pyggy_server, "admin", "admin-pw")
    created = await admin.create_user("helper", "helper-pw")
    await admin.update_permissions("helper", Permissions(GlobalPermissions(read_users=True)))
    helper = await connect(pyggy_server, "helper", "helper-pw")
    assert [u.username for u in await helper.get_users()] == [
        "iggy", "reader", "sender", "admin", "helper"]
    with pytest.raises(RuntimeError, match=f"^{UNAUTHORIZED}$"):
        await helper.delete_user("reader")
    await admin.change_password("helper", "helper-pw", "helper-pw2")
    await admin.delete_user(created.id)
    with pytest.raises(RuntimeError, match=f"^{UNAUTHORIZED}$"):
        await admin.get_stats()
    with pytest.raises(RuntimeError, match=f"^{UNAUTHORIZED}$"):
        await admin.get_streams()

    await root.create_user("owner", "owner-pw", permissions=Permissions(
        GlobalPermissions(manage_streams=True)))
    owner = await connect(pyggy_server, "owner", "owner-pw")
    await owner.create_stream("s2")
    await owner.create_topic("s2", "v0", 2)
    await owner.send_messages("s2", "v0", 1, [SendMessage("mine")])
    assert payloads_of(await poll(owner, "s2", "v0", partition_id=1)) == [b"mine"]
    await owner.purge_stream("s0")
    await owner.delete_stream("s1")
    with pytest.raises(RuntimeError, match=f"^{UNAUTHORIZED}$"):
        await owner.get_users()


async def test_stream_and_topic_permissions(root: IggyClient, pyggy_server: PyggyServer) -> None:
    await _fixture(root)

    # sending to one stream only
    await root.create_user("producer", "producer-pw", permissions=Permissions(
        streams={0: StreamPermissions(send_messages=True)}))
    producer = await connect(pyggy_server, "producer", "producer-pw")
    sent = await producer.send_messages("s0", "t1", 0, [SendMessage("ok")])
    assert sent.confirmations[0].base_offset == 1
    got = await outcomes({
        "send to another stream": lambda: producer.send_messages(
            "s1", "u0", 0, [SendMessage("x")]),
        "poll its stream": lambda: poll(producer, "s0", "t1"),
        "get its stream": lambda: producer.get_stream("s0"),
        "list streams": lambda: producer.get_streams(),  # needs a global permission
    })
    assert got == {name: UNAUTHORIZED for name in got}

    # polling one topic only (and its offsets), not its consumer groups
    await root.create_user("poller", "poller-pw", permissions=Permissions(
        streams={0: StreamPermissions(topics={1: TopicPermissions(poll_messages=True)})}))
    poller = await connect(pyggy_server, "poller", "poller-pw")
    me = Consumer.Single("poller")
    assert payloads_of(await poll(poller, "s0", "t1", PollingStrategy.Next(), consumer=me,
                                  auto_commit=True)) == [b"s0/t1", b"ok"]
    assert await get_consumer_offset(poller, CONSUMER, "poller", "s0", "t1", 0) == (0, 1, 1)
    got = await outcomes({
        "poll another topic": lambda: poll(poller, "s0", "t0"),
        "send": lambda: poller.send_messages("s0", "t1", 0, [SendMessage("x")]),
        "create a group": lambda: poller.create_consumer_group("s0", "t1", "mine"),
        "read the topic": lambda: poller.get_topic("s0", "t1"),
    })
    assert got == {name: UNAUTHORIZED for name in got}

    # managing one topic: includes reading and sending, not the neighbours
    await root.create_user("keeper", "keeper-pw", permissions=Permissions(
        streams={0: StreamPermissions(topics={0: TopicPermissions(manage_topic=True)})}))
    keeper = await connect(pyggy_server, "keeper", "keeper-pw")
    await keeper.update_topic("s0", "t0", "t0", max_topic_size=None)
    await keeper.create_partitions("s0", "t0", 1)
    await keeper.send_messages("s0", "t0", 1, [SendMessage("kept")])
    assert (await keeper.get_topic("s0", "t0")).partitions_count == 2
    assert [g.name for g in await keeper.get_consumer_groups("s0", "t0")] == ["g"]
    await keeper.purge_topic("s0", "t0")
    got = await outcomes({
        "manage another topic": lambda: keeper.purge_topic("s0", "t1"),
        "create a topic": lambda: keeper.create_topic("s0", "new", 1),
        "delete the stream": lambda: keeper.delete_stream("s0"),
    })
    assert got == {name: UNAUTHORIZED for name in got}

    # managing one stream: its topics too, but not other streams nor new streams
    await root.create_user("steward", "steward-pw", permissions=Permissions(
        streams={1: StreamPermissions(manage_stream=True)}))
    steward = await connect(pyggy_server, "steward", "steward-pw")
    await steward.update_stream("s1", "s1-renamed")
    await steward.create_topic(1, "u1", 1)
    assert [t.name for t in (await steward.get_stream(1)).topics] == ["u0", "u1"]
    await steward.delete_topic(1, "u0")
    got = await outcomes({
        "create a stream": lambda: steward.create_stream("s9"),
        "read another stream": lambda: steward.get_stream("s0"),
        "send to another stream": lambda: steward.send_messages("s0", "t0", 0,
                                                                [SendMessage("x")]),
    })
    assert got == {name: UNAUTHORIZED for name in got}
    await steward.delete_stream(1)
    assert [s.name for s in await root.get_streams()] == ["s0"]


async def test_permission_changes_apply_to_open_sessions(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await _fixture(root)
    await root.create_user("late", "late-pw")
    late = await connect(pyggy_server, "late", "late-pw")
    with pytest.raises(RuntimeError, match=f"^{UNAUTHORIZED}$"):
        await late.get_streams()
    await root.update_permissions("late", Permissions(GlobalPermissions(read_streams=True)))
    assert [s.name for s in await late.get_streams()] == ["s0", "s1"]
    await root.update_permissions("late", None)
    with pytest.raises(RuntimeError, match=f"^{UNAUTHORIZED}$"):
        await late.get_streams()


def payloads_of(messages: list) -> list[bytes]:
    return [m.payload() for m in messages]
