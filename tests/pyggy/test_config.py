"""Config loading: units, TOML, env overrides, precedence, unknown keys."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pyggy.core.units import format_duration, format_size, parse_duration, parse_size

from pyggy.config import (
    ConfigError,
    ServerConfig,
    env_settings,
    iter_settings,
    load_config,
    split_address,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30 s", 30),
        ("30s", 30),
        ("1 m", 60),
        ("7 days", 7 * 86400),
        ("500ms", 0.5),
        ("1h 30m", 5400),
        ("2h30m", 9000),
        ("0 s", 0),
        ("1 M", 2_630_016),
        ("1.5 s", 1.5),
        ("10", 10),
        (5, 5),
        (2.5, 2.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "30 parsecs", "1 S", "-1 s", "1 s x", True, -3])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("64 MiB", 64 * 1024**2),
        ("1 GB", 10**9),
        ("100 KB", 100_000),
        ("100 kb", 100_000),
        ("1200 B", 1200),
        ("4 GiB", 4 * 1024**3),
        ("1.5 KiB", 1536),
        ("2MB", 2_000_000),
        ("1024", 1024),
        (4096, 4096),
    ],
)
def test_parse_size(text: str | int, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["", "MiB", "10 XB", "1 GiBs", "-1 B", False])
def test_parse_size_rejects(text: object) -> None:
    with pytest.raises(ValueError):
        parse_size(text)  # type: ignore[arg-type]


def test_format_round_trips() -> None:
    for seconds in (30, 60, 3600, 7 * 86400, 0.5, 0):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
    for nbytes in (64 * 1024**2, 1024**3, 1000, 0):
        assert parse_size(format_size(nbytes)) == nbytes


def test_defaults() -> None:
    c = load_config(None, {})
    assert c == ServerConfig()
    assert c.system.path == "local_data"
    assert c.tcp.address == "127.0.0.1:8090" and c.tcp.enabled
    assert c.tcp.max_frame_size == 64 * 1024 * 1024
    assert not c.http.enabled
    assert c.kafka.enabled and c.kafka.address == "127.0.0.1:9092"
    assert c.kafka.auto_create_topics
    assert c.heartbeat.interval == 30.0
    assert c.data_maintenance.messages.cleaner_enabled
    assert c.data_maintenance.messages.interval == 60.0
    assert not c.data_maintenance.archiver.enabled
    assert c.personal_access_token.max_tokens_per_user == 100
    assert c.system.partition.validate_checksum and c.system.state.enforce_fsync
    assert c.tcp.max_connections == c.kafka.max_connections == 10_000
    assert c.tcp.frame_read_timeout == c.kafka.frame_read_timeout == 30.0
    assert c.tcp.auth_timeout == 10.0 and c.kafka.connections_max_idle == 600.0
    assert not c.tcp.tls.enabled and c.tcp.tls.self_signed and not c.kafka.tls.enabled


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return str(path)


TOML = """
[system]
path = "/var/lib/pyggy"

[system.partition]
validate_checksum = false

[tcp]
address = "0.0.0.0:18090"
max_frame_size = "1 MiB"

[kafka]
address = "0.0.0.0:19092"
advertised_host = "broker.example"
advertised_port = 29092

[heartbeat]
interval = "5 s"

[data_maintenance.messages]
cleaner_enabled = false
interval = "500ms"

[telemetry.traces]
transport = "http"
"""


def test_toml_file(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, TOML), {})
    assert c.system.path == "/var/lib/pyggy"
    assert not c.system.partition.validate_checksum
    assert c.tcp.address == "0.0.0.0:18090"
    assert c.tcp.max_frame_size == 1024 * 1024
    assert c.kafka.advertised() == ("broker.example", 29092)
    assert c.heartbeat.interval == 5.0
    assert not c.data_maintenance.messages.cleaner_enabled
    assert c.data_maintenance.messages.interval == 0.5
    assert c.telemetry.traces.transport == "http"
    assert c.telemetry.logs.transport == "grpc"  # untouched sibling keeps its default


def test_config_path_from_env(tmp_path: Path) -> None:
    path = write(tmp_path, "[tcp]\naddress = '127.0.0.1:1111'\n")
    assert load_config(None, {"IGGY_CONFIG_PATH": path}).tcp.address == "127.0.0.1:1111"
    other = tmp_path / "other.toml"
    other.write_text("[tcp]\naddress = '127.0.0.1:2222'\n")
    # --config wins over IGGY_CONFIG_PATH
    assert load_config(str(other), {"IGGY_CONFIG_PATH": path}).tcp.address == "127.0.0.1:2222"


def test_env_overrides_with_coercion() -> None:
    env = {
        "IGGY_SYSTEM_PATH": "/data",
        "IGGY_TCP_ADDRESS": "127.0.0.1:9000",
        "IGGY_TCP_MAX_FRAME_SIZE": "2 MiB",
        "IGGY_HTTP_ENABLED": "true",
        "IGGY_HTTP_ADDRESS": "127.0.0.1:3001",
        "IGGY_KAFKA_ENABLED": "false",
        "IGGY_KAFKA_ADDRESS": "127.0.0.1:9093",
        "IGGY_KAFKA_ADVERTISED_PORT": "19093",
        "IGGY_DATA_MAINTENANCE_MESSAGES_CLEANER_ENABLED": "0",
        "IGGY_HEARTBEAT_INTERVAL": "1 m",
        "IGGY_PERSONAL_ACCESS_TOKEN_MAX_TOKENS_PER_USER": "7",
        "IGGY_SYSTEM_PARTITION_VALIDATE_CHECKSUM": "no",
        "IGGY_ROOT_PASSWORD": "secret",  # not a config key: ignored
        "IGGY_QUIC_ENABLED": "true",  # Iggy key we do not have: ignored
        "PATH": "/usr/bin",
    }
    c = load_config(None, env)
    assert c.system.path == "/data"
    assert c.tcp.address == "127.0.0.1:9000"
    assert c.tcp.max_frame_size == 2 * 1024 * 1024
    assert c.http.enabled and c.http.address == "127.0.0.1:3001"
    assert not c.kafka.enabled and c.kafka.address == "127.0.0.1:9093"
    assert c.kafka.advertised() == ("127.0.0.1", 19093)
    assert not c.data_maintenance.messages.cleaner_enabled
    assert c.heartbeat.interval == 60.0
    assert c.personal_access_token.max_tokens_per_user == 7
    assert not c.system.partition.validate_checksum


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IGGY_HTTP_ENABLED", "maybe"),
        ("IGGY_KAFKA_ADVERTISED_PORT", "x"),
        ("IGGY_HEARTBEAT_INTERVAL", "soon"),
        ("IGGY_TCP_MAX_FRAME_SIZE", "big"),
        ("IGGY_TCP_ADDRESS", "localhost"),
        ("IGGY_HEARTBEAT_INTERVAL", "0 s"),
    ],
)
def test_bad_env_value_names_the_key(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name.split("_")[1].lower()):
        load_config(None, {name: value})


def test_precedence_defaults_file_env(tmp_path: Path) -> None:
    path = write(tmp_path, "[tcp]\naddress = '127.0.0.1:1111'\n[system]\npath = 'from-file'\n")
    c = load_config(path, {"IGGY_TCP_ADDRESS": "127.0.0.1:2222"})
    assert c.tcp.address == "127.0.0.1:2222"  # env beats file
    assert c.system.path == "from-file"  # file beats default
    assert c.kafka.address == "127.0.0.1:9092"  # default


def test_unknown_keys_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    text = ("[tcp]\nbogus = 1\naddress = '127.0.0.1:1'\n[websocket]\nenabled = true\n"
            "[quic]\nx = 1\n")
    with caplog.at_level(logging.WARNING, logger="pyggy.config"):
        c = load_config(write(tmp_path, text), {"IGGY_QUIC_ENABLED": "true"})
    assert c.tcp.address == "127.0.0.1:1"
    messages = [r.getMessage() for r in caplog.records]
    assert any("'tcp.bogus'" in m for m in messages)
    assert any("'websocket'" in m for m in messages)
    assert any("'quic'" in m for m in messages)
    assert any("IGGY_QUIC_ENABLED" in m for m in messages)


def test_tls_keys_are_known_in_files_and_environment(tmp_path: Path) -> None:
    text = ("[tcp.tls]\nenabled = true\ncert_file = 'c.pem'\nkey_file = 'k.pem'\n"
            "[kafka.tls]\nenabled = true\n")
    c = load_config(write(tmp_path, text), {"IGGY_KAFKA_TLS_SELF_SIGNED": "false",
                                             "IGGY_KAFKA_TLS_CERT_FILE": "kc.pem",
                                             "IGGY_KAFKA_TLS_KEY_FILE": "kk.pem"})
    assert c.tcp.tls.enabled and c.tcp.tls.cert_file == "c.pem" and c.tcp.tls.self_signed
    assert c.kafka.tls.enabled and not c.kafka.tls.self_signed
    assert c.kafka.tls.cert_file == "kc.pem" and c.kafka.tls.key_file == "kk.pem"
    assert load_config(None, {"IGGY_TCP_TLS_ENABLED": "true"}).tcp.tls.enabled
    mutual = load_config(None, {"IGGY_KAFKA_TLS_ENABLED": "true",
                                "IGGY_KAFKA_TLS_CLIENT_AUTH": "required",
                                "IGGY_KAFKA_TLS_CA_FILE": "clients.pem"}).kafka.tls
    assert (mutual.client_auth, mutual.ca_file) == ("required", "clients.pem")
    with pytest.raises(ConfigError, match="needs ca_file"):
        load_config(None, {"IGGY_TCP_TLS_ENABLED": "true", "IGGY_TCP_TLS_CLIENT_AUTH": "requested"})


@pytest.mark.parametrize("text", [
    "[tcp.tls]\nenabled = true\nclient_ca = 'ca.pem'\n",  # a TLS key pyggy lacks
    "[tcp.tls]\nenable = true\n",  # a typo: TLS would silently stay off
    "[kafka]\nauthentication_mode = 'sasl'\n",  # not pyggy's key: auth must not be guessed
    "[kafka]\nauth_timout = '5 s'\n",
    "[kafka.sasl]\nmechanisms = ['PLAIN']\n",
    "[http.tls]\nenabled = true\nclient_ca = 'ca.pem'\n",  # known section, unknown key
    "[cluster.auth]\nshared_secrt = 'x'\n",
])
def test_unknown_security_keys_stop_the_start(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="unknown security setting"):
        load_config(write(tmp_path, text), {})


@pytest.mark.parametrize("env", [
    {"IGGY_TCP_TLS_ENABLD": "true"},
    {"IGGY_KAFKA_AUTHENTICATION_MODE": "sasl"},
    {"IGGY_HTTP_TLS_CLIENT_CA": "c.pem"},
    {"IGGY_KAFKA_SSL_KEYSTORE": "x"},
])
def test_unknown_security_variables_stop_the_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(env))):
        load_config(None, env)


def test_security_sections_switched_off_only_warn(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Iggy's own config has [http.tls] and [websocket.tls] with enabled = false: harmless."""
    text = ("[http.tls]\nenabled = false\nclient_ca = 'c.pem'\n"
            "[websocket.tls]\nenabled = false\n[tcp.tls]\nenabled = false\nclient_ca = 'x'\n")
    env = {"IGGY_HTTP_TLS_ENABLED": "false", "IGGY_HTTP_TLS_CLIENT_CA": "k.pem"}
    with caplog.at_level(logging.WARNING, logger="pyggy.config"):
        c = load_config(write(tmp_path, text), env)
    assert not c.tcp.tls.enabled
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "http.tls" in messages and "IGGY_HTTP_TLS_CLIENT_CA" in messages


@pytest.mark.parametrize("text", [
    "[tcp]\nmax_connections = 0\n",
    "[kafka]\nconnections_max_idle = -1\n",
    "[tcp.tls]\nenabled = true\nself_signed = false\n",
    "[kafka.tls]\nenabled = true\ncert_file = 'c.pem'\n",
])
def test_invalid_connection_settings(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text), {})


@pytest.mark.parametrize(
    "text",
    [
        "[tcp]\nenabled = 'perhaps'\n",
        "[tcp]\naddress = 8090\n",
        "tcp = 1\n",
        "[tcp.address]\nx = 1\n",
        "[kafka]\nadvertised_port = 70000\n",
        "[data_maintenance.archiver]\nkind = 'tape'\n",
        "[system.logging]\nlevel = 'loud'\n",
        "not toml at all [",
    ],
)
def test_invalid_file_values(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text), {})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "nope.toml"), {})


def test_split_address() -> None:
    assert split_address("127.0.0.1:8090") == ("127.0.0.1", 8090)
    assert split_address("[::1]:9092") == ("::1", 9092)
    assert split_address("0.0.0.0:0") == ("0.0.0.0", 0)
    for bad in ("8090", "host:", "host:99999", "::1:80"):
        with pytest.raises(ConfigError):
            split_address(bad)


def test_env_names_unique_and_complete() -> None:
    settings = list(iter_settings())
    assert len(env_settings()) == len(settings)
    assert {"IGGY_SYSTEM_PATH", "IGGY_TCP_ADDRESS", "IGGY_HTTP_ENABLED", "IGGY_HTTP_ADDRESS",
            "IGGY_KAFKA_ENABLED", "IGGY_KAFKA_ADDRESS"} <= set(env_settings())


def test_list_settings_from_toml_and_environment(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, "[http.cors]\nallowed_origins = ['https://a', 'https://b']\n"),
                    {"IGGY_HTTP_CORS_ALLOWED_METHODS": "GET, POST"})
    assert c.http.cors.allowed_origins == ["https://a", "https://b"]
    assert c.http.cors.allowed_methods == ["GET", "POST"]
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, "[http.cors]\nallowed_origins = [1]\n"), {})


def test_every_setting_round_trips_through_env() -> None:
    """Each default, rendered as an env string, parses back to itself."""
    env = {}
    for s in iter_settings():
        if s.kind == "duration":
            env[s.env] = format_duration(s.default)
        elif s.kind == "size":
            env[s.env] = format_size(s.default)
        elif s.kind == "list":
            env[s.env] = ",".join(s.default)
        else:
            env[s.env] = str(s.default).lower() if s.kind == "bool" else str(s.default)
    assert load_config(None, env) == ServerConfig()


def test_the_cached_hints_of_every_section_are_what_get_type_hints_gives() -> None:
    """`config._hints` evaluates each annotation text once instead of calling
    `typing.get_type_hints` per section (start-up): the same values for every class."""
    import dataclasses
    import typing

    from pyggy import config

    classes = [c for c in vars(config).values()
               if isinstance(c, type) and dataclasses.is_dataclass(c)]
    assert len(classes) > 30
    for cls in classes:
        assert config._hints(cls) == typing.get_type_hints(cls, include_extras=True), cls
