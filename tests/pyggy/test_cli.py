"""CLI: flags, root credentials, --fresh; and the server process lifecycle via the fixtures."""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pyggy import cli, datadir, prebind, server
from pyggy.config import ConfigError, ServerConfig, load_config
from pyggy.testing import PyggyServer, ServerStartError, free_port


@pytest.fixture
def captured_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[list]:
    """Replace `pyggy.server.run`; record (config, credentials, loop policy) per call."""
    calls: list = []
    root = logging.getLogger()
    level = root.level
    monkeypatch.setattr(
        server,
        "run",
        lambda config, creds, repair_state=False: calls.append(
            (config, creds, asyncio.get_event_loop_policy())),
    )
    for name in ("IGGY_ROOT_USERNAME", "IGGY_ROOT_PASSWORD", "IGGY_CONFIG_PATH"):
        monkeypatch.delenv(name, raising=False)
    yield calls
    asyncio.set_event_loop_policy(None)
    root.setLevel(level)


def test_root_credentials() -> None:
    assert cli.root_credentials(True, {}) == ("iggy", "iggy")
    env = {"IGGY_ROOT_USERNAME": "admin", "IGGY_ROOT_PASSWORD": "s3cret"}
    assert cli.root_credentials(False, env) == ("admin", "s3cret")
    assert cli.root_credentials(True, env) == ("iggy", "iggy")
    assert cli.root_credentials(False, {}) is None
    with pytest.raises(ConfigError):
        cli.root_credentials(False, {"IGGY_ROOT_USERNAME": "admin"})


def test_flags_beat_env_and_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[tcp]\naddress = '127.0.0.1:1'\n[kafka]\naddress = '127.0.0.1:2'\n")
    args = cli.build_parser().parse_args(
        ["--config", str(path), "--tcp-address", "127.0.0.1:10", "--data-path", "d",
         "--log-level", "debug"]
    )
    config = load_config(args.config, {"IGGY_TCP_ADDRESS": "127.0.0.1:3", "IGGY_SYSTEM_PATH": "e"})
    cli.apply_flags(config, args)
    assert config.tcp.address == "127.0.0.1:10"
    assert config.kafka.address == "127.0.0.1:2"
    assert config.system.path == "d"
    assert config.system.logging.level == "debug"


def test_main_runs_server_with_uvloop(
    captured_run: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IGGY_SYSTEM_PATH", str(tmp_path / "data"))
    assert cli.main(["--with-default-root-credentials", "--kafka-address", "127.0.0.1:9999"]) == 0
    (config, creds, policy), = captured_run
    assert isinstance(config, ServerConfig)
    assert config.system.path == str(tmp_path / "data")
    assert config.kafka.address == "127.0.0.1:9999"
    assert (creds.username, creds.password) == ("iggy", "iggy")
    # an empty data directory: the root password is being hashed already (core.auth.RootUser)
    assert creds.record() and creds.hashed
    assert type(policy).__module__.startswith("uvloop")


def test_main_opens_the_doors_before_the_server_runs_and_closes_the_unused(
    captured_run: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyggy/prebind.py: the ports accept (into the backlog) while the server is started; a
    socket no listener took is closed when the CLI returns."""
    ports = free_port(), free_port()
    accepted = []

    def run(config, creds, repair_state=False) -> None:
        for port in ports:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                accepted.append(port)

    monkeypatch.setattr(server, "run", run)
    monkeypatch.setenv("IGGY_SYSTEM_PATH", str(tmp_path / "data"))
    assert cli.main(["--tcp-address", f"127.0.0.1:{ports[0]}",
                     "--kafka-address", f"127.0.0.1:{ports[1]}"]) == 0
    assert accepted == list(ports)
    for port in ports:  # the fake server took neither: closed
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return False
    return True


def test_the_ports_listen_before_the_config_is_read_in_full(
    captured_run: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyggy/prebind.py open_early: bound and the data directory locked before the config
    schema runs; the start keeps those sockets (port 0: the port chosen early) and that lock."""
    from pyggy import config as config_module

    data = tmp_path / "data"
    data.mkdir()  # a restart: the early start locks it
    seen = {}
    load = config_module.load_config

    def load_config(*args, **kwargs):
        seen["early"] = {door: sock.getsockname()[1] for door, (_, _, sock)
                         in prebind._open.items()}
        with pytest.raises(datadir.DataDirBusy):
            datadir.lock(data)
        return load(*args, **kwargs)

    def run(config, creds, repair_state=False) -> None:
        seen["taken"] = {door: prebind.take(door, "127.0.0.1", 0) for door in ("tcp", "kafka")}
        with pytest.raises(datadir.DataDirBusy):  # still held: the early lock, kept
            datadir.lock(data)

    monkeypatch.setattr(config_module, "load_config", load_config)
    monkeypatch.setattr(server, "run", run)
    monkeypatch.setenv("IGGY_SYSTEM_PATH", str(data))
    monkeypatch.setenv("IGGY_SYSTEM_SHARDING_SHARDS", "1")
    monkeypatch.setenv("IGGY_TCP_ADDRESS", "127.0.0.1:0")
    assert cli.main(["--kafka-address=127.0.0.1:0"]) == 0
    assert seen["early"].keys() == {"tcp", "kafka"}
    taken = seen["taken"]
    try:
        assert {door: sock.getsockname()[1] for door, sock in taken.items()} == seen["early"]
    finally:
        for sock in taken.values():
            sock.close()
    datadir.unlock(datadir.lock(data))  # released when main returned


@pytest.mark.parametrize("env, message", [
    ({"IGGY_SYSTEM_LOGGING_LEVEL": "loud"}, "system.logging.level must be one of"),
    ({"IGGY_TCP_TLS_ENABLED": "true", "IGGY_TCP_TLS_SELF_SIGNED": "false"},
     "tcp.tls: set cert_file and key_file"),
    ({"IGGY_TCP_AUTH_TIMOUT": "1"}, "unknown security setting IGGY_TCP_AUTH_TIMOUT"),
    ({"IGGY_ROOT_USERNAME": "admin"}, "set both IGGY_ROOT_USERNAME"),
])
def test_a_bad_config_after_the_early_bind_is_reported_as_before_and_closes_the_ports(
    captured_run: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, env: dict[str, str], message: str
) -> None:
    from pyggy import config as config_module

    data = tmp_path / "data"
    data.mkdir()
    ports = free_port(), free_port()
    listening = []
    load = config_module.load_config

    def checked(*args, **kwargs):
        listening.append([_connects(port) for port in ports])
        return load(*args, **kwargs)

    monkeypatch.setattr(config_module, "load_config", checked)
    monkeypatch.setenv("IGGY_SYSTEM_PATH", str(data))
    monkeypatch.setenv("IGGY_SYSTEM_SHARDING_SHARDS", "1")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with caplog.at_level(logging.ERROR):
        assert cli.main(["--tcp-address", f"127.0.0.1:{ports[0]}",
                         "--kafka-address", f"127.0.0.1:{ports[1]}"]) == 2
    assert listening and listening[0] == [True, True]  # bound before the config was checked
    assert captured_run == []
    assert f"configuration error: {message}" in caplog.text
    assert [_connects(port) for port in ports] == [False, False]
    datadir.unlock(datadir.lock(data))  # the early lock given back


def test_a_start_failing_after_the_early_bind_closes_the_ports_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyggy.core.errors import ErrorCode, IggyError

    def run(config, creds, repair_state=False) -> None:
        assert all(_connects(port) for port in ports)
        raise IggyError(ErrorCode.ERROR, "disk full")

    ports = free_port(), free_port()
    monkeypatch.setattr(server, "run", run)
    monkeypatch.setenv("IGGY_SYSTEM_PATH", str(tmp_path / "data"))  # a first start
    monkeypatch.setenv("IGGY_SYSTEM_SHARDING_SHARDS", "1")
    monkeypatch.setenv("IGGY_TCP_ADDRESS", f"127.0.0.1:{ports[0]}")
    monkeypatch.setenv("IGGY_KAFKA_ADDRESS", f"127.0.0.1:{ports[1]}")
    assert cli.main(["--with-default-root-credentials"]) == 1
    assert [_connects(port) for port in ports] == [False, False]
    datadir.unlock(datadir.lock(tmp_path / "data"))


def test_a_door_the_full_config_places_elsewhere_is_moved(
    captured_run: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were the early read ever to disagree with the full one, the full one's doors listen:
    the early sockets are closed (here the disagreement is made by hand)."""
    ports = free_port(), free_port()
    real = prebind.open_early

    def early(argv, env):
        found = real(argv, env)
        prebind.listen("tcp", "127.0.0.1", ports[1])  # as if read otherwise
        prebind.listen("kafka", "127.0.0.1", 0)
        return found

    monkeypatch.setattr(prebind, "open_early", early)
    seen = []
    monkeypatch.setattr(server, "run", lambda config, creds, repair_state=False: seen.append(
        (_connects(ports[0]), _connects(ports[1]), sorted(prebind._open))))
    monkeypatch.setenv("IGGY_SYSTEM_PATH", str(tmp_path / "data"))
    monkeypatch.setenv("IGGY_KAFKA_ENABLED", "false")
    monkeypatch.setenv("IGGY_SYSTEM_SHARDING_SHARDS", "1")
    assert cli.main(["--tcp-address", f"127.0.0.1:{ports[0]}"]) == 0
    assert seen == [(True, False, ["tcp"])]


def test_doors_of_a_cluster_replica_or_a_sharded_server_are_not_opened_early(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(None, {})
    config.tcp.address, config.kafka.address = "127.0.0.1:0", "127.0.0.1:0"
    config.kafka.enabled = False
    try:
        assert [d.split()[0] for d in cli.listen_early(config, {})] == ["tcp"]
    finally:
        prebind.close_all()
    config.system.sharding.shards = 2  # every shard binds with SO_REUSEPORT
    assert cli.listen_early(config, {}) == []
    config.system.sharding.shards = 1
    assert cli.listen_early(config, {"PYGGY_SHARD": "1"}) == []  # a shard process
    config.cluster.enabled = True  # a replica opens its doors once it has joined
    assert cli.listen_early(config, {}) == []


def test_main_env_root_credentials(captured_run: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IGGY_ROOT_USERNAME", "admin")
    monkeypatch.setenv("IGGY_ROOT_PASSWORD", "pw")
    assert cli.main([]) == 0
    root = captured_run[0][1]
    assert (root.username, root.password, root.generated) == ("admin", "pw", None)
    monkeypatch.delenv("IGGY_ROOT_PASSWORD")
    assert cli.main([]) == 2  # half-configured root user: refuse to start
    assert len(captured_run) == 1


def test_main_config_errors_exit_2(captured_run: list, tmp_path: Path) -> None:
    assert cli.main(["--config", str(tmp_path / "missing.toml")]) == 2
    assert cli.main(["--tcp-address", "nonsense"]) == 2
    assert captured_run == []


def test_fresh_deletes_data_dir(
    captured_run: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    (data / "streams").mkdir(parents=True)
    (data / "streams" / "x").write_text("old")
    assert cli.main(["--fresh", "--data-path", str(data)]) == 0
    assert [p.name for p in data.iterdir()] == [".lock"]  # emptied, then locked for the run
    shutil.rmtree(data)
    assert cli.main(["--fresh", "--data-path", str(data)]) == 0  # missing dir is fine


def test_fresh_refuses_dangerous_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for target in (".", "/", str(Path.home())):
        with pytest.raises(ConfigError):
            cli.wipe_data(target)
    assert tmp_path.exists()


# --- the server process, through the shared fixtures ---------------------------------------


def test_server_starts_and_logs_its_listener(pyggy_server: PyggyServer) -> None:
    assert pyggy_server.running
    assert pyggy_server.wait_for_log(f"tcp listening on {pyggy_server.tcp_address}")
    host, port = pyggy_server.tcp_address.split(":")
    socket.create_connection((host, int(port)), timeout=5).close()
    assert pyggy_server.data_path.name == "data"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown(pyggy_server: PyggyServer, sig: int) -> None:
    assert pyggy_server.stop(sig) == 0


def test_kill_and_restart_on_same_ports(pyggy_server: PyggyServer) -> None:
    tcp = pyggy_server.tcp_address
    assert pyggy_server.kill() == -signal.SIGKILL
    assert not pyggy_server.running
    pyggy_server.restart()
    assert pyggy_server.running and pyggy_server.tcp_address == tcp
    assert sum("tcp listening on" in line for line in pyggy_server.logs) == 2


def test_factory_env_and_bad_start(pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    a = pyggy_server_factory(env={"IGGY_KAFKA_ENABLED": "false"})
    b = pyggy_server_factory()
    assert a.tcp_address != b.tcp_address and a.data_path != b.data_path
    a.stop()
    assert not any("kafka listening on" in line for line in a.logs)
    bad = pyggy_server_factory(start=False, args=["--config", "missing.toml"])
    with pytest.raises(ServerStartError, match="not found"):
        bad.start(timeout=20)
    assert bad.returncode == 2


def test_a_bad_config_read_after_the_ports_opened_exits_2(
        pyggy_server_factory: Callable[..., PyggyServer]) -> None:
    """The process's early bind (pyggy/prebind.py) reads the addresses; the rest of the
    config is read after and its error is reported as before, exit code 2, ports closed."""
    bad = pyggy_server_factory(start=False, env={"IGGY_SYSTEM_LOGGING_LEVEL": "loud"})
    with pytest.raises(ServerStartError, match="configuration error: system.logging.level"):
        bad.start(timeout=20)
    assert bad.returncode == 2
    assert not _connects(int(bad.tcp_address.rsplit(":", 1)[1]))


def test_the_start_runs_without_garbage_collection_until_the_server_is_ready(
    captured_run: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    during = []
    monkeypatch.setattr(server, "run", lambda config, creds, repair_state=False:
                        during.append(gc.isenabled()))
    monkeypatch.setenv("IGGY_SYSTEM_PATH", str(tmp_path / "data"))
    monkeypatch.setenv("IGGY_TCP_ADDRESS", "127.0.0.1:0")
    monkeypatch.setenv("IGGY_KAFKA_ADDRESS", "127.0.0.1:0")
    assert cli.main([]) == 0
    assert during == [False] and gc.isenabled()  # on again when main returns, whatever happened
    gc.disable()  # as the CLI leaves it for server.serve, which ends the start with:
    try:
        server._started()
        assert gc.isenabled() and gc.get_freeze_count() > 0  # the start's objects: frozen
    finally:
        gc.unfreeze()
        gc.enable()
    server._started()  # a collector someone else's program runs: left alone
    assert gc.get_freeze_count() == 0
