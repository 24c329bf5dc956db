"""The consumer-group and offset handlers at every version they are registered for, in process.

Requests are built with the codec at each version, go through `dispatch.handle_frame` (the
listener's entry point) to the handlers and a real `GroupCoordinator`, and the response frames
are decoded at the same version: each field a version has is checked, so a version whose
mapping drifts fails here. End-to-end behaviour with real clients is in test_groups_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_door import Door as BaseDoor
from pyggy.core.engine import LogEngine
from pyggy.core.records.kafka_errors import ErrorCode as E
from pyggy.kafka_wire.context import KafkaServer
from pyggy.kafka_wire.groups import GroupCoordinator, MemoryOffsetStore
from pyggy.kafka_wire.protocol.codec import decode_versioned, encode_versioned
from pyggy.kafka_wire.registry import REGISTRY

pytestmark = pytest.mark.asyncio

OFFSET_COMMIT, OFFSET_FETCH, JOIN, HEARTBEAT, LEAVE, SYNC = 8, 9, 11, 12, 13, 14
DESCRIBE, LIST, DELETE, OFFSET_DELETE = 15, 16, 42, 47
NONE, UNKNOWN_TOPIC = E.NONE, E.UNKNOWN_TOPIC_OR_PARTITION
NOT_AVAILABLE = E.COORDINATOR_NOT_AVAILABLE
ILLEGAL_GENERATION, INCONSISTENT_PROTOCOL = E.ILLEGAL_GENERATION, E.INCONSISTENT_GROUP_PROTOCOL
INVALID_GROUP, UNKNOWN_MEMBER, INVALID_SESSION = E.INVALID_GROUP_ID, E.UNKNOWN_MEMBER_ID, \
    E.INVALID_SESSION_TIMEOUT
REBALANCING, NON_EMPTY, NOT_FOUND = E.REBALANCE_IN_PROGRESS, E.NON_EMPTY_GROUP, E.GROUP_ID_NOT_FOUND
MEMBER_ID_REQUIRED, SUBSCRIBED = E.MEMBER_ID_REQUIRED, E.GROUP_SUBSCRIBED_TO_TOPIC
INT32_MIN = -2147483648
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)  # READ, DELETE, DESCRIBE
SESSION_MS = 10_000


def versions(key: int) -> list[int]:
    api = REGISTRY[key]
    return list(range(api.min_version, api.max_version + 1))


def subscription(*topics: str) -> bytes:
    return encode_versioned("ConsumerProtocolSubscription", 0,
                            {"topics": list(topics), "user_data": None})


class Door(BaseDoor):
    """One client connection into an in-process Kafka door with a group coordinator."""

    def __init__(self, server: KafkaServer, client_id: str = "c") -> None:
        super().__init__(server, client_id)

    async def join(self, version: int, group: str, member_id: str = "", *,
                   instance: str | None = None, protocols: list | None = None,
                   session: int = SESSION_MS) -> dict:
        return await self.call(JOIN, version, {
            "group_id": group, "session_timeout_ms": session, "rebalance_timeout_ms": 30_000,
            "member_id": member_id, "group_instance_id": instance,
            "protocol_type": "consumer", "reason": "test",
            "protocols": protocols or [{"name": "range", "metadata": subscription("t")}]})

    async def join_new(self, version: int, group: str, **kwargs) -> dict:
        """JoinGroup, with the MEMBER_ID_REQUIRED round trip of v4+ (dynamic members)."""
        r = await self.join(version, group, **kwargs)
        if version >= 4 and kwargs.get("instance") is None:
            assert (r["error_code"], r["generation_id"]) == (MEMBER_ID_REQUIRED, -1)
            assert r["member_id"].startswith(self.client_id + "-")
            r = await self.join(version, group, r["member_id"], **kwargs)
        assert r["error_code"] == NONE, r
        return r

    async def sync(self, version: int, group: str, generation: int, member_id: str,
                   assignments: list | None = None, **fields) -> dict:
        return await self.call(SYNC, version, {
            "group_id": group, "generation_id": generation, "member_id": member_id,
            "assignments": assignments or [], **fields})

    async def stable(self, group: str, version: int = 9, **kwargs) -> tuple[str, int]:
        """A one-member Stable group: (member id, generation)."""
        r = await self.join_new(version, group, **kwargs)
        s = await self.sync(5, group, r["generation_id"], r["member_id"],
                            [{"member_id": r["member_id"], "assignment": b"A"}],
                            group_instance_id=kwargs.get("instance"))
        assert s["error_code"] == NONE
        return r["member_id"], r["generation_id"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KafkaServer]:
    engine = LogEngine(tmp_path / "data", state_fsync=False)
    engine.open(("iggy", "iggy"))
    asyncio.run(engine.metadata.create_stream("kafka"))
    asyncio.run(engine.metadata.create_topic("kafka", "t", 3))
    asyncio.run(engine.metadata.create_topic("kafka", "u", 1))
    kafka = KafkaServer(engine)

    def exists(topic: str, partition: int) -> bool:
        t = kafka.topics.resolve(topic)
        return t is not None and 0 <= partition < len(t.partitions)

    kafka.coordinator = GroupCoordinator(engine.clock, MemoryOffsetStore(),
                                         partition_exists=exists)
    yield kafka
    engine.close()


@pytest.fixture
def door(server: KafkaServer) -> Door:
    return Door(server)


# ------------------------------------------------------------------ JoinGroup ... LeaveGroup


@pytest.mark.parametrize("v", versions(JOIN))
async def test_join_sync_heartbeat_leave(door: Door, v: int) -> None:
    sync_v, hb_v, leave_v = min(v, 5), min(v, 4), min(v, 5)
    g = f"g{v}"
    r = await door.join_new(v, g)
    me = r["member_id"]
    assert r["member_id"].startswith("c-")
    assert (r["generation_id"], r["leader"], r["protocol_name"]) == (1, me, "range")
    assert r["protocol_type"] == ("consumer" if v >= 7 else None)  # field of v7+
    assert r["skip_assignment"] is False
    assert r["members"] == [{"member_id": me, "group_instance_id": None,
                             "metadata": subscription("t")}]
    assert r["throttle_time_ms"] == 0

    s = await door.sync(sync_v, g, 1, me, [{"member_id": me, "assignment": b"mine"}])
    assert (s["error_code"], s["assignment"]) == (NONE, b"mine")
    expect = ("consumer", "range") if sync_v >= 5 else (None, None)
    assert (s["protocol_type"], s["protocol_name"]) == expect
    # the current generation's assignment again, as a rejoined follower would ask
    assert (await door.sync(sync_v, g, 1, me))["assignment"] == b"mine"

    hb = {"group_id": g, "generation_id": 1, "member_id": me, "group_instance_id": None}
    assert (await door.call(HEARTBEAT, hb_v, hb))["error_code"] == NONE
    assert (await door.call(HEARTBEAT, hb_v, {**hb, "generation_id": 7}))["error_code"] == \
        ILLEGAL_GENERATION
    assert (await door.call(HEARTBEAT, hb_v, {**hb, "member_id": "x"}))["error_code"] == \
        UNKNOWN_MEMBER

    if leave_v < 3:  # one member, its error at the top level
        leave = {"group_id": g, "member_id": me}
        assert await door.call(LEAVE, leave_v, leave) == {
            "throttle_time_ms": 0, "error_code": NONE, "members": []}
        assert (await door.call(LEAVE, leave_v, leave))["error_code"] == UNKNOWN_MEMBER
    else:
        leave = {"group_id": g, "members": [
            {"member_id": me, "group_instance_id": None, "reason": "done"},
            {"member_id": "ghost", "group_instance_id": None, "reason": None}]}
        out = await door.call(LEAVE, leave_v, leave)
        assert out["error_code"] == NONE
        assert [(m["member_id"], m["error_code"]) for m in out["members"]] == [
            (me, NONE), ("ghost", UNKNOWN_MEMBER)]
    assert (await door.call(HEARTBEAT, hb_v, hb))["error_code"] == UNKNOWN_MEMBER


@pytest.mark.parametrize("v", versions(JOIN))
async def test_join_errors_keep_protocol_name_non_null_before_v7(door: Door, v: int) -> None:
    r = await door.join(v, "g", session=1)
    assert (r["error_code"], r["generation_id"], r["leader"], r["members"]) == (
        INVALID_SESSION, -1, "", [])
    assert r["protocol_name"] == ("" if v < 7 else None)
    assert (await door.join(v, ""))["error_code"] == INVALID_GROUP


async def test_a_second_member_rebalances_the_group(door: Door, server: KafkaServer) -> None:
    """Parked JoinGroup/SyncGroup answers: each member on its own connection."""
    a, gen = await door.stable("g", version=5)
    other = Door(server, "other")
    first = await other.join(5, "g")
    assert first["error_code"] == MEMBER_ID_REQUIRED
    parked = asyncio.ensure_future(other.join(5, "g", first["member_id"]))
    await asyncio.sleep(0)
    assert not parked.done()
    hb = {"group_id": "g", "generation_id": gen, "member_id": a}
    assert (await door.call(HEARTBEAT, 3, hb))["error_code"] == REBALANCING
    mine = await door.join(5, "g", a)
    theirs = await parked
    b = theirs["member_id"]
    assert mine["generation_id"] == theirs["generation_id"] == gen + 1
    assert mine["leader"] == theirs["leader"] == a
    assert [m["member_id"] for m in mine["members"]] == [a, b] and theirs["members"] == []
    follower = asyncio.ensure_future(other.sync(3, "g", gen + 1, b))
    await asyncio.sleep(0)
    assert not follower.done()
    await door.sync(3, "g", gen + 1, a, [{"member_id": a, "assignment": b"0"},
                                          {"member_id": b, "assignment": b"1"}])
    assert (await follower)["assignment"] == b"1"


@pytest.mark.parametrize("v", [v for v in versions(JOIN) if v >= 5])
async def test_static_members(door: Door, v: int) -> None:
    """v5+: group.instance.id; no MEMBER_ID_REQUIRED; a replaced leader skips the assignment
    on v9."""
    r = await door.join_new(v, "g", instance="i1")
    me = r["member_id"]
    assert me.startswith("i1-")
    assert r["members"] == [{"member_id": me, "group_instance_id": "i1",
                             "metadata": subscription("t")}]
    s = await door.sync(min(v, 5), "g", 1, me, [{"member_id": me, "assignment": b"kept"}],
                        group_instance_id="i1")
    assert s["error_code"] == NONE
    hb = {"group_id": "g", "generation_id": 1, "member_id": me, "group_instance_id": "i1"}
    assert (await door.call(HEARTBEAT, min(v, 4), hb))["error_code"] == NONE
    again = await door.join(v, "g", instance="i1")  # restarted: new id, old one fenced
    assert again["error_code"] == NONE and again["member_id"] != me
    assert again["skip_assignment"] is (v >= 9)
    if v >= 9:
        assert again["leader"] == again["member_id"] and len(again["members"]) == 1
    assert (await door.call(HEARTBEAT, min(v, 4), hb))["error_code"] == E.FENCED_INSTANCE_ID


async def test_sync_v5_checks_the_protocol(door: Door) -> None:
    r = await door.join_new(9, "g")
    me = r["member_id"]
    bad = await door.sync(5, "g", 1, me, protocol_type="consumer", protocol_name="roundrobin")
    assert bad["error_code"] == INCONSISTENT_PROTOCOL
    ok = await door.sync(5, "g", 1, me, protocol_type="consumer", protocol_name="range")
    assert ok["error_code"] == NONE
    assert (await door.sync(5, "g", 2, me))["error_code"] == ILLEGAL_GENERATION


# ------------------------------------------------------------------ Describe, List, Delete


@pytest.mark.parametrize("v", versions(DESCRIBE))
async def test_describe_groups(door: Door, v: int) -> None:
    me, _ = await door.stable("g", instance="i1")
    out = await door.call(DESCRIBE, v, {"groups": ["g", "nope"],
                                        "include_authorized_operations": True})
    g, nope = out["groups"]
    operations = GROUP_OPERATIONS if v >= 3 else INT32_MIN
    assert g == {
        "error_code": NONE, "error_message": None, "group_id": "g", "group_state": "Stable",
        "protocol_type": "consumer", "protocol_data": "range",
        "members": [{"member_id": me, "group_instance_id": "i1" if v >= 4 else None,
                     "client_id": "c", "client_host": "/127.0.0.1",
                     "member_metadata": subscription("t"), "member_assignment": b"A"}],
        "authorized_operations": operations}
    # v0–5: an unknown group is "Dead" with no error (GROUP_ID_NOT_FOUND is v6+)
    assert (nope["error_code"], nope["group_id"], nope["group_state"], nope["members"]) == (
        NOT_FOUND if v >= 6 else NONE, "nope", "Dead", [])
    if v >= 3:
        plain = await door.call(DESCRIBE, v, {"groups": ["g"]})
        assert plain["groups"][0]["authorized_operations"] == INT32_MIN


@pytest.mark.parametrize("v", versions(LIST))
async def test_list_groups(door: Door, v: int) -> None:
    await door.stable("stable")
    await door.call(OFFSET_COMMIT, 2, {"group_id": "simple", "generation_id_or_member_epoch": -1,
                                       "member_id": "", "topics": [{"name": "t", "partitions": [
                                           {"partition_index": 0, "committed_offset": 1}]}]})
    out = await door.call(LIST, v, {})
    assert out["error_code"] == NONE
    listed = sorted((g["group_id"], g["protocol_type"], g["group_state"], g["group_type"])
                    for g in out["groups"])
    assert listed == [("simple", "", "Empty" if v >= 4 else "", "classic" if v >= 5 else ""),
                      ("stable", "consumer", "Stable" if v >= 4 else "",
                       "classic" if v >= 5 else "")]
    if v >= 4:
        only = await door.call(LIST, v, {"states_filter": ["Stable"]})
        assert [g["group_id"] for g in only["groups"]] == ["stable"]
    if v >= 5:
        assert (await door.call(LIST, v, {"types_filter": ["consumer"]}))["groups"] == []
        assert len((await door.call(LIST, v, {"types_filter": ["classic"]}))["groups"]) == 2


@pytest.mark.parametrize("v", versions(DELETE))
async def test_delete_groups(door: Door, v: int) -> None:
    me, gen = await door.stable("busy")
    await door.call(OFFSET_COMMIT, 2, {"group_id": "idle", "generation_id_or_member_epoch": -1,
                                       "member_id": "", "topics": [{"name": "t", "partitions": [
                                           {"partition_index": 0, "committed_offset": 1}]}]})
    out = await door.call(DELETE, v, {"groups_names": ["busy", "idle", "nope"]})
    assert out == {"throttle_time_ms": 0, "results": [
        {"group_id": "busy", "error_code": NON_EMPTY},
        {"group_id": "idle", "error_code": NONE},
        {"group_id": "nope", "error_code": NOT_FOUND}]}
    fetched = await door.call(OFFSET_FETCH, 2, {"group_id": "idle", "topics": None})
    assert fetched["topics"] == []


# ------------------------------------------------------------------ offsets


def commit_body(group: str, entries: dict, generation: int = -1, member: str = "",
                metadata: str | None = "m") -> dict:
    """entries: {topic: {partition: offset}}."""
    return {"group_id": group, "generation_id_or_member_epoch": generation, "member_id": member,
            "group_instance_id": None, "retention_time_ms": -1, "topics": [
                {"name": t, "partitions": [
                    {"partition_index": p, "committed_offset": o, "committed_leader_epoch": 4,
                     "committed_metadata": metadata} for p, o in parts.items()]}
                for t, parts in entries.items()]}


def errors(response: dict) -> dict:
    return {(t["name"], p["partition_index"]): p["error_code"] for t in response["topics"]
            for p in t["partitions"]}


@pytest.mark.parametrize("v", versions(OFFSET_COMMIT))
async def test_offset_commit(door: Door, v: int) -> None:
    out = await door.call(OFFSET_COMMIT, v, commit_body(
        "g", {"t": {0: 5, 2: 7, 3: 1}, "nope": {0: 1}, "u": {0: 9}}, metadata=f"meta-{v}"))
    assert errors(out) == {("t", 0): NONE, ("t", 2): NONE, ("t", 3): UNKNOWN_TOPIC,
                           ("nope", 0): UNKNOWN_TOPIC, ("u", 0): NONE}
    assert [t["name"] for t in out["topics"]] == ["t", "nope", "u"]
    fetched = await door.call(OFFSET_FETCH, 9, {"groups": [{"group_id": "g", "topics": None}]})
    rows = {(t["name"], p["partition_index"]): (p["committed_offset"],
                                                p["committed_leader_epoch"], p["metadata"])
            for t in fetched["groups"][0]["topics"] for p in t["partitions"]}
    epoch = 4 if v >= 6 else -1  # committed_leader_epoch is a v6+ field
    assert rows == {("t", 0): (5, epoch, f"meta-{v}"), ("t", 2): (7, epoch, f"meta-{v}"),
                    ("u", 0): (9, epoch, f"meta-{v}")}
    # null metadata is stored as ""
    await door.call(OFFSET_COMMIT, v, commit_body("g", {"u": {0: 10}}, metadata=None))
    fetched = await door.call(OFFSET_FETCH, 9, {"groups": [{"group_id": "g", "topics": [
        {"name": "u", "partition_indexes": [0]}]}]})
    assert fetched["groups"][0]["topics"][0]["partitions"][0]["metadata"] == ""


@pytest.mark.parametrize("v", versions(OFFSET_COMMIT))
async def test_offset_commit_by_a_member(door: Door, v: int) -> None:
    me, gen = await door.stable("g")
    ok = await door.call(OFFSET_COMMIT, v, commit_body("g", {"t": {1: 3}}, gen, me))
    assert errors(ok) == {("t", 1): NONE}
    stale = await door.call(OFFSET_COMMIT, v, commit_body("g", {"t": {1: 4}}, gen + 1, me))
    assert errors(stale) == {("t", 1): ILLEGAL_GENERATION}
    stranger = await door.call(OFFSET_COMMIT, v, commit_body("g", {"t": {1: 4}}, gen, "who"))
    assert errors(stranger) == {("t", 1): UNKNOWN_MEMBER}
    # generation -1 without a member: only while the group is Empty
    simple = await door.call(OFFSET_COMMIT, v, commit_body("g", {"t": {1: 4}}))
    assert errors(simple) == {("t", 1): UNKNOWN_MEMBER}


@pytest.mark.parametrize("v", versions(OFFSET_FETCH))
async def test_offset_fetch(door: Door, v: int) -> None:
    await door.call(OFFSET_COMMIT, 9, commit_body("g", {"t": {0: 5, 1: 6}, "u": {0: 2}}))
    wanted = [{"name": "t", "partition_indexes": [1, 2]},
              {"name": "gone", "partition_indexes": [0]}]
    epoch = 4 if v >= 5 else -1  # committed_leader_epoch is in responses from v5

    def rows(topics: list) -> dict:
        return {(t["name"], p["partition_index"]): (
            p["committed_offset"], p["committed_leader_epoch"], p["metadata"], p["error_code"])
            for t in topics for p in t["partitions"]}

    listed = {("t", 1): (6, epoch, "m", NONE), ("t", 2): (-1, -1, "", NONE),
              ("gone", 0): (-1, -1, "", NONE)}
    everything = {("t", 0): (5, epoch, "m", NONE), ("t", 1): (6, epoch, "m", NONE),
                  ("u", 0): (2, epoch, "m", NONE)}
    if v < 8:
        out = await door.call(OFFSET_FETCH, v, {"group_id": "g", "topics": wanted})
        assert rows(out["topics"]) == listed
        assert out["error_code"] == NONE
        unknown = await door.call(OFFSET_FETCH, v, {"group_id": "nope", "topics": wanted})
        assert {k: r[0] for k, r in rows(unknown["topics"]).items()} == {
            ("t", 1): -1, ("t", 2): -1, ("gone", 0): -1}
        if v >= 2:  # topics null: every committed partition
            out = await door.call(OFFSET_FETCH, v, {"group_id": "g", "topics": None})
            assert rows(out["topics"]) == everything
            bad = await door.call(OFFSET_FETCH, v, {"group_id": "", "topics": None})
            assert bad["error_code"] == INVALID_GROUP
        return
    out = await door.call(OFFSET_FETCH, v, {"groups": [
        {"group_id": "g", "topics": wanted}, {"group_id": "g", "topics": None},
        {"group_id": "nope", "topics": None}, {"group_id": "", "topics": None}]})
    listed_g, all_g, nope, empty = out["groups"]
    assert (listed_g["group_id"], listed_g["error_code"]) == ("g", NONE)
    assert rows(listed_g["topics"]) == listed
    assert rows(all_g["topics"]) == everything
    assert (nope["group_id"], nope["error_code"], nope["topics"]) == ("nope", NONE, [])
    assert (empty["group_id"], empty["error_code"]) == ("", INVALID_GROUP)


async def test_offset_delete(door: Door) -> None:
    me, gen = await door.stable("g")  # subscribed to "t"
    await door.call(OFFSET_COMMIT, 9, commit_body("g", {"t": {0: 5}, "u": {0: 2}}, gen, me))
    out = await door.call(OFFSET_DELETE, 0, {"group_id": "g", "topics": [
        {"name": "t", "partitions": [{"partition_index": 0}]},
        {"name": "u", "partitions": [{"partition_index": 0}]}]})
    assert out["error_code"] == NONE
    assert errors(out) == {("t", 0): SUBSCRIBED, ("u", 0): NONE}
    fetched = await door.call(OFFSET_FETCH, 7, {"group_id": "g", "topics": None})
    assert [(t["name"], [p["committed_offset"] for p in t["partitions"]])
            for t in fetched["topics"]] == [("t", [5])]
    missing = await door.call(OFFSET_DELETE, 0, {"group_id": "nope", "topics": [
        {"name": "t", "partitions": [{"partition_index": 0}]}]})
    assert (missing["error_code"], missing["topics"]) == (NOT_FOUND, [])


# ------------------------------------------------------------------ no coordinator


async def test_without_a_coordinator_everything_is_retriable(server: KafkaServer) -> None:
    server.coordinator = None
    door = Door(server)
    join = await door.join(9, "g")
    assert (join["error_code"], join["member_id"]) == (NOT_AVAILABLE, "")
    assert (await door.sync(5, "g", 1, "m"))["error_code"] == NOT_AVAILABLE
    hb = await door.call(HEARTBEAT, 4, {"group_id": "g", "generation_id": 1, "member_id": "m"})
    assert hb["error_code"] == NOT_AVAILABLE
    assert (await door.call(LEAVE, 1, {"group_id": "g", "member_id": "m"}))["error_code"] == \
        NOT_AVAILABLE
    assert (await door.call(LIST, 5, {}))["error_code"] == NOT_AVAILABLE
    assert (await door.call(DESCRIBE, 5, {"groups": ["g"]}))["groups"][0]["error_code"] == \
        NOT_AVAILABLE
    assert (await door.call(DELETE, 2, {"groups_names": ["g"]}))["results"][0]["error_code"] \
        == NOT_AVAILABLE
    assert errors(await door.call(OFFSET_COMMIT, 8, commit_body("g", {"t": {0: 1}}))) == {
        ("t", 0): NOT_AVAILABLE}
    fetched = await door.call(OFFSET_FETCH, 8, {"groups": [{"group_id": "g", "topics": None}]})
    assert fetched["groups"][0]["error_code"] == NOT_AVAILABLE
    one = await door.call(OFFSET_FETCH, 1, {"group_id": "g", "topics": [
        {"name": "t", "partition_indexes": [0]}]})
    assert one["topics"][0]["partitions"][0]["error_code"] == NOT_AVAILABLE
    deleted = await door.call(OFFSET_DELETE, 0, {"group_id": "g", "topics": []})
    assert deleted["error_code"] == NOT_AVAILABLE


async def test_subscription_helper_is_a_consumer_subscription() -> None:
    assert decode_versioned("ConsumerProtocolSubscription", subscription("t"))[1]["topics"] \
        == ["t"]
