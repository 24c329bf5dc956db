"""Client certificates (mutual TLS): a team gives each service a certificate signed by its own
CA and lets the certificate be the login. The Kafka door requires one (`client_auth =
"required"`, SASL otherwise required too); the Iggy door asks for one (`"requested"`), so an
operator's SDK without a certificate still connects and logs in with a password.

Real clients: confluent-kafka (librdkafka) with `ssl.certificate.location`, the apache-iggy SDK
for the operator, and a raw TLS socket speaking the classic Iggy protocol for the service.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
import uuid
from pathlib import Path

import pytest
from apache_iggy import (
    AutoLogin,
    GlobalPermissions,
    IggyClient,
    Permissions,
    StreamPermissions,
    TcpConfig,
    TopicPermissions,
)
from certs import CertAuthority
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from netclients import kafka_api_versions

from pyggy.testing import PyggyServer

HOSTS = ["localhost", "127.0.0.1"]
GET_PERSONAL_ACCESS_TOKENS = 41  # any logged-in user may list their own tokens
UNAUTHENTICATED = 40


class Pki:
    def __init__(self, root: Path) -> None:
        self.ca = CertAuthority.create(root / "ca", "services CA")
        self.server = self.ca.issue(root / "ca", HOSTS)
        self.alice = self.ca.issue(root / "ca", ["alice"])
        self.mallory = self.ca.issue(root / "ca", ["mallory"])  # no such user
        stranger = CertAuthority.create(root / "stranger", "someone else's CA")
        self.forged_alice = stranger.issue(root / "stranger", ["alice"])


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
def server(pyggy_server_factory, pki: Pki) -> PyggyServer:
    chain, key = pki.server
    env = {"IGGY_KAFKA_AUTHENTICATION": "sasl"}
    for door, mode in (("TCP", "requested"), ("KAFKA", "required")):
        env |= {f"IGGY_{door}_TLS_ENABLED": "true", f"IGGY_{door}_TLS_SELF_SIGNED": "false",
                f"IGGY_{door}_TLS_CERT_FILE": str(chain), f"IGGY_{door}_TLS_KEY_FILE": str(key),
                f"IGGY_{door}_TLS_CLIENT_AUTH": mode,
                f"IGGY_{door}_TLS_CA_FILE": str(pki.ca.cert_file)}
    server = pyggy_server_factory(env=env)
    server.wait_for_log("kafka listening on")
    asyncio.run(_operator_setup(server, pki))
    return server


async def _operator_setup(server: PyggyServer, pki: Pki, tls: bool = True) -> None:
    """The operator (root, password, no certificate) creates the topics and alice, who may
    send to and poll kafka/orders only."""
    over_tls = {"tls_enabled": True, "tls_domain": "localhost",
                "tls_ca_file": str(pki.ca.cert_file)} if tls else {}
    root = IggyClient(TcpConfig(server_address=server.tcp_address, **over_tls,
                                auto_login=AutoLogin.username_password("iggy", "iggy")))
    await root.connect()
    await root.create_stream("kafka")
    await root.create_topic("kafka", "orders", 1)
    await root.create_topic("kafka", "payroll", 1)
    stream = await root.get_stream("kafka")
    orders = await root.get_topic("kafka", "orders")
    await root.create_user("alice", "alice-password-unused-9x", permissions=Permissions(
        GlobalPermissions(), {stream.id: StreamPermissions(topics={
            orders.id: TopicPermissions(poll_messages=True, send_messages=True)})}))


def kafka_config(server: PyggyServer, pki: Pki, cert: tuple[Path, Path] | None) -> dict:
    config = {"bootstrap.servers": server.kafka_address, "security.protocol": "SSL",
              "ssl.ca.location": str(pki.ca.cert_file), "socket.timeout.ms": 5000}
    if cert is not None:
        config |= {"ssl.certificate.location": str(cert[0]),
                   "ssl.key.location": str(cert[1])}
    return config


def test_a_service_certificate_is_its_kafka_login_with_its_users_permissions(
        server: PyggyServer, pki: Pki) -> None:
    produced: list[tuple[str, int]] = []

    def report(err, msg) -> None:
        produced.append((msg.topic(), err.code() if err else 0))

    producer = Producer(kafka_config(server, pki, pki.alice) | {
        "acks": "all", "message.timeout.ms": 20000, "retries": 0})
    for i in range(10):
        producer.produce("orders", f"order-{i}".encode(), on_delivery=report)
    producer.produce("payroll", b"not alice's", on_delivery=report)
    assert producer.flush(30) == 0
    assert sorted(produced) == sorted([("orders", 0)] * 10 + [
        ("payroll", KafkaError.TOPIC_AUTHORIZATION_FAILED)])
    assert "orders" in producer.list_topics(timeout=10).topics
    assert "payroll" not in producer.list_topics(timeout=10).topics  # hidden from alice

    consumer = Consumer(kafka_config(server, pki, pki.alice) | {
        "group.id": f"billing-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    consumer.assign([TopicPartition("orders", 0, 0)])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    while len(got) < 10 and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            got.append(msg.value())
    consumer.close()
    assert got == [f"order-{i}".encode() for i in range(10)]
    assert "login: user 'alice' from 127.0.0.1 (kafka door, certificate)" in \
        server.format_logs()


def _handshake(server: PyggyServer, pki: Pki, cert: tuple[Path, Path] | None,
               port: int) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(pki.ca.cert_file))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
def test_the_kafka_door_admits_no_client_without_a_trusted_certificate(
        server: PyggyServer, pki: Pki, who: str) -> None:
    cert = None if who == "no certificate" else pki.forged_alice
    port = int(server.kafka_address.rsplit(":", 1)[1])
    started = time.monotonic()
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        # TLS 1.3 finishes the client's side of the handshake first: the refusal arrives
        # with the first read, as an alert or a closed connection — never a served request
        sock = _handshake(server, pki, cert, port)
        sock.sendall(kafka_api_versions())
        if not sock.recv(4):
            raise ConnectionError("closed")
    assert time.monotonic() - started < 5  # refused at once, not left to a timeout
    producer = Producer(kafka_config(server, pki, cert))
    with pytest.raises(KafkaException):
        producer.list_topics(timeout=5)


def test_a_certificate_naming_no_user_authenticates_nobody(server: PyggyServer,
                                                           pki: Pki) -> None:
    port = int(server.kafka_address.rsplit(":", 1)[1])
    sock = _handshake(server, pki, pki.mallory, port)  # the CA vouches for it: TLS succeeds
    sock.sendall(kafka_api_versions())  # allowed before a login
    assert len(sock.recv(4)) == 4
    sock.close()
    producer = Producer(kafka_config(server, pki, pki.mallory))
    with pytest.raises(KafkaException):  # anything else closes the connection (SASL needed)
        producer.list_topics(timeout=5)
    logs = server.format_logs()
    assert "login failed: user 'mallory' from 127.0.0.1 (kafka door, certificate): the " \
           "certificate names no active user" in logs


def _classic(sock: ssl.SSLSocket, code: int, payload: bytes = b"") -> int:
    """One classic-protocol request; the reply's status."""
    sock.sendall(struct.pack("<II", 4 + len(payload), code) + payload)
    header = b""
    while len(header) < 8:
        chunk = sock.recv(8 - len(header))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        header += chunk
    status, length = struct.unpack("<II", header)
    while length:
        length -= len(sock.recv(length))
    return status


def test_on_the_iggy_door_the_certificate_logs_the_connection_in(server: PyggyServer,
                                                                 pki: Pki) -> None:
    port = int(server.tcp_address.rsplit(":", 1)[1])
    with _handshake(server, pki, pki.alice, port) as sock:
        assert _classic(sock, GET_PERSONAL_ACCESS_TOKENS) == 0  # no login sent
    with _handshake(server, pki, None, port) as sock:  # "requested": admitted, not logged in
        assert _classic(sock, GET_PERSONAL_ACCESS_TOKENS) == UNAUTHENTICATED
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        with _handshake(server, pki, pki.forged_alice, port) as sock:
            _classic(sock, GET_PERSONAL_ACCESS_TOKENS)
    assert "login: user 'alice' from 127.0.0.1 (iggy door, certificate)" in server.format_logs()


def test_readme_mutual_tls_example(pyggy_server_factory, pki: Pki) -> None:
    """README's mutual TLS lines: the server as started there, alice's kcat listing topics."""
    import re
    import subprocess

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("**Client certificates (mutual TLS).**", 1)[1].split("\n## ", 1)[0]
    shell = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    start, _, kcat_line = shell.partition("pyggy-server\n")
    env = dict(re.findall(r"(IGGY_\w+)=(\S+)", start))
    assert env == {"IGGY_KAFKA_TLS_ENABLED": "true", "IGGY_KAFKA_TLS_CLIENT_AUTH": "required",
                   "IGGY_KAFKA_TLS_CA_FILE": "clients-ca.pem"}
    server = pyggy_server_factory(env=env | {"IGGY_KAFKA_TLS_CA_FILE": str(pki.ca.cert_file)})
    server.wait_for_log("kafka listening on")
    asyncio.run(_operator_setup(server, pki, tls=False))
    cert = str(server.data_path / "certs" / "pyggy_cert.pem")
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", kcat_line
                          .replace("127.0.0.1:9092", server.kafka_address)
                          .replace("local_data/certs/pyggy_cert.pem", cert)
                          .replace("alice-key.pem", str(pki.alice[1]))
                          .replace("alice.pem", str(pki.alice[0]))],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert 'topic "orders"' in out.stdout and "payroll" not in out.stdout  # alice's view
