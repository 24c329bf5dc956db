"""`pyggy-scrub`: a stopped server's data verified batch by batch, repaired from the archive
where it can be, damage reported with exit code 1, a running server's data left alone."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from archive_node import Node

from pyggy.testing import PyggyServer


def scrub(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pyggy.scrub", "--data-path", str(root / "data"),
                           *args], capture_output=True, text=True, timeout=60)


def archive_config(root: Path) -> Path:
    config = root / "pyggy.toml"
    config.write_text(f"""
[data_maintenance.archiver]
enabled = true
kind = "disk"

[data_maintenance.archiver.disk]
path = "{root / 'archive'}"
""")
    return config


def make_data(root: Path) -> list[Path]:
    """A stopped node's data: 300 messages in ~9 sealed segments, all archived."""
    async def go() -> list[Path]:
        node = Node(root)
        await node.topic(local_segments=100)
        await node.produce(300)
        assert await node.service._pass()
        plog = node.engine.metadata.topic("s", "t").partitions[0].log
        logs = [s.log_path for s in plog.segments]
        node.close()
        return logs

    return asyncio.run(go())


def flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x08
    path.write_bytes(bytes(data))


def test_clean_data_scrubs_clean(tmp_path: Path) -> None:
    make_data(tmp_path)
    out = scrub(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "30 batches" in out.stdout and out.stdout.rstrip().endswith("clean")


def test_damage_is_reported_then_repaired_from_the_archive(tmp_path: Path) -> None:
    logs = make_data(tmp_path)
    good = logs[2].read_bytes()
    flip(logs[2], 2000)  # inside a batch in the middle of a sealed segment
    out = scrub(tmp_path)  # no archive configured: found, not repaired
    assert out.returncode == 1
    assert "damaged, not repaired" in out.stdout and str(logs[2]) in out.stdout
    assert logs[2].read_bytes() != good
    out = scrub(tmp_path, "--config", str(archive_config(tmp_path)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "repaired from a verified copy: 1" in out.stdout
    assert logs[2].read_bytes() == good


def test_a_running_servers_data_is_refused(pyggy_server: PyggyServer) -> None:
    out = subprocess.run([sys.executable, "-m", "pyggy.scrub", "--data-path",
                          str(pyggy_server.data_path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2 and "in use by another pyggy process" in out.stderr
    assert str(pyggy_server.pid) in out.stderr


def test_a_second_server_on_the_same_data_is_refused(pyggy_server: PyggyServer,
                                                     pyggy_server_factory) -> None:
    second = pyggy_server_factory(start=False, data_path=pyggy_server.data_path)
    second.start(wait=False)
    assert second.wait_exit(timeout=20) == 2
    assert "in use by another pyggy process" in second.format_logs()


def test_the_background_scrubber_repairs_rot_nobody_reads(pyggy_server_factory,
                                                           tmp_path: Path) -> None:
    from apache_iggy import IggyClient, SendMessage

    server = pyggy_server_factory(env={
        "IGGY_DATA_MAINTENANCE_ARCHIVER_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_KIND": "disk",
        "IGGY_DATA_MAINTENANCE_ARCHIVER_DISK_PATH": str(tmp_path / "archive"),
        "IGGY_DATA_MAINTENANCE_MESSAGES_ARCHIVER_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_MESSAGES_INTERVAL": "1 s",
        "IGGY_DATA_MAINTENANCE_SCRUB_ENABLED": "true",
        "IGGY_DATA_MAINTENANCE_SCRUB_INTERVAL": "1 s"})

    async def produce() -> None:
        client = IggyClient(server.tcp_address)
        await client.connect()
        await client.login_user("iggy", "iggy")
        await client.create_stream("s")
        await client.create_topic("s", "t", 1, options={"segment_size": "1 MiB"})
        for _ in range(15):
            await client.send_messages("s", "t", 0, [SendMessage(b"z" * 1024)] * 100)

    asyncio.run(produce())
    server.wait_for_log("archived segment streams/s/topics/t/partitions/0/"
                        "00000000000000000000.log", 20)
    server.wait_for_log("scrub: ", 20)
    first = server.data_path / "streams/0/topics/0/partitions/0/00000000000000000000.log"
    good = first.read_bytes()
    flip(first, 5 * (256 + 100 * (48 + 1024)) + 1000)
    line = server.wait_for_log("1 repaired", 20)
    assert "0 damaged" in line
    assert first.read_bytes() == good
