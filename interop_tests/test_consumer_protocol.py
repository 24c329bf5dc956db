"""KIP-848 on the wire, differential: the same ConsumerGroupHeartbeat / ConsumerGroupDescribe /
OffsetCommit / JoinGroup / ListGroups / DescribeGroups sequence sent raw (pyggy's codec over a
socket, so every field is visible) to the real Kafka 4.1.1 broker and to pyggy; the answers,
normalised (topic ids → names; member ids are chosen here; message texts dropped), must be
equal, and Kafka's must be what Kafka 4.1 is known to answer (`KAFKA`), so both cannot be wrong
the same way. Real clients: test_java_client.py (`group.protocol=consumer`), test_franz_go.py
(the /848 subtests) and tests/kafka_wire/clients/test_consumer_protocol.py (librdkafka)."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "kafka_wire" / "clients"))
from support import RawKafka  # noqa: E402  (the raw client of the client tests)

HEARTBEAT, DESCRIBE, COMMIT, JOIN, LIST, DESCRIBE_GROUPS, DELETE_GROUPS = \
    68, 69, 8, 11, 16, 15, 42
CREATE_TOPICS, FIND_COORDINATOR, METADATA = 19, 10, 3
RETRIABLE = {14, 15, 16}  # COORDINATOR_LOAD_IN_PROGRESS, _NOT_AVAILABLE, NOT_COORDINATOR
PARTITIONS = 4

# What Kafka 4.1.1 answers (checked first, then pyggy is compared with it key by key)
KAFKA: dict[str, Any] = {
    "join_m1": (0, 1, 5000, [("T", [0, 1, 2, 3])]),
    "m1_steady": (0, 1, None),
    "m1_epoch_too_high": 110,
    "unknown_member": 25,
    "empty_member_id": 42,
    "no_rebalance_timeout": 42,
    "unknown_assignor": 112,
    "bad_regex": 128,
    "join_m2": (0, 2, []),
    "m1_told_to_revoke": (0, 1, 2),
    "m1_after_revoking": (0, 2),
    "m2_gets_released": (0, 2, 2),
    "commit_stale_epoch": 113,
    "commit_unknown_member": 25,
    "commit_ok": 0,
    "classic_join_connect": 23,
    "classic_join_consumer": 79,
    "describe": (0, "Stable", 2, 2, "uniform", [(2, ["T"], 2), (2, ["T"], 2)]),
    "describe_unknown": 69,
    "list_groups": ("consumer", "Stable", "consumer"),
    "m1_leaves": (0, -1),
    "m2_leaves": (0, -1),
    "describe_empty": (0, "Empty", 0),
    "delete": 0,
}


def _hb(raw: RawKafka, group: str, member: str, epoch: int, **fields: Any) -> dict:
    body = {"group_id": group, "member_id": member, "member_epoch": epoch, "instance_id": None,
            "rack_id": None, "rebalance_timeout_ms": -1, "subscribed_topic_names": None,
            "subscribed_topic_regex": None, "server_assignor": None, "topic_partitions": None}
    body.update(fields)
    deadline = time.monotonic() + 30
    while True:
        r = raw.call(HEARTBEAT, 1, body)
        if r["error_code"] not in RETRIABLE or time.monotonic() > deadline:
            return r
        time.sleep(0.2)  # the broker is still loading its group coordinator: retry, as clients


def _join(topic: str, **fields: Any) -> dict:
    return {"rebalance_timeout_ms": 30_000, "subscribed_topic_names": [topic],
            "topic_partitions": [], **fields}


def _parts(assignment: dict | None, names: dict) -> list | None:
    if assignment is None:
        return None
    return sorted((names[t["topic_id"].bytes], sorted(t["partitions"]))
                  for t in assignment["topic_partitions"])


def _owned(assignment: list) -> list[dict]:
    return [{"topic_id": tid, "partitions": ps} for tid, ps in assignment]


def run_sequence(bootstrap: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    suffix = uuid.uuid4().hex[:10]
    topic, group = f"cgp-{suffix}", f"cgpg-{suffix}"
    m1, m2 = f"m1-{suffix}", f"m2-{suffix}"
    with RawKafka(bootstrap, "kip848-diff") as raw:
        r = raw.call(CREATE_TOPICS, 7, {"topics": [
            {"name": topic, "num_partitions": PARTITIONS, "replication_factor": 1,
             "assignments": [], "configs": []}], "timeout_ms": 30_000, "validate_only": False})
        assert r["topics"][0]["error_code"] == 0, r
        raw.call(FIND_COORDINATOR, 4, {"key_type": 0, "coordinator_keys": [group]})
        md = raw.call(METADATA, 12, {"topics": [{"name": topic, "topic_id": bytes(16)}],
                                     "allow_auto_topic_creation": False,
                                     "include_topic_authorized_operations": False})
        tid = md["topics"][0]["topic_id"]
        names = {tid.bytes: "T"}
        # Kafka's group coordinator learns a new topic from its metadata image a moment after
        # CreateTopics answers (a first join then gets no partitions, and every epoch after it
        # shifts): a probe group heartbeats, as a client would, until it is given the
        # partitions, so the sequence starts where the topic is known (pyggy knows it at once)
        probe, prober = f"probe-{suffix}", f"p-{suffix}"
        r = _hb(raw, probe, prober, 0, **_join(topic))
        deadline = time.monotonic() + 30
        while not _parts(r["assignment"], names) and time.monotonic() < deadline:
            time.sleep(0.1)
            r = _hb(raw, probe, prober, r["member_epoch"])
        assert _parts(r["assignment"], names), f"the probe group got no partitions: {r}"
        _hb(raw, probe, prober, -1)
        raw.call(DELETE_GROUPS, 2, {"groups_names": [probe]})

        r = _hb(raw, group, m1, 0, **_join(topic))
        out["join_m1"] = (r["error_code"], r["member_epoch"], r["heartbeat_interval_ms"],
                          _parts(r["assignment"], names))
        owned1 = [(tid, list(range(PARTITIONS)))]
        r = _hb(raw, group, m1, 1, topic_partitions=_owned(owned1))
        out["m1_steady"] = (r["error_code"], r["member_epoch"], _parts(r["assignment"], names))
        out["m1_epoch_too_high"] = _hb(raw, group, m1, 9)["error_code"]
        out["unknown_member"] = _hb(raw, group, "nobody", 1)["error_code"]
        out["empty_member_id"] = _hb(raw, group, "", 0, **_join(topic))["error_code"]
        out["no_rebalance_timeout"] = _hb(raw, group, "x", 0, **_join(
            topic, rebalance_timeout_ms=-1))["error_code"]
        out["unknown_assignor"] = _hb(raw, group, "x", 0, **_join(
            topic, server_assignor="nope"))["error_code"]
        out["bad_regex"] = _hb(raw, group, "x", 0, **_join(
            topic, subscribed_topic_names=None, subscribed_topic_regex="(["))["error_code"]

        r = _hb(raw, group, m2, 0, **_join(topic))
        out["join_m2"] = (r["error_code"], r["member_epoch"], _parts(r["assignment"], names))
        r = _hb(raw, group, m1, 1, topic_partitions=_owned(owned1))
        kept = [(t["topic_id"], t["partitions"]) for t in r["assignment"]["topic_partitions"]]
        out["m1_told_to_revoke"] = (r["error_code"], r["member_epoch"],
                                    sum(len(ps) for _, ps in kept))
        r = _hb(raw, group, m1, 1, topic_partitions=_owned(kept))
        out["m1_after_revoking"] = (r["error_code"], r["member_epoch"])
        r = _hb(raw, group, m2, 2, topic_partitions=[])
        got = r["assignment"]["topic_partitions"] if r["assignment"] else []
        out["m2_gets_released"] = (r["error_code"], r["member_epoch"],
                                   sum(len(t["partitions"]) for t in got))

        def commit(member: str, epoch: int) -> int:
            r = raw.call(COMMIT, 9, {
                "group_id": group, "generation_id_or_member_epoch": epoch, "member_id": member,
                "group_instance_id": None, "topics": [{"name": topic, "partitions": [
                    {"partition_index": kept[0][1][0], "committed_offset": 0,
                     "committed_leader_epoch": -1, "committed_metadata": None}]}]})
            return r["topics"][0]["partitions"][0]["error_code"]
        out["commit_stale_epoch"] = commit(m1, 1)
        out["commit_unknown_member"] = commit("nobody", 2)
        out["commit_ok"] = commit(m1, 2)
        for protocol_type in ("connect", "consumer"):
            out[f"classic_join_{protocol_type}"] = raw.call(JOIN, 9, {
                "group_id": group, "session_timeout_ms": 10_000, "rebalance_timeout_ms": 10_000,
                "member_id": "", "group_instance_id": None, "protocol_type": protocol_type,
                "reason": None, "protocols": [{"name": "range", "metadata": b""}]})["error_code"]

        r = raw.call(DESCRIBE, 1, {"group_ids": [group, f"none-{suffix}"],
                                   "include_authorized_operations": False})
        g, unknown = r["groups"]
        out["describe"] = (g["error_code"], g["group_state"], g["group_epoch"],
                           g["assignment_epoch"], g["assignor_name"], sorted(
                               (m["member_epoch"], m["subscribed_topic_names"] and ["T"],
                                sum(len(t["partitions"])
                                    for t in m["assignment"]["topic_partitions"]))
                               for m in g["members"]))
        out["describe_unknown"] = unknown["error_code"]
        r = raw.call(LIST, 5, {"states_filter": [], "types_filter": []})
        mine = [x for x in r["groups"] if x["group_id"] == group]
        out["list_groups"] = (mine[0]["protocol_type"], mine[0]["group_state"],
                              mine[0]["group_type"]) if mine else None
        r = raw.call(DESCRIBE_GROUPS, 5, {"groups": [group],
                                          "include_authorized_operations": False})
        out["describe_groups_v5"] = (r["groups"][0]["error_code"],
                                     r["groups"][0]["group_state"])
        r = _hb(raw, group, m1, -1)
        out["m1_leaves"] = (r["error_code"], r["member_epoch"])
        r = _hb(raw, group, m2, -1)
        out["m2_leaves"] = (r["error_code"], r["member_epoch"])
        r = raw.call(DESCRIBE, 1, {"group_ids": [group], "include_authorized_operations": False})
        g = r["groups"][0]
        out["describe_empty"] = (g["error_code"], g["group_state"], len(g["members"]))
        r = raw.call(DELETE_GROUPS, 2, {"groups_names": [group]})
        out["delete"] = r["results"][0]["error_code"]
    return out


# Known differences (interop_tests/FINDINGS.md, Open): key → what pyggy answers instead.
# Kafka 4.1 lets a classic member (JoinGroup, protocol type "consumer") into a non-empty
# consumer group (its first step: MEMBER_ID_REQUIRED); pyggy keeps a group one type at a time.
PYGGY_DIFFERS = {"classic_join_consumer": 23}


def test_kip848_wire_same_on_both(brokers: dict[str, str]) -> None:
    results = {name: run_sequence(bootstrap) for name, bootstrap in brokers.items()}
    kafka, pyggy = results["kafka"], results["pyggy"]
    wrong = {k: (v, kafka.get(k)) for k, v in KAFKA.items() if kafka.get(k) != v}
    assert not wrong, f"real Kafka answered unlike Kafka 4.1 (expected, got): {wrong}"
    expected = kafka | PYGGY_DIFFERS
    diffs = {k: (kafka[k], pyggy.get(k)) for k in kafka if expected[k] != pyggy.get(k)}
    assert not diffs, f"pyggy differs from real Kafka (kafka, pyggy): {diffs}"
