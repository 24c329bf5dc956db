"""Native connections move to the shard process owning their partitions (pyggy/shards/
handoff.py), on a server of 2 shard processes, driven by the official apache-iggy 0.9.0 SDK
and pyggy's lean client.

Which shard serves a connection is seen from the shards themselves: GET_CLIENT (21) answers
only for the sessions of the answering shard, so a probe connection on each shard (told
apart by its client id: shard k of N hands out k + 1, k + 1 + N, …) says where a client is
served now. A moved client keeps its id, so its parity still names the shard it came in on.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from apache_iggy import (
    Consumer,
    GlobalPermissions,
    IggyClient,
    Permissions,
    PollingStrategy,
    SendMessage,
    TcpConfig,
)
from hypothesis import given
from hypothesis import strategies as st
from pyggy.core.records.iggy_batch import build_batch

from pyggy.native_client import NativeClient, NativeError
from pyggy.shards import handoff
from pyggy.shards.rule import owner
from pyggy.testing import PyggyServer

SHARDS = {"IGGY_SYSTEM_SHARDING_SHARDS": "2", "IGGY_HTTP_ENABLED": "false"}
PARTITIONS = 4
GET_ME, GET_CLIENT, GET_CLIENTS = 20, 21, 22
MOVE = handoff.MOVE_AFTER


# -- the handoff message codec (bounded: malformed input is refused, never crashes) ----------
@pytest.mark.parametrize("unread", [b"", b"\x00" * 100, b"x" * handoff.MAX_UNREAD])
def test_codec_round_trip(unread: bytes) -> None:
    state = {"client": 7, "user": 1, "cursors": [[1, 2, 3, 4]]}
    assert handoff.decode(handoff.encode(state, unread)) == (state, unread)


def test_codec_refuses_oversized_and_malformed() -> None:
    with pytest.raises(handoff.HandoffError):
        handoff.encode({}, b"x" * (handoff.MAX_UNREAD + 1))
    with pytest.raises(handoff.HandoffError):
        handoff.encode({"x": "y" * handoff.MAX_STATE}, b"")
    for bad in (b"", b"\x00\x00\x00", struct.pack(">I", 10) + b"{}",
                struct.pack(">I", 2) + b"[]", struct.pack(">I", 2) + b"\xff\xfe",
                struct.pack(">I", handoff.MAX_STATE + 1) + b"{}"):
        with pytest.raises(handoff.HandoffError):
            handoff.decode(bad)


@given(st.binary(max_size=300))
def test_codec_any_bytes_decode_or_refuse(data: bytes) -> None:
    try:
        state, unread = handoff.decode(data)
    except handoff.HandoffError:
        return
    assert isinstance(state, dict) and len(unread) <= handoff.MAX_UNREAD


# -- a server of 2 shards ---------------------------------------------------------------------
def _shard(client_id: int) -> int:
    return (client_id - 1) % 2


async def _client(server: PyggyServer, user: str = "iggy", password: str = "iggy"
                  ) -> IggyClient:
    client = IggyClient(TcpConfig(server_address=server.tcp_address))
    await client.connect()
    await client.login_user(user, password)
    return client


async def _me(client: IggyClient) -> int:
    return int(struct.unpack_from("<I", await client.send_binary_request(GET_ME, b""))[0])


async def _on_shard(server: PyggyServer, shard: int, user: str = "iggy",
                    password: str = "iggy") -> tuple[IggyClient, int]:
    """A connection the kernel put on `shard` (others are dropped) and its client id."""
    for _ in range(40):
        client = await _client(server, user, password)
        me = await _me(client)
        if _shard(me) == shard:
            return client, me
    raise AssertionError(f"40 connections and none on shard {shard}")


async def _served_by(probes: dict[int, IggyClient], client_id: int) -> list[int]:
    """The shards whose sessions hold `client_id` (exactly one while it is connected)."""
    return [s for s, probe in sorted(probes.items())
            if await probe.send_binary_request(GET_CLIENT, struct.pack("<I", client_id))]


async def _eventually(probe: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _topic(admin: IggyClient) -> dict[int, int]:
    """Stream `shop`, topic `events` of 4 partitions; each partition's owner shard."""
    await admin.create_stream("shop")
    await admin.create_topic("shop", "events", PARTITIONS)
    stream = await admin.get_stream("shop")
    topic = await admin.get_topic("shop", "events")
    assert stream is not None and topic is not None
    owners = {p: owner(stream.id, topic.id, p, 2) for p in range(PARTITIONS)}
    assert sorted(owners.values()) == [0, 0, 1, 1]
    return owners


async def _shop(server: PyggyServer) -> tuple[IggyClient, dict[int, int],
                                              dict[int, IggyClient]]:
    """An admin client, the `shop`/`events` topic's owner shards and a probe on each shard."""
    admin = await _client(server)
    owners = await _topic(admin)
    return admin, owners, {s: (await _on_shard(server, s))[0] for s in (0, 1)}


def test_sdk_producer_and_group_member_move_to_the_owner(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")

    async def run() -> None:
        admin, owners, probes = await _shop(server)
        await admin.create_consumer_group("shop", "events", "workers")

        # a producer on shard 0 sending to a partition of shard 1's
        theirs = next(p for p, s in owners.items() if s == 1)
        producer, me = await _on_shard(server, 0)
        assert await _served_by(probes, me) == [0]
        await producer.join_consumer_group("shop", "events", "workers")
        for i in range(MOVE + 4):
            await producer.send_messages("shop", "events", theirs,
                                         [SendMessage(f"m{i}-{j}") for j in range(5)])
        assert await _served_by(probes, me) == [1]  # moved, and forgotten by shard 0
        assert await _me(producer) == me  # the same client, as GET_ME sees it

        # every message once, in order, at offsets 0..n-1, read back on the moved connection
        got = await producer.poll_messages(
            "shop", "events", partition_id=theirs, consumer=Consumer.Single(1),
            polling_strategy=PollingStrategy.Offset(0), count=1000, auto_commit=False)
        assert [m.payload() for m in got] == [f"m{i}-{j}".encode()
                                             for i in range(MOVE + 4) for j in range(5)]
        assert [m.offset() for m in got] == list(range(5 * (MOVE + 4)))

        # its group membership survived the move: still a member, with every partition
        group = await admin.get_consumer_group("shop", "events", "workers")
        assert group is not None
        assert {m.id: sorted(m.partitions) for m in group.members} == {
            me: list(range(PARTITIONS))}
        msgs = await producer.poll_messages(
            "shop", "events", partition_id=theirs, consumer=Consumer.Group("workers"),
            polling_strategy=PollingStrategy.Next(), count=3, auto_commit=True)
        assert [m.payload() for m in msgs] == [b"m0-0", b"m0-1", b"m0-2"]

        # a connection using partitions of both shards is not moved
        mixed, mixed_id = await _on_shard(server, 0)
        ours = next(p for p, s in owners.items() if s == 0)
        for i in range(3 * MOVE):
            await mixed.send_messages("shop", "events", (theirs, ours)[i % 2],
                                      [SendMessage(b"x")])
        assert await _served_by(probes, mixed_id) == [0]

        # the moved connection closing ends its membership (on the shard serving it now)
        del producer
        await asyncio.sleep(0)

        async def left() -> bool:
            g = await admin.get_consumer_group("shop", "events", "workers")
            return g is not None and not g.members

        await _eventually(left)

    asyncio.run(run())


def test_logout_and_permissions_are_enforced_after_the_move(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")

    async def run() -> None:
        admin, owners, probes = await _shop(server)
        await admin.create_user("writer", "secret-pass", permissions=Permissions(
            GlobalPermissions(send_messages=True)))
        theirs = next(p for p, s in owners.items() if s == 0)
        writer, me = await _on_shard(server, 1, "writer", "secret-pass")
        for _ in range(MOVE + 2):
            await writer.send_messages("shop", "events", theirs, [SendMessage(b"w")])
        assert await _served_by(probes, me) == [0]
        with pytest.raises(RuntimeError):  # no poll permission, on the new shard too
            await writer.poll_messages(
                "shop", "events", partition_id=theirs, consumer=Consumer.Single(1),
                polling_strategy=PollingStrategy.Offset(0), count=10, auto_commit=False)
        await admin.update_permissions("writer", None)

        async def refused() -> bool:
            try:
                await writer.send_messages("shop", "events", theirs, [SendMessage(b"late")])
            except RuntimeError:
                return True
            return False

        await _eventually(refused)
        await writer.logout_user()
        with pytest.raises(RuntimeError):
            await writer.get_stats()
        assert await _served_by(probes, me) == [0]  # still connected, logged out, same shard

    asyncio.run(run())


def test_a_user_deleted_through_one_shard_is_logged_out_on_the_other(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    """DELETE_USER ends the user's sessions on every shard, not only on the one that
    answered it (each shard applies the deletion from the metadata order)."""
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")

    async def run() -> None:
        admin, _ = await _on_shard(server, 0)
        await admin.create_user("leaver", "secret-pass", permissions=Permissions(
            GlobalPermissions(read_servers=True)))
        leaver, _ = await _on_shard(server, 1, "leaver", "secret-pass")
        await leaver.get_stats()  # logged in and allowed
        await admin.delete_user("leaver")

        async def logged_out() -> bool:
            try:
                await leaver.get_stats()
            except RuntimeError:
                return True
            return False

        await _eventually(logged_out)
        with pytest.raises(RuntimeError):  # stays out: GET_ME needs a user too
            await _me(leaver)

    asyncio.run(run())


def test_lean_client_moves_and_polls_and_handoff_can_be_turned_off(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    """pyggy's lean 0.11 client, pipelining nothing: it sends to the other shard's partition,
    moves, and reads everything back; with `native_handoff = false` it stays."""
    batch = build_batch([(i + 1, b"a" * 100, b"", 0) for i in range(10)])
    for on in (True, False):
        server = pyggy_server_factory(env={**SHARDS, "IGGY_SYSTEM_SHARDING_NATIVE_HANDOFF":
                                           str(on).lower()})
        server.wait_for_log("shards: 2 processes serving")
        admin = NativeClient(server.tcp_address)
        admin.login("iggy", "iggy")
        admin.create_stream("s")
        admin.create_topic("s", "t", PARTITIONS)
        owners = {p: owner(1, 1, p, 2) for p in range(PARTITIONS)}
        probes: dict[int, NativeClient] = {}
        lean = None
        while len(probes) < 2 or lean is None:
            c = NativeClient(server.tcp_address)
            c.login("iggy", "iggy")
            shard = _shard(struct.unpack_from("<I", c.call(GET_ME))[0])
            if shard not in probes:
                probes[shard] = c
            elif lean is None and shard == 0:
                lean = c
            else:
                c.close()
        me = struct.unpack_from("<I", lean.call(GET_ME))[0]
        theirs = next(p for p, s in owners.items() if s == 1)
        bases = [lean.send("s", "t", theirs, batch, 10) for _ in range(2 * MOVE)]
        assert bases == [10 * i for i in range(2 * MOVE)]
        count, _ = lean.poll("s", "t", theirs, 0, 1000)
        assert count == 20 * MOVE
        served = [s for s, probe in sorted(probes.items())
                  if probe.call(GET_CLIENT, struct.pack("<I", me))]
        assert served == ([1] if on else [0])
        assert struct.unpack_from("<I", lean.call(GET_ME))[0] == me
        with pytest.raises(NativeError):  # a partition that does not exist: an error, kept
            lean.send("s", "t", PARTITIONS + 1, batch, 10)
        assert struct.unpack_from("<I", lean.call(GET_ME))[0] == me
        for c in (admin, lean, *probes.values()):
            c.close()
        server.stop()


def _lean_on(server: PyggyServer, shard: int) -> tuple[NativeClient, int]:
    for _ in range(40):
        c = NativeClient(server.tcp_address)
        c.login("iggy", "iggy")
        me = struct.unpack_from("<I", c.call(GET_ME))[0]
        if _shard(me) == shard:
            return c, me
        c.close()
    raise AssertionError(f"40 connections and none on shard {shard}")


def _frame(client: NativeClient, partition: int, batch: bytes) -> bytes:
    """The bytes `client.write_send` would send (recorded, not sent)."""
    sent: list[bytes] = []
    real = client._send_all
    client._send_all = lambda buffers: sent.extend(bytes(b) for b in buffers)  # type: ignore
    try:
        client.write_send("s", "t", partition, batch, 10)
    finally:
        client._send_all = real  # type: ignore[method-assign]
    return b"".join(sent)


def test_partly_received_request_moves_along_and_a_failed_handoff_keeps_forwarding(
        pyggy_server_factory: Callable[..., PyggyServer], tmp_path: Path) -> None:
    """A request whose first half came with the one before it is finished on the new shard;
    with shard 1's handoff socket gone (a handoff that cannot be sent) the connection stays
    on shard 0 and is served by forwarding."""
    socket_dirs = tmp_path / "tmp"
    socket_dirs.mkdir()
    server = pyggy_server_factory(env={**SHARDS, "TMPDIR": str(socket_dirs)})
    server.wait_for_log("shards: 2 processes serving")
    batch = bytes(build_batch([(i + 1, b"b" * 100, b"", 0) for i in range(10)]))
    admin = NativeClient(server.tcp_address)
    admin.login("iggy", "iggy")
    admin.create_stream("s")
    admin.create_topic("s", "t", PARTITIONS)
    theirs = next(p for p in range(PARTITIONS) if owner(1, 1, p, 2) == 1)
    probes = {s: _lean_on(server, s)[0] for s in (0, 1)}

    def served(me: int) -> list[int]:
        return [s for s, probe in sorted(probes.items())
                if probe.call(GET_CLIENT, struct.pack("<I", me))]

    # MOVE - 1 sends, then one whole request and half of the next in one write
    lean, me = _lean_on(server, 0)
    for _ in range(MOVE - 1):
        lean.send("s", "t", theirs, batch, 10)
    a, b = _frame(lean, theirs, batch), _frame(lean, theirs, batch)
    lean.sock.sendall(a + b[:len(b) // 2])
    assert lean.read_send_reply() == 10 * (MOVE - 1)
    time.sleep(0.2)  # the second half arrives after the move (nothing to await on the wire)
    lean.sock.sendall(b[len(b) // 2:])
    assert lean.read_send_reply() == 10 * MOVE
    assert served(me) == [1]
    assert lean.poll("s", "t", theirs, 0, 10_000)[0] == 10 * (MOVE + 1)

    # shard 1's handoff socket removed: sending the connection fails, it is kept
    (path,) = socket_dirs.glob("pyggy-shards-*/shard-1.handoff")
    path.unlink()
    stays, stays_id = _lean_on(server, 0)
    first = 10 * (MOVE + 1)
    bases = [stays.send("s", "t", theirs, batch, 10) for _ in range(2 * MOVE)]
    assert bases == list(range(first, first + 20 * MOVE, 10))
    assert served(stays_id) == [0]
    server.wait_for_log("could not hand a connection")
    for c in (admin, lean, stays, *probes.values()):
        c.close()


async def _clients(probe: IggyClient) -> set[int]:
    """The client ids of the probe's shard (GET_CLIENTS: id u32, user u32, transport u8,
    address u32-prefixed, groups u32 each)."""
    body, ids, at = await probe.send_binary_request(GET_CLIENTS, b""), set(), 0
    while at < len(body):
        client_id, _, _ = struct.unpack_from("<IIB", body, at)
        (n,) = struct.unpack_from("<I", body, at + 9)
        ids.add(client_id)
        at += 13 + n + 4
    return ids


def test_classic_sdk08_connection_moves(pyggy_server_factory: Callable[..., PyggyServer],
                                        iggy08_python: Path) -> None:
    """The official 0.8.0 SDK (classic framing) is moved as a 0.11 connection is."""
    server = pyggy_server_factory(env=SHARDS)
    server.wait_for_log("shards: 2 processes serving")
    script = Path(__file__).resolve().parent / "scenarios" / "sdk08_handoff.py"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    async def run() -> None:
        admin, owners, probes = await _shop(server)
        before = set().union(*[await _clients(p) for p in probes.values()])
        proc = await asyncio.create_subprocess_exec(
            str(iggy08_python), str(script), server.tcp_address, str(MOVE + 4),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert json.loads(line) == {"ready": True}
            (me,) = set().union(*[await _clients(p) for p in probes.values()]) - before
            theirs = next(p for p, s in owners.items() if s != _shard(me))
            proc.stdin.write(f"{theirs}\n".encode())
            await proc.stdin.drain()
            out = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
            assert out["sdk_version"] == "0.8.0"
            assert out["payloads"] == [f"c{i}-{j}" for i in range(MOVE + 4) for j in range(3)]
            assert out["offsets"] == list(range(3 * (MOVE + 4)))
            assert await _served_by(probes, me) == [owners[theirs]]
            proc.stdin.write(b"exit\n")
            await proc.stdin.drain()
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    asyncio.run(run())
