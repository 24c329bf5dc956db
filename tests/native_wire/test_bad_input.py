"""Bad input on the native port: every command fuzzed, truncated and oversized frames.

The server must answer with an error status or close that one connection — never crash, hang
or grow without bound — and a second client on the same server must keep being served.
"""

from __future__ import annotations

import os
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyggy.core.records.iggy_batch import build_batch
from pyggy.native_wire.codec import frames
from pyggy.native_wire.codec.codes import Code
from pyggy.native_wire.table import COMMANDS

from pyggy.native_client import NativeClient, NativeError
from pyggy.testing import PyggyServer

_U32 = struct.Struct("<I")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = PyggyServer(tmp_path_factory.mktemp("fuzz")).start()
    admin = NativeClient(srv.tcp_address)
    admin.login("iggy", "iggy")
    admin.create_stream("s")
    admin.create_topic("s", "t", 2)
    admin.send("s", "t", 0, build_batch([(1, b"keep me", b"", 1)]), 1)
    admin.close()
    yield srv
    assert srv.running, "the server died during the fuzz run"
    assert srv.stop() == 0


@pytest.fixture(scope="module")
def bystander(server: PyggyServer):
    """A second client that must stay served whatever the fuzzed client sends."""
    c = NativeClient(server.tcp_address, timeout=10)
    c.login("iggy", "iggy")
    yield c
    c.close()


def logged_in(server: PyggyServer) -> NativeClient:
    c = NativeClient(server.tcp_address, timeout=10)
    c.login("iggy", "iggy")
    return c


def exchange(c: NativeClient, raw: bytes) -> str:
    """Send raw bytes; return 'reply', 'closed' (EOF/reset). A timeout fails the test."""
    c.sock.sendall(raw)
    try:
        head = c._recv_exact(frames.HEADER_SIZE)
        command, size, _ = frames.parse_reply_header(bytes(head))
        if command == 8:
            c._recv_exact(size - frames.HEADER_SIZE)
            return "reply"
        return "closed"
    except (ConnectionError, OSError) as e:
        if isinstance(e, TimeoutError | socket.timeout):
            raise AssertionError("the server neither answered nor closed") from e
        return "closed"


def assert_served(bystander: NativeClient) -> None:
    """The bystander still gets answers (the fuzzed admin may legitimately delete data)."""
    bystander.call(Code.PING)
    assert len(bystander.call(Code.GET_STATS)) > 100


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


codes = st.sampled_from(sorted(COMMANDS))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(code=codes, body=st.binary(max_size=400))
def test_random_bodies_for_every_command(server, bystander, code: int, body: bytes) -> None:
    c = logged_in(server)
    try:
        frame = frames.build_request(code, body, client=c.client, request=c.request,
                                     session=c.session)
        assert exchange(c, frame) in ("reply", "closed")
    finally:
        c.close()
    assert_served(bystander)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(code=codes, data=st.data())
def test_truncated_valid_looking_bodies(server, bystander, code: int, data) -> None:
    """Bodies cut short at every kind of boundary get an error status, not a hang."""
    c = logged_in(server)
    try:
        full = (b"\x01\x04\x00\x00\x00\x00" * 4 + b"\x02\x01s\x02\x01t" + bytes(40))
        body = full[: data.draw(st.integers(0, len(full)))]
        frame = frames.build_request(code, body, client=c.client, request=c.request,
                                     session=c.session)
        assert exchange(c, frame) in ("reply", "closed")
    finally:
        c.close()
    assert_served(bystander)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(garbage=st.binary(min_size=1, max_size=600))
def test_garbage_streams_close_only_that_connection(server, bystander, garbage: bytes) -> None:
    s = socket.create_connection(("127.0.0.1", server.tcp_port), timeout=5)
    try:
        s.sendall(garbage)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(5)
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass
    finally:
        s.close()
    assert_served(bystander)


def test_oversized_frame_is_refused_before_its_body(server, bystander) -> None:
    c = logged_in(server)
    header = bytearray(frames.build_request(Code.SEND_MESSAGES, b"", client=c.client,
                                            request=c.request, session=c.session))
    _U32.pack_into(header, frames.SIZE_FIELD_OFFSET, 200 * 1024 * 1024)
    c.sock.sendall(header)  # declares 200 MiB; the server must not wait for (or buffer) it
    c.sock.settimeout(5)
    assert c.sock.recv(1) == b""
    c.close()
    classic = socket.create_connection(("127.0.0.1", server.tcp_port), timeout=5)
    classic.sendall(_U32.pack(0x7FFFFFFF) + _U32.pack(1))
    assert classic.recv(1) == b""
    classic.close()
    assert_served(bystander)


def test_unauthenticated_commands_other_than_ping_and_login_are_refused(server) -> None:
    c = NativeClient(server.tcp_address, timeout=5)
    c.call(Code.PING)  # allowed
    for code in (Code.GET_STREAMS, Code.GET_STATS, Code.POLL_MESSAGES, Code.GET_USERS):
        with pytest.raises(NativeError) as e:
            c.call(code, b"\x02\x01s")
        assert e.value.status == 40
    # A replicated operation without a session is a protocol violation: the connection ends.
    frame = frames.build_request(Code.CREATE_STREAM, b"\x01x", client=c.client, request=1)
    assert exchange(c, frame) == "closed"
    c.close()


def test_stale_session_and_internal_operations_are_refused(server) -> None:
    c = logged_in(server)
    c.session += 1000
    with pytest.raises(NativeError) as e:
        c.call(Code.CREATE_STREAM, b"\x01x")
    assert e.value.status == 14001
    c.session -= 1000
    with pytest.raises(NativeError):
        c.call(0, b"", operation=64)
    c.close()


def test_memory_stays_bounded_after_the_fuzzing(server, bystander) -> None:
    pid = server.pid
    assert pid and rss_kib(pid) < 400 * 1024, f"server RSS {rss_kib(pid)} KiB"
    assert os.path.exists(f"/proc/{pid}")
    assert_served(bystander)
    # Bad input is answered by the protocol's error paths, never by an unhandled exception.
    assert "internal error" not in server.format_logs(last=100000)
