"""DescribeGroups, ListGroups, DeleteGroups."""

from __future__ import annotations

from groups_support import Harness, done
from pyggy.core.records.kafka_errors import ErrorCode

E = ErrorCode


def test_describe(h: Harness) -> None:
    d = h.coord.describe("nope")
    assert (d.error_code, d.state, d.members) == (E.GROUP_ID_NOT_FOUND, "Dead", ())
    a = done(h.join_new()).member_id
    d = h.coord.describe("g")  # CompletingRebalance: no metadata, no protocol yet
    assert (d.error_code, d.state, d.protocol_type, d.protocol_name) == (
        E.NONE, "CompletingRebalance", "consumer", "")
    assert (d.members[0].member_id, d.members[0].metadata) == (a, b"")


def test_list_groups_with_filters(h: Harness) -> None:
    h.stable_group(1, group="stable")
    h.join_new(group="completing")
    h.coord.commit_offsets("simple", -1, "", None, [("t", 0, 1, -1, "")])
    listed = {(g.group_id, g.protocol_type, g.state, g.group_type)
              for g in h.coord.list_groups()}
    assert listed == {("stable", "consumer", "Stable", "classic"),
                      ("completing", "consumer", "CompletingRebalance", "classic"),
                      ("simple", "", "Empty", "classic")}
    assert [g.group_id for g in h.coord.list_groups(["stable", "EMPTY"])] == [
        "stable", "simple"]
    assert h.coord.list_groups(None, ["consumer"]) == []
    assert len(h.coord.list_groups([], ["Classic"])) == 3


def test_delete_groups(h: Harness) -> None:
    (a,) = h.stable_group(1)
    h.coord.commit_offsets("g", 1, a, None, [("t", 0, 9, -1, "")])
    assert h.coord.delete_groups(["g", "nope"]) == [
        ("g", E.NON_EMPTY_GROUP), ("nope", E.GROUP_ID_NOT_FOUND)]
    h.coord.leave("g", [(a, None, None)])
    assert h.coord.delete_groups(["g"]) == [("g", E.NONE)]
    assert h.coord.describe("g").error_code == E.GROUP_ID_NOT_FOUND
    assert h.store.groups() == []
    assert h.coord.fetch_offsets("g", [("t", [0])])[0].offset == -1
    assert done(h.join_new()).generation_id == 1  # a fresh group under the same id


def test_idle_empty_groups_without_offsets_are_forgotten() -> None:
    h = Harness(empty_group_retention_ms=60_000)
    (a,) = h.stable_group(1, group="kept")
    h.coord.commit_offsets("kept", 1, a, None, [("t", 0, 1, -1, "")])
    (b,) = h.stable_group(1, group="gone")
    h.coord.leave("kept", [(a, None, None)])
    h.coord.leave("gone", [(b, None, None)])
    done(h.join(group="pending-only"))
    h.advance(0)
    h.advance(59_999)
    assert {g.group_id for g in h.coord.list_groups()} == {"kept", "gone", "pending-only"}
    h.advance(1)  # the tick at 59.999 s dropped the pending id: that group's wait began then
    assert {g.group_id for g in h.coord.list_groups()} == {"kept", "pending-only"}
    h.advance(60_000)
    assert {g.group_id for g in h.coord.list_groups()} == {"kept"}
