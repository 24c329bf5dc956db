"""The command table: code → name, handler, flags. The single registry of native commands."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from pyggy.core.lean import lean_frozen
from pyggy.native_wire.codec.codes import NOT_IN_CLASSIC, Code
from pyggy.native_wire.handlers import (
    groups,
    messages,
    offsets,
    routing,
    streams,
    system,
    topics,
    users,
)


@lean_frozen
class Command:
    """One native command's row: code, name, handler."""

    code: int
    name: str
    handler: Callable
    is_async: bool
    pre_auth: bool = False

    @property
    def classic(self) -> bool:
        return self.code not in NOT_IN_CLASSIC


_ROWS: list[tuple[Code, str, Callable]] = [
    (Code.PING, "ping", system.ping),
    (Code.GET_STATS, "stats", system.get_stats),
    (Code.GET_SNAPSHOT_FILE, "snapshot", system.get_snapshot),
    (Code.GET_CLUSTER_METADATA, "cluster.metadata", system.get_cluster_metadata),
    (Code.DESCRIBE_OPTIONS, "options.describe", system.describe_options),
    (Code.GET_ME, "me", system.get_me),
    (Code.GET_CLIENT, "client.get", system.get_client),
    (Code.GET_CLIENTS, "client.list", system.get_clients),
    (Code.GET_USER, "user.get", users.get_user),
    (Code.GET_USERS, "user.list", users.get_users),
    (Code.CREATE_USER, "user.create", users.create_user),
    (Code.DELETE_USER, "user.delete", users.delete_user),
    (Code.UPDATE_USER, "user.update", users.update_user),
    (Code.UPDATE_PERMISSIONS, "user.permissions", users.update_permissions),
    (Code.CHANGE_PASSWORD, "user.password", users.change_password),
    (Code.GET_PERSONAL_ACCESS_TOKENS, "personal_access_token.list", users.get_tokens),
    (Code.CREATE_PERSONAL_ACCESS_TOKEN, "personal_access_token.create", users.create_token),
    (Code.DELETE_PERSONAL_ACCESS_TOKEN, "personal_access_token.delete", users.delete_token),
    (Code.POLL_MESSAGES, "message.poll", messages.poll_messages),
    (Code.SEND_MESSAGES, "message.send", messages.send_messages),
    (Code.FLUSH_UNSAVED_BUFFER, "message.flush_unsaved_buffer", messages.flush_unsaved_buffer),
    (Code.GET_POLL_ROUTING, "message.poll_routing", routing.get_poll_routing),
    (Code.POLL_MESSAGES_ON_PRIMARY, "message.poll_primary", routing.poll_on_primary),
    (Code.ATTACH_CONSUMER_SESSION, "consumer_session.attach", routing.attach_consumer_session),
    (Code.GET_CONSUMER_OFFSET_ROUTING, "consumer_offset.routing", routing.get_offset_routing),
    (Code.GET_CONSUMER_OFFSET, "consumer_offset.get", offsets.get_offset),
    (Code.STORE_CONSUMER_OFFSET, "consumer_offset.store", offsets.store_offset),
    (Code.DELETE_CONSUMER_OFFSET, "consumer_offset.delete", offsets.delete_offset),
    (Code.GET_STREAM, "stream.get", streams.get_stream),
    (Code.GET_STREAMS, "stream.list", streams.get_streams),
    (Code.CREATE_STREAM, "stream.create", streams.create_stream),
    (Code.DELETE_STREAM, "stream.delete", streams.delete_stream),
    (Code.UPDATE_STREAM, "stream.update", streams.update_stream),
    (Code.PURGE_STREAM, "stream.purge", streams.purge_stream),
    (Code.GET_TOPIC, "topic.get", topics.get_topic),
    (Code.GET_TOPICS, "topic.list", topics.get_topics),
    (Code.CREATE_TOPIC, "topic.create", topics.create_topic),
    (Code.DELETE_TOPIC, "topic.delete", topics.delete_topic),
    (Code.UPDATE_TOPIC, "topic.update", topics.update_topic),
    (Code.PURGE_TOPIC, "topic.purge", topics.purge_topic),
    (Code.CREATE_PARTITIONS, "partition.create", topics.create_partitions),
    (Code.DELETE_PARTITIONS, "partition.delete", topics.delete_partitions),
    (Code.DELETE_SEGMENTS, "segment.delete", topics.delete_segments),
    (Code.GET_CONSUMER_GROUP, "consumer_group.get", groups.get_group),
    (Code.GET_CONSUMER_GROUPS, "consumer_group.list", groups.get_groups),
    (Code.CREATE_CONSUMER_GROUP, "consumer_group.create", groups.create_group),
    (Code.DELETE_CONSUMER_GROUP, "consumer_group.delete", groups.delete_group),
    (Code.JOIN_CONSUMER_GROUP, "consumer_group.join", groups.join_group),
    (Code.LEAVE_CONSUMER_GROUP, "consumer_group.leave", groups.leave_group),
    (Code.SYNC_CONSUMER_GROUP, "consumer_group.sync", groups.sync_group),
]

COMMANDS: dict[int, Command] = {
    int(code): Command(int(code), name, fn, inspect.iscoroutinefunction(fn),
                       pre_auth=code == Code.PING)
    for code, name, fn in _ROWS
}
