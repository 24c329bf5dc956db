"""A client that joined a consumer group and went silent is released after 1.2 × interval;
a silent client without a membership keeps its connection (README, `[heartbeat]`)."""

from __future__ import annotations

import time

from pyggy.native_wire.codec.codes import Code
from pyggy.native_wire.codec.primitives import encode_identifier

from pyggy.native_client import NativeClient


def members(c: NativeClient) -> int:
    body = encode_identifier("s") + encode_identifier("t") + encode_identifier("g")
    reply = c.call(Code.GET_CONSUMER_GROUP, body)
    return int.from_bytes(reply[8:12], "little")


def test_silent_group_member_is_released(pyggy_server_factory) -> None:
    server = pyggy_server_factory(env={"IGGY_HEARTBEAT_INTERVAL": "1 s"})
    admin = NativeClient(server.tcp_address)
    admin.login("iggy", "iggy")
    admin.create_stream("s")
    admin.create_topic("s", "t", 2)
    ids = encode_identifier("s") + encode_identifier("t")
    admin.call(Code.CREATE_CONSUMER_GROUP, ids + b"\x01g")
    silent = NativeClient(server.tcp_address)
    silent.login("iggy", "iggy")
    silent.call(Code.JOIN_CONSUMER_GROUP, ids + encode_identifier("g"))
    idle = NativeClient(server.tcp_address)  # logged in, in no group, silent as well
    idle.login("iggy", "iggy")
    assert members(admin) == 1
    deadline = time.monotonic() + 10
    while members(admin) and time.monotonic() < deadline:  # admin keeps talking, silent not
        time.sleep(0.1)
    assert members(admin) == 0
    assert "released stale client" in server.format_logs()
    time.sleep(1.5)  # more than 1.2 × interval of silence for `idle` too, reaped every 0.5 s
    idle.call(Code.PING)  # still connected and served
    assert server.format_logs().count("released stale client") == 1
    admin.close()
    silent.close()
    idle.close()
