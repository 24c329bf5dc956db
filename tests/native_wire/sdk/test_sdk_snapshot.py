"""`iggy snapshot` (GET_SNAPSHOT_FILE, code 11) through the apache-iggy 0.9.0 SDK: the Python
SDK has no typed call for it, so the request goes out with the SDK's own
`send_binary_request(11, body)`, framed by the SDK as the Rust CLI frames it; the reply is the
zip archive the CLI writes to `snapshot_<time>.zip`. Who may ask is in
test_sdk_auth_permissions.py (read_servers, like GET_STATS)."""

from __future__ import annotations

import io
import zipfile

import pytest
from pyggy.native_wire.codec.snapshot import encode_request
from sdk_support import connect, outcomes

pytestmark = pytest.mark.asyncio
SECRET = "S3-secret-Zq7w"
CLI_DEFAULT = ["filesystem_overview", "process_list", "resource_usage", "server_logs"]


def unzip(archive: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        assert z.testzip() is None
        return {name: z.read(name).decode() for name in z.namelist()}


async def test_the_cli_default_snapshot(pyggy_server_factory) -> None:
    server = pyggy_server_factory(env={"IGGY_DATA_MAINTENANCE_ARCHIVER_S3_KEY_SECRET": SECRET})
    root = await connect(server)
    await root.create_stream("orders")
    archive = await root.send_binary_request(11, encode_request("deflated", CLI_DEFAULT))
    files = unzip(archive)
    assert sorted(files) == sorted(f"{name}.txt" for name in CLI_DEFAULT)
    assert "tcp listening on" in files["server_logs.txt"]  # the server's own log lines
    assert "streams_count: 1" in files["resource_usage.txt"]
    assert f"pid {server.pid}" in files["process_list.txt"]
    assert "state" in files["filesystem_overview.txt"]  # the data directory's metadata files
    assert SECRET.encode() not in archive


async def test_all_sections_and_the_config_without_its_secrets(pyggy_server_factory) -> None:
    server = pyggy_server_factory(env={"IGGY_DATA_MAINTENANCE_ARCHIVER_S3_KEY_SECRET": SECRET})
    root = await connect(server)
    files = unzip(await root.send_binary_request(11, encode_request("lzma", ["all"])))
    assert sorted(files) == ["filesystem_overview.txt", "process_list.txt",
                             "resource_usage.txt", "server_config.txt", "server_logs.txt"]
    config = files["server_config.txt"]
    assert f'address = "{server.tcp_address}"' in config
    assert 'key_secret = "<redacted>"' in config and SECRET not in config
    # a second one right after: the first has finished, so it is served
    assert unzip(await root.send_binary_request(11, encode_request("stored", ["test"]))) == \
        {"test.txt": "test\n"}


async def test_bad_requests_are_refused_and_the_session_goes_on(pyggy_server) -> None:
    root = await connect(pyggy_server)
    got = await outcomes({
        "unknown type": lambda: root.send_binary_request(11, bytes([2, 1, 9])),
        "all with another": lambda: root.send_binary_request(11, bytes([2, 2, 100, 4])),
        "truncated": lambda: root.send_binary_request(11, bytes([2, 3, 1])),
        "zstd": lambda: root.send_binary_request(11, encode_request("zstd", ["test"])),
    })
    assert got == {"unknown type": "Invalid command", "all with another": "Invalid command",
                   "truncated": "Invalid command", "zstd": "Feature is unavailable"}
    assert [s.name for s in await root.get_streams()] == []
