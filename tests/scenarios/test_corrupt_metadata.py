"""A bad sector in the metadata: the issue-10 story on a real server.

Four flipped bytes in the first entry of the state log used to start an empty server that then
deleted every stream directory. Now the mirror repairs it; with both copies damaged the server
refuses to start and deletes nothing; `--repair-state` starts it with what is provable and puts
the rest in lost+found.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from apache_iggy import Consumer, IggyClient, PollingStrategy, SendMessage, TcpConfig

from pyggy.testing import PyggyServer


async def connect(server: PyggyServer, user: str = "iggy", password: str = "iggy") -> IggyClient:
    client = IggyClient(TcpConfig(server_address=server.tcp_address))
    await client.connect()
    await client.login_user(user, password)
    return client


async def messages(client: IggyClient, partition: int) -> list[bytes]:
    msgs = await client.poll_messages(
        "orders", "events", consumer=Consumer.Single(1), partition_id=partition,
        polling_strategy=PollingStrategy.Offset(0), count=1000, auto_commit=False)
    return [m.payload() for m in msgs]


def flip_first_entry(path: Path) -> None:
    """Flip 4 bytes of the first entry's body (past its 8-byte length + CRC header)."""
    data = bytearray(path.read_bytes())
    for i in range(12, 16):
        data[i] ^= 0xFF
    path.write_bytes(data)


def segment_files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.glob("**/*") if p.suffix in (".log", ".index") and "state" not in p.parts}


def test_a_bad_sector_in_the_state_log(pyggy_server_factory) -> None:
    server: PyggyServer = pyggy_server_factory("node")
    data = server.data_path
    sent = {p: [f"order-{p}-{i:04d}".encode() for i in range(300)] for p in (0, 1)}

    async def fill() -> None:
        root = await connect(server)
        await root.create_user("alice", "alice-pw")
        await root.create_stream("orders")
        await root.create_topic("orders", "events", 2)
        for p, payloads in sent.items():
            await root.send_messages("orders", "events", p, [SendMessage(x) for x in payloads])

    asyncio.run(fill())
    server.stop()
    files = segment_files(data)
    assert len(files) >= 4

    # one copy damaged: repaired with a warning, everything is still there
    flip_first_entry(data / "state" / "state.log")
    server.start()
    warning = server.wait_for_log("damaged entry repaired")
    assert "state.log" in warning and "entry 0 at byte 0" in warning

    async def everything_there() -> None:
        await connect(server, "alice", "alice-pw")  # her user and password are back
        root = await connect(server)
        assert [s.name for s in await root.get_streams()] == ["orders"]
        assert [u.username for u in await root.get_users()] == ["iggy", "alice"]
        for p, payloads in sent.items():
            assert await messages(root, p) == payloads

    asyncio.run(everything_there())
    server.stop()
    assert (data / "state/state.log").read_bytes() == (data / "state/state.log.copy").read_bytes()

    # both copies damaged: refused with the file, offset, entry and ways out; nothing deleted
    flip_first_entry(data / "state" / "state.log")
    flip_first_entry(data / "state" / "state.log.copy")
    server.start(wait=False)
    line = server.wait_for_log("refusing to start")
    assert server.wait_exit() == 3
    assert f"state log {data / 'state' / 'state.log'}: entry 0 at byte 0" in line
    assert "pyggy-restore" in line and "--repair-state" in line
    assert not any("Traceback" in x for x in server.logs)
    assert segment_files(data) == files and not (data / "lost+found").exists()

    # --repair-state: the provable prefix (here: nothing) and the rest in lost+found
    server.args.append("--repair-state")
    server.start()
    assert "--repair-state keeps the 0 entries" in server.wait_for_log("--repair-state keeps")

    async def repaired() -> None:
        root = await connect(server)  # the root user is created again (default credentials)
        assert await root.get_streams() == []
        assert [u.username for u in await root.get_users()] == ["iggy"]

    asyncio.run(repaired())
    (stamp,) = (data / "lost+found").iterdir()
    kept = segment_files(stamp)
    assert kept == files  # every segment and index file, byte for byte, in lost+found
    assert {p.name for p in (stamp / "state").iterdir()} == {"state.log", "state.log.copy"}
