"""The Kafka handler registry: api key → versions → handler. ApiVersions is computed from it.

Version bounds follow the reference's table (kafka.md §0.1): low versions are kept so old
librdkafka (kcat) detects its features; Produce 13+, Fetch 13+ (topic ids) are not offered.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from pyggy.kafka_wire.handlers import (
    acls,
    admin,
    api_versions,
    cluster,
    configs,
    fetch,
    groups,
    list_offsets,
    metadata,
    offsets,
    produce,
    producer_id,
    sasl,
    scram_credentials,
)


@dataclass(frozen=True, slots=True)
class Api:
    key: int
    name: str
    min_version: int
    max_version: int
    handler: Callable
    is_async: bool


_ROWS: list[tuple[int, str, int, int, Callable]] = [
    (0, "Produce", 0, 12, produce.handle),
    (1, "Fetch", 4, 12, fetch.handle),
    (2, "ListOffsets", 1, 7, list_offsets.handle),
    (3, "Metadata", 0, 12, metadata.handle),
    (8, "OffsetCommit", 2, 9, offsets.offset_commit),
    (9, "OffsetFetch", 1, 9, offsets.offset_fetch),
    (10, "FindCoordinator", 0, 4, cluster.find_coordinator),
    (11, "JoinGroup", 0, 9, groups.join_group),
    (12, "Heartbeat", 0, 4, groups.heartbeat),
    (13, "LeaveGroup", 0, 5, groups.leave_group),
    (14, "SyncGroup", 0, 5, groups.sync_group),
    (15, "DescribeGroups", 0, 6, groups.describe_groups),
    (16, "ListGroups", 0, 5, groups.list_groups),
    (17, "SaslHandshake", 0, 1, sasl.handshake),
    (18, "ApiVersions", 0, 4, api_versions.handle),
    (19, "CreateTopics", 2, 7, admin.create_topics),
    (20, "DeleteTopics", 1, 6, admin.delete_topics),
    (21, "DeleteRecords", 0, 2, admin.delete_records),
    (22, "InitProducerId", 0, 5, producer_id.handle),
    (23, "OffsetForLeaderEpoch", 2, 4, cluster.offset_for_leader_epoch),
    (29, "DescribeAcls", 1, 3, acls.describe_acls),
    (30, "CreateAcls", 1, 3, acls.create_acls),
    (31, "DeleteAcls", 1, 3, acls.delete_acls),
    (32, "DescribeConfigs", 1, 4, configs.describe_configs),
    (33, "AlterConfigs", 0, 2, configs.alter_configs),
    (36, "SaslAuthenticate", 0, 2, sasl.authenticate),
    (37, "CreatePartitions", 0, 3, admin.create_partitions),
    (42, "DeleteGroups", 0, 2, groups.delete_groups),
    (44, "IncrementalAlterConfigs", 0, 1, configs.incremental_alter_configs),
    (47, "OffsetDelete", 0, 0, offsets.offset_delete),
    (48, "DescribeClientQuotas", 0, 1, cluster.describe_client_quotas),
    (50, "DescribeUserScramCredentials", 0, 0, scram_credentials.describe),
    (51, "AlterUserScramCredentials", 0, 0, scram_credentials.alter),
    (60, "DescribeCluster", 0, 1, cluster.describe_cluster),
]

REGISTRY: dict[int, Api] = {}


def register(key: int, name: str, lo: int, hi: int, handler: Callable) -> None:
    """Add (or replace) one API row."""
    REGISTRY[key] = Api(key, name, lo, hi, handler, inspect.iscoroutinefunction(handler))


for _row in _ROWS:
    register(*_row)
