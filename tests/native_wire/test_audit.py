"""The Iggy door's audit trail: logins, failed logins and refusals are logged (user, address,
door, operation) once per burst, never with the password (core/logins.py)."""

from __future__ import annotations

import socket
import struct

from pyggy.native_wire.codec import frames
from pyggy.native_wire.codec.codes import Code
from pyggy.native_wire.codec.primitives import encode_name

from pyggy.native_client import NativeClient, NativeError
from pyggy.testing import PyggyServer

SECRET = "n0t-the-Passw0rd"


def classic(sock: socket.socket, code: int, payload: bytes = b"") -> int:
    sock.sendall(frames.build_classic_request(code, payload))
    status, length = struct.unpack("<II", sock.recv(8, socket.MSG_WAITALL))
    if length:
        sock.recv(length, socket.MSG_WAITALL)
    return status


def test_logins_and_refusals_are_logged_once_per_burst(pyggy_server: PyggyServer) -> None:
    with socket.create_connection(("127.0.0.1", pyggy_server.tcp_port)) as s:
        for _ in range(3):
            assert classic(s, Code.GET_STREAMS) == 40  # not logged in
        assert classic(s, Code.LOGIN_USER, encode_name("iggy") + encode_name(SECRET)) == 42
    root = NativeClient(pyggy_server.tcp_address)
    root.login("iggy", "iggy")
    root.call(Code.CREATE_USER, encode_name("bob") + encode_name("bob-password") + b"\x01\x00")
    bob = NativeClient(pyggy_server.tcp_address)
    bob.login("bob", "bob-password")
    try:
        bob.create_stream("not-allowed")
        raise AssertionError("bob may not create streams")
    except NativeError as e:
        assert e.status == 41
    pyggy_server.wait_for_log("permission refused: user 'bob' from 127.0.0.1 (iggy door): "
                              "stream.create")
    logs = pyggy_server.logs
    anonymous = [line for line in logs if "permission refused: user anonymous from 127.0.0.1 "
                 "(iggy door): stream.list" in line]
    assert len(anonymous) == 1  # the burst of three is one line (its count comes later)
    assert any("login failed: user 'iggy' from 127.0.0.1 (iggy door, password): invalid "
               "credentials" in line for line in logs)
    assert any("login: user 'bob' from 127.0.0.1 (iggy door, password)" in line
               for line in logs)
    assert not any(SECRET in line or "bob-password" in line for line in logs)
