"""The cast of the security scenarios, shared by tests/scenarios/test_security_matrix.py and
interop_tests/test_security_java.py: the streams, topics and users a server gets (through the
Iggy SDK, as an operator would set them up), the principals that log in, and what each may do
through the Kafka door.

- stream `kafka` (the default stream): topics `shared` and `other`; stream `secret`: topic `x`;
- `alice` may poll and send on kafka/shared only (topic permissions), and has a personal
  access token; `iggy` is root.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from apache_iggy import (
    AutoLogin,
    GlobalPermissions,
    IggyClient,
    Permissions,
    StreamPermissions,
    TcpConfig,
    TopicPermissions,
)
from pyggy.core.records.kafka_errors import ErrorCode as E

from pyggy.testing import PyggyServer

ALICE_PASSWORD = "alice-Pa55!word-7Qx"  # never in a server log (checked)
OK, TOPIC_DENIED, GROUP_DENIED = E.NONE, E.TOPIC_AUTHORIZATION_FAILED, E.GROUP_AUTHORIZATION_FAILED
SHARED, FORBIDDEN = "shared", "secret.x"
EVERY_TOPIC = {"shared", "other", "secret.x"}
TOPIC_OPS = ("describe", "produce", "consume", "commit", "alter", "delete_records")


@dataclass(frozen=True)
class Principal:
    name: str  # as shown in a cell, e.g. "alice/SCRAM-SHA-256"
    user: str
    secret: str
    mechanism: str

    @property
    def root(self) -> bool:
        return self.user == "iggy"


async def _setup(server: PyggyServer) -> str:
    root = IggyClient(TcpConfig(server_address=server.tcp_address,
                                auto_login=AutoLogin.username_password("iggy", "iggy")))
    await root.connect()
    await root.create_stream("kafka")
    await root.create_topic("kafka", "shared", 1)
    await root.create_topic("kafka", "other", 1)
    await root.create_stream("secret")
    await root.create_topic("secret", "x", 1)
    stream = await root.get_stream("kafka")
    shared = await root.get_topic("kafka", "shared")
    await root.create_user("alice", ALICE_PASSWORD, permissions=Permissions(
        GlobalPermissions(), {stream.id: StreamPermissions(topics={
            shared.id: TopicPermissions(poll_messages=True, send_messages=True)})}))
    alice = IggyClient(TcpConfig(server_address=server.tcp_address,
                                 auto_login=AutoLogin.username_password("alice",
                                                                        ALICE_PASSWORD)))
    await alice.connect()
    name = b"matrix"  # CREATE_PERSONAL_ACCESS_TOKEN (42): Name, u64 expiry (0: never)
    reply = await alice.send_binary_request(42, bytes((len(name),)) + name
                                            + struct.pack("<Q", 0))
    return reply[1:].decode()


def setup(server: PyggyServer) -> list[Principal]:
    """Create the cast on `server`; the principals that log in through the Kafka door."""
    token = asyncio.run(_setup(server))
    return [
        Principal("alice/PLAIN", "alice", ALICE_PASSWORD, "PLAIN"),
        Principal("alice/SCRAM-SHA-256", "alice", ALICE_PASSWORD, "SCRAM-SHA-256"),
        Principal("alice/SCRAM-SHA-512", "alice", ALICE_PASSWORD, "SCRAM-SHA-512"),
        Principal("alice/PAT", "alice", token, "PLAIN"),  # a token is a PLAIN password
        Principal("root/PLAIN", "iggy", "iggy", "PLAIN"),
        Principal("root/SCRAM-SHA-512", "iggy", "iggy", "SCRAM-SHA-512"),
    ]


def expected(p: Principal, overrides: dict | None = None) -> dict:
    """The cells of one principal: {"list": visible topics, "create": code, "delete": code,
    (op, topic): code}. `overrides` holds a client's own translation of a refusal."""
    if p.root:
        cells: dict = {"list": EVERY_TOPIC, "create": OK, "delete": OK}
        cells.update({(op, t): OK for op in TOPIC_OPS for t in (SHARED, FORBIDDEN)})
        return cells
    cells = {"list": {SHARED}, "create": TOPIC_DENIED, "delete": TOPIC_DENIED}
    for op in TOPIC_OPS:
        cells[(op, SHARED)] = OK if op in ("describe", "produce", "consume", "commit") \
            else TOPIC_DENIED
        cells[(op, FORBIDDEN)] = TOPIC_DENIED
    cells.update(overrides or {})
    return cells


def mismatches(results: dict[str, dict], wanted: dict[str, dict]) -> list[str]:
    """Readable differences between measured and expected cells."""
    out = []
    for who, cells in wanted.items():
        got = results.get(who, {})
        for key, value in cells.items():
            seen = got.get(key, "<missing>")
            if key == "list" and value == EVERY_TOPIC and isinstance(seen, set):
                ok = value <= seen  # root also sees what other cells created
            else:
                ok = seen == value
            if not ok:
                out.append(f"{who} {key}: expected {value}, got {seen}")
    return out
