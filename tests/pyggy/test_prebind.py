"""pyggy/prebind.py: the doors' sockets opened before the server is imported (real sockets on
loopback; that a listener serves on them: tests/transport/test_connection.py)."""

from __future__ import annotations

import socket

import pytest

from pyggy import prebind


@pytest.fixture(autouse=True)
def _closed():
    yield
    prebind.close_all()


def test_a_literal_address_is_bound_and_listening() -> None:
    port = prebind.listen("tcp", "127.0.0.1", 0)
    assert port is not None
    with socket.create_connection(("127.0.0.1", port), timeout=5):  # the kernel accepts it
        pass
    sock = prebind.take("tcp", "127.0.0.1", 0)
    assert sock is not None and sock.getsockname()[1] == port
    assert prebind.take("tcp", "127.0.0.1", 0) is None  # taken once
    sock.close()


def test_ipv6_is_bound_v6_only() -> None:
    port = prebind.listen("kafka", "::1", 0)
    assert port is not None
    sock = prebind.take("kafka", "::1", 0)
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1  # as asyncio binds
    sock.close()


def test_a_socket_is_only_taken_for_the_address_it_was_opened_for() -> None:
    port = prebind.listen("tcp", "127.0.0.1", 0)
    assert port is not None
    assert prebind.take("kafka", "127.0.0.1", 0) is None  # another door
    assert prebind.take("tcp", "127.0.0.1", port) is None  # another configured address
    assert prebind.take("tcp", "0.0.0.0", 0) is None


def test_names_and_failed_binds_are_left_to_the_listener() -> None:
    assert prebind.listen("tcp", "localhost", 0) is None  # may resolve to several addresses
    assert prebind.listen("tcp", "", 0) is None  # every interface: the event loop's rule
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        # the listener binds again and reports "address in use" as before
        assert prebind.listen("tcp", "127.0.0.1", busy.getsockname()[1]) is None
    assert prebind.take("tcp", "localhost", 0) is None


def test_close_all_closes_what_no_listener_took() -> None:
    port = prebind.listen("tcp", "127.0.0.1", 0)
    assert port is not None
    prebind.close_all()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
