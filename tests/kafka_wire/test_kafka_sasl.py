"""SASL on the Kafka door: SaslHandshake v0/v1 and SaslAuthenticate v0-2 with PLAIN in process
(state machine, raw v0 tokens, refusals), then kafka-python, confluent-kafka and aiokafka
authenticating against a real server with pyggy's users. SCRAM, tokens and KIP-368 are in
test_kafka_authorization.py and test_scram.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_door import Door
from pyggy.core.engine import LogEngine
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.context import CloseConnection, KafkaServer

from pyggy.testing import PyggyServer

HANDSHAKE, API_VERSIONS, METADATA, AUTHENTICATE = 17, 18, 3, 36
NONE, UNSUPPORTED_MECHANISM, ILLEGAL_STATE, AUTH_FAILED = \
    E.NONE, E.UNSUPPORTED_SASL_MECHANISM, E.ILLEGAL_SASL_STATE, E.SASL_AUTHENTICATION_FAILED
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KafkaServer]:
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    asyncio.run(engine.identity.create_user("alice", "secret", 1, None))
    asyncio.run(engine.identity.create_user("sleepy", "secret", 2, None))
    yield KafkaServer(engine)
    engine.close()


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("version", [0, 1, 2])
def test_handshake_v1_then_authenticate(server: KafkaServer, version: int) -> None:
    async def go() -> None:
        door = Door(server)
        r = await door.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})
        assert r == {"error_code": NONE, "mechanisms": MECHANISMS}
        await door.call(API_VERSIONS, 3, {"client_software_name": "t",
                                          "client_software_version": "1"})  # allowed
        r = await door.call(AUTHENTICATE, version, {"auth_bytes": b"\x00alice\x00secret"})
        assert (r["error_code"], r["error_message"], r["auth_bytes"]) == (NONE, None, b"")
        assert door.conn.user.username == "alice" and not door.conn.close_after_reply
        assert (await door.call(METADATA, 12, {"topics": []}))["brokers"]
        r = await door.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})  # no re-authentication
        assert r["error_code"] == ILLEGAL_STATE and door.conn.close_after_reply

    run(go())


@pytest.mark.parametrize("token", [b"\x00alice\x00wrong", b"\x00nobody\x00secret",
                                   b"\x00sleepy\x00secret", b"bob\x00alice\x00secret",
                                   b"alice\x00secret", b"\x00\x00secret", b"\xff\x00a\x00b"])
def test_bad_credentials_fail_and_close(server: KafkaServer, token: bytes) -> None:
    async def go() -> None:
        door = Door(server)
        await door.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})
        r = await door.call(AUTHENTICATE, 1, {"auth_bytes": token})
        assert r["error_code"] == AUTH_FAILED and r["error_message"].startswith(
            "Authentication failed")
        assert door.conn.close_after_reply and door.conn.user is None

    run(go())


def test_matching_authzid_is_accepted(server: KafkaServer) -> None:
    async def go() -> None:
        door = Door(server)
        await door.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})
        r = await door.call(AUTHENTICATE, 2, {"auth_bytes": b"alice\x00alice\x00secret"})
        assert r["error_code"] == NONE

    run(go())


def test_requests_before_authentication_close_the_connection(server: KafkaServer) -> None:
    async def go() -> None:
        door = Door(server)
        await door.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})
        with pytest.raises(CloseConnection):
            await door.call(METADATA, 12, {"topics": []})

    run(go())


def test_unsupported_mechanism_and_out_of_order_authenticate(server: KafkaServer) -> None:
    async def go() -> None:
        door = Door(server)
        r = await door.call(HANDSHAKE, 1, {"mechanism": "GSSAPI"})
        assert r == {"error_code": UNSUPPORTED_MECHANISM, "mechanisms": MECHANISMS}
        assert door.conn.close_after_reply
        other = Door(server)
        r = await other.call(AUTHENTICATE, 1, {"auth_bytes": b"\x00alice\x00secret"})
        assert r["error_code"] == ILLEGAL_STATE and other.conn.close_after_reply

    run(go())


def test_handshake_v0_raw_tokens(server: KafkaServer) -> None:
    async def go() -> None:
        door = Door(server)
        r = await door.call(HANDSHAKE, 0, {"mechanism": "PLAIN"})
        assert r["error_code"] == NONE
        assert await door.raw(b"\x00alice\x00secret") == b"\x00\x00\x00\x00"
        assert door.conn.user.username == "alice"
        assert (await door.call(METADATA, 1, {"topics": None}))["brokers"]
        bad = Door(server)
        await bad.call(HANDSHAKE, 0, {"mechanism": "PLAIN"})
        with pytest.raises(CloseConnection):
            await bad.raw(b"\x00alice\x00nope")

    run(go())


def test_no_sasl_is_still_served(server: KafkaServer) -> None:
    door = Door(server)
    assert run(door.call(METADATA, 12, {"topics": []}))["brokers"]
    assert door.conn.user is None


# -- real clients ---------------------------------------------------------------------------
@pytest.fixture
def live(pyggy_server: PyggyServer) -> PyggyServer:
    pyggy_server.wait_for_log("kafka listening on")
    return pyggy_server


@pytest.mark.timeout(120)
def test_clients_authenticate_with_pyggy_users(live: PyggyServer) -> None:
    from confluent_kafka.admin import AdminClient
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    kp = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
              sasl_plain_username="iggy", sasl_plain_password="iggy")
    admin = KafkaAdminClient(bootstrap_servers=live.kafka_address, **kp)
    admin.create_topics({"sasl-topic": {"num_partitions": 2}})
    admin.close()
    with pytest.raises(KafkaError):
        bad = KafkaAdminClient(bootstrap_servers=live.kafka_address, request_timeout_ms=3000,
                               **(kp | {"sasl_plain_password": "wrong"}))
        bad.list_topics()

    ck = {"bootstrap.servers": live.kafka_address, "security.protocol": "SASL_PLAINTEXT",
          "sasl.mechanisms": "PLAIN", "sasl.username": "iggy", "sasl.password": "iggy"}
    assert "sasl-topic" in AdminClient(ck).list_topics(timeout=10).topics
    with pytest.raises(Exception, match="transport|Authentication"):
        AdminClient(ck | {"sasl.password": "wrong"}).list_topics(timeout=3)

    from aiokafka.admin import AIOKafkaAdminClient

    async def aio() -> list:
        a = AIOKafkaAdminClient(bootstrap_servers=live.kafka_address,
                                security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                                sasl_plain_username="iggy", sasl_plain_password="iggy")
        await a.start()
        try:
            return await a.list_topics()
        finally:
            await a.close()

    assert "sasl-topic" in asyncio.run(aio())
