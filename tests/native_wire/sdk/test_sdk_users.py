"""User management with the apache-iggy 0.9.0 SDK: create, get, list, update, permissions,
passwords, delete — and what logging in as those users then allows."""

from __future__ import annotations

import pytest
from apache_iggy import (
    GlobalPermissions,
    IggyClient,
    Permissions,
    StreamPermissions,
    TopicPermissions,
    UserStatus,
)
from sdk_support import (
    DISCONNECTED,
    INVALID_CREDENTIALS,
    UNAUTHENTICATED,
    connect,
    connect_anonymous,
    now_us,
)

from pyggy.testing import PyggyServer

pytestmark = pytest.mark.asyncio

OPERATOR = Permissions(
    GlobalPermissions(read_servers=True, read_users=True, read_streams=True),
    {
        0: StreamPermissions(manage_topics=True, send_messages=True,
                             topics={1: TopicPermissions(poll_messages=True),
                                     2: TopicPermissions(manage_topic=True, read_topic=True)}),
        7: StreamPermissions(read_stream=True),
    },
)


async def test_an_admin_manages_users_through_their_life_cycle(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    # The root user exists from the start, with id 0.
    [iggy] = await root.get_users()
    assert (iggy.id, iggy.username, iggy.status) == (0, "iggy", UserStatus.Active)
    root_details = await root.get_user(0)
    assert root_details.username == "iggy"

    before = now_us()
    alice = await root.create_user("alice", "alice-pw", UserStatus.Active, OPERATOR)
    assert (alice.id, alice.username, alice.status) == (1, "alice", UserStatus.Active)
    assert before <= alice.created_at <= now_us()
    assert alice.permissions == OPERATOR
    bob = await root.create_user("bob", "bob-pw")  # defaults: active, no permissions
    assert (bob.id, bob.status, bob.permissions) == (2, UserStatus.Active, None)

    # get by id and by name agree, and carry the permissions in full
    by_id, by_name = await root.get_user(1), await root.get_user("alice")
    for got in (by_id, by_name):
        assert (got.id, got.username, got.status, got.created_at) == (
            1, "alice", UserStatus.Active, alice.created_at)
        assert got.permissions == OPERATOR
    streams = by_id.permissions.streams
    assert sorted(streams) == [0, 7]
    assert streams[0].manage_topics and streams[0].send_messages
    assert not streams[0].manage_stream
    assert streams[0].topics[1] == TopicPermissions(poll_messages=True)
    assert streams[7].topics is None
    assert by_id.permissions.global_permissions.read_servers
    assert not by_id.permissions.global_permissions.manage_users
    assert await root.get_user(42) is None
    assert await root.get_user("ghost") is None

    users = await root.get_users()
    assert [(u.id, u.username, u.status) for u in users] == [
        (0, "iggy", UserStatus.Active), (1, "alice", UserStatus.Active),
        (2, "bob", UserStatus.Active)]
    assert users[1].created_at == alice.created_at

    # rename and deactivate; each field of the update is optional
    await root.update_user("alice", username="alicia")
    await root.update_user(1, status=UserStatus.Inactive)
    alicia = await root.get_user(1)
    assert (alicia.username, alicia.status) == ("alicia", UserStatus.Inactive)
    assert alicia.permissions == OPERATOR  # untouched by update_user
    assert await root.get_user("alice") is None
    await root.update_user("alicia", username="alice", status=UserStatus.Active)
    assert (await root.get_user(1)).username == "alice"

    # permissions are replaced as a whole, and can be removed
    reader = Permissions(GlobalPermissions(read_streams=True))
    await root.update_permissions("bob", reader)
    assert (await root.get_user("bob")).permissions == reader
    await root.update_permissions(2, None)
    assert (await root.get_user("bob")).permissions is None

    # an admin sets a new password; the user logs in with it
    await root.change_password("bob", "bob-pw", "bob-pw-2")
    bob_client = await connect_anonymous(pyggy_server)
    with pytest.raises(RuntimeError, match=INVALID_CREDENTIALS):
        await bob_client.login_user("bob", "bob-pw")
    bob_client = await connect_anonymous(pyggy_server)
    await bob_client.login_user("bob", "bob-pw-2")
    # a user changes their own password, which requires the current one
    with pytest.raises(RuntimeError, match=INVALID_CREDENTIALS):
        await bob_client.change_password("bob", "not-the-password", "bob-pw-3")
    await bob_client.change_password(2, "bob-pw-2", "bob-pw-3")
    await connect(pyggy_server, "bob", "bob-pw-3")

    # delete by name and by id; ids are recycled (0-based slab, as in Iggy 0.9)
    await root.delete_user("alice")
    assert await root.get_user(1) is None
    assert [u.username for u in await root.get_users()] == ["iggy", "bob"]
    carol = await root.create_user("carol", "carol-pw")
    assert carol.id == 1
    await root.delete_user(2)
    assert [(u.id, u.username) for u in await root.get_users()] == [(0, "iggy"), (1, "carol")]


async def test_user_management_errors(root: IggyClient) -> None:
    await root.create_user("alice", "alice-pw")
    await root.create_user("bob", "bob-pw")

    with pytest.raises(RuntimeError, match="^User already exists$"):
        await root.create_user("alice", "another-pw")
    with pytest.raises(RuntimeError, match="^User already exists$"):
        await root.update_user("bob", username="alice")
    with pytest.raises(RuntimeError, match="^Cannot delete user with ID: 0$"):
        await root.delete_user(0)
    with pytest.raises(RuntimeError, match="^Cannot change permissions for user with ID: 0$"):
        await root.update_permissions("iggy", Permissions(GlobalPermissions()))
    with pytest.raises(RuntimeError, match="not found"):
        await root.delete_user("ghost")
    with pytest.raises(RuntimeError, match="not found"):
        await root.update_user(42, username="ghost")
    with pytest.raises(RuntimeError, match="not found"):
        await root.update_permissions("ghost", None)
    with pytest.raises(RuntimeError, match="not found"):
        await root.change_password("ghost", "a-password", "b-password")
    # there are no user option keys yet: any key is refused
    with pytest.raises(RuntimeError, match="^Unsupported option key"):
        await root.update_user("bob", options={"team": "blue"})

    # nothing of the above changed anything
    assert [(u.id, u.username) for u in await root.get_users()] == [
        (0, "iggy"), (1, "alice"), (2, "bob")]


async def test_a_password_verified_earlier_still_guards_the_login(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    """The server remembers passwords it verified (README, "Logins never stall the server"):
    a wrong one is still refused after the right one, and a changed one is not remembered."""
    await root.create_user("fay", "fay-pw")
    for _ in range(2):  # the second login is answered from the verified-password cache
        await connect(pyggy_server, "fay", "fay-pw")
    for wrong in ("fay-pW", "fay-pw "):
        with pytest.raises(RuntimeError, match=INVALID_CREDENTIALS):
            await (await connect_anonymous(pyggy_server)).login_user("fay", wrong)
    await root.change_password("fay", "fay-pw", "fay-pw-2")
    with pytest.raises(RuntimeError, match=INVALID_CREDENTIALS):
        await (await connect_anonymous(pyggy_server)).login_user("fay", "fay-pw")
    await connect(pyggy_server, "fay", "fay-pw-2")


async def test_an_inactive_user_cannot_log_in_until_activated(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_user("dora", "dora-pw", UserStatus.Inactive)
    client = await connect_anonymous(pyggy_server)
    # The server evicts the login (reason 11, UserInactive); the SDK maps that to
    # Unauthenticated and, with its reconnection policy off, reports the dropped session.
    with pytest.raises(RuntimeError, match="^(Disconnected|Unauthenticated)$"):
        await connect(pyggy_server, "dora", "dora-pw", reconnect=False)
    pyggy_server.wait_for_log("login failed: user 'dora'", timeout=5)

    await root.update_user("dora", status=UserStatus.Active)
    await client.login_user("dora", "dora-pw")
    assert (await client.get_user("dora")).status == UserStatus.Active


async def test_a_deactivated_user_loses_its_open_sessions(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    """As the Kafka door closes a deactivated user's connections, the Iggy door ends its
    sessions: being logged in does not outlast the account."""
    await root.create_user("ivy", "ivy-pw", permissions=Permissions(
        GlobalPermissions(read_streams=True)))
    ivy = await connect_anonymous(pyggy_server, reconnect=False)
    await ivy.login_user("ivy", "ivy-pw")
    await ivy.get_streams()
    await root.update_user("ivy", status=UserStatus.Inactive)
    with pytest.raises(RuntimeError, match=f"^({DISCONNECTED}|{UNAUTHENTICATED})$"):
        await ivy.get_streams()


async def test_a_deleted_user_loses_its_open_sessions(
        root: IggyClient, pyggy_server: PyggyServer) -> None:
    await root.create_stream("s")
    await root.create_user("erin", "erin-pw", permissions=Permissions(
        GlobalPermissions(read_streams=True)))
    # The SDK replays a manual login's credentials when it re-establishes a session; with its
    # reconnection off it reports a status-40 reply as "Disconnected" instead.
    erin = await connect_anonymous(pyggy_server, reconnect=False)
    await erin.login_user("erin", "erin-pw")
    assert [s.name for s in await erin.get_streams()] == ["s"]

    await root.delete_user("erin")
    with pytest.raises(RuntimeError, match=f"^{DISCONNECTED}$"):
        await erin.get_streams()
    # ... and a new user who gets the recycled id does not lend it its identity
    await root.create_user("frank", "frank-pw", permissions=Permissions(
        GlobalPermissions(manage_users=True)))
    assert (await root.get_user("frank")).id == 1
    with pytest.raises(RuntimeError, match=f"^({DISCONNECTED}|{UNAUTHENTICATED})$"):
        await erin.get_users()

    # With reconnection on, the SDK logs in again with the remembered password: refused.
    await root.create_user("gina", "gina-pw")
    gina = await connect_anonymous(pyggy_server)
    await gina.login_user("gina", "gina-pw")
    await root.delete_user("gina")
    with pytest.raises(RuntimeError, match=f"^{INVALID_CREDENTIALS}$"):
        await gina.get_user("gina")
