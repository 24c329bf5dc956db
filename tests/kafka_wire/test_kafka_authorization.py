"""Authorization on the Kafka door, in process: requests built with the codec go through
`dispatch.handle_frame` as a user with Iggy permissions, and the responses are decoded
strictly. Real clients (confluent-kafka, kafka-python, kcat, the Iggy SDK, Java) run the
same rules in tests/scenarios/test_security_matrix.py.

The cast: alice may poll kafka/orders and send to kafka/public; bob manages the topics of the
stream `secret`; carol has no permission; dave reads servers; admin manages users.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from kafka_door import Door as BaseDoor
from pyggy.core.engine import LogEngine
from pyggy.core.model import GlobalPermissions, Permissions, StreamPermissions, TopicPermissions
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire import authorizer as authz
from pyggy.kafka_wire.context import CloseConnection, KafkaServer
from pyggy.kafka_wire.groups import GroupCoordinator, MemoryOffsetStore
from pyggy.kafka_wire.protocol.codec import encode_versioned
from pyggy.kafka_wire.settings import KafkaSettings
from sasl_support import ScramClient

PRODUCE, FETCH, LIST_OFFSETS, METADATA, OFFSET_COMMIT, OFFSET_FETCH = 0, 1, 2, 3, 8, 9
FIND_COORDINATOR, JOIN, DESCRIBE_GROUPS, LIST_GROUPS, HANDSHAKE, API_VERSIONS = \
    10, 11, 15, 16, 17, 18
CREATE_TOPICS, DELETE_TOPICS, DELETE_RECORDS, INIT_PID = 19, 20, 21, 22
DESCRIBE_ACLS, CREATE_ACLS, DELETE_ACLS, DESCRIBE_CONFIGS, ALTER_CONFIGS = 29, 30, 31, 32, 33
AUTHENTICATE, CREATE_PARTITIONS, DELETE_GROUPS = 36, 37, 42
DESCRIBE_SCRAM, ALTER_SCRAM, DESCRIBE_CLUSTER = 50, 51, 60
NONE, UNKNOWN_TOPIC = E.NONE, E.UNKNOWN_TOPIC_OR_PARTITION
TOPIC_DENIED, GROUP_DENIED, CLUSTER_DENIED = \
    E.TOPIC_AUTHORIZATION_FAILED, E.GROUP_AUTHORIZATION_FAILED, E.CLUSTER_AUTHORIZATION_FAILED
INVALID_REQUEST, AUTH_FAILED, MEMBER_ID_REQUIRED = \
    E.INVALID_REQUEST, E.SASL_AUTHENTICATION_FAILED, E.MEMBER_ID_REQUIRED
TOPIC_RES, GROUP_RES, CLUSTER_RES = 2, 3, 4
ANY, LITERAL, PREFIXED, ALLOW, DENY = 1, 3, 4, 3, 2
READ, WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS_OP = 3, 4, 5, 8, 10
ALL_TOPIC_OPS = {3, 4, 5, 6, 7, 8, 10, 11}


class Door(BaseDoor):
    def __init__(self, server: KafkaServer, user: str | None = None) -> None:
        super().__init__(server, "authz-test")
        if user is not None:
            self.conn.user = server.engine.identity.user(user)
            self.conn.sasl = "done"

    async def metadata(self, names: list[str] | None, version: int = 12,
                       auto_create: bool = True, ops: bool = False) -> dict:
        topics = None if names is None else [{"name": n, "topic_id": bytes(16)} for n in names]
        return await self.call(METADATA, version, {
            "topics": topics, "allow_auto_topic_creation": auto_create,
            "include_topic_authorized_operations": ops,
            "include_cluster_authorized_operations": ops})

    async def produce_code(self, topic: str) -> int:
        r = await self.call(PRODUCE, 9, {"acks": 1, "timeout_ms": 1000, "topic_data": [
            {"name": topic, "partition_data": [{"index": 0, "records": None}]}]})
        return r["responses"][0]["partition_responses"][0]["error_code"]

    async def fetch_code(self, topic: str) -> int:
        r = await self.call(FETCH, 12, {"max_wait_ms": 0, "min_bytes": 1, "topics": [
            {"topic": topic, "partitions": [{"partition": 0, "fetch_offset": 0,
                                             "partition_max_bytes": 1024}]}]})
        return r["responses"][0]["partitions"][0]["error_code"]

    async def list_offsets_code(self, topic: str) -> int:
        r = await self.call(LIST_OFFSETS, 7, {"replica_id": -1, "topics": [
            {"name": topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}]})
        return r["topics"][0]["partitions"][0]["error_code"]

    async def create_code(self, topic: str) -> int:
        r = await self.call(CREATE_TOPICS, 7, {"topics": [
            {"name": topic, "num_partitions": 1, "replication_factor": -1, "assignments": [],
             "configs": []}], "timeout_ms": 1000, "validate_only": False})
        return r["topics"][0]["error_code"]

    async def delete_code(self, topic: str) -> int:
        r = await self.call(DELETE_TOPICS, 6, {"topics": [
            {"name": topic, "topic_id": bytes(16)}], "timeout_ms": 1000})
        return r["responses"][0]["error_code"]

    async def commit_code(self, group: str, topic: str) -> int:
        r = await self.call(OFFSET_COMMIT, 9, {
            "group_id": group, "generation_id_or_member_epoch": -1, "member_id": "",
            "group_instance_id": None, "topics": [{"name": topic, "partitions": [
                {"partition_index": 0, "committed_offset": 0, "committed_leader_epoch": -1,
                 "committed_metadata": None}]}]})
        return r["topics"][0]["partitions"][0]["error_code"]


def perms(global_: GlobalPermissions | None = None,
          streams: dict | None = None) -> Permissions:
    return Permissions(global_ or GlobalPermissions(), streams or {})


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KafkaServer]:
    e = LogEngine(tmp_path / "data", state_fsync=False)
    e.open(("iggy", "iggy"))
    kafka = asyncio.run(e.metadata.create_stream("kafka"))
    orders = asyncio.run(e.metadata.create_topic("kafka", "orders", 1))
    public = asyncio.run(e.metadata.create_topic("kafka", "public", 1))
    secret = asyncio.run(e.metadata.create_stream("secret"))
    asyncio.run(e.metadata.create_topic("secret", "x", 1))
    asyncio.run(e.identity.create_user("alice", "alice-pw", 1, perms(streams={
        kafka.id: StreamPermissions(topics={orders.id: TopicPermissions(poll_messages=True),
                                            public.id: TopicPermissions(send_messages=True)})})))
    asyncio.run(e.identity.create_user("bob", "bob-pw", 1, perms(streams={
        secret.id: StreamPermissions(manage_topics=True)})))
    asyncio.run(e.identity.create_user("carol", "carol-pw", 1, None))
    asyncio.run(
        e.identity.create_user("dave", "dave-pw", 1, perms(GlobalPermissions(read_servers=True))))
    asyncio.run(
        e.identity.create_user("admin", "admin-pw", 1, perms(GlobalPermissions(manage_users=True))))
    s = KafkaServer(e, KafkaSettings(requires_auth=True))
    s.coordinator = GroupCoordinator(e.clock, MemoryOffsetStore(),
                                     partition_exists=lambda t, p: True)
    yield s
    e.close()


def run(coro):
    return asyncio.run(coro)


def names(r: dict) -> set[str]:
    return {t["name"] for t in r["topics"] if t["error_code"] == NONE}


def test_metadata_lists_only_topics_the_principal_may_describe(server: KafkaServer) -> None:
    async def go() -> None:
        assert names(await Door(server, "alice").metadata(None)) == {"orders", "public"}
        assert names(await Door(server, "bob").metadata(None)) == {"secret.x"}
        assert names(await Door(server, "carol").metadata(None)) == set()
        assert names(await Door(server, "iggy").metadata(None)) == {"orders", "public",
                                                                     "secret.x"}
        carol = Door(server, "carol")
        r = await carol.metadata(["orders", "secret.x", "no-such-topic"])
        assert [t["error_code"] for t in r["topics"]] == [TOPIC_DENIED] * 3  # no oracle
        assert server.topics.resolve("no-such-topic") is None  # and nothing was created

    run(go())


def test_auto_create_needs_the_create_right_where_the_name_goes(server: KafkaServer) -> None:
    async def go() -> None:
        bob, alice = Door(server, "bob"), Door(server, "alice")
        r = await bob.metadata(["secret.auto"])
        assert r["topics"][0]["error_code"] == NONE
        t = server.topics.resolve("secret.auto")
        assert server.engine.metadata.stream_name(t.stream_id) == "secret" and t.name == "auto"
        r = await alice.metadata(["invented"])  # alice may not create in stream kafka
        assert r["topics"][0]["error_code"] == TOPIC_DENIED
        assert server.topics.resolve("invented") is None
        r = await bob.metadata(["kafka-side"], auto_create=False)
        assert r["topics"][0]["error_code"] == TOPIC_DENIED  # bob may not describe there

    run(go())


def test_create_topics_follows_the_stream_naming_rule(server: KafkaServer) -> None:
    async def go() -> None:
        root = Door(server, "iggy")
        assert await root.create_code("secret.made") == NONE
        made = server.topics.resolve("secret.made")
        assert (server.engine.metadata.stream_name(made.stream_id), made.name) == ("secret", "made")
        assert await root.create_code("nostream.z") == NONE  # no such stream: default stream
        z = server.topics.resolve("nostream.z")
        assert (server.engine.metadata.stream_name(z.stream_id), z.name) == ("kafka", "nostream.z")
        bob = Door(server, "bob")
        assert await bob.create_code("secret.bobs") == NONE
        assert await bob.create_code("bobs-in-kafka") == TOPIC_DENIED
        # exists, and bob may create there
        assert await bob.create_code("secret.x") == E.TOPIC_ALREADY_EXISTS
        assert await Door(server, "carol").create_code("secret.x") == TOPIC_DENIED

    run(go())


@pytest.mark.parametrize("user, topic, produce, fetch, offsets", [
    ("alice", "orders", TOPIC_DENIED, NONE, NONE),
    ("alice", "public", 2, TOPIC_DENIED, TOPIC_DENIED),  # 2: empty records, past the check
    ("alice", "secret.x", TOPIC_DENIED, TOPIC_DENIED, TOPIC_DENIED),
    ("bob", "secret.x", 2, NONE, NONE),
    ("carol", "orders", TOPIC_DENIED, TOPIC_DENIED, TOPIC_DENIED),
    ("carol", "no-such", TOPIC_DENIED, TOPIC_DENIED, TOPIC_DENIED),
    ("iggy", "no-such", UNKNOWN_TOPIC, UNKNOWN_TOPIC, UNKNOWN_TOPIC),
])
def test_produce_fetch_list_offsets(server: KafkaServer, user: str, topic: str, produce: int,
                                    fetch: int, offsets: int) -> None:
    async def go() -> None:
        door = Door(server, user)
        assert await door.produce_code(topic) == produce
        assert await door.fetch_code(topic) == fetch
        assert await door.list_offsets_code(topic) == offsets

    run(go())


def test_admin_apis_need_manage(server: KafkaServer) -> None:
    async def go() -> None:
        alice, bob, carol = (Door(server, u) for u in ("alice", "bob", "carol"))
        for door, topic, code in ((alice, "orders", TOPIC_DENIED), (bob, "secret.x", NONE)):
            r = await door.call(CREATE_PARTITIONS, 3, {"topics": [
                {"name": topic, "count": 2, "assignments": None}], "timeout_ms": 1000,
                "validate_only": True})
            assert r["results"][0]["error_code"] == code
            r = await door.call(DELETE_RECORDS, 2, {"topics": [
                {"name": topic, "partitions": [{"partition_index": 0, "offset": 0}]}],
                "timeout_ms": 1000})
            assert r["topics"][0]["partitions"][0]["error_code"] == code
            r = await door.call(ALTER_CONFIGS, 2, {"resources": [
                {"resource_type": 2, "resource_name": topic, "configs": [
                    {"name": "retention.ms", "value": "1000"}]}], "validate_only": True})
            assert r["responses"][0]["error_code"] == code
            r = await door.call(DESCRIBE_CONFIGS, 4, {"resources": [
                {"resource_type": 2, "resource_name": topic, "configuration_keys": None}],
                "include_synonyms": False, "include_documentation": False})
            assert r["results"][0]["error_code"] == code
        assert await carol.delete_code("orders") == TOPIC_DENIED
        assert await carol.delete_code("no-such") == TOPIC_DENIED
        assert await alice.delete_code("orders") == TOPIC_DENIED
        assert await bob.delete_code("secret.x") == NONE
        assert await Door(server, "iggy").delete_code("no-such") == UNKNOWN_TOPIC

    run(go())


def test_cluster_apis_need_server_rights(server: KafkaServer) -> None:
    async def go() -> None:
        dave, carol, alice = Door(server, "dave"), Door(server, "carol"), Door(server, "alice")
        body = {"include_cluster_authorized_operations": True, "endpoint_type": 1}
        r = await dave.call(DESCRIBE_CLUSTER, 1, body)
        assert r["error_code"] == NONE
        assert r["cluster_authorized_operations"] == (1 << DESCRIBE) | (1 << DESCRIBE_CONFIGS_OP)
        r = await carol.call(DESCRIBE_CLUSTER, 1, body)  # anyone, as in Kafka: the bitset
        assert (r["error_code"], r["cluster_authorized_operations"]) == (NONE, 0)
        broker = {"resources": [{"resource_type": 4, "resource_name": "",
                                 "configuration_keys": None}],
                  "include_synonyms": False, "include_documentation": False}
        assert (await dave.call(DESCRIBE_CONFIGS, 4, broker))["results"][0]["error_code"] == 0
        r = await carol.call(DESCRIBE_CONFIGS, 4, broker)
        assert r["results"][0]["error_code"] == CLUSTER_DENIED
        pid = {"transactional_id": None, "transaction_timeout_ms": 1000, "producer_id": -1,
               "producer_epoch": -1}
        assert (await alice.call(INIT_PID, 4, pid))["error_code"] == NONE  # sends somewhere
        assert (await carol.call(INIT_PID, 4, pid))["error_code"] == CLUSTER_DENIED

    run(go())


def test_authorized_operations_bitsets(server: KafkaServer) -> None:
    async def go() -> None:
        r = await Door(server, "alice").metadata(["orders"], version=10, ops=True)
        assert r["topics"][0]["topic_authorized_operations"] == (1 << READ) | (1 << DESCRIBE)
        assert r["cluster_authorized_operations"] == 1 << 12  # IDEMPOTENT_WRITE: sends
        r = await Door(server, "iggy").metadata(["orders"], version=10, ops=True)
        assert r["topics"][0]["topic_authorized_operations"] == sum(
            1 << op for op in ALL_TOPIC_OPS)
        r = await Door(server, "alice").metadata(["orders"], version=10)
        assert r["topics"][0]["topic_authorized_operations"] == authz.NOT_REQUESTED

    run(go())


def subscription(*topics: str) -> bytes:
    return encode_versioned("ConsumerProtocolSubscription", 0,
                          {"topics": list(topics), "user_data": None})


def test_groups_follow_their_topics(server: KafkaServer, caplog) -> None:
    async def go() -> None:
        alice, bob, carol = (Door(server, u) for u in ("alice", "bob", "carol"))
        assert await alice.commit_code("shop", "orders") == NONE
        assert await alice.commit_code("shop", "public") == TOPIC_DENIED  # no poll there
        # bob polls secret.* but not orders, which the group consumes
        assert await bob.commit_code("shop", "secret.x") == GROUP_DENIED
        assert await carol.commit_code("fresh", "orders") == GROUP_DENIED

        def join(protocol_type: str = "consumer", *topics: str) -> dict:
            return {"group_id": "shop", "session_timeout_ms": 10000,
                    "rebalance_timeout_ms": 10000, "member_id": "", "group_instance_id": None,
                    "protocol_type": protocol_type, "reason": None, "protocols": [
                        {"name": "range", "metadata": subscription(*topics)}]}

        r = await alice.call(JOIN, 9, join("consumer", "orders"))
        assert r["error_code"] == MEMBER_ID_REQUIRED  # past the check
        assert (await bob.call(JOIN, 9, join("consumer", "secret.x")))["error_code"] == \
            GROUP_DENIED
        assert (await alice.call(JOIN, 9, join("consumer", "orders", "secret.x")))[
            "error_code"] == GROUP_DENIED  # subscribing to a topic alice may not poll
        describe = {"groups": ["shop"], "include_authorized_operations": True}
        r = await alice.call(DESCRIBE_GROUPS, 5, describe)
        assert r["groups"][0]["error_code"] == NONE
        assert r["groups"][0]["authorized_operations"] == (1 << 3) | (1 << 6) | (1 << 8)
        assert (await carol.call(DESCRIBE_GROUPS, 5, describe))["groups"][0][
            "error_code"] == GROUP_DENIED
        listed = {"states_filter": [], "types_filter": []}
        assert [g["group_id"] for g in (await alice.call(LIST_GROUPS, 5, listed))["groups"]] \
            == ["shop"]
        assert (await bob.call(LIST_GROUPS, 5, listed))["groups"] == []
        r = await carol.call(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": ["shop"]})
        assert r["coordinators"][0]["error_code"] == GROUP_DENIED
        r = await bob.call(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": ["new"]})
        assert r["coordinators"][0]["error_code"] == NONE  # bob polls something
        fetch = {"group_id": "shop", "topics": None, "require_stable": False}
        assert (await carol.call(OFFSET_FETCH, 7, fetch))["error_code"] == GROUP_DENIED
        r = await alice.call(OFFSET_FETCH, 7, fetch)
        assert [t["name"] for t in r["topics"]] == ["orders"]
        r = await bob.call(DELETE_GROUPS, 2, {"groups_names": ["shop"]})
        assert r["results"][0]["error_code"] == GROUP_DENIED

    caplog.set_level(logging.WARNING, "pyggy.audit")
    run(go())
    refusals = [r.getMessage() for r in caplog.records]
    assert ("permission refused: user 'bob' from 127.0.0.1 (kafka door): OffsetCommit "
            "group 'shop'") in refusals


def _heartbeat(group: str, member: str, *, names: list[str] | None = None,
               regex: str | None = None) -> dict:
    return {"group_id": group, "member_id": member, "member_epoch": 0, "instance_id": None,
            "rack_id": None, "rebalance_timeout_ms": 30_000, "subscribed_topic_names": names,
            "subscribed_topic_regex": regex, "server_assignor": None, "topic_partitions": []}


def test_kip848_groups_follow_their_topics(server: KafkaServer) -> None:
    """ConsumerGroupHeartbeat/Describe need what classic groups need; a regex only reaches
    topics the member may read; Metadata by topic id only shows describable topics."""
    from pyggy.kafka_wire.topics import INTERNAL_TOPICS, topic_id

    server.coordinator.consumer.topics = lambda: {
        n: (topic_id(t), len(t.partitions)) for n, t in server.topics.all()
        if n not in INTERNAL_TOPICS}
    orders = topic_id(server.topics.resolve("orders"))

    async def go() -> None:
        alice, bob, carol = (Door(server, u) for u in ("alice", "bob", "carol"))
        hb = 68
        r = await alice.call(hb, 1, _heartbeat("shop", "a1", names=["orders"]))
        assert r["error_code"] == NONE
        assert r["assignment"]["topic_partitions"][0]["topic_id"].bytes == orders
        r = await alice.call(hb, 1, _heartbeat("shop", "a2", names=["orders", "public"]))
        assert r["error_code"] == TOPIC_DENIED  # alice may send to public, not poll it
        assert (await carol.call(hb, 1, _heartbeat("shop", "c1", names=["orders"])))[
            "error_code"] == GROUP_DENIED
        # the group consumes orders, which bob may not poll
        assert (await bob.call(hb, 1, _heartbeat("shop", "b1", names=["secret.x"])))[
            "error_code"] == GROUP_DENIED
        r = await alice.call(hb, 1, _heartbeat("rx", "a3", regex=".*"))
        assert [t["topic_id"].bytes for t in r["assignment"]["topic_partitions"]] == [orders]
        describe = {"group_ids": ["shop"], "include_authorized_operations": True}
        r = await alice.call(69, 1, describe)
        assert (r["groups"][0]["error_code"], r["groups"][0]["authorized_operations"]) == \
            (NONE, (1 << 3) | (1 << 6) | (1 << 8))
        assert (await carol.call(69, 1, describe))["groups"][0]["error_code"] == GROUP_DENIED
        by_id = {"topics": [{"topic_id": UUID(bytes=orders), "name": None}],
                 "allow_auto_topic_creation": False, "include_topic_authorized_operations": False}
        r = await alice.call(METADATA, 12, by_id)
        assert (r["topics"][0]["error_code"], r["topics"][0]["name"]) == (NONE, "orders")
        r = await carol.call(METADATA, 12, by_id)
        assert (r["topics"][0]["error_code"], r["topics"][0]["name"]) == (TOPIC_DENIED, None)

    run(go())


def test_anonymous_clients_only_where_authentication_is_off(server: KafkaServer) -> None:
    async def go() -> None:
        anonymous = Door(server)
        r = await anonymous.call(API_VERSIONS, 3, {"client_software_name": "t",
                                                   "client_software_version": "1"})
        assert r["error_code"] == NONE
        with pytest.raises(CloseConnection, match="requires it"):
            await anonymous.metadata(None)
        server.settings.requires_auth = False
        assert names(await Door(server).metadata(None)) == {"orders", "public", "secret.x"}

    run(go())


# -- SASL: SCRAM, tokens, KIP-368 -----------------------------------------------------------
async def scram_login(door: Door, mechanism: str, user: str, password: str,
                      version: int = 2) -> dict:
    r = await door.call(HANDSHAKE, 1, {"mechanism": mechanism})
    assert r["error_code"] == NONE
    client = ScramClient(mechanism, user, password)
    first = await door.call(AUTHENTICATE, version, {"auth_bytes": client.first()})
    if first["error_code"]:
        return first
    final = await door.call(AUTHENTICATE, version,
                            {"auth_bytes": client.final(first["auth_bytes"])})
    if final["error_code"] == NONE:
        assert client.verify(final["auth_bytes"])
    return final


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_scram_logins(server: KafkaServer, mechanism: str) -> None:
    async def go() -> None:
        door = Door(server)
        assert (await scram_login(door, mechanism, "alice", "alice-pw"))["error_code"] == NONE
        assert door.conn.user.username == "alice"
        assert names(await door.metadata(None)) == {"orders", "public"}
        for user, password in (("alice", "wrong"), ("nobody", "alice-pw")):
            bad = Door(server)
            r = await scram_login(bad, mechanism, user, password)
            assert r["error_code"] == AUTH_FAILED and bad.conn.close_after_reply
            assert r["error_message"].startswith("Authentication failed during authentication")

    run(go())


def test_scram_over_handshake_v0_raw_tokens(server: KafkaServer) -> None:
    async def go() -> None:
        door = Door(server)
        assert (await door.call(HANDSHAKE, 0, {"mechanism": "SCRAM-SHA-512"}))["error_code"] == 0
        client = ScramClient("SCRAM-SHA-512", "bob", "bob-pw")
        first = await door.raw(client.first())
        final = await door.raw(client.final(first[4:]))
        assert client.verify(final[4:]) and door.conn.user.username == "bob"
        bad = Door(server)
        await bad.call(HANDSHAKE, 0, {"mechanism": "SCRAM-SHA-256"})
        client = ScramClient("SCRAM-SHA-256", "bob", "nope")
        first = await bad.raw(client.first())
        with pytest.raises(CloseConnection):
            await bad.raw(client.final(first[4:]))

    run(go())


def test_unknown_users_get_a_server_first_message_like_known_ones(server: KafkaServer) -> None:
    async def first(user: str) -> bytes:
        door = Door(server)
        await door.call(HANDSHAKE, 1, {"mechanism": "SCRAM-SHA-256"})
        r = await door.call(AUTHENTICATE, 2, {
            "auth_bytes": ScramClient("SCRAM-SHA-256", user, "x").first()})
        assert r["error_code"] == NONE
        return r["auth_bytes"]

    known, unknown, again = (run(first(u)) for u in ("alice", "nobody", "nobody"))
    parts = [dict(a.split("=", 1) for a in m.decode().split(",")) for m in (known, unknown)]
    assert [len(p["s"]) for p in parts] == [len(parts[0]["s"])] * 2
    assert parts[0]["i"] == parts[1]["i"] == "4096"
    assert unknown.split(b",")[1] == again.split(b",")[1]  # the same salt on every probe


def test_personal_access_tokens_work_as_plain_passwords(server: KafkaServer) -> None:
    token = asyncio.run(
        server.engine.identity.create_token(server.engine.identity.user("alice").id, "ci", 0))

    async def go() -> None:
        door = Door(server)
        await door.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})
        r = await door.call(AUTHENTICATE, 2, {"auth_bytes": f"\0alice\0{token}".encode()})
        assert r["error_code"] == NONE and door.conn.user.username == "alice"
        scram = Door(server)  # SCRAM credentials come from passwords, never tokens
        assert (await scram_login(scram, "SCRAM-SHA-256", "alice", token))["error_code"] == \
            AUTH_FAILED

    run(go())


def test_sessions_end_and_re_authenticate(server: KafkaServer) -> None:
    server.settings.reauth_ms = 300

    async def go() -> None:
        door = Door(server)
        await door.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})
        r = await door.call(AUTHENTICATE, 2, {"auth_bytes": b"\0alice\0alice-pw"})
        assert 0 < r["session_lifetime_ms"] <= 300
        # KIP-368: a new handshake on the authenticated connection re-authenticates
        assert (await door.call(HANDSHAKE, 1, {"mechanism": "PLAIN"}))["error_code"] == NONE
        r = await door.call(AUTHENTICATE, 2, {"auth_bytes": b"\0alice\0alice-pw"})
        assert r["error_code"] == NONE and r["session_lifetime_ms"] > 0
        assert names(await door.metadata(None))
        await asyncio.sleep(0.4)
        with pytest.raises(CloseConnection, match="expired"):
            await door.metadata(None)
        other = Door(server)  # a re-authentication must keep the user
        await other.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})
        await other.call(AUTHENTICATE, 2, {"auth_bytes": b"\0alice\0alice-pw"})
        await other.call(HANDSHAKE, 1, {"mechanism": "PLAIN"})
        r = await other.call(AUTHENTICATE, 2, {"auth_bytes": b"\0bob\0bob-pw"})
        assert r["error_code"] == AUTH_FAILED and other.conn.close_after_reply

    run(go())


def test_a_deleted_user_loses_its_connection(server: KafkaServer) -> None:
    async def go() -> None:
        door = Door(server, "carol")
        await door.metadata(None)
        await server.engine.identity.delete_user("carol")
        with pytest.raises(CloseConnection, match="deleted"):
            await door.metadata(None)

    run(go())


# -- ACLs and SCRAM credential APIs ---------------------------------------------------------
ANY_FILTER = {"resource_type_filter": ANY, "resource_name_filter": None,
              "pattern_type_filter": ANY, "principal_filter": None, "host_filter": None,
              "operation": ANY, "permission_type": ANY}


def acl_set(r: dict) -> set[tuple]:
    return {(res["resource_type"], res["resource_name"], res["pattern_type"], a["principal"],
             a["operation"]) for res in r["resources"] for a in res["acls"]}


def test_describe_acls_shows_the_permissions(server: KafkaServer) -> None:
    async def go() -> None:
        r = await Door(server, "admin").call(DESCRIBE_ACLS, 3, ANY_FILTER)
        acls = acl_set(r)
        assert (TOPIC_RES, "orders", LITERAL, "User:alice", READ) in acls
        assert (TOPIC_RES, "public", LITERAL, "User:alice", WRITE) in acls
        assert (TOPIC_RES, "secret.", PREFIXED, "User:bob", CREATE) in acls
        assert (CLUSTER_RES, "kafka-cluster", LITERAL, "User:dave", DESCRIBE) in acls
        assert (GROUP_RES, "*", LITERAL, "User:iggy", 2) in acls  # root: ALL
        assert not any(a[3] == "User:carol" for a in acls)
        assert not any(a[3] == "User:ANONYMOUS" for a in acls)  # authentication is required
        only = await Door(server, "admin").call(DESCRIBE_ACLS, 3, ANY_FILTER | {
            "principal_filter": "User:alice", "operation": READ})
        assert acl_set(only) == {(TOPIC_RES, "orders", LITERAL, "User:alice", READ)}
        denied = await Door(server, "carol").call(DESCRIBE_ACLS, 3, ANY_FILTER)
        assert denied["error_code"] == CLUSTER_DENIED

    run(go())


def test_create_and_delete_acls_change_permissions(server: KafkaServer) -> None:
    def binding(**kw) -> dict:
        return {"resource_type": TOPIC_RES, "resource_name": "public",
                "resource_pattern_type": LITERAL, "principal": "User:alice", "host": "*",
                "operation": READ, "permission_type": ALLOW} | kw

    async def go() -> None:
        admin, alice = Door(server, "admin"), Door(server, "alice")
        assert await alice.fetch_code("public") == TOPIC_DENIED
        r = await admin.call(CREATE_ACLS, 3, {"creations": [
            binding(), binding(permission_type=DENY), binding(resource_type=GROUP_RES,
                                                              resource_name="g"),
            binding(principal="User:nobody"), binding(resource_name="no-such"),
            binding(resource_name="secret.", resource_pattern_type=PREFIXED, operation=CREATE),
            binding(host="10.0.0.1")]})
        codes = [x["error_code"] for x in r["results"]]
        assert codes == [NONE, INVALID_REQUEST, INVALID_REQUEST, INVALID_REQUEST,
                         INVALID_REQUEST, NONE, INVALID_REQUEST]
        assert all(x["error_message"] for x in r["results"][1:5])
        assert await alice.fetch_code("public") == NONE
        assert await alice.create_code("secret.alices") == NONE
        r = await admin.call(DELETE_ACLS, 3, {"filters": [ANY_FILTER | {
            "principal_filter": "User:alice", "resource_name_filter": "public",
            "operation": READ}]})
        matching = r["filter_results"][0]["matching_acls"]
        assert [(m["resource_name"], m["operation"], m["error_code"]) for m in matching] == [
            ("public", READ, NONE)]
        assert await alice.fetch_code("public") == TOPIC_DENIED
        r = await admin.call(DELETE_ACLS, 3, {"filters": [ANY_FILTER | {
            "principal_filter": "User:iggy"}]})
        assert {m["error_code"] for m in r["filter_results"][0]["matching_acls"]} == {
            INVALID_REQUEST}  # root's rights are fixed
        r = await Door(server, "carol").call(CREATE_ACLS, 3, {"creations": [binding()]})
        assert r["results"][0]["error_code"] == CLUSTER_DENIED

    run(go())


def test_scram_credential_apis(server: KafkaServer) -> None:
    async def go() -> None:
        admin = Door(server, "admin")
        r = await admin.call(DESCRIBE_SCRAM, 0, {"users": None})
        described = {x["user"]: x["credential_infos"] for x in r["results"]}
        assert described["alice"] == [{"mechanism": 1, "iterations": 4096},
                                      {"mechanism": 2, "iterations": 4096}]
        r = await admin.call(DESCRIBE_SCRAM, 0, {"users": [{"name": "nobody"},
                                                           {"name": "bob"}, {"name": "bob"}]})
        assert [x["error_code"] for x in r["results"]] == [91, 92]
        salt = secrets.token_bytes(16)
        salted = hashlib.pbkdf2_hmac("sha512", b"kafka-side-pw", salt, 8192)
        r = await admin.call(ALTER_SCRAM, 0, {"deletions": [
            {"name": "alice", "mechanism": 1}], "upsertions": [
            {"name": "alice", "mechanism": 2, "iterations": 8192, "salt": salt,
             "salted_password": salted},
            {"name": "nobody", "mechanism": 2, "iterations": 8192, "salt": salt,
             "salted_password": salted},
            {"name": "bob", "mechanism": 2, "iterations": 100, "salt": salt,
             "salted_password": salted}]})
        assert [(x["user"], x["error_code"]) for x in r["results"]] == [
            ("alice", NONE), ("nobody", 91), ("bob", 93)]
        login = await scram_login(Door(server), "SCRAM-SHA-512", "alice", "kafka-side-pw")
        assert login["error_code"] == NONE
        assert (await scram_login(Door(server), "SCRAM-SHA-256", "alice", "alice-pw"))[
            "error_code"] == AUTH_FAILED  # deleted
        r = await Door(server, "carol").call(DESCRIBE_SCRAM, 0, {"users": None})
        assert r["error_code"] == CLUSTER_DENIED

    run(go())


@pytest.mark.parametrize("user, topic, code", [
    ("alice", "orders", NONE),  # READ: she may poll it
    ("alice", "public", TOPIC_DENIED),  # she may only send there
    ("carol", "orders", TOPIC_DENIED),
    ("carol", "no-such", TOPIC_DENIED),  # a refused principal cannot tell it does not exist
    ("iggy", "no-such", UNKNOWN_TOPIC),
])
def test_describe_producers_needs_read_on_the_topic(server: KafkaServer, user: str, topic: str,
                                                    code: int) -> None:
    async def go() -> None:
        r = await Door(server, user).call(61, 0, {"topics": [
            {"name": topic, "partition_indexes": [0]}]})
        p = r["topics"][0]["partitions"][0]
        assert p["error_code"] == code and p["active_producers"] == []

    run(go())
