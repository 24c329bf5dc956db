"""Plain result records the coordinator hands to the Kafka handlers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class JoinMember:
    """One entry of the leader's JoinGroup ``members`` (metadata of the selected protocol)."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    """A JoinGroup answer. ``protocol_type``/``protocol_name`` are None on errors: write ""
    for the versions where those fields are not nullable (protocol_name before v7)."""

    error_code: int
    member_id: str = ""
    generation_id: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[JoinMember, ...] = ()  # only for the leader
    skip_assignment: bool = False  # v9+: a replaced static leader keeps the current assignment


@dataclass(frozen=True, slots=True)
class SyncResult:
    error_code: int
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes  # empty unless the group is Stable (as Kafka)
    assignment: bytes  # empty unless the group is Stable


@dataclass(frozen=True, slots=True)
class GroupDescription:
    """DescribeGroups entry. An unknown group is GROUP_ID_NOT_FOUND with state "Dead":
    DescribeGroups v0–5 report it with error NONE instead."""

    error_code: int
    group_id: str
    state: str
    protocol_type: str
    protocol_name: str  # empty unless Stable
    members: tuple[MemberDescription, ...]


@dataclass(frozen=True, slots=True)
class GroupListing:
    group_id: str
    protocol_type: str
    state: str
    group_type: str = "classic"


class FetchedOffset(NamedTuple):
    """OffsetFetch entry: offset and leader_epoch are -1 and metadata "" when none is committed."""

    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str
    error_code: int


@dataclass(frozen=True, slots=True)
class Eviction:
    """A member or pending member id removed by a timer (returned by ``tick`` for logging)."""

    group_id: str
    member_id: str
    reason: str
