"""The shared transport with a toy door (length-prefixed echo) over real loopback sockets, on
uvloop as the server runs: ordering, limits, timeouts, flow control, errors, memory on close.

The toy door understands a few bodies: `login` authenticates, `bad` is bad input, `boom` is a
bug (an unexpected exception), `bye` is answered and then closes, `wait` is answered only when
the test releases `Echo.gate`, `stream` is answered by a `Stream` of 16 pieces of 64 KiB (byte i
in piece i) and `stream-fail` by one that raises at its third piece; anything else is echoed
back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable

import pytest
import uvloop
from pyggy.transport import Connection, Limits, Listener, Stream

_SIZE = struct.Struct(">I")


class BadFrame(Exception):
    pass


class Echo:
    bad_input = (BadFrame,)
    gate: asyncio.Event | None = None
    opened_count = closed_count = 0

    def __init__(self, requires_auth: bool = False) -> None:
        self.requires_auth = requires_auth
        self.authenticated = False
        self.conn: Connection | None = None

    def frame_length(self, view: memoryview) -> int:
        n = self.declared_length(view)
        if n > 8 * 1024 * 1024:
            raise BadFrame(f"frame of {n} bytes")
        return n if n and len(view) >= n else 0

    def declared_length(self, view: memoryview) -> int:
        return _SIZE.unpack_from(view, 0)[0] + 4 if len(view) >= 4 else 0

    async def handle(self, frame: bytearray):
        body = bytes(frame[4:])
        if body == b"login":
            self.authenticated = True
        elif body == b"bad":
            raise BadFrame("bad body")
        elif body == b"boom":
            raise RuntimeError("a bug")
        elif body == b"wait":
            await Echo.gate.wait()
        elif body.startswith(b"stream"):
            return Stream(_pieces(body == b"stream-fail")), False
        return [bytes(frame)], body == b"bye"

    def opened(self, conn: Connection) -> None:
        self.conn = conn
        Echo.opened_count += 1

    def closed(self) -> None:
        Echo.closed_count += 1

    def is_authenticated(self) -> bool:
        return self.authenticated


PIECE, PIECES = 64 * 1024, 16


async def _pieces(fail: bool):
    yield [_SIZE.pack(PIECE * PIECES)]
    for i in range(PIECES):
        if fail and i == 2:
            raise OSError("piece 2 cannot be made")
        yield [bytes([i]) * PIECE]


def msg(body: bytes) -> bytes:
    return _SIZE.pack(len(body)) + body


def run(test: Callable[[], Awaitable[None]]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(test(), 60))


async def serve(limits: Limits, requires_auth: bool = False, tls=None) -> tuple[Listener, int]:
    Echo.gate = asyncio.Event()
    listener = Listener("toy", lambda: Echo(requires_auth), limits, tls)
    server = await listener.start("127.0.0.1", 0)
    return listener, server.sockets[0].getsockname()[1]


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, **kwargs) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port, **kwargs))

    async def call(self, body: bytes) -> bytes:
        self.writer.write(msg(body))
        return await self.reply()

    async def reply(self) -> bytes:
        n = _SIZE.unpack(await self.reader.readexactly(4))[0]
        return await self.reader.readexactly(n)

    async def closed_within(self, seconds: float) -> float:
        """Seconds until the server closed this connection (EOF or reset); fails after
        `seconds`."""
        start = time.monotonic()
        try:
            while await asyncio.wait_for(self.reader.read(65536), seconds):
                pass
        except (ConnectionError, OSError):
            pass
        return time.monotonic() - start

    async def still_open(self, seconds: float) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(1), seconds)
        except TimeoutError:
            return True
        except (ConnectionError, OSError):
            return False
        return bool(data)

    def close(self) -> None:
        self.writer.close()


async def settle(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def main() -> None:
        listener, port = await serve(Limits())
        c = await Client.open(port)
        bodies = [f"request {i}".encode() * (1 + i % 7) for i in range(300)]
        c.writer.write(b"".join(msg(b) for b in bodies) + msg(b"x" * 200_000))
        assert [await c.reply() for _ in bodies] == bodies
        assert await c.reply() == b"x" * 200_000
        c.close()
        listener.close()
    run(main)


def test_connections_beyond_max_are_closed_at_once_with_one_log_line(caplog) -> None:
    async def main() -> None:
        listener, port = await serve(Limits(max_connections=3))
        kept = [await Client.open(port) for _ in range(3)]
        for c in kept:
            assert await c.call(b"hi") == b"hi"
        refused = [await Client.open(port) for _ in range(10)]
        for c in refused:
            assert await c.closed_within(5) < 5
        lines = [r for r in caplog.records if "max_connections (3) reached" in r.getMessage()]
        assert len(lines) == 1, "one log line per burst, not one per refusal"
        assert Echo.opened_count == 3
        kept.pop().close()  # a slot frees up
        await settle(lambda: len(listener.connections) == 2)
        newcomer = await Client.open(port)
        assert await newcomer.call(b"in") == b"in"
        listener.close()
    Echo.opened_count = 0
    with caplog.at_level(logging.WARNING, logger="pyggy.transport"):
        run(main)


def test_a_half_sent_frame_is_closed_after_frame_read_timeout() -> None:
    async def main() -> None:
        listener, port = await serve(Limits(frame_read_timeout=0.5))
        bystander, slow, trickle, quiet = [await Client.open(port) for _ in range(4)]
        slow.writer.write(msg(b"never finished")[:6])
        waited = await slow.closed_within(10)
        assert 0.4 < waited < 5
        frame = msg(b"t" * 30)  # 34 bytes at one per 0.1 s: each read in time, the frame not
        for i in range(len(frame)):
            trickle.writer.write(frame[i:i + 1])
            await asyncio.sleep(0.1)
            if trickle.reader.at_eof():
                break
        assert trickle.reader.at_eof() or not await trickle.still_open(2)
        assert await quiet.still_open(1.0)  # no frame started: no frame timeout
        assert await quiet.call(b"ok") == b"ok"
        assert await bystander.call(b"fine") == b"fine"
        listener.close()
    run(main)


def test_idle_connections_are_closed_after_idle_timeout() -> None:
    async def main() -> None:
        listener, port = await serve(Limits(idle_timeout=0.5))
        idle, busy = await Client.open(port), await Client.open(port)
        start = time.monotonic()
        while time.monotonic() - start < 1.5:
            assert await busy.call(b"ping") == b"ping"
            await asyncio.sleep(0.15)
        assert idle.reader.at_eof() or not await idle.still_open(1)
        waiting = await Client.open(port)
        waiting.writer.write(msg(b"wait"))  # a request in progress is not idleness
        assert await waiting.still_open(1.2)
        Echo.gate.set()
        assert await waiting.reply() == b"wait"
        listener.close()
    run(main)


def test_connections_that_do_not_authenticate_are_closed_after_auth_timeout() -> None:
    async def main() -> None:
        listener, port = await serve(Limits(auth_timeout=0.5), requires_auth=True)
        anonymous, user = await Client.open(port), await Client.open(port)
        assert await user.call(b"login") == b"login"
        assert await anonymous.call(b"ping") == b"ping"
        assert await anonymous.closed_within(5) < 5
        assert await user.still_open(1.0)
        listener.close()
        open_door, _ = await serve(Limits(auth_timeout=0.3), requires_auth=False)
        port = open_door.server.sockets[0].getsockname()[1]
        anonymous = await Client.open(port)
        assert await anonymous.still_open(1.0)  # the door does not require authentication
        open_door.close()
    run(main)


def test_bad_input_and_bugs_close_only_their_connection(caplog) -> None:
    async def main() -> None:
        listener, port = await serve(Limits())
        bystander, bad, buggy, huge, bye = [await Client.open(port) for _ in range(5)]
        bad.writer.write(msg(b"bad"))
        buggy.writer.write(msg(b"boom"))
        huge.writer.write(_SIZE.pack(1 << 30))
        for c in (bad, buggy, huge):
            assert await c.closed_within(5) < 5
        assert await bye.call(b"bye") == b"bye"
        assert await bye.closed_within(5) < 5
        assert await bystander.call(b"still here") == b"still here"
        await settle(lambda: len(listener.connections) == 1)
        listener.close()
    with caplog.at_level(logging.INFO, logger="pyggy.transport"):
        run(main)
    text = caplog.text
    assert "bad frame: bad body" in text and "internal error" in text and "frame of" in text


def test_reading_pauses_while_requests_queue_and_no_timeout_blames_the_peer() -> None:
    async def main() -> None:
        limits = Limits(max_queued_bytes=64 * 1024, frame_read_timeout=0.3)
        listener, port = await serve(limits)
        c = await Client.open(port)
        half = msg(b"never completed")[:9]  # read while paused, or after: timed out either way
        c.writer.write(msg(b"wait") + b"".join(msg(b"z" * 1000) for _ in range(2000)) + half)
        (conn,) = listener.connections
        await settle(lambda: conn.reading_paused)
        assert conn.queued <= 64 * 1024 + limits.read_buffer  # stops at the mark, plus one read
        await asyncio.sleep(1.0)  # longer than frame_read_timeout while we do not read
        assert not conn.closed
        Echo.gate.set()
        assert await c.reply() == b"wait"
        for _ in range(2000):
            assert await c.reply() == b"z" * 1000
        assert await c.closed_within(5) < 5  # the half frame, once reading resumed
        listener.close()
    run(main)


def test_memory_is_returned_when_a_connection_closes() -> None:
    async def main() -> None:
        listener, port = await serve(Limits())
        c = await Client.open(port)
        assert await c.call(b"a" * 500_000) == b"a" * 500_000
        (conn,) = listener.connections
        assert conn.assembler.allocated <= 4096  # the large frame's buffer went with it
        c.close()
        await settle(lambda: not listener.connections)
        assert conn.assembler.allocated == 0 and not conn.frames
        await settle(lambda: conn.worker.done())
        listener.close()
    Echo.closed_count = 0
    run(main)
    assert Echo.closed_count == 1


@pytest.mark.parametrize("loop_factory", [uvloop.new_event_loop, asyncio.new_event_loop],
                         ids=["uvloop", "asyncio"])
def test_both_event_loops_serve_the_same(loop_factory) -> None:
    async def main() -> None:
        listener, port = await serve(Limits(frame_read_timeout=5, idle_timeout=5))
        c = await Client.open(port)
        for size in (0, 1, 4095, 4096, 70_000, 1_000_000):
            assert await c.call(b"q" * size) == b"q" * size
        listener.close()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(asyncio.wait_for(main(), 60))


def test_tls_connections_expose_the_peer_certificate(tmp_path) -> None:
    """With a context that asks for client certificates (`client_auth`), a door sees the
    peer's verified certificate and the name it carries on its connection."""
    import ssl

    from certs import CertAuthority
    from pyggy.transport import tls

    tls.generate_self_signed(tmp_path / "server.pem", tmp_path / "server.key", ["127.0.0.1"])
    ca = CertAuthority.create(tmp_path / "ca")
    client_chain, client_key = ca.issue(tmp_path / "ca", ["client.example"])
    context = tls.server_context(tmp_path / "server.pem", tmp_path / "server.key",
                                 ca.cert_file, "requested")
    assert context.verify_mode == ssl.CERT_OPTIONAL

    async def main() -> None:
        listener, port = await serve(Limits(), tls=context)
        client_context = ssl.create_default_context(cafile=tmp_path / "server.pem")
        client_context.load_cert_chain(client_chain, client_key)
        c = await Client.open(port, ssl=client_context)
        assert await c.call(b"who") == b"who"
        (conn,) = listener.connections
        assert conn.tls
        assert conn.peer_certificate(binary=False)["subject"] == \
            ((("commonName", "client.example"),),)
        assert conn.peer_certificate() == ssl.PEM_cert_to_DER_cert(
            client_chain.read_text().split("-----END CERTIFICATE-----")[0]
            + "-----END CERTIFICATE-----\n")
        assert conn.certificate_name() == "client.example"
        listener.close()
        plain, plain_port = await serve(Limits())
        p = await Client.open(plain_port)
        assert await p.call(b"x") == b"x"
        (conn,) = plain.connections
        assert not conn.tls and conn.peer_certificate() is None
        assert conn.certificate_name() is None
        plain.close()
    run(main)


def test_common_name_of_a_verified_certificate() -> None:
    from pyggy.transport.tls import common_name

    assert common_name(None) is None and common_name({}) is None
    assert common_name({"subject": ((("organizationName", "acme"),),)}) is None
    assert common_name({"subject": ((("commonName", "a"),), (("commonName", "b"),))}) == "b"


def test_client_auth_needs_a_readable_ca_file(tmp_path) -> None:
    import pytest
    from pyggy.transport import tls

    tls.generate_self_signed(tmp_path / "s.pem", tmp_path / "s.key", ["127.0.0.1"])
    with pytest.raises(tls.TlsError, match="not found"):
        tls.server_context(tmp_path / "s.pem", tmp_path / "s.key", tmp_path / "none.pem",
                           "required")
    (tmp_path / "bad.pem").write_text("not a CA\n")
    with pytest.raises(tls.TlsError, match="client CA file"):
        tls.server_context(tmp_path / "s.pem", tmp_path / "s.key", tmp_path / "bad.pem",
                           "required")
    with pytest.raises(tls.TlsError, match="client_auth must be"):
        tls.server_context(tmp_path / "s.pem", tmp_path / "s.key", "", "sometimes")


def test_a_listener_serves_on_the_socket_opened_before_it_started() -> None:
    """pyggy/prebind.py: the socket pyggy-server opened for a door is the one its listener
    serves on; a connection the kernel accepted before the listener started is answered."""
    from pyggy import prebind

    port = prebind.listen("toy", "127.0.0.1", 0)
    assert port is not None
    early = socket.create_connection(("127.0.0.1", port), timeout=10)  # in the backlog
    early.sendall(msg(b"hello"))

    async def main() -> None:
        listener, bound = await serve(Limits())  # configured as 127.0.0.1:0, as prebound
        assert bound == port
        try:
            reply = await asyncio.get_running_loop().run_in_executor(None, early.recv, 64)
            assert reply == msg(b"hello")
            assert prebind.take("toy", "127.0.0.1", 0) is None  # the listener took it
        finally:
            listener.close()
            await listener.wait_closed()
            early.close()

    run(main)


def test_a_streamed_reply_is_written_whole_and_in_order() -> None:
    async def main() -> None:
        listener, port = await serve(Limits())
        c = await Client.open(port)
        c.writer.write(msg(b"stream") + msg(b"after"))  # pipelined: the echo waits its turn
        assert await c.reply() == b"".join(bytes([i]) * PIECE for i in range(PIECES))
        assert await c.reply() == b"after"
        c.close()
        listener.close()
    run(main)


def test_a_stream_that_fails_closes_after_what_it_wrote(caplog) -> None:
    async def main() -> None:
        listener, port = await serve(Limits())
        bystander, c = await Client.open(port), await Client.open(port)
        c.writer.write(msg(b"stream-fail") + msg(b"never answered"))
        assert await c.reader.readexactly(4) == _SIZE.pack(PIECE * PIECES)
        assert await c.reader.readexactly(2 * PIECE) == bytes([0]) * PIECE + bytes([1]) * PIECE
        assert await c.reader.read() == b""  # closed: nothing after the pieces made
        assert await bystander.call(b"fine") == b"fine"
        listener.close()
    with caplog.at_level(logging.WARNING, logger="pyggy.transport"):
        run(main)
    assert any("reply cut short: piece 2 cannot be made" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("loop_factory", [uvloop.new_event_loop, asyncio.new_event_loop],
                         ids=["uvloop", "asyncio"])
def test_a_detached_connection_lives_on_in_another_listener(loop_factory) -> None:
    """What a shard handoff does (pyggy/shards/handoff.py), within one process: after a
    reply, at a request boundary, the socket is duplicated and the connection detached (no
    FIN: the client keeps its connection); a second listener adopts the duplicate with the
    bytes of the half-received next request, and serves the client from then on."""
    async def main() -> None:
        first, port = await serve(Limits())
        second = Listener("toy2", Echo, Limits(max_connections=0))  # adopted: not refused
        second.loop = asyncio.get_running_loop()
        c = await Client.open(port)
        assert await c.call(b"one") == b"one"
        (conn,) = first.connections
        moved: list[tuple[int, bytes]] = []

        def move() -> None:
            assert conn.idle()
            transport = conn.transport
            assert transport is not None
            moved.append((os.dup(transport.get_extra_info("socket").fileno()), conn.unread()))
            conn.detach()

        conn.after_reply = move
        c.writer.write(msg(b"two") + msg(b"three")[:5])  # one segment: read at once
        assert await c.reply() == b"two"
        await settle(lambda: not first.connections)
        (fd, unread), = moved
        assert unread == msg(b"three")[:5]
        adopted = Connection(second, Echo())
        adopted.adopted = True
        await asyncio.get_running_loop().connect_accepted_socket(
            lambda: adopted, socket.socket(fileno=fd))
        view = adopted.get_buffer(len(unread))
        view[:len(unread)] = unread
        adopted.buffer_updated(len(unread))
        c.writer.write(msg(b"three")[5:])
        assert await c.reply() == b"three"
        assert await c.call(b"four") == b"four"
        assert second.connections == {adopted} and not first.connections
        c.close()
        first.close()
        second.close()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(asyncio.wait_for(main(), 60))
