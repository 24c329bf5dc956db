"""pyggy/prebind.py: the doors' sockets opened before the server is imported (real sockets on
loopback; that a listener serves on them: tests/transport/test_connection.py), and the early
read of the settings that name them (what pyggy-server does with it: tests/pyggy/test_cli.py)."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pyggy import datadir, prebind
from pyggy.config import env_settings, load_config
from pyggy.testing import free_port


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


# --- open_early: the settings read before the config schema is imported ------------------


def _listening() -> dict[str, tuple[str, int]]:
    """door -> (host, port bound) of the sockets open now."""
    return {door: (host, sock.getsockname()[1])
            for door, (host, _, sock) in prebind._open.items()}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


def _env(data: Path, **extra: str) -> dict[str, str]:
    return {"IGGY_SYSTEM_PATH": str(data), "IGGY_SYSTEM_SHARDING_SHARDS": "1",
            "IGGY_TCP_ADDRESS": "127.0.0.1:0", "IGGY_KAFKA_ADDRESS": "127.0.0.1:0", **extra}


def test_the_early_defaults_and_kinds_are_the_configs() -> None:
    table = env_settings()
    for path, (kind, default) in prebind.DEFAULTS.items():
        setting = table["IGGY_" + "_".join(path).upper()]
        assert (setting.kind, setting.default) == (kind, default), path


@pytest.mark.parametrize("argv, env, toml", [
    ([], {}, None),
    ([], {"IGGY_TCP_ADDRESS": "10.0.0.1:1", "IGGY_KAFKA_ENABLED": " Off "}, None),
    (["--tcp-address", "127.0.0.1:5", "--data-path=d", "--with-default-root-credentials"],
     {"IGGY_TCP_ADDRESS": "127.0.0.1:3", "IGGY_SYSTEM_PATH": "e"}, None),
    (["--kafka-address=[::1]:7", "--repair-state", "--log-level", "debug", "--replica-id", "0"],
     {"IGGY_SYSTEM_SHARDING_SHARDS": "1_0"}, "[tcp]\naddress = '127.0.0.2:1'\n"),
    ([], {"IGGY_TCP_ENABLED": "0"},
     "[kafka]\nenabled = false\n[system]\npath = 'p'\n[system.sharding]\nshards = 3\n"
     "[cluster]\nenabled = true\n[data_maintenance.archiver]\nenabled = true\n"),
    (["--config", "FILE", "--tcp-address", "127.0.0.1:1", "--tcp-address", "127.0.0.1:2"],
     {"IGGY_CLUSTER_ENABLED": "yes"}, "[tcp]\nenabled = false\n"),
])
def test_early_settings_are_what_the_full_read_gives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str],
        toml: str | None) -> None:
    """Flags > IGGY_* > the config file > the defaults, as load_config and apply_flags."""
    from pyggy import cli
    from pyggy import config as config_module

    monkeypatch.setattr(config_module, "validate", lambda config: None)  # a roster-less cluster

    document = None
    if toml is not None:
        (tmp_path / "c.toml").write_text(toml)
        argv = [a.replace("FILE", str(tmp_path / "c.toml")) for a in argv]
        env = {**env, "IGGY_CONFIG_PATH": str(tmp_path / "c.toml")}
        document = tomllib.loads(toml)
    config = load_config(None if "--config" not in argv else argv[1], env)
    cli.apply_flags(config, cli.build_parser().parse_args(argv))
    options = prebind._options(argv)
    for path in prebind.DEFAULTS:
        full = config
        for part in path:
            full = getattr(full, part)
        assert prebind._setting(path, options, env, document) == full, path


@pytest.mark.parametrize("argv", [
    ["-f"], ["--fresh"], ["--help"], ["-h"], ["--tcp", "127.0.0.1:1"], ["--tcp-address"],
    ["--tcp-address", "-1"], ["--data-path=-x"], ["--", "x"], ["positional"], ["--unknown=1"],
])
def test_command_lines_argparse_may_read_otherwise_bind_nothing(argv: list[str],
                                                                data: Path) -> None:
    assert prebind.open_early(argv, _env(data)) is None
    assert prebind._open == {}


@pytest.mark.parametrize("env", [
    {"IGGY_TCP_ENABLED": "maybe"}, {"IGGY_SYSTEM_SHARDING_SHARDS": "one"},
    {"IGGY_SYSTEM_SHARDING_SHARDS": "2"}, {"IGGY_SYSTEM_SHARDING_SHARDS": "-1"},
    {"IGGY_CLUSTER_ENABLED": "true"}, {"PYGGY_SHARD": "1/2/x/1/2"},
    {"IGGY_TCP_ADDRESS": "127.0.0.1"}, {"IGGY_KAFKA_ADDRESS": "::1:9092"},
    {"IGGY_TCP_ADDRESS": "127.0.0.1:65536"}, {"IGGY_SYSTEM_PATH": ""},
    {"IGGY_CONFIG_PATH": "/nonexistent/pyggy.toml"},
])
def test_values_the_full_read_judges_bind_nothing(env: dict[str, str], data: Path) -> None:
    """A cluster replica, a sharded server or a shard, or a value load_config would refuse or
    convert: nothing bound, nothing locked (the start does both after reading it all)."""
    assert prebind.open_early([], _env(data, **env)) is None
    assert prebind._open == {}
    datadir.unlock(datadir.lock(data))  # not held


@pytest.mark.parametrize("toml", [
    "[tcp\n", "tcp = 1\n", "[tcp]\naddress = 8090\n", "[tcp]\nenabled = 'true'\n",
    "[system.sharding]\nshards = '1'\n",
])
def test_config_files_the_full_read_judges_bind_nothing(toml: str, tmp_path: Path,
                                                        data: Path) -> None:
    (tmp_path / "c.toml").write_text(toml)
    env = _env(data)
    del env["IGGY_TCP_ADDRESS"]
    del env["IGGY_SYSTEM_SHARDING_SHARDS"]
    assert prebind.open_early(["--config", str(tmp_path / "c.toml")], env) is None
    assert prebind._open == {}


def test_open_early_locks_the_directory_and_binds_both_doors(data: Path) -> None:
    early = prebind.open_early([], _env(data))
    assert early is not None and early.path == str(data) and early.lock is not None
    assert early.document is None
    bound = _listening()
    assert bound.keys() == {"tcp", "kafka"} and all(p > 0 for _, p in bound.values())
    for _, port in bound.values():
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # in the backlog
    with pytest.raises(datadir.DataDirBusy):
        datadir.lock(data)
    assert early.take_lock(str(data / "other")) is None  # not that directory's
    fd = early.take_lock(str(data))
    assert fd is not None and early.lock is None
    early.release()  # nothing left to give back: the start keeps its lock
    with pytest.raises(datadir.DataDirBusy):
        datadir.lock(data)
    datadir.unlock(fd)


def test_a_first_start_binds_without_creating_the_directory(tmp_path: Path) -> None:
    early = prebind.open_early([], _env(tmp_path / "new"))
    assert early is not None and early.lock is None
    assert not (tmp_path / "new").exists()  # created and locked by the start, as before
    assert _listening().keys() == {"tcp", "kafka"}


def test_a_held_directory_binds_nothing(data: Path) -> None:
    fd = datadir.lock(data)
    try:
        assert prebind.open_early([], _env(data)) is None  # the start reports it, as before
        assert prebind._open == {}
    finally:
        datadir.unlock(fd)


def test_env_overrides_name_the_doors_and_a_host_name_is_left_to_the_listener(
        data: Path) -> None:
    early = prebind.open_early(["--kafka-address", "localhost:0"],
                               _env(data, IGGY_TCP_ADDRESS="[::1]:0"))
    assert early is not None
    assert _listening().keys() == {"tcp"} and _listening()["tcp"][0] == "::1"
    early.release()
    prebind.close_all()
    early = prebind.open_early([], _env(data, IGGY_TCP_ENABLED="false"))
    assert early is not None and _listening().keys() == {"kafka"}
    early.release()


def test_a_config_file_is_read_once_and_names_the_ports(tmp_path: Path, data: Path) -> None:
    port = free_port()
    path = tmp_path / "c.toml"
    path.write_text(f"[tcp]\naddress = '127.0.0.1:{port}'\n[kafka]\nenabled = false\n")
    env = _env(data)
    del env["IGGY_TCP_ADDRESS"]
    early = prebind.open_early([f"--config={path}"], env)
    assert early is not None and early.config_path == str(path)
    assert early.document == {"tcp": {"address": f"127.0.0.1:{port}"},
                              "kafka": {"enabled": False}}
    assert _listening() == {"tcp": ("127.0.0.1", port)}
    path.unlink()  # load_config takes the document instead of reading the file again
    assert load_config(str(path), env, document=early.document).tcp.address.endswith(str(port))
    early.release()


def test_listen_keeps_a_door_already_open_on_the_same_address() -> None:
    port = prebind.listen("tcp", "127.0.0.1", 0)
    assert port is not None
    assert prebind.listen("tcp", "127.0.0.1", 0) == port  # port 0: the one chosen, kept
    other = prebind.listen("tcp", "::1", 0)  # another address: the first socket closed
    assert other is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    prebind.close("tcp")
    prebind.close("tcp")  # nothing open: nothing to do
    assert prebind._open == {}


@pytest.mark.parametrize("address", [
    "127.0.0.1:1", "[::1]:2", ":3", "host:4", "[fe80::1%eth0]:5", "1.2.3.4", "1.2.3.4:",
    "1.2.3.4:x", "1.2.3.4:65536", "::1:5", "[::1]5", "1.2.3.4:+5", "1.2.3.4: 5", "a:b:c",
])
def test_early_addresses_split_as_the_configs(address: str) -> None:
    from pyggy.config import ConfigError, split_address

    try:
        expected: tuple[str, int] | None = split_address(address)
    except ConfigError:
        expected = None
    try:
        got: tuple[str, int] | None = prebind.split_address(address)
    except prebind._Unsure:
        got = None
    assert got == expected


@pytest.mark.parametrize("host", [
    "127.0.0.1", "0.0.0.0", "::", "::1", "::ffff:1.2.3.4", "fe80::1%eth0", "fe80::1%",
    "1.2.3.4%x", "01.2.3.4", "1.2.3", "127.1", "1.2.3.256", " 1.2.3.4", "[::1]", "1::2::3",
    "localhost", "", "1.2.3.4\x00", "::1:2:3:4:5:6:7", "٣.1.1.1",
])
def test_a_literal_address_is_what_ipaddress_accepts(host: str) -> None:
    try:
        version = ipaddress.ip_address(host).version
        expected = socket.AF_INET6 if version == 6 else socket.AF_INET
    except ValueError:
        expected = None
    assert prebind._family(host) == expected


def test_the_early_bind_imports_no_schema_logging_or_argparse(tmp_path: Path) -> None:
    """What runs before the ports listen (BENCHMARKS.md, "Issue 16, seventh session"): the
    CLI module and open_early import none of what reading the whole config needs."""
    code = ("import os, sys\n"
            "before = set(sys.modules)\n"  # the interpreter's (and an editable install's finder)
            "from pyggy import cli, prebind\n"
            "early = prebind.open_early([], os.environ)\n"
            "assert early is not None and sorted(prebind._open) == ['kafka', 'tcp']\n"
            "print(*sorted(m for m in set(sys.modules) - before if not m.startswith('pyggy')))\n"
            "print(*sorted(m for m in sys.modules if m.startswith('pyggy')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**_env(tmp_path / "data"), "PATH": os.environ.get("PATH", "")},
                         timeout=60, check=True).stdout.splitlines()
    # (__future__, for the annotations, may be loaded already)
    assert out[0] in ("_socket fcntl gc", "__future__ _socket fcntl gc")
    assert out[1] == "pyggy pyggy.cli pyggy.datadir pyggy.prebind"


_TOKENS = st.sampled_from(["--config", "--tcp-address", "--kafka-address", "--data-path",
                           "--replica-id", "--log-level", "--with-default-root-credentials",
                           "--repair-state", "-f", "--fresh", "--help", "--tcp", "-", "--",
                           "127.0.0.1:9", "d", "=", "--data-path=x", "--tcp-address=[::1]:0"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_TOKENS, _TOKENS, _TOKENS, st.text(max_size=12)), max_size=8))
@example(["--data-path", "a", "--data-path=b", "--tcp-address", "127.0.0.1:9"])
def test_random_command_lines_are_read_as_argparse_reads_them_or_left_to_it(
        argv: list[str]) -> None:
    """Random and truncated command lines: the early read either leaves the line to argparse
    (`_Unsure`, nothing else raised) or reads the settings it names as argparse does."""
    from pyggy.cli import build_parser

    try:
        early = prebind._options(argv)
    except prebind._Unsure:
        return
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:  # a value argparse refuses (--replica-id x): the full read reports it
        return
    for option, attr in (("--config", "config"), ("--tcp-address", "tcp_address"),
                         ("--kafka-address", "kafka_address"), ("--data-path", "data_path")):
        assert early.get(option) == getattr(args, attr)
