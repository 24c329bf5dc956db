"""Login of clients of other protocol revisions, with raw frames (the 0.9.0 SDK speaks only
0.11.0): the protocol version is read before anything else, so a client of a newer or older
revision hears "incompatible protocol" (eviction 14) with the range the server accepts, even
when it stamps its request checksum in a way this server does not know."""

from __future__ import annotations

import pytest
from rawclient import EVICTION, REPLY, RawClient

from pyggy.testing import PyggyServer

INCOMPATIBLE_PROTOCOL, MALFORMED_LOGIN = 14, 15
V0_11_0 = (0 << 20) | (11 << 10) | 0  # 11264, the revision pyggy speaks (apache-iggy 0.9.0)
ACCEPTED = (V0_11_0, V0_11_0)  # server version, minimum (patch zeroed): 0.11.x clients


def version(major: int, minor: int, patch: int) -> int:
    return (major << 20) | (minor << 10) | patch


@pytest.fixture
def raw(pyggy_server: PyggyServer):
    client = RawClient(pyggy_server.tcp_address)
    yield client
    client.close()


@pytest.mark.parametrize("revision", [(0, 12, 0), (1, 0, 0), (0, 10, 3)],
                         ids=["newer-minor", "newer-major", "older"])
@pytest.mark.parametrize("stamp", ["xxh3", "other"])
def test_another_revision_is_told_the_accepted_range(raw: RawClient, revision, stamp) -> None:
    other = 0x1234_5678_9ABC_DEF0_1122_3344_5566_7788 if stamp == "other" else None
    reply = raw.login("iggy", "iggy", version=version(*revision), checksum=other)
    assert (reply.command, reply.reason) == (EVICTION, INCOMPATIBLE_PROTOCOL)
    assert reply.protocol_versions == ACCEPTED
    assert raw.send(1) is None  # eviction ends the connection


def test_a_newer_patch_of_the_same_revision_logs_in(raw: RawClient) -> None:
    reply = raw.login("iggy", "iggy", version=version(0, 11, 7))
    assert (reply.command, reply.status) == (REPLY, 0)
    assert raw.send(201).status == 0  # GET_STREAMS, logged in


def test_a_compatible_login_with_a_wrong_checksum_is_refused(raw: RawClient) -> None:
    reply = raw.login("iggy", "iggy", checksum=12345)
    assert (reply.command, reply.reason) == (EVICTION, MALFORMED_LOGIN)


def test_a_login_body_without_a_version_prefix_is_malformed(raw: RawClient) -> None:
    reply = raw.register(b"\x00\x2c")  # two bytes: no u32 protocol version
    assert (reply.command, reply.reason) == (EVICTION, MALFORMED_LOGIN)
