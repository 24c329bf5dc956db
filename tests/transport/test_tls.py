"""TLS on both doors of a real server, with real clients: the Iggy SDK (apache-iggy 0.9.0),
confluent-kafka over SSL and SASL_SSL (PLAIN), kafka-python over SSL, kcat over SSL — once with
the self-signed certificate the server generates, once with one signed by a CA made here.
Plaintext clients on a TLS port are closed, never left hanging; bad TLS settings stop the start.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from apache_iggy import (
    AutoLogin,
    Consumer,
    IggyClient,
    PollingStrategy,
    SendMessage,
    TcpConfig,
    TcpReconnectionConfig,
)
from certs import CertAuthority
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka import Producer
from kafka import KafkaConsumer as PyKafkaConsumer
from kafka import KafkaProducer as PyKafkaProducer
from netclients import closed_within, kafka_api_versions, native_ping

from pyggy.testing import PyggyServer, ServerStartError

HOSTS = ["localhost", "127.0.0.1"]


@dataclass
class TlsServer:
    server: PyggyServer
    ca_file: Path  # what clients trust


def tls_env(chain: Path | None = None, key: Path | None = None) -> dict[str, str]:
    env = {}
    for door in ("TCP", "KAFKA"):
        env[f"IGGY_{door}_TLS_ENABLED"] = "true"
        if chain is not None:
            env |= {f"IGGY_{door}_TLS_SELF_SIGNED": "false",
                    f"IGGY_{door}_TLS_CERT_FILE": str(chain),
                    f"IGGY_{door}_TLS_KEY_FILE": str(key)}
    return env


@pytest.fixture(params=["self-signed", "ca-signed"])
def tls(request, pyggy_server_factory, tmp_path: Path) -> TlsServer:
    if request.param == "ca-signed":
        ca = CertAuthority.create(tmp_path / "ca")
        chain, key = ca.issue(tmp_path / "ca", HOSTS)
        server = pyggy_server_factory(env=tls_env(chain, key))
        trust = ca.cert_file
    else:
        server = pyggy_server_factory(env=tls_env())
        trust = server.data_path / "certs" / "pyggy_cert.pem"
        assert "generated a self-signed TLS certificate" in server.format_logs()
    server.wait_for_log("kafka listening on")
    assert "tcp listening on" in server.format_logs() and " with TLS" in server.format_logs()
    return TlsServer(server, trust)


def sdk_config(server: PyggyServer, ca_file: Path | None, domain: str = "localhost",
               tls: bool = True) -> TcpConfig:
    return TcpConfig(server_address=server.tcp_address, tls_enabled=tls, tls_domain=domain,
                     tls_ca_file=str(ca_file) if ca_file else None,
                     auto_login=AutoLogin.username_password("iggy", "iggy"),
                     reconnection=TcpReconnectionConfig(enabled=False))


def test_iggy_sdk_sends_and_polls_over_tls(tls: TlsServer) -> None:
    async def story() -> list[bytes]:
        client = IggyClient(sdk_config(tls.server, tls.ca_file))
        await client.connect()
        await client.create_stream("secure")
        await client.create_topic("secure", "t", 1)
        await client.send_messages("secure", "t", 0, [SendMessage(f"m{i}") for i in range(50)])
        messages = await client.poll_messages(
            "secure", "t", consumer=Consumer.Single("reader"),
            polling_strategy=PollingStrategy.First(), count=100, auto_commit=False,
            partition_id=0)
        return [m.payload() for m in messages]

    assert asyncio.run(story()) == [f"m{i}".encode() for i in range(50)]


def test_iggy_sdk_refuses_a_server_its_ca_does_not_vouch_for(tls: TlsServer,
                                                             tmp_path: Path) -> None:
    stranger = CertAuthority.create(tmp_path / "stranger", "someone else")

    async def connect() -> None:
        client = IggyClient(sdk_config(tls.server, stranger.cert_file))
        await asyncio.wait_for(client.connect(), 20)
        await client.ping()

    with pytest.raises((RuntimeError, ValueError, OSError, TimeoutError)):
        asyncio.run(connect())


def kafka_config(tls: TlsServer, protocol: str) -> dict[str, str]:
    config = {"bootstrap.servers": tls.server.kafka_address, "security.protocol": protocol,
              "ssl.ca.location": str(tls.ca_file)}
    if protocol == "SASL_SSL":
        config |= {"sasl.mechanisms": "PLAIN", "sasl.username": "iggy", "sasl.password": "iggy"}
    return config


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_confluent_kafka_produces_and_consumes(tls: TlsServer, protocol: str) -> None:
    topic = f"tls-{protocol.lower()}-{uuid.uuid4().hex[:6]}"
    producer = Producer(kafka_config(tls, protocol) | {"acks": "all"})
    for i in range(100):
        producer.produce(topic, f"v{i}".encode(), key=f"k{i}".encode())
    assert producer.flush(30) == 0
    consumer = KafkaConsumer(kafka_config(tls, protocol) | {
        "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(got) < 100 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            got.append(msg.value())
    consumer.close()
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(100))


def test_kafka_python_over_ssl(tls: TlsServer) -> None:
    topic = f"tls-kp-{uuid.uuid4().hex[:6]}"
    common = {"bootstrap_servers": tls.server.kafka_address, "security_protocol": "SSL",
              "ssl_cafile": str(tls.ca_file)}
    producer = PyKafkaProducer(**common)
    for i in range(20):
        producer.send(topic, f"p{i}".encode()).get(timeout=30)
    producer.close()
    consumer = PyKafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=10000,
                               **common)
    assert sorted(m.value for m in consumer) == sorted(f"p{i}".encode() for i in range(20))
    consumer.close()


def kcat(tls: TlsServer, *args: str, data: str | None = None) -> str:
    proc = subprocess.run(
        ["kcat", "-b", tls.server.kafka_address, "-X", "security.protocol=SSL",
         "-X", f"ssl.ca.location={tls.ca_file}", *args],
        input=data, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_kcat_over_ssl(tls: TlsServer) -> None:
    topic = f"tls-kcat-{uuid.uuid4().hex[:6]}"
    kcat(tls, "-P", "-t", topic, data="one\ntwo\nthree\n")
    assert kcat(tls, "-C", "-t", topic, "-o", "beginning", "-e", "-q").split() == \
        ["one", "two", "three"]
    assert topic in kcat(tls, "-L")


def test_plaintext_clients_on_tls_ports_are_closed_not_left_hanging(
        pyggy_server_factory) -> None:
    server = pyggy_server_factory(env=tls_env() | {"IGGY_TCP_FRAME_READ_TIMEOUT": "2 s",
                                                    "IGGY_KAFKA_FRAME_READ_TIMEOUT": "2 s"})
    server.wait_for_log("kafka listening on")
    for port, request in ((server.kafka_port, kafka_api_versions()),
                          (server.tcp_port, native_ping())):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(request)  # not a TLS ClientHello: the handshake fails at once
        assert closed_within(sock, 5) < 5
    silent = socket.create_connection(("127.0.0.1", server.tcp_port), timeout=10)
    assert 1.5 < closed_within(silent, 15) < 15  # no handshake at all: closed at the timeout

    async def sdk_without_tls() -> None:
        client = IggyClient(sdk_config(server, None, tls=False))
        await asyncio.wait_for(client.connect(), 20)
        await asyncio.wait_for(client.ping(), 20)

    with pytest.raises((RuntimeError, ValueError, OSError)):
        asyncio.run(sdk_without_tls())
    ca_file = server.data_path / "certs" / "pyggy_cert.pem"  # the server still serves TLS
    assert asyncio.run(ping_over_tls(server, ca_file))


async def ping_over_tls(server: PyggyServer, ca_file: Path) -> bool:
    client = IggyClient(sdk_config(server, ca_file))
    await client.connect()
    await client.ping()
    return True


def test_the_self_signed_certificate_is_generated_once(pyggy_server_factory) -> None:
    server = pyggy_server_factory(env=tls_env())
    cert = server.data_path / "certs" / "pyggy_cert.pem"
    first = cert.read_bytes()
    assert oct((server.data_path / "certs" / "pyggy_key.pem").stat().st_mode & 0o777) == "0o600"
    server.restart()
    assert cert.read_bytes() == first
    assert "generated a self-signed" not in "\n".join(server.logs[server._start_index:])
    assert asyncio.run(ping_over_tls(server, cert))


@pytest.mark.parametrize(("env", "message"), [
    ({"IGGY_TCP_TLS_ENABLED": "true", "IGGY_TCP_TLS_SELF_SIGNED": "false"},
     "set cert_file and key_file"),
    ({"IGGY_KAFKA_TLS_ENABLED": "true", "IGGY_KAFKA_TLS_SELF_SIGNED": "false",
      "IGGY_KAFKA_TLS_CERT_FILE": "missing.pem", "IGGY_KAFKA_TLS_KEY_FILE": "missing.key"},
     "missing.pem: not found"),
    ({"IGGY_TCP_TLS_ENABLED": "true", "IGGY_TCP_TLS_CERT_FILE": "garbage.pem",
      "IGGY_TCP_TLS_KEY_FILE": "garbage.pem"}, "cannot load certificate"),
    ({"IGGY_TCP_TLS_ENABLD": "true"}, "unknown security setting IGGY_TCP_TLS_ENABLD"),
    ({"IGGY_KAFKA_TLS_ENABLED": "true", "IGGY_KAFKA_TLS_CLIENT_AUTH": "required"},
     "client_auth = 'required' needs ca_file"),
    ({"IGGY_TCP_TLS_CLIENT_AUTH": "always"}, "client_auth must be"),
])
def test_bad_tls_settings_stop_the_start_with_exit_code_2(pyggy_server_factory,
                                                          env: dict[str, str],
                                                          message: str) -> None:
    server = pyggy_server_factory(env=env, start=False)
    server.workdir.mkdir(parents=True, exist_ok=True)
    (server.workdir / "garbage.pem").write_text("not a certificate\n")
    with pytest.raises(ServerStartError, match=message):
        server.start(timeout=20)
    assert server.returncode == 2


def test_readme_tls_examples(pyggy_server_factory) -> None:
    """The README's kcat lines (SSL, SASL_SSL) and SDK snippet, on a server started as the
    README says (both doors with TLS and the generated certificate)."""
    import re
    import sys

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Connections and TLS", 1)[1].split("\n## ", 1)[0]
    shell = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    start, _, kcat_lines = shell.partition("\n")
    assert start.startswith("IGGY_TCP_TLS_ENABLED=true IGGY_KAFKA_TLS_ENABLED=true pyggy-server")
    server = pyggy_server_factory(env=tls_env())
    server.wait_for_log("kafka listening on")
    cert = str(server.data_path / "certs" / "pyggy_cert.pem")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", kcat_lines.replace(
        "127.0.0.1:9092", server.kafka_address).replace("local_data/certs/pyggy_cert.pem", cert)],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(f"broker 0 at {server.kafka_address} (controller)") == 2

    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace("127.0.0.1:8090", server.tcp_address).replace(
        "local_data/certs/pyggy_cert.pem", cert)
    # os._exit: apache-iggy 0.9.0 sometimes aborts at interpreter exit after a login (see
    # tests/test_readme.py); leaving at once after the output keeps the check honest
    program = ("import asyncio, os, sys\n\nasync def main():\n"
               + "".join(f"    {line}\n" for line in code.splitlines())
               + "    await client.ping()\n    print('pong')\n\nasyncio.run(main())\n"
               + "sys.stdout.flush()\nos._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout == "pong\n", out.stderr
