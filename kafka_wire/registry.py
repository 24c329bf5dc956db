"""The Kafka handler registry: api key → versions → handler. The one source of what is offered.

Each row names an API and its handler; the API key and the supported versions come from the
API's schema line (`pyggy.kafka_wire.protocol.schemas`, where each range is written once and
checked field by field against Kafka's JSON message definitions). ApiVersions answers from
this table, the README's API table is checked against it (tests/test_readme.py) and the tests
read their ranges from it. Low versions are kept so old clients (librdkafka 2.0 in kcat) detect
their features; Produce 13+ and Fetch 13+ (topics named by id, KIP-516) are not offered.
In a cluster the admin requests that change metadata are `forwarded`: at a backup they go to
the metadata primary over the replica bus (docs/cluster.md, "Forwarding").
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from pyggy.core.engine.cluster import forwarded
from pyggy.kafka_wire.handlers import (
    acls,
    admin,
    api_versions,
    cluster,
    configs,
    consumer_groups,
    fetch,
    groups,
    list_offsets,
    metadata,
    offsets,
    produce,
    producer_id,
    producers,
    sasl,
    scram_credentials,
    txn,
)
from pyggy.kafka_wire.protocol.schemas import messages


@dataclass(frozen=True, slots=True)
class Api:
    key: int
    name: str
    min_version: int
    max_version: int
    handler: Callable
    is_async: bool


_ROWS: list[tuple[str, Callable]] = [
    ("Produce", produce.handle),
    ("Fetch", fetch.handle),
    ("ListOffsets", list_offsets.handle),
    ("Metadata", metadata.handle),
    ("OffsetCommit", offsets.offset_commit),
    ("OffsetFetch", offsets.offset_fetch),
    ("FindCoordinator", cluster.find_coordinator),
    ("JoinGroup", groups.join_group),
    ("Heartbeat", groups.heartbeat),
    ("LeaveGroup", groups.leave_group),
    ("SyncGroup", groups.sync_group),
    ("DescribeGroups", groups.describe_groups),
    ("ListGroups", groups.list_groups),
    ("SaslHandshake", sasl.handshake),
    ("ApiVersions", api_versions.handle),
    ("CreateTopics", forwarded(admin.create_topics)),
    ("DeleteTopics", forwarded(admin.delete_topics)),
    ("DeleteRecords", admin.delete_records),
    ("InitProducerId", producer_id.handle),
    ("OffsetForLeaderEpoch", cluster.offset_for_leader_epoch),
    ("AddPartitionsToTxn", txn.add_partitions_to_txn),
    ("AddOffsetsToTxn", txn.add_offsets_to_txn),
    ("EndTxn", txn.end_txn),
    ("TxnOffsetCommit", txn.txn_offset_commit),
    ("DescribeAcls", acls.describe_acls),
    ("CreateAcls", acls.create_acls),
    ("DeleteAcls", acls.delete_acls),
    ("DescribeConfigs", configs.describe_configs),
    ("AlterConfigs", forwarded(configs.alter_configs)),
    ("SaslAuthenticate", sasl.authenticate),
    ("CreatePartitions", forwarded(admin.create_partitions)),
    ("DeleteGroups", groups.delete_groups),
    ("IncrementalAlterConfigs", forwarded(configs.incremental_alter_configs)),
    ("OffsetDelete", offsets.offset_delete),
    ("DescribeClientQuotas", cluster.describe_client_quotas),
    ("DescribeUserScramCredentials", scram_credentials.describe),
    ("AlterUserScramCredentials", scram_credentials.alter),
    ("DescribeCluster", cluster.describe_cluster),
    ("DescribeProducers", producers.describe_producers),
    ("DescribeTransactions", txn.describe_transactions),
    ("ListTransactions", txn.list_transactions),
    ("ConsumerGroupHeartbeat", consumer_groups.consumer_group_heartbeat),
    ("ConsumerGroupDescribe", consumer_groups.consumer_group_describe),
]

REGISTRY: dict[int, Api] = {}


def register(name: str, handler: Callable) -> None:
    """Add (or replace) the API `name`; its key and versions are those of `<name>Request`."""
    schema = messages()[f"{name}Request"]
    assert schema.api_key is not None, name
    lo, hi = schema.versions
    REGISTRY[schema.api_key] = Api(schema.api_key, name, lo, hi, handler,
                                   inspect.iscoroutinefunction(handler))


for _row in _ROWS:
    register(*_row)
