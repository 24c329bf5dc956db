"""The cluster poll routing commands (native_wire/handlers/routing.py) on one server, with raw
requests: a route names this node and the caller's session; a data connection attached to it
shares the coordinator's consumer-group membership; a session that is not there, or another
user's, is refused. (The 0.9 SDK driving them against a cluster: tests/cluster/
test_cluster_iggy_sdk.py.)"""

from __future__ import annotations

import struct

import pytest
from pyggy.core.errors import ErrorCode
from pyggy.core.records.iggy_batch import build_batch
from pyggy.native_wire.codec.codes import Code
from pyggy.native_wire.codec.primitives import (
    encode_consumer,
    encode_identifier,
    encode_optional_partition,
    encode_polling_strategy,
)

from pyggy.native_client import NativeClient, NativeError
from pyggy.testing import PyggyServer

GROUP = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = PyggyServer(tmp_path_factory.mktemp("routing")).start()
    admin = NativeClient(srv.tcp_address)
    admin.login("iggy", "iggy")
    admin.create_stream("s")
    admin.create_topic("s", "t", 1)
    admin.send("s", "t", 0, build_batch([(1, b"m%d" % i, b"", 1) for i in range(3)]), 3)
    admin.create_group("s", "t", "g")
    admin.close()
    yield srv
    assert srv.stop() == 0


def client(server: PyggyServer) -> NativeClient:
    c = NativeClient(server.tcp_address, timeout=10)
    c.login("iggy", "iggy")
    return c


def poll_body(partition: int | None = 0) -> bytes:
    return (encode_consumer(GROUP, "g") + encode_identifier("s") + encode_identifier("t")
            + encode_optional_partition(partition) + encode_polling_strategy(5, 0)
            + struct.pack("<IB", 10, 1))


def test_a_route_names_this_node_and_an_attached_connection_polls_as_the_member(
        server: PyggyServer) -> None:
    coordinator, data = client(server), client(server)
    try:
        coordinator.join_group("s", "t", "g")
        route = bytes(coordinator.call(Code.GET_POLL_ROUTING, poll_body()))
        assert int.from_bytes(route[:16], "little") == coordinator.client
        session, _watermark = struct.unpack_from("<QQ", route, 16)
        assert session == coordinator.session
        (name_len,) = struct.unpack_from("<I", route, 32)
        ip_at = 36 + name_len
        (ip_len,) = struct.unpack_from("<I", route, ip_at)
        assert route[ip_at + 4:ip_at + 4 + ip_len] == b"127.0.0.1"
        tcp, _, _, _, role, status = struct.unpack_from("<HHHHBB", route, ip_at + 4 + ip_len)
        assert (tcp, role, status) == (server.tcp_port, 0, 0)
        assert len(route) == ip_at + 4 + ip_len + 10
        with pytest.raises(NativeError) as not_owned:  # not a member on its own
            data.call(Code.POLL_MESSAGES_ON_PRIMARY, poll_body())
        assert not_owned.value.status == ErrorCode.CONSUMER_GROUP_PARTITION_NOT_OWNED
        assert bytes(data.call(Code.ATTACH_CONSUMER_SESSION, route[:32])) == b""
        reply = data.call(Code.POLL_MESSAGES_ON_PRIMARY, poll_body())
        assert struct.unpack_from("<I", reply, 12)[0] == 3
        reply = data.call(Code.POLL_MESSAGES_ON_PRIMARY, poll_body())  # auto-committed
        assert struct.unpack_from("<I", reply, 12)[0] == 0
    finally:
        coordinator.close()
        data.close()


def test_an_unknown_or_foreign_session_is_not_attached(server: PyggyServer) -> None:
    coordinator, data = client(server), client(server)
    try:
        route = bytes(coordinator.call(Code.GET_POLL_ROUTING, poll_body()))
        wrong = route[:16] + struct.pack("<Q", coordinator.session + 1) + route[24:32]
        with pytest.raises(NativeError) as gone:
            data.call(Code.ATTACH_CONSUMER_SESSION, wrong)
        assert gone.value.status == ErrorCode.TRANSIENT_NOT_ACCEPTED  # the SDK routes again
        for bad in (route[:31], route[:32] + b"\x00"):
            with pytest.raises(NativeError) as malformed:
                data.call(Code.ATTACH_CONSUMER_SESSION, bad)
            assert malformed.value.status == ErrorCode.INVALID_FORMAT
        coordinator.call(Code.CREATE_USER, _create_user("ann", "secret-pw"))
        other = NativeClient(server.tcp_address, timeout=10)
        other.login("ann", "secret-pw")
        try:
            with pytest.raises(NativeError) as foreign:
                other.call(Code.ATTACH_CONSUMER_SESSION, route[:32])
            assert foreign.value.status == ErrorCode.UNAUTHORIZED
        finally:
            other.close()
    finally:
        coordinator.close()
        data.close()


def _create_user(name: str, password: str) -> bytes:
    """CREATE_USER: name, password, status 1 (active), no permissions."""
    return (bytes([len(name)]) + name.encode() + bytes([len(password)]) + password.encode()
            + b"\x01\x00")
