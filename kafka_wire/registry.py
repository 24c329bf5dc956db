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

import importlib
import inspect
from collections.abc import Callable

from pyggy.core.engine.cluster import forwarded
from pyggy.kafka_wire.protocol.schemas import heads

_HANDLERS = "pyggy.kafka_wire.handlers."


class Api:
    """One API's row. Its handler's module is imported at the API's first request (a client's
    first request, ApiVersions, loads only its own: BENCHMARKS.md, start-up)."""

    __slots__ = ("key", "name", "min_version", "max_version", "_target", "_forward",
                 "_handler", "_is_async")

    def __init__(self, key: int, name: str, min_version: int, max_version: int,
                 handler: Callable | str, forward: bool = False) -> None:
        self.key, self.name = key, name
        self.min_version, self.max_version = min_version, max_version
        self._target, self._forward = handler, forward
        self._handler: Callable | None = None
        self._is_async = False

    def _resolve(self) -> Callable:
        target = self._target
        if isinstance(target, str):  # "module.function" under kafka_wire/handlers
            module, _, attr = target.rpartition(".")
            target = getattr(importlib.import_module(_HANDLERS + module), attr)
        self._is_async = self._forward or inspect.iscoroutinefunction(target)
        handler = self._handler = forwarded(target) if self._forward else target
        return handler

    @property
    def handler(self) -> Callable:
        return self._handler or self._resolve()

    @property
    def is_async(self) -> bool:
        if self._handler is None:
            self._resolve()
        return self._is_async

    def __repr__(self) -> str:
        return f"Api({self.key}, {self.name!r}, {self.min_version}..{self.max_version})"


# name, handler ("module.function" in kafka_wire/handlers), whether a cluster's backup forwards
# it to the metadata primary
_ROWS: list[tuple[str, str, bool]] = [
    ("Produce", "produce.handle", False),
    ("Fetch", "fetch.handle", False),
    ("ListOffsets", "list_offsets.handle", False),
    ("Metadata", "metadata.handle", False),
    ("OffsetCommit", "offsets.offset_commit", False),
    ("OffsetFetch", "offsets.offset_fetch", False),
    ("FindCoordinator", "cluster.find_coordinator", False),
    ("JoinGroup", "groups.join_group", False),
    ("Heartbeat", "groups.heartbeat", False),
    ("LeaveGroup", "groups.leave_group", False),
    ("SyncGroup", "groups.sync_group", False),
    ("DescribeGroups", "groups.describe_groups", False),
    ("ListGroups", "groups.list_groups", False),
    ("SaslHandshake", "sasl.handshake", False),
    ("ApiVersions", "api_versions.handle", False),
    ("CreateTopics", "admin.create_topics", True),
    ("DeleteTopics", "admin.delete_topics", True),
    ("DeleteRecords", "admin.delete_records", False),
    ("InitProducerId", "producer_id.handle", False),
    ("OffsetForLeaderEpoch", "cluster.offset_for_leader_epoch", False),
    ("AddPartitionsToTxn", "txn.add_partitions_to_txn", False),
    ("AddOffsetsToTxn", "txn.add_offsets_to_txn", False),
    ("EndTxn", "txn.end_txn", False),
    ("TxnOffsetCommit", "txn.txn_offset_commit", False),
    ("DescribeAcls", "acls.describe_acls", False),
    ("CreateAcls", "acls.create_acls", False),
    ("DeleteAcls", "acls.delete_acls", False),
    ("DescribeConfigs", "configs.describe_configs", False),
    ("AlterConfigs", "configs.alter_configs", True),
    ("SaslAuthenticate", "sasl.authenticate", False),
    ("CreatePartitions", "admin.create_partitions", True),
    ("DeleteGroups", "groups.delete_groups", False),
    ("IncrementalAlterConfigs", "configs.incremental_alter_configs", True),
    ("OffsetDelete", "offsets.offset_delete", False),
    ("DescribeClientQuotas", "cluster.describe_client_quotas", False),
    ("DescribeUserScramCredentials", "scram_credentials.describe", False),
    ("AlterUserScramCredentials", "scram_credentials.alter", False),
    ("DescribeCluster", "cluster.describe_cluster", False),
    ("DescribeProducers", "producers.describe_producers", False),
    ("DescribeTransactions", "txn.describe_transactions", False),
    ("ListTransactions", "txn.list_transactions", False),
    ("ConsumerGroupHeartbeat", "consumer_groups.consumer_group_heartbeat", False),
    ("ConsumerGroupDescribe", "consumer_groups.consumer_group_describe", False),
]

REGISTRY: dict[int, Api] = {}


def register(name: str, handler: Callable | str, forward: bool = False) -> None:
    """Add (or replace) the API `name`; its key and versions are those of `<name>Request`;
    `handler` a function or "module.function" under kafka_wire/handlers, imported when first
    called."""
    head = heads()[f"{name}Request"]
    assert head.api_key is not None, name
    lo, hi = head.versions
    REGISTRY[head.api_key] = Api(head.api_key, name, lo, hi, handler, forward)


for _row in _ROWS:
    register(*_row)


def load_handlers() -> None:
    """Import every handler's module now (a cluster replica, before its loop must keep time)."""
    for api in REGISTRY.values():
        api.handler  # noqa: B018 - resolving it imports its module
